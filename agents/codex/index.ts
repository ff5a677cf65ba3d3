/**
 * The OpenAI Codex CLI plugin: `codex exec` headless in the container against the OpenAI Responses API (or any
 * server that speaks it), read from its `--json` events.
 */
import type { AgentCredentials, AgentLaunchOptions, AgentPlugin, AgentStreamParser, CredentialRule } from '../types.js';
import { createCodexParser } from './exec-json.js';

export { createCodexParser, summarizeCodexTool } from './exec-json.js';

/** Codex CLI version installed in the image (npm `@openai/codex`), by ./install.sh. */
export const CODEX_VERSION = '0.171.0';

/** The model provider agent-worker defines for Codex (`-c model_providers.agent-worker={…}`). */
const PROVIDER = 'agent-worker';

/** A TOML basic string (Codex's `-c key=value` values are TOML). */
function tomlString(value: string): string {
  return JSON.stringify(value);
}

/** The Codex plugin, used with `--agent-type codex`. */
export const codexPlugin: AgentPlugin = {
  name: 'codex',

  image: { installScript: 'codex/install.sh', version: CODEX_VERSION },

  settings: {
    apiKeyEnv: ['OPENAI_API_KEY', 'CODEX_API_KEY'],
    baseUrlEnv: ['OPENAI_BASE_URL'],
    modelEnv: ['CODEX_MODEL', 'OPENAI_MODEL'],
    baseUrlForm: 'https://HOST/v1 (the root of an OpenAI Responses API, ending in /v1)',
    credentialHint: 'Set OPENAI_API_KEY (or pass --api-key). A .env file in the project works too.',
  },

  // codex exec has no turn or budget limit; MCP servers would need its own TOML configuration; no system-prompt flag.
  supports: { appendSystemPrompt: false, mcp: false, maxTurns: false, maxBudgetUsd: false, oauthToken: false },

  /** OpenAI keys: `sk-…`, `sk-proj-…`, `sk-svcacct-…`. */
  secretShapes: [{ prefix: 'sk-', pattern: /(?<![A-Za-z0-9])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}/g }],

  /** The OpenAI Responses API (`POST <base>/responses`), key as `Authorization: Bearer`. */
  api: {
    defaultBaseUrl: 'https://api.openai.com/v1',
    credentialRules(real: AgentCredentials, placeholders: AgentCredentials): CredentialRule[] {
      if (!real.apiKey || !placeholders.apiKey) return [];
      return [{ header: 'authorization', scheme: 'Bearer', placeholder: placeholders.apiKey, value: real.apiKey }];
    },
  },

  /**
   * `codex exec --json --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check` with a model provider of
   * agent-worker's (the egress proxy as `base_url`, the key from `OPENAI_API_KEY`, the Responses API over HTTP, no
   * websockets: Codex would otherwise try them 7 times first), analytics, update checks, plugins and apps off, `-m`
   * when a model is given, and `-`: the task arrives on standard input. Codex's own sandbox (bubblewrap) cannot run
   * inside Docker and would fail every command while Codex exits 0; the container is the sandbox.
   */
  argv(options: AgentLaunchOptions): string[] {
    const provider = `{name=${tomlString(PROVIDER)},base_url=${tomlString(options.apiBaseUrl)},env_key="OPENAI_API_KEY",wire_api="responses",supports_websockets=false}`;
    const argv = [
      'codex',
      'exec',
      '--json',
      '--dangerously-bypass-approvals-and-sandbox',
      '--skip-git-repo-check',
      '-c',
      `model_provider=${tomlString(PROVIDER)}`,
      '-c',
      `model_providers.${PROVIDER}=${provider}`,
      '-c',
      'analytics.enabled=false',
      '-c',
      'check_for_update_on_startup=false',
      '--disable',
      'plugins',
      '--disable',
      'remote_plugin',
      '--disable',
      'apps',
    ];
    if (options.model !== undefined && options.model !== '') argv.push('-m', options.model);
    argv.push('-');
    return argv;
  },

  /** Secret: `OPENAI_API_KEY` (the provider's `env_key`). Plain: none (the base URL is in argv). */
  env(credentials: AgentCredentials): { secret: Record<string, string>; plain: Record<string, string> } {
    const secret: Record<string, string> = {};
    if (credentials.apiKey) secret.OPENAI_API_KEY = credentials.apiKey;
    return { secret, plain: {} };
  },

  createParser(): AgentStreamParser {
    return createCodexParser();
  },
};

/**
 * The GitHub Copilot CLI plugin: `copilot --output-format json` headless in the container with a model provider of
 * the user's own (Copilot's "bring your own key" mode) speaking the OpenAI Chat Completions API, read from its JSON
 * session events, with the tokens from its `--usage-output-file`.
 */
import type { AgentCredentials, AgentEnding, AgentLaunchOptions, AgentOutcome, AgentPlugin, AgentStreamParser, CredentialRule } from '../types.js';
import { createCopilotParser, parseCopilotUsageFile } from './json.js';

export { createCopilotParser, parseCopilotUsageFile, summarizeCopilotTool } from './json.js';

/** Copilot CLI version installed in the image (npm `@github/copilot`, as `@github/copilot-linux-<arch>`), by ./install.sh. */
export const COPILOT_VERSION = '1.0.102';

/**
 * Where ./install.sh unpacked the CLI's JavaScript package (`<this>/pkg/linux-<arch>/<version>`), given to the agent
 * as `COPILOT_PKG_CACHE_HOME`: without it the binary unpacks ~235 MB into `~/.cache/copilot` on every start.
 */
export const COPILOT_PKG_CACHE_HOME = '/opt/copilot';

/**
 * The usage report Copilot writes when it ends (`--usage-output-file`; tokens per model, which its standard output
 * never has), read back by {@link copilotPlugin}'s `settle`. In the container's /tmp: outside /workspace, so it never
 * lands on the branch.
 */
export const COPILOT_USAGE_FILE = '/tmp/agent-worker-copilot-usage.json';

/** The Copilot CLI plugin, used with `--agent-type copilot`. */
export const copilotPlugin: AgentPlugin = {
  name: 'copilot',

  image: { installScript: 'copilot/install.sh', version: COPILOT_VERSION },

  settings: {
    apiKeyEnv: ['COPILOT_PROVIDER_API_KEY'],
    baseUrlEnv: ['COPILOT_PROVIDER_BASE_URL'],
    modelEnv: ['COPILOT_MODEL'],
    // With your own provider ("BYOK") Copilot CLI has no default model: it exits 1 without one.
    modelRequired: true,
    baseUrlForm: 'https://HOST/v1 (the root of an OpenAI-compatible Chat Completions API, ending in /v1: what COPILOT_PROVIDER_BASE_URL takes)',
    credentialHint:
      "Set COPILOT_PROVIDER_API_KEY (or pass --api-key): Copilot CLI runs with your own model provider's key (default base URL https://api.openai.com/v1; another with COPILOT_PROVIDER_BASE_URL or --base-url), not a GitHub login. Copilot needs a model too: COPILOT_MODEL or --model. A .env file in the project works too.",
  },

  // No system-prompt flag, no turn or dollar limit (--max-ai-credits counts GitHub's credits, not the provider's
  // dollars); MCP would need its own configuration format; a GitHub login (COPILOT_GITHUB_TOKEN) needs GitHub's API.
  supports: { appendSystemPrompt: false, mcp: false, maxTurns: false, maxBudgetUsd: false, oauthToken: false },

  /** OpenAI keys (the default provider): `sk-…`, `sk-proj-…`, `sk-svcacct-…`. */
  secretShapes: [{ prefix: 'sk-', pattern: /(?<![A-Za-z0-9])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}/g }],

  /**
   * An OpenAI-compatible Chat Completions API (`POST <base>/chat/completions`, Copilot's provider type `openai`, wire
   * API `completions`); Copilot sends `COPILOT_PROVIDER_API_KEY` as `Authorization: Bearer`.
   */
  api: {
    defaultBaseUrl: 'https://api.openai.com/v1',
    credentialRules(real: AgentCredentials, placeholders: AgentCredentials): CredentialRule[] {
      if (!real.apiKey || !placeholders.apiKey) return [];
      return [{ header: 'authorization', scheme: 'Bearer', placeholder: placeholders.apiKey, value: real.apiKey }];
    },
  },

  /**
   * `copilot --output-format json --yolo --no-ask-user --no-auto-update --disable-client-telemetry
   * --disable-builtin-mcps --usage-output-file <file>`, plus `--model <name>` when given. No `-p`: Copilot reads the
   * prompt from standard input when it is not a terminal (the task arrives there) and then runs as with `-p`: one
   * prompt, no questions (`--no-ask-user`), every tool, path and URL allowed (`--yolo`; the container is the sandbox),
   * exit when done. The usage report goes to {@link COPILOT_USAGE_FILE}.
   */
  argv(options: AgentLaunchOptions): string[] {
    const argv = [
      'copilot',
      '--output-format',
      'json',
      '--yolo',
      '--no-ask-user',
      '--no-auto-update',
      '--disable-client-telemetry',
      '--disable-builtin-mcps',
      '--usage-output-file',
      COPILOT_USAGE_FILE,
    ];
    if (options.model !== undefined && options.model !== '') argv.push('--model', options.model);
    return argv;
  },

  /**
   * Secret: `COPILOT_PROVIDER_API_KEY`. Plain: `COPILOT_PROVIDER_BASE_URL` (the egress proxy; it makes Copilot use that
   * provider instead of GitHub's model routing), `COPILOT_OFFLINE=true` (no GitHub login, telemetry, web tools, GitHub
   * MCP server or update check: nothing but the provider is called), `COPILOT_AUTO_UPDATE=false` (the image pins the
   * version) and `COPILOT_PKG_CACHE_HOME` ({@link COPILOT_PKG_CACHE_HOME}: the package unpacked in the image).
   */
  env(credentials: AgentCredentials): { secret: Record<string, string>; plain: Record<string, string> } {
    const secret: Record<string, string> = {};
    if (credentials.apiKey) secret.COPILOT_PROVIDER_API_KEY = credentials.apiKey;
    const plain: Record<string, string> = {};
    if (credentials.baseUrl) plain.COPILOT_PROVIDER_BASE_URL = credentials.baseUrl;
    plain.COPILOT_OFFLINE = 'true';
    plain.COPILOT_AUTO_UPDATE = 'false';
    plain.COPILOT_PKG_CACHE_HOME = COPILOT_PKG_CACHE_HOME;
    return { secret, plain };
  },

  createParser(): AgentStreamParser {
    return createCopilotParser();
  },

  outputFiles: [COPILOT_USAGE_FILE],

  /**
   * Takes the tokens (and the model, when the stream named none) from the usage report Copilot wrote when it ended
   * ({@link COPILOT_USAGE_FILE}, read by `parseCopilotUsageFile`). A run that wrote none (killed at a timeout) or an
   * unreadable one keeps the stream's outcome: zero tokens. No cost: with one's own key Copilot computes none.
   */
  settle(outcome: AgentOutcome, ending: AgentEnding): AgentOutcome {
    const text = ending.files[COPILOT_USAGE_FILE];
    if (text === undefined) return outcome;
    try {
      const usage = parseCopilotUsageFile(text);
      if (!usage) return outcome;
      return { ...outcome, tokens: usage.tokens, model: outcome.model ?? usage.model };
    } catch {
      return outcome;
    }
  },
};

/**
 * The Claude Code agent plugin: how to start `claude` headless in the container and read its stream-json output.
 */
import { AGENT_HOME, type AgentCredentials, type AgentLaunchOptions, type AgentPlugin, type AgentStreamParser, type CredentialRule } from '../types.js';
import { createClaudeStreamParser } from './stream-json.js';

export { createClaudeStreamParser, summarizeToolUse } from './stream-json.js';

/** Claude Code version installed in the image (npm `@anthropic-ai/claude-code`), by ./install.sh. */
export const CLAUDE_CODE_VERSION = '2.1.330';

/** Where the MCP configuration goes in the container (the agent's, 0600). */
export const MCP_CONFIG_FILE = '.mcp-config.json';

/** The Claude Code plugin, used with `--agent-type claude`. */
export const claudeCodePlugin: AgentPlugin = {
  name: 'claude',

  image: { installScript: 'claude-code/install.sh', version: CLAUDE_CODE_VERSION },

  settings: {
    apiKeyEnv: ['ANTHROPIC_API_KEY'],
    oauthTokenEnv: ['CLAUDE_CODE_OAUTH_TOKEN'],
    baseUrlEnv: ['ANTHROPIC_BASE_URL'],
    modelEnv: ['ANTHROPIC_MODEL'],
    baseUrlForm: 'https://HOST (what ANTHROPIC_BASE_URL takes)',
    credentialHint:
      'Set ANTHROPIC_API_KEY (or pass --api-key), or for a Claude subscription set CLAUDE_CODE_OAUTH_TOKEN (--oauth-token; create one with `claude setup-token`). A .env file in the project works too.',
  },

  supports: { appendSystemPrompt: true, mcp: true, maxTurns: true, maxBudgetUsd: true, oauthToken: true },

  /** Anthropic API keys (`sk-ant-api03-…`) and OAuth tokens (`sk-ant-oat01-…`). */
  secretShapes: [{ prefix: 'sk-ant-', pattern: /(?<![A-Za-z0-9])sk-ant-[A-Za-z0-9_-]{8,}/g }],

  /**
   * The Anthropic Messages API. Claude Code sends an API key (`ANTHROPIC_API_KEY`) as `x-api-key` and an OAuth token
   * (`CLAUDE_CODE_OAUTH_TOKEN`) as `Authorization: Bearer`; a key sent as a bearer token is swapped too.
   */
  api: {
    defaultBaseUrl: 'https://api.anthropic.com',
    credentialRules(real: AgentCredentials, placeholders: AgentCredentials): CredentialRule[] {
      const rules: CredentialRule[] = [];
      if (real.apiKey && placeholders.apiKey) {
        rules.push({ header: 'x-api-key', placeholder: placeholders.apiKey, value: real.apiKey });
        rules.push({ header: 'authorization', scheme: 'Bearer', placeholder: placeholders.apiKey, value: real.apiKey });
      }
      if (real.oauthToken && placeholders.oauthToken) {
        rules.push({ header: 'authorization', scheme: 'Bearer', placeholder: placeholders.oauthToken, value: real.oauthToken });
      }
      return rules;
    },
  },

  /**
   * `claude -p --output-format stream-json --verbose --dangerously-skip-permissions --append-system-prompt <text>`,
   * plus `--model <name>`, `--max-turns <n>`, `--max-budget-usd <dollars>` and `--mcp-config <file>` when given.
   * The task arrives on standard input.
   */
  argv(options: AgentLaunchOptions): string[] {
    const argv = [
      'claude',
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--dangerously-skip-permissions',
      '--append-system-prompt',
      options.appendSystemPrompt,
    ];
    if (options.model !== undefined && options.model !== '') argv.push('--model', options.model);
    if (options.maxTurns !== undefined) argv.push('--max-turns', String(options.maxTurns));
    if (options.maxBudgetUsd !== undefined) argv.push('--max-budget-usd', String(options.maxBudgetUsd));
    if (options.mcpConfigJson !== undefined) argv.push('--mcp-config', `${AGENT_HOME}/${MCP_CONFIG_FILE}`);
    return argv;
  },

  /** The MCP configuration, when given, as {@link MCP_CONFIG_FILE}. */
  homeFiles(options: AgentLaunchOptions): Record<string, string> {
    return options.mcpConfigJson === undefined ? {} : { [MCP_CONFIG_FILE]: options.mcpConfigJson };
  },

  /**
   * Secret: `ANTHROPIC_API_KEY` and/or `CLAUDE_CODE_OAUTH_TOKEN`, when given. Plain: `ANTHROPIC_BASE_URL` when given,
   * `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`, `DISABLE_AUTOUPDATER=1` (the image pins the version) and `IS_SANDBOX=1`
   * (Claude Code refuses `--dangerously-skip-permissions` as root unless told it is sandboxed; uid 0 in the
   * container holds no capabilities at all).
   */
  env(credentials: AgentCredentials): { secret: Record<string, string>; plain: Record<string, string> } {
    const secret: Record<string, string> = {};
    if (credentials.apiKey) secret.ANTHROPIC_API_KEY = credentials.apiKey;
    if (credentials.oauthToken) secret.CLAUDE_CODE_OAUTH_TOKEN = credentials.oauthToken;
    const plain: Record<string, string> = {};
    if (credentials.baseUrl) plain.ANTHROPIC_BASE_URL = credentials.baseUrl;
    plain.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = '1';
    plain.DISABLE_AUTOUPDATER = '1';
    plain.IS_SANDBOX = '1';
    return { secret, plain };
  },

  createParser(): AgentStreamParser {
    return createClaudeStreamParser();
  },
};

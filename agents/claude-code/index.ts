/**
 * The Claude Code agent plugin: how to start `claude` headless in the container and read its stream-json output.
 */
import type { AgentCredentials, AgentLaunchOptions, AgentPlugin, AgentStreamParser, CredentialRule } from '../types.js';
import { createClaudeStreamParser } from './stream-json.js';

export { createClaudeStreamParser, summarizeToolUse } from './stream-json.js';

/** Claude Code version installed in the image (npm `@anthropic-ai/claude-code`); a Dockerfile build arg. */
export const CLAUDE_CODE_VERSION = '2.1.330';

/** The Claude Code plugin, used with `--agent-type claude`. */
export const claudeCodePlugin: AgentPlugin = {
  name: 'claude',

  buildArgs: { CLAUDE_CODE_VERSION },

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
    if (options.mcpConfigFile !== undefined) argv.push('--mcp-config', options.mcpConfigFile);
    return argv;
  },

  /**
   * Secret: `ANTHROPIC_API_KEY` and/or `CLAUDE_CODE_OAUTH_TOKEN`, when given. Plain: `ANTHROPIC_BASE_URL` when given,
   * `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1` and `DISABLE_AUTOUPDATER=1`.
   */
  env(credentials: AgentCredentials): { secret: Record<string, string>; plain: Record<string, string> } {
    const secret: Record<string, string> = {};
    if (credentials.apiKey) secret.ANTHROPIC_API_KEY = credentials.apiKey;
    if (credentials.oauthToken) secret.CLAUDE_CODE_OAUTH_TOKEN = credentials.oauthToken;
    const plain: Record<string, string> = {};
    if (credentials.baseUrl) plain.ANTHROPIC_BASE_URL = credentials.baseUrl;
    plain.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = '1';
    plain.DISABLE_AUTOUPDATER = '1';
    return { secret, plain };
  },

  createParser(): AgentStreamParser {
    return createClaudeStreamParser();
  },
};

/**
 * The Qwen Code plugin: `qwen` headless in the container against an OpenAI-compatible Chat Completions API (OpenAI,
 * Alibaba Cloud DashScope / Model Studio, OpenRouter, a local vLLM, …), read from its `-o stream-json` output.
 */
import { AGENT_HOME, type AgentCredentials, type AgentEnding, type AgentLaunchOptions, type AgentOutcome, type AgentPlugin, type AgentStreamParser, type CredentialRule } from '../types.js';
import { createQwenStreamParser } from './stream-json.js';

export { createQwenStreamParser, qwenUsage, summarizeQwenTool } from './stream-json.js';

/** Qwen Code version installed in the image (npm `@qwen-code/qwen-code`), by ./install.sh. */
export const QWEN_VERSION = '0.24.4';

/** Node version Qwen Code runs on (npm `node-linux-<arch>`): it needs Node ≥ 22 (`fs.openAsBlob`), Debian has 18. */
export const QWEN_NODE_VERSION = '22.23.5';

/**
 * Qwen Code's settings, relative to the agent's HOME, loaded as its SYSTEM settings (`QWEN_CODE_SYSTEM_SETTINGS_PATH`):
 * those override the user's and the project's, so a repository's `.qwen/settings.json` cannot turn them back.
 */
export const QWEN_SETTINGS_FILE = '.qwen/agent-worker-system-settings.json';

/** Where the MCP configuration goes, relative to the agent's HOME (Qwen Code's form of it; 0600). */
export const QWEN_MCP_CONFIG_FILE = '.qwen/agent-worker-mcp.json';

/**
 * Exit code of Qwen Code when `--max-session-turns` was exceeded (`FatalTurnLimitedError`); in stream-json mode it
 * then writes no result, only "Reached max session turns for this session. …" on stderr.
 */
export const QWEN_MAX_TURNS_EXIT_CODE = 53;

/**
 * Qwen Code's settings for a headless run ({@link QWEN_SETTINGS_FILE}, loaded as system settings):
 * - `security.auth.selectedType: "openai"`: the OpenAI-compatible provider, with `OPENAI_API_KEY`, `OPENAI_BASE_URL`
 *   and `OPENAI_MODEL` from the environment (the same as `--auth-type openai`, which argv passes too);
 * - `privacy.usageStatisticsEnabled: false`: no usage statistics to Alibaba Cloud's RUM host
 *   (`gb4w8c3ygj-default-sea.rum.aliyuncs.com`); `telemetry.enabled: false`: no OpenTelemetry export;
 * - `general.enableAutoUpdate: false`: no update check against the npm registry (the image pins the version);
 * - `memory.enableManagedAutoMemory` / `enableManagedAutoDream: false`: no background memory agents, whose model calls
 *   the run's result would not count (and whose memories would die with the container anyway);
 *   `experimental.emitToolUseSummaries: false`: no model-written labels for tool batches (a display feature);
 * - `ui.enableUserFeedback: false`, `general.chatRecording: false`: no feedback prompt, no session transcript in HOME
 *   (the container is thrown away);
 * - `tools.shell.enableInteractiveShell: false`: shell commands run without a pseudo-terminal (the image has no
 *   node-pty; nobody types into them).
 */
export function qwenSettings(): Record<string, unknown> {
  return {
    security: { auth: { selectedType: 'openai' } },
    privacy: { usageStatisticsEnabled: false },
    telemetry: { enabled: false },
    general: { enableAutoUpdate: false, chatRecording: false },
    ui: { enableUserFeedback: false },
    memory: { enableManagedAutoMemory: false, enableManagedAutoDream: false },
    experimental: { emitToolUseSummaries: false },
    tools: { shell: { enableInteractiveShell: false } },
  };
}

/**
 * Claude Code's MCP configuration (what `--mcp-config` takes: `{"mcpServers": {name: server}}`) in Qwen Code's form,
 * as JSON. A stdio server (`command`, `args`, `env`) stays as it is; Qwen Code reads a remote server's transport from
 * its field instead of `type`: `{"type": "http", "url"}` (streamable HTTP) becomes `{"httpUrl"}`, `{"type": "sse",
 * "url"}` becomes `{"url"}`; `headers` and every other field are kept. `type` is dropped. Input that is not such an
 * object is passed through unchanged (Qwen Code then reports it).
 */
export function qwenMcpConfig(claudeJson: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(claudeJson);
  } catch {
    return claudeJson;
  }
  const servers = (parsed as { mcpServers?: unknown } | null)?.mcpServers;
  if (typeof servers !== 'object' || servers === null || Array.isArray(servers)) return claudeJson;
  const converted: Record<string, unknown> = {};
  for (const [name, server] of Object.entries(servers as Record<string, unknown>)) {
    if (typeof server !== 'object' || server === null || Array.isArray(server)) {
      converted[name] = server;
      continue;
    }
    const { type, url, ...rest } = server as Record<string, unknown>;
    if ((type === 'http' || type === 'streamable-http' || type === 'streamableHttp') && typeof url === 'string') {
      converted[name] = { ...rest, httpUrl: url };
    } else if (type === 'sse' || type === 'stdio' || type === undefined) {
      converted[name] = url === undefined ? rest : { ...rest, url };
    } else {
      // A type Qwen Code does not know (or a typo) goes as it is: Qwen Code says what is wrong with it.
      converted[name] = server;
    }
  }
  return JSON.stringify({ mcpServers: converted });
}

/** The Qwen Code plugin, used with `--agent-type qwen`. */
export const qwenPlugin: AgentPlugin = {
  name: 'qwen',

  image: { installScript: 'qwen/install.sh', version: QWEN_VERSION, node: QWEN_NODE_VERSION },

  settings: {
    apiKeyEnv: ['OPENAI_API_KEY'],
    baseUrlEnv: ['OPENAI_BASE_URL'],
    modelEnv: ['OPENAI_MODEL', 'QWEN_MODEL'],
    baseUrlForm: 'https://HOST/v1 (the root of an OpenAI-compatible Chat Completions API, what OPENAI_BASE_URL takes: e.g. https://dashscope-intl.aliyuncs.com/compatible-mode/v1)',
    credentialHint: 'Set OPENAI_API_KEY (or pass --api-key), and OPENAI_BASE_URL (--base-url) unless the API is OpenAI\'s. A .env file in the project works too.',
  },

  // --append-system-prompt, --mcp-config and --max-session-turns exist; Qwen Code computes no cost, so no budget;
  // its Qwen OAuth login was discontinued (2026-04-15).
  supports: { appendSystemPrompt: true, mcp: true, maxTurns: true, maxBudgetUsd: false, oauthToken: false },

  /**
   * OpenAI-style keys (`sk-…`, `sk-proj-…`, `sk-svcacct-…`), which DashScope's (`sk-` and 32 hex digits) and
   * OpenRouter's (`sk-or-v1-…`) also are.
   */
  secretShapes: [{ prefix: 'sk-', pattern: /(?<![A-Za-z0-9])sk-(?:proj-|svcacct-|admin-|or-v1-)?[A-Za-z0-9_-]{20,}/g }],

  /**
   * The Chat Completions API (`POST <base>/chat/completions`), key as `Authorization: Bearer` (the `openai` SDK's).
   * Default base: OpenAI's, which is what Qwen Code itself uses for auth type `openai` when `OPENAI_BASE_URL` is unset
   * (`DEFAULT_OPENAI_BASE_URL`); DashScope's endpoints differ by region and plan, so a DashScope user names theirs.
   */
  api: {
    defaultBaseUrl: 'https://api.openai.com/v1',
    credentialRules(real: AgentCredentials, placeholders: AgentCredentials): CredentialRule[] {
      if (!real.apiKey || !placeholders.apiKey) return [];
      return [{ header: 'authorization', scheme: 'Bearer', placeholder: placeholders.apiKey, value: real.apiKey }];
    },
  },

  /**
   * `qwen --yolo --auth-type openai -o stream-json --append-system-prompt=<text>`, plus `-m <model>`,
   * `--max-session-turns <n>` and `--mcp-config <file>` when given. No prompt in argv: with stdin not a terminal and no
   * prompt, Qwen Code runs non-interactively and reads the prompt from standard input (up to 8 MiB).
   */
  argv(options: AgentLaunchOptions): string[] {
    const argv = ['qwen', '--yolo', '--auth-type', 'openai', '-o', 'stream-json'];
    // One `--flag=value` argument: a value starting with `-` would otherwise be read as a flag.
    if (options.appendSystemPrompt !== '') argv.push(`--append-system-prompt=${options.appendSystemPrompt}`);
    if (options.model !== undefined && options.model !== '') argv.push('-m', options.model);
    if (options.maxTurns !== undefined) argv.push('--max-session-turns', String(options.maxTurns));
    if (options.mcpConfigJson !== undefined) argv.push('--mcp-config', `${AGENT_HOME}/${QWEN_MCP_CONFIG_FILE}`);
    return argv;
  },

  /** {@link QWEN_SETTINGS_FILE} ({@link qwenSettings}), and the MCP configuration in Qwen Code's form when given. */
  homeFiles(options: AgentLaunchOptions): Record<string, string> {
    const files: Record<string, string> = { [QWEN_SETTINGS_FILE]: `${JSON.stringify(qwenSettings(), null, 2)}\n` };
    if (options.mcpConfigJson !== undefined) files[QWEN_MCP_CONFIG_FILE] = qwenMcpConfig(options.mcpConfigJson);
    return files;
  },

  /**
   * Secret: `OPENAI_API_KEY`. Plain: `OPENAI_BASE_URL` (the egress proxy's URL as it is: the proxy forwards
   * `<it>/chat/completions` to `<--base-url>/chat/completions`), `QWEN_CODE_SYSTEM_SETTINGS_PATH` (its settings file, as
   * system settings), `QWEN_USAGE_STATISTICS_ENABLED=false` (the settings file says it too),
   * `QWEN_CODE_SUPPRESS_YOLO_WARNING=1` (no warning on stderr for `--yolo` headless), and `NO_BROWSER=1`.
   */
  env(credentials: AgentCredentials): { secret: Record<string, string>; plain: Record<string, string> } {
    const secret: Record<string, string> = {};
    if (credentials.apiKey) secret.OPENAI_API_KEY = credentials.apiKey;
    const plain: Record<string, string> = {};
    if (credentials.baseUrl) plain.OPENAI_BASE_URL = credentials.baseUrl;
    plain.QWEN_CODE_SYSTEM_SETTINGS_PATH = `${AGENT_HOME}/${QWEN_SETTINGS_FILE}`;
    plain.QWEN_USAGE_STATISTICS_ENABLED = 'false';
    plain.QWEN_CODE_SUPPRESS_YOLO_WARNING = '1';
    plain.NO_BROWSER = '1';
    return { secret, plain };
  },

  createParser(): AgentStreamParser {
    return createQwenStreamParser();
  },

  /**
   * Exit {@link QWEN_MAX_TURNS_EXIT_CODE} without a result: `--max-session-turns` was reached
   * (`limitReached: 'max_turns'`, resultText = Qwen Code's stderr line). Anything else: the parser's outcome.
   */
  settle(outcome: AgentOutcome, ending: AgentEnding): AgentOutcome {
    if (ending.exitCode !== QWEN_MAX_TURNS_EXIT_CODE || outcome.resultSubtype !== undefined) return outcome;
    const said = [...ending.stderrTail].reverse().find((line) => /max session turns/i.test(line));
    return { ...outcome, limitReached: 'max_turns', isError: true, resultText: said?.trim() ?? outcome.resultText };
  },
};

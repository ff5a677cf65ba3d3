/**
 * The Gemini CLI plugin: `gemini -p … -o stream-json` headless in the container against the Gemini API (Google AI,
 * `generativelanguage.googleapis.com`, or any server that speaks it), read from its stream-json events.
 */
import { AGENT_HOME, type AgentCredentials, type AgentEnding, type AgentLaunchOptions, type AgentOutcome, type AgentPlugin, type AgentStreamParser, type CredentialRule } from '../types.js';
import { createGeminiStreamParser, geminiErrorReason } from './stream-json.js';

export { createGeminiStreamParser, geminiErrorReason, geminiStreamStatsUsage, parseGeminiJsonOutput, summarizeGeminiTool } from './stream-json.js';

/** Gemini CLI version installed in the image (npm `@google/gemini-cli`), by ./install.sh. */
export const GEMINI_CLI_VERSION = '0.61.0';

/**
 * The Node version the image gets for Gemini CLI (npm `node-linux-<arch>`, the official binary): Gemini CLI needs
 * Node >= 20 (on Debian bookworm's 18 it fails at start with `Invalid regular expression flags`).
 */
export const GEMINI_NODE_VERSION = '22.23.5';

/**
 * Where the plugin's settings file goes, relative to the agent's HOME: Gemini CLI reads it as its SYSTEM settings
 * (`GEMINI_CLI_SYSTEM_SETTINGS_PATH`), the scope that overrides the user's `~/.gemini/settings.json` and the
 * repository's `.gemini/settings.json`, so nothing in the repository can turn telemetry back on or change the auth type.
 */
export const GEMINI_SETTINGS_FILE = '.gemini/agent-worker-system-settings.json';

/**
 * Most attempts Gemini CLI makes for one request to the main model (its `general.maxAttempts` setting; Gemini CLI's
 * default 10, its maximum). Between attempts it waits 5 s, then 10 s, 20 s, 30 s, 30 s… (±30 % jitter, its
 * `retryWithBackoff`), so its default rides out a failing API for about 3.5 minutes, silently, before it gives up.
 * 4 attempts wait 5 + 10 + 20 = 35 s in all (at most 45.5 s with jitter): enough for a transient 429/5xx, the
 * same order as Codex's own ~25 s, and a run against an API that is down fails in well under a minute.
 */
export const GEMINI_MAX_ATTEMPTS = 4;

/** Exit code of Gemini CLI's `FatalTurnLimitedError`: the session reached `model.maxSessionTurns`. */
export const GEMINI_EXIT_TURN_LIMIT = 53;

/**
 * The settings agent-worker gives Gemini CLI (its settings.json schema), as JSON text:
 * - `security.auth.selectedType: "gemini-api-key"`: the Gemini API with `GEMINI_API_KEY`. Without it, a set
 *   `GOOGLE_GEMINI_BASE_URL` makes Gemini CLI pick the auth type `gateway`, which headless mode rejects (exit 41).
 * - `privacy.usageStatisticsEnabled: false` (its Clearcut logging to play.googleapis.com, and the installation-id
 *   header on model requests), `telemetry.enabled: false` (OpenTelemetry), `general.enableAutoUpdate` and
 *   `general.enableAutoUpdateNotification: false` (the npm registry lookup; the image pins the version),
 *   `ide.enabled: false`.
 * - `general.maxAttempts`: {@link GEMINI_MAX_ATTEMPTS}.
 * - `tools.shell.enableInteractiveShell: false`: shell commands run with child_process, not a pseudo-terminal
 *   (nobody can type into it headless; the image does not install node-pty).
 * - `advanced.ignoreLocalEnv: true`: Gemini CLI does not load the repository's generic `.env` into its environment
 *   (which its shell commands inherit): the agent's configuration comes from agent-worker, and a `.env` that holds a
 *   key for agent-worker stays out of the agent's environment. A Gemini-specific `.gemini/.env` is still read.
 * - `model.maxSessionTurns`: `--max-turns`, when given (model requests per session; the next one ends the run with
 *   exit {@link GEMINI_EXIT_TURN_LIMIT}).
 */
export function geminiSettings(options: Pick<AgentLaunchOptions, 'maxTurns'>): string {
  const settings = {
    security: { auth: { selectedType: 'gemini-api-key' } },
    privacy: { usageStatisticsEnabled: false },
    telemetry: { enabled: false },
    general: { enableAutoUpdate: false, enableAutoUpdateNotification: false, maxAttempts: GEMINI_MAX_ATTEMPTS },
    ide: { enabled: false },
    tools: { shell: { enableInteractiveShell: false } },
    advanced: { ignoreLocalEnv: true },
    ...(options.maxTurns === undefined ? {} : { model: { maxSessionTurns: options.maxTurns } }),
  };
  return `${JSON.stringify(settings, null, 2)}\n`;
}

/**
 * The outcome completed from Gemini CLI's ending: exit {@link GEMINI_EXIT_TURN_LIMIT} is `--max-turns` reached
 * (`limitReached: 'max_turns'`); any other failure without a stream-json `result` (Gemini CLI gives up on an API error
 * with nothing on stdout and its error document on stderr, e.g. exit 244 on HTTP 500) becomes an error outcome whose
 * `resultText` is the API's own message, as {@link geminiErrorReason} reads it from stderr (else the outcome is left as
 * it is, and the core takes the last stderr line). Never throws.
 */
export function settleGemini(outcome: AgentOutcome, ending: AgentEnding): AgentOutcome {
  if (ending.exitCode === GEMINI_EXIT_TURN_LIMIT) return { ...outcome, isError: true, limitReached: 'max_turns' };
  if (ending.exitCode === null || ending.exitCode === 0 || outcome.resultSubtype !== undefined) return outcome;
  const reason = geminiErrorReason(ending.stderrTail);
  return reason === undefined ? outcome : { ...outcome, isError: true, resultText: reason };
}

/** The Gemini CLI plugin, used with `--agent-type gemini`. */
export const geminiPlugin: AgentPlugin = {
  name: 'gemini',

  image: { installScript: 'gemini/install.sh', version: GEMINI_CLI_VERSION, node: GEMINI_NODE_VERSION },

  settings: {
    apiKeyEnv: ['GEMINI_API_KEY', 'GOOGLE_API_KEY'],
    baseUrlEnv: ['GOOGLE_GEMINI_BASE_URL'],
    modelEnv: ['GEMINI_MODEL'],
    baseUrlForm: 'https://HOST (the root of a Gemini API, without /v1beta: what GOOGLE_GEMINI_BASE_URL takes)',
    credentialHint: 'Set GEMINI_API_KEY (or pass --api-key). A .env file in the project works too.',
  },

  // No flag appends to its system prompt (GEMINI_SYSTEM_MD replaces it whole); MCP servers would need translating into
  // its settings' `mcpServers`; it reports no cost; it takes no OAuth token (its Google login is interactive).
  supports: { appendSystemPrompt: false, mcp: false, maxTurns: true, maxBudgetUsd: false, oauthToken: false },

  /** Gemini API keys: `AIza` and 35 more characters. */
  secretShapes: [{ prefix: 'AIza', pattern: /(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}/g }],

  /** The Gemini API (`POST <base>/v1beta/models/<model>:streamGenerateContent?alt=sse`), key as `x-goog-api-key`. */
  api: {
    defaultBaseUrl: 'https://generativelanguage.googleapis.com',
    credentialRules(real: AgentCredentials, placeholders: AgentCredentials): CredentialRule[] {
      if (!real.apiKey || !placeholders.apiKey) return [];
      return [{ header: 'x-goog-api-key', placeholder: placeholders.apiKey, value: real.apiKey }];
    },
  },

  /**
   * `gemini -p "" -o stream-json --skip-trust --yolo`, plus `-m <model>` when given. The task arrives on standard
   * input: Gemini CLI puts what it reads there before the `-p` text (`<stdin>\n\n<prompt>`, or stdin alone when the
   * prompt is empty), and `-p` makes the run headless whatever stdin and stdout are. `--skip-trust` trusts /workspace
   * for the session (an untrusted folder exits 55); `--yolo` approves every tool call (the container is the sandbox).
   */
  argv(options: AgentLaunchOptions): string[] {
    const argv = ['gemini', '-p', '', '-o', 'stream-json', '--skip-trust', '--yolo'];
    if (options.model !== undefined && options.model !== '') argv.push('-m', options.model);
    return argv;
  },

  /** {@link geminiSettings} as {@link GEMINI_SETTINGS_FILE}. */
  homeFiles(options: AgentLaunchOptions): Record<string, string> {
    return { [GEMINI_SETTINGS_FILE]: geminiSettings(options) };
  },

  /**
   * Secret: `GEMINI_API_KEY`. Plain: `GOOGLE_GEMINI_BASE_URL` (the egress proxy; the SDK adds `/v1beta`),
   * `GEMINI_CLI_SYSTEM_SETTINGS_PATH` ({@link GEMINI_SETTINGS_FILE}), and `GEMINI_CLI_NO_RELAUNCH=true`: Gemini CLI
   * otherwise starts a second Node process of itself (to raise its heap limit to half the host's memory, which the
   * container's limit would not honour) while the first ignores SIGTERM, so a stop would wait for SIGKILL.
   */
  env(credentials: AgentCredentials): { secret: Record<string, string>; plain: Record<string, string> } {
    const secret: Record<string, string> = {};
    if (credentials.apiKey) secret.GEMINI_API_KEY = credentials.apiKey;
    const plain: Record<string, string> = {
      GEMINI_CLI_SYSTEM_SETTINGS_PATH: `${AGENT_HOME}/${GEMINI_SETTINGS_FILE}`,
      GEMINI_CLI_NO_RELAUNCH: 'true',
    };
    if (credentials.baseUrl) plain.GOOGLE_GEMINI_BASE_URL = credentials.baseUrl;
    return { secret, plain };
  },

  createParser(): AgentStreamParser {
    return createGeminiStreamParser();
  },

  settle: settleGemini,
};

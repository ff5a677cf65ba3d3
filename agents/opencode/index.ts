/**
 * The OpenCode plugin: `opencode run --format json` headless in the container against any OpenAI-compatible Chat
 * Completions API (OpenAI, Ollama, vLLM, LM Studio, …), through a provider of agent-worker's built on OpenCode's
 * bundled `@ai-sdk/openai-compatible`, read from its JSON events.
 */
import { AGENT_HOME, type AgentCredentials, type AgentEnding, type AgentLaunchOptions, type AgentOutcome, type AgentPlugin, type AgentStreamParser, type CredentialRule } from '../types.js';
import { createOpenCodeParser } from './run-json.js';

export { createOpenCodeParser, summarizeOpenCodeTool } from './run-json.js';

/** OpenCode version installed in the image (npm `opencode-ai`, as its platform package), by ./install.sh. */
export const OPENCODE_VERSION = '1.18.33';

/** The provider agent-worker defines for OpenCode; the model is `-m agent-worker/<model>`. */
export const OPENCODE_PROVIDER = 'agent-worker';

/**
 * The model used when neither `--model` nor `OPENCODE_MODEL`/`OPENAI_MODEL` names one: OpenCode has no default for a
 * provider it does not know, and this one is served by OpenAI's Chat Completions API (the default base URL) with tools.
 */
export const OPENCODE_DEFAULT_MODEL = 'gpt-4.1';

/**
 * What OpenCode is told of the model, in tokens (its config's `limit`; agent-worker cannot know the real model's):
 * `output` is sent as every call's `max_tokens` (OpenCode sends 32000 without it, more than many local servers'
 * context), `context` is where OpenCode compacts the conversation.
 */
export const OPENCODE_MODEL_LIMIT = { context: 128_000, output: 16_384 } as const;

/** The session title given with `--title`: OpenCode otherwise asks the model for one in a call its stream never reports. */
export const OPENCODE_SESSION_TITLE = 'agent-worker';

/** Where the run's instructions go, relative to the agent's HOME; OpenCode's `instructions` adds them to its system prompt. */
export const OPENCODE_INSTRUCTIONS_FILE = '.config/agent-worker/instructions.md';

/** OpenCode's global configuration folder, relative to the agent's HOME (`$XDG_CONFIG_HOME/opencode`). */
const CONFIG_DIR = '.config/opencode';

/**
 * The npm package OpenCode installs into each of its configuration folders at every start (a background `npm install`
 * against the npm registry, which the egress proxy would refuse and audit) unless the folder's `node_modules` exists
 * and its `package-lock.json` already lists every dependency of its `package.json`.
 */
const CONFIG_DIR_PACKAGE = '@opencode-ai/plugin';

/** The configuration given in `OPENCODE_CONFIG_CONTENT`, which OpenCode merges last, over any project's. */
function configContent(baseUrl: string | undefined): string {
  return JSON.stringify({
    $schema: 'https://opencode.ai/config.json',
    autoupdate: false,
    share: 'disabled',
    // No undo history: OpenCode would otherwise copy the work tree into a git store in HOME at every step.
    snapshot: false,
    enabled_providers: [OPENCODE_PROVIDER],
    // `opencode run` rejects whatever asks; --auto approves it, these say it outright for the tools a task needs.
    permission: { edit: 'allow', bash: 'allow', external_directory: 'allow', webfetch: 'allow' },
    provider: {
      [OPENCODE_PROVIDER]: {
        npm: '@ai-sdk/openai-compatible',
        name: OPENCODE_PROVIDER,
        options: { ...(baseUrl ? { baseURL: baseUrl } : {}), apiKey: '{env:OPENAI_API_KEY}' },
      },
    },
  });
}

/** The model the run uses: the one asked for, else {@link OPENCODE_DEFAULT_MODEL}. */
function modelOf(options: AgentLaunchOptions): string {
  return options.model !== undefined && options.model !== '' ? options.model : OPENCODE_DEFAULT_MODEL;
}

/**
 * The parser with every cost taken out: OpenCode computes `part.cost` from the prices in its configuration, and
 * agent-worker gives it none (it cannot know what the server charges), so its 0 would read as "free" rather than
 * "unknown".
 */
function withoutCost(parser: AgentStreamParser): AgentStreamParser {
  return {
    push(line: string) {
      return parser.push(line).map((event) => (event.kind === 'turn' ? { ...event, costUsd: undefined } : event));
    },
    outcome() {
      return { ...parser.outcome(), costUsd: undefined };
    },
  };
}

/** Removes terminal colour and cursor sequences (OpenCode styles its stderr messages even when it is not a terminal). */
function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-?]*[ -/]*[@-~]/g, '');
}

/** What OpenCode's `error` line says when the real error is only in its log (`ref=err_…` there). */
const GENERIC_ERROR = /^Unexpected server error\b/;

/**
 * The message of a `--print-logs` line at level ERROR (`timestamp=… level=ERROR … error="<message>" cause="…"`), its
 * escapes undone, or undefined for any other line. Linear in the line's length.
 */
function errorOfLogLine(line: string): string | undefined {
  if (!/\blevel=ERROR\b/.test(line)) return undefined;
  const open = line.indexOf(' error="');
  if (open < 0) return undefined;
  const begin = open + ' error="'.length;
  let i = begin;
  while (i < line.length && line[i] !== '"') i += line[i] === '\\' ? 2 : 1;
  const raw = line.slice(begin, i);
  if (i >= line.length) return undefined;
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw;
  }
}

/** The first line of the message of the last ERROR line OpenCode logged to stderr, if any. */
function loggedError(stderrTail: string[]): string | undefined {
  for (let i = stderrTail.length - 1; i >= 0; i -= 1) {
    const line = errorOfLogLine(stderrTail[i] ?? '')?.split('\n', 1)[0]?.trim();
    if (line) return line;
  }
  return undefined;
}

/** The OpenCode plugin, used with `--agent-type opencode`. */
export const openCodePlugin: AgentPlugin = {
  name: 'opencode',

  image: { installScript: 'opencode/install.sh', version: OPENCODE_VERSION },

  settings: {
    apiKeyEnv: ['OPENAI_API_KEY'],
    baseUrlEnv: ['OPENAI_BASE_URL'],
    modelEnv: ['OPENCODE_MODEL', 'OPENAI_MODEL'],
    baseUrlForm: 'http://HOST:PORT/v1 (the root of an OpenAI-compatible Chat Completions API, ending in /v1; e.g. Ollama http://HOST:11434/v1)',
    credentialHint: 'Set OPENAI_API_KEY (or pass --api-key) for a server that takes a key. A .env file in the project works too.',
    // A local OpenAI-compatible server (Ollama, vLLM, LM Studio, llama.cpp) takes no key.
    credentialsOptional: true,
  },

  // OpenCode's step limit ends a run the way any answer does (no signal to report), it has no budget limit, and its
  // MCP configuration is its own format.
  supports: { appendSystemPrompt: true, mcp: false, maxTurns: false, maxBudgetUsd: false, oauthToken: false },

  /** OpenAI keys: `sk-…`, `sk-proj-…`, `sk-svcacct-…` (other servers' keys have no shape to know). */
  secretShapes: [{ prefix: 'sk-', pattern: /(?<![A-Za-z0-9])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}/g }],

  /** An OpenAI-compatible Chat Completions API (`POST <base>/chat/completions`), key as `Authorization: Bearer`. */
  api: {
    defaultBaseUrl: 'https://api.openai.com/v1',
    credentialRules(real: AgentCredentials, placeholders: AgentCredentials): CredentialRule[] {
      if (!real.apiKey || !placeholders.apiKey) return [];
      return [{ header: 'authorization', scheme: 'Bearer', placeholder: placeholders.apiKey, value: real.apiKey }];
    },
  },

  /**
   * `opencode run --print-logs --log-level WARN --format json --auto --title agent-worker -m agent-worker/<model>` and
   * no message: `opencode run` reads its message from standard input when that is not a terminal (the task). Its
   * warnings and errors go to stderr (silent on a clean run; an error's real message is only there, see
   * {@link openCodePlugin.settle}). `--auto` approves every permission request (`run` otherwise rejects them, which
   * ends the run quietly); the container is the sandbox. `--title` spares the title call.
   */
  argv(options: AgentLaunchOptions): string[] {
    return [
      'opencode',
      'run',
      '--print-logs',
      '--log-level',
      'WARN',
      '--format',
      'json',
      '--auto',
      '--title',
      OPENCODE_SESSION_TITLE,
      '-m',
      `${OPENCODE_PROVIDER}/${modelOf(options)}`,
    ];
  },

  /**
   * In `~/.config/opencode`: `opencode.json` with the model (under agent-worker's provider, with
   * {@link OPENCODE_MODEL_LIMIT} and no prices) and the instructions file; and a `package.json`, `package-lock.json` and
   * `node_modules/` that make OpenCode's start-up `npm install` there a no-op. The instructions, when any, as
   * {@link OPENCODE_INSTRUCTIONS_FILE}.
   */
  homeFiles(options: AgentLaunchOptions): Record<string, string> {
    const model = modelOf(options);
    const instructions = options.appendSystemPrompt.trim() !== '';
    const config = {
      $schema: 'https://opencode.ai/config.json',
      model: `${OPENCODE_PROVIDER}/${model}`,
      provider: { [OPENCODE_PROVIDER]: { models: { [model]: { name: model, limit: OPENCODE_MODEL_LIMIT } } } },
      ...(instructions ? { instructions: [`${AGENT_HOME}/${OPENCODE_INSTRUCTIONS_FILE}`] } : {}),
    };
    const dependencies = { [CONFIG_DIR_PACKAGE]: OPENCODE_VERSION };
    const files: Record<string, string> = {
      [`${CONFIG_DIR}/opencode.json`]: `${JSON.stringify(config, null, 2)}\n`,
      [`${CONFIG_DIR}/package.json`]: `${JSON.stringify({ dependencies }, null, 2)}\n`,
      [`${CONFIG_DIR}/package-lock.json`]: `${JSON.stringify({ lockfileVersion: 3, requires: true, packages: { '': { dependencies } } }, null, 2)}\n`,
      [`${CONFIG_DIR}/node_modules/.keep`]: '',
    };
    if (instructions) files[OPENCODE_INSTRUCTIONS_FILE] = `${options.appendSystemPrompt}\n`;
    return files;
  },

  /**
   * Secret: `OPENAI_API_KEY` (the provider's `apiKey` reads it). Plain: `OPENCODE_CONFIG_CONTENT` (agent-worker's
   * provider at `credentials.baseUrl`, the egress proxy: OpenCode posts to `<baseURL>/chat/completions`, which the
   * proxy forwards to `<--base-url>/chat/completions`, so the proxy's root stands for the user's `…/v1`; permissions;
   * update, sharing and snapshots off; no other provider), and the switches that keep OpenCode off the network: no
   * models.dev list, no update check, no default plugins (npm), no LSP server downloads, no sharing.
   */
  env(credentials: AgentCredentials): { secret: Record<string, string>; plain: Record<string, string> } {
    const secret: Record<string, string> = {};
    if (credentials.apiKey) secret.OPENAI_API_KEY = credentials.apiKey;
    const plain: Record<string, string> = {
      OPENCODE_CONFIG_CONTENT: configContent(credentials.baseUrl),
      OPENCODE_DISABLE_MODELS_FETCH: '1',
      OPENCODE_DISABLE_AUTOUPDATE: '1',
      OPENCODE_DISABLE_DEFAULT_PLUGINS: '1',
      OPENCODE_DISABLE_LSP_DOWNLOAD: '1',
      OPENCODE_DISABLE_SHARE: '1',
    };
    return { secret, plain };
  },

  /** {@link createOpenCodeParser}, without cost (see {@link withoutCost}). */
  createParser(): AgentStreamParser {
    return withoutCost(createOpenCodeParser());
  },

  /**
   * The reason OpenCode's stream leaves out: its `error` line says only "Unexpected server error. Check server logs
   * for details." for an error outside the model call (an unknown model, a bad configuration), which `--print-logs`
   * puts on stderr: that message replaces it. A non-zero exit the stream did not explain at all (no `error` line)
   * becomes an error whose text is that logged message, else OpenCode's last stderr line, colours removed.
   */
  settle(outcome: AgentOutcome, ending: AgentEnding): AgentOutcome {
    if (outcome.isError) {
      const logged = GENERIC_ERROR.test(outcome.resultText ?? '') ? loggedError(ending.stderrTail) : undefined;
      return logged === undefined ? outcome : { ...outcome, resultText: logged };
    }
    if (ending.exitCode === null || ending.exitCode === 0) return outcome;
    const said =
      loggedError(ending.stderrTail) ??
      [...ending.stderrTail]
        .reverse()
        .map((line) => stripAnsi(line).trim())
        .find((line) => line !== '');
    if (said === undefined) return outcome;
    return { ...outcome, isError: true, resultText: said, resultSubtype: outcome.resultSubtype ?? 'error' };
  },
};

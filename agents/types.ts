/**
 * The agent plugin interface: the only module an agent plugin imports from the core.
 *
 * A plugin says how to install its CLI in the image, how to start it (argv and environment),
 * and how to read its output stream into progress events and a final outcome.
 */

/**
 * Token counts of model calls, in tokens, with one meaning for every agent (each plugin normalises its CLI's own):
 * `input` = input tokens NOT read from the cache (Codex, Gemini and Qwen count cached tokens inside input: subtract);
 * `cacheRead`, `cacheWrite` = input tokens read from / written to the prompt cache; `output` = every generated token,
 * reasoning included; `reasoning` = the part of `output` that was reasoning (0 when the agent does not say);
 * `total` = input + output + cacheRead + cacheWrite.
 */
export interface TokenUsage {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  reasoning: number;
  total: number;
}

/** A live event read from the agent's output stream, for progress display. */
export type AgentEvent =
  | { kind: 'init'; sessionId?: string; model?: string; version?: string }
  | { kind: 'turn'; turn: number; tokens: TokenUsage; costUsd?: number }
  | { kind: 'tool'; name: string; summary: string }
  | { kind: 'text'; text: string }
  | { kind: 'result'; subtype: string; isError: boolean };

/** What the agent's stream said about the whole run, once it has ended (or been cut off). */
export interface AgentOutcome {
  /** Agent CLI version as it reported it, if it did. */
  version?: string;
  /** Main model name, if reported. */
  model?: string;
  sessionId?: string;
  /** Number of turns (Claude Code `num_turns`, else assistant messages seen). */
  turns: number;
  /** Final text of the agent (Claude Code `result.result`), if any. */
  resultText?: string;
  /** Subtype of the final result (`success`, `error_max_turns`, …); undefined when no result arrived. */
  resultSubtype?: string;
  /** True when the agent's final result reported an error. */
  isError: boolean;
  /**
   * Set when the agent stopped because it reached a limit it was given: `max_turns` (`--max-turns`;
   * Claude Code result subtype `error_max_turns`) or `max_budget` (`--max-budget-usd`; `error_max_budget_usd`).
   */
  limitReached?: 'max_turns' | 'max_budget';
  tokens: TokenUsage;
  /** True when the agent does not report tokens at all (`tokens` is then all zeros and means nothing). */
  tokensUnknown?: boolean;
  /** Cost in US dollars, as the agent computed it; undefined when it never said. */
  costUsd?: number;
  /** True when the figures come from a final result message, false when estimated from partial output. */
  fromResult: boolean;
}

/** What the agent's ending tells besides its output stream: see {@link AgentPlugin.settle}. */
export interface AgentEnding {
  exitCode: number | null;
  stderrTail: string[];
  files: Record<string, string>;
}

/** Reads one agent's output stream, one line at a time. */
export interface AgentStreamParser {
  /** Feeds one line (without its newline). Returns the events it produced (possibly none). Never throws on bad input. */
  push(line: string): AgentEvent[];
  /** The outcome so far; call after the stream ends. */
  outcome(): AgentOutcome;
}

/** The agent's HOME inside the container (the entrypoint's contract): its settings files go there. */
export const AGENT_HOME = '/home/agent';

/**
 * Options passed to a plugin to start the agent. Limits and MCP are only set when the plugin says it supports them
 * ({@link AgentCapabilities}): the core refuses such a flag for an agent that cannot honour it.
 */
export interface AgentLaunchOptions {
  /**
   * The base URL the agent must send its model API requests to: the egress proxy's (`http://agent-worker-proxy:8080`),
   * which forwards a request for `<this>/<path>` to `<--base-url, else AgentApi.defaultBaseUrl>/<path>`.
   */
  apiBaseUrl: string;
  model?: string;
  maxTurns?: number;
  /** Spending limit, in US dollars. */
  maxBudgetUsd?: number;
  /**
   * Instructions for the agent (where its work goes, the user's `--append-system-prompt` and `--persona`): appended
   * to its system prompt when it can take one, else the core puts them before the task.
   */
  appendSystemPrompt: string;
  /** MCP server configuration (Claude Code's JSON: `{"mcpServers": {…}}`), when the user gave one. */
  mcpConfigJson?: string;
  /** `--agent-command` as argv (the `exec` agent: the user's own CLI). */
  agentCommand?: string[];
}

/** What an agent can be asked beyond the task; a flag for something it cannot do is refused before the run starts. */
export interface AgentCapabilities {
  /** Takes text for its system prompt (else the core prepends the instructions to the task). */
  appendSystemPrompt: boolean;
  /** `--mcp-config`. */
  mcp: boolean;
  /** `--max-turns`. */
  maxTurns: boolean;
  /** `--max-budget-usd`. */
  maxBudgetUsd: boolean;
  /** `--oauth-token` (a subscription login instead of an API key). */
  oauthToken: boolean;
}

/** Where the generic settings are read from for this agent, besides the flags: its own environment variables. */
export interface AgentSettings {
  /** Environment variables holding the API key (`--api-key`), first set wins, e.g. `['OPENAI_API_KEY']`. */
  apiKeyEnv: string[];
  /** Environment variables holding the OAuth token (`--oauth-token`), when the agent takes one. */
  oauthTokenEnv?: string[];
  /** Environment variables holding the base URL (`--base-url`). */
  baseUrlEnv: string[];
  /** Environment variables holding the model (`--model`). */
  modelEnv: string[];
  /** How `--base-url` looks for this agent, for messages: e.g. `http://HOST:PORT/v1`. */
  baseUrlForm: string;
  /** True when the agent has no default model, so `--model` must be given (it is refused before the run without). */
  modelRequired?: boolean;
  /** True when the agent may run without any credential (`exec`: the user's CLI may need none). */
  credentialsOptional?: boolean;
  /** What to do when no credential was given: the variables and flags to set, e.g. `Set OPENAI_API_KEY (or pass --api-key).` */
  credentialHint: string;
}

/**
 * A credential's shape, redacted from the run's logs wherever it appears (any key of that kind, not only the
 * user's): `prefix` starts it (searched for cheaply first), `pattern` (global) matches it whole.
 */
export interface SecretShape {
  prefix: string;
  pattern: RegExp;
}

/** Credentials given to the agent; values are secret and must never be logged. */
export interface AgentCredentials {
  apiKey?: string;
  oauthToken?: string;
  baseUrl?: string;
}

/**
 * How the egress proxy swaps a placeholder credential the agent sends for the real one: in request header `header`
 * (lower-case), after `scheme` (e.g. `Bearer`) when set. Shape of src/proxy/egress-proxy.ts `CredentialRule`.
 */
export interface CredentialRule {
  header: string;
  scheme?: string;
  /** What the agent was given and sends. */
  placeholder: string;
  /** The real credential; only the proxy ever holds it. */
  value: string;
}

/** The model API an agent calls, as the egress proxy needs to know it. */
export interface AgentApi {
  /**
   * The API's base URL when no `--base-url` is given, e.g. `https://api.anthropic.com`. Undefined for an agent with no
   * API of its own (`exec`): without `--base-url` its proxy then has no model API route, only the allowlist.
   */
  defaultBaseUrl?: string;
  /**
   * For the credentials the user gave (real values) and the placeholders the agent gets instead (same fields), how
   * the agent sends each: the proxy replaces exactly the placeholder, nothing else.
   */
  credentialRules(real: AgentCredentials, placeholders: AgentCredentials): CredentialRule[];
}

/**
 * How an agent's CLI gets into the image (container/Dockerfile): its install script runs as root with
 * `AGENT_CLI_VERSION` set, after a newer Node is installed when `node` says so. Only the agent a run uses is built;
 * each image is tagged by the hash of everything that goes into it, and the layers below the agent's are shared.
 */
export interface AgentImageLayer {
  /** The install script, relative to the package's `agents/` folder, e.g. `claude-code/install.sh`. */
  installScript: string;
  /** The CLI version it installs (build arg `AGENT_CLI_VERSION`); pinned, so no run updates it. */
  version: string;
  /**
   * The Node version the CLI needs when Debian bookworm's Node 18 will not do (build arg `AGENT_NODE_VERSION`: the
   * official binary from npm's `node-linux-<arch>`, e.g. `22.23.5`); undefined when Node 18 does or none is needed.
   */
  node?: string;
}

/** An agent plugin. */
export interface AgentPlugin {
  /** Name used with `--agent-type`. */
  name: string;
  /** The model API it calls; the egress proxy adds the credential to requests bound there. */
  api: AgentApi;
  /** Its layer of the image: how its CLI is installed, at which version, with which Node. */
  image: AgentImageLayer;
  /** Its own environment variables for the generic settings. */
  settings: AgentSettings;
  /** What it can be asked beyond the task. */
  supports: AgentCapabilities;
  /** Shapes of its credentials, redacted from the logs. */
  secretShapes: SecretShape[];
  /**
   * The argv that starts the agent inside the container (argv[0] is the program). The task is NOT
   * in argv: it is delivered on the agent's standard input, so any length and any bytes but NUL work.
   */
  argv(options: AgentLaunchOptions): string[];
  /**
   * Files the agent needs in its HOME ({@link AGENT_HOME}), by path relative to it, as text (settings, an MCP
   * configuration). They may hold placeholders, never a real credential.
   */
  homeFiles?(options: AgentLaunchOptions): Record<string, string>;
  /**
   * Environment for the agent: secret entries (delivered out of band) and plain ones. It is called with the
   * placeholders and the egress proxy's URL as `baseUrl`: the real credentials never reach the agent.
   */
  env(credentials: AgentCredentials): { secret: Record<string, string>; plain: Record<string, string> };
  /** A new parser for one run's output stream. */
  createParser(): AgentStreamParser;
  /**
   * Files the agent writes that the core reads back once it has ended (absolute container paths, e.g. a usage
   * report the CLI writes instead of printing it); given to {@link AgentPlugin.settle}. At most 1 MiB each.
   */
  outputFiles?: string[];
  /**
   * Completes the parser's outcome with what only the agent's ending tells: its exit code and last stderr lines (the
   * container's, without the entrypoint's `agent-worker:` lines), e.g. an error reason written only to stderr, or a
   * limit signalled only by an exit code, and the {@link AgentPlugin.outputFiles} it wrote (by path, as text; absent
   * when it wrote none). A null exit code: the agent was killed. Returns the outcome to report; never throws (the
   * files are the agent's, so hostile input).
   */
  settle?(outcome: AgentOutcome, ending: AgentEnding): AgentOutcome;
}

/** The largest count of one kind of token a report holds (so `total` stays an exact integer). */
export const MAX_TOKENS = 1e15;

/**
 * Makes a {@link TokenUsage} from its parts (already normalised) and fills `total`. `reasoning` is part of `output`.
 * The agent's output is not trusted: each count becomes a whole number from 0 to {@link MAX_TOKENS} (NaN and negative
 * counts are 0, infinite ones the maximum) and `reasoning` at most `output`.
 */
export function makeTokenUsage(input: number, output: number, cacheRead: number, cacheWrite: number, reasoning = 0): TokenUsage {
  const count = (value: number): number => (value > 0 ? Math.min(Math.floor(value), MAX_TOKENS) : 0);
  const [i, o, r, w] = [count(input), count(output), count(cacheRead), count(cacheWrite)];
  return { input: i, output: o, cacheRead: r, cacheWrite: w, reasoning: Math.min(count(reasoning), o), total: i + o + r + w };
}

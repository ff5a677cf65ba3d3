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
  /** Cost in US dollars, as the agent computed it; undefined when it never said. */
  costUsd?: number;
  /** True when the figures come from a final result message, false when estimated from partial output. */
  fromResult: boolean;
}

/** Reads one agent's output stream, one line at a time. */
export interface AgentStreamParser {
  /** Feeds one line (without its newline). Returns the events it produced (possibly none). Never throws on bad input. */
  push(line: string): AgentEvent[];
  /** The outcome so far; call after the stream ends. */
  outcome(): AgentOutcome;
}

/** Options passed to a plugin to build the agent's command line. */
export interface AgentLaunchOptions {
  model?: string;
  maxTurns?: number;
  /** Spending limit, in US dollars. */
  maxBudgetUsd?: number;
  /** Text appended to the agent's system prompt. */
  appendSystemPrompt: string;
  /** Path, inside the container, of an MCP server configuration file (JSON) for the agent. */
  mcpConfigFile?: string;
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
  /** The API's base URL when no `--base-url` is given, e.g. `https://api.anthropic.com`. */
  defaultBaseUrl: string;
  /**
   * For the credentials the user gave (real values) and the placeholders the agent gets instead (same fields), how
   * the agent sends each: the proxy replaces exactly the placeholder, nothing else.
   */
  credentialRules(real: AgentCredentials, placeholders: AgentCredentials): CredentialRule[];
}

/** An agent plugin. */
export interface AgentPlugin {
  /** Name used with `--agent-type`. */
  name: string;
  /** The model API it calls; the egress proxy adds the credential to requests bound there. */
  api: AgentApi;
  /** Dockerfile build args this plugin contributes (e.g. the pinned CLI version); they go into the image hash. */
  buildArgs: Record<string, string>;
  /**
   * The argv that starts the agent inside the container (argv[0] is the program). The task is NOT
   * in argv: it is delivered on the agent's standard input, so any length and any bytes but NUL work.
   */
  argv(options: AgentLaunchOptions): string[];
  /**
   * Environment for the agent: secret entries (delivered out of band) and plain ones. It is called with the
   * placeholders and the egress proxy's URL as `baseUrl`: the real credentials never reach the agent.
   */
  env(credentials: AgentCredentials): { secret: Record<string, string>; plain: Record<string, string> };
  /** A new parser for one run's output stream. */
  createParser(): AgentStreamParser;
}

/** Makes a {@link TokenUsage} from its parts (already normalised) and fills `total`. `reasoning` is part of `output`. */
export function makeTokenUsage(input: number, output: number, cacheRead: number, cacheWrite: number, reasoning = 0): TokenUsage {
  return { input, output, cacheRead, cacheWrite, reasoning, total: input + output + cacheRead + cacheWrite };
}

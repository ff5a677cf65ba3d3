/**
 * Parser for OpenAI Codex CLI's `exec --json` output.
 *
 * Format source: `codex exec --json …` (Codex CLI 0.169.0 and 0.171.0; types in openai/codex
 * `codex-rs/exec/src/exec_events.rs`, written by `event_processor_with_jsonl_output.rs`), one JSON object per line:
 * - `{"type":"thread.started","thread_id"}` once at the start (the thread id is the session id);
 * - `{"type":"turn.started"}`: Codex's "turn" is one user prompt, and `codex exec` runs exactly one;
 * - `{"type":"item.started"|"item.updated"|"item.completed","item":{"id","type",…}}`, items being
 *   `command_execution` {command, aggregated_output, exit_code, status},
 *   `file_change` {changes:[{path, kind}], status}, `mcp_tool_call` {server, tool, arguments, status},
 *   `web_search` {query}, `collab_tool_call` {tool, prompt},
 *   `todo_list` {items}, `agent_message` {text}, `reasoning` {text}, `plan` {text} and `error` {message} (a non-fatal
 *   warning, e.g. "Model metadata for `mock` not found");
 * - `{"type":"turn.completed","usage":{input_tokens, cached_input_tokens, cache_write_input_tokens, output_tokens,
 *   reasoning_output_tokens}}` or `{"type":"turn.failed","error":{"message"}}` at the end of the turn;
 * - `{"type":"error","message"}`: despite its documentation ("unrecoverable"), also written for retries that then
 *   succeed (0.169.0: "Reconnecting... 2/5 …" before a successful turn), so it does not by itself fail the run.
 *
 * Usage: `input_tokens` includes the cached tokens and `output_tokens` includes the reasoning tokens. The usage of
 * `turn.completed` is the thread's running total (Codex fills it from `total_token_usage`), not the turn's own.
 * No cost, model, CLI version, or turn limit (`codex exec` has no `--max-turns`) is reported.
 *
 * Real samples: tests use `codex-0.171.0-exec.jsonl`, `codex-0.171.0-exec-500.jsonl` and `codex-0.169.0-exec.jsonl`.
 */
import { makeTokenUsage, type AgentEvent, type AgentOutcome, type AgentStreamParser, type TokenUsage } from '../types.js';
import { asObject, num, oneLine, parseJsonLine, relativeToWorkspace, str, TEXT_EVENT_MAX_CHARS, TOOL_SUMMARY_MAX_CHARS, type JsonObject } from '../shared/json.js';

/** Item types that are actions the model asked for: each one means the model answered once more. */
const ACTION_ITEMS = new Set(['command_execution', 'file_change', 'mcp_tool_call', 'web_search', 'collab_tool_call']);

/**
 * Creates a parser for one run of `codex exec --json`.
 *
 * Events: `init` from `thread.started` (session id = thread id); `tool` the first time an action item is seen,
 * whether started, updated or completed, and when a `todo_list` starts (see {@link summarizeCodexTool}); `text` per
 * completed `agent_message` (whitespace collapsed, truncated to {@link TEXT_EVENT_MAX_CHARS}); `turn` each time the
 * turn count grows (tokens so far, which stay 0 until `turn.completed`) and at `turn.completed` (with its usage);
 * `result` at `turn.completed` (subtype `success`) and `turn.failed` (subtype `error`).
 *
 * Tokens (normalised): input = `input_tokens` − `cached_input_tokens`; cacheRead = `cached_input_tokens`;
 * cacheWrite = `cache_write_input_tokens` (0 when absent); output = `output_tokens` (reasoning included);
 * reasoning = `reasoning_output_tokens`. Taken from the last `turn.completed`: its usage is the thread's running
 * total, so summing several would count the earlier turns again (`codex exec` has one anyway).
 *
 * Turns: Codex does not report model calls, so turns = model answers as far as the stream shows them: one per
 * distinct action item (a command, a patch, an MCP call, a web search, a collab call: the model asked for it) plus
 * one per `turn.completed` (the final answer, which asks for nothing). Several actions requested in one answer
 * (parallel tool calls) count once each; a failed turn adds nothing for the answer that never came.
 *
 * Outcome: `fromResult` once `turn.completed` or `turn.failed` arrived; `isError` when the last of them was
 * `turn.failed`, with `resultText` = its error message (else the last top-level `error` message); on success
 * `resultText` = the last `agent_message`. Without either (stream cut): `fromResult: false`, `isError: false`, tokens
 * 0 (Codex reports none before the turn ends), turns and session id as seen, no result text. Cost is always undefined.
 *
 * Never throws: lines that are not JSON objects, unknown types and unexpected shapes are ignored. Work per line is
 * linear in its length.
 */
export function createCodexParser(): AgentStreamParser {
  let sessionId: string | undefined;
  const actionIds = new Set<string>();
  const listIds = new Set<string>();
  let actions = 0;
  let completedTurns = 0;
  let tokens = makeTokenUsage(0, 0, 0, 0, 0);
  let lastMessage: string | undefined;
  let lastError: string | undefined;
  let final: { isError: boolean; text: string | undefined } | undefined;

  const turns = (): number => actions + completedTurns;

  function onItem(obj: JsonObject): AgentEvent[] {
    const item = asObject(obj.item);
    if (!item) return [];
    const type = str(item.type);
    if (type === undefined) return [];
    const events: AgentEvent[] = [];
    const id = str(item.id) ?? '';
    if (ACTION_ITEMS.has(type)) {
      // An item without an id cannot be matched with its other events: counted each time (not expected).
      if (id === '' || !actionIds.has(id)) {
        if (id !== '') actionIds.add(id);
        actions += 1;
        events.push({ kind: 'turn', turn: turns(), tokens: { ...tokens } });
        events.push({ kind: 'tool', name: type, summary: summarizeCodexTool(type, item) });
      }
    } else if (type === 'todo_list' && obj.type === 'item.started' && !listIds.has(id)) {
      listIds.add(id);
      events.push({ kind: 'tool', name: type, summary: summarizeCodexTool(type, item) });
    } else if (type === 'agent_message' && obj.type === 'item.completed') {
      const text = str(item.text);
      if (text !== undefined) {
        lastMessage = text;
        const shown = oneLine(text, TEXT_EVENT_MAX_CHARS);
        if (shown !== '') events.push({ kind: 'text', text: shown });
      }
    }
    return events;
  }

  function onTurnCompleted(obj: JsonObject): AgentEvent[] {
    const usage = asObject(obj.usage);
    if (usage) tokens = codexUsage(usage);
    completedTurns += 1;
    final = { isError: false, text: lastMessage };
    return [
      { kind: 'turn', turn: turns(), tokens: { ...tokens } },
      { kind: 'result', subtype: 'success', isError: false },
    ];
  }

  function onTurnFailed(obj: JsonObject): AgentEvent[] {
    const message = str(asObject(obj.error)?.message);
    if (message !== undefined) lastError = message;
    final = { isError: true, text: message ?? lastError };
    return [{ kind: 'result', subtype: 'error', isError: true }];
  }

  return {
    push(line: string): AgentEvent[] {
      // The final answer is the result text: an agent_message line is parsed whole even when long.
      const obj = parseJsonLine(line, (bounded) => asObject(bounded.item)?.type === 'agent_message');
      if (!obj) return [];
      try {
        switch (obj.type) {
          case 'thread.started': {
            sessionId = str(obj.thread_id) ?? sessionId;
            return [{ kind: 'init', sessionId }];
          }
          case 'item.started':
          case 'item.updated':
          case 'item.completed':
            return onItem(obj);
          case 'turn.completed':
            return onTurnCompleted(obj);
          case 'turn.failed':
            return onTurnFailed(obj);
          case 'error': {
            lastError = str(obj.message) ?? lastError;
            return [];
          }
        }
      } catch {
        // Unexpected shapes must never stop the run; the line is ignored.
      }
      return [];
    },

    outcome(): AgentOutcome {
      const base = { sessionId, turns: turns(), tokens: { ...tokens } };
      if (!final) return { ...base, isError: false, fromResult: false };
      return {
        ...base,
        resultText: final.text,
        resultSubtype: final.isError ? 'error' : 'success',
        isError: final.isError,
        fromResult: true,
      };
    },
  };
}

/** A `turn.completed` usage object, normalised (see {@link createCodexParser}). */
function codexUsage(usage: JsonObject): TokenUsage {
  const input = num(usage.input_tokens);
  const cached = num(usage.cached_input_tokens);
  return makeTokenUsage(
    Math.max(0, input - cached),
    num(usage.output_tokens),
    cached,
    num(usage.cache_write_input_tokens),
    num(usage.reasoning_output_tokens),
  );
}

/**
 * A one-line summary of a Codex action for progress display, at most {@link TOOL_SUMMARY_MAX_CHARS} characters.
 * `name` is the item's `type`, `input` the item itself: `Shell: <command>` for `command_execution` (the
 * `/bin/bash -lc "…"` wrapper Codex adds is removed), `Patch: <first path> (+N more)` for `file_change`,
 * `<server>.<tool>: <first string argument>` for `mcp_tool_call`, `WebSearch: <query>`, `Agent: <tool>: <prompt>` for
 * `collab_tool_call`, `Plan: <first step>` for `todo_list`, else the name. Paths under `/workspace` are shown relative.
 */
export function summarizeCodexTool(name: string, input: unknown): string {
  const item = asObject(input) ?? {};
  let label = name;
  let detail: string | undefined;
  switch (name) {
    case 'command_execution':
      label = 'Shell';
      detail = mapString(item.command, unwrapShell);
      break;
    case 'file_change': {
      label = 'Patch';
      const changes = Array.isArray(item.changes) ? item.changes : [];
      const first = mapString(asObject(changes[0])?.path, relativeToWorkspace);
      if (first !== undefined) detail = changes.length > 1 ? `${first} (+${changes.length - 1} more)` : first;
      break;
    }
    case 'mcp_tool_call': {
      const server = str(item.server);
      const tool = str(item.tool);
      label = [server, tool].filter((s) => s !== undefined && s !== '').join('.') || name;
      detail = firstString(asObject(item.arguments));
      break;
    }
    case 'web_search':
      label = 'WebSearch';
      detail = str(item.query);
      break;
    case 'collab_tool_call': {
      label = 'Agent';
      const tool = str(item.tool);
      const prompt = str(item.prompt);
      detail = tool !== undefined && prompt !== undefined ? `${tool}: ${prompt}` : (tool ?? prompt);
      break;
    }
    case 'todo_list': {
      label = 'Plan';
      const items = Array.isArray(item.items) ? item.items : [];
      detail = str(asObject(items[0])?.text);
      break;
    }
  }
  if (detail === undefined || detail.trim() === '') return oneLine(label, TOOL_SUMMARY_MAX_CHARS);
  return oneLine(`${label}: ${detail}`, TOOL_SUMMARY_MAX_CHARS);
}

const SHELL_WRAPPER = /^(?:\/(?:usr\/)?bin\/)?(?:bash|sh|zsh) -l?c (["'])([\s\S]*)\1$/;

/** `/bin/bash -lc "cmd"` or `bash -lc 'cmd'` → `cmd` (shell quoting undone); anything else unchanged. */
function unwrapShell(command: string): string {
  const match = SHELL_WRAPPER.exec(command);
  if (!match) return command;
  const body = match[2]!;
  if (match[1] === "'") return body.includes("'") ? body.replace(/'"'"'|'\\''/g, "'") : body;
  // Inside double quotes only \\, \", \$ and \` are escapes.
  return body.replace(/\\([\\"$`])/g, '$1');
}

function mapString(value: unknown, fn: (s: string) => string): string | undefined {
  const s = str(value);
  return s === undefined ? undefined : fn(s);
}

/** The first string among an object's own values, if any (an MCP call's most telling argument, usually). */
function firstString(args: JsonObject | undefined): string | undefined {
  if (!args) return undefined;
  for (const value of Object.values(args)) {
    if (typeof value === 'string' && value.trim() !== '') return value;
  }
  return undefined;
}

/**
 * Parser for Qwen Code's headless output.
 *
 * Format source: `qwen … -o stream-json` (Qwen Code 0.24.4; the message types are `CLIMessage` in
 * `packages/cli/src/nonInteractive/types.ts` of QwenLM/qwen-code, written by `BaseJsonOutputAdapter`), one JSON object
 * per line, shaped like Claude Code's:
 * - `{"type":"system","subtype":"init","session_id","model","qwen_code_version",…}` once at the start (the docs call
 *   the subtype `session_start`; both are read);
 * - `{"type":"assistant","message":{"id","model","content":[…],"usage":{…}},"parent_tool_use_id"}`: Qwen Code puts one
 *   kind of content block in a message, so one model response (thinking, text, tool calls) becomes several messages,
 *   each with its own `id`; the response's usage is on the last of them (the others carry zeros);
 * - `{"type":"user",…}` tool results; `{"type":"stream_event",…}` partial messages and goal state (both ignored);
 * - `{"type":"result","subtype","is_error","num_turns","result","usage",…}` at the end; on error `result` is absent and
 *   `error: {message}` says why (e.g. `[API Error: 500 mock internal error]`, subtype `error_during_execution`).
 *
 * `usage.input_tokens` is the prompt size INCLUDING cache reads (`cache_read_input_tokens`); `output_tokens` is the
 * OpenAI-compatible `completion_tokens`, reasoning included; there is no cost. `-o json` prints the same messages as one
 * JSON array on one line, its success result adding Gemini-CLI-style `stats` (with `thoughts`); such a line is read as
 * its elements in order.
 *
 * Max turns: the result subtypes Qwen Code declares are `success`, `error_max_turns`, `error_during_execution` and
 * `error_max_structured_output_retries`; `error_max_turns` is read as `limitReached: 'max_turns'`. But when
 * `--max-session-turns` (setting `model.maxSessionTurns`) is exceeded, Qwen Code's source (`handleMaxTurnsExceededError`)
 * writes no result in stream-json mode: it prints "Reached max session turns for this session. …" on stderr and exits 53.
 *
 * Real samples: tests use `qwen-0.24.4.stream.jsonl`, `qwen-0.24.4.json` and `qwen-0.24.4-500.json`.
 */
import { makeTokenUsage, type AgentEvent, type AgentOutcome, type AgentStreamParser, type TokenUsage } from '../types.js';
import { asObject, finite, isDefined, LONG_LINE_CHARS, num, oneLine, parseBounded, parseJsonLine, relativeToWorkspace, str, TEXT_EVENT_MAX_CHARS, TOOL_SUMMARY_MAX_CHARS, type JsonObject } from '../shared/json.js';

/** Mutable token tally, normalised, in tokens. */
interface Tally {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
}

/**
 * Creates a parser for one run of `qwen … -o stream-json` (also reads the one-line array of `-o json`).
 *
 * A turn is one model response: a run of main-loop assistant messages (`parent_tool_use_id` null) not interrupted by a
 * `user` message (the tool results sent back as the next request).
 *
 * Events: `init` from the `system` init line; `turn` when a main-loop turn starts and again whenever an assistant
 * message brings usage later in a turn (Qwen Code puts a response's usage on its last message), tokens = all assistant
 * messages so far, each `message.id` once, normalised as in {@link qwenUsage}; `tool` per `tool_use` block; `text` per
 * non-empty `text` block (whitespace collapsed, truncated to {@link TEXT_EVENT_MAX_CHARS}); `result` from the `result`.
 *
 * Outcome from the last `result` (`fromResult: true`): tokens from its `usage` (reasoning from `stats.models.*.tokens.thoughts`
 * when present, i.e. in `-o json` output, else 0), turns = `num_turns`, `resultText` = `result`, or on error
 * `error.message`; no cost. Without one (stream cut): tokens summed from assistant messages, turns counted as above,
 * `fromResult: false`.
 *
 * Never throws: lines that are not JSON, unknown types and unexpected shapes are ignored. Work per line is linear in
 * its length; a line longer than {@link LONG_LINE_CHARS} is read with bounded strings (a `-o json` array's final answer
 * included; a stream-json `result` line is read whole).
 */
export function createQwenStreamParser(): AgentStreamParser {
  let version: string | undefined;
  let model: string | undefined;
  let sessionId: string | undefined;
  const seenMessageIds = new Set<string>();
  let turns = 0;
  let inTurn = false;
  const seen: Tally = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
  let result: AgentOutcome | undefined;

  function onSystem(obj: JsonObject): AgentEvent[] {
    if (obj.subtype !== 'init' && obj.subtype !== 'session_start') return [];
    sessionId = str(obj.session_id) ?? sessionId;
    model = str(obj.model) ?? model;
    version = str(obj.qwen_code_version) ?? version;
    return [{ kind: 'init', sessionId, model, version }];
  }

  function onAssistant(obj: JsonObject): AgentEvent[] {
    const message = asObject(obj.message);
    if (!message) return [];
    sessionId ??= str(obj.session_id);
    model ??= str(message.model);
    const events: AgentEvent[] = [];

    let announce = false;
    const isMainLoop = obj.parent_tool_use_id === null || obj.parent_tool_use_id === undefined;
    if (isMainLoop && !inTurn) {
      inTurn = true;
      turns += 1;
      announce = true;
    }
    const id = str(message.id);
    if (id === undefined || !seenMessageIds.has(id)) {
      if (id !== undefined) seenMessageIds.add(id);
      const u = qwenUsage(message.usage);
      if (u.total > 0) {
        seen.input += u.input;
        seen.output += u.output;
        seen.cacheRead += u.cacheRead;
        seen.cacheWrite += u.cacheWrite;
        if (turns > 0) announce = true;
      }
    }
    if (announce) events.push({ kind: 'turn', turn: turns, tokens: toUsage(seen) });

    const content = Array.isArray(message.content) ? message.content : [];
    for (const raw of content) {
      const block = asObject(raw);
      if (!block) continue;
      if (block.type === 'tool_use') {
        const name = str(block.name) ?? 'tool';
        events.push({ kind: 'tool', name, summary: summarizeQwenTool(name, block.input) });
      } else if (block.type === 'text') {
        const text = oneLine(str(block.text) ?? '', TEXT_EVENT_MAX_CHARS);
        if (text !== '') events.push({ kind: 'text', text });
      }
    }
    return events;
  }

  function onResult(obj: JsonObject): AgentEvent[] {
    sessionId = str(obj.session_id) ?? sessionId;
    const subtype = str(obj.subtype) ?? 'unknown';
    const isError = obj.is_error === true;
    let tokens: TokenUsage;
    if (asObject(obj.usage)) {
      const u = qwenUsage(obj.usage);
      const thoughts = Object.values(asObject(asObject(obj.stats)?.models) ?? {})
        .map((m) => num(asObject(asObject(m)?.tokens)?.thoughts))
        .reduce((a, b) => a + b, 0);
      tokens = makeTokenUsage(u.input, u.output, u.cacheRead, u.cacheWrite, Math.min(thoughts, u.output));
    } else {
      tokens = toUsage(seen);
    }
    const error = asObject(obj.error);
    const errorMessage = str(error?.message) ?? str(obj.error);
    result = {
      turns: finite(obj.num_turns) ?? turns,
      resultText: isError ? (errorMessage ?? str(obj.result)) : str(obj.result),
      resultSubtype: subtype,
      isError,
      limitReached: subtype === 'error_max_turns' ? 'max_turns' : undefined,
      tokens,
      fromResult: true,
    };
    return [{ kind: 'result', subtype, isError }];
  }

  function handle(obj: JsonObject): AgentEvent[] {
    try {
      switch (obj.type) {
        case 'system':
          return onSystem(obj);
        case 'assistant':
          return onAssistant(obj);
        case 'user':
          inTurn = false;
          return [];
        case 'result':
          return onResult(obj);
      }
    } catch {
      // Unexpected shapes must never stop the run; the message is ignored.
    }
    return [];
  }

  return {
    push(line: string): AgentEvent[] {
      // Tool results can be megabytes and only end a turn; partial messages are not needed: skip both unparsed.
      if (line.startsWith('{"type":"user"')) {
        inTurn = false;
        return [];
      }
      if (line.startsWith('{"type":"stream_event"')) return [];
      if (/^[ \t\r]*\[/.test(line.slice(0, 64))) return parseArray(line).flatMap(handle);
      const obj = parseJsonLine(line, (bounded) => bounded.type === 'result');
      return obj ? handle(obj) : [];
    },

    outcome(): AgentOutcome {
      const base = { version, model, sessionId };
      if (result) return { ...base, ...result, tokens: { ...result.tokens } };
      return { ...base, turns, isError: false, tokens: toUsage(seen), fromResult: false };
    },
  };
}

/** The objects of a line holding a JSON array (`-o json`), long strings cut when the line is long; [] when it is not one. */
function parseArray(line: string): JsonObject[] {
  try {
    const value: unknown = line.length > LONG_LINE_CHARS ? parseBounded(line) : JSON.parse(line);
    return Array.isArray(value) ? value.map(asObject).filter(isDefined) : [];
  } catch {
    return [];
  }
}

/**
 * A Qwen Code `usage` object, normalised: cacheRead = `cache_read_input_tokens`, cacheWrite =
 * `cache_creation_input_tokens` (declared, never set by 0.24.4), input = `input_tokens` − both (Qwen's input is the
 * whole prompt), never below 0; output = `output_tokens` (reasoning included; reasoning itself is not in `usage`).
 */
export function qwenUsage(usage: unknown): TokenUsage {
  const u = asObject(usage) ?? {};
  const cacheRead = num(u.cache_read_input_tokens);
  const cacheWrite = num(u.cache_creation_input_tokens);
  const input = Math.max(0, num(u.input_tokens) - cacheRead - cacheWrite);
  return makeTokenUsage(input, num(u.output_tokens), cacheRead, cacheWrite);
}

function toUsage(t: Tally): TokenUsage {
  return makeTokenUsage(t.input, t.output, t.cacheRead, t.cacheWrite);
}

/** Argument names shown for a tool call, in order of preference; the path-like ones are shown relative to /workspace. */
const DETAIL_KEYS = ['command', 'file_path', 'absolute_path', 'notebook_path', 'pattern', 'dir_path', 'path', 'paths', 'url', 'query', 'description', 'skill', 'prompt'];
const PATH_KEYS = new Set(['file_path', 'absolute_path', 'notebook_path', 'dir_path', 'path', 'paths']);

/**
 * A one-line summary of a Qwen Code tool call for progress display, at most {@link TOOL_SUMMARY_MAX_CHARS} characters:
 * `<tool>: <detail>`, the detail being the first of these arguments that is a non-empty string (or list of strings):
 * `command` (`run_shell_command`), `file_path` (`read_file`, `write_file`, `edit`), `absolute_path`, `notebook_path`
 * (`notebook_edit`), `pattern` (`glob`, `grep_search`), `dir_path` / `path` (`list_directory`), `paths`, `url`
 * (`web_fetch`), `query` (`web_search`), `description` (`agent`), `skill` (`skill`), `prompt`; else the tool name
 * alone. File contents and edit strings are never shown. Paths under /workspace are shown relative to it. `input` is
 * the `tool_use` block's `input`.
 */
export function summarizeQwenTool(name: string, input: unknown): string {
  const args = asObject(input) ?? {};
  for (const key of DETAIL_KEYS) {
    const value = args[key];
    const values = typeof value === 'string' ? [value] : Array.isArray(value) ? value.slice(0, 8).filter((v): v is string => typeof v === 'string') : [];
    const shown = values.map((v) => (PATH_KEYS.has(key) ? relativeToWorkspace(v) : v)).filter((v) => v.trim() !== '');
    if (shown.length > 0) return oneLine(`${name}: ${shown.join(' ')}`, TOOL_SUMMARY_MAX_CHARS);
  }
  return oneLine(name, TOOL_SUMMARY_MAX_CHARS);
}

/**
 * Parsers for Gemini CLI's headless output.
 *
 * Format source: `gemini -p … -o stream-json` (Gemini CLI 0.61.0; the event types are `JsonStreamEventType` in
 * `packages/core/src/output/types.ts` of google-gemini/gemini-cli), one JSON object per line:
 * - `{"type":"init","session_id","model"}` once at the start (no CLI version);
 * - `{"type":"message","role":"user","content"}` the task; `{"type":"message","role":"assistant","content","delta":true}`
 *   chunks of the model's text, streamed as they arrive (many per model response);
 * - `{"type":"tool_use","tool_name","tool_id","parameters"}` and `{"type":"tool_result","tool_id","status","output"?,"error"?}`;
 * - `{"type":"error","severity":"warning"|"error","message"}` non-fatal warnings;
 * - `{"type":"result","status":"success"|"error","error"?:{type,message},"stats":{…}}` at the end. `stats`
 *   (`StreamStats`, summed over models by `convertToStreamStats`) is `total_tokens`, `input_tokens` (= prompt tokens,
 *   cached included), `output_tokens` (= candidates only), `cached`, `input` (= prompt − cached), `duration_ms`,
 *   `tool_calls`, and in 0.61.0 the same per model under `models`. No per-response usage is streamed and no cost.
 *
 * When it gives up on an API error (e.g. a constant HTTP 500, exit 244 = 500 mod 256), `-o stream-json` ends with a
 * `result` whose `error.message` is `[API Error: <the API's error body>]` (seen with 0.61.0 in agent-worker's e2e
 * tests), while `-o json` writes nothing on stdout and a pretty-printed JSON error on stderr: see
 * {@link geminiErrorReason}. `gemini -o json` prints one pretty-printed document instead of lines: see
 * {@link parseGeminiJsonOutput}.
 *
 * Real samples: tests use `gemini-0.61.0.stream.jsonl`, `gemini-0.61.0.json` and `gemini-0.61.0-500.stderr-tail.json`.
 */
import { makeTokenUsage, type AgentEvent, type AgentOutcome, type AgentStreamParser, type TokenUsage } from '../types.js';
import { asObject, finite, isDefined, LONG_LINE_CHARS, num, oneLine, parseJsonLine, relativeToWorkspace, str, TEXT_EVENT_MAX_CHARS, TOOL_SUMMARY_MAX_CHARS, type JsonObject } from '../shared/json.js';

/** Longest final answer kept as `resultText`, in characters; a longer one is cut and ends with `…`. */
export const GEMINI_RESULT_TEXT_MAX_CHARS = LONG_LINE_CHARS;

/** Longest reason returned by {@link geminiErrorReason}, in characters. */
const REASON_MAX_CHARS = TEXT_EVENT_MAX_CHARS;

/**
 * Creates a parser for one run of `gemini -p … -o stream-json`.
 *
 * A turn is one model response: a run of assistant `message` and `tool_use` events that is not interrupted by a
 * `tool_result` or a user `message` (the CLI sends the tool results back as the next request). The stream carries no
 * usage until its `result`.
 *
 * Events: `init` from the `init` line; `turn` when a turn starts (tokens: all zero, since no usage has arrived yet) and
 * once more, with the same turn number, just before `result`, carrying the run's totals; `tool` per `tool_use`; `text`
 * per run of assistant text, emitted when the run ends (at a `tool_use`, `tool_result`, user `message` or `result`),
 * whitespace collapsed and truncated to {@link TEXT_EVENT_MAX_CHARS}; `result` from the `result` line (subtype = its
 * `status`).
 *
 * Outcome with a `result` line (`fromResult: true`): tokens from its `stats` (see {@link geminiStreamStatsUsage}); turns =
 * turns counted as above (the stream has no turn count); `resultText` = the assistant text after the last tool activity
 * on success, the error's message on error; no cost. Without one (stream cut): the turns seen, tokens all zero (the
 * stream says nothing about usage before its end), `fromResult: false`.
 *
 * Never throws: lines that are not JSON objects, unknown types and unexpected shapes are ignored. Work per line is
 * linear in its length, and memory bounded: lines longer than {@link LONG_LINE_CHARS} are read with bounded strings
 * (a delta that long contributes its first 8 KiB or so, then `…`), and the text kept is at most
 * {@link GEMINI_RESULT_TEXT_MAX_CHARS} characters.
 */
export function createGeminiStreamParser(): AgentStreamParser {
  let model: string | undefined;
  let sessionId: string | undefined;
  let turns = 0;
  let inTurn = false;
  /** Assistant text since the last flush, at most GEMINI_RESULT_TEXT_MAX_CHARS + 1 characters. */
  let pending = '';
  let lastError: string | undefined;
  let result: AgentOutcome | undefined;

  const endOfRun = (events: AgentEvent[]): void => {
    inTurn = false;
    flushText(events);
  };

  function flushText(events: AgentEvent[]): void {
    if (pending === '') return;
    const text = oneLine(pending, TEXT_EVENT_MAX_CHARS);
    if (text !== '') events.push({ kind: 'text', text });
    pending = '';
  }

  function startTurn(events: AgentEvent[]): void {
    if (inTurn) return;
    inTurn = true;
    turns += 1;
    events.push({ kind: 'turn', turn: turns, tokens: makeTokenUsage(0, 0, 0, 0) });
  }

  function onInit(obj: JsonObject): AgentEvent[] {
    sessionId = str(obj.session_id) ?? sessionId;
    model = str(obj.model) ?? model;
    return [{ kind: 'init', sessionId, model }];
  }

  function onMessage(obj: JsonObject): AgentEvent[] {
    const events: AgentEvent[] = [];
    if (obj.role !== 'assistant') {
      if (obj.role === 'user') endOfRun(events);
      return events;
    }
    const content = str(obj.content);
    if (content === undefined) return events;
    startTurn(events);
    if (pending.length <= GEMINI_RESULT_TEXT_MAX_CHARS) pending += content.slice(0, GEMINI_RESULT_TEXT_MAX_CHARS + 1 - pending.length);
    return events;
  }

  function onToolUse(obj: JsonObject): AgentEvent[] {
    const events: AgentEvent[] = [];
    startTurn(events);
    flushText(events);
    const name = str(obj.tool_name) ?? 'tool';
    events.push({ kind: 'tool', name, summary: summarizeGeminiTool(name, obj.parameters) });
    return events;
  }

  function onResult(obj: JsonObject): AgentEvent[] {
    const finalText = pending;
    const events: AgentEvent[] = [];
    endOfRun(events);
    const subtype = str(obj.status) ?? 'unknown';
    const isError = subtype !== 'success';
    const tokens = geminiStreamStatsUsage(obj.stats);
    let resultText: string | undefined;
    if (isError) {
      const error = asObject(obj.error);
      const message = str(error?.message) ?? str(obj.error) ?? lastError;
      resultText = message === undefined ? undefined : apiErrorMessage(message);
    } else if (finalText !== '') {
      resultText = finalText.length > GEMINI_RESULT_TEXT_MAX_CHARS ? `${finalText.slice(0, GEMINI_RESULT_TEXT_MAX_CHARS - 1)}…` : finalText;
    }
    result = { turns, resultText, resultSubtype: subtype, isError, tokens, fromResult: true };
    if (turns > 0) events.push({ kind: 'turn', turn: turns, tokens: { ...tokens } });
    events.push({ kind: 'result', subtype, isError });
    return events;
  }

  return {
    push(line: string): AgentEvent[] {
      // Tool results can be megabytes and only mark the end of a turn: skip them without parsing.
      if (line.startsWith('{"type":"tool_result"')) {
        const events: AgentEvent[] = [];
        endOfRun(events);
        return events;
      }
      const obj = parseJsonLine(line);
      if (!obj) return [];
      try {
        switch (obj.type) {
          case 'init':
            return onInit(obj);
          case 'message':
            return onMessage(obj);
          case 'tool_use':
            return onToolUse(obj);
          case 'tool_result': {
            const events: AgentEvent[] = [];
            endOfRun(events);
            return events;
          }
          case 'error':
            if (obj.severity === 'error') lastError = str(obj.message) ?? lastError;
            return [];
          case 'result':
            return onResult(obj);
        }
      } catch {
        // Unexpected shapes must never stop the run; the line is ignored.
      }
      return [];
    },

    outcome(): AgentOutcome {
      const base = { model, sessionId };
      if (result) return { ...base, ...result, tokens: { ...result.tokens } };
      return { ...base, turns, isError: false, tokens: makeTokenUsage(0, 0, 0, 0), fromResult: false };
    },
  };
}

/**
 * Normalised tokens of a stream-json `result.stats` (all models together): input = `input` (Gemini CLI's own
 * prompt − cached; else `input_tokens` − `cached`), cacheRead = `cached`, cacheWrite = 0 (Gemini does not report it),
 * output = `output_tokens` + thoughts, reasoning = thoughts. The stream's stats carry no `thoughts` field
 * (`convertToStreamStats` drops them, and `output_tokens` is the candidates count, which in the Gemini API excludes
 * thoughts), so thoughts are taken from a `thoughts` field when a later version adds one, else inferred as
 * `total_tokens` − `input_tokens` − `output_tokens` (the Gemini API's `totalTokenCount` is prompt + candidates +
 * thoughts + tool-use prompt), never below 0. With that, `total` equals the CLI's `total_tokens`. When the top-level
 * fields are missing, the per-model entries under `models` are summed instead.
 */
export function geminiStreamStatsUsage(stats: unknown): TokenUsage {
  const s = asObject(stats);
  if (!s) return makeTokenUsage(0, 0, 0, 0);
  const hasTop = ['input_tokens', 'output_tokens', 'cached', 'input', 'total_tokens'].some((key) => finite(s[key]) !== undefined);
  const parts = hasTop ? [s] : Object.values(asObject(s.models) ?? {}).map(asObject).filter(isDefined);
  let input = 0;
  let output = 0;
  let cached = 0;
  let thoughts = 0;
  for (const p of parts) {
    const prompt = num(p.input_tokens);
    const cachedHere = num(p.cached);
    const candidates = num(p.output_tokens);
    input += finite(p.input) ?? Math.max(0, prompt - cachedHere);
    cached += cachedHere;
    const total = finite(p.total_tokens);
    const thoughtsHere = finite(p.thoughts) ?? (total === undefined ? 0 : Math.max(0, total - prompt - candidates));
    output += candidates + thoughtsHere;
    thoughts += thoughtsHere;
  }
  return makeTokenUsage(input, output, cached, 0, thoughts);
}

/**
 * Reads the single JSON document `gemini -p … -o json` prints (Gemini CLI 0.61.0, `JsonOutput`:
 * `{session_id, response, stats: {models: {<model>: {api, tokens, roles}}, tools, files}, error?}`), or its error
 * document (`{session_id, error: {type, message, code}}`). Undefined when `text` is not a JSON object.
 *
 * Tokens, summed over `stats.models.<m>.tokens`: input = `input` (else `prompt` − `cached`), cacheRead = `cached`,
 * output = `candidates` + `thoughts` (the Gemini API's candidates count excludes thoughts), reasoning = `thoughts`;
 * `tool` (tool-use prompt tokens) is not counted. Turns = the main role's requests (`roles.main.totalRequests`, else
 * `api.totalRequests`) summed over models; model = the model with the most such requests. `resultText` = `response`,
 * or on error the API's own message (as {@link geminiErrorReason} reads it); `resultSubtype` = `success` or `error`.
 */
export function parseGeminiJsonOutput(text: string): AgentOutcome | undefined {
  let doc: JsonObject | undefined;
  try {
    doc = asObject(JSON.parse(text));
  } catch {
    return undefined;
  }
  if (!doc) return undefined;
  const models = asObject(asObject(doc.stats)?.models) ?? {};
  let input = 0;
  let output = 0;
  let cached = 0;
  let thoughts = 0;
  let turns = 0;
  let model: string | undefined;
  let modelRequests = -1;
  for (const [name, raw] of Object.entries(models)) {
    const m = asObject(raw);
    if (!m) continue;
    const t = asObject(m.tokens) ?? {};
    const cachedHere = num(t.cached);
    input += finite(t.input) ?? Math.max(0, num(t.prompt) - cachedHere);
    cached += cachedHere;
    output += num(t.candidates) + num(t.thoughts);
    thoughts += num(t.thoughts);
    const requests = finite(asObject(asObject(m.roles)?.main)?.totalRequests) ?? num(asObject(m.api)?.totalRequests);
    turns += requests;
    if (requests > modelRequests) {
      model = name;
      modelRequests = requests;
    }
  }
  const error = asObject(doc.error);
  const isError = error !== undefined;
  const message = str(error?.message);
  return {
    model,
    sessionId: str(doc.session_id),
    turns,
    resultText: isError ? (message === undefined ? undefined : apiErrorMessage(message)) : str(doc.response),
    resultSubtype: isError ? 'error' : 'success',
    isError,
    tokens: makeTokenUsage(input, output, cached, 0, thoughts),
    fromResult: true,
  };
}

/**
 * The agent's own reason for failing, from the last lines of Gemini CLI's stderr: when it gives up on an API error in
 * headless JSON modes it prints `{"session_id", "error": {"type", "message", "code"}}` there, pretty-printed over several
 * lines, where `message` is the API's error body (`{"error":{"message":"…","code":500,"status":"INTERNAL"}}`). Returns
 * the API's own message (`error.message` inside that body; the whole `message` when it is not such a body), on one line
 * and at most 200 characters. Undefined when the lines hold no such document. Other lines (retry notices, the
 * entrypoint's own) before or after it are skipped.
 */
export function geminiErrorReason(stderrTail: string[]): string | undefined {
  let end: number | undefined;
  let attempts = 0;
  for (let i = stderrTail.length - 1; i >= 0 && attempts < 8; i -= 1) {
    const line = (stderrTail[i] ?? '').trimEnd();
    let start: number | undefined;
    if (line.startsWith('{') && line.endsWith('}')) {
      start = i;
      end = i;
    } else if (line === '}') {
      end = i;
    } else if (line === '{' && end !== undefined) {
      start = i;
    }
    if (start === undefined || end === undefined) continue;
    attempts += 1;
    const reason = reasonOf(stderrTail.slice(start, end + 1).join('\n'));
    end = undefined;
    if (reason !== undefined) return reason;
  }
  return undefined;
}

function reasonOf(text: string): string | undefined {
  let doc: JsonObject | undefined;
  try {
    doc = asObject(JSON.parse(text));
  } catch {
    return undefined;
  }
  const error = asObject(doc?.error);
  const message = str(error?.message) ?? str(doc?.error);
  if (message === undefined) return undefined;
  const reason = oneLine(apiErrorMessage(message), REASON_MAX_CHARS);
  return reason === '' ? undefined : reason;
}

/**
 * The API's own message inside an error message that holds a JSON error body, `{"error":{"message":…}}` or
 * `[{"error":{…}}]`: at its end (`got status: 429 … [{…}]`) or inside it, as Gemini CLI's stream-json `result` puts
 * it (`[API Error: {"error":{…}}]`, possibly followed by a rate-limit hint); bodies nested in messages are unwrapped up
 * to three deep. Else `message` itself (`[API Error: 500 mock internal error]` stays as it is).
 */
function apiErrorMessage(message: string): string {
  let current = message;
  for (let depth = 0; depth < 3; depth += 1) {
    const inner = embeddedErrorMessage(current);
    if (inner === undefined || inner === current) break;
    current = inner;
  }
  return current;
}

/** Most `{` / `[` positions of a message tried as the start of its JSON error body. */
const JSON_START_TRIES = 4;

/**
 * The error message of the first JSON error body in `text`, tried at each of its first {@link JSON_START_TRIES} `{` or
 * `[`: the whole rest of the text, else the value up to the bracket that closes it. Undefined when none is found.
 */
function embeddedErrorMessage(text: string): string | undefined {
  const starts = /[[{]/g;
  for (let tries = 0; tries < JSON_START_TRIES; tries += 1) {
    const match = starts.exec(text);
    if (!match) return undefined;
    const at = match.index;
    const inner = errorMessageOf(text.slice(at)) ?? errorMessageOf(balancedJson(text, at));
    if (inner !== undefined) return inner;
  }
  return undefined;
}

/** `error.message` (or `message`) of the JSON object, or of the first element of the JSON array, `json` holds. */
function errorMessageOf(json: string | undefined): string | undefined {
  if (json === undefined) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(json);
  } catch {
    return undefined;
  }
  const first = Array.isArray(body) ? body[0] : body;
  return str(asObject(asObject(first)?.error)?.message) ?? str(asObject(first)?.message);
}

/** The text from the bracket at `at` to the one that closes it (brackets inside JSON strings skipped), if any. */
function balancedJson(text: string, at: number): string | undefined {
  let depth = 0;
  let inString = false;
  for (let i = at; i < text.length; i += 1) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i += 1;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === '{' || c === '[') {
      depth += 1;
    } else if (c === '}' || c === ']') {
      depth -= 1;
      if (depth === 0) return text.slice(at, i + 1);
    }
  }
  return undefined;
}

/** Argument names shown for a tool call, in order of preference; the path-like ones are shown relative to /workspace. */
const DETAIL_KEYS = ['command', 'file_path', 'absolute_path', 'notebook_path', 'pattern', 'dir_path', 'path', 'paths', 'url', 'query', 'description', 'objective', 'prompt', 'fact'];
const PATH_KEYS = new Set(['file_path', 'absolute_path', 'notebook_path', 'dir_path', 'path', 'paths']);

/**
 * A one-line summary of a Gemini CLI tool call for progress display, at most {@link TOOL_SUMMARY_MAX_CHARS} characters:
 * `<tool>: <detail>`, the detail being the first of these arguments that is a non-empty string (or list of strings):
 * `command` (`run_shell_command`), `file_path` (`read_file`, `write_file`, `replace`), `absolute_path` (older
 * `read_file`), `notebook_path`, `pattern` (`glob`, `search_file_content`, `grep_search`), `dir_path` / `path`
 * (`list_directory`), `paths` (`read_many_files`), `url`, `query` (`google_web_search`), `description`, `objective`
 * (subagents), `prompt` (`web_fetch`), `fact` (`save_memory`); else the tool name alone. File contents and edit strings
 * are never shown. Paths under /workspace are shown relative to it. `input` is the `tool_use` event's `parameters`.
 */
export function summarizeGeminiTool(name: string, input: unknown): string {
  const args = asObject(input) ?? {};
  for (const key of DETAIL_KEYS) {
    const value = args[key];
    const values = typeof value === 'string' ? [value] : Array.isArray(value) ? value.slice(0, 8).filter((v): v is string => typeof v === 'string') : [];
    const shown = values.map((v) => (PATH_KEYS.has(key) ? relativeToWorkspace(v) : v)).filter((v) => v.trim() !== '');
    if (shown.length > 0) return oneLine(`${name}: ${shown.join(' ')}`, TOOL_SUMMARY_MAX_CHARS);
  }
  return oneLine(name, TOOL_SUMMARY_MAX_CHARS);
}

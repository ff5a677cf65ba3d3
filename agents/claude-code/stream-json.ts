/**
 * Parser for Claude Code's stream-json output.
 *
 * Format source: `claude -p --output-format stream-json --verbose` (Claude Code 2.1.x), one JSON object per line:
 * - `{"type":"system","subtype":"init","session_id","model","claude_code_version",…}` once at the start;
 * - `{"type":"assistant","message":{"id","model","content":[…],"usage":{…}},"parent_tool_use_id",…}`, one line per
 *   content block: a message with several blocks arrives as several lines with the same `message.id` and the same
 *   (repeated) `usage`;
 * - `{"type":"user",…}` tool results (ignored here);
 * - `{"type":"result","subtype","is_error","num_turns","result","total_cost_usd","usage","modelUsage",…}` at the end.
 *   `usage` counts the main loop only; `modelUsage` sums every model call (subagents, helper models) and is preferred.
 *
 * Real samples: tests use `claude-2.1.330-success.stream.jsonl` and `claude-2.1.330-error_max_turns.stream.jsonl`.
 */
import { makeTokenUsage, type AgentEvent, type AgentOutcome, type AgentStreamParser, type TokenUsage } from '../types.js';

/** Longest tool summary shown, in characters (including the `Tool: ` prefix). */
export const TOOL_SUMMARY_MAX_CHARS = 60;
/** Longest text event, in characters. */
export const TEXT_EVENT_MAX_CHARS = 200;
/** Folder the repository is mounted at inside the container; paths under it are shown relative. */
export const CONTAINER_WORKSPACE = '/workspace';

/** A plain JSON object, as parsed from a line. */
type JsonObject = Record<string, unknown>;

/** Mutable token tally, in tokens. */
interface Tally {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
}

/**
 * Creates a parser for one run of `claude -p --output-format stream-json --verbose`.
 *
 * Events: `init` from the `system`/`init` line; `turn` each time a new assistant `message.id` appears (turn number =
 * main-loop messages so far, tokens = all assistant messages so far, each id counted once); `tool` per `tool_use` block;
 * `text` per non-empty `text` block (whitespace collapsed, truncated to {@link TEXT_EVENT_MAX_CHARS}); `result` from the
 * `result` line.
 *
 * Outcome: from the last `result` line when there was one (`fromResult: true`: tokens = sum of `modelUsage` over all
 * models, else `usage`; cost = `total_cost_usd`, else the sum of `modelUsage[*].costUSD`; turns = `num_turns`).
 * Without one (stream cut by a timeout or kill): tokens summed from assistant messages, each `message.id` once; turns =
 * distinct main-loop assistant message ids; cost undefined; `fromResult: false`. Note the assistant lines' `usage`
 * is written when the message starts, so `output` is an underestimate in that case.
 *
 * Never throws: lines that are not JSON objects, unknown types and unexpected shapes are ignored. Work per line is
 * linear in its length.
 */
export function createClaudeStreamParser(): AgentStreamParser {
  let version: string | undefined;
  let model: string | undefined;
  let sessionId: string | undefined;
  const seenMessageIds = new Set<string>();
  let mainLoopMessages = 0;
  const seen: Tally = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
  let result: AgentOutcome | undefined;

  function onInit(obj: JsonObject): AgentEvent[] {
    sessionId = str(obj.session_id) ?? sessionId;
    model = str(obj.model) ?? model;
    version = str(obj.claude_code_version) ?? version;
    return [{ kind: 'init', sessionId, model, version }];
  }

  function onAssistant(obj: JsonObject): AgentEvent[] {
    const message = asObject(obj.message);
    if (!message) return [];
    sessionId ??= str(obj.session_id);
    model ??= str(message.model);
    const events: AgentEvent[] = [];

    const id = str(message.id);
    if (id !== undefined && !seenMessageIds.has(id)) {
      seenMessageIds.add(id);
      addUsage(seen, asObject(message.usage));
      const isMainLoop = obj.parent_tool_use_id === null || obj.parent_tool_use_id === undefined;
      if (isMainLoop) {
        mainLoopMessages += 1;
        events.push({ kind: 'turn', turn: mainLoopMessages, tokens: toUsage(seen) });
      }
    }

    const content = Array.isArray(message.content) ? message.content : [];
    for (const raw of content) {
      const block = asObject(raw);
      if (!block) continue;
      if (block.type === 'tool_use') {
        const name = str(block.name) ?? 'tool';
        events.push({ kind: 'tool', name, summary: summarizeToolUse(name, block.input) });
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

    const modelUsage = asObject(obj.modelUsage);
    const perModel = modelUsage ? Object.values(modelUsage).map(asObject).filter(isDefined) : [];
    let tokens: TokenUsage;
    if (perModel.length > 0) {
      const t: Tally = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
      for (const m of perModel) {
        t.input += num(m.inputTokens);
        t.output += num(m.outputTokens);
        t.cacheRead += num(m.cacheReadInputTokens);
        t.cacheWrite += num(m.cacheCreationInputTokens);
      }
      tokens = toUsage(t);
    } else if (asObject(obj.usage)) {
      const t: Tally = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
      addUsage(t, asObject(obj.usage));
      tokens = toUsage(t);
    } else {
      tokens = toUsage(seen);
    }

    let costUsd: number | undefined = finite(obj.total_cost_usd);
    if (costUsd === undefined) {
      const costs = perModel.map((m) => finite(m.costUSD)).filter(isDefined);
      if (costs.length > 0) costUsd = costs.reduce((a, b) => a + b, 0);
    }

    result = {
      turns: finite(obj.num_turns) ?? mainLoopMessages,
      resultText: str(obj.result),
      resultSubtype: subtype,
      isError,
      limitReached: subtype === 'error_max_turns' ? 'max_turns' : subtype === 'error_max_budget_usd' ? 'max_budget' : undefined,
      tokens,
      costUsd,
      fromResult: true,
    };
    return [{ kind: 'result', subtype, isError }];
  }

  return {
    push(line: string): AgentEvent[] {
      // Tool results can be megabytes and are not needed: skip them without parsing.
      if (line.startsWith('{"type":"user"')) return [];
      const obj = parseObject(line);
      if (!obj) return [];
      try {
        if (obj.type === 'system' && obj.subtype === 'init') return onInit(obj);
        if (obj.type === 'assistant') return onAssistant(obj);
        if (obj.type === 'result') return onResult(obj);
      } catch {
        // Unexpected shapes must never stop the run; the line is ignored.
      }
      return [];
    },

    outcome(): AgentOutcome {
      const base = { version, model, sessionId };
      if (result) return { ...base, ...result, tokens: { ...result.tokens } };
      return {
        ...base,
        turns: mainLoopMessages,
        isError: false,
        tokens: toUsage(seen),
        fromResult: false,
      };
    },
  };
}

/**
 * A one-line summary of a Claude Code tool call for progress display, at most {@link TOOL_SUMMARY_MAX_CHARS}
 * characters: `Bash: <command>`, `Edit|MultiEdit|Write|Read: <path>`, `NotebookEdit: <path>`, `Grep|Glob: <pattern>`,
 * `WebFetch: <url>`, `WebSearch: <query>`, `Task: <description>`, else the tool name. Paths under
 * {@link CONTAINER_WORKSPACE} are shown relative to it. `input` is the `tool_use` block's `input` object.
 */
export function summarizeToolUse(name: string, input: unknown): string {
  const args = asObject(input) ?? {};
  let detail: string | undefined;
  switch (name) {
    case 'Bash':
      detail = str(args.command);
      break;
    case 'Edit':
    case 'MultiEdit':
    case 'Write':
    case 'Read':
      detail = mapDefined(str(args.file_path), relativeToWorkspace);
      break;
    case 'NotebookEdit':
      detail = mapDefined(str(args.notebook_path), relativeToWorkspace);
      break;
    case 'Grep':
    case 'Glob':
      detail = str(args.pattern);
      break;
    case 'WebFetch':
      detail = str(args.url);
      break;
    case 'WebSearch':
      detail = str(args.query);
      break;
    case 'Task':
      detail = str(args.description);
      break;
  }
  if (detail === undefined || detail.trim() === '') return oneLine(name, TOOL_SUMMARY_MAX_CHARS);
  return oneLine(`${name}: ${detail}`, TOOL_SUMMARY_MAX_CHARS);
}

/** `/workspace/src/a.ts` → `src/a.ts`, `/workspace` → `.`; other paths unchanged. */
function relativeToWorkspace(path: string): string {
  if (path === CONTAINER_WORKSPACE || path === `${CONTAINER_WORKSPACE}/`) return '.';
  if (path.startsWith(`${CONTAINER_WORKSPACE}/`)) return path.slice(CONTAINER_WORKSPACE.length + 1);
  return path;
}

/**
 * Collapses whitespace (newlines included) to single spaces, trims, and truncates to `max` characters with `…`.
 * Only a bounded prefix of `text` is examined, so huge inputs cost O(max).
 */
function oneLine(text: string, max: number): string {
  const head = text.length > max * 4 + 64 ? text.slice(0, max * 4 + 64) : text;
  const flat = head.replace(/\s+/g, ' ').trim();
  const cut = flat.length > max || head.length < text.length;
  if (!cut) return flat;
  return `${[...flat].slice(0, max - 1).join('').trimEnd()}…`;
}

/**
 * Lines longer than this, in characters, are first read with {@link parseBounded}, so that a megabyte of
 * assistant text is scanned, not copied; only a `result` line (whose `result` text is the run's answer)
 * is then parsed whole.
 */
export const LONG_LINE_CHARS = 64 * 1024;

function parseObject(line: string): JsonObject | undefined {
  // Cheap check before JSON.parse: stray text (warnings, progress) never starts with `{`.
  let i = 0;
  while (i < line.length && (line[i] === ' ' || line[i] === '\t' || line[i] === '\r')) i += 1;
  if (line[i] !== '{') return undefined;
  try {
    if (line.length > LONG_LINE_CHARS) {
      const bounded = asObject(parseBounded(line));
      if (bounded?.type !== 'result') return bounded;
    }
    return asObject(JSON.parse(line));
  } catch {
    return undefined;
  }
}

/** Strings whose JSON text is longer than this, in characters, are cut by {@link parseBounded}. */
const BOUNDED_STRING_CHARS = 8 * 1024;
const JSON_NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
/**
 * Valid JSON string text up to a quote or a `\u` escape: characters other than a quote, a backslash or a
 * control character, and one-character escapes; capped at 1,024 runs and escapes per match so that the
 * regular expression's backtracking stack stays small whatever the input.
 */
// eslint-disable-next-line no-control-regex -- JSON strings may not hold control characters.
const STRING_RUN = /(?:[^"\\\u0000-\u001f]+|\\["\\/bfnrt]){0,1024}/y;
const LEADING_SPACE = /\s*/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;
const EMPTY = /^/;

/**
 * JSON.parse for long lines that copies no long string: accepts exactly what JSON.parse accepts (throws
 * otherwise) and returns the same value, except that a string whose JSON text is longer than
 * {@link BOUNDED_STRING_CHARS} becomes its first characters (at least 1,364 of them), followed by `…` when
 * the rest holds anything but whitespace. So the string's first 1,364 characters, whether it is longer
 * than them, and whether it is all whitespace are kept: all that {@link oneLine} (≤ 864 characters) and
 * {@link summarizeToolUse} look at. Every string returned is a fresh copy, never a slice of `text`, and
 * nothing keeps `text` alive once this returns.
 * Nesting deep enough to exhaust the stack throws a RangeError.
 */
export function parseBounded(text: string): unknown {
  let i = 0;
  const fail = (): never => {
    throw new SyntaxError(`Unexpected JSON at position ${i}`);
  };
  const space = (): void => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      i += 1;
    }
  };
  const string = (): string => {
    const start = i;
    const bound = start + 1 + BOUNDED_STRING_CHARS;
    let cut = -1;
    i += 1;
    for (;;) {
      const from = i;
      STRING_RUN.lastIndex = i;
      STRING_RUN.test(text);
      i = STRING_RUN.lastIndex;
      if (cut === -1 && i >= bound) cut = escapeBoundary(from, bound);
      // A match is capped: more may follow.
      if (i > from) continue;
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      // Else a `\uXXXX` escape; anything else is a control character, a bad escape or the end of the text.
      if (c !== 0x5c || text.charCodeAt(i + 1) !== 0x75 || !HEX4.test(text.slice(i + 2, i + 6))) fail();
      if (cut === -1 && i + 6 > bound) cut = i;
      i += 6;
    }
    const end = i;
    i += 1;
    // JSON.parse of a slice makes a fresh string, which keeps no reference to `text`.
    if (cut === -1 || cut >= end) return JSON.parse(text.slice(start, i)) as string;
    const head = JSON.parse(`${text.slice(start, cut)}"`) as string;
    return hasText(cut, end) ? `${head}…` : head;
  };
  /**
   * `at`, or `at - 1` when that is the backslash of a one-character escape, in a run of plain characters
   * and such escapes starting at `from`: an odd number of backslashes before `at` ends in an escape's first half.
   */
  const escapeBoundary = (from: number, at: number): number => {
    let backslashes = 0;
    while (at - backslashes - 1 >= from && text.charCodeAt(at - backslashes - 1) === 0x5c) backslashes += 1;
    return backslashes % 2 === 1 ? at - 1 : at;
  };
  /** Whether the (validated) JSON string text in [from, to) decodes to anything but whitespace. */
  const hasText = (from: number, to: number): boolean => {
    let at = from;
    for (;;) {
      LEADING_SPACE.lastIndex = at;
      LEADING_SPACE.test(text);
      at = LEADING_SPACE.lastIndex;
      if (at >= to) return false;
      if (text.charCodeAt(at) !== 0x5c) return true;
      const unicode = text.charCodeAt(at + 1) === 0x75;
      const decoded = unicode ? parseInt(text.slice(at + 2, at + 6), 16) : SIMPLE_ESCAPES.get(text.charCodeAt(at + 1))!;
      if (!/\s/.test(String.fromCharCode(decoded))) return true;
      at += unicode ? 6 : 2;
    }
  };
  const value = (): unknown => {
    space();
    const c = text.charCodeAt(i);
    if (c === 0x22) return string();
    if (c === 0x7b) {
      i += 1;
      const obj: JsonObject = {};
      space();
      if (text.charCodeAt(i) === 0x7d) {
        i += 1;
        return obj;
      }
      for (;;) {
        space();
        if (text.charCodeAt(i) !== 0x22) fail();
        const key = string();
        space();
        if (text.charCodeAt(i) !== 0x3a) fail();
        i += 1;
        // As JSON.parse: `__proto__` is an own property, not the prototype.
        Object.defineProperty(obj, key, { value: value(), writable: true, enumerable: true, configurable: true });
        space();
        const next = text.charCodeAt(i);
        i += 1;
        if (next === 0x7d) return obj;
        if (next !== 0x2c) fail();
      }
    }
    if (c === 0x5b) {
      i += 1;
      const array: unknown[] = [];
      space();
      if (text.charCodeAt(i) === 0x5d) {
        i += 1;
        return array;
      }
      for (;;) {
        array.push(value());
        space();
        const next = text.charCodeAt(i);
        i += 1;
        if (next === 0x5d) return array;
        if (next !== 0x2c) fail();
      }
    }
    for (const [word, literal] of LITERALS) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return literal;
      }
    }
    JSON_NUMBER.lastIndex = i;
    if (!JSON_NUMBER.test(text) || JSON_NUMBER.lastIndex === i) fail();
    const number = Number(text.slice(i, JSON_NUMBER.lastIndex));
    i = JSON_NUMBER.lastIndex;
    return number;
  };
  try {
    const result = value();
    space();
    if (i !== text.length) fail();
    return result;
  } finally {
    // RegExp's legacy statics (`RegExp.input`, `RegExp.lastMatch`) hold the subject of the last successful
    // match: without a match on something else, `text` (megabytes) would stay alive until the next one.
    EMPTY.test('');
  }
}

/** JSON's one-character escapes (`\"` `\\` `\/` `\b` `\f` `\n` `\r` `\t`), by the character after the backslash. */
const SIMPLE_ESCAPES = new Map<number, number>([
  [0x22, 0x22],
  [0x5c, 0x5c],
  [0x2f, 0x2f],
  [0x62, 0x08],
  [0x66, 0x0c],
  [0x6e, 0x0a],
  [0x72, 0x0d],
  [0x74, 0x09],
]);
const LITERALS: Array<[string, unknown]> = [
  ['true', true],
  ['false', false],
  ['null', null],
];

function addUsage(t: Tally, usage: JsonObject | undefined): void {
  if (!usage) return;
  t.input += num(usage.input_tokens);
  t.output += num(usage.output_tokens);
  t.cacheRead += num(usage.cache_read_input_tokens);
  t.cacheWrite += num(usage.cache_creation_input_tokens);
}

function toUsage(t: Tally): TokenUsage {
  return makeTokenUsage(t.input, t.output, t.cacheRead, t.cacheWrite);
}

function asObject(value: unknown): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function finite(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function num(value: unknown): number {
  return finite(value) ?? 0;
}

function isDefined<T>(value: T | undefined): value is T {
  return value !== undefined;
}

function mapDefined<T, U>(value: T | undefined, fn: (v: T) => U): U | undefined {
  return value === undefined ? undefined : fn(value);
}

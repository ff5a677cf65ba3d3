/**
 * What every agent plugin's output parser shares: JSON Lines read with bounded memory (a megabyte-long line is
 * scanned, not copied), a bounded JSON parser, value readers that never throw, and the one-line summaries the
 * progress display shows.
 */

/** Longest tool summary shown, in characters (including the `Tool: ` prefix). */
export const TOOL_SUMMARY_MAX_CHARS = 60;
/** Longest text event, in characters. */
export const TEXT_EVENT_MAX_CHARS = 200;
/** Folder the repository is mounted at inside the container; paths under it are shown relative. */
export const CONTAINER_WORKSPACE = '/workspace';

/** A plain JSON object, as parsed from a line. */
export type JsonObject = Record<string, unknown>;

/** `/workspace/src/a.ts` → `src/a.ts`, `/workspace` → `.`; other paths unchanged. */
export function relativeToWorkspace(path: string): string {
  if (path === CONTAINER_WORKSPACE || path === `${CONTAINER_WORKSPACE}/`) return '.';
  if (path.startsWith(`${CONTAINER_WORKSPACE}/`)) return path.slice(CONTAINER_WORKSPACE.length + 1);
  return path;
}

/**
 * Collapses whitespace (newlines included) to single spaces, trims, and truncates to `max` characters with `…`.
 * Only a bounded prefix of `text` is examined, so huge inputs cost O(max).
 */
export function oneLine(text: string, max: number): string {
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

/**
 * One line of an agent's JSON Lines output as an object, or undefined when it is not one (agents mix in plain text:
 * warnings, progress). Lines longer than {@link LONG_LINE_CHARS} are read with {@link parseBounded} (long strings
 * cut), and parsed whole only when `keepWhole` says the bounded object needs its full strings (a final result whose
 * text is the run's answer).
 */
export function parseJsonLine(line: string, keepWhole: (bounded: JsonObject) => boolean = () => false): JsonObject | undefined {
  // Cheap check before JSON.parse: stray text (warnings, progress) never starts with `{`.
  let i = 0;
  while (i < line.length && (line[i] === ' ' || line[i] === '\t' || line[i] === '\r')) i += 1;
  if (line[i] !== '{') return undefined;
  try {
    if (line.length > LONG_LINE_CHARS) {
      const bounded = asObject(parseBounded(line));
      if (!bounded || !keepWhole(bounded)) return bounded;
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


export function asObject(value: unknown): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export function finite(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

export function num(value: unknown): number {
  return finite(value) ?? 0;
}

export function isDefined<T>(value: T | undefined): value is T {
  return value !== undefined;
}

export function mapDefined<T, U>(value: T | undefined, fn: (v: T) => U): U | undefined {
  return value === undefined ? undefined : fn(value);
}

/**
 * Parsers and checks of single values, for the settings table (settings.ts): each takes the raw string of one setting
 * and answers its value or its problems. A problem here never names the flag: the loader puts the flag before it.
 */
import { isIP } from 'node:net';
import { parse as parseShellWords } from 'shell-quote';
import type { PriceTable } from './types.js';

/** A parser's answer: the value, or what is wrong with the raw value (each a sentence, without the flag). */
export type Parsed<T> = { value: T } | { problems: string[] };

/** The answer of a raw value that is fine: `value`. */
export function ok<T>(value: T): Parsed<T> {
  return { value };
}

/** The answer of a raw value that is not: its problems. */
export function invalid(...problems: string[]): { problems: string[] } {
  return { problems };
}

/** Words a boolean variable may hold, lower case (after trimming); any other word is a problem. */
const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off', '']);

/**
 * A boolean from a word: 1/true/yes/on or 0/false/no/off (any case, around spaces), `variable` naming where it was
 * read for the problem (e.g. `FORCE_REBUILD="maybe" is not a boolean (use 1/0, true/false).`).
 */
export function parseBooleanWord(raw: string, variable: string | undefined): Parsed<boolean> {
  const word = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return ok(true);
  if (FALSE_WORDS.has(word)) return ok(false);
  return invalid(`${variable === undefined ? '' : `${variable}=`}${JSON.stringify(raw)} is not a boolean (use 1/0, true/false).`);
}

/**
 * Whether `DEBUG` turns agent-worker's debug logging on: a true word (1/true/yes/on, any case), a `debug` namespace
 * list naming agent-worker (`agent-worker:*`), or `*`. Anything else is off, never a problem.
 */
export function parseDebugWord(raw: string): Parsed<boolean> {
  return ok(TRUE_WORDS.has(raw.toLowerCase()) || raw.includes('agent-worker') || raw === '*');
}

/** Host names (or patterns) in a list separated by commas and/or white space; empty entries are dropped. */
export function splitList(value: string): string[] {
  return value.split(/[\s,]+/).filter(Boolean);
}

/** Bytes in a size like `512m`, `4g`, `1.5G`, `2048` (bytes); undefined when it is not one. */
export function parseSize(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(value.trim());
  if (!match) return undefined;
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(match[1]) * unit);
}

/** Words for the errno codes a file a flag names most often fails with. */
const FILE_ERROR_WORDS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a folder, not a file',
  ENOTDIR: 'a part of the path is not a folder',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the path is too long',
};

/**
 * The problem for a file that could not be read: `cannot read <file>: <reason> (<errno code>).`, e.g.
 * `cannot read /x.pem: no such file (ENOENT).` (the loader puts the flag before it).
 */
export function cannotRead(file: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const words = code === undefined ? String(error) : (FILE_ERROR_WORDS[code] ?? code);
  return `cannot read ${file}: ${words}${code !== undefined && FILE_ERROR_WORDS[code] ? ` (${code})` : ''}.`;
}

/**
 * The longest duration the tool accepts, in seconds: Node's timers hold at most 2^31 − 1 ms (about 24.8 days);
 * a longer one fires at once (TimeoutOverflowWarning), so it is refused instead.
 */
export const MAX_DURATION_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** A duration in whole seconds, from 1 to {@link MAX_DURATION_SECONDS}; the problem names the largest value allowed. */
export function parseDurationSeconds(raw: string): Parsed<number> {
  const seconds = parsePositiveInt(raw, 'seconds');
  if ('value' in seconds && seconds.value > MAX_DURATION_SECONDS) {
    return invalid(`${JSON.stringify(raw)} seconds is too long; the largest value allowed is ${MAX_DURATION_SECONDS} (about 24 days).`);
  }
  return seconds;
}

/** A whole number above 0 (around spaces), counting `unit` (for the problem: `… is not a positive whole number of turns.`). */
export function parsePositiveInt(raw: string, unit: string): Parsed<number> {
  const trimmed = raw.trim();
  if (!/^\d+$/.test(trimmed) || Number(trimmed) <= 0 || !Number.isSafeInteger(Number(trimmed))) {
    return invalid(`${JSON.stringify(raw)} is not a positive whole number of ${unit}.`);
  }
  return ok(Number(trimmed));
}

/** Returns why `value` is not a usable http(s) URL, or undefined when it is. */
export function checkHttpUrl(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL (expected e.g. https://api.anthropic.com).';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `has protocol ${url.protocol}; use http:// or https://.`;
  if (!url.hostname) return 'has no host name.';
  return undefined;
}

/**
 * Returns why `json` is not a Claude Code MCP configuration (`{"mcpServers": {name: {...}}}`, as in
 * Claude Code's `--mcp-config` and `.mcp.json`), or undefined when it is one.
 */
export function checkMcpConfig(json: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    return `is not JSON (${(error as Error).message}).`;
  }
  const servers = (parsed as { mcpServers?: unknown } | null)?.mcpServers;
  if (typeof servers !== 'object' || servers === null || Array.isArray(servers)) {
    return 'has no "mcpServers" object (expected {"mcpServers": {"name": {"command": …} or {"type": "http", "url": …}}}).';
  }
  return undefined;
}

/** Host names of the `url` of every remote (http/sse) server in an MCP configuration, for the firewall check. */
export function mcpUrlHosts(json: string): string[] {
  const servers = (JSON.parse(json) as { mcpServers: Record<string, { url?: unknown }> }).mcpServers;
  const hosts = new Set<string>();
  for (const server of Object.values(servers)) {
    if (typeof server?.url !== 'string') continue;
    try {
      hosts.add(new URL(server.url).hostname.replace(/^\[|\]$/g, ''));
    } catch {
      // not a URL: Claude Code reports it
    }
  }
  return [...hosts];
}

/** Returns why `value` is not a Docker daemon URL this tool accepts, or undefined when it is. */
export function checkDockerHost(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL (expected unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host).';
  }
  if (url.protocol === 'unix:') return url.pathname ? undefined : 'names no socket path.';
  if (url.protocol === 'tcp:' || url.protocol === 'ssh:' || url.protocol === 'http:' || url.protocol === 'https:') {
    return url.hostname ? undefined : 'names no host.';
  }
  return `has protocol ${url.protocol}; use unix://, tcp:// or ssh://.`;
}

/** True when `zone` is an IANA time zone this Node knows (e.g. `Europe/Berlin`, `UTC`). */
export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** True for an IP address or a DNS host name (labels of letters, digits, `-` and `_`; an optional final dot). */
export function isHostName(host: string): boolean {
  if (isIP(host)) return true;
  return host.length <= 253 && /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*\.?$/i.test(host);
}

/**
 * Reads a `--prices` file: JSON `{"<model>": {"input": 1.25, "output": 10, "cacheRead": 0.125, "cacheWrite": 0}}`,
 * US dollars per million tokens, each a number ≥ 0 (`cacheRead`/`cacheWrite` optional). Each problem goes to
 * `problem`; the table is undefined when there was any.
 */
export function parsePriceTable(text: string, problem: (text: string) => void): PriceTable | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    problem(`is not JSON (${error instanceof Error ? error.message : String(error)}).`);
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    problem('must be a JSON object of models, e.g. {"gpt-5": {"input": 1.25, "output": 10}}.');
    return undefined;
  }
  const table: PriceTable = {};
  let ok = true;
  for (const [model, value] of Object.entries(parsed as Record<string, unknown>)) {
    const entry = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    const price = (key: string, required: boolean): number | undefined => {
      const amount = entry?.[key];
      if (amount === undefined && !required) return undefined;
      if (typeof amount !== 'number' || !Number.isFinite(amount) || amount < 0) {
        problem(`${JSON.stringify(model)}.${key} must be a number of US dollars per million tokens, 0 or more.`);
        ok = false;
        return undefined;
      }
      return amount;
    };
    if (!entry) {
      problem(`${JSON.stringify(model)} must be an object with "input" and "output" prices.`);
      ok = false;
      continue;
    }
    const unknown = Object.keys(entry).filter((key) => !['input', 'output', 'cacheRead', 'cacheWrite'].includes(key));
    if (unknown.length > 0) {
      problem(`${JSON.stringify(model)} has unknown field(s) ${unknown.join(', ')} (known: input, output, cacheRead, cacheWrite).`);
      ok = false;
    }
    const input = price('input', true);
    const output = price('output', true);
    const cacheRead = price('cacheRead', false);
    const cacheWrite = price('cacheWrite', false);
    if (input !== undefined && output !== undefined) table[model] = { input, output, ...(cacheRead === undefined ? {} : { cacheRead }), ...(cacheWrite === undefined ? {} : { cacheWrite }) };
  }
  return ok ? table : undefined;
}

/**
 * Splits `--agent-command` into argv like a POSIX shell would (quotes, backslashes), without running a shell:
 * `$VAR` stays literal, and shell operators (`|`, `&&`, `>`, `;` …) and comments are refused, with the fix (a script,
 * or `bash -c '…'`). Each problem goes to `problem`; undefined when there was any.
 */
export function parseAgentCommand(text: string, problem: (text: string) => void): string[] | undefined {
  const parts = parseShellWords(text, (name) => `$${name}`);
  const argv: string[] = [];
  for (const part of parts) {
    if (typeof part === 'string') argv.push(part);
    else {
      problem(`${JSON.stringify(text)} holds shell syntax (${'op' in part ? part.op : 'comment' in part ? '#' : 'a pattern'}), which is not run by a shell; put it in a script, or use bash -c '…'.`);
      return undefined;
    }
  }
  if (argv.length === 0 || argv[0] === '') {
    problem('the command is empty.');
    return undefined;
  }
  if (argv.some((arg) => arg.includes('\0'))) {
    problem('the command contains a NUL byte.');
    return undefined;
  }
  return argv;
}

/**
 * Live progress on stderr: an ora spinner on a terminal, one plain line per finished phase otherwise,
 * and nothing with --json, --quiet or --debug (only notices and warnings).
 */
import { stripVTControlCharacters } from 'node:util';
import type { Ora } from 'ora';

/** What the pipeline reports while it works. */
export interface Progress {
  /** A new phase: "Checking the repository", "Building the image", … */
  phase(text: string): void;
  /**
   * Detail within the current phase ("step 4/9 · RUN apt-get install …", "turn 3 · Bash: npm test · 12,345 tokens");
   * the spinner shows it on one line, control characters and escape sequences replaced, cut to the terminal's width.
   */
  detail(text: string): void;
  /** The current phase finished well. */
  succeed(text?: string): void;
  /** The current phase failed. */
  fail(text?: string): void;
  /** Stops whatever is showing. */
  stop(): void;
  /** Prints a line that always shows (even without a TTY or with --json), above any spinner. */
  log(text: string): void;
}

/**
 * Progress without a spinner, for output that is not a terminal (a file, a pipe, CI logs): each phase
 * that ends is one plain line (`✓ Image … cached`, `✗ Building the image`), never an escape code.
 * `phases: false` prints only {@link Progress.log} lines.
 */
export function plainProgress(stream: NodeJS.WritableStream, options: { phases?: boolean } = {}): Progress {
  let phase = '';
  const line = (text: string): void => void stream.write(`${text}\n`);
  return {
    phase: (text) => void (phase = text),
    detail: () => undefined,
    succeed: (text) => {
      if (options.phases && (text ?? phase)) line(`✓ ${text ?? phase}`);
      phase = '';
    },
    fail: (text) => {
      if (options.phases && (text ?? phase)) line(`✗ ${text ?? phase}`);
      phase = '';
    },
    stop: () => undefined,
    log: line,
  };
}

/** Progress that shows nothing at all (tests). */
export const silentProgress: Progress = { ...plainProgress(process.stderr), log: () => undefined };

/** How progress shows: `spinner` (ora, on a terminal), `plain` (one line per finished phase), `off` (only log lines). */
export type ProgressMode = 'spinner' | 'plain' | 'off';

/** The progress mode for a stream: `off` when disabled, `spinner` on a terminal, else `plain`. */
export function progressMode(options: { enabled: boolean; stream: NodeJS.WriteStream }): ProgressMode {
  if (!options.enabled) return 'off';
  return options.stream.isTTY ? 'spinner' : 'plain';
}

/** How often the spinner's elapsed time is refreshed, in ms. */
const ELAPSED_REFRESH_MS = 1000;
/** Terminal width assumed when the stream does not say (ora's own default), in columns. */
const DEFAULT_COLUMNS = 80;
/**
 * Columns of the spinner line that are not its text: the spinner frame, the space after it, and the last
 * column, left empty because some terminals wrap as soon as it is written.
 */
const SPINNER_LINE_EXTRA_COLUMNS = 3;

/**
 * `text` as one line of printable characters: escape sequences (colours, cursor moves) removed, every
 * other control or format character (`\r`, `\n`, `\t`, bidi marks, …) and run of whitespace turned into one space.
 */
export function singleLine(text: string): string {
  return stripVTControlCharacters(text)
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\s]+/gu, ' ')
    .trim();
}

/**
 * Columns one character takes on a terminal, erring wide: 0 for combining marks, 2 for East Asian wide
 * and fullwidth characters and pictographs (emoji), 1 for the rest.
 */
function charColumns(char: string): number {
  if (/^\p{M}$/u.test(char)) return 0;
  if (/^[\u{1100}-\u{115F}\u{2E80}-\u{303E}\u{3041}-\u{33FF}\u{3400}-\u{4DBF}\u{4E00}-\u{9FFF}\u{A000}-\u{A4CF}\u{AC00}-\u{D7A3}\u{F900}-\u{FAFF}\u{FE30}-\u{FE4F}\u{FF00}-\u{FF60}\u{FFE0}-\u{FFE6}\u{1F000}-\u{1FAFF}\u{20000}-\u{3FFFD}\p{Extended_Pictographic}]$/u.test(char)) return 2;
  return 1;
}

/** `text` (one line, see {@link singleLine}) cut to at most `columns` terminal columns, ending in `…` when cut. */
export function fitColumns(text: string, columns: number): string {
  const chars = Array.from(text);
  if (chars.reduce((sum, char) => sum + charColumns(char), 0) <= columns) return text;
  if (columns < 1) return '';
  let kept = '';
  let used = 0;
  for (const char of chars) {
    const width = charColumns(char);
    // One column stays for the ellipsis.
    if (used + width > columns - 1) break;
    kept += char;
    used += width;
  }
  return `${kept}…`;
}

/**
 * Progress on `stream`: an ora spinner (`mode: 'spinner'`) showing the phase, the elapsed time and the
 * latest detail (build step, turn, current tool, tokens, cost) on one line that never wraps (cut to
 * `stream.columns`); {@link plainProgress} otherwise. Colours are off with
 * `color: false` (NO_COLOR). ora is imported lazily so `--version` and `--json` runs never load it.
 */
export async function createProgress(options: { mode: ProgressMode; stream: NodeJS.WriteStream; color?: boolean }): Promise<Progress> {
  if (options.mode !== 'spinner') return plainProgress(options.stream, { phases: options.mode === 'plain' });
  const { default: ora } = await import('ora');
  let spinner: Ora | undefined;
  let phase = '';
  let detail = '';
  let refresh: NodeJS.Timeout | undefined;
  const started = Date.now();
  const elapsed = (): string => {
    const seconds = Math.floor((Date.now() - started) / 1000);
    return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
  };
  // One line of printable characters that fits the terminal. ora clears as many lines as it counts in the
  // text it drew: a `\r` (no width to ora, a jump back to the line's start on the terminal) made it count
  // more lines than were shown and erase finished phase lines above the spinner; a tab, fewer.
  const render = (): void => {
    const columns = (options.stream.columns || DEFAULT_COLUMNS) - SPINNER_LINE_EXTRA_COLUMNS;
    if (spinner) spinner.text = fitColumns(`${singleLine(phase)} · ${elapsed()}${detail ? ` · ${detail}` : ''}`, columns);
  };
  const end = (): void => {
    clearInterval(refresh);
    refresh = undefined;
    spinner = undefined;
    detail = '';
  };
  return {
    phase(text) {
      spinner?.succeed(phase);
      end();
      phase = text;
      spinner = ora({ stream: options.stream, discardStdin: false, color: options.color === false ? false : 'cyan' });
      render();
      spinner.start();
      refresh = setInterval(render, ELAPSED_REFRESH_MS).unref();
    },
    detail(text) {
      detail = singleLine(text);
      render();
    },
    succeed(text) {
      spinner?.succeed(text ?? phase);
      end();
    },
    fail(text) {
      spinner?.fail(text ?? phase);
      end();
    },
    stop() {
      spinner?.stop();
      end();
    },
    log(text) {
      if (spinner) {
        spinner.clear();
        options.stream.write(`${text}\n`);
        spinner.render();
      } else {
        options.stream.write(`${text}\n`);
      }
    },
  };
}

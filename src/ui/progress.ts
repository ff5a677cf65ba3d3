/**
 * Live progress on stderr: an ora spinner on a terminal, one plain line per finished phase otherwise,
 * and nothing with --json, --quiet or --debug (only notices and warnings).
 */
import type { Ora } from 'ora';

/** What the pipeline reports while it works. */
export interface Progress {
  /** A new phase: "Checking the repository", "Building the image", … */
  phase(text: string): void;
  /** Detail within the current phase (build step, "turn 3 · Bash: npm test · 12,345 tokens"). */
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

/**
 * Progress on `stream`: an ora spinner (`mode: 'spinner'`) showing the phase, the elapsed time and the
 * latest detail (turn, current tool, tokens, cost); {@link plainProgress} otherwise. Colours are off with
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
  const render = (): void => {
    if (spinner) spinner.text = `${phase} · ${elapsed()}${detail ? ` · ${detail}` : ''}`;
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
      spinner = ora({ text, stream: options.stream, discardStdin: false, color: options.color === false ? false : 'cyan' }).start();
      render();
      refresh = setInterval(render, ELAPSED_REFRESH_MS).unref();
    },
    detail(text) {
      detail = text.length > 100 ? `${text.slice(0, 99)}…` : text;
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

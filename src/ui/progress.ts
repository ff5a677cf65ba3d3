/**
 * Live progress on stderr: an ora spinner on a TTY, nothing otherwise (and never with --json).
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

/** Progress that shows nothing but {@link Progress.log} lines, written to `stream`. */
export function plainProgress(stream: NodeJS.WritableStream): Progress {
  return {
    phase: () => undefined,
    detail: () => undefined,
    succeed: () => undefined,
    fail: () => undefined,
    stop: () => undefined,
    log: (text) => void stream.write(`${text}\n`),
  };
}

/** Progress that shows nothing at all (tests). */
export const silentProgress: Progress = { ...plainProgress(process.stderr), log: () => undefined };

/**
 * Progress on `stream` with ora when it is a TTY and `enabled`; otherwise {@link silentProgress}.
 * ora is imported lazily so `--version` and `--json` runs never load it.
 */
export async function createProgress(options: { enabled: boolean; stream: NodeJS.WriteStream }): Promise<Progress> {
  if (!options.enabled || !options.stream.isTTY) return plainProgress(options.stream);
  const { default: ora } = await import('ora');
  let spinner: Ora | undefined;
  let phase = '';
  const started = Date.now();
  const elapsed = (): string => {
    const seconds = Math.floor((Date.now() - started) / 1000);
    return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
  };
  return {
    phase(text) {
      spinner?.succeed();
      phase = text;
      spinner = ora({ text, stream: options.stream, discardStdin: false }).start();
    },
    detail(text) {
      if (spinner) spinner.text = `${phase} · ${elapsed()} · ${text.length > 100 ? `${text.slice(0, 99)}…` : text}`;
    },
    succeed(text) {
      spinner?.succeed(text ?? phase);
      spinner = undefined;
    },
    fail(text) {
      spinner?.fail(text ?? phase);
      spinner = undefined;
    },
    stop() {
      spinner?.stop();
      spinner = undefined;
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

/**
 * The spinner line on a terminal (issue #11, defect 6): it never wraps, whatever the detail holds (`\r`,
 * tabs, escape sequences, 300 characters), the build's current step shows on it, and the finished phase
 * lines above it stay on the screen. ora draws on a fake TTY that keeps a screen the way a terminal does.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { buildStepReader } from '../../src/docker/image.js';
import { createProgress, fitColumns, singleLine, type Progress } from '../../src/ui/progress.js';
import { Screen } from '../helpers/screen.js';

/** How long to let ora draw at least one more frame (its dots spinner redraws every 80 ms), in ms. */
const FRAME_MS = 100;

/**
 * A terminal `columns` wide, enough for ora: `write` puts text on a screen (auto-wrap at the last column,
 * `\n`, `\r`, tabs every 8 columns; escape sequences skipped), and `cursorTo`, `moveCursor`, `clearLine`
 * move and clear as a tty.WriteStream's do. `wraps` counts lines the terminal had to wrap.
 */
class FakeTerminal {
  readonly isTTY = true;
  readonly rows = 24;
  readonly writes: string[] = [];
  private readonly screen: Screen;

  constructor(readonly columns: number) {
    this.screen = new Screen(columns);
  }

  get wraps(): number {
    return this.screen.wraps;
  }

  write(chunk: string | Uint8Array, encoding?: unknown, callback?: unknown): boolean {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    this.writes.push(text);
    // eslint-disable-next-line no-control-regex
    for (const part of text.split(/(\u001B\[[0-9;?]*[ -/]*[@-~])/)) {
      if (part.startsWith('\u001B[')) continue;
      for (const char of part) this.screen.put(char);
    }
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') (done as () => void)();
    return true;
  }

  cursorTo(x: number): boolean {
    this.screen.col = x;
    return true;
  }

  moveCursor(dx: number, dy: number): boolean {
    this.screen.col = Math.max(0, this.screen.col + dx);
    this.screen.row = Math.max(0, this.screen.row + dy);
    return true;
  }

  clearLine(dir: -1 | 0 | 1): boolean {
    const line = this.screen.line();
    if (dir === 1) line.length = Math.min(line.length, this.screen.col);
    else if (dir === 0) line.length = 0;
    else for (let index = 0; index <= this.screen.col && index < line.length; index++) line[index] = ' ';
    return true;
  }

  on(): this {
    return this;
  }
  once(): this {
    return this;
  }
  removeListener(): this {
    return this;
  }

  /** The screen as text: one entry per line, trailing blanks and empty lines at the end dropped. */
  lines(): string[] {
    return this.screen.lines();
  }
}

async function spinnerOn(terminal: FakeTerminal): Promise<Progress> {
  return createProgress({ mode: 'spinner', stream: terminal as unknown as NodeJS.WriteStream, color: false });
}

/** What was drawn, escape sequences removed, as the lines each write held. */
function drawnLines(terminal: FakeTerminal): string[] {
  // eslint-disable-next-line no-control-regex
  return terminal.writes.flatMap((text) => text.replace(/\u001B\[[0-9;?]*[ -/]*[@-~]/g, '').split('\n'));
}

describe('the spinner line', () => {
  beforeEach(() => {
    // ora draws only on an interactive terminal: not with CI set, not with TERM=dumb.
    vi.stubEnv('CI', undefined);
    vi.stubEnv('TERM', 'xterm-256color');
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllEnvs();
  });

  it('never wraps: a detail with \\r, a tab, escape codes or 300 characters is one line within the columns', async () => {
    const terminal = new FakeTerminal(60);
    const progress = await spinnerOn(terminal);
    progress.phase('Building the image');
    for (const detail of [
      'Reading package lists... 50%\rReading package lists... Done',
      `${'x'.repeat(300)}`,
      'col1\tcol2\tcol3\tcol4\tcol5\tcol6\tcol7\tcol8',
      '\u001B[91mdebconf: delaying package configuration, since apt-utils is not installed\u001B[0m',
      'line one\nline two\r\n',
    ]) {
      progress.detail(detail);
      vi.advanceTimersByTime(FRAME_MS);
    }
    progress.succeed('Image agent-worker:0123456789abcdef built');
    expect(terminal.wraps).toBe(0);
    for (const line of drawnLines(terminal)) {
      expect(line).not.toMatch(/[\r\t]/);
      expect(line.length).toBeLessThanOrEqual(terminal.columns);
    }
    expect(terminal.lines()).toEqual(['✔ Image agent-worker:0123456789abcdef built']);
  });

  it("shows the build's current step and its latest output line, shortened to the terminal's width", async () => {
    for (const [columns, shown] of [
      [100, 'step 4/9 · RUN apt-get install -y --no-ins… · + apt-get update -qq'],
      [60, 'step 4/9 · RUN apt-get insta…'],
    ] as const) {
      const terminal = new FakeTerminal(columns);
      const progress = await spinnerOn(terminal);
      const readStep = buildStepReader();
      progress.phase('Building the image');
      progress.detail(readStep('Step 4/9 : RUN apt-get install -y --no-install-recommends git ca-certificates iptables')!);
      progress.detail(readStep('\u001B[91m+ apt-get update -qq')!);
      vi.advanceTimersByTime(FRAME_MS);
      const [line] = terminal.lines();
      expect(line).toMatch(/^\S Building the image · 0:00 · /);
      expect(line!.slice('⠋ Building the image · 0:00 · '.length)).toBe(shown);
      expect(line!.length).toBeLessThan(columns);
      progress.stop();
    }
  });

  it('keeps every finished phase line on the screen, also after a detail with \\r', async () => {
    const terminal = new FakeTerminal(60);
    const progress = await spinnerOn(terminal);
    progress.phase('Checking the repository');
    progress.phase('Connecting to Docker');
    progress.log('Docker daemon: unix:///var/run/docker.sock · engine 28.2.2');
    progress.succeed('Connected to Docker · workspace: mount');
    progress.phase('Building the image');
    // Wider than the line as ora counts it (every character), narrower as the terminal shows it (`\r` goes back).
    progress.detail(`${'a'.repeat(20)}\r${'b'.repeat(20)}`);
    vi.advanceTimersByTime(FRAME_MS);
    progress.detail('\t\t\t\t\t\t');
    vi.advanceTimersByTime(FRAME_MS);
    progress.succeed('Image agent-worker:0123456789abcdef built');
    progress.phase('Starting the container');
    progress.phase('Agent running');
    progress.detail(`turn 3 · Bash: ${'npm test '.repeat(20)}\r · 12,345 tokens`);
    vi.advanceTimersByTime(FRAME_MS);
    progress.succeed('Agent exited 0');
    expect(terminal.lines()).toEqual([
      '✔ Checking the repository',
      'Docker daemon: unix:///var/run/docker.sock · engine 28.2.2',
      '✔ Connected to Docker · workspace: mount',
      '✔ Image agent-worker:0123456789abcdef built',
      '✔ Starting the container',
      '✔ Agent exited 0',
    ]);
  });
});

describe('singleLine and fitColumns', () => {
  it('turn control characters and escape sequences into single spaces', () => {
    expect(singleLine('\u001B[91ma\r\nb\tc\u0000d\u202Ee  \u001B[0m')).toBe('a b c d e');
  });

  it('cut at the columns with an ellipsis, counting wide characters as two', () => {
    expect(fitColumns('abcdef', 6)).toBe('abcdef');
    expect(fitColumns('abcdefg', 6)).toBe('abcde…');
    expect(fitColumns('日本語のテキスト', 6)).toBe('日本…');
    expect(fitColumns('abc', 0)).toBe('');
  });
});

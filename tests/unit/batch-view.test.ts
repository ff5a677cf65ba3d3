/**
 * The batch's view on stderr (src/ui/batch-view.ts): plain lines for a pipe, a block redrawn in place on a terminal.
 * A fake terminal keeps a screen the way a terminal does (cursor up, erase, wraps at the last column) so the tests
 * assert what a person would see, and a fake clock drives elapsed times and the redraw throttle.
 */
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BatchEvent, TaskProgress, TaskRef, TaskResult } from '../../src/batch/types.js';
import { makeRunReport } from '../helpers/reports.js';
import { Screen } from '../helpers/screen.js';
import type { RunReport, RunStatus } from '../../src/report/types.js';
import { createBatchView, formatElapsed, MIN_REDRAW_INTERVAL_MS, type BatchView } from '../../src/ui/batch-view.js';

const ESC = '\u001B';

/**
 * A stream that collects what is written and, when `isTTY`, keeps a screen: `\n`, `\r`, printable characters (wrapping
 * at `columns`, counted in `wraps`), and the CSI sequences the view uses (`A` cursor up, `J` erase below, `K` erase
 * line, `?25l`/`?25h` cursor hidden/shown). Any other escape sequence is recorded in `unknownEscapes`.
 */
class FakeTerminal extends Writable {
  output = '';
  writes = 0;
  cursorVisible = true;
  /** Colour sequences seen. */
  sgr = 0;
  unknownEscapes: string[] = [];
  private readonly screen: Screen;

  constructor(
    readonly isTTY: boolean,
    readonly columns = 80,
    readonly rows?: number,
  ) {
    super({ decodeStrings: false });
    this.screen = new Screen(columns);
  }

  get wraps(): number {
    return this.screen.wraps;
  }

  override _write(chunk: string | Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.take(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
    callback();
  }

  /** Writes synchronously (a Writable's `write` may buffer; the view writes whole frames, so each is taken at once). */
  override write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    this.take(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') (done as () => void)();
    return true;
  }

  /** The screen's lines, trailing spaces and trailing empty lines removed. */
  lines(): string[] {
    return this.screen.lines();
  }

  private take(text: string): void {
    this.output += text;
    this.writes += 1;
    // eslint-disable-next-line no-control-regex
    for (const part of text.split(/(\u001B\[[0-9;?]*[ -/]*[@-~])/)) {
      if (part.startsWith(`${ESC}[`)) this.csi(part);
      else for (const char of part) this.screen.put(char);
    }
  }

  private csi(sequence: string): void {
    // eslint-disable-next-line no-control-regex
    const match = /^\u001B\[(\??)(\d*)([A-Za-z])$/.exec(sequence);
    const [, private_, number, final] = match ?? [];
    const n = number ? Number(number) : 0;
    if (private_ === '?' && n === 25 && final === 'l') this.cursorVisible = false;
    else if (private_ === '?' && n === 25 && final === 'h') this.cursorVisible = true;
    else if (final === 'A') this.screen.row = Math.max(0, this.screen.row - Math.max(1, n));
    else if (final === 'J' && n === 0) this.screen.eraseBelow();
    else if (final === 'K' && n === 2) this.screen.line().length = 0;
    else if (final === 'm') this.sgr += 1;
    else this.unknownEscapes.push(sequence);
  }
}

function task(index: number, overrides: Partial<TaskRef> = {}): TaskRef {
  return { index, line: index * 3 + 1, project: '/home/me/src/api-server', branch: `feat/task-${index + 1}`, agentType: 'codex', ...overrides };
}

function runReport(overrides: Partial<RunReport> = {}): RunReport {
  return makeRunReport({ runId: 'run-1', logDir: '/tmp/run-1', ...overrides });
}

function finished(ref: TaskRef, status: RunStatus | 'not_run', report: Partial<RunReport> | null = {}, result: Partial<TaskResult> = {}): BatchEvent {
  const run = report === null ? null : runReport({ status: status as RunStatus, branch: ref.branch, ...report });
  return {
    type: 'task-finished',
    task: ref,
    result: {
      task: ref,
      status,
      runId: run?.runId ?? null,
      attempts: 1,
      startedAt: '2026-11-30T10:00:00.000Z',
      endedAt: '2026-11-30T10:00:41.234Z',
      error: null,
      resumed: false,
      ...result,
    },
    report: run,
  };
}

function progress(ref: TaskRef, fields: Partial<TaskProgress>): BatchEvent {
  return { type: 'task-progress', task: ref, progress: { phase: 'Agent running', turn: 0, tool: '', tokens: 0, costUsd: null, ...fields } };
}

const started = (tasks: TaskRef[]): BatchEvent => ({ type: 'batch-started', batchId: 'batch-1', logDir: '/tmp/batch-1', tasks, parallel: 2 });
const taskStarted = (ref: TaskRef, attempt = 1): BatchEvent => ({ type: 'task-started', task: ref, attempt, atMs: 0 });

/** A clock the test moves; with fake timers on, it moves the timers too. */
function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
      vi.advanceTimersByTime(ms);
    },
  };
}

describe('formatElapsed', () => {
  it.each([
    [0, '0s'],
    [999, '0s'],
    [42_900, '42s'],
    [65_000, '1m05s'],
    [3_723_000, '1h02m03s'],
    [-5, '0s'],
  ])('%d ms → %s', (ms, text) => expect(formatElapsed(ms)).toBe(text));
});

describe('the batch view, not live (a pipe, a file, CI)', () => {
  it('prints one plain line per finished task, retry and notice, with its figures, and never an escape code', () => {
    const out = new FakeTerminal(false);
    const view = createBatchView({ stream: out, color: true, live: false, now: () => 0 });
    const tasks = [task(0), task(1, { project: '/repos/web', agentType: 'claude' }), task(2, { branch: 'feat/x' })];
    view.handle(started(tasks));
    view.handle(taskStarted(tasks[0]!));
    view.handle(taskStarted(tasks[1]!));
    view.handle(progress(tasks[0]!, { turn: 3, tool: 'Bash: npm test', tokens: 5_000, costUsd: 0.01 }));
    // run-batch emits the attempt to come (2); the line names the one that failed (1).
    view.handle({ type: 'task-retry', task: tasks[1]!, attempt: 2, error: { message: 'Docker daemon unreachable', hint: null, exitCode: 5, infrastructure: true }, delayMs: 5_000 });
    view.handle({ type: 'notice', task: null, text: 'Image agent-worker:abc built', kind: 'info' });
    view.handle(taskStarted(tasks[2]!));
    view.handle(finished(tasks[2]!, 'success'));
    view.handle(finished(tasks[0]!, 'agent_error', { costUsd: null, tokens: null, durationMs: 5_000, changes: { filesChanged: 0, linesAdded: 0, linesRemoved: 0, files: [] }, agent: { ...runReport().agent, error: 'rate limited' } }));
    view.handle({ type: 'notice', task: tasks[1]!, text: 'base main is 3 commits behind', kind: 'warning' });
    view.handle(finished(tasks[1]!, 'not_run', null, { attempts: 2, error: { message: 'image build failed: exit 1', hint: null, exitCode: 4, infrastructure: true } }));
    view.stop();

    expect(out.output).not.toContain(ESC);
    expect(out.output.split('\n')).toEqual([
      '↻ web feat/task-2 claude attempt 1 failed: Docker daemon unreachable · retrying in 5.0 s',
      'Image agent-worker:abc built',
      '✓ 1/3 api-server feat/x codex success · $0.0123 · 12,345 tokens · +10 −2 · 41.2 s',
      '✗ 2/3 api-server feat/task-1 codex agent error: rate limited · +0 −0 · 5.0 s',
      'warning: web feat/task-2: base main is 3 commits behind',
      '✗ 3/3 web feat/task-2 claude not run: image build failed: exit 1 · 2 attempts',
      '',
    ]);
  });

  it('prints nothing for progress, nor a block, nor timers', () => {
    vi.useFakeTimers();
    try {
      const out = new FakeTerminal(false);
      const view = createBatchView({ stream: out, color: false, live: false, now: () => 0 });
      view.handle(started([task(0)]));
      view.handle(taskStarted(task(0)));
      view.handle(progress(task(0), { turn: 1, tokens: 10 }));
      vi.advanceTimersByTime(5_000);
      view.stop();
      expect(out.output).toBe('');
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps hostile names and messages on one line each: escape sequences and newlines are replaced', () => {
    const out = new FakeTerminal(false);
    const view = createBatchView({ stream: out, color: false, live: false });
    const evil = task(0, { branch: `feat/${ESC}[2J${ESC}[31mred\nsecond line`, agentType: `codex\r${ESC}]0;title\u0007` });
    view.handle(started([evil]));
    view.handle({ type: 'notice', task: evil, text: `one\ntwo\r\nthree ${ESC}[1A`, kind: 'info' });
    view.handle(finished(evil, 'not_run', null, { error: { message: `boom\n${ESC}[2Kgone`, hint: null, exitCode: 1, infrastructure: false } }));
    expect(out.output).not.toContain(ESC);
    expect(out.output).not.toContain('\r');
    const lines = out.output.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe('api-server feat/red second line: one two three');
    expect(lines[1]).toBe('✗ 1/1 api-server feat/red second line codex not run: boom gone');
  });
});

describe('the batch view, live (a terminal)', () => {
  let view: BatchView | undefined;
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => {
    view?.stop();
    view = undefined;
    vi.useRealTimers();
  });

  it('draws a line per running task and the counters, redraws in place, and keeps finished lines above the block', () => {
    const term = new FakeTerminal(true, 100);
    const time = clock();
    view = createBatchView({ stream: term, color: false, live: true, now: time.now });
    const tasks = [task(0), task(1, { project: '/repos/web', agentType: 'claude' }), task(2), task(3)];
    view.handle(started(tasks));
    view.handle(taskStarted(tasks[0]!));
    view.handle(taskStarted(tasks[1]!));
    time.advance(65_000);
    view.handle(progress(tasks[0]!, { turn: 3, tool: 'Bash: npm test', tokens: 12_345, costUsd: 0.4 }));
    view.handle(progress(tasks[1]!, { phase: 'Building the image' }));
    time.advance(MIN_REDRAW_INTERVAL_MS);

    expect(term.cursorVisible).toBe(false);
    expect(term.lines()).toEqual([
      '▸ api-server feat/task-1 codex · turn 3 · Bash: npm test · 12,345 tokens · 1m05s',
      '▸ web feat/task-2 claude · Building the image · 1m05s',
      'done 0 · failed 0 · running 2 · queued 2 · $0.4000 so far',
    ]);
    expect(term.output).toContain(`${ESC}[3A`);

    view.handle(finished(tasks[0]!, 'success', { costUsd: 0.021 }));
    view.handle(progress(tasks[1]!, { turn: 1, tool: '', tokens: 900, costUsd: 0.0001 }));
    time.advance(MIN_REDRAW_INTERVAL_MS);
    view.handle({ type: 'notice', task: null, text: 'Image agent-worker:abc built', kind: 'info' });
    view.handle(taskStarted(tasks[2]!));
    time.advance(MIN_REDRAW_INTERVAL_MS);
    expect(term.lines()).toEqual([
      '✓ 1/4 api-server feat/task-1 codex success · $0.0210 · 12,345 tokens · +10 −2 · 41.2 s',
      'Image agent-worker:abc built',
      '▸ web feat/task-2 claude · turn 1 · 900 tokens · 1m05s',
      '▸ api-server feat/task-3 codex · starting · 0s',
      'done 1 · failed 0 · running 2 · queued 1 · $0.0211 so far',
    ]);

    view.stop();
    expect(term.lines()).toEqual(['✓ 1/4 api-server feat/task-1 codex success · $0.0210 · 12,345 tokens · +10 −2 · 41.2 s', 'Image agent-worker:abc built']);
    expect(term.cursorVisible).toBe(true);
    expect(term.wraps).toBe(0);
    expect(term.unknownEscapes).toEqual([]);
  });

  it('redraws at most every 100 ms on events, and every second for the elapsed times', () => {
    const term = new FakeTerminal(true, 100);
    const time = clock();
    view = createBatchView({ stream: term, color: false, live: true, now: time.now });
    view.handle(started([task(0)]));
    view.handle(taskStarted(task(0)));
    const afterStart = term.writes;
    for (let turn = 1; turn <= 20; turn++) view.handle(progress(task(0), { turn, tokens: turn * 100 }));
    expect(term.writes).toBe(afterStart);
    time.advance(MIN_REDRAW_INTERVAL_MS);
    expect(term.writes).toBe(afterStart + 1);
    expect(term.lines()[0]).toBe('▸ api-server feat/task-1 codex · turn 20 · 2,000 tokens · 0s');

    time.advance(64_900);
    expect(term.lines()[0]).toBe('▸ api-server feat/task-1 codex · turn 20 · 2,000 tokens · 1m05s');
    // One redraw a second with nothing happening, not more.
    const before = term.writes;
    time.advance(10_000);
    expect(term.writes - before).toBe(10);
  });

  it('cuts every line to the terminal width, so nothing wraps and the redraw stays in place', () => {
    const term = new FakeTerminal(true, 40);
    const time = clock();
    view = createBatchView({ stream: term, color: true, live: true, now: time.now });
    const long = task(0, { branch: `feat/${'very-long-branch-name-'.repeat(5)}` });
    view.handle(started([long, task(1)]));
    view.handle(taskStarted(long));
    view.handle(taskStarted(task(1)));
    for (let turn = 1; turn <= 5; turn++) {
      view.handle(progress(long, { turn, tool: `Edit: ${'src/deeply/nested/file.ts '.repeat(4)}`, tokens: 1_000_000 * turn, costUsd: 12.5 }));
      time.advance(MIN_REDRAW_INTERVAL_MS);
    }
    const lines = term.lines();
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(Array.from(line).length).toBeLessThan(40);
    expect(lines[0]).toMatch(/^▸ api-server feat\/very-long-branch-nam.*…$/);
    expect(term.wraps).toBe(0);
    expect(term.sgr).toBeGreaterThan(0);
    expect(term.unknownEscapes).toEqual([]);

    // A finished line is permanent: it wraps rather than lose its figures, and the block below it still redraws in place.
    view.handle(finished(long, 'success'));
    view.handle(progress(task(1), { turn: 1, tokens: 5 }));
    time.advance(MIN_REDRAW_INTERVAL_MS);
    const after = term.lines();
    expect(after.slice(-2)).toEqual(['▸ api-server feat/task-2 codex · turn …', 'done 1 · failed 0 · running 1 · queued…']);
    expect(after.slice(0, -2).join('')).toMatch(/^✓ 1\/2 api-server feat\/very-long-branch-name-.*success · \$0\.0123 · 12,345 tokens · \+10 −2 · 41\.2 s$/);
  });

  it('keeps the layout whatever branch, tool or phase hold: escape sequences and newlines cannot move the cursor', () => {
    const term = new FakeTerminal(true, 120);
    const time = clock();
    view = createBatchView({ stream: term, color: false, live: true, now: time.now });
    const evil = task(0, { branch: `x${ESC}[5A${ESC}[2J\n\nrm -rf` });
    view.handle(started([evil, task(1)]));
    view.handle(taskStarted(evil));
    view.handle(taskStarted(task(1)));
    view.handle(progress(evil, { turn: 2, tool: `Bash: ${ESC}[?25h${ESC}[1A\r\nls\u2028done`, tokens: 7 }));
    view.handle(progress(task(1), { phase: `Building\n${ESC}[31mthe image\r` }));
    time.advance(MIN_REDRAW_INTERVAL_MS);
    view.handle({ type: 'notice', task: evil, text: `line\nnext${ESC}[2K`, kind: 'warning' });
    time.advance(MIN_REDRAW_INTERVAL_MS);
    expect(term.lines()).toEqual([
      'warning: api-server x rm -rf: line next',
      '▸ api-server x rm -rf codex · turn 2 · Bash: ls done · 7 tokens · 0s',
      '▸ api-server feat/task-2 codex · Building the image · 0s',
      'done 0 · failed 0 · running 2 · queued 0 · $0.0000 so far',
    ]);
    expect(term.cursorVisible).toBe(false);
    expect(term.unknownEscapes).toEqual([]);
  });

  it('stops at batch-finished: no block left, cursor shown, timers and the exit hook gone; stop() again does nothing', () => {
    const exitListeners = process.listenerCount('exit');
    const term = new FakeTerminal(true, 120);
    const time = clock();
    view = createBatchView({ stream: term, color: true, live: true, now: time.now });
    view.handle(started([task(0)]));
    view.handle(taskStarted(task(0)));
    expect(process.listenerCount('exit')).toBe(exitListeners + 1);
    view.handle(finished(task(0), 'verify_failed'));
    view.handle({
      type: 'batch-finished',
      report: {
        batchId: 'batch-1',
        startedAt: '2026-11-30T10:00:00.000Z',
        durationMs: 1,
        logDir: '/tmp/batch-1',
        interrupted: false,
        totals: { tasks: 1, runs: 1, byStatus: {}, costUsd: 0, runsWithoutCost: 0, tokens: runReport().tokens!, linesAdded: 0, linesRemoved: 0, resources: { cpuSeconds: 0, peakMemoryBytesMax: 0, peakMemoryBytesSum: 0 } },
        tasks: [],
        runs: [],
      },
    });
    expect(term.lines()).toHaveLength(1);
    expect(term.lines()[0]).toMatch(/^✗ 1\/1 api-server feat\/task-1 codex verify failed · \$0\.0123/);
    expect(term.cursorVisible).toBe(true);
    expect(process.listenerCount('exit')).toBe(exitListeners);
    const writes = term.writes;
    view.stop();
    view.stop();
    time.advance(5_000);
    expect(term.writes).toBe(writes);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps the block within the terminal height', () => {
    const term = new FakeTerminal(true, 80, 6);
    const time = clock();
    view = createBatchView({ stream: term, color: false, live: true, now: time.now });
    const tasks = Array.from({ length: 8 }, (_, index) => task(index));
    view.handle(started(tasks));
    for (const ref of tasks) view.handle(taskStarted(ref));
    time.advance(MIN_REDRAW_INTERVAL_MS);
    const lines = term.lines();
    // Five lines and the cursor's: the block's first line is still on the screen when the cursor goes up over it.
    expect(lines).toHaveLength(5);
    expect(lines[3]).toBe('… and 5 more running');
    expect(lines[4]).toBe('done 0 · failed 0 · running 8 · queued 0 · $0.0000 so far');
  });

  it('shows the cursor again when the process exits while the block is live', () => {
    const term = new FakeTerminal(true, 80);
    view = createBatchView({ stream: term, color: false, live: true, now: clock().now });
    view.handle(started([task(0)]));
    expect(term.cursorVisible).toBe(false);
    process.emit('exit', 0);
    expect(term.cursorVisible).toBe(true);
  });
});

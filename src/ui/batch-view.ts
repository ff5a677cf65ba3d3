/**
 * What a batch shows on stderr while it runs, from its typed events ({@link BatchEvent}): on a terminal, a block
 * redrawn in place (one line per running task and a counters line) with finished tasks and notices printed above it;
 * elsewhere (a pipe, a file, CI logs), one plain line per finished task and per notice, never an escape code.
 */
import { Chalk } from 'chalk';
import type { BatchEvent, TaskProgress, TaskRef, TaskResult } from '../batch/types.js';
import { colorTaskStatus, projectName } from '../report/batch-render.js';
import { formatCost, formatCount } from '../report/render.js';
import type { RunReport } from '../report/types.js';
import { fitColumns, singleLine } from './progress.js';

/** The live view of a batch. */
export interface BatchView {
  /** Takes the batch's next event. `batch-finished` stops the view ({@link BatchView.stop}). */
  handle(event: BatchEvent): void;
  /**
   * Clears the live block, shows the cursor again and stops the timers. Safe to repeat. Later events still print
   * their permanent lines (finished tasks, notices), without a block.
   */
  stop(): void;
}

/** Options of {@link createBatchView}. */
export interface BatchViewOptions {
  /** Where the view writes (stderr). `columns` and `rows` (a terminal's size, in character cells) are read at each redraw. */
  stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number };
  /** Use ANSI colours (live only: the plain output never holds an escape code). */
  color: boolean;
  /** Redraw a block in place (a terminal); false: plain lines only. */
  live: boolean;
  /** The clock, in milliseconds (default `Date.now`): elapsed times and the redraw throttle. */
  now?: () => number;
}

/** Shortest time between two redraws of the live block, in ms (at most 10 redraws a second). */
export const MIN_REDRAW_INTERVAL_MS = 100;
/** How often the live block is redrawn for its elapsed times when no event comes, in ms. */
export const ELAPSED_REDRAW_INTERVAL_MS = 1000;
/** Terminal width assumed when the stream does not say, in columns. */
const DEFAULT_COLUMNS = 80;
/** Characters of an error message or failure reason on a finished task's line. */
const REASON_COLUMNS = 160;

const ESC = '\u001B[';
const HIDE_CURSOR = `${ESC}?25l`;
const SHOW_CURSOR = `${ESC}?25h`;

/** A task that has started and not finished. */
interface Running {
  task: TaskRef;
  attempt: number;
  /** When the view learnt it started ({@link BatchViewOptions.now}), in ms. */
  startedMs: number;
  progress: TaskProgress | null;
}

/**
 * Elapsed time, floored to the second: `42s`, `1m05s`, `1h02m03s`.
 *
 * @param ms - a duration in milliseconds (negative counts as 0).
 */
export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor((Number.isFinite(ms) ? ms : 0) / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (hours > 0) return `${hours}h${pad(minutes)}m${pad(seconds)}s`;
  if (minutes > 0) return `${minutes}m${pad(seconds)}s`;
  return `${seconds}s`;
}

/** A styled piece of a line: plain text and how it is coloured. */
type Segment = [text: string, style?: (text: string) => string];

/**
 * The segments as one line of at most `columns` terminal columns ({@link fitColumns} on the plain text, `…` when
 * cut), each kept piece in its style: cutting the plain text first keeps escape codes from counting or being cut.
 */
function fitSegments(segments: Segment[], columns: number): string {
  const plain = segments.map(([text]) => text).join('');
  const fitted = fitColumns(plain, columns);
  const cut = fitted !== plain;
  let keep = cut ? fitted.length - 1 : plain.length;
  let out = '';
  for (const [text, style] of segments) {
    if (keep <= 0) break;
    const piece = text.slice(0, keep);
    keep -= piece.length;
    out += style && piece ? style(piece) : piece;
  }
  return cut ? `${out}…` : out;
}

/**
 * The view for a batch on `options.stream` (stderr).
 *
 * Live (`live: true`, a terminal): a block redrawn in place (cursor up over the block, erase to the end of the screen,
 * draw again), the cursor hidden meanwhile (shown again by {@link BatchView.stop} and at process exit): one line per
 * running task in file order (project folder, branch, agent, then its phase, or `turn N · <tool> · 12,345 tokens`, and
 * the time since it started, `1m05s`), then `done 3 · failed 1 · running 2 · queued 4 · $0.4210 so far`. Redrawn on
 * events at most every {@link MIN_REDRAW_INTERVAL_MS} and every {@link ELAPSED_REDRAW_INTERVAL_MS} (an unref'd timer);
 * every line cut to the terminal's width, and the block to its height (`… and N more running`). Finished tasks,
 * retries and notices are printed above the block as permanent lines.
 *
 * Not live: no escape code at all; one line per finished task, retry and notice; nothing for progress.
 *
 * Lines: `✓ 3/8 api-server feat/x codex success · $0.0123 · 12,345 tokens · +10 −2 · 41.2 s` (3 = tasks finished so
 * far, 8 = tasks in the batch; `✗` for every other status, `not run: <error message>` for a task without a report),
 * `↻ api-server feat/x codex attempt 1 failed: <message> · retrying in 5.0 s`, and notices (`warning: …` for warnings),
 * each prefixed with the task's project and branch when it has one. Every name, message and tool summary is put on
 * one line of printable characters ({@link singleLine}), so no event can move the cursor or break the layout.
 *
 * `done` counts successes, `failed` every other finished task; a task waiting to be retried is `queued`. The cost so
 * far is the sum of the finished runs' `costUsd` and of the running tasks' latest progress `costUsd`, in US dollars.
 */
export function createBatchView(options: BatchViewOptions): BatchView {
  const { stream, live } = options;
  const now = options.now ?? Date.now;
  const c = new Chalk({ level: live && options.color ? 1 : 0 });

  let total: number | null = null;
  let started = false;
  let stopped = false;
  let done = 0;
  let failed = 0;
  let finishedCostUsd = 0;
  const running = new Map<number, Running>();
  /** The last attempt each task started, by task index (for the retry line). */
  const attempts = new Map<number, number>();

  /** Lines of the block on the screen now (0: none drawn). */
  let blockLines = 0;
  let cursorHidden = false;
  let lastDrawMs = Number.NEGATIVE_INFINITY;
  let pending: NodeJS.Timeout | undefined;
  let ticker: NodeJS.Timeout | undefined;

  const showCursorAtExit = (): void => {
    if (cursorHidden) stream.write(SHOW_CURSOR);
    cursorHidden = false;
  };

  const columns = (): number => Math.max(1, (stream.columns || DEFAULT_COLUMNS) - 1);
  const taskLabel = (task: TaskRef): string => `${projectName(singleLine(task.project))} ${singleLine(task.branch)}`;
  const who = (task: TaskRef): string => `${taskLabel(task)} ${singleLine(task.agentType)}`;

  const costSoFar = (): number => {
    let sum = finishedCostUsd;
    for (const { progress } of running.values()) {
      if (progress?.costUsd !== null && progress?.costUsd !== undefined && Number.isFinite(progress.costUsd)) sum += progress.costUsd;
    }
    return sum;
  };

  const runningLine = (entry: Running, width: number): string => {
    const { progress } = entry;
    let doing: string;
    if (progress && progress.turn > 0) {
      const tool = singleLine(progress.tool);
      doing = `turn ${formatCount(progress.turn)}${tool ? ` · ${tool}` : ''} · ${formatCount(progress.tokens)} tokens`;
    } else {
      doing = singleLine(progress?.phase ?? '') || 'starting';
    }
    if (entry.attempt > 1) doing += ` · attempt ${entry.attempt}`;
    return fitSegments(
      [
        ['▸ ', c.cyan],
        [`${who(entry.task)}`, c.bold],
        [` · ${doing} · `],
        [formatElapsed(now() - entry.startedMs), c.dim],
      ],
      width,
    );
  };

  const countersLine = (width: number): string => {
    const queued = total === null ? 0 : Math.max(0, total - done - failed - running.size);
    return fitSegments(
      [
        [`done ${formatCount(done)}`, done > 0 ? c.green : undefined],
        [' · '],
        [`failed ${formatCount(failed)}`, failed > 0 ? c.red : undefined],
        [` · running ${formatCount(running.size)} · queued ${formatCount(queued)} · `],
        [`${formatCost(costSoFar())} so far`, c.dim],
      ],
      width,
    );
  };

  /** The block's lines: running tasks (as many as the terminal's height leaves room for) and the counters. */
  const block = (): string[] => {
    const width = columns();
    const entries = [...running.values()].sort((a, b) => a.task.index - b.task.index);
    // Cursor-up cannot reach lines scrolled off the top: the block stays within the terminal's height.
    const room = stream.rows && stream.rows > 2 ? stream.rows - 2 : Number.POSITIVE_INFINITY;
    const shown = entries.length > room ? entries.slice(0, room - 1) : entries;
    const lines = shown.map((entry) => runningLine(entry, width));
    if (shown.length < entries.length) lines.push(fitSegments([[`… and ${entries.length - shown.length} more running`, c.dim]], width));
    lines.push(countersLine(width));
    return lines;
  };

  const clearBlock = (): string => (blockLines > 0 ? `\r${ESC}${blockLines}A${ESC}0J` : '');

  /** Clears the block, writes `above` (permanent lines), draws the block again: one write. */
  const draw = (above = ''): void => {
    if (pending) clearTimeout(pending);
    pending = undefined;
    const showBlock = live && !stopped && started;
    let out = clearBlock() + above;
    blockLines = 0;
    if (showBlock) {
      if (!cursorHidden) {
        out = HIDE_CURSOR + out;
        cursorHidden = true;
        process.on('exit', showCursorAtExit);
      }
      const lines = block();
      out += lines.map((line) => `${line}\n`).join('');
      blockLines = lines.length;
      ticker ??= setInterval(() => draw(), ELAPSED_REDRAW_INTERVAL_MS).unref();
      lastDrawMs = now();
    }
    if (out) stream.write(out);
  };

  /** Redraws now, or once {@link MIN_REDRAW_INTERVAL_MS} has passed since the last redraw. */
  const requestDraw = (): void => {
    if (!live || stopped || !started || pending) return;
    const wait = lastDrawMs + MIN_REDRAW_INTERVAL_MS - now();
    if (wait <= 0) draw();
    else pending = setTimeout(() => draw(), wait).unref();
  };

  /** Prints `line` as a permanent line: above the block when live. */
  const print = (line: string): void => {
    if (live && !stopped) draw(`${line}\n`);
    else stream.write(`${line}\n`);
  };

  const finishedLine = (task: TaskRef, result: TaskResult, report: RunReport | null): string => {
    const ok = result.status === 'success';
    const mark = ok ? c.green('✓') : c.red('✗');
    const count = `${formatCount(done + failed)}/${total === null ? '?' : formatCount(total)}`;
    const parts: string[] = [];
    let status = colorTaskStatus(c, result.status);
    if (result.status === 'not_run') {
      const message = singleLine(result.error?.message ?? '');
      if (message) status += `: ${fitColumns(message, REASON_COLUMNS)}`;
    } else if (report?.agent.error) {
      status += `: ${fitColumns(singleLine(report.agent.error), REASON_COLUMNS)}`;
    }
    if (report) {
      if (report.costUsd !== null) parts.push(formatCost(report.costUsd));
      if (report.tokens) parts.push(`${formatCount(report.tokens.total)} tokens`);
      parts.push(`${c.green(`+${formatCount(report.changes.linesAdded)}`)} ${c.red(`\u2212${formatCount(report.changes.linesRemoved)}`)}`);
      parts.push(`${(report.durationMs / 1000).toFixed(1)} s`);
    }
    if (result.attempts > 1) parts.push(`${result.attempts} attempts`);
    if (result.resumed) parts.push('resumed');
    return [`${mark} ${count} ${c.bold(who(task))} ${status}`, ...parts].join(' · ');
  };

  const handleEvent = (event: BatchEvent): void => {
    switch (event.type) {
      case 'batch-started':
        total = event.tasks.length;
        started = true;
        requestDraw();
        return;
      case 'task-started':
        attempts.set(event.task.index, event.attempt);
        running.set(event.task.index, { task: event.task, attempt: event.attempt, startedMs: now(), progress: null });
        requestDraw();
        return;
      case 'task-progress': {
        const entry = running.get(event.task.index);
        if (entry) entry.progress = event.progress;
        else running.set(event.task.index, { task: event.task, attempt: attempts.get(event.task.index) ?? 1, startedMs: now(), progress: event.progress });
        requestDraw();
        return;
      }
      case 'task-retry': {
        running.delete(event.task.index);
        // The event names the attempt to come; the line names the one that failed.
        const attempt = attempts.get(event.task.index) ?? Math.max(1, event.attempt - 1);
        const message = fitColumns(singleLine(event.error.message), REASON_COLUMNS);
        print(`${c.yellow('↻')} ${c.bold(who(event.task))} attempt ${attempt} failed: ${message} · retrying in ${(Math.max(0, event.delayMs) / 1000).toFixed(1)} s`);
        return;
      }
      case 'task-finished': {
        running.delete(event.task.index);
        if (event.result.status === 'success') done += 1;
        else failed += 1;
        const cost = event.report?.costUsd;
        if (cost !== null && cost !== undefined && Number.isFinite(cost)) finishedCostUsd += cost;
        print(finishedLine(event.task, event.result, event.report));
        return;
      }
      case 'notice': {
        const text = singleLine(event.text);
        const where = event.task ? `${taskLabel(event.task)}: ` : '';
        print(event.kind === 'warning' ? `${c.yellow('warning:')} ${where}${text}` : `${where}${text}`);
        return;
      }
      case 'batch-finished':
        stop();
        return;
    }
  };

  function stop(): void {
    if (stopped) return;
    stopped = true;
    if (pending) clearTimeout(pending);
    if (ticker) clearInterval(ticker);
    pending = undefined;
    ticker = undefined;
    const out = clearBlock() + (cursorHidden ? SHOW_CURSOR : '');
    blockLines = 0;
    cursorHidden = false;
    process.off('exit', showCursorAtExit);
    if (out) stream.write(out);
  }

  return { handle: handleEvent, stop };
}

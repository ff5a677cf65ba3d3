/**
 * Rendering of a batch's rollup ({@link BatchReport}): a human table (stdout by default) and the `batch --json`
 * document. These functions return strings; the caller (cli) writes them.
 */
import path from 'node:path';
import { Chalk, type ChalkInstance } from 'chalk';
import Table from 'cli-table3';
import type { BatchReport, TaskResult, TaskStatus } from '../batch/types.js';
import { fitColumns, singleLine } from '../ui/progress.js';
import { colorStatus, formatCost, formatCount, formatDuration, printable, STATUS_WORDS } from './render.js';
import type { RunReport } from './types.js';

/** Characters of a `not_run` task's error message shown in its table row. */
const ERROR_MESSAGE_COLUMNS = 40;

/** Words shown for a task's status: {@link STATUS_WORDS} for a run's, `not run` for a task without a report. */
export function taskStatusWord(status: TaskStatus): string {
  if (status === 'not_run') return 'not run';
  return STATUS_WORDS[status] ?? String(status);
}

/** `status` in its colour: green for success, red for failures of the agent and for `not_run`, yellow for the rest. */
export function colorTaskStatus(c: ChalkInstance, status: TaskStatus): string {
  return status === 'not_run' ? c.red(taskStatusWord(status)) : colorStatus(c, status, taskStatusWord(status));
}

/** Bytes in a KiB, a MiB and a GiB. */
const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/**
 * A byte count for people, as the run table shows memory: `512 B`, whole KiB and MiB (`812 MiB`), from 1 GiB up in
 * GiB with one decimal (`2.0 GiB`); `—` when unknown (null) or not a finite, non-negative number.
 *
 * @param bytes - a size in bytes.
 */
export function formatBytes(bytes: number | null): string {
  if (bytes === null || !Number.isFinite(bytes) || bytes < 0) return '—';
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(1)} GiB`;
  if (bytes >= MIB) return `${Math.round(bytes / MIB)} MiB`;
  if (bytes >= KIB) return `${Math.round(bytes / KIB)} KiB`;
  return `${Math.round(bytes)} B`;
}

/** CPU time in seconds with one decimal (`12.3`), or `—` when unknown (null). */
export function formatCpuSeconds(seconds: number | null | undefined): string {
  return seconds === null || seconds === undefined || !Number.isFinite(seconds) ? '—' : seconds.toFixed(1);
}

/** `+added −removed` (U+2212 minus), green and red when `c` colours. */
export function formatLines(c: ChalkInstance, added: number, removed: number): string {
  return `${c.green(`+${formatCount(added)}`)} ${c.red(`\u2212${formatCount(removed)}`)}`;
}

/** The last path segment of a task's project, escaped to stay on one line ({@link printable}). */
export function projectName(project: string): string {
  return printable(path.basename(project) || project);
}

/** Options of {@link renderBatchTable}. */
export interface RenderBatchTableOptions {
  /** Use ANSI colours. When false the output contains no escape sequences at all. */
  color: boolean;
}

/**
 * Renders a batch's rollup as text: a table with one row per task in file order (`#` = 1-based position in the task
 * file, project folder name, branch, agent, status, cost in US dollars, total tokens, lines added/removed, duration,
 * CPU seconds and peak memory of the agent's container, attempts), then a totals table (tasks and how many ended in
 * each status, cost with the number of runs whose cost is unknown, tokens, lines, CPU seconds, the largest peak
 * memory, the batch's wall time, its log folder and the path of its `report.html`).
 *
 * A task's figures come from its run report (matched by `runId` in `report.runs`); `—` where there is none or the
 * figure is unknown. A `not_run` task's status cell holds its error message on one line, shortened to
 * {@link ERROR_MESSAGE_COLUMNS} characters. Names and messages cannot move the cursor or break a row: control
 * characters are escaped ({@link printable}) or replaced ({@link singleLine}).
 *
 * @returns the rendered text, ending in a newline.
 */
export function renderBatchTable(report: BatchReport, options: RenderBatchTableOptions): string {
  const c = new Chalk({ level: options.color ? 1 : 0 });
  // As renderReportTable: no cli-table3 colours (it would colour on its own terminal detection), compact rows.
  const tableStyle = { head: [] as string[], border: [] as string[], compact: true };
  const runsById = new Map(report.runs.map((run) => [run.runId, run]));
  const dash = '—';
  const right = (content: string): Table.Cell => ({ content, hAlign: 'right' });

  const tasks = new Table({
    head: ['#', 'project', 'branch', 'agent', 'status', 'cost', 'tokens', '±lines', 'duration', 'CPU s', 'peak memory', 'attempts'].map((h) => c.bold(h)),
    style: tableStyle,
  });
  for (const result of report.tasks) {
    const run = result.runId === null ? undefined : runsById.get(result.runId);
    tasks.push([
      right(String(result.task.index + 1)),
      projectName(result.task.project),
      printable(result.task.branch),
      printable(result.task.agentType),
      statusCell(c, result),
      right(run ? formatCost(run.costUsd) : dash),
      right(run?.tokens ? formatCount(run.tokens.total) : dash),
      right(run ? formatLines(c, run.changes.linesAdded, run.changes.linesRemoved) : dash),
      right(taskDuration(result, run)),
      right(formatCpuSeconds(run?.resources?.cpuSeconds)),
      right(formatBytes(run?.resources?.peakMemoryBytes ?? null)),
      right(String(result.attempts)),
    ]);
  }

  const { totals } = report;
  const label = (text: string): string => c.bold(text);
  const summary = new Table({ style: tableStyle });
  const byStatus = (Object.entries(totals.byStatus) as [TaskStatus, number | undefined][])
    .filter(([, count]) => count !== undefined && count > 0)
    .map(([status, count]) => `${colorTaskStatus(c, status)} ${formatCount(count ?? 0)}`)
    .join(' · ');
  const { tokens } = totals;
  summary.push(
    [label('batch'), printable(report.batchId) + (report.interrupted ? ` ${c.yellow('(interrupted)')}` : '')],
    [label('tasks'), `${formatCount(totals.tasks)} (${formatCount(totals.runs)} ran)`],
    [label('by status'), byStatus || dash],
    [label('cost'), formatCost(totals.costUsd) + (totals.runsWithoutCost > 0 ? ` (${formatCount(totals.runsWithoutCost)} ${totals.runsWithoutCost === 1 ? 'run' : 'runs'} without cost)` : '')],
    [
      label('tokens'),
      `${formatCount(tokens.total)} (input ${formatCount(tokens.input)} · output ${formatCount(tokens.output)} · cache read ${formatCount(tokens.cacheRead)} · cache write ${formatCount(tokens.cacheWrite)})`,
    ],
    [label('lines'), formatLines(c, totals.linesAdded, totals.linesRemoved)],
    [label('CPU s'), formatCpuSeconds(totals.resources.cpuSeconds)],
    [label('peak memory max'), formatBytes(totals.resources.peakMemoryBytesMax)],
    [label('duration'), formatDuration(report.durationMs)],
    [label('log folder'), printable(report.logDir)],
    [label('HTML report'), printable(path.join(report.logDir, 'report.html'))],
  );
  return `${tasks.toString()}\n${summary.toString()}\n`;
}

/** A task's status cell: the status word (with `(resumed)` when its report comes from the batch run resumed), or `not run: <message>`. */
function statusCell(c: ChalkInstance, result: TaskResult): string {
  const status = colorTaskStatus(c, result.status);
  if (result.status === 'not_run' && result.error) {
    return `${status}: ${fitColumns(singleLine(result.error.message), ERROR_MESSAGE_COLUMNS)}`;
  }
  return result.resumed ? `${status} ${c.dim('(resumed)')}` : status;
}

/** The run's wall time, else the last attempt's (from `startedAt` to `endedAt`), else `—`. */
function taskDuration(result: TaskResult, run: RunReport | undefined): string {
  if (run) return formatDuration(run.durationMs);
  if (result.startedAt === null || result.endedAt === null) return '—';
  const ms = Date.parse(result.endedAt) - Date.parse(result.startedAt);
  return Number.isFinite(ms) ? formatDuration(ms) : '—';
}

/** Renders `report` as exactly one JSON document (2-space indent) followed by a newline: the `batch --json` output. */
export function renderBatchJson(report: BatchReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/**
 * The shapes a batch is made of: the tasks it runs, the typed events it emits while it runs, and the rollup it
 * returns (the `agent-worker batch --json` document, documented in the README).
 */
import type { TokenUsage } from '../../agents/types.js';
import type { RawFlags } from '../config.js';
import type { RunReport, RunStatus } from '../report/types.js';

/**
 * One task of a task file, as written: any single-run option by its flag's camelCase name (`project`, `task`,
 * `taskFile`, `branch`, `agentType`, `model`, `verify`, `timeout`, `dockerfile`, `workspace`, …) plus `base`, the ref
 * the task's branch starts from (default: the repository's HEAD when the batch started).
 */
export interface TaskSpec extends Omit<RawFlags, 'json' | 'quiet' | 'debug' | 'envFile'> {
  /** The ref (branch, tag or commit) the task's branch starts from; default the repository's HEAD when the batch started. */
  base?: string;
}

/** Where a task is, for messages and the rollup. */
export interface TaskRef {
  /** 0-based position in the task file. */
  index: number;
  /** 1-based line of the task in its file; null for tasks given through the API. */
  line: number | null;
  /** Absolute path of the task's repository. */
  project: string;
  /** The branch the task's work goes to. */
  branch: string;
  /** The agent (`--agent-type`). */
  agentType: string;
}

/** What happened to a task, in the rollup: a run's status, or why no run report exists. */
export type TaskStatus =
  | RunStatus
  /** It never produced a report: refused at preflight, its image did not build, its container did not start, … */
  | 'not_run';

/** Why a task produced no run report. */
export interface TaskError {
  message: string;
  hint: string | null;
  /** The exit code a single run would have ended with ({@link ExitCode}). */
  exitCode: number;
  /** True when the cause is the infrastructure (daemon lost or unreachable, image build, container start), so `--retries` applies. */
  infrastructure: boolean;
}

/** One task's line in the rollup: when it ran, how it ended, how many attempts it took. */
export interface TaskResult {
  task: TaskRef;
  status: TaskStatus;
  /** The run's id (its report is in `runs`); null when it produced no report. */
  runId: string | null;
  /** Attempts made in this batch (retries included); 0 when it was skipped because an earlier batch run of it succeeded. */
  attempts: number;
  /** When its last attempt started and ended, ISO 8601; null when it never started. */
  startedAt: string | null;
  endedAt: string | null;
  /** Set when the task produced no run report. */
  error: TaskError | null;
  /** True when its report comes from the batch run this one resumes (`--resume`). */
  resumed: boolean;
}

/** Totals over a batch's run reports. */
export interface BatchTotals {
  /** Tasks in the batch. */
  tasks: number;
  /** Run reports (tasks that ran). */
  runs: number;
  /** Tasks per status (`not_run` for those without a report). */
  byStatus: Partial<Record<TaskStatus, number>>;
  /** Sum of the runs' `costUsd` (runs with a null cost count 0), in US dollars. */
  costUsd: number;
  /** Runs whose cost is unknown (`costUsd` null). */
  runsWithoutCost: number;
  /** Sums of the runs' token counts (runs with null tokens count 0). */
  tokens: TokenUsage;
  linesAdded: number;
  linesRemoved: number;
  /** Sums over the runs' `resources` (null entries count 0): CPU seconds, and the largest and summed peak memory, in bytes. */
  resources: { cpuSeconds: number; peakMemoryBytesMax: number; peakMemoryBytesSum: number };
}

/** The rollup of a batch: the `batch --json` document. */
export interface BatchReport {
  batchId: string;
  /** ISO 8601. */
  startedAt: string;
  /** Wall time of the batch, in milliseconds. */
  durationMs: number;
  /** The batch's folder: `batch.json` (state for `--resume`), `report.json` (this document), `report.html`. */
  logDir: string;
  /** True when the batch was interrupted (Ctrl-C) before every task ran. */
  interrupted: boolean;
  totals: BatchTotals;
  /** Every task, in file order. */
  tasks: TaskResult[];
  /** The single-run report of every task that ran, unchanged, in file order. */
  runs: RunReport[];
}

/** Live detail of a running task, from its agent's stream. */
export interface TaskProgress {
  phase: string;
  turn: number;
  /** The last tool call, summarised on one line ('' before the first). */
  tool: string;
  /** Tokens so far (all kinds). */
  tokens: number;
  /** Cost so far, when the agent reports it, in US dollars. */
  costUsd: number | null;
}

/** What a batch emits while it runs, in order per task. */
export type BatchEvent =
  | { type: 'batch-started'; batchId: string; logDir: string; tasks: TaskRef[]; parallel: number }
  | { type: 'task-started'; task: TaskRef; attempt: number; atMs: number }
  | { type: 'task-progress'; task: TaskRef; progress: TaskProgress }
  | { type: 'task-retry'; task: TaskRef; attempt: number; error: TaskError; delayMs: number }
  | { type: 'task-finished'; task: TaskRef; result: TaskResult; report: RunReport | null }
  | { type: 'notice'; task: TaskRef | null; text: string; kind: 'info' | 'warning' }
  | { type: 'batch-finished'; report: BatchReport };

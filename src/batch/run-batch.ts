/**
 * A batch: many tasks over many repositories, run in parallel by one {@link Runner}, rolled up into one
 * {@link BatchReport}. Each task is a single run ({@link runTask}), unchanged; the batch decides when each starts
 * (at most `parallel` at once, one at a time per work tree), from which commit, how often it is tried, and puts every
 * repository back on the branch it was on.
 *
 * The batch's folder (`$XDG_STATE_HOME/agent-worker/batches/<batchId>/`) holds `batch.json` (what each task became,
 * written as tasks finish: `--resume` reads it), and at the end `report.json` (the rollup) and `report.html`.
 * Nothing here prints: progress is {@link BatchEvent}s.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import createDebug from 'debug';
import type { RunConfig } from '../config.js';
import { AgentWorkerError, ConfigError, DockerError, ExitCode, ImageBuildError, errorMessage, interruptExitCode } from '../errors.js';
import { assertClean, assertNewBranch, branchExists, checkoutBranch, isClean, openRepo, type HeadState, type Repo } from '../git/repo.js';
import { newRunId, runTask, type RunContext } from '../run.js';
import { Runner } from '../runner.js';
import { runsRoot } from '../report/run-log.js';
import type { RunReport } from '../report/types.js';
import type { Progress } from '../ui/progress.js';
import type { BatchEvent, BatchReport, BatchTotals, TaskError, TaskRef, TaskResult } from './types.js';
import { renderBatchHtml } from '../report/batch-html.js';

const log = createDebug('agent-worker:batch');

/** One task of a batch, resolved: its run's configuration and where it was written. */
export interface BatchTask {
  /** 0-based position in the batch. */
  index: number;
  /** 1-based line in the task file; null for tasks given through the API. */
  line: number | null;
  config: RunConfig;
  /** The ref the task's branch starts from; default the repository's HEAD when the batch started. */
  base?: string;
}

/** How a batch runs. */
export interface BatchOptions {
  env: NodeJS.ProcessEnv;
  /** The agents run as this uid:gid (the invoking user's). */
  uid: number;
  gid: number;
  /** Most runs at once; default what the first task's daemon's CPUs and memory allow for its `--cpus`/`--memory`, at least 1. */
  parallel?: number;
  /** How often a task that failed for an infrastructure reason is tried again (default 0). */
  retries?: number;
  /** The wait before the first retry, in ms, doubled for each further one (default 2000). */
  retryDelayMs?: number;
  /** Resume this earlier batch: its successful tasks are skipped (their reports kept), the others run again. */
  resume?: string;
  /** The new batch's id (default: a new one); ignored with `resume`. */
  batchId?: string;
  /** Aborting stops every running task the way a single run stops, starts no more, and returns the rollup. */
  signal?: AbortSignal;
  /** Receives every {@link BatchEvent} as it happens. */
  onEvent?: (event: BatchEvent) => void;
  /** The process's runner; default a new one. */
  runner?: Runner;
  /** Where the tasks were read from, for messages (`tasks.yaml:12: …`). */
  source?: string;
}

/** A batch id: the form {@link newRunId} makes. */
const BATCH_ID = /^\d{8}-\d{6}-[0-9a-f]{6}$/;
/** Name of the batch's state file in its folder. */
export const BATCH_STATE_FILE = 'batch.json';

/** What `batch.json` holds: the repositories' starting points and what each task became so far. */
interface BatchState {
  batchId: string;
  startedAt: string;
  /** Per repository root: the branch (or detached commit) it was on and the commit its tasks start from. */
  repos: Record<string, HeadState>;
  /** Per task key (project + original branch): its result and, when it ran, its report file. */
  tasks: Record<string, { result: TaskResult; reportFile: string | null }>;
}

/** Root of all batch folders: beside the runs' (`…/agent-worker/batches`). */
export function batchesRoot(env: NodeJS.ProcessEnv): string {
  return path.join(path.dirname(runsRoot(env)), 'batches');
}

/**
 * Runs a batch and returns its rollup. Tasks that cannot start (not a repository, dirty work tree, branch taken,
 * unknown base) are refused before anything starts, all of them listed.
 * @throws ConfigError (exit 2) listing every problem with the task's line; nothing has run then.
 */
export async function runBatchTasks(tasks: BatchTask[], options: BatchOptions): Promise<BatchReport> {
  const started = Date.now();
  const signal = options.signal ?? new AbortController().signal;
  const emit = (event: BatchEvent): void => {
    try {
      options.onEvent?.(event);
    } catch (error) {
      log('event handler failed: %s', errorMessage(error));
    }
  };
  const runner = options.runner ?? new Runner(options.env);
  const retries = options.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0) throw new ConfigError([`--retries: ${retries} is not a whole number of at least 0.`]);
  if (options.parallel !== undefined && (!Number.isInteger(options.parallel) || options.parallel < 1)) {
    throw new ConfigError([`--parallel: ${options.parallel} is not a whole number of at least 1.`]);
  }
  if (tasks.length === 0) throw new ConfigError(['The batch has no tasks.']);

  const previous = options.resume === undefined ? undefined : await readState(options.env, options.resume);
  const batchId = previous?.batchId ?? options.batchId ?? newRunId(new Date(started));
  const logDir = path.join(batchesRoot(options.env), batchId);
  const state: BatchState = previous ?? { batchId, startedAt: new Date(started).toISOString(), repos: {}, tasks: {} };

  // Everything that can be checked before anything starts.
  const where = (task: BatchTask): string => `${options.source ? `${options.source}:` : ''}${task.line === null ? '' : `${task.line}: `}task ${task.index + 1}: `;
  const problems: string[] = [];
  const repos = new Map<string, Repo>();
  // Each repository's tree is checked once, however many tasks it has.
  const cleanChecks = new Map<string, Promise<void>>();
  const planned: Array<{ task: BatchTask; ref: TaskRef; base: string; resumed?: { result: TaskResult; report: RunReport } }> = [];
  for (const task of tasks) {
    try {
      const repo = repos.get(task.config.project) ?? (await openRepo(task.config.project));
      repos.set(task.config.project, repo);
      repos.set(repo.root, repo);
      state.repos[repo.root] ??= repo.head;
      const key = taskKey(repo.root, task.config.branch!);
      const earlier = state.tasks[key];
      if (earlier?.result.status === 'success' && earlier.reportFile) {
        const report = JSON.parse(await readFile(earlier.reportFile, 'utf8')) as RunReport;
        // Its place is the one it has in the file now.
        const ref: TaskRef = { ...earlier.result.task, index: task.index, line: task.line };
        planned.push({ task, ref, base: report.baseCommit, resumed: { result: { ...earlier.result, task: ref, attempts: 0, resumed: true }, report } });
        continue;
      }
      const base = task.base === undefined ? state.repos[repo.root]!.commit : await resolveBase(repo, task.base);
      let branch = task.config.branch!;
      if (earlier) branch = await freeBranch(repo, branch);
      else await assertNewBranch(repo, branch);
      // A single run refuses a dirty tree in either workspace mode: so does the batch, before anything starts.
      if (!cleanChecks.has(repo.root)) cleanChecks.set(repo.root, assertClean(repo));
      await cleanChecks.get(repo.root);
      planned.push({ task, ref: { index: task.index, line: task.line, project: repo.root, branch, agentType: task.config.agentType }, base });
    } catch (error) {
      problems.push(`${where(task)}${errorMessage(error)}${error instanceof AgentWorkerError && error.hint ? ` (${error.hint})` : ''}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  await mkdir(logDir, { recursive: true, mode: 0o700 });
  const parallel = options.parallel ?? (await defaultParallel(runner, tasks[0]!.config, signal));
  emit({ type: 'batch-started', batchId, logDir, tasks: planned.map((entry) => entry.ref), parallel });
  log('batch %s: %d task(s), parallel %d, retries %d', batchId, tasks.length, parallel, retries);

  const results = new Map<number, { result: TaskResult; report: RunReport | null }>();
  let saving = Promise.resolve();
  const save = (): Promise<void> => (saving = saving.then(() => writeState(logDir, state)).catch((error: unknown) => log('saving batch state: %s', errorMessage(error))));
  const finish = (ref: TaskRef, key: string, result: TaskResult, report: RunReport | null): void => {
    results.set(ref.index, { result, report });
    state.tasks[key] = { result, reportFile: report ? path.join(report.logDir, 'report.json') : null };
    void save();
    emit({ type: 'task-finished', task: ref, result, report });
  };

  // The queue: a task waits while another task that uses its repository's work tree runs (mount mode).
  const queue = [...planned];
  for (const entry of planned) {
    if (!entry.resumed) continue;
    queue.splice(queue.indexOf(entry), 1);
    finish(entry.ref, taskKey(entry.ref.project, entry.task.config.branch!), entry.resumed.result, entry.resumed.report);
  }
  const busyTrees = new Set<string>();
  const running = new Set<Promise<void>>();
  const usesTree = (task: BatchTask): boolean => task.config.workspace !== 'copy';
  const saidOnce = new Set<string>();
  const execute = async (entry: (typeof planned)[number]): Promise<void> => {
    const key = taskKey(entry.ref.project, entry.task.config.branch!);
    const outcome = await runWithRetries(entry.task, entry.ref, entry.base, { ...options, retries, runner, signal, emit, saidOnce, repo: repos.get(entry.ref.project)! });
    finish(outcome.ref, key, outcome.result, outcome.report);
  };
  while (queue.length > 0 || running.size > 0) {
    if (!signal.aborted) {
      for (let i = 0; i < queue.length && running.size < parallel; ) {
        const entry = queue[i]!;
        if (usesTree(entry.task) && busyTrees.has(entry.ref.project)) {
          i += 1;
          continue;
        }
        queue.splice(i, 1);
        if (usesTree(entry.task)) busyTrees.add(entry.ref.project);
        const job: Promise<void> = execute(entry).finally(() => {
          busyTrees.delete(entry.ref.project);
          running.delete(job);
        });
        running.add(job);
      }
    } else {
      // Interrupted: what has not started never will.
      for (const entry of queue.splice(0)) {
        const error: TaskError = { message: `Interrupted by ${String(signal.reason)} before it started; nothing was changed.`, hint: null, exitCode: interruptExitCode(signal.reason), infrastructure: false };
        finish(entry.ref, taskKey(entry.ref.project, entry.task.config.branch!), { task: entry.ref, status: 'not_run', runId: null, attempts: 0, startedAt: null, endedAt: null, error, resumed: false }, null);
      }
    }
    if (running.size === 0) continue;
    await Promise.race(running);
  }

  // Every repository back on the branch it was on when the batch started.
  for (const [root, head] of Object.entries(state.repos)) {
    const repo = repos.get(root);
    if (!repo) continue;
    const warning = await restoreHead(repo, head);
    if (warning) emit({ type: 'notice', task: null, text: warning, kind: 'warning' });
  }

  const ordered = planned.map((entry) => results.get(entry.ref.index)!);
  const report: BatchReport = {
    batchId,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    logDir,
    interrupted: signal.aborted,
    totals: batchTotals(ordered.map((entry) => entry.result), ordered.flatMap((entry) => (entry.report ? [entry.report] : []))),
    tasks: ordered.map((entry) => entry.result),
    runs: ordered.flatMap((entry) => (entry.report ? [entry.report] : [])),
  };
  await save();
  await writeFile(path.join(logDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`, { mode: 0o600 });
  await writeFile(path.join(logDir, 'report.html'), renderBatchHtml(report), { mode: 0o600 }).catch((error: unknown) =>
    emit({ type: 'notice', task: null, text: `agent-worker: warning: writing report.html failed: ${errorMessage(error)}`, kind: 'warning' }),
  );
  emit({ type: 'batch-finished', report });
  return report;
}

/**
 * The exit code of a batch: 0 when every task succeeded; 128 + the signal's number when it was interrupted; else
 * {@link ExitCode.batchFailed}.
 */
export function batchExitCode(report: BatchReport, signal?: AbortSignal): number {
  if (report.interrupted) return interruptExitCode(signal?.reason);
  return report.tasks.every((task) => task.status === 'success') ? ExitCode.success : ExitCode.batchFailed;
}

/** Sums a batch's figures. */
export function batchTotals(results: TaskResult[], runs: RunReport[]): BatchTotals {
  const totals: BatchTotals = {
    tasks: results.length,
    runs: runs.length,
    byStatus: {},
    costUsd: 0,
    runsWithoutCost: 0,
    tokens: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0, reasoning: 0, total: 0 },
    linesAdded: 0,
    linesRemoved: 0,
    resources: { cpuSeconds: 0, peakMemoryBytesMax: 0, peakMemoryBytesSum: 0 },
  };
  for (const result of results) totals.byStatus[result.status] = (totals.byStatus[result.status] ?? 0) + 1;
  for (const run of runs) {
    if (run.costUsd === null) totals.runsWithoutCost += 1;
    else totals.costUsd += run.costUsd;
    if (run.tokens) {
      totals.tokens.input += run.tokens.input;
      totals.tokens.output += run.tokens.output;
      totals.tokens.cacheRead += run.tokens.cacheRead;
      totals.tokens.cacheWrite += run.tokens.cacheWrite;
      totals.tokens.reasoning += run.tokens.reasoning ?? 0;
      totals.tokens.total += run.tokens.total;
    }
    totals.linesAdded += run.changes.linesAdded;
    totals.linesRemoved += run.changes.linesRemoved;
    totals.resources.cpuSeconds += run.resources?.cpuSeconds ?? 0;
    const peak = run.resources?.peakMemoryBytes ?? 0;
    totals.resources.peakMemoryBytesMax = Math.max(totals.resources.peakMemoryBytesMax, peak);
    totals.resources.peakMemoryBytesSum += peak;
  }
  totals.costUsd = Math.round(totals.costUsd * 1e6) / 1e6;
  return totals;
}

/**
 * True when `error` stopped a run for a reason of the infrastructure rather than the task: the daemon lost or not
 * answering, the container (or its firewall, or its egress proxy) not starting, an image build that failed on the
 * network. `--retries` runs only these again.
 */
export function isInfrastructureFailure(error: unknown): boolean {
  if (!(error instanceof AgentWorkerError)) return false;
  if (error instanceof ImageBuildError) return NETWORK_FAILURE.test(`${error.message}\n${error.logTail.join('\n')}`);
  if (error instanceof DockerError) return true;
  return error.exitCode === ExitCode.docker || error.exitCode === ExitCode.container;
}

/** Build-log words of a network failure (apt, npm, curl, the daemon's own pulls). */
const NETWORK_FAILURE = /ECONNRESET|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|ENETUNREACH|socket hang up|Temporary failure (?:in name )?resolv|Could not resolve|Failed to fetch|Connection (?:timed out|refused|reset)|TLS handshake timeout|i\/o timeout|503 Service Unavailable|502 Bad Gateway|network is unreachable/i;

/** Runs one task, again after an infrastructure failure while retries are left, with a doubling wait. */
async function runWithRetries(
  task: BatchTask,
  first: TaskRef,
  base: string,
  options: BatchOptions & { retries: number; runner: Runner; signal: AbortSignal; emit: (event: BatchEvent) => void; repo: Repo; saidOnce: Set<string> },
): Promise<{ ref: TaskRef; result: TaskResult; report: RunReport | null }> {
  let ref = first;
  const delayMs = options.retryDelayMs ?? 2000;
  for (let attempt = 1; ; attempt += 1) {
    const startedAt = new Date().toISOString();
    options.emit({ type: 'task-started', task: ref, attempt, atMs: Date.now() });
    const progress = taskProgress(ref, options.emit);
    const context: RunContext = {
      progress,
      signal: options.signal,
      env: options.env,
      uid: options.uid,
      gid: options.gid,
      runner: options.runner,
      notice: (text, kind) => {
        // What every run says alike (the daemon it uses) is said once per batch.
        if (kind !== 'warning' && options.saidOnce.has(text)) return;
        options.saidOnce.add(text);
        options.emit({ type: 'notice', task: ref, text, kind: kind ?? 'info' });
      },
      onAgentProgress: (live) => progress.agent(live),
    };
    try {
      const { report } = await runTask({ ...task.config, branch: ref.branch, baseCommit: base }, context);
      const result: TaskResult = { task: ref, status: report.status, runId: report.runId, attempts: attempt, startedAt, endedAt: new Date().toISOString(), error: null, resumed: false };
      return { ref, result, report };
    } catch (error) {
      const taskError: TaskError = {
        message: errorMessage(error),
        hint: error instanceof AgentWorkerError ? (error.hint ?? null) : null,
        exitCode: error instanceof AgentWorkerError ? error.exitCode : ExitCode.internal,
        infrastructure: isInfrastructureFailure(error),
      };
      if (error instanceof DockerError) options.runner.forget(task.config);
      if (taskError.infrastructure && attempt <= options.retries && !options.signal.aborted) {
        const wait = delayMs * 2 ** (attempt - 1);
        options.emit({ type: 'task-retry', task: ref, attempt: attempt + 1, error: taskError, delayMs: wait });
        // Ctrl-C ends the wait early (and the loop then stops retrying).
        await delay(wait, undefined, { signal: options.signal }).catch(() => undefined);
        // A run that got as far as the agent kept its partial work on the branch: the next attempt takes a new one.
        if (await branchExists(options.repo, ref.branch).catch(() => false)) ref = { ...ref, branch: await freeBranch(options.repo, first.branch) };
        continue;
      }
      const result: TaskResult = { task: ref, status: 'not_run', runId: null, attempts: attempt, startedAt, endedAt: new Date().toISOString(), error: taskError, resumed: false };
      return { ref, result, report: null };
    }
  }
}

/** A run's progress, as batch events: its phase, then its agent's live figures. */
function taskProgress(ref: TaskRef, emit: (event: BatchEvent) => void): Progress & { agent(live: { turn: number; tokens: number; tool: string; costUsd: number | undefined }): void } {
  const current = { phase: '', turn: 0, tool: '', tokens: 0, costUsd: null as number | null };
  const send = (): void => emit({ type: 'task-progress', task: ref, progress: { ...current } });
  return {
    phase: (text) => {
      current.phase = text;
      send();
    },
    detail: () => undefined,
    succeed: () => undefined,
    fail: () => undefined,
    stop: () => undefined,
    log: (text) => emit({ type: 'notice', task: ref, text, kind: 'info' }),
    agent: (live) => {
      Object.assign(current, { turn: live.turn, tool: live.tool, tokens: live.tokens, costUsd: live.costUsd ?? null });
      send();
    },
  };
}

/** The first of `<branch>-attempt2`, `-attempt3`, … that does not exist. */
async function freeBranch(repo: Repo, branch: string): Promise<string> {
  for (let n = 2; ; n += 1) {
    const candidate = `${branch}-attempt${n}`;
    if (!(await branchExists(repo, candidate))) return candidate;
  }
}

/**
 * The commit a task's `base` names.
 * @throws PreflightError-like AgentWorkerError (exit 5) when it names no commit.
 */
async function resolveBase(repo: Repo, base: string): Promise<string> {
  const commit = await repo.git.raw(['rev-parse', '--verify', '--end-of-options', `${base}^{commit}`]).then((out) => out.trim(), () => '');
  if (/^[0-9a-f]{40,64}$/.test(commit)) return commit;
  throw new AgentWorkerError(`base: ${JSON.stringify(base)} names no commit in ${repo.root}.`, ExitCode.badBranch, 'Name a branch, tag or commit of that repository.');
}

/** Checks out the branch (or commit) the repository was on; a warning when it cannot (its tree is not clean). */
async function restoreHead(repo: Repo, head: HeadState): Promise<string | undefined> {
  try {
    const now = (await repo.git.raw(['symbolic-ref', '--quiet', '--short', 'HEAD']).catch(() => '')).trim();
    if (head.branch ? now === head.branch : now === '' && (await repo.git.raw(['rev-parse', 'HEAD'])).trim() === head.commit) return undefined;
    if (!(await isClean(repo))) return `${repo.root} has uncommitted changes, so it was left on ${now || 'a detached HEAD'} instead of going back to ${head.branch ?? head.commit}.`;
    await checkoutBranch(repo, head.branch ?? head.commit);
    return undefined;
  } catch (error) {
    return `${repo.root} could not be put back on ${head.branch ?? head.commit}: ${errorMessage(error)}`;
  }
}

/** The key of a task across runs of a batch: its repository and its branch as written. */
function taskKey(project: string, branch: string): string {
  return `${project}\0${branch}`;
}

/**
 * `--parallel`'s default: the runs the daemon holds at once by CPUs and memory, or on a swarm the runs its nodes
 * hold at once (see swarmCapacity); 1 when that cannot be found out.
 */
async function defaultParallel(runner: Runner, config: RunConfig, signal: AbortSignal): Promise<number> {
  try {
    const { info, docker } = await runner.connect(config, signal);
    if (config.backend === 'swarm') {
      // What the swarm's ready, active nodes hold at once with these reservations (and this placement).
      const { swarmParallelism } = await import('../backends/swarm/index.js');
      return await swarmParallelism(docker, config.placement, { memoryBytes: config.memoryBytes, cpus: config.cpus });
    }
    const byCpu = info.cpus === null ? Infinity : Math.floor(info.cpus / (config.cpus ?? 1));
    const byMemory = info.memoryBytes === null ? Infinity : Math.floor(info.memoryBytes / config.memoryBytes);
    const fit = Math.min(byCpu, byMemory);
    return Number.isFinite(fit) ? Math.max(1, fit) : 1;
  } catch (error) {
    // The tasks will say what is wrong with the daemon (and be retried); the batch starts one at a time.
    log('default parallelism: %s', errorMessage(error));
    return 1;
  }
}

async function readState(env: NodeJS.ProcessEnv, batchId: string): Promise<BatchState> {
  if (!BATCH_ID.test(batchId)) throw new ConfigError([`--resume: ${JSON.stringify(batchId)} is not a batch id (YYYYMMDD-HHMMSS-xxxxxx, as the batch's report names it).`]);
  const file = path.join(batchesRoot(env), batchId, BATCH_STATE_FILE);
  try {
    return JSON.parse(await readFile(file, 'utf8')) as BatchState;
  } catch (error) {
    throw new ConfigError([`--resume: cannot read batch ${batchId} (${file}): ${errorMessage(error)}`]);
  }
}

/** Writes batch.json whole, through a temporary file (a crash leaves the previous one). */
async function writeState(dir: string, state: BatchState): Promise<void> {
  const file = path.join(dir, BATCH_STATE_FILE);
  await writeFile(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

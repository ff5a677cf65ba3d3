/**
 * agent-worker as a library: `import { runTask, runBatch } from 'agent-worker'`. The CLI is built on the same
 * pipeline. Nothing here prints or exits: progress arrives as typed events, a run's outcome is its returned
 * report, and what stops a run before it has one is thrown as an {@link AgentWorkerError} with its exit code and a
 * hint.
 *
 * Options are the CLI's settings by their flag's camelCase name, typed; what is not given is read as the CLI reads
 * it: from the environment (`env`, default `process.env`), then `<project>/.env`, then the default.
 */
import type { EventEmitter } from 'node:events';
import { loadConfig, type RawFlags } from './config.js';
import { ConfigError } from './errors.js';
import { newRunId, runTask as runPipeline, type AgentLive } from './run.js';
import { runBatchTasks, type BatchTask } from './batch/run-batch.js';
import { Runner } from './runner.js';
import type { BatchEvent, BatchReport } from './batch/types.js';
import type { RunReport } from './report/types.js';
import type { Progress } from './ui/progress.js';

export { AgentWorkerError, ConfigError, ExitCode } from './errors.js';
export { Runner } from './runner.js';
export { batchExitCode, batchTotals, isInfrastructureFailure } from './batch/run-batch.js';
export type { RunReport, RunStatus, ContainerResources, ChangeSummary, FileChange, VerifyResult, EgressSummary } from './report/types.js';
export type { BatchEvent, BatchReport, BatchTotals, TaskRef, TaskResult, TaskStatus, TaskError, TaskProgress } from './batch/types.js';
export type { TokenUsage } from '../agents/types.js';

/** One task's options: the CLI's settings, typed (units in each name or comment). */
export interface TaskOptions {
  /** The git repository to work on (default: `cwd`). */
  project?: string;
  /** The task for the agent (or `taskFile`). */
  task?: string;
  /** A file holding the task. */
  taskFile?: string;
  /** The branch to create (default `agent-task-<timestamp>`; in a batch `agent-task-<batch stamp>-<n>`). */
  branch?: string;
  /** In a batch: the ref the branch starts from (default the repository's HEAD when the batch started). */
  base?: string;
  /** claude (default), codex, gemini, opencode, qwen, copilot, exec. */
  agentType?: string;
  model?: string;
  apiKey?: string;
  oauthToken?: string;
  baseUrl?: string;
  /** A command run in the container after the agent; its result goes into the report. */
  verify?: string;
  /** The host-enforced limit on the agent's run, in seconds (default 3600). */
  timeoutSeconds?: number;
  maxTurns?: number;
  /** In US dollars. */
  maxBudgetUsd?: number;
  appendSystemPrompt?: string;
  /** A markdown file appended to the system prompt. */
  persona?: string;
  /** An MCP servers file (Claude Code JSON). */
  mcpConfig?: string;
  /** A JSON prices file (USD per million tokens per model). */
  prices?: string;
  /** The exec agent's command line. */
  agentCommand?: string;
  /** The project's Dockerfile (built FROM the tool's image). */
  dockerfile?: string;
  /** IANA time zone in the container. */
  timezone?: string;
  /** The container's memory limit: bytes, or a size like `4g` (default 8g). */
  memory?: number | string;
  /** The container's CPU limit, in CPUs. */
  cpus?: number;
  /** Most processes in the container (default 4096). */
  pidsLimit?: number;
  /** Hosts the agent may reach through the egress proxy besides the model API (names or `*.wildcards`). */
  allowHosts?: string[];
  /** A PEM file of extra CA certificates. */
  caCert?: string;
  /** The longest an image build may take, in seconds (default 1800). */
  buildTimeoutSeconds?: number;
  forceRebuild?: boolean;
  /** `unix://`, `tcp://` or `ssh://` Docker daemon (default: the local socket, or DOCKER_HOST). */
  remoteDocker?: string;
  workspace?: 'mount' | 'copy';
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  sshKey?: string;
  insecureDocker?: boolean;
  /** A `.env` file to read (default `<project>/.env`). */
  envFile?: string;
}

/** What a single run emits while it runs. */
export type RunEvent =
  | { type: 'phase'; text: string }
  | { type: 'agent'; live: AgentLive }
  | { type: 'notice'; text: string; kind: 'info' | 'warning' };

/** {@link RunEvent}s by type, for a typed `EventEmitter<RunEventMap>`. */
export type RunEventMap = { [T in RunEvent['type']]: [Extract<RunEvent, { type: T }>] };
/** {@link BatchEvent}s by type, for a typed `EventEmitter<BatchEventMap>`. */
export type BatchEventMap = { [T in BatchEvent['type']]: [Extract<BatchEvent, { type: T }>] };

/** Where and how a run or batch runs. */
export interface ApiContext {
  /** Relative paths resolve against this (default `process.cwd()`). */
  cwd?: string;
  /** The environment settings fall back to (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Aborting stops the run the way Ctrl-C does: a running agent is stopped and its work committed. */
  signal?: AbortSignal;
  /** The runner to share daemon connections and images with (default a new one). */
  runner?: Runner;
}

/**
 * Runs one task and returns its report (also when the agent failed: see `report.status`).
 * @param on receives every {@link RunEvent}: a callback, or an `EventEmitter<RunEventMap>` (events by their type).
 * @throws ConfigError (exit 2) for invalid options; AgentWorkerError subclasses for failures before the agent ran
 *   (repository, Docker, image build, container setup) and for losing the daemon mid-run.
 */
export async function runTask(options: TaskOptions, context: ApiContext & { on?: ((event: RunEvent) => void) | EventEmitter<RunEventMap> } = {}): Promise<RunReport> {
  const env = context.env ?? process.env;
  const cwd = context.cwd ?? process.cwd();
  if (options.base !== undefined) throw new ConfigError(['base: only a batch task takes a base; a single run starts from HEAD.']);
  const config = await loadConfig(toFlags(options), { cwd, env, readStdin: noStdin, hostTimeZone: Intl.DateTimeFormat().resolvedOptions().timeZone });
  const emit = (event: RunEvent): void => dispatch(context.on, event);
  const progress: Progress = {
    phase: (text) => emit({ type: 'phase', text }),
    detail: () => undefined,
    succeed: () => undefined,
    fail: () => undefined,
    stop: () => undefined,
    log: (text) => emit({ type: 'notice', text, kind: 'info' }),
  };
  const { report } = await runPipeline(config, {
    progress,
    signal: context.signal ?? new AbortController().signal,
    env,
    uid: process.getuid?.() ?? 1000,
    gid: process.getgid?.() ?? 1000,
    runner: context.runner,
    notice: (text, kind) => emit({ type: 'notice', text, kind: kind ?? 'info' }),
    onAgentProgress: (live) => emit({ type: 'agent', live }),
  });
  return report;
}

/** How a batch runs. */
export interface BatchApiOptions extends ApiContext {
  /** Options every task takes unless it gives its own. */
  defaults?: TaskOptions;
  /** Most runs at once (default: what the daemon's CPUs and memory allow for the tasks' limits, at least 1). */
  parallel?: number;
  /** Tries again after an infrastructure failure (daemon, image build network, container start); default 0. */
  retries?: number;
  /** The wait before the first retry, in ms, doubled for each further one (default 2000). */
  retryDelayMs?: number;
  /** Resume an earlier batch by its id: its successful tasks are skipped, the others run again. */
  resume?: string;
  /** Receives every {@link BatchEvent}: a callback, or an `EventEmitter<BatchEventMap>` (events by their type). */
  on?: ((event: BatchEvent) => void) | EventEmitter<BatchEventMap>;
}

/**
 * Runs many tasks as one batch and returns its rollup (each task's own status is in it: nothing is thrown for a task
 * that failed). Every task is checked before any starts.
 * @throws ConfigError (exit 2) listing every invalid task (`task <n>: …`); nothing ran then.
 */
export async function runBatch(tasks: TaskOptions[], options: BatchApiOptions = {}): Promise<BatchReport> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const batchId = options.resume ?? newRunId(new Date());
  const problems: string[] = [];
  const resolved: BatchTask[] = [];
  for (const [index, task] of tasks.entries()) {
    const merged: TaskOptions = { ...options.defaults, ...task };
    try {
      const config = await loadConfig(toFlags(merged), { cwd, env, readStdin: noStdin, hostTimeZone: Intl.DateTimeFormat().resolvedOptions().timeZone });
      resolved.push({ index, line: null, config: { ...config, branch: config.branch ?? `agent-task-${batchId.slice(0, 15)}-${index + 1}` }, base: merged.base });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems.map((problem) => `task ${index + 1}: ${problem}`));
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return runBatchTasks(resolved, {
    env,
    uid: process.getuid?.() ?? 1000,
    gid: process.getgid?.() ?? 1000,
    parallel: options.parallel,
    retries: options.retries,
    retryDelayMs: options.retryDelayMs,
    resume: options.resume,
    batchId,
    signal: options.signal,
    runner: options.runner,
    onEvent: (event) => dispatch(options.on, event),
  });
}

/** Hands `event` to the caller's callback, or emits it under its type on the caller's EventEmitter. */
function dispatch<E extends { type: string }>(on: ((event: E) => void) | EventEmitter | undefined, event: E): void {
  if (typeof on === 'function') on(event);
  else on?.emit(event.type, event);
}

/** The CLI's flag values for typed options. */
function toFlags(options: TaskOptions): RawFlags {
  const text = (value: number | string | undefined): string | undefined => (value === undefined ? undefined : String(value));
  return {
    project: options.project,
    task: options.task,
    taskFile: options.taskFile,
    branch: options.branch,
    agentType: options.agentType,
    model: options.model,
    apiKey: options.apiKey,
    oauthToken: options.oauthToken,
    baseUrl: options.baseUrl,
    verify: options.verify,
    timeout: text(options.timeoutSeconds),
    maxTurns: text(options.maxTurns),
    maxBudgetUsd: text(options.maxBudgetUsd),
    appendSystemPrompt: options.appendSystemPrompt,
    persona: options.persona,
    mcpConfig: options.mcpConfig,
    prices: options.prices,
    agentCommand: options.agentCommand,
    dockerfile: options.dockerfile,
    timezone: options.timezone,
    memory: text(options.memory),
    cpus: text(options.cpus),
    pidsLimit: text(options.pidsLimit),
    allowHost: options.allowHosts,
    caCert: options.caCert,
    buildTimeout: text(options.buildTimeoutSeconds),
    forceRebuild: options.forceRebuild,
    remoteDocker: options.remoteDocker,
    workspace: options.workspace,
    tlsCa: options.tlsCa,
    tlsCert: options.tlsCert,
    tlsKey: options.tlsKey,
    sshKey: options.sshKey,
    insecureDocker: options.insecureDocker,
    envFile: options.envFile,
    quiet: true,
  };
}

async function noStdin(): Promise<string> {
  throw new ConfigError(['taskFile: "-" (standard input) is for the command line; pass the task as `task`.']);
}

/**
 * Past and running runs, read from the run log folders (see ./run-log.ts for their layout): the list behind
 * `agent-worker runs`, run id resolution and the agent-stream follower behind `agent-worker logs`.
 * Nothing here prints; the commands in src/commands/history.ts do.
 */
import { open, readdir, readFile, stat, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { getAgentPlugin } from '../../agents/index.js';
import type { AgentEvent } from '../../agents/types.js';
import { AgentWorkerError, ExitCode } from '../errors.js';
import { processAlive } from '../run-lock.js';
import { LineSplitter } from '../stream/lines.js';
import { printable } from './render.js';
import type { RunInfo } from './run-log.js';
import type { RunReport, RunStatus } from './types.js';

/** File names inside a run folder. */
export const RUN_FILES = { info: 'run.json', report: 'report.json', agentStream: 'agent.stream.jsonl' } as const;

/** A run id as made by `newRunId` (src/run.ts): UTC `YYYYMMDD-HHMMSS` then 6 hex digits. */
const RUN_ID_PATTERN = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-[0-9a-f]{6}$/;

/** Bytes read from the agent stream per read call. */
const READ_CHUNK_BYTES = 64 * 1024;

/** Folders read at once while listing. */
const LIST_BATCH = 16;

/**
 * Where a run stands: the report's {@link RunStatus} once it has one; else `running` (its process is alive on this host)
 * or `unfinished` (its process is gone, or it ran on another host and cannot be checked).
 */
export type RunState = RunStatus | 'running' | 'unfinished';

/** One row of `agent-worker runs`. */
export interface RunSummary {
  runId: string;
  /** Top-level path of the project; null for runs without `run.json` (made before it existed). */
  project: string | null;
  /** The run's branch; null when neither `run.json` nor `report.json` names it. */
  branch: string | null;
  /** Agent plugin name (e.g. `claude`); null when unknown. */
  agentType: string | null;
  status: RunState;
  /** In US dollars, from the report; null while running, for unfinished runs, or when the agent never said. */
  costUsd: number | null;
  /** Wall time in milliseconds: the report's, or for a running run now − startedAt; null for unfinished runs. */
  durationMs: number | null;
  /** ISO 8601 start time, from `run.json`, else from the run id. */
  startedAt: string;
  /** The run's log folder. */
  logDir: string;
}

/** Options of {@link listRuns}. */
export interface ListRunsOptions {
  /** Most runs returned (newest first). Default: all. */
  limit?: number;
  /** Keep only runs of this project: a run matches when this path is its project folder or inside it. */
  project?: string;
  /** Clock for the duration of running runs, in ms since the epoch. Default `Date.now()`. */
  now?: number;
}

/**
 * Lists the runs under `root` (see `runsRoot`), newest first (run ids sort by start time).
 *
 * A folder counts when it holds a readable `run.json` or `report.json`, or its name is a run id; anything else
 * (stray files, unreadable folders, broken JSON in both files) is skipped, never thrown on. A missing `root` gives `[]`.
 */
export async function listRuns(root: string, options: ListRunsOptions = {}): Promise<RunSummary[]> {
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const names = await runFolderNames(root);
  const out: RunSummary[] = [];
  for (let i = 0; i < names.length && out.length < limit; i += LIST_BATCH) {
    const batch = await Promise.all(names.slice(i, i + LIST_BATCH).map((name) => readRun(path.join(root, name), options.now)));
    for (const run of batch) {
      if (run === undefined || (options.project !== undefined && !inProject(run, options.project))) continue;
      if (out.length < limit) out.push(run);
    }
  }
  return out;
}

/**
 * Finds one run: the newest when `idOrPrefix` is empty or undefined (with `options.project`, the newest run of that
 * repository, its top-level folder as the run recorded it), else the run whose id is `idOrPrefix` or the only one
 * starting with it (like Docker ids).
 *
 * @throws AgentWorkerError (ExitCode.usage) when there is no run, no match, or more than one match.
 */
export async function resolveRun(root: string, idOrPrefix?: string, options: { project?: string } = {}): Promise<RunSummary> {
  const hint = 'Run `agent-worker runs` to list the runs and their ids.';
  const names = await runFolderNames(root);
  if (!idOrPrefix) {
    for (const name of names) {
      const run = await readRun(path.join(root, name));
      if (run && (options.project === undefined || run.project === options.project)) return run;
    }
    if (options.project !== undefined && names.length > 0) {
      throw new AgentWorkerError(`There are no runs of ${options.project} in ${root}.`, ExitCode.usage, `${hint} \`agent-worker logs <runId>\` shows any of them.`);
    }
    throw new AgentWorkerError(`There are no runs in ${root}.`, ExitCode.usage, 'Start one with `agent-worker --task "…"`.');
  }
  const matches = names.includes(idOrPrefix) ? [idOrPrefix] : names.filter((name) => name.startsWith(idOrPrefix));
  if (matches.length > 1) {
    const shown = matches.slice(0, 5).join(', ') + (matches.length > 5 ? ', …' : '');
    throw new AgentWorkerError(`Run id prefix "${idOrPrefix}" matches ${matches.length} runs (${shown}); give more of the id.`, ExitCode.usage, hint);
  }
  const run = matches[0] === undefined ? undefined : await readRun(path.join(root, matches[0]));
  if (!run) throw new AgentWorkerError(`No run "${idOrPrefix}" in ${root}.`, ExitCode.usage, hint);
  return run;
}

/**
 * Reads one run folder into a {@link RunSummary}; undefined when it is not a run folder or cannot be read.
 *
 * @param now clock for a running run's duration, in ms since the epoch.
 */
export async function readRun(dir: string, now = Date.now()): Promise<RunSummary | undefined> {
  const runId = path.basename(dir);
  const [info, report] = await Promise.all([readRunInfo(dir), readReport(dir)]);
  const idTime = runIdTime(runId);
  if (!info && !report && idTime === undefined) return undefined;
  try {
    if (!(await stat(dir)).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  const startedAt = info?.startedAt ?? idTime ?? new Date(0).toISOString();
  const base = {
    runId,
    project: info?.project ?? null,
    branch: info?.branch ?? report?.branch ?? null,
    agentType: info?.agentType ?? report?.agent?.type ?? null,
    startedAt,
    logDir: dir,
  };
  if (report) return { ...base, status: report.status, costUsd: report.costUsd ?? null, durationMs: report.durationMs ?? null };
  if (info && runAlive(info)) {
    return { ...base, status: 'running', costUsd: null, durationMs: Math.max(0, now - Date.parse(startedAt)) };
  }
  // The run may have finished between reading report.json and checking its process.
  const late = info ? await readReport(dir) : undefined;
  if (late) return { ...base, status: late.status, costUsd: late.costUsd ?? null, durationMs: late.durationMs ?? null };
  return { ...base, status: 'unfinished', costUsd: null, durationMs: null };
}

/** The run's `report.json`, or undefined when it is missing or not (yet) a complete JSON report. */
export async function readReport(dir: string): Promise<RunReport | undefined> {
  const value = await readJson(path.join(dir, RUN_FILES.report));
  return isObject(value) && typeof value.status === 'string' ? (value as unknown as RunReport) : undefined;
}

/** The run's `run.json`, or undefined when it is missing or malformed. */
export async function readRunInfo(dir: string): Promise<RunInfo | undefined> {
  const value = await readJson(path.join(dir, RUN_FILES.info));
  if (!isObject(value)) return undefined;
  const { project, branch, pid, host, startedAt } = value;
  if (typeof project !== 'string' || typeof branch !== 'string' || typeof pid !== 'number' || typeof host !== 'string') return undefined;
  if (typeof startedAt !== 'string' || Number.isNaN(Date.parse(startedAt))) return undefined;
  return value as unknown as RunInfo;
}

/** True when the run's process is alive on this host. A run of another host cannot be checked: false. */
export function runAlive(info: Pick<RunInfo, 'pid' | 'host'>): boolean {
  return info.host === os.hostname() && Number.isInteger(info.pid) && info.pid > 0 && processAlive(info.pid);
}

/** Receives one line of the agent stream, without its newline; `truncated` when it was longer than 16 MiB and cut. */
export type StreamLineHandler = (line: string, truncated: boolean) => void | Promise<void>;

/** Options of {@link followAgentStream}. */
export interface FollowOptions {
  /** Called once per line, in order; awaited (so a slow consumer slows the reading, not memory). */
  onLine: StreamLineHandler;
  /** Stops following; the promise then resolves with `aborted`. */
  signal?: AbortSignal;
  /** Delay between looks at the file when there is nothing new, in milliseconds. Default 250. */
  pollMs?: number;
  /**
   * Whether the run has ended, asked before each look at the file. Default: `report.json` holds a report, or the
   * process named in `run.json` is gone (or cannot be checked: no `run.json`, another host).
   */
  isDone?: () => boolean | Promise<boolean>;
}

/**
 * Delivers every line of the run's `agent.stream.jsonl` from its start, then follows the file as it grows (polling its
 * end every `pollMs`) until the run has ended; then it delivers what is left, including a last line without a newline,
 * and resolves. A line written in pieces is delivered once, whole. Memory holds one 64 KiB chunk and one line (at most
 * 16 MiB; longer lines come cut, with `truncated`).
 *
 * @returns `ended` when the run ended, `aborted` when `signal` stopped it first.
 */
export async function followAgentStream(dir: string, options: FollowOptions): Promise<'ended' | 'aborted'> {
  const pollMs = options.pollMs ?? 250;
  const isDone = options.isDone ?? (() => runEnded(dir));
  const tail = new StreamTail(path.join(dir, RUN_FILES.agentStream), options.onLine);
  try {
    for (;;) {
      // Asked before reading: whatever was written before the run ended is read in this pass.
      const done = await isDone();
      await tail.readToEnd(options.signal);
      if (options.signal?.aborted) return 'aborted';
      if (done) {
        // The run log's last writes may land just after report.json; look once more.
        if (!(await pause(Math.min(pollMs, 200), options.signal))) return 'aborted';
        await tail.readToEnd(options.signal);
        if (options.signal?.aborted) return 'aborted';
        await tail.end();
        return 'ended';
      }
      if (!(await pause(pollMs, options.signal))) return 'aborted';
    }
  } finally {
    await tail.close();
  }
}

/** Delivers every line of the run's `agent.stream.jsonl` as it is now (a missing file has none), then resolves. */
export async function readAgentStream(dir: string, onLine: StreamLineHandler, signal?: AbortSignal): Promise<void> {
  const tail = new StreamTail(path.join(dir, RUN_FILES.agentStream), onLine);
  try {
    await tail.readToEnd(signal);
    if (!signal?.aborted) await tail.end();
  } finally {
    await tail.close();
  }
}

/** Longest `text` shown by {@link readableLines}, in characters. */
export const READABLE_TEXT_MAX_CHARS = 200;

/**
 * A converter from lines of an agent's raw output (Claude Code stream-json for `claude`) to short readable lines, using
 * the agent plugin's own parser (one parser per returned function: call it on one run's lines, in order):
 * `init · claude-sonnet-4-5 · version 2.1.330`, `turn 3 · 12,345 tokens · $0.0123`, `  Bash: npm test`,
 * `  │ text…` (at most {@link READABLE_TEXT_MAX_CHARS}), `result: success`. Lines that carry no event give `[]`.
 * Control characters are shown escaped. For an unknown agent type, each line is returned as it is (escaped).
 */
export function readableLines(agentType: string): (line: string) => string[] {
  const plugin = getAgentPlugin(agentType);
  if (!plugin) return (line) => (line === '' ? [] : [printable(line)]);
  const parser = plugin.createParser();
  return (line) => parser.push(line).map(describeEvent);
}

const countFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function describeEvent(event: AgentEvent): string {
  switch (event.kind) {
    case 'init':
      return ['init', event.model, event.version && `version ${event.version}`]
        .filter((part): part is string => Boolean(part))
        .map(printable)
        .join(' · ');
    case 'turn': {
      const cost = event.costUsd === undefined ? '' : ` · $${event.costUsd.toFixed(4)}`;
      return `turn ${event.turn} · ${countFormat.format(event.tokens.total)} tokens${cost}`;
    }
    case 'tool':
      return `  ${printable(event.summary)}`;
    case 'text':
      return `  \u2502 ${printable(event.text.slice(0, READABLE_TEXT_MAX_CHARS))}`;
    case 'result':
      return `result: ${printable(event.subtype)}${event.isError && event.subtype === 'success' ? ' (error)' : ''}`;
  }
}

/** Reads a growing file from an offset, chunk by chunk, and hands on complete lines. */
class StreamTail {
  private handle: FileHandle | undefined;
  private offset = 0;
  private readonly chunk = Buffer.alloc(READ_CHUNK_BYTES);
  private readonly ready: Array<[string, boolean]> = [];
  private readonly splitter = new LineSplitter((line, truncated) => this.ready.push([line, truncated]));

  constructor(
    private readonly file: string,
    private readonly onLine: StreamLineHandler,
  ) {}

  /** Reads from the last offset to the current end of the file, delivering each completed line. */
  async readToEnd(signal?: AbortSignal): Promise<void> {
    if (!this.handle) {
      try {
        this.handle = await open(this.file, 'r');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
    }
    while (!signal?.aborted) {
      const { bytesRead } = await this.handle.read(this.chunk, 0, this.chunk.length, this.offset);
      if (bytesRead === 0) return;
      this.offset += bytesRead;
      this.splitter.push(this.chunk.subarray(0, bytesRead));
      await this.deliver();
    }
  }

  /** Delivers a last line that has no newline. */
  async end(): Promise<void> {
    this.splitter.end();
    await this.deliver();
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }

  private async deliver(): Promise<void> {
    while (this.ready.length > 0) {
      const [line, truncated] = this.ready.shift()!;
      await this.onLine(line, truncated);
    }
  }
}

/** Default end test of {@link followAgentStream}. */
async function runEnded(dir: string): Promise<boolean> {
  if (await readReport(dir)) return true;
  const info = await readRunInfo(dir);
  return !info || !runAlive(info);
}

/** Waits `ms`; false when `signal` aborted. */
async function pause(ms: number, signal?: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/** Names of the entries of `root`, newest run first; [] when `root` is missing or unreadable. */
async function runFolderNames(root: string): Promise<string[]> {
  try {
    const entries = await readdir(root, { withFileTypes: true });
    return entries
      .filter((entry) => entry.isDirectory() || entry.isSymbolicLink())
      .map((entry) => entry.name)
      .sort()
      .reverse();
  } catch {
    return [];
  }
}

/** The start time encoded in a run id (ISO 8601), or undefined when `runId` is not shaped like one. */
export function runIdTime(runId: string): string | undefined {
  const m = RUN_ID_PATTERN.exec(runId);
  if (!m) return undefined;
  const time = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
  return Number.isNaN(time.getTime()) ? undefined : time.toISOString();
}

function inProject(run: RunSummary, project: string): boolean {
  if (run.project === null) return false;
  const relative = path.relative(run.project, project);
  return relative === '' || (relative.split(path.sep)[0] !== '..' && !path.isAbsolute(relative));
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

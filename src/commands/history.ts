/**
 * `agent-worker runs` and `agent-worker logs`: thin commands over src/report/history.ts. Each parses its own argv,
 * writes results on stdout and errors on stderr, and returns the exit code (src/cli.ts exits).
 */
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { Chalk, type ChalkInstance } from 'chalk';
import { Command, Option } from 'commander';
import { simpleGit } from 'simple-git';
import { AgentWorkerError, ExitCode, errorMessage, interruptExitCode } from '../errors.js';
import {
  followAgentStream,
  listRuns,
  readAgentStream,
  readableLines,
  readReport,
  resolveRun,
  type RunState,
  type RunSummary,
  type StreamLineHandler,
} from '../report/history.js';
import { formatCost, formatDuration, printable, renderReportJson, renderReportTable, STATUS_WORDS } from '../report/render.js';
import { runsRoot } from '../report/run-log.js';
import type { RunReport } from '../report/types.js';

/** What a command may touch: its output streams, environment and working folder, and a signal that stops it. */
export interface CommandIO {
  /** Results: the table, or exactly one JSON document with `--json`. */
  stdout: NodeJS.WritableStream;
  /** Errors, notes and (with `--json`) the followed agent stream. */
  stderr: NodeJS.WritableStream;
  /** Read for the run log folder (`XDG_STATE_HOME`). */
  env: NodeJS.ProcessEnv;
  /** Use ANSI colours on stdout. */
  color: boolean;
  /** Stops `logs -f` (the command then returns 128 + the signal number named by `signal.reason`). */
  signal?: AbortSignal;
  /** Base of a relative `--project`. Default `process.cwd()`. */
  cwd?: string;
}

/** Runs listed by `agent-worker runs` without `--limit`. */
export const DEFAULT_RUNS_LIMIT = 20;

/**
 * `agent-worker runs [--limit N] [--project <path>] [--json]`: lists recent runs, newest first, as an aligned table
 * (RUN ID, PROJECT, BRANCH, STATUS, COST, DURATION, STARTED) or one JSON array of {@link RunSummary}.
 *
 * @param argv the arguments after `runs`.
 * @returns the exit code: 0, or 2 for a bad option.
 */
export async function runsCommand(argv: string[], io: CommandIO): Promise<number> {
  const command = new Command('agent-worker runs')
    .description('List recent agent-worker runs, newest first, from the run log folder.')
    .option('--limit <n>', 'most runs listed', String(DEFAULT_RUNS_LIMIT))
    .option('--project <path>', 'only runs of the repository containing this path')
    .option('--json', 'print the runs as one JSON array')
    .exitOverride()
    .configureOutput(commanderOutput(io));
  const parsed = parse(command, argv);
  if (parsed !== undefined) return parsed;
  const options = command.opts<{ limit: string; project?: string; json?: boolean }>();
  try {
    if (!/^\d+$/.test(options.limit) || Number(options.limit) < 1) {
      throw new AgentWorkerError(`--limit must be a whole number of at least 1, got "${options.limit}".`, ExitCode.usage, 'For example `agent-worker runs --limit 50`.');
    }
    const project = options.project === undefined ? undefined : await canonicalPath(path.resolve(io.cwd ?? process.cwd(), options.project));
    const root = runsRoot(io.env);
    const runs = await listRuns(root, { limit: Number(options.limit), project });
    if (options.json) await write(io.stdout, `${JSON.stringify(runs, null, 2)}\n`);
    else if (runs.length === 0) await write(io.stdout, project === undefined ? `No runs in ${root}.\n` : `No runs of ${project}.\n`);
    else await write(io.stdout, renderRunsTable(runs, io.color));
    return ExitCode.success;
  } catch (error) {
    return printError(error, io);
  }
}

/**
 * `agent-worker logs [runId] [-f] [--stream] [--json]`: shows one run (default: the newest — of the current repository
 * when run inside one; a unique id prefix works).
 * - no flag: the report table (`--json`: the report JSON); without a report, the readable agent stream and a note on
 *   stderr that the run is still running or did not finish;
 * - `--stream`: the readable agent stream;
 * - `-f`: the readable agent stream so far, following it until the run ends, then the report (with `--json` the
 *   stream goes to stderr and stdout gets only the report JSON).
 *
 * @param argv the arguments after `logs`.
 * @returns the exit code: 0; 2 for a bad option, an unknown or ambiguous id, or `--json` without a report; 128 + signal
 *   when `io.signal` stopped it.
 */
export async function logsCommand(argv: string[], io: CommandIO): Promise<number> {
  const command = new Command('agent-worker logs')
    .description("Show a run's report, or its agent's stream as readable lines; -f follows a running one.")
    .argument('[runId]', "a run id, or a unique prefix of one (default: the newest run, inside a repository that repository's)")
    .option('-f, --follow', "follow the agent's stream until the run ends, then print the report")
    .addOption(new Option('--stream', "print the agent's stream as readable lines instead of the report").conflicts('json'))
    .option('--json', 'print the report as one JSON document')
    .exitOverride()
    .configureOutput(commanderOutput(io));
  const parsed = parse(command, argv);
  if (parsed !== undefined) return parsed;
  const options = command.opts<{ follow?: boolean; stream?: boolean; json?: boolean }>();
  try {
    // Without an id, inside a repository: that repository's newest run (as `gh run view` stays in its repository).
    const project = command.args[0] ? undefined : await repositoryRoot(io.cwd ?? process.cwd());
    const run = await resolveRun(runsRoot(io.env), command.args[0], { project });
    // With --json, stdout carries only the report.
    const streamOut = options.json ? io.stderr : io.stdout;
    // Runs without run.json or report.json predate other agents: Claude Code.
    const toText = readableLines(run.agentType ?? 'claude');
    let streamed = false;
    const onLine: StreamLineHandler = async (line, truncated) => {
      const texts = truncated ? ['  (a line over 16 MiB, not shown)'] : toText(line);
      for (const text of texts) await write(streamOut, `${text}\n`);
      streamed ||= texts.length > 0;
    };
    const aborted = (): number => interruptExitCode(io.signal?.reason);

    if (options.follow) {
      if (run.status === 'running') {
        if ((await followAgentStream(run.logDir, { onLine, signal: io.signal })) === 'aborted') return aborted();
      } else {
        await readAgentStream(run.logDir, onLine, io.signal);
        if (io.signal?.aborted) return aborted();
      }
      const report = await readReport(run.logDir);
      if (!report) return noReport(run, 'ended', options.json, io);
      await writeReport(report, options.json, streamed && !options.json, io);
      return ExitCode.success;
    }

    const report = options.stream ? undefined : await readReport(run.logDir);
    if (report) {
      await writeReport(report, options.json, false, io);
      return ExitCode.success;
    }
    if (options.json) return noReport(run, run.status, true, io);
    await readAgentStream(run.logDir, onLine, io.signal);
    if (io.signal?.aborted) return aborted();
    if (!options.stream) return noReport(run, run.status, false, io);
    return ExitCode.success;
  } catch (error) {
    return printError(error, io);
  }
}

/** Renders runs as a borderless, aligned table (like `docker ps`), ending in a newline. */
export function renderRunsTable(runs: RunSummary[], color: boolean): string {
  const c = new Chalk({ level: color ? 1 : 0 });
  const header = ['RUN ID', 'PROJECT', 'BRANCH', 'STATUS', 'COST', 'DURATION', 'STARTED'];
  const rows = runs.map((run) => [
    run.runId,
    run.project === null ? '-' : printable(path.basename(run.project)),
    run.branch === null ? '-' : printable(run.branch),
    statusWord(run.status),
    run.costUsd === null ? '-' : formatCost(run.costUsd),
    run.durationMs === null ? '-' : formatDuration(run.durationMs),
    localTime(run.startedAt),
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[], paint: (cell: string, i: number) => string): string =>
    cells
      .map((cell, i) => paint(i === cells.length - 1 ? cell : cell.padEnd(widths[i]!), i))
      .join('   ')
      .trimEnd();
  let out = `${line(header, (cell) => c.bold(cell))}\n`;
  runs.forEach((run, index) => {
    out += `${line(rows[index]!, (cell, i) => (i === 3 ? colorStatus(c, run.status, cell) : cell))}\n`;
  });
  return out;
}

function statusWord(status: RunState): string {
  return (STATUS_WORDS as Record<string, string | undefined>)[status] ?? status;
}

function colorStatus(c: ChalkInstance, status: RunState, text: string): string {
  if (status === 'success') return c.green(text);
  if (status === 'running') return c.cyan(text);
  if (status === 'agent_error' || status === 'auth_failed') return c.red(text);
  return c.yellow(text);
}

/** `YYYY-MM-DD HH:MM:SS` in the local time zone. */
function localTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '-';
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

async function writeReport(report: RunReport, json: boolean | undefined, gap: boolean, io: CommandIO): Promise<void> {
  const text = json ? renderReportJson(report) : renderReportTable(report, { color: io.color });
  await write(io.stdout, gap ? `\n${text}` : text);
}

/** Says on stderr why there is no report; an error (exit 2) when `--json` wanted one. */
async function noReport(run: RunSummary, state: RunState | 'ended', json: boolean | undefined, io: CommandIO): Promise<number> {
  const message =
    state === 'running'
      ? `Run ${run.runId} is still running (no report yet).`
      : state === 'ended'
        ? `Run ${run.runId} ended without a report: its process is gone.`
        : `Run ${run.runId} did not finish: it has no report and its process is gone.`;
  const hint =
    state === 'running'
      ? `Follow it with \`agent-worker logs ${run.runId} -f\`.`
      : `Its logs are in ${run.logDir} (agent.stderr.log, agent-worker.log); \`agent-worker gc\` removes a container it left.`;
  if (json) return printError(new AgentWorkerError(message, ExitCode.usage, hint), io);
  await write(io.stderr, `agent-worker: ${message}\n  ${hint}\n`);
  return ExitCode.success;
}

/** Parses argv; returns an exit code when commander stopped (help: 0, bad usage: 2), else undefined. */
function parse(command: Command, argv: string[]): number | undefined {
  try {
    command.parse(argv, { from: 'user' });
    return undefined;
  } catch (error) {
    return (error as { exitCode?: number }).exitCode === 0 ? ExitCode.success : ExitCode.usage;
  }
}

function commanderOutput(io: CommandIO): { writeOut(text: string): void; writeErr(text: string): void } {
  return { writeOut: (text) => void io.stdout.write(text), writeErr: (text) => void io.stderr.write(text) };
}

/** Writes `agent-worker: message` and `  hint` on stderr; returns the exit code. */
function printError(error: unknown, io: CommandIO): number {
  if (error instanceof AgentWorkerError) {
    io.stderr.write(`agent-worker: ${error.message}\n`);
    if (error.hint) io.stderr.write(`  ${error.hint}\n`);
    return error.exitCode;
  }
  io.stderr.write(`agent-worker: unexpected error: ${errorMessage(error)}\n`);
  return ExitCode.internal;
}

/** Writes `text`, waiting for the stream to drain when its buffer is full. */
function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (stream.write(text)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      stream.off('error', onError);
      resolve();
    };
    const onError = (error: unknown): void => {
      stream.off('drain', onDrain);
      reject(error instanceof Error ? error : new Error(String(error)));
    };
    stream.once('drain', onDrain);
    stream.once('error', onError);
  });
}

/**
 * The top-level folder of the git work tree containing `dir` (as git prints it, and as a run records its project), or
 * undefined outside any work tree (or without git).
 */
async function repositoryRoot(dir: string): Promise<string | undefined> {
  try {
    return (await simpleGit(dir).revparse(['--show-toplevel'])).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The real path of `p` (symlinks resolved, as git reports a repository's top level), else `p`. */
async function canonicalPath(p: string): Promise<string> {
  try {
    return await realpath(p);
  } catch {
    return p;
  }
}

/**
 * `agent-worker batch <file>`: reads a task file, runs its tasks as one batch, shows them live on stderr and prints
 * the rollup on stdout (a table, or one JSON document with `--json`). Returns the exit code; never exits.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { RawFlags } from '../config.js';
import { ConfigError, errorMessage } from '../errors.js';
import { parseTaskFile, resolveTasks } from '../batch/task-file.js';
import { batchExitCode, runBatchTasks } from '../batch/run-batch.js';
import { newRunId } from '../run.js';
import { createBatchView } from '../ui/batch-view.js';
import { renderBatchJson, renderBatchTable } from '../report/batch-render.js';

/** The batch's own options, besides the single-run flags that are its tasks' defaults. */
export interface BatchFlags {
  /** Most runs at once (`--parallel`), as given. */
  parallel?: string;
  /** Tries after an infrastructure failure (`--retries`), as given. */
  retries?: string;
  /** The batch to resume (`--resume`). */
  resume?: string;
}

/** What the command works in: injected, so it is testable. */
export interface BatchIo {
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Colour on stdout. */
  color: boolean;
  signal: AbortSignal;
  uid: number;
  gid: number;
  readStdin: () => Promise<string>;
  hostTimeZone?: string;
}

/**
 * Runs the batch in `file`.
 * @returns the batch's exit code (0 when every task succeeded, ExitCode.batchFailed otherwise, 128 + n when interrupted).
 * @throws ConfigError (exit 2) for an unreadable or invalid task file or batch option, nothing having run.
 */
export async function batchCommand(file: string, flags: RawFlags, batchFlags: BatchFlags, io: BatchIo): Promise<number> {
  const problems: string[] = [];
  const parallel = wholeNumber(batchFlags.parallel, '--parallel', 1, problems);
  const retries = wholeNumber(batchFlags.retries, '--retries', 0, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  const filePath = path.resolve(io.cwd, file);
  let text: string;
  try {
    text = await readFile(filePath, 'utf8');
  } catch (error) {
    throw new ConfigError([`batch: cannot read the task file ${filePath}: ${errorMessage(error)}`]);
  }
  const parsed = parseTaskFile(text, file);
  const batchId = batchFlags.resume ?? newRunId(new Date());
  const tasks = await resolveTasks(parsed, flags, { cwd: io.cwd, env: io.env, readStdin: io.readStdin, hostTimeZone: io.hostTimeZone, batchStamp: batchId.slice(0, 15) });
  const json = Boolean(flags.json);
  const view = createBatchView({ stream: io.stderr, color: !io.env.NO_COLOR, live: io.stderr.isTTY === true && !json && !flags.quiet && !flags.debug });
  try {
    const report = await runBatchTasks(tasks, {
      env: io.env,
      uid: io.uid,
      gid: io.gid,
      parallel,
      retries,
      resume: batchFlags.resume,
      batchId,
      signal: io.signal,
      onEvent: flags.quiet ? (event) => event.type === 'notice' && event.kind === 'warning' && view.handle(event) : (event) => view.handle(event),
      source: file,
    });
    view.stop();
    io.stdout.write(json ? renderBatchJson(report) : renderBatchTable(report, { color: io.color }));
    return batchExitCode(report, io.signal);
  } finally {
    view.stop();
  }
}

/** A whole number of at least `min`, or undefined when not given; a problem naming the flag otherwise. */
function wholeNumber(raw: string | undefined, flag: string, min: number, problems: string[]): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || value < min) {
    problems.push(`${flag}: ${JSON.stringify(raw)} is not a whole number of at least ${min}.`);
    return undefined;
  }
  return value;
}

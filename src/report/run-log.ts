/**
 * The run's log folder, outside the repository: `$XDG_STATE_HOME/agent-worker/runs/<runId>/`
 * (else `~/.local/state/agent-worker/runs/<runId>/`), holding
 * - `run.json`: what the run is ({@link RunInfo}: project, branch, pid, host, start time), written when it starts;
 * - `agent.stream.jsonl`: the agent's raw standard output (stream-json), secrets redacted;
 * - `agent.stderr.log`: the container's standard error, secrets redacted;
 * - `agent-worker.log`: the tool's own log of the run;
 * - `report.json`: the final report, written when the run completes (its absence means running or died).
 *
 * `agent-worker runs` and `agent-worker logs` read these folders (src/report/history.ts).
 */
import { isUtf8 } from 'node:buffer';
import { closeSync, createWriteStream, openSync, writevSync, type WriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { SecretShape } from '../../agents/types.js';
import type { RunReport } from './types.js';

/** Root of all run folders for an environment. */
export function runsRoot(env: NodeJS.ProcessEnv): string {
  const state = env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : path.join(os.homedir(), '.local', 'state');
  return path.join(state, 'agent-worker', 'runs');
}

/**
 * Replaces every occurrence of the given secret values, and of anything of the agent's credential shapes (its
 * plugin's `secretShapes`, e.g. any `sk-ant-…` key), with `[REDACTED]`.
 */
export function makeRedactor(secrets: string[], shapes: readonly SecretShape[]): (text: string) => string {
  const values = secrets.filter((value) => value.length >= 8);
  return (text) => {
    let out = text;
    for (const value of values) if (out.includes(value)) out = out.split(value).join('[REDACTED]');
    for (const shape of shapes) if (out.includes(shape.prefix)) out = out.replace(shape.pattern, '[REDACTED]');
    return out;
  };
}

/**
 * {@link makeRedactor} for bytes: returns `bytes` itself (no copy) when redacting their UTF-8 text would
 * change nothing, else the UTF-8 bytes of the redacted text. The text is only decoded when a cheap byte
 * search finds a secret value or a shape's prefix, or when the bytes are not valid UTF-8 (decoding replaces
 * those with U+FFFD, as writing the decoded text always did).
 */
export function makeByteRedactor(secrets: string[], shapes: readonly SecretShape[]): (bytes: Buffer) => Buffer {
  const redact = makeRedactor(secrets, shapes);
  // Every change the text redactor makes starts at a secret value or at a shape's prefix (its replacement,
  // `[REDACTED]`, cannot complete either), and valid UTF-8 holds a string's bytes where the text holds it.
  const needles = [...secrets.filter((value) => value.length >= 8), ...shapes.map((shape) => shape.prefix)].map((value) => Buffer.from(value, 'utf8'));
  return (bytes) => {
    if (isUtf8(bytes) && !needles.some((needle) => bytes.includes(needle))) return bytes;
    return Buffer.from(redact(bytes.toString('utf8')), 'utf8');
  };
}

/** What a run is, written to `run.json` when it starts. */
export interface RunInfo {
  runId: string;
  /** Top-level path of the project's repository. */
  project: string;
  /** The branch the agent's work goes to. */
  branch: string;
  /** Agent plugin name (`--agent-type`), e.g. `claude`. */
  agentType: string;
  /** Process id of the agent-worker process running it, on `host`. */
  pid: number;
  /** `os.hostname()` of the machine running it. */
  host: string;
  /** When the run started, ISO 8601 (UTC). */
  startedAt: string;
  /** agent-worker version. */
  toolVersion: string;
  workspace: 'mount' | 'copy';
}

/**
 * An append-only file written synchronously: the agent's output is written as it arrives, so no chunk of it
 * waits in a stream's buffer (where it would outlive V8's young generation and keep memory growing with the
 * output), and a slow disk slows the reading of the attach stream instead of queueing bytes. Writing to a
 * local file is a page-cache copy (Node writes `process.stdout` to a file synchronously too).
 *
 * A failed write (a full disk) is remembered, not thrown: the run goes on, later writes are skipped and
 * {@link RunLog.close} reports it.
 */
class SyncFile {
  private readonly fd: number;
  failure: Error | undefined;

  constructor(readonly file: string) {
    this.fd = openSync(file, 'w', 0o600);
  }

  /** Appends `pieces` in order, every byte of them. */
  write(...pieces: Array<Buffer | string>): void {
    if (this.failure) return;
    try {
      writeAll(this.fd, pieces.map((piece) => (typeof piece === 'string' ? Buffer.from(piece) : piece)));
    } catch (error) {
      this.failure = error as Error;
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** `writevSync` until every byte is written (it may write fewer than asked). */
function writeAll(fd: number, pieces: Buffer[]): void {
  const rest = pieces.filter((piece) => piece.length > 0);
  while (rest.length > 0) {
    let written = writevSync(fd, rest);
    while (rest.length > 0 && written >= rest[0]!.length) written -= rest.shift()!.length;
    if (written > 0) rest[0] = rest[0]!.subarray(written);
  }
}

const NEWLINE = Buffer.from('\n');

/** Open log files of one run. */
export class RunLog {
  private readonly agentStream: SyncFile;
  private readonly agentStderr: SyncFile;
  private readonly toolLog: WriteStream;

  private constructor(
    readonly dir: string,
    private readonly redact: (text: string) => string,
    private readonly redactBytes: (bytes: Buffer) => Buffer,
  ) {
    this.agentStream = new SyncFile(path.join(dir, 'agent.stream.jsonl'));
    this.agentStderr = new SyncFile(path.join(dir, 'agent.stderr.log'));
    this.toolLog = createWriteStream(path.join(dir, 'agent-worker.log'), { mode: 0o600 });
  }

  /** Creates `<root>/<runId>/` (mode 0700) and opens its files. */
  static async open(root: string, runId: string, secrets: string[], shapes: readonly SecretShape[] = []): Promise<RunLog> {
    const dir = path.join(root, runId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new RunLog(dir, makeRedactor(secrets, shapes), makeByteRedactor(secrets, shapes));
  }

  /**
   * Appends one line of agent output (UTF-8 bytes or text, without its newline) and a newline, before it
   * returns: `line` may be reused afterwards. Bytes are written as they are unless they hold a secret
   * (see {@link makeByteRedactor}).
   */
  agentLine(line: Buffer | string): void {
    if (typeof line === 'string') this.agentStream.write(`${this.redact(line)}\n`);
    else this.agentStream.write(this.redactBytes(line), NEWLINE);
  }

  /**
   * Appends a piece of an over-long line of agent output (its newline comes with the last piece, `end`).
   * Secrets are redacted piece by piece.
   */
  agentPiece(piece: string, end = false): void {
    this.agentStream.write(end ? `${this.redact(piece)}\n` : this.redact(piece));
  }

  /** Appends container stderr. */
  stderr(text: string): void {
    this.agentStderr.write(this.redact(text));
  }

  /** Appends a timestamped line to the tool's own log. */
  note(message: string): void {
    this.toolLog.write(`${new Date().toISOString()} ${this.redact(message)}\n`);
  }

  /** Writes `run.json` (mode 0600): the run's {@link RunInfo}, pretty JSON. */
  async writeInfo(info: RunInfo): Promise<void> {
    await writeFile(path.join(this.dir, 'run.json'), `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  }

  /** Writes `report.json`. */
  async writeReport(report: RunReport): Promise<void> {
    await writeFile(path.join(this.dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`, { mode: 0o600 });
  }

  /** What could not be written of the agent's output (e.g. on a full disk), one sentence per file; empty when all was. */
  writeFailures(): string[] {
    return [this.agentStream, this.agentStderr].flatMap((file) => (file.failure ? [`could not write ${file.file} (${file.failure.message}); the rest of it is missing`] : []));
  }

  /** Closes every file, flushing the tool's log. */
  async close(): Promise<void> {
    this.agentStream.close();
    this.agentStderr.close();
    await new Promise<void>((resolve) => (this.toolLog.closed ? resolve() : this.toolLog.end(resolve)));
  }
}

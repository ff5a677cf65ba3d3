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
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { RunReport } from './types.js';

/** Root of all run folders for an environment. */
export function runsRoot(env: NodeJS.ProcessEnv): string {
  const state = env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : path.join(os.homedir(), '.local', 'state');
  return path.join(state, 'agent-worker', 'runs');
}

/** Replaces every occurrence of the given secret values (and anything shaped like an Anthropic key) with `[REDACTED]`. */
export function makeRedactor(secrets: string[]): (text: string) => string {
  const values = secrets.filter((value) => value.length >= 8);
  const keyShape = /sk-ant-[A-Za-z0-9_-]{8,}/g;
  return (text) => {
    let out = text;
    for (const value of values) if (out.includes(value)) out = out.split(value).join('[REDACTED]');
    return out.replace(keyShape, '[REDACTED]');
  };
}

/**
 * {@link makeRedactor} for bytes: returns `bytes` itself (no copy) when redacting their UTF-8 text would
 * change nothing, else the UTF-8 bytes of the redacted text. The text is only decoded when a cheap byte
 * search finds a secret value or `sk-ant-`, or when the bytes are not valid UTF-8 (decoding replaces
 * those with U+FFFD, as writing the decoded text always did).
 */
export function makeByteRedactor(secrets: string[]): (bytes: Buffer) => Buffer {
  const redact = makeRedactor(secrets);
  // Every change the text redactor makes starts at a secret value or at `sk-ant-` (its replacement,
  // `[REDACTED]`, cannot complete either), and valid UTF-8 holds a string's bytes where the text holds it.
  const needles = [...secrets.filter((value) => value.length >= 8), 'sk-ant-'].map((value) => Buffer.from(value, 'utf8'));
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

const NEWLINE = Buffer.from('\n');

/** Open log files of one run. */
export class RunLog {
  private readonly agentStream: WriteStream;
  private readonly agentStderr: WriteStream;
  private readonly toolLog: WriteStream;

  private constructor(
    readonly dir: string,
    private readonly redact: (text: string) => string,
    private readonly redactBytes: (bytes: Buffer) => Buffer,
  ) {
    this.agentStream = createWriteStream(path.join(dir, 'agent.stream.jsonl'), { mode: 0o600 });
    this.agentStderr = createWriteStream(path.join(dir, 'agent.stderr.log'), { mode: 0o600 });
    this.toolLog = createWriteStream(path.join(dir, 'agent-worker.log'), { mode: 0o600 });
  }

  /** Creates `<root>/<runId>/` (mode 0700) and opens its files. */
  static async open(root: string, runId: string, secrets: string[]): Promise<RunLog> {
    const dir = path.join(root, runId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new RunLog(dir, makeRedactor(secrets), makeByteRedactor(secrets));
  }

  /**
   * Appends one line of agent output (UTF-8 bytes or text, without its newline) and a newline. Bytes are
   * written as they are unless they hold a secret (see {@link makeByteRedactor}). `pieces` are the line's
   * bytes again, in order, as Buffers that stay unchanged until written (default: `line` itself); they are
   * what is written, so `line` may be reused once this returns. Returns false when the caller should wait
   * for {@link waitDrain}.
   */
  agentLine(line: Buffer | string, pieces: readonly Buffer[] = typeof line === 'string' ? [] : [line]): boolean {
    if (typeof line === 'string') return this.agentStream.write(`${this.redact(line)}\n`);
    const redacted = this.redactBytes(line);
    // Corked, the pieces and the newline go out in one writev, none of them copied.
    this.agentStream.cork();
    if (redacted === line) {
      for (const piece of pieces) if (piece.length > 0) this.agentStream.write(piece);
    } else {
      this.agentStream.write(redacted);
    }
    const flushed = this.agentStream.write(NEWLINE);
    this.agentStream.uncork();
    return flushed;
  }

  /**
   * Appends a piece of an over-long line of agent output (its newline comes with the last piece,
   * `end`). Secrets are redacted piece by piece. Returns false when the caller should wait for {@link waitDrain}.
   */
  agentPiece(piece: string, end = false): boolean {
    return this.agentStream.write(end ? `${this.redact(piece)}\n` : this.redact(piece));
  }

  /** Appends container stderr. Returns false when the caller should wait for {@link waitDrain}. */
  stderr(text: string): boolean {
    return this.agentStderr.write(this.redact(text));
  }

  /** Resolves once the agent stream's buffer has drained. */
  waitDrain(): Promise<void> {
    return new Promise((resolve) => this.agentStream.once('drain', resolve));
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

  /** Flushes and closes every file. */
  async close(): Promise<void> {
    await Promise.all(
      [this.agentStream, this.agentStderr, this.toolLog].map(
        (stream) => new Promise<void>((resolve) => (stream.closed ? resolve() : stream.end(resolve))),
      ),
    );
  }
}

/**
 * The run's output where the host cannot copy files out of the agent's container (a swarm job: the manager has no
 * archive API into a task's container). The entrypoint's hand-off script (container/handoff.sh `out`) writes one
 * block on the job's stdout once the work is collected:
 *
 *     agent-worker-out:<nonce>:begin
 *     <a tar, base64, one line per 76 characters>
 *     agent-worker-out:<nonce>:end:<bytes>:<sha256 hex of the tar>
 *
 * The nonce (32 hex digits) is handed in root-only, so the agent cannot forge a block; its lines look like any other
 * output. {@link OutBlockReader} takes the job's stdout line by line, passes the agent's lines on, and writes the
 * block's bytes to a file as they arrive (memory bounded by one write buffer, never the whole block).
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';

/** The marker's prefix; the whole marker is `agent-worker-out:<nonce>:…`. */
const MARKER = 'agent-worker-out';
/** Decoded bytes gathered before one write to the file. */
const WRITE_CHUNK_BYTES = 1024 * 1024;

/** A new nonce for a run's output block: 32 lower-case hex digits. */
export function newOutNonce(): string {
  return randomBytes(16).toString('hex');
}

/** Thrown by {@link OutBlockReader.finish} when a block began but did not arrive whole and intact. */
export class OutBlockError extends Error {
  override name = 'OutBlockError';
}

/** A block that arrived whole: its tar, written to the reader's file. */
export interface OutBlock {
  /** The file the tar was written to. */
  file: string;
  /** Its size in bytes, as the block's end line declared and as received. */
  bytes: number;
}

/**
 * Reads the output block out of a job's stdout, line by line (lines without their `\n`).
 * Lines before and after the block are the agent's; a second block replaces the first (the last one written is the
 * work as it ended).
 */
export class OutBlockReader {
  private readonly begin: string;
  private readonly endPrefix: string;
  private fd: number | undefined;
  private hash: Hash | undefined;
  private received = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private done: OutBlock | undefined;
  private problem: string | undefined;

  /**
   * @param nonce the run's nonce ({@link newOutNonce}).
   * @param file where the block's tar is written (created or truncated when a block begins, mode 0600).
   */
  constructor(
    nonce: string,
    private readonly file: string,
  ) {
    if (!/^[0-9a-f]{32}$/.test(nonce)) throw new Error('the output nonce must be 32 lower-case hex digits');
    this.begin = `${MARKER}:${nonce}:begin`;
    this.endPrefix = `${MARKER}:${nonce}:end:`;
  }

  /** Whether a block is being read (its begin line arrived, its end line not yet). */
  get inBlock(): boolean {
    return this.fd !== undefined;
  }

  /** Whether a block has ended (arrived whole, or found damaged or interrupted); reading it is {@link finish}'s. */
  get ended(): boolean {
    return this.fd === undefined && (this.done !== undefined || this.problem !== undefined);
  }

  /**
   * Takes one line of the job's stdout.
   * @returns true when the line belonged to the block (the caller drops it), false when it is the agent's.
   * @throws Error when the file cannot be written.
   */
  line(text: string): boolean {
    const line = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (line === this.begin) {
      this.close();
      this.fd = openSync(this.file, 'w', 0o600);
      this.hash = createHash('sha256');
      this.received = 0;
      this.done = undefined;
      this.problem = undefined;
      return true;
    }
    if (this.fd === undefined) return false;
    if (line.startsWith(this.endPrefix)) {
      this.flush();
      const [bytes, sum] = line.slice(this.endPrefix.length).split(':');
      const digest = this.hash!.digest('hex');
      this.close();
      if (Number(bytes) !== this.received || sum !== digest) {
        this.problem = `the work's archive arrived damaged (${this.received} of ${bytes} bytes, sha256 ${digest.slice(0, 12)} instead of ${String(sum).slice(0, 12)})`;
      } else {
        this.done = { file: this.file, bytes: this.received };
      }
      return true;
    }
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(line) || line.length % 4 !== 0) {
      this.close();
      this.problem = 'the work\'s archive was interrupted by other output';
      return true;
    }
    const bytes = Buffer.from(line, 'base64');
    this.hash!.update(bytes);
    this.received += bytes.length;
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.pendingBytes >= WRITE_CHUNK_BYTES) this.flush();
    return true;
  }

  /**
   * The block once the stream has ended.
   * @returns the block, or undefined when none began (the job ended before its work was collected).
   * @throws OutBlockError when a block began but was cut off, interrupted or damaged.
   */
  finish(): OutBlock | undefined {
    if (this.fd !== undefined) {
      this.close();
      this.problem = `the work's archive was cut off after ${this.received} bytes`;
    }
    if (this.problem) throw new OutBlockError(this.problem);
    return this.done;
  }

  private flush(): void {
    if (this.fd === undefined || this.pendingBytes === 0) return;
    const chunk = Buffer.concat(this.pending, this.pendingBytes);
    let written = 0;
    while (written < chunk.length) written += writeSync(this.fd, chunk, written);
    this.pending = [];
    this.pendingBytes = 0;
  }

  private close(): void {
    if (this.fd === undefined) return;
    this.pending = [];
    this.pendingBytes = 0;
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Reads Docker's multiplexed attach stream (a container without a TTY). Source: Docker Engine API,
 * "Attach to a container", section "Stream format": each frame is an 8-byte header — the stream type
 * (0 stdin, 1 stdout, 2 stderr), three zero bytes, the payload length as a big-endian uint32 — followed by
 * the payload.
 *
 * Why not docker-modem's `demuxStream`: it concatenates each incoming chunk onto the unread rest and
 * copies the rest again after every frame, so every byte of output is copied several times; at 200 MB
 * of agent output those short-lived copies held 40+ MB of ArrayBuffers at the peak (measured), which
 * made the tool's memory grow with the agent's output. This hands out views of the chunks as they
 * arrive instead: a frame that spans chunks reaches its sink in several pieces, and no byte is copied.
 */

/** Where demultiplexed output goes: views into the attach stream's chunks, in order, any piece size. */
export interface DemuxSinks {
  stdout(piece: Buffer): void;
  stderr(piece: Buffer): void;
}

/** Size of a frame header, in bytes. */
const HEADER_BYTES = 8;
/** Stream type of standard error in a frame header (0 and 1 are treated as standard output). */
const STDERR_TYPE = 2;

/** A push parser for the attach stream's frames. */
export class FrameDemuxer {
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  /** Payload bytes of the current frame still to come; 0 while a header is read. */
  private remaining = 0;
  private type = 0;

  constructor(private readonly sinks: DemuxSinks) {}

  /** Feeds the next chunk of the attach stream. */
  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.remaining === 0) {
        const take = Math.min(HEADER_BYTES - this.headerFill, chunk.length - at);
        chunk.copy(this.header, this.headerFill, at, at + take);
        this.headerFill += take;
        at += take;
        if (this.headerFill < HEADER_BYTES) return;
        this.headerFill = 0;
        this.type = this.header[0]!;
        this.remaining = this.header.readUInt32BE(4);
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - at);
      const piece = chunk.subarray(at, at + take);
      at += take;
      this.remaining -= take;
      if (this.type === STDERR_TYPE) this.sinks.stderr(piece);
      else this.sinks.stdout(piece);
    }
  }

  /** True when the stream ended in the middle of a frame (its header or its payload). */
  get partial(): boolean {
    return this.remaining > 0 || this.headerFill > 0;
  }
}

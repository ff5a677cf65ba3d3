/**
 * Splits a byte stream into lines without holding more than one line in memory, and never more
 * than `maxLineBytes` of any line. A longer line is handed on in pieces as it arrives (to
 * {@link LongLineSink}, e.g. the run log) and reported to the line handler cut to the cap.
 *
 * Neither splitter keeps a pushed chunk after `push` returns: a line within one chunk is handed on as a
 * view of it, and the bytes of a line split between chunks are copied as they arrive into a buffer the
 * splitter owns and reuses. So a chunk dies young: holding views across event-loop turns let V8 promote
 * the chunks (Node's HTTP parser copies every body piece into its own ArrayBuffer) to the old generation,
 * where they stayed until a full GC and made peak memory grow with the amount of output (measured with
 * heaptrack, `npm run bench`).
 *
 * {@link ByteLineSplitter} hands lines on as bytes; {@link LineSplitter} as strings.
 */

/** Called once per line, without its newline. `truncated` is true when the line was longer than the cap. */
export type LineHandler = (line: string, truncated: boolean) => void;

/**
 * Called once per line, as bytes without its newline (nor a `\r` before it). `truncated` is true when
 * the line was longer than the cap. `line` is valid only during the call: it is a view of the pushed
 * chunk or of the splitter's buffer, reused for the next line.
 */
export type ByteLineHandler = (line: Buffer, truncated: boolean) => void;

/**
 * Receives a line longer than the cap, in order: its first `maxLineBytes`, then the rest in pieces, then
 * its end. Each piece is valid only during the call.
 */
export interface LongLineSink {
  start(head: Buffer): void;
  chunk(piece: Buffer): void;
  end(): void;
}

/** Default longest line kept whole, in bytes. */
const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;
/**
 * Longest line joined in a buffer the splitter keeps and reuses, in bytes; a longer line (split between
 * chunks) is joined in a buffer of its own, dropped at its end, so a rare huge line does not stay in memory.
 */
const REUSED_BUFFER_MAX_BYTES = 4 * 1024 * 1024;
/** Smallest buffer a line is joined in, in bytes. */
const MIN_JOIN_BYTES = 64 * 1024;

/**
 * Incremental newline splitter handing lines on as bytes: a line within one chunk as a view of it, a line
 * split between chunks as a view of the splitter's reused buffer.
 */
export class ByteLineSplitter {
  /** Bytes of the current line held in {@link joined} (up to the cap). */
  private size = 0;
  private overflow = false;
  /** Where a line split between chunks is joined: reused from line to line up to {@link REUSED_BUFFER_MAX_BYTES}. */
  private joined: Buffer | undefined;

  /**
   * @param onLine receives each complete line (a long one cut to the cap).
   * @param maxLineBytes longest line kept whole, in bytes (default 16 MiB).
   * @param longLine receives every byte of lines longer than the cap, as they arrive.
   */
  constructor(
    private readonly onLine: ByteLineHandler,
    readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES,
    private readonly longLine?: LongLineSink,
  ) {}

  /** Feeds a chunk; calls the handler for every line it completes. The chunk is not kept. */
  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) {
        this.keep(chunk.subarray(start));
        return;
      }
      if (this.size === 0 && !this.overflow && newline - start <= this.maxLineBytes) {
        // The whole line is in this chunk: handed on as a view, nothing kept.
        this.onLine(stripCr(chunk.subarray(start, newline)), false);
      } else {
        this.keep(chunk.subarray(start, newline));
        this.emit();
      }
      start = newline + 1;
    }
  }

  /** Flushes a last line that had no newline. */
  end(): void {
    if (this.size > 0 || this.overflow) this.emit();
  }

  private keep(piece: Buffer): void {
    if (piece.length === 0) return;
    if (this.overflow) {
      this.longLine?.chunk(piece);
      return;
    }
    const room = this.maxLineBytes - this.size;
    const kept = piece.length > room ? piece.subarray(0, room) : piece;
    if (kept.length > 0) {
      this.reserve(this.size + kept.length);
      this.size += kept.copy(this.joined!, this.size);
    }
    if (kept.length < piece.length) {
      this.overflow = true;
      this.longLine?.start(this.joined!.subarray(0, this.size));
      this.longLine?.chunk(piece.subarray(kept.length));
    }
  }

  /** Makes {@link joined} hold at least `bytes`, keeping what it holds (it grows in powers of two). */
  private reserve(bytes: number): void {
    if (this.joined && this.joined.length >= bytes) return;
    const grown = Buffer.allocUnsafeSlow(Math.min(this.maxLineBytes, Math.max(MIN_JOIN_BYTES, 2 ** Math.ceil(Math.log2(bytes)))));
    if (this.joined && this.size > 0) this.joined.copy(grown, 0, 0, this.size);
    this.joined = grown;
  }

  private emit(): void {
    const truncated = this.overflow;
    if (truncated) this.longLine?.end();
    const line = stripCr(this.joined ? this.joined.subarray(0, this.size) : Buffer.alloc(0));
    this.size = 0;
    this.overflow = false;
    this.onLine(line, truncated);
    // A huge line's buffer is not kept for the next one.
    if (this.joined && this.joined.length > REUSED_BUFFER_MAX_BYTES) this.joined = undefined;
  }
}

/** `line` without a final `\r` (a view, not a copy). */
function stripCr(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line;
}

/** Incremental newline splitter for UTF-8 byte chunks, handing lines on as strings. The caller may reuse its chunks. */
export class LineSplitter extends ByteLineSplitter {
  /**
   * @param onLine receives each complete line (a long one cut to the cap).
   * @param maxLineBytes longest line kept whole, in bytes (default 16 MiB).
   * @param longLine receives every byte of lines longer than the cap, as they arrive.
   */
  constructor(onLine: LineHandler, maxLineBytes = DEFAULT_MAX_LINE_BYTES, longLine?: LongLineSink) {
    super((line, truncated) => onLine(line.toString('utf8'), truncated), maxLineBytes, longLine);
  }
}

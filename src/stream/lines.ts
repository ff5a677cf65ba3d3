/**
 * Splits a byte stream into lines without holding more than one line in memory, and never more
 * than `maxLineBytes` of any line. A longer line is handed on in pieces as it arrives (to
 * {@link LongLineSink}, e.g. the run log) and reported to the line handler cut to the cap.
 *
 * {@link ByteLineSplitter} hands lines on as bytes and copies nothing it does not have to: for output
 * streams whose chunks are never written to again (Node stream `data` chunks, docker-modem's demux).
 * {@link LineSplitter} hands lines on as strings and copies what it keeps, so a caller may reuse its
 * read buffer.
 */

/** Called once per line, without its newline. `truncated` is true when the line was longer than the cap. */
export type LineHandler = (line: string, truncated: boolean) => void;

/**
 * Called once per line, as bytes without its newline (nor a `\r` before it). `truncated` is true when
 * the line was longer than the cap. `line` is valid only during the call: it may be the splitter's
 * buffer, reused for the next line. `pieces` are the same bytes, in order, as views of the pushed
 * chunks, which stay valid (e.g. to be written out without a copy).
 */
export type ByteLineHandler = (line: Buffer, truncated: boolean, pieces: readonly Buffer[]) => void;

/** Receives a line longer than the cap, in order: its first `maxLineBytes`, then the rest in pieces, then its end. */
export interface LongLineSink {
  start(head: Buffer): void;
  chunk(piece: Buffer): void;
  end(): void;
}

/** Default longest line kept whole, in bytes. */
const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;
/**
 * Longest line joined in a buffer the splitter keeps and reuses, in bytes; a longer line (split between
 * chunks) is joined in a buffer of its own, so a rare huge line does not stay in memory.
 */
const REUSED_BUFFER_MAX_BYTES = 4 * 1024 * 1024;
/** Bytes of a line that {@link ByteLineSplitter} keeps as views of the pushed chunks; the rest it copies. */
const KEPT_VIEWS_MAX_BYTES = 1024 * 1024;

/** The newline splitting shared by both splitters; `copy` says whether kept bytes are copied out of the chunk. */
abstract class Splitter {
  private parts: Buffer[] = [];
  private size = 0;
  private overflow = false;
  /** Where a line split between chunks is joined; reused from line to line. */
  private joined: Buffer | undefined;

  protected constructor(
    readonly maxLineBytes: number,
    private readonly longLine: LongLineSink | undefined,
    private readonly copy: boolean,
  ) {}

  /** Hands on a line; `line` is valid only during the call, `pieces` (its bytes, in order) stay valid. */
  protected abstract emitLine(line: Buffer, truncated: boolean, pieces: readonly Buffer[]): void;

  /** Feeds a chunk; calls the handler for every line it completes. */
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
        const line = stripCr(chunk.subarray(start, newline));
        this.emitLine(line, false, [line]);
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
      this.longLine?.chunk(this.copy ? Buffer.from(piece) : piece);
      return;
    }
    const room = this.maxLineBytes - this.size;
    const kept = piece.length > room ? piece.subarray(0, room) : piece;
    if (kept.length > 0) {
      // A view can pin more than its own bytes (the rest of the chunk's memory): only a line's first bytes are views.
      this.parts.push(this.copy || this.size >= KEPT_VIEWS_MAX_BYTES ? Buffer.from(kept) : kept);
      this.size += kept.length;
    }
    if (kept.length < piece.length) {
      // The head is joined once, for the sink now and the handler at the line's end.
      const head = Buffer.concat(this.parts, this.size);
      this.parts = [head];
      this.overflow = true;
      this.longLine?.start(head);
      const rest = piece.subarray(kept.length);
      this.longLine?.chunk(this.copy ? Buffer.from(rest) : rest);
    }
  }

  private emit(): void {
    const { parts, size } = this;
    const truncated = this.overflow;
    if (truncated) this.longLine?.end();
    this.parts = [];
    this.size = 0;
    this.overflow = false;
    const line = stripCr(parts.length === 1 ? parts[0]! : this.join(parts, size));
    if (line.length < size) {
      // The `\r` cut from the line ends its last piece, or is that piece.
      const last = parts.pop()!;
      if (last.length > 1) parts.push(last.subarray(0, -1));
    }
    this.emitLine(line, truncated, parts);
  }

  /** The pieces' bytes in one buffer: the reused one when the line fits in {@link REUSED_BUFFER_MAX_BYTES}. */
  private join(parts: Buffer[], size: number): Buffer {
    if (size > REUSED_BUFFER_MAX_BYTES) return Buffer.concat(parts, size);
    if (!this.joined || this.joined.length < size) {
      this.joined = Buffer.allocUnsafeSlow(Math.min(REUSED_BUFFER_MAX_BYTES, Math.max(64 * 1024, 2 ** Math.ceil(Math.log2(size)))));
    }
    let at = 0;
    for (const part of parts) at += part.copy(this.joined, at);
    return this.joined.subarray(0, size);
  }
}

/** `line` without a final `\r` (a view, not a copy). */
function stripCr(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line;
}

/**
 * Incremental newline splitter handing lines on as bytes, with few copies: a line within one chunk is
 * handed on as a view of it, and the first {@link KEPT_VIEWS_MAX_BYTES} of a line that spans chunks are held
 * as views (handed on as `pieces`; later bytes are copied), so a pushed chunk must not be written to
 * afterwards. A line split between chunks is joined for the handler in a buffer reused from line to line.
 */
export class ByteLineSplitter extends Splitter {
  /**
   * @param onLine receives each complete line (a long one cut to the cap).
   * @param maxLineBytes longest line kept whole, in bytes (default 16 MiB).
   * @param longLine receives every byte of lines longer than the cap, as they arrive (views, not copies).
   */
  constructor(
    private readonly onLine: ByteLineHandler,
    maxLineBytes = DEFAULT_MAX_LINE_BYTES,
    longLine?: LongLineSink,
  ) {
    super(maxLineBytes, longLine, false);
  }

  protected emitLine(line: Buffer, truncated: boolean, pieces: readonly Buffer[]): void {
    this.onLine(line, truncated, pieces);
  }
}

/** Incremental newline splitter for UTF-8 byte chunks, handing lines on as strings. The caller may reuse its chunks. */
export class LineSplitter extends Splitter {
  /**
   * @param onLine receives each complete line (a long one cut to the cap).
   * @param maxLineBytes longest line kept whole, in bytes (default 16 MiB).
   * @param longLine receives every byte of lines longer than the cap, as they arrive (copies).
   */
  constructor(
    private readonly onLine: LineHandler,
    maxLineBytes = DEFAULT_MAX_LINE_BYTES,
    longLine?: LongLineSink,
  ) {
    super(maxLineBytes, longLine, true);
  }

  protected emitLine(line: Buffer, truncated: boolean): void {
    this.onLine(line.toString('utf8'), truncated);
  }
}

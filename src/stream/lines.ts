/**
 * Splits a byte stream into lines without holding more than one line in memory, and never more
 * than {@link LineSplitter.maxLineBytes} of any line. A longer line is handed on in pieces as it
 * arrives (to {@link LongLineSink}, e.g. the run log) and reported to the line handler cut to the cap.
 */

/** Called once per line, without its newline. `truncated` is true when the line was longer than the cap. */
export type LineHandler = (line: string, truncated: boolean) => void;

/** Receives a line longer than the cap, in order: its first `maxLineBytes`, then the rest in pieces, then its end. */
export interface LongLineSink {
  start(head: Buffer): void;
  chunk(piece: Buffer): void;
  end(): void;
}

/** Incremental newline splitter for UTF-8 byte chunks. */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private overflow = false;

  /**
   * @param onLine receives each complete line (a long one cut to the cap).
   * @param maxLineBytes longest line kept whole, in bytes (default 16 MiB).
   * @param longLine receives every byte of lines longer than the cap, as they arrive.
   */
  constructor(
    private readonly onLine: LineHandler,
    readonly maxLineBytes = 16 * 1024 * 1024,
    private readonly longLine?: LongLineSink,
  ) {}

  /** Feeds a chunk; calls the handler for every line it completes. */
  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) {
        this.keep(chunk.subarray(start));
        return;
      }
      this.keep(chunk.subarray(start, newline));
      this.emit();
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
      this.longLine?.chunk(Buffer.from(piece));
      return;
    }
    const room = this.maxLineBytes - this.size;
    const kept = piece.length > room ? piece.subarray(0, room) : piece;
    // Copy: the caller's chunk may be reused.
    if (kept.length > 0) {
      this.parts.push(Buffer.from(kept));
      this.size += kept.length;
    }
    if (kept.length < piece.length) {
      this.overflow = true;
      this.longLine?.start(Buffer.concat(this.parts, this.size));
      this.longLine?.chunk(Buffer.from(piece.subarray(kept.length)));
    }
  }

  private emit(): void {
    let text = this.parts.length === 1 ? this.parts[0]!.toString('utf8') : Buffer.concat(this.parts, this.size).toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    const truncated = this.overflow;
    if (truncated) this.longLine?.end();
    this.parts = [];
    this.size = 0;
    this.overflow = false;
    this.onLine(text, truncated);
  }
}

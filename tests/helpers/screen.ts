/**
 * The screen of a fake terminal: characters put at a cursor, wrapping at the last column (counted in `wraps`), `\n`,
 * `\r`, tabs every 8 columns; lines erased from the cursor or whole. The tests' fake terminals (ora's tty calls,
 * the batch view's CSI sequences) drive it.
 */
export class Screen {
  /** Lines the terminal had to wrap. */
  wraps = 0;
  row = 0;
  col = 0;
  private readonly rowsOfChars: string[][] = [[]];

  constructor(readonly columns: number) {}

  /** The line the cursor is on (created when missing). */
  line(): string[] {
    while (this.rowsOfChars.length <= this.row) this.rowsOfChars.push([]);
    return this.rowsOfChars[this.row]!;
  }

  /** Drops every line below the cursor's and what is right of the cursor on its own (CSI `J`). */
  eraseBelow(): void {
    this.line().length = Math.min(this.line().length, this.col);
    this.rowsOfChars.length = this.row + 1;
  }

  put(char: string): void {
    if (char === '\n') {
      this.row += 1;
      this.col = 0;
      this.line();
    } else if (char === '\r') {
      this.col = 0;
    } else if (char === '\t') {
      this.col = Math.min(this.columns - 1, (Math.floor(this.col / 8) + 1) * 8);
    } else {
      if (this.col >= this.columns) {
        this.row += 1;
        this.col = 0;
        this.wraps += 1;
      }
      const line = this.line();
      while (line.length < this.col) line.push(' ');
      line[this.col] = char;
      this.col += 1;
    }
  }

  /** The screen as text: one entry per line, trailing blanks and empty lines at the end dropped. */
  lines(): string[] {
    const lines = this.rowsOfChars.map((line) => Array.from(line, (char) => char ?? ' ').join('').trimEnd());
    while (lines.length > 0 && lines.at(-1) === '') lines.pop();
    return lines;
  }
}

/**
 * Parsing of git's machine-readable change listings into {@link FileChange} records.
 *
 * Format source: git-diff(1), options `--raw`, `--numstat`, `--name-status` and `-z`. With `-z` paths are written
 * verbatim (no quoting), so spaces, tabs, newlines and non-ASCII bytes round-trip.
 */
import type { ChangeSummary, FileChange, FileChangeStatus } from '../report/types.js';

/** One record of `git diff --numstat -z`. `added`/`removed` are null for binary files (`-\t-`). */
interface NumstatRecord {
  added: number | null;
  removed: number | null;
  path: string;
  oldPath?: string;
}

/** One record of `git diff --name-status -z` (or of `--raw -z`). `letter` is the status letter without its score (`R100` → `R`). */
interface NameStatusRecord {
  letter: string;
  path: string;
  oldPath?: string;
}

/**
 * Joins the outputs of `git diff --numstat -z -M <base> <head>` and `git diff --name-status -z -M <base> <head>`
 * (same base, head and options) into one {@link FileChange} per changed file, in git's order.
 *
 * - numstat `-z` records: `added\tremoved\tpath\0`; for renames and copies `added\tremoved\t\0oldpath\0newpath\0`;
 *   binary files have `-\t-` (→ `added = removed = 0`, `binary = true`).
 * - name-status `-z` records: `X\0path\0`; for renames and copies `Xnnn\0oldpath\0newpath\0` (nnn = similarity %).
 * - Status letters: A → added, D → deleted, R → renamed (with `oldPath`), M, T, C and any other letter → modified
 *   (a copy keeps only its new path, since its source still exists).
 *
 * The two listings are joined on the destination path, which git lists at most once per diff. A numstat record
 * missing from the name-status listing gets `renamed` when it has an old path, else `modified`.
 *
 * Both strings must be decoded from git's bytes as UTF-8 (paths that are not valid UTF-8 will not round-trip).
 *
 * @param numstatZ - stdout of `git diff --numstat -z -M …`; empty when nothing changed.
 * @param nameStatusZ - stdout of `git diff --name-status -z -M …` for the same diff.
 * @returns the changed files, in the order of the numstat listing.
 * @throws Error when either input does not follow the format above (a record cut short or non-numeric counts).
 */
export function parseNumstatZ(numstatZ: string, nameStatusZ: string): FileChange[] {
  return joinChanges(parseNumstatRecords(splitZ(numstatZ), 0), parseNameStatusZ(nameStatusZ));
}

/**
 * Parses the output of ONE `git diff --raw --numstat -z -M <base> <head>` (one git process instead of a numstat
 * and a name-status run) into one {@link FileChange} per changed file, in git's order, exactly as
 * {@link parseNumstatZ} does for the two listings.
 *
 * git writes every `--raw` record first, then every `--numstat` record, for the same files in the same order:
 * - raw `-z` records: `:<old mode> <new mode> <old sha> <new sha> <X>[score]\0path\0`; for renames and copies
 *   `…Rnnn\0oldpath\0newpath\0`. A raw header always starts with `:`, a numstat record never does (it starts with
 *   a digit or `-`), so the two sections are told apart at record boundaries.
 * - numstat `-z` records as described at {@link parseNumstatZ}.
 *
 * @param rawNumstatZ - stdout of `git diff --raw --numstat -z -M …`, decoded as UTF-8; empty when nothing changed.
 * @returns the changed files, in the order of the numstat listing.
 * @throws Error when the input does not follow the format above (a record cut short, a bad header or counts).
 */
export function parseRawNumstatZ(rawNumstatZ: string): FileChange[] {
  const fields = splitZ(rawNumstatZ);
  const statuses: NameStatusRecord[] = [];
  let i = 0;
  while (i < fields.length && fields[i]!.startsWith(':')) {
    const header = fields[i++]!;
    const match = RAW_HEADER.exec(header);
    if (!match) throw new Error(`git diff --raw: malformed record ${JSON.stringify(header.slice(0, 200))}`);
    i = readStatusPaths(fields, i, match[1]!, header, statuses);
  }
  return joinChanges(parseNumstatRecords(fields, i), statuses);
}

/** A `--raw` record's header: modes, object names (maybe abbreviated), status letter and optional score. */
const RAW_HEADER = /^:[0-7]+ [0-7]+ [0-9a-f]+\.{0,3} [0-9a-f]+\.{0,3} ([A-Z])\d*$/;

/** Joins numstat records with name-status records on the destination path (see {@link parseNumstatZ}). */
function joinChanges(numstat: NumstatRecord[], nameStatus: NameStatusRecord[]): FileChange[] {
  const statusByPath = new Map<string, NameStatusRecord>();
  for (const record of nameStatus) statusByPath.set(record.path, record);

  return numstat.map((n): FileChange => {
    const ns = statusByPath.get(n.path);
    const letter = ns?.letter ?? (n.oldPath !== undefined ? 'R' : 'M');
    const status = statusFromLetter(letter);
    const binary = n.added === null || n.removed === null;
    const change: FileChange = {
      path: n.path,
      status,
      added: n.added ?? 0,
      removed: n.removed ?? 0,
      binary,
    };
    const oldPath = n.oldPath ?? ns?.oldPath;
    if (status === 'renamed' && oldPath !== undefined) change.oldPath = oldPath;
    return change;
  });
}

/**
 * Totals over `files`: number of files, lines added and lines removed (binary files count as a changed file with 0
 * lines). `files` is kept as given.
 */
export function summarizeChanges(files: FileChange[]): ChangeSummary {
  let linesAdded = 0;
  let linesRemoved = 0;
  for (const f of files) {
    linesAdded += f.added;
    linesRemoved += f.removed;
  }
  return { filesChanged: files.length, linesAdded, linesRemoved, files };
}

/** Maps a `--name-status` letter (score removed) to a {@link FileChangeStatus}. */
function statusFromLetter(letter: string): FileChangeStatus {
  switch (letter) {
    case 'A':
      return 'added';
    case 'D':
      return 'deleted';
    case 'R':
      return 'renamed';
    default:
      return 'modified';
  }
}

/** Splits `-z` output into its NUL-terminated fields; the trailing empty field after the last NUL is dropped. */
function splitZ(text: string): string[] {
  if (text === '') return [];
  const fields = text.split('\0');
  if (fields[fields.length - 1] === '') fields.pop();
  return fields;
}

/** Parses `git diff --numstat -z` records from `fields[start]` to the end. @throws Error on a malformed record. */
function parseNumstatRecords(fields: string[], start: number): NumstatRecord[] {
  const records: NumstatRecord[] = [];
  let i = start;
  while (i < fields.length) {
    const head = fields[i++] ?? '';
    const tab1 = head.indexOf('\t');
    const tab2 = tab1 < 0 ? -1 : head.indexOf('\t', tab1 + 1);
    if (tab2 < 0) throw new Error(`git numstat: malformed record ${JSON.stringify(head.slice(0, 200))}`);
    const added = parseCount(head.slice(0, tab1));
    const removed = parseCount(head.slice(tab1 + 1, tab2));
    const path = head.slice(tab2 + 1);
    if (path !== '') {
      records.push({ added, removed, path });
      continue;
    }
    // Rename or copy: the two paths follow as their own NUL-terminated fields.
    const oldPath = fields[i++];
    const newPath = fields[i++];
    if (oldPath === undefined || newPath === undefined) {
      throw new Error('git numstat: rename record without its two paths');
    }
    records.push({ added, removed, path: newPath, oldPath });
  }
  return records;
}

/** Parses `git diff --name-status -z` output. @throws Error on a malformed record. */
function parseNameStatusZ(nameStatusZ: string): NameStatusRecord[] {
  const fields = splitZ(nameStatusZ);
  const records: NameStatusRecord[] = [];
  let i = 0;
  while (i < fields.length) {
    const status = fields[i++] ?? '';
    const letter = status.charAt(0);
    if (!/^[A-Z]$/.test(letter)) {
      throw new Error(`git name-status: malformed status ${JSON.stringify(status.slice(0, 200))}`);
    }
    i = readStatusPaths(fields, i, letter, status, records, 'git name-status');
  }
  return records;
}

/**
 * Reads the path (or, for R and C, the old and new paths) following a status at `fields[i]` into `records`.
 * @returns the index after the record. @throws Error naming `source` when a path is missing.
 */
function readStatusPaths(fields: string[], i: number, letter: string, status: string, records: NameStatusRecord[], source = 'git diff --raw'): number {
  const first = fields[i++];
  if (first === undefined) throw new Error(`${source}: status ${status} without a path`);
  if (letter === 'R' || letter === 'C') {
    const second = fields[i++];
    if (second === undefined) throw new Error(`${source}: status ${status} without its second path`);
    records.push({ letter, path: second, oldPath: first });
  } else {
    records.push({ letter, path: first });
  }
  return i;
}

/** `-` (binary) → null; a decimal count → its value. @throws Error otherwise. */
function parseCount(text: string): number | null {
  if (text === '-') return null;
  if (!/^\d+$/.test(text)) throw new Error(`git numstat: bad line count ${JSON.stringify(text)}`);
  return Number(text);
}

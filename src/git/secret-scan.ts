/**
 * Defence in depth on the branch: before the agent's work is committed (mount mode) or becomes the user's branch
 * (copy mode), every file it would hold is scanned for the credentials agent-worker was given, in the forms they
 * are most likely to be written in (as they are, URL-encoded, base64 and base64url at any byte offset). A file
 * that holds one never reaches the branch: it goes to the run's quarantine folder instead (mode 0700, beside the
 * `.git` entries {@link ./guard.ts} moves there), and the caller says so in the report's `warnings` (naming the
 * file, never the credential).
 *
 * Git runs here as its own child processes, with the same config as every other host git command
 * ({@link SAFE_CONFIG}: no hooks, no fsmonitor): the scan needs what simple-git does not give, namely paths and
 * contents as bytes (a path that is not UTF-8 must not slip past), standard input (`cat-file --batch`,
 * `update-index --index-info`, `--pathspec-from-file`) and object contents streamed rather than held whole.
 * None of the commands used runs a filter, textconv or hook.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { constants, createWriteStream } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, mkdtemp, open, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import createDebug from 'debug';
import { SAFE_CONFIG, type Repo } from './repo.js';

const log = createDebug('agent-worker:git');

/** Credentials shorter than this (in characters) are not looked for: they would match ordinary text. */
export const MIN_SECRET_CHARS = 8;
/** Bytes read at a time when a file is scanned, unless the caller says otherwise. */
export const SCAN_CHUNK_BYTES = 64 * 1024;
/** Files scanned at once in mount mode: enough to keep libuv's thread pool (4 threads) busy. */
const SCAN_CONCURRENCY = 8;
/** What a credential in a commit message or identity is replaced with (the run log's redaction word). */
const REDACTED = '[REDACTED]';

/**
 * The byte patterns that betray each secret in a file (secrets shorter than {@link MIN_SECRET_CHARS} characters
 * are ignored), without duplicates:
 * - the secret's UTF-8 bytes as they are;
 * - its `encodeURIComponent` form, when that differs (a credential pasted into a URL or a form body);
 * - its base64 core at each of the three byte offsets, and the base64url form of each core when that differs.
 *
 * Why three cores: base64 turns each 3-byte group into 4 characters, so how the secret's bytes come out depends on
 * where they start inside a larger encoded blob (a config file, a data URL, an encoded `user:password`): at an
 * offset that is 0, 1 or 2 mod 3. For offset k the secret is encoded behind k filler bytes, and only the characters
 * that depend on the secret's bits alone are kept: the first ceil(8k/6) characters also hold filler bits and are
 * stripped, and so are the characters at the end whose 6 bits reach past the secret's last byte (the last partial
 * group, which depends on whatever follows). The rest — the stable core — appears verbatim in the base64 of any
 * text that holds the secret at such an offset. (A blob wrapped into lines, as MIME and PEM do, can split a core
 * and is not caught, nor are other encodings such as hex.)
 */
export function secretPatterns(secrets: string[]): Buffer[] {
  const found = new Map<string, Buffer>();
  const add = (text: string): void => {
    if (text.length >= MIN_SECRET_CHARS) found.set(text, Buffer.from(text, 'utf8'));
  };
  for (const secret of secrets) {
    if (secret.length < MIN_SECRET_CHARS) continue;
    add(secret);
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) add(encoded);
    const bytes = Buffer.from(secret, 'utf8');
    for (const offset of [0, 1, 2]) {
      const core = base64Core(bytes, offset);
      add(core);
      const url = core.replace(/\+/g, '-').replace(/\//g, '_');
      if (url !== core) add(url);
    }
  }
  return [...found.values()];
}

/** The characters of base64(`offset` filler bytes + `bytes`) that depend on `bytes` alone (see {@link secretPatterns}). */
function base64Core(bytes: Buffer, offset: number): string {
  const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
  // Character j holds bits 6j..6j+5 of the input.
  const first = Math.ceil((8 * offset) / 6);
  const end = Math.floor((8 * (offset + bytes.length)) / 6);
  return encoded.slice(first, end);
}

/**
 * Finds any of `patterns` in bytes that arrive piece by piece: a match split between two pieces is found, and
 * between pieces only the last (longest pattern − 1) bytes are kept, so memory is bounded whatever the total size.
 */
export class PatternMatcher {
  private readonly overlap: number;
  private tail = Buffer.alloc(0);
  /** True once any pattern has been seen. */
  found = false;

  constructor(private readonly patterns: Buffer[]) {
    this.overlap = Math.max(0, ...patterns.map((pattern) => pattern.length - 1));
  }

  /** Scans the next piece (not kept: the caller may reuse its memory). @returns {@link found}. */
  push(piece: Buffer): boolean {
    if (this.found || piece.length === 0 || this.patterns.length === 0) return this.found;
    // A match across the seam starts in the kept tail and ends within the piece's first `overlap` bytes.
    if (this.tail.length > 0) {
      const seam = Buffer.concat([this.tail, piece.subarray(0, this.overlap)]);
      if (this.patterns.some((pattern) => seam.includes(pattern))) return (this.found = true);
    }
    if (this.patterns.some((pattern) => piece.includes(pattern))) return (this.found = true);
    const joined = piece.length >= this.overlap ? piece : Buffer.concat([this.tail, piece]);
    // A copy: the piece's memory is not held on to.
    this.tail = Buffer.from(joined.subarray(Math.max(0, joined.length - this.overlap)));
    return false;
  }
}

/**
 * Whether the file at `file` holds any of `patterns`. Read `chunkBytes` at a time (memory: one chunk plus twice
 * the longest pattern, whatever the file's size). A symlink is not followed: its own text (the target path) is
 * what counts. Anything else that is not a regular file (folder, FIFO, socket, device) holds nothing.
 * @throws the file system's error when the file cannot be read.
 */
export async function fileContainsSecret(file: string | Buffer, patterns: Buffer[], chunkBytes = SCAN_CHUNK_BYTES): Promise<boolean> {
  if (patterns.length === 0) return false;
  const info = await lstat(file);
  if (info.isSymbolicLink()) {
    const target = await readlink(file, { encoding: 'buffer' });
    return patterns.some((pattern) => target.includes(pattern));
  }
  if (!info.isFile()) return false;
  // O_NOFOLLOW: a file swapped for a symlink since lstat is refused rather than followed.
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const matcher = new PatternMatcher(patterns);
    const buffer = Buffer.alloc(chunkBytes);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, chunkBytes, null);
      if (bytesRead === 0) return false;
      if (matcher.push(buffer.subarray(0, bytesRead))) return true;
    }
  } finally {
    await handle.close();
  }
}

/** True when the path (bytes) itself holds one of `patterns`: a file named after a credential leaks it as well. */
function pathHasSecret(rel: Buffer, patterns: Buffer[]): boolean {
  return patterns.some((pattern) => rel.includes(pattern));
}

/**
 * A path as text for a warning: UTF-8 (bytes that are not are shown as U+FFFD), with any form of a credential
 * in the name replaced by `[REDACTED]`, so a warning never carries one.
 */
function displayPath(rel: Buffer, patterns: Buffer[]): string {
  let text = rel.toString('utf8');
  for (const pattern of patterns) text = text.split(pattern.toString('utf8')).join(REDACTED);
  return text;
}

/**
 * The warning for a file kept off the branch because it holds a credential (`path` as returned by
 * {@link quarantineSecretFiles} or {@link scrubCommits}: never the credential itself).
 */
export function credentialWarning(file: string, quarantineDir: string, workspace: 'mount' | 'copy'): string {
  return workspace === 'mount'
    ? `moved ${file} to ${quarantineDir}: it contains a credential given to agent-worker (the file is not committed)`
    : `took ${file} out of the agent's commits and put its last version in ${quarantineDir}: it contains a credential given to agent-worker (the file is not on the branch)`;
}

/**
 * Mount mode, after {@link ./guard.ts defuseGitEntries} and before the commit: scans every file the commit would
 * include (modified, type-changed and untracked files that are not ignored, from `git status --porcelain=v1 -z
 * --untracked-files=all`), and moves each one that holds a pattern — in its contents, its symlink target or its
 * path — under `quarantineDir` with its relative path (folders made with mode 0700; a name taken already gets a
 * `~N` suffix). A tracked file is then put back as it is at HEAD (the base commit: the agent cannot commit in
 * mount mode), so the branch keeps the base version rather than a deletion.
 * @returns the relative paths moved, as display text (credentials in a name shown as `[REDACTED]`).
 * @throws when git or the file system fails (the files moved so far stay moved).
 */
export async function quarantineSecretFiles(repo: Repo, patterns: Buffer[], quarantineDir: string): Promise<string[]> {
  if (patterns.length === 0) return [];
  const status = await gitBytes(repo.root, ['status', '--porcelain=v1', '-z', '--untracked-files=all', '--ignore-submodules=none']);
  const candidates: Array<{ rel: Buffer; tracked: boolean }> = [];
  const fields = splitNul(status);
  for (let index = 0; index < fields.length; index += 1) {
    const field = fields[index]!;
    if (field.length < 4) continue;
    const [x, y] = [String.fromCharCode(field[0]!), String.fromCharCode(field[1]!)];
    // A rename or copy is followed by its source path.
    if (x === 'R' || x === 'C') index += 1;
    if (x === 'D' || y === 'D') continue;
    candidates.push({ rel: field.subarray(3), tracked: !(x === '?' && y === '?') });
  }
  const root = Buffer.from(repo.root);
  const hits = await mapLimit(candidates, SCAN_CONCURRENCY, async (candidate) => {
    if (pathHasSecret(candidate.rel, patterns)) return true;
    try {
      return await fileContainsSecret(joinBytes(root, candidate.rel), patterns);
    } catch (error) {
      // Gone or unreadable: git cannot commit what it cannot read either.
      log('secret scan of %s: %s', candidate.rel.toString('utf8'), error);
      return false;
    }
  });
  const found = candidates.filter((_candidate, index) => hits[index]);
  if (found.length === 0) return [];
  await makeQuarantine(quarantineDir);
  for (const { rel } of found) await moveAside(joinBytes(root, rel), await quarantineTarget(quarantineDir, rel));
  const tracked = found.filter((candidate) => candidate.tracked).map((candidate) => candidate.rel);
  if (tracked.length > 0) {
    await gitBytes(repo.root, ['--literal-pathspecs', 'restore', '--source=HEAD', '--worktree', '--pathspec-from-file=-', '--pathspec-file-nul'], {
      input: Buffer.concat(tracked.flatMap((rel) => [rel, NUL])),
    });
  }
  log('quarantined %d file(s) holding a credential', found.length);
  return found.map(({ rel }) => displayPath(rel, patterns));
}

/** What {@link scrubCommits} did. */
export interface ScrubResult {
  /** The head of the rewritten history: `head` itself when nothing held a credential. */
  head: string;
  /** Paths taken out of the commits (display text, credentials in a name shown as `[REDACTED]`). */
  quarantined: string[];
  /** How many of the agent's commits had a credential in their message or author/committer, replaced by `[REDACTED]`. */
  redactedCommits: number;
}

/**
 * Copy mode, before the agent's commits become the user's branch: scans every object the commits base..head
 * introduce (`git rev-list --objects` streamed through `git cat-file --batch`: file contents, tree entry names,
 * commit messages and identities). When nothing holds a pattern, returns `head` unchanged. Otherwise rewrites
 * base..head (`git rev-list --reverse --topo-order`; merges keep their parents, mapped to the rewritten ones):
 * in each commit, every path whose blob holds a pattern, or whose name does, is set to its version at `base`, or
 * removed when `base` has none (a temporary index: `read-tree`, `update-index -z --index-info`, `write-tree`); the
 * commit object is written again as it was (author, committer, dates, encoding and message byte for byte; a
 * signature, now invalid, is dropped) with the new tree and parents, and with any pattern in its message or
 * identity replaced by `[REDACTED]`. The last version of each file taken out is written under `quarantineDir`
 * by its path. Commits that need no change keep their ids.
 *
 * The original objects stay in the repository's object store, unreachable, until `git gc` prunes them.
 * @returns the new head and what was taken out.
 * @throws when git or the file system fails; `head` and its commits are untouched then.
 */
export async function scrubCommits(repo: Repo, base: string, head: string, patterns: Buffer[], quarantineDir: string): Promise<ScrubResult> {
  const unchanged: ScrubResult = { head, quarantined: [], redactedCommits: 0 };
  if (patterns.length === 0 || base === head) return unchanged;
  const findings = await scanNewObjects(repo.root, base, head, patterns);
  if (findings.blobs.size === 0 && findings.trees === 0 && findings.commits.size === 0) return unchanged;
  log('credential found in %d blob(s), %d tree(s), %d commit(s) of %s..%s', findings.blobs.size, findings.trees, findings.commits.size, base, head);

  const commits = (await gitBytes(repo.root, ['rev-list', '--reverse', '--topo-order', `${base}..${head}`])).toString('latin1').split('\n').filter(Boolean);
  const mapped = new Map<string, string>();
  // Path (latin1 of its bytes, so any byte survives) → the blob taken out last, and the path's bytes.
  const taken = new Map<string, { rel: Buffer; oid: string }>();
  let baseEntries: Map<string, TreeEntry> | undefined;
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'agent-worker-scrub-'));
  const indexEnv = { ...process.env, GIT_INDEX_FILE: path.join(scratch, 'index') };
  try {
    for (const commit of commits) {
      const raw = await gitBytes(repo.root, ['cat-file', 'commit', commit]);
      const parsed = parseCommit(raw);
      let tree = parsed.tree;
      if (findings.blobs.size > 0 || findings.trees > 0) {
        const offending = (await listTree(repo.root, commit)).filter(
          (entry) => (entry.type === 'blob' && findings.blobs.has(entry.oid)) || pathHasSecret(entry.path, patterns),
        );
        if (offending.length > 0) {
          baseEntries ??= new Map((await listTree(repo.root, base)).map((entry) => [entry.path.toString('latin1'), entry]));
          const zero = '0'.repeat(commit.length);
          const lines: Buffer[] = [];
          for (const entry of offending) {
            const key = entry.path.toString('latin1');
            if (entry.type === 'blob') taken.set(key, { rel: entry.path, oid: entry.oid });
            const before = baseEntries.get(key);
            lines.push(Buffer.from(before ? `${before.mode} ${before.oid}\t` : `0 ${zero}\t`, 'latin1'), entry.path, NUL);
          }
          await gitBytes(repo.root, ['read-tree', commit], { env: indexEnv });
          await gitBytes(repo.root, ['update-index', '-z', '--index-info'], { env: indexEnv, input: Buffer.concat(lines) });
          tree = (await gitBytes(repo.root, ['write-tree'], { env: indexEnv })).toString('latin1').trim();
        }
      }
      const parents = parsed.parents.map((parent) => mapped.get(parent) ?? parent);
      const redact = findings.commits.has(commit);
      if (tree === parsed.tree && !redact && parents.every((parent, index) => parent === parsed.parents[index])) {
        mapped.set(commit, commit);
        continue;
      }
      const object = commitObject(tree, parents, redact ? redactBytes(parsed.rest, patterns) : parsed.rest);
      mapped.set(commit, (await gitBytes(repo.root, ['hash-object', '-t', 'commit', '-w', '--stdin'], { input: object })).toString('latin1').trim());
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const quarantined: string[] = [];
  if (taken.size > 0) await makeQuarantine(quarantineDir);
  for (const { rel, oid } of taken.values()) {
    await writeBlob(repo.root, oid, await quarantineTarget(quarantineDir, rel));
    quarantined.push(displayPath(rel, patterns));
  }
  return { head: mapped.get(head) ?? head, quarantined, redactedCommits: findings.commits.size };
}

/** Objects among base..head that hold a pattern: blob ids, the number of trees, commit ids. */
interface Findings {
  blobs: Set<string>;
  trees: number;
  commits: Set<string>;
}

/** `git rev-list --objects --no-object-names base..head | git cat-file --batch`, each object scanned as it streams. */
async function scanNewObjects(cwd: string, base: string, head: string, patterns: Buffer[]): Promise<Findings> {
  const findings: Findings = { blobs: new Set(), trees: 0, commits: new Set() };
  const revList = spawnGit(cwd, ['rev-list', '--objects', '--no-object-names', `${base}..${head}`]);
  const catFile = spawnGit(cwd, ['cat-file', '--batch']);
  revList.stdin.end();
  revList.stdout.pipe(catFile.stdin);
  const reader = new BatchReader(patterns, (oid, type) => {
    if (type === 'blob') findings.blobs.add(oid);
    else if (type === 'tree') findings.trees += 1;
    else if (type === 'commit') findings.commits.add(oid);
  });
  let failure: unknown;
  catFile.stdout.on('data', (chunk: Buffer) => {
    if (failure) return;
    try {
      reader.push(chunk);
    } catch (error) {
      failure = error;
      catFile.kill();
    }
  });
  await Promise.all([exited(revList, 'rev-list'), exited(catFile, 'cat-file')]);
  if (failure) throw failure;
  reader.end();
  return findings;
}

/**
 * Reads `git cat-file --batch` output (`<oid> <type> <size>\n<contents>\n` per object) as it arrives, running each
 * object's contents through a {@link PatternMatcher} without holding them.
 */
class BatchReader {
  private header: Buffer[] = [];
  private headerBytes = 0;
  private current: { oid: string; type: string; remaining: number; matcher: PatternMatcher } | undefined;
  private newlineDue = false;

  constructor(
    private readonly patterns: Buffer[],
    private readonly onFound: (oid: string, type: string) => void,
  ) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.newlineDue) {
        if (chunk[at] !== 0x0a) throw new Error('git cat-file --batch: no newline after an object');
        this.newlineDue = false;
        at += 1;
      } else if (!this.current) {
        const end = chunk.indexOf(0x0a, at);
        const piece = chunk.subarray(at, end === -1 ? chunk.length : end);
        this.header.push(Buffer.from(piece));
        this.headerBytes += piece.length;
        if (this.headerBytes > 1024) throw new Error('git cat-file --batch: header line too long');
        if (end === -1) return;
        at = end + 1;
        const [oid, type, size] = Buffer.concat(this.header).toString('latin1').split(' ');
        this.header = [];
        this.headerBytes = 0;
        const remaining = Number(size);
        if (!oid || !type || !Number.isSafeInteger(remaining) || remaining < 0) throw new Error(`git cat-file --batch: unexpected header ${oid} ${type}`);
        this.current = { oid, type, remaining, matcher: new PatternMatcher(this.patterns) };
        if (remaining === 0) this.finish();
      } else {
        const take = Math.min(this.current.remaining, chunk.length - at);
        this.current.matcher.push(chunk.subarray(at, at + take));
        this.current.remaining -= take;
        at += take;
        if (this.current.remaining === 0) this.finish();
      }
    }
  }

  /** @throws when the output stopped inside an object. */
  end(): void {
    if (this.current || this.headerBytes > 0) throw new Error('git cat-file --batch: output ended inside an object');
  }

  private finish(): void {
    const { oid, type, matcher } = this.current!;
    if (matcher.found) this.onFound(oid, type);
    this.current = undefined;
    this.newlineDue = true;
  }
}

/** One entry of `git ls-tree -r -z`. */
interface TreeEntry {
  mode: string;
  type: string;
  oid: string;
  /** Path from the top of the tree, as bytes. */
  path: Buffer;
}

/** Every file (and gitlink) of `treeish`, recursively (`git ls-tree -r -z --full-tree`). */
async function listTree(cwd: string, treeish: string): Promise<TreeEntry[]> {
  const entries: TreeEntry[] = [];
  for (const record of splitNul(await gitBytes(cwd, ['ls-tree', '-r', '-z', '--full-tree', treeish]))) {
    const tab = record.indexOf(0x09);
    if (tab === -1) continue;
    const [mode, type, oid] = record.subarray(0, tab).toString('latin1').split(' ');
    if (!mode || !type || !oid) continue;
    entries.push({ mode, type, oid, path: record.subarray(tab + 1) });
  }
  return entries;
}

/** A raw commit object: its tree, its parents, and everything else (other headers, blank line, message) as bytes. */
function parseCommit(raw: Buffer): { tree: string; parents: string[]; rest: Buffer } {
  const headerEnd = raw.indexOf('\n\n');
  const header = headerEnd === -1 ? raw : raw.subarray(0, headerEnd);
  const message = headerEnd === -1 ? Buffer.alloc(0) : raw.subarray(headerEnd);
  let tree = '';
  const parents: string[] = [];
  const kept: Buffer[] = [];
  let dropping = false;
  let start = 0;
  while (start < header.length) {
    const newline = header.indexOf(0x0a, start);
    const end = newline === -1 ? header.length : newline;
    const line = header.subarray(start, end);
    start = end + 1;
    // A line starting with a space continues the header before it.
    if (line[0] === 0x20) {
      if (!dropping) kept.push(line, NEWLINE);
      continue;
    }
    const text = line.toString('latin1');
    dropping = false;
    if (text.startsWith('tree ')) tree = text.slice(5);
    else if (text.startsWith('parent ')) parents.push(text.slice(7));
    // The signature covered the old object; a rewritten commit is not signed.
    else if (text.startsWith('gpgsig ') || text.startsWith('gpgsig-sha256 ')) dropping = true;
    else kept.push(line, NEWLINE);
  }
  if (!tree) throw new Error('commit object without a tree');
  // `kept` ends with a newline; `message` starts with the blank line's two newlines.
  return { tree, parents, rest: Buffer.concat([...kept, message.subarray(1)]) };
}

/** A commit object from its tree, parents and the rest (as {@link parseCommit} returns it). */
function commitObject(tree: string, parents: string[], rest: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`tree ${tree}\n${parents.map((parent) => `parent ${parent}\n`).join('')}`, 'latin1'), rest]);
}

/** `bytes` with every occurrence of each pattern replaced by `[REDACTED]`. */
function redactBytes(bytes: Buffer, patterns: Buffer[]): Buffer {
  let out = bytes;
  for (const pattern of patterns) {
    const pieces: Buffer[] = [];
    let start = 0;
    for (let at = out.indexOf(pattern); at !== -1; at = out.indexOf(pattern, start)) {
      pieces.push(out.subarray(start, at), Buffer.from(REDACTED));
      start = at + pattern.length;
    }
    if (pieces.length > 0) out = Buffer.concat([...pieces, out.subarray(start)]);
  }
  return out;
}

/** Streams blob `oid` into a new file `target` (mode 0600). */
async function writeBlob(cwd: string, oid: string, target: Buffer): Promise<void> {
  const child = spawnGit(cwd, ['cat-file', 'blob', oid]);
  child.stdin.end();
  const done = exited(child, 'cat-file blob');
  await Promise.all([pipeline(child.stdout, createWriteStream(target, { flags: 'wx', mode: 0o600 })), done]);
}

/** Creates the quarantine folder (mode 0700 also when it existed). */
async function makeQuarantine(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/**
 * Where a file goes in the quarantine: `dir/<rel>`, with empty, `.` and `..` components replaced by `_` so nothing
 * lands outside `dir`; its folders are made (mode 0700). A name already taken gets a `~N` suffix; when a folder
 * cannot be made (a file has that name), the path is flattened into one name (`/` as `%2F`).
 */
async function quarantineTarget(dir: string, rel: Buffer): Promise<Buffer> {
  const parts = splitBytes(rel, 0x2f).map((part) => (part.length === 0 || part.equals(DOT) || part.equals(DOT_DOT) ? Buffer.from('_') : part));
  const root = Buffer.from(path.resolve(dir));
  let target = Buffer.concat([root, ...parts.flatMap((part) => [SLASH, part])]);
  try {
    await mkdir(target.subarray(0, target.lastIndexOf(0x2f)), { recursive: true, mode: 0o700 });
  } catch {
    target = Buffer.concat([root, SLASH, ...parts.flatMap((part, index) => (index === 0 ? [part] : [Buffer.from('%2F'), part]))]);
  }
  for (let suffix = 2, candidate = target; ; suffix += 1) {
    if (!(await exists(candidate))) return candidate;
    candidate = Buffer.concat([target, Buffer.from(`~${suffix}`)]);
  }
}

/** Moves `source` to `target`; across file systems, copies (a symlink as a symlink) and removes the source. */
async function moveAside(source: Buffer, target: Buffer): Promise<void> {
  try {
    await rename(source, target);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
  }
  if ((await lstat(source)).isSymbolicLink()) await symlink(await readlink(source, { encoding: 'buffer' }), target);
  else await copyFile(source, target, constants.COPYFILE_EXCL);
  await unlink(source);
}

async function exists(file: Buffer): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch {
    return false;
  }
}

const NUL = Buffer.from([0]);
const NEWLINE = Buffer.from('\n');
const SLASH = Buffer.from('/');
const DOT = Buffer.from('.');
const DOT_DOT = Buffer.from('..');

function joinBytes(root: Buffer, rel: Buffer): Buffer {
  return Buffer.concat([root, SLASH, rel]);
}

/** `bytes` split at every `separator` byte (no empty last piece after a trailing separator). */
function splitBytes(bytes: Buffer, separator: number): Buffer[] {
  const pieces: Buffer[] = [];
  let start = 0;
  for (let at = bytes.indexOf(separator); at !== -1; at = bytes.indexOf(separator, start)) {
    pieces.push(bytes.subarray(start, at));
    start = at + 1;
  }
  if (start < bytes.length || pieces.length === 0) pieces.push(bytes.subarray(start));
  return pieces;
}

function splitNul(bytes: Buffer): Buffer[] {
  return splitBytes(bytes, 0).filter((piece) => piece.length > 0);
}

/** `fn` over `items`, at most `limit` at a time; results in order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Longest tail of a git command's stderr kept for its error message, in bytes. */
const STDERR_TAIL_BYTES = 4096;

function spawnGit(cwd: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcessWithoutNullStreams {
  const child = spawn('git', [...SAFE_CONFIG.flatMap((pair) => ['-c', pair]), ...args], { cwd, env, stdio: 'pipe' });
  // EPIPE when git exits without reading all of its input: its exit status says why.
  child.stdin.on('error', () => undefined);
  return child;
}

/** Resolves when `child` exits 0; rejects with the end of its stderr otherwise. */
function exited(child: ChildProcessWithoutNullStreams, what: string): Promise<void> {
  let stderr = Buffer.alloc(0);
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = Buffer.concat([stderr, chunk]);
    if (stderr.length > STDERR_TAIL_BYTES) stderr = stderr.subarray(stderr.length - STDERR_TAIL_BYTES);
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`git ${what} failed (${code ?? signal}): ${stderr.toString('utf8').trim()}`));
    });
  });
}

/** Runs git in `cwd` with `input` on its stdin and returns its whole stdout (for outputs of bounded size). */
async function gitBytes(cwd: string, args: string[], options: { input?: Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<Buffer> {
  const child = spawnGit(cwd, args, options.env);
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = exited(child, args.find((arg) => !arg.startsWith('-')) ?? 'command');
  child.stdin.end(options.input);
  await done;
  return Buffer.concat(chunks);
}

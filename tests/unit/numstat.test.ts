import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNumstatZ, parseRawNumstatZ, summarizeChanges } from '../../src/git/numstat.js';
import type { FileChange } from '../../src/report/types.js';

describe('parseNumstatZ: strings', () => {
  it('returns no changes for empty output', () => {
    expect(parseNumstatZ('', '')).toEqual([]);
  });

  it('parses added, modified, deleted, renamed and binary records in git order', () => {
    const numstat = ['3\t0\tnew.txt', '1\t1\tsrc/a.ts', '0\t7\told.txt', '2\t1\t', 'from.txt', 'to dir/to.txt', '-\t-\timg.png', ''].join(
      '\0',
    );
    const nameStatus = ['A', 'new.txt', 'M', 'src/a.ts', 'D', 'old.txt', 'R087', 'from.txt', 'to dir/to.txt', 'M', 'img.png', ''].join(
      '\0',
    );
    expect(parseNumstatZ(numstat, nameStatus)).toEqual<FileChange[]>([
      { path: 'new.txt', status: 'added', added: 3, removed: 0, binary: false },
      { path: 'src/a.ts', status: 'modified', added: 1, removed: 1, binary: false },
      { path: 'old.txt', status: 'deleted', added: 0, removed: 7, binary: false },
      { path: 'to dir/to.txt', oldPath: 'from.txt', status: 'renamed', added: 2, removed: 1, binary: false },
      { path: 'img.png', status: 'modified', added: 0, removed: 0, binary: true },
    ]);
  });

  it('keeps tabs, newlines and non-ASCII in paths', () => {
    const odd = 'a\tb\nc ü 日本.txt';
    const numstat = `4\t2\t${odd}\0` + `0\t0\t\0x\ty\0${odd}.moved\0`;
    const nameStatus = `M\0${odd}\0R100\0x\ty\0${odd}.moved\0`;
    expect(parseNumstatZ(numstat, nameStatus)).toEqual<FileChange[]>([
      { path: odd, status: 'modified', added: 4, removed: 2, binary: false },
      { path: `${odd}.moved`, oldPath: 'x\ty', status: 'renamed', added: 0, removed: 0, binary: false },
    ]);
  });

  it('maps T and C to modified (a copy keeps only its new path)', () => {
    const numstat = '0\t0\tlink\0' + '1\t0\t\0src.txt\0copy.txt\0';
    const nameStatus = 'T\0link\0C090\0src.txt\0copy.txt\0';
    expect(parseNumstatZ(numstat, nameStatus)).toEqual<FileChange[]>([
      { path: 'link', status: 'modified', added: 0, removed: 0, binary: false },
      { path: 'copy.txt', status: 'modified', added: 1, removed: 0, binary: false },
    ]);
  });

  it('infers the status when name-status lacks a record', () => {
    const numstat = '1\t1\ta.txt\0' + '0\t0\t\0b.txt\0c.txt\0';
    expect(parseNumstatZ(numstat, '')).toEqual<FileChange[]>([
      { path: 'a.txt', status: 'modified', added: 1, removed: 1, binary: false },
      { path: 'c.txt', oldPath: 'b.txt', status: 'renamed', added: 0, removed: 0, binary: false },
    ]);
  });

  it('throws on malformed input', () => {
    expect(() => parseNumstatZ('garbage\0', '')).toThrow(/numstat/);
    expect(() => parseNumstatZ('x\t1\tpath\0', '')).toThrow(/line count/);
    expect(() => parseNumstatZ('1\t1\t\0only-old\0', '')).toThrow(/rename/);
    expect(() => parseNumstatZ('', 'M\0')).toThrow(/name-status/);
    expect(() => parseNumstatZ('', 'R100\0old\0')).toThrow(/name-status/);
    expect(() => parseNumstatZ('', '?\0path\0')).toThrow(/name-status/);
  });

  it('parses a large listing in linear time', () => {
    const n = 50_000;
    const numstat = Array.from({ length: n }, (_, i) => `1\t2\tdir/file-${i}.txt\0`).join('');
    const nameStatus = Array.from({ length: n }, (_, i) => `M\0dir/file-${i}.txt\0`).join('');
    const started = Date.now();
    const files = parseNumstatZ(numstat, nameStatus);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(summarizeChanges(files)).toMatchObject({ filesChanged: n, linesAdded: n, linesRemoved: 2 * n });
  });
});

describe('parseRawNumstatZ: strings (one `git diff --raw --numstat -z -M`)', () => {
  const raw = (modes: string, letter: string, ...paths: string[]): string =>
    `:${modes} 1111111111111111111111111111111111111111 2222222222222222222222222222222222222222 ${letter}\0${paths.join('\0')}\0`;

  it('returns no changes for empty output', () => {
    expect(parseRawNumstatZ('')).toEqual([]);
  });

  it('gives what the two listings give: added, modified, deleted, renamed, binary; odd paths', () => {
    const odd = 'a\tb\nc ü 日本.txt';
    const output =
      raw('000000 100644', 'A', 'new.txt') +
      raw('100644 100644', 'M', odd) +
      raw('100644 000000', 'D', 'old.txt') +
      raw('100644 100644', 'R087', 'from\tx.txt', `to dir/${odd}`) +
      raw('100644 100644', 'M', 'img.png') +
      raw('100644 120000', 'T', ':colon first') +
      [`3\t0\tnew.txt`, `1\t1\t${odd}`, '0\t7\told.txt', '2\t1\t', 'from\tx.txt', `to dir/${odd}`, '-\t-\timg.png', '1\t1\t:colon first', ''].join('\0');
    const expected: FileChange[] = [
      { path: 'new.txt', status: 'added', added: 3, removed: 0, binary: false },
      { path: odd, status: 'modified', added: 1, removed: 1, binary: false },
      { path: 'old.txt', status: 'deleted', added: 0, removed: 7, binary: false },
      { path: `to dir/${odd}`, oldPath: 'from\tx.txt', status: 'renamed', added: 2, removed: 1, binary: false },
      { path: 'img.png', status: 'modified', added: 0, removed: 0, binary: true },
      { path: ':colon first', status: 'modified', added: 1, removed: 1, binary: false },
    ];
    expect(parseRawNumstatZ(output)).toEqual(expected);
    const nameStatus = ['A', 'new.txt', 'M', odd, 'D', 'old.txt', 'R087', 'from\tx.txt', `to dir/${odd}`, 'M', 'img.png', 'T', ':colon first', ''].join('\0');
    expect(parseRawNumstatZ(output)).toEqual(parseNumstatZ(output.slice(output.indexOf('3\t0\t')), nameStatus));
  });

  it('accepts abbreviated object names', () => {
    expect(parseRawNumstatZ(':100644 100644 abc1234... def5678... M\0a\0' + '1\t0\ta\0')).toEqual<FileChange[]>([
      { path: 'a', status: 'modified', added: 1, removed: 0, binary: false },
    ]);
  });

  it('throws on malformed input', () => {
    expect(() => parseRawNumstatZ(':100644 100644 abc def\0a\0')).toThrow(/--raw/);
    expect(() => parseRawNumstatZ(':100644 100644 abc def M\0')).toThrow(/--raw.*without a path/);
    expect(() => parseRawNumstatZ(':100644 100644 abc def R100\0old\0')).toThrow(/--raw.*second path/);
    expect(() => parseRawNumstatZ(raw('100644 100644', 'M', 'a') + 'x\t1\ta\0')).toThrow(/line count/);
    expect(() => parseRawNumstatZ(raw('100644 100644', 'M', 'a') + 'garbage\0')).toThrow(/numstat/);
  });

  it('parses a large listing in linear time', () => {
    const n = 50_000;
    const rawPart = Array.from({ length: n }, (_, i) => raw('100644 100644', 'M', `dir/file-${i}.txt`)).join('');
    const numstat = Array.from({ length: n }, (_, i) => `1\t2\tdir/file-${i}.txt\0`).join('');
    const started = Date.now();
    const files = parseRawNumstatZ(rawPart + numstat);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(summarizeChanges(files)).toMatchObject({ filesChanged: n, linesAdded: n, linesRemoved: 2 * n });
  });
});

describe('summarizeChanges', () => {
  it('totals files and lines, binary files counting as a file with 0 lines', () => {
    const files: FileChange[] = [
      { path: 'a', status: 'added', added: 10, removed: 0, binary: false },
      { path: 'b', status: 'modified', added: 0, removed: 0, binary: true },
      { path: 'c', status: 'deleted', added: 0, removed: 4, binary: false },
    ];
    expect(summarizeChanges(files)).toEqual({ filesChanged: 3, linesAdded: 10, linesRemoved: 4, files });
    expect(summarizeChanges([])).toEqual({ filesChanged: 0, linesAdded: 0, linesRemoved: 0, files: [] });
  });
});

describe('parseNumstatZ: real git', () => {
  let repo: string;
  const gitEnv = {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_AUTHOR_NAME: 'Test',
    GIT_AUTHOR_EMAIL: 'test@example.com',
    GIT_COMMITTER_NAME: 'Test',
    GIT_COMMITTER_EMAIL: 'test@example.com',
  };

  function git(...args: string[]): string {
    return execFileSync('git', args, { cwd: repo, env: gitEnv, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  }

  function write(path: string, content: string | Buffer): void {
    const full = join(repo, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
  }

  function commitAll(message: string): string {
    git('add', '--all');
    git('commit', '--quiet', '--no-gpg-sign', '-m', message);
    return git('rev-parse', 'HEAD').trim();
  }

  /** The changes from the two listings; asserts the one-process `--raw --numstat` listing gives the same. */
  function changesBetween(base: string, head: string): FileChange[] {
    const changes = parseNumstatZ(
      git('diff', '--numstat', '-z', '-M', base, head),
      git('diff', '--name-status', '-z', '-M', base, head),
    );
    expect(parseRawNumstatZ(git('diff', '--raw', '--numstat', '-z', '-M', base, head))).toEqual(changes);
    return changes;
  }

  const lines = (n: number, prefix = 'line'): string => Array.from({ length: n }, (_, i) => `${prefix} ${i + 1}\n`).join('');
  const byPath = (a: FileChange, b: FileChange): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

  const ODD_TAB = 'tab\there.txt';
  const ODD_NEWLINE = 'new\nline.txt';
  const ODD_UNICODE = 'ünïcödé 日本/файл.txt';
  const ODD_QUOTES = 'quote"s and \\backslash.txt';
  const RENAMED_TO = 'moved dir/ren\tamed\nü.txt';

  beforeAll(() => {
    repo = mkdtempSync(join(tmpdir(), 'agent-worker-numstat-'));
    git('init', '--quiet', '--initial-branch=main');
  });

  afterAll(() => {
    rmSync(repo, { recursive: true, force: true });
  });

  it('matches every kind of change, with odd file names', () => {
    write('modified.txt', 'one\ntwo\nthree\n');
    write('deleted.txt', 'a\nb\nc\n');
    write('rename-src.txt', lines(20));
    write('binary.bin', Buffer.from([0, 1, 2, 3, 0, 255, 254, 0]));
    write('with space.txt', 'x\n');
    write('typechange', 'target\n');
    write('bin gone.dat', Buffer.from([0, 0, 0, 9]));
    const base = commitAll('base');

    write('modified.txt', 'one\nTWO\nthree\nfour\n');
    unlinkSync(join(repo, 'deleted.txt'));
    unlinkSync(join(repo, 'rename-src.txt'));
    write(RENAMED_TO, lines(20).replace('line 10\n', 'line ten\n'));
    write('binary.bin', Buffer.from([0, 1, 2, 3, 0, 255, 254, 0, 7]));
    write('with space.txt', 'x\ny\nz\n');
    write(ODD_TAB, 'tab one\ntab two\n');
    write(ODD_NEWLINE, 'only\n');
    write(ODD_UNICODE, 'привет\nмир\nこんにちは\n');
    write(ODD_QUOTES, 'q\n');
    write('bin added.png', Buffer.from([137, 80, 78, 71, 0, 0, 0, 13]));
    unlinkSync(join(repo, 'typechange'));
    symlinkSync('modified.txt', join(repo, 'typechange'));
    unlinkSync(join(repo, 'bin gone.dat'));
    const head = commitAll('head');

    const expected: FileChange[] = [
      { path: 'modified.txt', status: 'modified', added: 2, removed: 1, binary: false },
      { path: 'deleted.txt', status: 'deleted', added: 0, removed: 3, binary: false },
      { path: RENAMED_TO, oldPath: 'rename-src.txt', status: 'renamed', added: 1, removed: 1, binary: false },
      { path: 'binary.bin', status: 'modified', added: 0, removed: 0, binary: true },
      { path: 'with space.txt', status: 'modified', added: 2, removed: 0, binary: false },
      { path: ODD_TAB, status: 'added', added: 2, removed: 0, binary: false },
      { path: ODD_NEWLINE, status: 'added', added: 1, removed: 0, binary: false },
      { path: ODD_UNICODE, status: 'added', added: 3, removed: 0, binary: false },
      { path: ODD_QUOTES, status: 'added', added: 1, removed: 0, binary: false },
      { path: 'bin added.png', status: 'added', added: 0, removed: 0, binary: true },
      { path: 'typechange', status: 'modified', added: 1, removed: 1, binary: false },
      { path: 'bin gone.dat', status: 'deleted', added: 0, removed: 0, binary: true },
    ];

    const actual = changesBetween(base, head);
    expect([...actual].sort(byPath)).toEqual([...expected].sort(byPath));

    expect(summarizeChanges(actual)).toMatchObject({ filesChanged: 12, linesAdded: 13, linesRemoved: 6 });
  });

  it('gives an empty list for identical commits', () => {
    write('stable.txt', 'same\n');
    const a = commitAll('a');
    git('commit', '--quiet', '--no-gpg-sign', '--allow-empty', '-m', 'b');
    const b = git('rev-parse', 'HEAD').trim();
    expect(changesBetween(a, b)).toEqual([]);
  });

  it('shows a pure rename with its old path and no lines', () => {
    write('pure/old name.txt', lines(5));
    const a = commitAll('before');
    git('mv', 'pure/old name.txt', 'pure/new\tname.txt');
    const b = commitAll('after');
    expect(changesBetween(a, b)).toEqual<FileChange[]>([
      { path: 'pure/new\tname.txt', oldPath: 'pure/old name.txt', status: 'renamed', added: 0, removed: 0, binary: false },
    ]);
  });
});

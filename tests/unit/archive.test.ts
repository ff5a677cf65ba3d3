import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { extractSafely, UnsafeArchiveError } from '../../src/docker/archive.js';
import { removeDir, tempDir } from '../helpers/git.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo'; body?: string; linkname?: string };

function archive(entries: Entry[]): Readable {
  const tarball = pack();
  for (const entry of entries) {
    if (entry.type === 'file' || entry.type === undefined) tarball.entry({ name: entry.name }, entry.body ?? '');
    else tarball.entry({ name: entry.name, type: entry.type, linkname: entry.linkname });
  }
  tarball.finalize();
  return tarball as unknown as Readable;
}

async function extract(entries: Entry[]): Promise<{ dest: string; result: string[] | Error }> {
  const dest = tempDir('aw-extract-');
  dirs.push(dest);
  try {
    return { dest, result: await extractSafely(archive(entries), dest) };
  } catch (error) {
    return { dest, result: error as Error };
  }
}

describe('extractSafely', () => {
  it('writes files, folders and inside-pointing symlinks', async () => {
    const { dest, result } = await extract([
      { name: 'out/', type: 'directory' },
      { name: 'out/result', body: 'head=abc\n' },
      { name: './out/link', type: 'symlink', linkname: 'result' },
    ]);
    expect(result).toEqual(['out/result']);
    expect(readFileSync(path.join(dest, 'out/result'), 'utf8')).toBe('head=abc\n');
    expect(readlinkSync(path.join(dest, 'out/link'))).toBe('result');
  });

  it.each<[string, Entry[]]>([
    ['an absolute path', [{ name: '/etc/evil', body: 'x' }]],
    ['a .. path', [{ name: 'out/../../evil', body: 'x' }]],
    ['a symlink outside', [{ name: 'out/link', type: 'symlink', linkname: '../../etc' }]],
    ['an absolute symlink', [{ name: 'link', type: 'symlink', linkname: '/etc/passwd' }]],
    ['a hard link', [{ name: 'hard', type: 'link', linkname: 'x' }]],
    ['a fifo', [{ name: 'pipe', type: 'fifo' }]],
  ])('refuses %s and writes nothing outside', async (_what, entries) => {
    const { dest, result } = await extract(entries);
    expect(result).toBeInstanceOf(UnsafeArchiveError);
    expect(existsSync(path.join(dest, '..', 'evil'))).toBe(false);
  });

  it('never overwrites an existing file (a second entry with the same name fails)', async () => {
    const { result } = await extract([{ name: 'a', body: '1' }, { name: 'a', body: '2' }]);
    expect(result).toBeInstanceOf(Error);
    expect((result as NodeJS.ErrnoException).code).toBe('EEXIST');
  });
});

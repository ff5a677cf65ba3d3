/**
 * The image content hash and its per-file digest cache: the same tag with or without the cache, a
 * changed file always noticed (even with the same size and a restored mtime), a removed file noticed.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, rmSync, utimesSync, writeFileSync, statSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { imageContentHash, imageTag, PROJECT_IMAGE_REPOSITORY, type ImageSpec } from '../../src/docker/image.js';
import { tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();

function context(): { dir: string; cache: string } {
  const dir = track(tempDir('aw-ctx-'));
  const state = track(tempDir('aw-state-'));
  writeFileSync(path.join(dir, 'Dockerfile'), 'ARG AGENT_WORKER_IMAGE\nFROM ${AGENT_WORKER_IMAGE}\n');
  mkdirSync(path.join(dir, 'tools'));
  writeFileSync(path.join(dir, 'tools', 'a.sh'), 'echo a\n', { mode: 0o755 });
  return { dir, cache: path.join(state, 'image-hash-cache.json') };
}

const spec = (dir: string, hashCache?: string, extra: Partial<ImageSpec> = {}): ImageSpec => ({
  contextDir: dir,
  buildArgs: { AGENT_WORKER_IMAGE: 'agent-worker:0123456789abcdef' },
  toolVersion: 'test',
  repository: PROJECT_IMAGE_REPOSITORY,
  hashCache,
  ...extra,
});

describe('image content hash with a digest cache', () => {
  it('gives the same hash with and without the cache, and writes the cache', async () => {
    const { dir, cache } = context();
    const plain = await imageContentHash(spec(dir));
    expect(await imageContentHash(spec(dir, cache))).toBe(plain);
    expect(Object.keys((JSON.parse(readFileSync(cache, 'utf8')) as Record<string, Record<string, unknown>>)[dir]!).sort()).toEqual(['Dockerfile', 'tools/a.sh']);
    expect(await imageContentHash(spec(dir, cache))).toBe(plain);
    expect(imageTag(plain, PROJECT_IMAGE_REPOSITORY)).toMatch(/^agent-worker-project:[0-9a-f]{16}$/);
  });

  it('notices a same-size change whose mtime was put back (the ctime moved), a new file, a removed file, the exec bit and the base tag', async () => {
    const { dir, cache } = context();
    const first = await imageContentHash(spec(dir, cache));
    const file = path.join(dir, 'tools', 'a.sh');
    const { atime, mtime } = statSync(file);
    writeFileSync(file, 'echo b\n');
    utimesSync(file, atime, mtime);
    const changed = await imageContentHash(spec(dir, cache));
    expect(changed).not.toBe(first);
    expect(changed).toBe(await imageContentHash(spec(dir)));
    writeFileSync(path.join(dir, 'new.txt'), 'n\n');
    const added = await imageContentHash(spec(dir, cache));
    expect(added).not.toBe(changed);
    rmSync(path.join(dir, 'new.txt'));
    expect(await imageContentHash(spec(dir, cache))).toBe(changed);
    writeFileSync(file, 'echo b\n', { mode: 0o644 });
    const { chmodSync } = await import('node:fs');
    chmodSync(file, 0o644);
    expect(await imageContentHash(spec(dir, cache))).not.toBe(changed);
    expect(await imageContentHash(spec(dir, cache, { buildArgs: { AGENT_WORKER_IMAGE: 'agent-worker:fedcba9876543210' } }))).not.toBe(await imageContentHash(spec(dir, cache)));
  });

  it('survives a corrupt cache file', async () => {
    const { dir, cache } = context();
    const expected = await imageContentHash(spec(dir));
    writeFileSync(cache, '{not json');
    expect(await imageContentHash(spec(dir, cache))).toBe(expected);
  });
});

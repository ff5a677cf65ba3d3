/**
 * The image cache: the tag is a hash of everything in the build context, a change under container/
 * rebuilds, and a failing build is caught from the build stream with the log's tail.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cpSync, appendFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { docker, dockerAvailable } from '../helpers/docker.js';
import { removeDir, tempDir } from '../helpers/git.js';
import { ensureImage, imageContentHash, type ImageSpec } from '../../src/docker/image.js';
import { ImageBuildError } from '../../src/errors.js';
import { PACKAGE_ROOT } from '../../src/version.js';

const hasDocker = await dockerAvailable();
const cleanup: string[] = [];
const images: string[] = [];
afterAll(async () => {
  for (const tag of images) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
  cleanup.forEach(removeDir);
});

function tinyContext(dockerfile: string): string {
  const dir = tempDir('aw-ctx-');
  cleanup.push(dir);
  writeFileSync(path.join(dir, 'Dockerfile'), dockerfile);
  return dir;
}

const spec = (contextDir: string, extra: Partial<ImageSpec> = {}): ImageSpec => ({
  contextDir,
  buildArgs: { BASE_IMAGE: 'debian:bookworm-slim' },
  caPem: '',
  toolVersion: 'test',
  ...extra,
});

describe('image content hash', () => {
  it('changes with any file, build arg or the CA, and not otherwise', async () => {
    const dir = tempDir('aw-ctx-');
    cleanup.push(dir);
    cpSync(path.join(PACKAGE_ROOT, 'container'), dir, { recursive: true });
    const base = await imageContentHash(spec(dir));
    expect(await imageContentHash(spec(dir))).toBe(base);
    expect(await imageContentHash(spec(dir, { toolVersion: 'other' }))).toBe(base);
    expect(await imageContentHash(spec(dir, { buildArgs: { BASE_IMAGE: 'debian:bookworm' } }))).not.toBe(base);
    expect(await imageContentHash(spec(dir, { caPem: '-----BEGIN CERTIFICATE-----' }))).not.toBe(base);
    mkdirSync(path.join(dir, 'extra'));
    writeFileSync(path.join(dir, 'extra', 'x'), '1');
    const withFile = await imageContentHash(spec(dir));
    expect(withFile).not.toBe(base);
    appendFileSync(path.join(dir, 'entrypoint.sh'), '\n# changed\n');
    expect(await imageContentHash(spec(dir))).not.toBe(withFile);
  });
});

describe.runIf(hasDocker)('ensureImage on a real daemon', () => {
  it('builds once, reuses the tag, and rebuilds after a change in the context', async () => {
    const dir = tinyContext('ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY marker /marker\n');
    writeFileSync(path.join(dir, 'marker'), 'one');
    const first = await ensureImage(docker, spec(dir), { force: false });
    images.push(first.tag);
    expect(first.built).toBe(true);
    const again = await ensureImage(docker, spec(dir), { force: false });
    expect(again).toMatchObject({ tag: first.tag, built: false });
    const forced = await ensureImage(docker, spec(dir), { force: true });
    expect(forced).toMatchObject({ tag: first.tag, built: true });
    writeFileSync(path.join(dir, 'marker'), 'two');
    const changed = await ensureImage(docker, spec(dir), { force: false });
    images.push(changed.tag);
    expect(changed.built).toBe(true);
    expect(changed.tag).not.toBe(first.tag);
    const labels = (await docker.getImage(changed.tag).inspect()).Config.Labels;
    expect(labels).toMatchObject({ 'dev.agent-worker.managed': 'true', 'dev.agent-worker.content-hash': changed.contentHash });
  });

  it('detects a failing RUN from the build stream and keeps the log tail', async () => {
    const dir = tinyContext('ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo about-to-fail && exit 3\n');
    const error = await ensureImage(docker, spec(dir), { force: false }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ImageBuildError);
    const buildError = error as ImageBuildError;
    expect(buildError.exitCode).toBe(8);
    expect(buildError.message).toMatch(/returned a non-zero code: 3/);
    expect(buildError.logTail.join('\n')).toContain('about-to-fail');
  });

  it('fails on a base image that does not exist', async () => {
    const dir = tinyContext('ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n');
    const error = await ensureImage(docker, spec(dir, { buildArgs: { BASE_IMAGE: 'agent-worker-test/no-such-image:1' } }), { force: false }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ImageBuildError);
  });
});

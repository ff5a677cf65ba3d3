/**
 * The runner against a real engine: concurrent runs that need the same image wait for ONE build (counted from the
 * daemon's own event stream), later ones get it at once, a failed build is not kept, and one connection and one
 * leftover sweep serve every run.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { docker, dockerAvailable, dockerEvents } from '../helpers/docker.js';
import { removeDir, tempDir } from '../helpers/git.js';
import { Runner } from '../../src/runner.js';
import type { ImageSpec } from '../../src/docker/image.js';
import { ImageBuildError } from '../../src/errors.js';

const hasDocker = await dockerAvailable();
const cleanup: string[] = [];
const images: string[] = [];
afterAll(async () => {
  for (const tag of images) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
  cleanup.forEach(removeDir);
});

const settings = { tls: {}, insecureDocker: false };

/** A build context no image was built from yet (a fresh marker), whose build takes about a second. */
function freshSpec(run = 'sleep 1'): ImageSpec {
  const dir = tempDir('aw-runner-ctx-');
  cleanup.push(dir);
  writeFileSync(path.join(dir, 'Dockerfile'), `FROM debian:bookworm-slim\nRUN ${run} && echo ${randomBytes(8).toString('hex')} > /marker\n`);
  return { contextDir: dir, buildArgs: {}, caPem: '', toolVersion: 'test', repository: 'agent-worker-runner-test' };
}

describe.runIf(hasDocker)('Runner (real engine)', { timeout: 300_000 }, () => {
  it('four runs needing one image at the same time wait for one build; a later run gets it at once', async () => {
    const runner = new Runner(process.env);
    const connection = await runner.connect(settings);
    expect(await runner.connect(settings)).toBe(connection);
    const spec = freshSpec();
    const since = Math.floor(Date.now() / 1000);
    const results = await Promise.all([1, 2, 3, 4].map(() => runner.ensureImage(connection, spec, { force: false })));
    images.push(results[0]!.tag);
    expect(new Set(results.map((image) => image.tag)).size).toBe(1);
    expect(results.filter((image) => image.built)).toHaveLength(1);
    const later = await runner.ensureImage(connection, spec, { force: false });
    expect(later).toMatchObject({ tag: results[0]!.tag, built: false });
    // The daemon tagged the image once: one build.
    const tagged = (await dockerEvents(since, Math.ceil(Date.now() / 1000) + 1, ['image'])).filter((event) => event.Action === 'tag');
    expect(tagged).toHaveLength(1);
  });

  it('a failed build is not kept: the next run tries again', async () => {
    const runner = new Runner(process.env);
    const connection = await runner.connect(settings);
    const spec = freshSpec('false');
    const attempts = await Promise.allSettled([runner.ensureImage(connection, spec, { force: false }), runner.ensureImage(connection, spec, { force: false })]);
    expect(attempts.map((attempt) => attempt.status)).toEqual(['rejected', 'rejected']);
    expect((attempts[0] as PromiseRejectedResult).reason).toBeInstanceOf(ImageBuildError);
    const since = Math.floor(Date.now() / 1000);
    await expect(runner.ensureImage(connection, spec, { force: false })).rejects.toBeInstanceOf(ImageBuildError);
    // It really ran a build again (a container for its RUN step), not a remembered failure.
    const containers = (await dockerEvents(since, Math.ceil(Date.now() / 1000) + 1, ['container'])).filter((event) => event.Action === 'create');
    expect(containers.length).toBeGreaterThanOrEqual(1);
  });

  it('one sweep per daemon: the first caller gets what it removed, later callers nothing, and it runs once', async () => {
    const runner = new Runner(process.env);
    const connection = await runner.connect(settings);
    const [first, second] = await Promise.all([runner.sweep(connection), runner.sweep(connection)]);
    expect(Array.isArray(first)).toBe(true);
    expect(second).toEqual([]);
    // A connection that failed is not kept.
    await expect(runner.connect({ ...settings, dockerHost: 'unix:///nonexistent/docker.sock' })).rejects.toThrow(/did not answer/);
    await expect(runner.connect({ ...settings, dockerHost: 'unix:///nonexistent/docker.sock' })).rejects.toThrow(/did not answer/);
  });
});

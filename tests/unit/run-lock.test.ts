/**
 * The checkout lock (src/run-lock.ts): exactly one of many runs taking it at once holds it, in one process
 * and across processes (the built code, dist/, in fresh node processes); stale and broken locks are
 * replaced; a live one never is.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acquireRepoLock, lockFile, lockHolder, type LockAttempt } from '../../src/run-lock.js';
import { PACKAGE_ROOT } from '../../src/version.js';
import { tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();

function stateRoot(): string {
  return track(tempDir('aw-lock-'));
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const out = execFileSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return Number(out.trim());
}

const REPO = '/srv/projects/example';

describe('the checkout lock', () => {
  it('one of 20 concurrent takers in this process holds it; the others are told who does', async () => {
    const root = stateRoot();
    const attempts: LockAttempt[] = await Promise.all(
      Array.from({ length: 20 }, (_, index) => acquireRepoLock(root, REPO, { runId: `run-${index}`, baseCommit: 'a'.repeat(40) })),
    );
    const held = attempts.filter((attempt) => attempt.lock);
    expect(held).toHaveLength(1);
    const winner = (await lockHolder(root, REPO))!;
    expect(winner.pid).toBe(process.pid);
    for (const attempt of attempts) if (attempt.holder) expect(attempt.holder.runId).toBe(winner.runId);
    // Only the lock itself is left in the folder: every taker's own file is gone.
    expect(readdirSync(path.dirname(lockFile(root, REPO)))).toEqual([path.basename(lockFile(root, REPO))]);
    await held[0]!.lock!.release();
    expect(await lockHolder(root, REPO)).toBeUndefined();
  });

  it('one of 6 node processes started at once holds it', async () => {
    const root = stateRoot();
    const module = path.join(PACKAGE_ROOT, 'dist/src/run-lock.js');
    // Each process takes the lock, says what it got, keeps it 1.5 s (so every other process tries while it is held), then releases it.
    const script = `
      const { acquireRepoLock } = await import(${JSON.stringify(module)});
      const attempt = await acquireRepoLock(process.argv[1], ${JSON.stringify(REPO)}, { runId: 'run-' + process.pid, baseCommit: 'b'.repeat(40) });
      console.log(attempt.lock ? 'held' : 'busy:' + attempt.holder.runId);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await attempt.lock?.release();
    `;
    const outputs = await Promise.all(
      Array.from(
        { length: 6 },
        () =>
          new Promise<string>((resolve, reject) => {
            const child = spawn(process.execPath, ['--input-type=module', '-e', script, root], { stdio: ['ignore', 'pipe', 'inherit'] });
            let out = '';
            child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
            child.on('error', reject);
            child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`exit ${code}`))));
          }),
      ),
    );
    expect(outputs.filter((out) => out === 'held')).toHaveLength(1);
    // Every other process was told the one live holder (or, started after it released, took the lock itself).
    expect(new Set(outputs.filter((out) => out.startsWith('busy:'))).size).toBeLessThanOrEqual(1);
    expect(existsSync(lockFile(root, REPO))).toBe(false);
  });

  it('replaces a lock whose process is gone, and an unreadable one', async () => {
    const root = stateRoot();
    const file = lockFile(root, REPO);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify({ pid: deadPid(), host: os.hostname(), runId: 'dead', baseCommit: 'c'.repeat(40) }));
    expect(await lockHolder(root, REPO)).toBeUndefined();
    const first = await acquireRepoLock(root, REPO, { runId: 'after-dead', baseCommit: 'd'.repeat(40) });
    expect(first.lock).toBeDefined();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ pid: process.pid, runId: 'after-dead' });
    await first.lock!.release();

    writeFileSync(file, '{"pid": 12');
    const second = await acquireRepoLock(root, REPO, { runId: 'after-broken', baseCommit: 'd'.repeat(40) });
    expect(second.lock).toBeDefined();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ runId: 'after-broken' });
    await second.lock!.release();
  });

  it('never replaces a live lock, also one from another host', async () => {
    const root = stateRoot();
    const file = lockFile(root, REPO);
    mkdirSync(path.dirname(file), { recursive: true });
    const remote = { pid: deadPid(), host: `${os.hostname()}-elsewhere`, runId: 'remote', baseCommit: 'e'.repeat(40) };
    writeFileSync(file, JSON.stringify(remote));
    const attempt = await acquireRepoLock(root, REPO, { runId: 'mine', baseCommit: 'f'.repeat(40) });
    expect(attempt.holder).toEqual(remote);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(remote);
  });
});

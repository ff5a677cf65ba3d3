/**
 * One run at a time may use a checkout's working tree (mount mode): a lock file per repository in
 * agent-worker's state folder (`$XDG_STATE_HOME/agent-worker/locks/<sha256 of the path>.lock`, JSON
 * `{pid, host, runId, baseCommit}`). A second run on the same repository copies the workspace instead,
 * based on the commit the first run started from. A lock whose process is gone (same host) is stale.
 */
import { createHash } from 'node:crypto';
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** What a lock file holds. */
export interface RepoLockInfo {
  pid: number;
  host: string;
  runId: string;
  /** The commit the holding run started from. */
  baseCommit: string;
}

/** A held lock. */
export interface RepoLock {
  file: string;
  release(): Promise<void>;
}

/** The lock file for a repository's top-level path. */
export function lockFile(stateRoot: string, repoRoot: string): string {
  return path.join(stateRoot, 'locks', `${createHash('sha256').update(repoRoot).digest('hex').slice(0, 32)}.lock`);
}

/** True when `pid` runs on this host. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The live holder of the repository's lock, or undefined (no lock, or a stale one). */
export async function lockHolder(stateRoot: string, repoRoot: string): Promise<RepoLockInfo | undefined> {
  const info = await readLockInfo(lockFile(stateRoot, repoRoot));
  return info && !isStale(info) ? info : undefined;
}

/** A lock file's content, or undefined when there is none or it is not a lock's JSON. */
async function readLockInfo(file: string): Promise<RepoLockInfo | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as RepoLockInfo;
  } catch {
    return undefined;
  }
}

/** True when the lock's process is gone: it ran on this host and no longer does. */
function isStale(info: RepoLockInfo): boolean {
  return info.host === os.hostname() && !processAlive(info.pid);
}

/** What taking the lock came to: held by this run, or by another live run. */
export type LockAttempt = { lock: RepoLock; holder?: undefined } | { lock?: undefined; holder: RepoLockInfo };

/** Attempts before giving up on a lock file that keeps being replaced (only a run of stale locks could do that). */
const LOCK_ATTEMPTS = 5;

/**
 * Takes the repository's lock, replacing a stale one.
 *
 * The file appears whole or not at all: the content is written to a file of this process's own and
 * hard-linked to the lock's name (`link` fails when the name exists), so a run reading the lock never sees
 * a half-written one. A stale lock is renamed away before it is removed, and put back when the renamed
 * file turns out to be a live run's lock that replaced the stale one meanwhile.
 * @returns the held lock, or the live run holding it.
 * @throws Error from the file system (e.g. EACCES on the state folder), or when the lock could not be
 *   settled in LOCK_ATTEMPTS attempts.
 */
export async function acquireRepoLock(stateRoot: string, repoRoot: string, info: Omit<RepoLockInfo, 'pid' | 'host'>): Promise<LockAttempt> {
  const file = lockFile(stateRoot, repoRoot);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const own = `${file}.${process.pid}.${info.runId}`;
  await writeFile(own, JSON.stringify({ pid: process.pid, host: os.hostname(), ...info } satisfies RepoLockInfo), { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < LOCK_ATTEMPTS; attempt += 1) {
      try {
        await link(own, file);
        return { lock: { file, release: () => rm(file, { force: true }) } };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = await readLockInfo(file);
      if (holder && !isStale(holder)) return { holder };
      await breakStaleLock(file, `${own}.stale`);
    }
    throw new Error(`Could not take the lock ${file}: it was replaced ${LOCK_ATTEMPTS} times while trying.`);
  } finally {
    await rm(own, { force: true });
  }
}

/**
 * Removes a lock found stale. It is renamed to `aside` first (atomic), then read again: when it is no
 * longer stale there (a live run took the lock between the check and the rename), it is linked back,
 * unless yet another run took the name meanwhile.
 */
async function breakStaleLock(file: string, aside: string): Promise<void> {
  try {
    await rename(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  try {
    const moved = await readLockInfo(aside);
    if (moved && !isStale(moved)) await link(aside, file).catch(() => undefined);
  } finally {
    await rm(aside, { force: true });
  }
}

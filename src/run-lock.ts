/**
 * One run at a time may use a checkout's working tree (mount mode): a lock file per repository in
 * agent-worker's state folder (`$XDG_STATE_HOME/agent-worker/locks/<sha256 of the path>.lock`, JSON
 * `{pid, host, runId, baseCommit}`). A second run on the same repository copies the workspace instead,
 * based on the commit the first run started from. A lock whose process is gone (same host) is stale.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
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
  let info: RepoLockInfo;
  try {
    info = JSON.parse(await readFile(lockFile(stateRoot, repoRoot), 'utf8')) as RepoLockInfo;
  } catch {
    return undefined;
  }
  if (info.host === os.hostname() && !processAlive(info.pid)) return undefined;
  return info;
}

/**
 * Takes the repository's lock, replacing a stale one.
 * @returns the lock, or undefined when another live run holds it.
 */
export async function acquireRepoLock(stateRoot: string, repoRoot: string, info: Omit<RepoLockInfo, 'pid' | 'host'>): Promise<RepoLock | undefined> {
  const file = lockFile(stateRoot, repoRoot);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const content = JSON.stringify({ pid: process.pid, host: os.hostname(), ...info } satisfies RepoLockInfo);
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await writeFile(file, content, { flag: 'wx', mode: 0o600 });
      return { file, release: () => rm(file, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (await lockHolder(stateRoot, repoRoot)) return undefined;
      await rm(file, { force: true });
    }
  }
  return undefined;
}

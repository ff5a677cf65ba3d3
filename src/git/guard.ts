/**
 * Defuses repositories the agent plants inside the work tree (mount mode). Host git looks into nested
 * repositories and submodules (e.g. `git status` and `git add` run a status inside them), and that
 * git reads THEIR config: a filter, fsmonitor or hook there would run on the host. The read-only
 * `.git` mount protects the top repository only, so every `.git` entry below the root is recorded
 * before the agent starts; afterwards, before any host git command touches the tree, each new or
 * changed one is moved into a quarantine folder outside the repository (a changed `.git` file of a
 * registered submodule is put back as it was).
 */
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A `.git` entry below the work tree's root: a folder, or a file with its contents. */
export type GitEntry = { kind: 'dir' } | { kind: 'file'; content: string } | { kind: 'other' };

/** Folders read at once while walking the work tree: enough to keep libuv's thread pool (4 threads) busy. */
const WALK_CONCURRENCY = 16;

/**
 * Every `.git` entry below `root` (not the root's own), by path relative to `root`, in path order;
 * symlinks are not followed. The whole tree is walked, ignored folders such as `node_modules` included
 * (a nested repository there is as dangerous), up to WALK_CONCURRENCY folders at a time.
 */
export async function snapshotGitEntries(root: string): Promise<Map<string, GitEntry>> {
  const found: Array<[string, GitEntry]> = [];
  const visit = async (dir: string): Promise<string[]> => {
    let children;
    try {
      children = await readdir(dir, { withFileTypes: true });
    } catch {
      return [];
    }
    const subdirs: string[] = [];
    for (const child of children) {
      const full = path.join(dir, child.name);
      if (child.name !== '.git') {
        if (child.isDirectory()) subdirs.push(full);
      } else if (dir !== root) {
        const rel = path.relative(root, full);
        if (child.isDirectory()) found.push([rel, { kind: 'dir' }]);
        else if (child.isFile()) found.push([rel, { kind: 'file', content: await readFile(full, 'utf8').catch(() => '') }]);
        else found.push([rel, { kind: 'other' }]);
      }
    }
    return subdirs;
  };
  await new Promise<void>((resolve, reject) => {
    const pending = [root];
    let active = 0;
    const next = (): void => {
      while (active < WALK_CONCURRENCY && pending.length > 0) {
        active += 1;
        visit(pending.pop()!).then((subdirs) => {
          active -= 1;
          for (const subdir of subdirs) pending.push(subdir);
          if (active === 0 && pending.length === 0) resolve();
          else next();
        }, reject);
      }
    };
    next();
  });
  found.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return new Map(found);
}

function same(a: GitEntry | undefined, b: GitEntry): boolean {
  if (!a || a.kind !== b.kind) return false;
  return a.kind !== 'file' || (b.kind === 'file' && a.content === b.content);
}

/**
 * Moves every `.git` entry that is new or changed since `before` into `quarantine` (keeping its
 * relative path), and restores a registered submodule's original `.git` file.
 * @returns the relative paths that were moved aside.
 */
export async function defuseGitEntries(root: string, before: Map<string, GitEntry>, quarantine: string): Promise<string[]> {
  const moved: string[] = [];
  for (const [rel, entry] of await snapshotGitEntries(root)) {
    const original = before.get(rel);
    if (same(original, entry)) continue;
    const target = path.join(quarantine, rel);
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    await rename(path.join(root, rel), target);
    if (original?.kind === 'file') await writeFile(path.join(root, rel), original.content);
    moved.push(rel);
  }
  return moved;
}

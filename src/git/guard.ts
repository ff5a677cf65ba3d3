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

/** Every `.git` entry below `root` (not the root's own), by path relative to `root`; symlinks are not followed. */
export async function snapshotGitEntries(root: string): Promise<Map<string, GitEntry>> {
  const entries = new Map<string, GitEntry>();
  const walk = async (dir: string): Promise<void> => {
    let children;
    try {
      children = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const child of children) {
      const full = path.join(dir, child.name);
      if (child.name === '.git') {
        if (dir === root) continue;
        const rel = path.relative(root, full);
        if (child.isDirectory()) entries.set(rel, { kind: 'dir' });
        else if (child.isFile()) entries.set(rel, { kind: 'file', content: await readFile(full, 'utf8').catch(() => '') });
        else entries.set(rel, { kind: 'other' });
        continue;
      }
      if (child.isDirectory()) await walk(full);
    }
  };
  await walk(root);
  return entries;
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

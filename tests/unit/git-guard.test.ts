/**
 * The `.git` guard (src/git/guard.ts) on real folders: every nested `.git` entry is found at any depth
 * (ignored folders included), symlinks are not followed, and the agent's new or changed entries are moved
 * to the quarantine while the ones that were there before stay.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { defuseGitEntries, snapshotGitEntries } from '../../src/git/guard.js';
import { tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();

function tree(): string {
  return track(tempDir('aw-guard-'));
}

describe('the .git guard', () => {
  it('finds every nested .git entry, in path order, not the root own and not through symlinks', async () => {
    const root = tree();
    mkdirSync(path.join(root, '.git'));
    // 300 folders three levels deep, so the walk has many folders in flight at once.
    for (let index = 0; index < 300; index += 1) mkdirSync(path.join(root, 'node_modules', `pkg${index}`, 'lib', 'deep'), { recursive: true });
    mkdirSync(path.join(root, 'node_modules', 'pkg150', 'lib', 'deep', '.git'));
    mkdirSync(path.join(root, 'vendor', 'sub'), { recursive: true });
    writeFileSync(path.join(root, 'vendor', 'sub', '.git'), 'gitdir: ../../.git/modules/sub\n');
    mkdirSync(path.join(root, 'a'));
    symlinkSync('/dev/null', path.join(root, 'a', '.git'));
    const outside = tree();
    mkdirSync(path.join(outside, 'elsewhere', '.git'), { recursive: true });
    symlinkSync(outside, path.join(root, 'link'));

    const entries = await snapshotGitEntries(root);
    expect([...entries]).toEqual([
      [path.join('a', '.git'), { kind: 'other' }],
      [path.join('node_modules', 'pkg150', 'lib', 'deep', '.git'), { kind: 'dir' }],
      [path.join('vendor', 'sub', '.git'), { kind: 'file', content: 'gitdir: ../../.git/modules/sub\n' }],
    ]);
  });

  it('moves the new and changed entries to the quarantine, puts a changed .git file back, leaves the rest', async () => {
    const root = tree();
    mkdirSync(path.join(root, 'kept', '.git'), { recursive: true });
    mkdirSync(path.join(root, 'sub'));
    writeFileSync(path.join(root, 'sub', '.git'), 'gitdir: ../.git/modules/sub\n');
    const before = await snapshotGitEntries(root);

    mkdirSync(path.join(root, 'node_modules', 'evil', '.git'), { recursive: true });
    writeFileSync(path.join(root, 'node_modules', 'evil', '.git', 'config'), '[core]\n\tfsmonitor = touch /tmp/pwned\n');
    writeFileSync(path.join(root, 'sub', '.git'), 'gitdir: /tmp/elsewhere\n');
    const quarantine = path.join(tree(), 'quarantine');

    const moved = await defuseGitEntries(root, before, quarantine);
    expect(moved).toEqual([path.join('node_modules', 'evil', '.git'), path.join('sub', '.git')]);
    expect(existsSync(path.join(root, 'node_modules', 'evil', '.git'))).toBe(false);
    expect(readFileSync(path.join(quarantine, 'node_modules', 'evil', '.git', 'config'), 'utf8')).toContain('fsmonitor');
    expect(readFileSync(path.join(root, 'sub', '.git'), 'utf8')).toBe('gitdir: ../.git/modules/sub\n');
    expect(readFileSync(path.join(quarantine, 'sub', '.git'), 'utf8')).toBe('gitdir: /tmp/elsewhere\n');
    expect(existsSync(path.join(root, 'kept', '.git'))).toBe(true);
  });
});

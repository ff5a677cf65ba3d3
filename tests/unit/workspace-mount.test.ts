/**
 * Mount mode's workspace (src/workspace/mount.ts) on real repositories: the branch is created and checked out
 * while prepare() has already returned, and ready() waits for it; the container gets the work tree and its .git
 * (a linked worktree's common git dir too); keepWork commits the tree with planted .git entries and files holding
 * a credential moved aside, the diff already being read; undo puts HEAD back and deletes the untouched branch;
 * after a lost daemon with no branch nothing is kept.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openRepo, type Repo } from '../../src/git/repo.js';
import { secretPatterns } from '../../src/git/secret-scan.js';
import { DaemonLostError } from '../../src/docker/container.js';
import { ExitCode } from '../../src/errors.js';
import type { RunLog } from '../../src/report/run-log.js';
import type { RunStatus } from '../../src/report/types.js';
import { createWorkspace } from '../../src/workspace/index.js';
import { linkedGitDirs, MountWorkspace } from '../../src/workspace/mount.js';
import type { WorkspaceContext } from '../../src/workspace/types.js';
import { git, makeRepo, tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();
const SECRET = 'sk-ant-workspace-test-0123456789';

/** A mount workspace on a new repository, with what it noted, warned and was asked to write as commit messages. */
async function mountWorkspace(): Promise<{ dir: string; repo: Repo; workspace: MountWorkspace; notes: string[]; warnings: string[]; messages: Array<[RunStatus, boolean]>; quarantineDir: string }> {
  const dir = track(makeRepo({ 'a.txt': 'a\n' }));
  const repo = await openRepo(dir);
  const notes: string[] = [];
  const warnings: string[] = [];
  const messages: Array<[RunStatus, boolean]> = [];
  const logDir = track(tempDir('aw-log-'));
  const quarantineDir = path.join(logDir, 'quarantine');
  const context: WorkspaceContext = {
    repo,
    branch: 'agent/work',
    base: repo.head.commit,
    head: repo.head,
    runId: 'test-run',
    runLog: { dir: logDir, note: (text: string) => notes.push(text) } as unknown as RunLog,
    scratch: track(tempDir('aw-scratch-')),
    stateRoot: track(tempDir('aw-state-')),
    credentialPatterns: secretPatterns([SECRET]),
    quarantineDir,
    commitMessage: (status, leak) => {
      messages.push([status, leak]);
      return `work (${status}${leak ? ', leak' : ''})\n`;
    },
    warn: (text) => warnings.push(text),
  };
  const workspace = createWorkspace('mount', context);
  expect(workspace).toBeInstanceOf(MountWorkspace);
  return { dir, repo, workspace: workspace as MountWorkspace, notes, warnings, messages, quarantineDir };
}

describe('mount workspace', () => {
  it('creates and checks out the branch after prepare() returned; ready() waits for it; the container gets the work tree', async () => {
    const { dir, repo, workspace, notes } = await mountWorkspace();
    expect(workspace.mode).toBe('mount');
    expect(workspace.removeBeforeKeep).toBe(true);
    expect(workspace.startingPhase).toBe('Starting the container');
    await workspace.prepare();
    await workspace.ready();
    expect(git(dir, 'branch', '--show-current').trim()).toBe('agent/work');
    expect(notes).toContain(`base commit ${repo.head.commit}; created and checked out agent/work`);
    expect(await workspace.containerSpec()).toEqual({ mode: 'mount', workTree: dir, gitDir: path.join(dir, '.git'), extraReadOnly: [] });
  });

  it('commits the work tree: planted .git entries and files holding a credential moved aside, the diff read after the commit', async () => {
    const { dir, repo, workspace, warnings, messages, quarantineDir } = await mountWorkspace();
    await workspace.prepare();
    await workspace.ready();
    writeFileSync(path.join(dir, 'b.txt'), 'b\n');
    writeFileSync(path.join(dir, 'key.env'), `KEY=${SECRET}\n`);
    mkdirSync(path.join(dir, 'nested', '.git'), { recursive: true });
    writeFileSync(path.join(dir, 'nested', '.git', 'config'), '[core]\n\tfsmonitor = evil\n');
    writeFileSync(path.join(dir, 'nested', 'c.txt'), 'c\n');

    const kept = await workspace.keepWork('success');
    expect(kept.credentialLeak).toBe(true);
    expect(messages).toEqual([['success', true]]);
    expect(kept.headCommit).toBe(git(dir, 'rev-parse', 'HEAD').trim());
    expect(git(dir, 'log', '-1', '--format=%s').trim()).toBe('work (success, leak)');
    expect(git(dir, 'ls-tree', '-r', '--name-only', 'HEAD').trim().split('\n').sort()).toEqual(['a.txt', 'b.txt', 'nested/c.txt']);
    expect((await kept.changes)?.filesChanged).toBe(2);
    expect(existsSync(path.join(quarantineDir, 'key.env'))).toBe(true);
    expect(existsSync(path.join(quarantineDir, 'nested', '.git', 'config'))).toBe(true);
    expect(warnings.some((text) => text.startsWith('moved 1 .git entry') && text.includes('nested/.git'))).toBe(true);
    expect(warnings.some((text) => text.includes('key.env') && text.includes('the file is not committed'))).toBe(true);
    expect(repo.head.commit).not.toBe(kept.headCommit);
  });

  it('undo checks the previous branch out again and deletes the untouched branch', async () => {
    const { dir, workspace } = await mountWorkspace();
    await workspace.prepare();
    await workspace.undo();
    expect(git(dir, 'branch', '--show-current').trim()).toBe('main');
    expect(git(dir, 'branch', '--list', 'agent/work')).toBe('');
  });

  it('undo after the branch could not be created changes nothing and does not throw', async () => {
    const { dir, workspace } = await mountWorkspace();
    git(dir, 'branch', 'agent/work');
    await workspace.prepare();
    await expect(workspace.ready()).rejects.toThrow();
    await workspace.undo();
    expect(git(dir, 'branch', '--show-current').trim()).toBe('main');
    expect(git(dir, 'branch', '--list', 'agent/work').trim()).toBe('agent/work');
  });

  it('after a failure keeps the work with status agent_error, unless the daemon was lost and the branch is gone', async () => {
    const { dir, workspace, messages } = await mountWorkspace();
    await workspace.prepare();
    await workspace.ready();
    writeFileSync(path.join(dir, 'b.txt'), 'b\n');
    await workspace.keepAfterFailure(new Error('proxy lost'));
    expect(messages).toEqual([['agent_error', false]]);
    expect(git(dir, 'log', '-1', '--format=%s').trim()).toBe('work (agent_error)');

    git(dir, 'checkout', '--quiet', 'main');
    git(dir, 'branch', '-D', 'agent/work');
    writeFileSync(path.join(dir, 'c.txt'), 'c\n');
    await workspace.keepAfterFailure(new DaemonLostError('gone', ExitCode.docker));
    expect(messages).toHaveLength(1);
  });

  it("a linked worktree's common git dir is mounted too; a plain checkout has none", async () => {
    const dir = track(makeRepo());
    expect(await linkedGitDirs(await openRepo(dir))).toEqual([]);
    const linked = path.join(track(tempDir()), 'linked');
    git(dir, 'worktree', 'add', '--quiet', '-b', 'other', linked);
    expect(await linkedGitDirs(await openRepo(linked))).toEqual([path.join(realpathSync(dir), '.git')]);
  });
});

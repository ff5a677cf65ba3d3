/**
 * Copy mode's workspace (src/workspace/copy.ts) on real repositories, with a fake container that hands back what
 * container/collect.sh leaves: prepare bundles the base commit for the container's spec; keepWork fetches the
 * agent's bundle onto the branch with files holding a credential taken out (no result file: exit 10; no bundle:
 * the branch at the base commit); finish checks the branch out only on a clean, free tree; after a failure the
 * branch is made at the base commit when nothing can be fetched (a lost daemon).
 */
import { describe, expect, it } from 'vitest';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openRepo, type Repo } from '../../src/git/repo.js';
import { secretPatterns } from '../../src/git/secret-scan.js';
import { DaemonLostError, type AgentContainer } from '../../src/docker/container.js';
import { AgentWorkerError, ExitCode } from '../../src/errors.js';
import type { RunLog } from '../../src/report/run-log.js';
import { acquireRepoLock } from '../../src/run-lock.js';
import { createWorkspace } from '../../src/workspace/index.js';
import { CopyWorkspace } from '../../src/workspace/copy.js';
import type { WorkspaceContext } from '../../src/workspace/types.js';
import { git, makeRepo, tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();
const SECRET = 'sk-ant-workspace-test-0123456789';

/** A copy workspace on a new repository, with what it noted and warned. */
async function copyWorkspace(): Promise<{ dir: string; repo: Repo; workspace: CopyWorkspace; context: WorkspaceContext; notes: string[]; warnings: string[] }> {
  const dir = track(makeRepo({ 'a.txt': 'a\n' }));
  const repo = await openRepo(dir);
  const notes: string[] = [];
  const warnings: string[] = [];
  const logDir = track(tempDir('aw-log-'));
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
    quarantineDir: path.join(logDir, 'quarantine'),
    commitMessage: (status, leak) => `work (${status}${leak ? ', leak' : ''})\n`,
    warn: (text) => warnings.push(text),
  };
  const workspace = createWorkspace('copy', context);
  expect(workspace).toBeInstanceOf(CopyWorkspace);
  return { dir, repo, workspace: workspace as CopyWorkspace, context, notes, warnings };
}

/**
 * A stopped container whose output folder holds `result` and, when `files` are given, `work.bundle`: the base
 * commit cloned, `files` committed on top, bundled as base..HEAD (as container/collect.sh does).
 */
function fakeContainer(dir: string, base: string, output: { result: boolean; files?: Record<string, string> }): AgentContainer {
  return {
    fetchCopyOutput: (destDir: string): Promise<string[]> => {
      const out = path.join(destDir, 'agent-worker-out');
      mkdirSync(out, { recursive: true });
      const names: string[] = [];
      if (output.files) {
        const clone = path.join(track(tempDir()), 'clone');
        git(path.dirname(clone), 'clone', '--quiet', dir, clone);
        for (const [name, content] of Object.entries(output.files)) writeFileSync(path.join(clone, name), content);
        git(clone, 'add', '-A');
        git(clone, 'commit', '--quiet', '-m', 'agent commit');
        git(clone, 'bundle', 'create', '--quiet', path.join(out, 'work.bundle'), 'HEAD', `^${base}`);
        names.push('agent-worker-out/work.bundle');
      }
      if (output.result) {
        writeFileSync(path.join(out, 'result'), 'agent_status=0\n');
        names.push('agent-worker-out/result');
      }
      return Promise.resolve(names);
    },
  } as unknown as AgentContainer;
}

describe('copy workspace', () => {
  it('bundles the base commit for the container, with the branch, the commit message for success and the identity', async () => {
    const { dir, repo, workspace, context, notes } = await copyWorkspace();
    expect(workspace.mode).toBe('copy');
    expect(workspace.removeBeforeKeep).toBe(false);
    expect(workspace.startingPhase).toBe('Starting the container (copying the repository in)');
    await expect(workspace.containerSpec()).rejects.toThrow(AgentWorkerError);
    await workspace.prepare();
    await workspace.ready();
    const spec = await workspace.containerSpec();
    const bundleFile = path.join(context.scratch, 'repo.bundle');
    expect(spec).toMatchObject({ mode: 'copy', bundleFile, bundleRef: 'refs/agent-worker/runs/test-run', baseCommit: repo.head.commit, branch: 'agent/work', commitMessage: 'work (success)\n' });
    expect(git(dir, 'bundle', 'list-heads', bundleFile).trim()).toBe(`${repo.head.commit} refs/agent-worker/runs/test-run`);
    expect(notes).toContain(`base commit ${repo.head.commit}; bundled for copy-in (${statSync(bundleFile).size} bytes)`);
    // The user's tree is not touched.
    expect(git(dir, 'branch', '--show-current').trim()).toBe('main');
  });

  it("keeps the agent's commits on the branch, a file holding a credential taken out of them", async () => {
    const { dir, repo, workspace, warnings } = await copyWorkspace();
    const container = fakeContainer(dir, repo.head.commit, { result: true, files: { 'b.txt': 'b\n', 'key.env': `KEY=${SECRET}\n` } });
    const kept = await workspace.keepWork('success', container);
    expect(kept.credentialLeak).toBe(true);
    expect(kept.changes).toBeUndefined();
    expect(kept.headCommit).toBe(git(dir, 'rev-parse', 'agent/work').trim());
    expect(git(dir, 'ls-tree', '-r', '--name-only', 'agent/work').trim().split('\n')).toEqual(['a.txt', 'b.txt']);
    expect(warnings.some((text) => text.includes('key.env') && text.includes('not on the branch'))).toBe(true);
    expect(git(dir, 'for-each-ref', 'refs/agent-worker')).toBe('');
  });

  it('makes the branch at the base commit when the agent changed nothing; refuses a container that did not finish (exit 10)', async () => {
    const { dir, repo, workspace } = await copyWorkspace();
    await expect(workspace.keepWork('success', undefined)).rejects.toMatchObject({ exitCode: ExitCode.collect });
    const error = await workspace.keepWork('success', fakeContainer(dir, repo.head.commit, { result: false })).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AgentWorkerError);
    expect((error as AgentWorkerError).exitCode).toBe(ExitCode.collect);
    expect(git(dir, 'branch', '--list', 'agent/work')).toBe('');
    const kept = await workspace.keepWork('success', fakeContainer(dir, repo.head.commit, { result: true }));
    expect(kept).toEqual({ headCommit: repo.head.commit, credentialLeak: false });
    expect(git(dir, 'rev-parse', 'agent/work').trim()).toBe(repo.head.commit);
  });

  it('finish checks the branch out on a clean, free tree only', async () => {
    const { dir, repo, workspace, context, notes } = await copyWorkspace();
    await workspace.keepWork('success', fakeContainer(dir, repo.head.commit, { result: true, files: { 'b.txt': 'b\n' } }));
    const { lock } = await acquireRepoLock(context.stateRoot, repo.root, { runId: 'other-run', baseCommit: repo.head.commit });
    await workspace.finish();
    expect(git(dir, 'branch', '--show-current').trim()).toBe('main');
    expect(notes).toContain('another run holds the working tree; agent/work was created but not checked out');
    await lock!.release();
    writeFileSync(path.join(dir, 'a.txt'), 'changed\n');
    await workspace.finish();
    expect(git(dir, 'branch', '--show-current').trim()).toBe('main');
    expect(notes).toContain('working tree changed during the run; agent/work was created but not checked out');
    git(dir, 'checkout', '--quiet', '--', 'a.txt');
    await workspace.finish();
    expect(git(dir, 'branch', '--show-current').trim()).toBe('agent/work');
  });

  it('after a failure: the work is fetched when it can be, else the branch is made at the base commit; an existing branch is left', async () => {
    const { dir, repo, workspace } = await copyWorkspace();
    await workspace.undo();
    expect(git(dir, 'branch', '--list', 'agent/work')).toBe('');
    // A lost daemon: nothing is fetched.
    await workspace.keepAfterFailure(new DaemonLostError('gone', ExitCode.docker), fakeContainer(dir, repo.head.commit, { result: true, files: { 'b.txt': 'b\n' } }));
    expect(git(dir, 'rev-parse', 'agent/work').trim()).toBe(repo.head.commit);
    // The branch exists: left as it is.
    await workspace.keepAfterFailure(new Error('later'), fakeContainer(dir, repo.head.commit, { result: true, files: { 'b.txt': 'b\n' } }));
    expect(git(dir, 'rev-parse', 'agent/work').trim()).toBe(repo.head.commit);
    git(dir, 'branch', '-D', 'agent/work');
    await workspace.keepAfterFailure(new Error('proxy lost'), fakeContainer(dir, repo.head.commit, { result: true, files: { 'b.txt': 'b\n' } }));
    expect(git(dir, 'log', '-1', '--format=%s', 'agent/work').trim()).toBe('agent commit');
  });
});

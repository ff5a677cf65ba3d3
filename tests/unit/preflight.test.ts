import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { preflight, type RunContext } from '../../src/run.js';
import type { RunConfig } from '../../src/config.js';
import { AgentWorkerError, ExitCode } from '../../src/errors.js';
import { silentProgress } from '../../src/ui/progress.js';
import { acquireRepoLock, lockFile, lockHolder } from '../../src/run-lock.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();
const GIT_IDENTITY = { GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.com', GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.com' };

/** A daemon address where nothing listens, so preflight fails at the Docker step at the latest. */
const NO_DAEMON = 'unix:///nonexistent/agent-worker-test.sock';

function config(project: string, overrides: Partial<RunConfig> = {}): RunConfig {
  return {
    project,
    task: 'task',
    agentType: 'claude',
    apiKey: 'sk-test',
    timezone: 'UTC',
    timeoutSeconds: 60,
    dockerHost: NO_DAEMON,
    backend: 'local',
    placement: [],
    forceRebuild: false,
    debug: false,
    json: false,
    allowHosts: [],
    branch: 'feature/ok',
    tls: {},
    insecureDocker: false,
    memoryBytes: 8 * 1024 ** 3,
    pidsLimit: 4096,
    buildTimeoutSeconds: 1800,
    quiet: false,
    ...overrides,
  };
}

/** Its own state folder, so the checkout locks preflight takes stay out of the user's. */
const stateHome = tempDir('aw-state-');
afterAll(() => removeDir(stateHome));
const context: RunContext = { progress: silentProgress, notice: () => undefined, signal: new AbortController().signal, env: { XDG_STATE_HOME: stateHome }, uid: 1000, gid: 1000 };

async function failure(cfg: RunConfig): Promise<AgentWorkerError> {
  try {
    await preflight(cfg, context);
  } catch (error) {
    if (error instanceof AgentWorkerError) return error;
    throw error;
  }
  throw new Error('preflight passed');
}

function repo(files?: Record<string, string>): string {
  return track(makeRepo(files));
}

describe('preflight', () => {
  it('refuses a folder that is not a git repository (exit 3)', async () => {
    const dir = track(tempDir());
    const error = await failure(config(dir));
    expect(error.exitCode).toBe(ExitCode.notARepo);
    expect(error.message).toMatch(/not inside a git repository/);
    expect(error.hint).toMatch(/--project/);
  });

  it('refuses a missing folder (exit 3)', async () => {
    const error = await failure(config('/nonexistent/agent-worker-project'));
    expect(error.exitCode).toBe(ExitCode.notARepo);
  });

  it('refuses a repository without commits (exit 3)', async () => {
    const dir = track(tempDir());
    git(dir, 'init', '--quiet');
    const error = await failure(config(dir));
    expect(error.exitCode).toBe(ExitCode.notARepo);
    expect(error.message).toMatch(/no commit/);
    expect(error.hint).toMatch(/git commit/);
  });

  it.each([
    ['an empty folder', (_dir: string) => undefined],
    ['a folder with files', (dir: string) => writeFileSync(path.join(dir, 'app.py'), 'print(1)\n')],
    ['a repository with no commit', (dir: string) => git(dir, 'init', '--quiet')],
  ])('the not-a-repository hint, run as given in %s, makes a repository preflight accepts', async (_name, prepare) => {
    const dir = track(tempDir());
    prepare(dir);
    const hint = (await failure(config(dir))).hint ?? '';
    const commands = /`([^`]+)`/.exec(hint)?.[1];
    expect(commands, hint).toMatch(/git commit/);
    execFileSync('sh', ['-c', commands!], { cwd: dir, env: { ...process.env, ...GIT_IDENTITY }, stdio: 'ignore' });
    // Past the repository checks: it now fails only at the daemon, which does not exist.
    expect((await failure(config(dir))).exitCode).toBe(ExitCode.docker);
  });

  it('refuses a bare repository (exit 3)', async () => {
    const dir = track(tempDir());
    git(dir, 'init', '--quiet', '--bare');
    expect((await failure(config(dir))).exitCode).toBe(ExitCode.notARepo);
  });

  it.each([
    ['an untracked file', (dir: string) => writeFileSync(path.join(dir, 'new.txt'), 'x')],
    ['an untracked file in a new folder', (dir: string) => (mkdirSync(path.join(dir, 'sub')), writeFileSync(path.join(dir, 'sub', 'n.txt'), 'x'))],
    ['a modified file', (dir: string) => writeFileSync(path.join(dir, 'README.md'), 'changed')],
    ['only staged changes', (dir: string) => (writeFileSync(path.join(dir, 'README.md'), 'staged'), git(dir, 'add', 'README.md'))],
  ])('refuses a dirty tree with %s (exit 4)', async (_name, dirty) => {
    const dir = repo();
    dirty(dir);
    const error = await failure(config(dir));
    expect(error.exitCode).toBe(ExitCode.dirtyTree);
    expect(error.hint).toMatch(/stash/);
  });

  it('allows ignored files (gets as far as Docker)', async () => {
    const dir = repo({ '.gitignore': '*.log\n', 'README.md': 'x' });
    writeFileSync(path.join(dir, 'debug.log'), 'ignored');
    expect((await failure(config(dir))).exitCode).toBe(ExitCode.docker);
  });

  it.each(['a..b', '-x', 'x.lock', 'a@{b', 'HEAD', 'has space', 'end/', '@'])('refuses the invalid branch name %j (exit 5)', async (branch) => {
    const dir = repo();
    const error = await failure(config(dir, { branch }));
    expect(error.exitCode).toBe(ExitCode.badBranch);
    expect(error.hint).toMatch(/--branch/);
  });

  it('refuses an existing branch (exit 5) and names it', async () => {
    const dir = repo();
    git(dir, 'branch', 'feature/taken');
    const error = await failure(config(dir, { branch: 'feature/taken' }));
    expect(error.exitCode).toBe(ExitCode.badBranch);
    expect(error.message).toMatch(/feature\/taken already exists/);
  });

  it('refuses missing credentials (exit 7) and names both ways to give them', async () => {
    const dir = repo();
    const error = await failure(config(dir, { apiKey: undefined, oauthToken: undefined }));
    expect(error.exitCode).toBe(ExitCode.credentials);
    expect(error.hint).toMatch(/ANTHROPIC_API_KEY/);
    expect(error.hint).toMatch(/CLAUDE_CODE_OAUTH_TOKEN/);
  });

  it('accepts an OAuth token instead of an API key', async () => {
    const dir = repo();
    expect((await failure(config(dir, { apiKey: undefined, oauthToken: 'tok' }))).exitCode).toBe(ExitCode.docker);
  });

  it('reports an unreachable Docker daemon (exit 6), naming the daemon tried', async () => {
    const dir = repo();
    const error = await failure(config(dir));
    expect(error.exitCode).toBe(ExitCode.docker);
    expect(error.message).toContain(NO_DAEMON);
    expect(error.hint).toMatch(/--remote-docker/);
  });

  it('works from a subdirectory of the repository', async () => {
    const dir = repo({ 'src/a.txt': 'a' });
    expect((await failure(config(path.join(dir, 'src')))).exitCode).toBe(ExitCode.docker);
  });

  it('leaves the repository untouched when it fails', async () => {
    const dir = repo();
    const before = git(dir, 'for-each-ref');
    await failure(config(dir));
    expect(git(dir, 'for-each-ref')).toBe(before);
    expect(git(dir, 'status', '--porcelain')).toBe('');
  });

  it('releases the checkout lock it took when it fails', async () => {
    const dir = repo();
    const root = realpathSync(dir);
    await failure(config(dir));
    expect(await lockHolder(path.join(stateHome, 'agent-worker'), root)).toBeUndefined();
    expect(existsSync(lockFile(path.join(stateHome, 'agent-worker'), root))).toBe(false);
  });

  it('a checkout held by another live run: --workspace mount is refused (exit 4) naming the run; by default the busy tree is not checked', async () => {
    const dir = repo();
    const root = realpathSync(dir);
    const held = await acquireRepoLock(path.join(stateHome, 'agent-worker'), root, { runId: 'holder-run', baseCommit: git(dir, 'rev-parse', 'HEAD').trim() });
    try {
      // The holder's agent is at work: the tree is dirty.
      writeFileSync(path.join(dir, 'README.md'), 'being edited by the other run');
      const refused = await failure(config(dir, { workspace: 'mount' }));
      expect(refused.exitCode).toBe(ExitCode.dirtyTree);
      expect(refused.message).toContain('holder-run');
      expect(refused.hint).toContain('--workspace copy');
      // The default copies the workspace from the holder's base commit, so it gets as far as Docker.
      expect((await failure(config(dir))).exitCode).toBe(ExitCode.docker);
      expect((await lockHolder(path.join(stateHome, 'agent-worker'), root))?.runId).toBe('holder-run');
    } finally {
      await held.lock!.release();
    }
  });
});

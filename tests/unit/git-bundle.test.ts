/**
 * Copy mode's git hand-over on real repositories (src/git/repo.ts): the bundle that goes into the container
 * holds the base commit under its transient ref, which is gone from the repository afterwards; the
 * bundle that comes back is fetched into the new branch, and a broken one is refused with exit code 10
 * without creating the branch.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createBundle, fetchBundle, gitIdentity, openRepo } from '../../src/git/repo.js';
import { AgentWorkerError, ExitCode } from '../../src/errors.js';
import { git, makeRepo, tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();

describe("copy mode's bundles", () => {
  it('the bundle going in holds the base commit under its ref; the ref is gone afterwards', async () => {
    const dir = track(makeRepo({ 'a.txt': 'a\n' }));
    const repo = await openRepo(dir);
    const file = path.join(track(tempDir()), 'in.bundle');
    await createBundle(repo, file, repo.head.commit, 'refs/agent-worker/runs/test-run');
    expect(git(dir, 'bundle', 'list-heads', file).trim()).toBe(`${repo.head.commit} refs/agent-worker/runs/test-run`);
    expect(git(dir, 'for-each-ref', 'refs/agent-worker')).toBe('');
  });

  it('the bundle coming back is fetched into the new branch; a broken one is refused (exit 10) and no branch is made', async () => {
    const dir = track(makeRepo({ 'a.txt': 'a\n' }));
    const repo = await openRepo(dir);
    const base = repo.head.commit;
    const clone = path.join(track(tempDir()), 'clone');
    git(path.dirname(clone), 'clone', '--quiet', dir, clone);
    writeFileSync(path.join(clone, 'b.txt'), 'b\n');
    git(clone, 'add', 'b.txt');
    git(clone, '-c', 'user.name=Agent', '-c', 'user.email=agent@example.com', 'commit', '--quiet', '-m', 'agent commit');
    const back = path.join(path.dirname(clone), 'work.bundle');
    git(clone, 'bundle', 'create', '--quiet', back, `${base}..HEAD`);

    const head = await fetchBundle(repo, back, 'agent/work');
    expect(head).toBe(git(clone, 'rev-parse', 'HEAD').trim());
    expect(git(dir, 'log', '--format=%s', `${base}..agent/work`).trim()).toBe('agent commit');

    const broken = path.join(path.dirname(clone), 'broken.bundle');
    writeFileSync(broken, '# v2 git bundle\nnot a bundle\n');
    const error = await fetchBundle(repo, broken, 'agent/broken').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AgentWorkerError);
    expect((error as AgentWorkerError).exitCode).toBe(ExitCode.collect);
    expect((error as AgentWorkerError).hint).toContain(broken);
    expect(git(dir, 'branch', '--list', 'agent/broken')).toBe('');
  });

  it("the identity is the user's git config, else agent-worker's", async () => {
    const dir = track(makeRepo());
    git(dir, 'config', 'user.name', 'Ada Lovelace');
    git(dir, 'config', 'user.email', 'ada@example.com');
    expect(await gitIdentity(await openRepo(dir))).toEqual({ name: 'Ada Lovelace', email: 'ada@example.com' });
    git(dir, 'config', '--unset', 'user.email');
    const saved = { global: process.env.GIT_CONFIG_GLOBAL, system: process.env.GIT_CONFIG_NOSYSTEM };
    // No global or system config either: the email falls back.
    process.env.GIT_CONFIG_GLOBAL = '/dev/null';
    process.env.GIT_CONFIG_NOSYSTEM = '1';
    try {
      expect(await gitIdentity(await openRepo(dir))).toEqual({ name: 'Ada Lovelace', email: 'agent-worker@localhost' });
    } finally {
      for (const [key, value] of [['GIT_CONFIG_GLOBAL', saved.global], ['GIT_CONFIG_NOSYSTEM', saved.system]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});

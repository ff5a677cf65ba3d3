/**
 * d. Refusals through the built CLI: dirty tree, existing branch, missing credentials. Each has its
 * own exit code, and neither a container nor an image build happened (read from Docker's events).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { dockerAvailable, dockerEvents, managedContainers, runCli, type CliResult } from '../helpers/docker.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';

const hasDocker = await dockerAvailable();
const cleanup: string[] = [];
afterAll(() => cleanup.forEach(removeDir));

/** Runs the CLI and returns its result plus the container/image events Docker saw meanwhile. */
async function refused(repo: string, args: string[], env: Record<string, string>): Promise<{ result: CliResult; events: Array<{ Type: string; Action: string }> }> {
  const state = tempDir('aw-state-');
  cleanup.push(state);
  const since = Date.now() / 1000;
  const result = await runCli(['--project', repo, '--task', 'anything', ...args], { cwd: repo, env: { XDG_STATE_HOME: state, ...env } });
  const until = Date.now() / 1000 + 0.5;
  // Only creations count: another suite's cleanup (image delete) may fall in the same second.
  const events = (await dockerEvents(since, until, ['container', 'image'])).filter(
    (event) => (event.Type === 'container' && event.Action === 'create') || (event.Type === 'image' && ['tag', 'build', 'pull', 'import', 'load'].includes(event.Action)),
  );
  return { result, events };
}

describe.runIf(hasDocker)('refusals before anything is created', () => {
  it('dirty tree → exit 4, the hint names stash, nothing created, the tree untouched', async () => {
    const repo = makeRepo();
    cleanup.push(repo);
    writeFileSync(path.join(repo, 'wip.txt'), 'uncommitted work');
    const { result, events } = await refused(repo, ['--branch', 'd-dirty'], { ANTHROPIC_API_KEY: 'sk-x' });
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/uncommitted changes/);
    expect(result.stderr).toMatch(/wip\.txt/);
    expect(result.stderr).toMatch(/git stash/);
    expect(result.stdout).toBe('');
    expect(events).toEqual([]);
    expect(git(repo, 'status', '--porcelain')).toBe('?? wip.txt\n');
    expect(git(repo, 'branch', '--list', 'd-dirty')).toBe('');
  });

  it('existing branch → exit 5, nothing created, the branch not moved', async () => {
    const repo = makeRepo();
    cleanup.push(repo);
    git(repo, 'branch', 'taken');
    const tip = git(repo, 'rev-parse', 'taken');
    const { result, events } = await refused(repo, ['--branch', 'taken'], { ANTHROPIC_API_KEY: 'sk-x' });
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/Branch taken already exists/);
    expect(events).toEqual([]);
    expect(git(repo, 'rev-parse', 'taken')).toBe(tip);
  });

  it('missing credentials → exit 7, nothing created', async () => {
    const repo = makeRepo();
    cleanup.push(repo);
    const { result, events } = await refused(repo, ['--branch', 'd-creds'], {});
    expect(result.code).toBe(7);
    expect(result.stderr).toMatch(/ANTHROPIC_API_KEY/);
    expect(events).toEqual([]);
    expect(git(repo, 'branch', '--list', 'd-creds')).toBe('');
    expect(await managedContainers()).toEqual([]);
  });

  it('an invalid option → exit 2 naming the flag', async () => {
    const repo = makeRepo();
    cleanup.push(repo);
    const { result, events } = await refused(repo, ['--timeout', 'ten'], { ANTHROPIC_API_KEY: 'sk-x' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--timeout: "ten" is not a positive whole number of seconds/);
    expect(events).toEqual([]);
  });

  it('a hanging daemon fails fast: exit 6 after the connect timeout, naming the daemon', async () => {
    const repo = makeRepo();
    cleanup.push(repo);
    // Accepts connections and never answers.
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const started = Date.now();
      const { result } = await refused(repo, ['--branch', 'hang', '--remote-docker', `tcp://127.0.0.1:${port}`], { ANTHROPIC_API_KEY: 'sk-x' });
      expect(result.code).toBe(6);
      expect(result.stderr).toContain(`The Docker daemon at tcp://127.0.0.1:${port}`);
      expect(result.stderr).toMatch(/timed out after 10000 ms/);
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      sockets.forEach((socket) => socket.destroy());
      server.close();
    }
  });

  it('--version and --help exit 0', async () => {
    const cwd = tempDir();
    cleanup.push(cwd);
    const version = await runCli(['--version'], { cwd });
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const help = await runCli(['--help'], { cwd });
    expect(help.code).toBe(0);
    for (const flag of ['--project', '--branch', '--task', '--task-file', '--agent-type', '--api-key', '--oauth-token', '--base-url', '--timezone', '--timeout', '--remote-docker', '--force-rebuild', '--debug', '--json', '--model', '--max-turns', '--ca-cert', '--allow-host', '--env-file']) {
      expect(help.stdout).toContain(flag);
    }
  });
});

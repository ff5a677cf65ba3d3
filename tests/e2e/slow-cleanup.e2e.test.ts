/**
 * End to end, issue #11: cleanup after the work never decides how a run ended (STYLE rule 16). The
 * built CLI talks to the real daemon through a proxy that holds back the removal of the agent's
 * container (tests/helpers/slow-removal-proxy.ts), as a slow docker-in-docker daemon does; the bound on
 * removal is made short with AGENT_WORKER_REMOVE_TIMEOUT_MS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { parseReport, runAgentWorker, withFixture } from '../helpers/agent-run.js';
import { docker, dockerAvailable, projectContainers, removeProjectContainers, runCli, type CliResult } from '../helpers/docker.js';
import { startSlowRemovalProxy, type SlowRemovalProxy } from '../helpers/slow-removal-proxy.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';

const hasDocker = await dockerAvailable();

/** The bound on removal in the runs whose removal is held past it, in ms. */
const SHORT_BOUND_MS = 3_000;

const cleanup: string[] = [];
const repos: string[] = [];
let stateDir: string;

beforeAll(() => {
  stateDir = tempDir('aw-state-');
  cleanup.push(stateDir);
});

afterAll(async () => {
  // What a defect (or a failed assertion) left behind.
  await removeProjectContainers(repos);
  for (const dir of cleanup) removeDir(dir);
});

/** The agent writes `file`, then says it is done. */
function writeScript(file: string, content: string): ScriptedTurn[] {
  return [
    { content: [{ type: 'tool_use', name: 'Write', input: { file_path: `/workspace/${file}`, content } }], usage: { input: 500, output: 40 } },
    { content: [{ type: 'text', text: 'Done.' }], usage: { input: 600, output: 10 } },
  ];
}

function newRepo(): string {
  const repo = makeRepo({ 'README.md': '# slow cleanup\n' });
  cleanup.push(repo);
  repos.push(repo);
  return repo;
}

/**
 * Runs the CLI on `repo` through a proxy that holds container removals for `removalDelayMs`
 * (`Infinity`: never passed on), with `boundMs` as the bound on removal.
 */
async function runThroughProxy(
  repo: string,
  script: ScriptedTurn[],
  args: string[],
  removalDelayMs: number,
  boundMs: number,
): Promise<{ result: CliResult; proxy: Pick<SlowRemovalProxy, 'removalsAsked' | 'removalsForwarded'> }> {
  const proxy = await startSlowRemovalProxy({ removalDelayMs });
  try {
    const result = await withFixture(script, (fixture) =>
      runAgentWorker(repo, fixture, args, { stateDir, env: { DOCKER_HOST: proxy.url, AGENT_WORKER_REMOVE_TIMEOUT_MS: String(boundMs) } }),
    );
    return { result, proxy };
  } finally {
    await proxy.close();
  }
}

/** The container the run left is found and removed by `agent-worker gc` (against the daemon itself). */
async function expectGcRemovesWhatWasLeft(repo: string): Promise<void> {
  // Once the run's process is gone its containers (the agent's, the egress proxy's) are orphans: another
  // session's run may sweep them first.
  expect((await projectContainers(repo)).length).toBeLessThanOrEqual(2);
  const gc = await runCli(['gc', '--json'], { cwd: repo });
  expect(gc.code, gc.stderr).toBe(0);
  expect(await projectContainers(repo)).toEqual([]);
  // The run's network goes with them.
  expect(await docker.listNetworks({ filters: { label: [`dev.agent-worker.project=${repo}`] } })).toEqual([]);
}

/** Each held removal (the agent's container, the egress proxy's) is one warning naming the container and gc. */
function expectLeftBehindWarnings(warnings: string[], removalsAsked: string[]): void {
  expect(removalsAsked).toHaveLength(2);
  for (const id of removalsAsked) {
    expect(warnings.some((warning) => warning.includes(`container ${id.slice(0, 12)} was not removed within 3 s; it is labelled dev.agent-worker.managed and \`agent-worker gc\` removes it`)), warnings.join('\n')).toBe(true);
  }
}

describe.runIf(hasDocker)('slow container removal never decides how a run ended (real Claude Code, scripted API)', { timeout: 900_000 }, () => {
  it('mount workspace, removal never answered within the bound: exit 0, status success, the work on the branch, a warning naming the container and gc', async () => {
    const repo = newRepo();
    const { result, proxy } = await runThroughProxy(repo, writeScript('done.txt', 'mount\n'), ['--branch', 'slow-mount', '--task', 'Write done.txt'], Infinity, SHORT_BOUND_MS);
    expect(result.code, result.stderr).toBe(0);
    const report = parseReport(result);
    expect(report.status).toBe('success');
    expect(git(repo, 'show', 'slow-mount:done.txt')).toBe('mount\n');
    expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');

    expect(proxy.removalsForwarded).toEqual([]);
    expectLeftBehindWarnings(report.warnings, proxy.removalsAsked);
    expect(result.stderr).not.toContain('unexpected error');
    await expectGcRemovesWhatWasLeft(repo);
  });

  it('copy workspace, removal never answered within the bound (after the work was fetched): exit 0, status success, the work on the branch, the warning', async () => {
    const repo = newRepo();
    const { result, proxy } = await runThroughProxy(
      repo,
      writeScript('done.txt', 'copy\n'),
      ['--branch', 'slow-copy', '--task', 'Write done.txt', '--workspace', 'copy'],
      Infinity,
      SHORT_BOUND_MS,
    );
    expect(result.code, result.stderr).toBe(0);
    const report = parseReport(result);
    expect(report.status).toBe('success');
    expect(git(repo, 'show', 'slow-copy:done.txt')).toBe('copy\n');

    expectLeftBehindWarnings(report.warnings, proxy.removalsAsked);
    await expectGcRemovesWhatWasLeft(repo);
  });

  it('a failure after the container was created, removal never answered: the failure\'s own exit code and message, and the warning on stderr', async () => {
    const repo = newRepo();
    // The egress proxy cannot resolve the model API's host, so the run stops before the agent starts (exit 9).
    const { result, proxy } = await runThroughProxy(
      repo,
      writeScript('never.txt', 'never\n'),
      ['--branch', 'slow-fail', '--task', 'Never runs', '--base-url', 'http://does-not-resolve.invalid'],
      Infinity,
      SHORT_BOUND_MS,
    );
    expect(result.code, result.stderr).toBe(9);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/agent-worker: .*does-not-resolve\.invalid/);
    expect(result.stderr).not.toContain('timed out after');
    // Both containers had started (the agent's waited for the proxy, which never listened); no report on a failure:
    // the warnings are on stderr.
    expectLeftBehindWarnings(result.stderr.split('\n'), proxy.removalsAsked);
    expect(git(repo, 'branch', '--list', 'slow-fail')).toBe('');
    await expectGcRemovesWhatWasLeft(repo);
  });

  it('removal slow but within the bound (2 s of a 30 s bound): exit 0, status success, no warning, the container removed by the run', async () => {
    const repo = newRepo();
    const { result, proxy } = await runThroughProxy(repo, writeScript('done.txt', 'in time\n'), ['--branch', 'slow-in-time', '--task', 'Write done.txt'], 2_000, 30_000);
    expect(result.code, result.stderr).toBe(0);
    const report = parseReport(result);
    expect(report.status).toBe('success');
    expect(git(repo, 'show', 'slow-in-time:done.txt')).toBe('in time\n');
    expect(proxy.removalsAsked).toHaveLength(2);
    expect(proxy.removalsForwarded.sort()).toEqual([...proxy.removalsAsked].sort());
    expect(report.warnings).toEqual([]);
    expect(result.stderr).not.toMatch(/was not removed|could not be removed/);
    expect(await projectContainers(repo)).toEqual([]);
  });
});

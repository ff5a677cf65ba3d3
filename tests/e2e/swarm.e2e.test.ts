/**
 * `--backend swarm` end to end: a swarm of docker-in-docker nodes on the local engine (one drained manager, two
 * workers) and a registry (tests/helpers/swarm.ts), the built CLI talking to the manager's API only, the real Claude
 * Code in the tool's image (built on the local engine, copied into the manager, pushed by the product to the
 * registry, pulled by the workers), scripted Messages APIs on the outer bridge gateway. A single run; a batch of six
 * tasks over three repositories spread over both workers; a worker killed mid-batch (its runs retried elsewhere); a
 * placement no node satisfies; the credential never inside the job's container; the backend contract; last, the
 * manager killed mid-batch (the finished run kept). Nothing is left on any node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import type { ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { startFakeAnthropic, type FakeAnthropic } from '../fixtures/fake-anthropic.js';
import { ensureToolImage, numstat, servedTokens, TEST_API_KEY, waitFor } from '../helpers/agent-run.js';
import { bridgeGateway, dockerAvailable, runCli, startCli, TEST_CA_CERT, type CliResult } from '../helpers/docker.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';
import { startSwarm, type Swarm } from '../helpers/swarm.js';
import { backendContract } from '../helpers/backend-contract.js';
import { SwarmBackend } from '../../src/backends/swarm/index.js';
import type { BatchReport } from '../../src/batch/types.js';
import type { RunReport } from '../../src/report/types.js';

const hasDocker = await dockerAvailable();
const MANAGED = 'dev.agent-worker.managed=true';

const cleanup: string[] = [];
let swarm: Swarm;
let stateDir: string;
let gateway: string;
let toolImage: string;

beforeAll(async () => {
  if (!hasDocker) return;
  stateDir = tempDir('aw-swarm-state-');
  cleanup.push(stateDir);
  gateway = await bridgeGateway();
  // The tool's image as a run builds it, copied into the manager: the product pushes it to the registry itself.
  toolImage = await ensureToolImage();
  swarm = await startSwarm({ loadImages: [toolImage] });
}, 1_200_000);

afterAll(async () => {
  await swarm?.stop();
  for (const dir of cleanup) removeDir(dir);
});

/** The CLI's environment for the manager: its TLS endpoint, the key, a state folder of the suite. */
function swarmEnv(): Record<string, string> {
  return {
    XDG_STATE_HOME: stateDir,
    ANTHROPIC_API_KEY: TEST_API_KEY,
    DOCKER_HOST: swarm.managerTls.host,
    DOCKER_TLS_VERIFY: '1',
    DOCKER_CERT_PATH: swarm.managerTls.certDir,
    // The CLI's own debug output, when asked for (AW_E2E_DEBUG=agent-worker:*).
    ...(process.env.AW_E2E_DEBUG ? { DEBUG: process.env.AW_E2E_DEBUG } : {}),
  };
}

/** A scripted API on the outer bridge gateway (the nodes' tasks reach it through their NAT). */
function api(script: ScriptedTurn[]): Promise<FakeAnthropic> {
  return startFakeAnthropic({ host: gateway, script, expectedKey: TEST_API_KEY });
}

/** One Write of `file` with `content`, then "Done.". */
function writeScript(file: string, content: string): ScriptedTurn[] {
  return [
    { content: [{ type: 'tool_use', name: 'Write', input: { file_path: `/workspace/${file}`, content } }], usage: { input: 300, output: 40 } },
    { content: [{ type: 'text', text: 'Done.' }], usage: { input: 350, output: 5 } },
  ];
}

/** A `sleep SECONDS` Bash turn (so the agent is still running when the test acts), then {@link writeScript}. */
function sleepThenWrite(seconds: number, file: string, content: string): ScriptedTurn[] {
  return [{ content: [{ type: 'tool_use', name: 'Bash', input: { command: `sleep ${seconds}`, description: 'wait' } }], usage: { input: 100, output: 10 } }, ...writeScript(file, content)];
}

function repo(files: Record<string, string> = { 'README.md': '# demo\n' }): string {
  const dir = makeRepo(files);
  cleanup.push(dir);
  return dir;
}

/** Every service, secret, config and network agent-worker made on the manager, and its containers on each worker. */
async function leftovers(): Promise<string[]> {
  const found: string[] = [];
  const manager = swarm.managerDocker;
  const filters = { label: [MANAGED] };
  for (const service of await manager.listServices({ filters })) found.push(`service ${service.Spec?.Name}`);
  for (const secret of (await manager.listSecrets({ filters })) as Array<{ Spec?: { Name?: string } }>) found.push(`secret ${secret.Spec?.Name}`);
  for (const config of (await manager.listConfigs({ filters })) as Array<{ Spec?: { Name?: string } }>) found.push(`config ${config.Spec?.Name}`);
  for (const network of await manager.listNetworks({ filters })) found.push(`network ${network.Name}`);
  for (const [index, worker] of swarm.workers.entries()) {
    const alive = await worker.container.inspect().then((info) => info.State.Running, () => false);
    if (!alive) continue;
    for (const container of await worker.inner.listContainers({ all: true, filters })) found.push(`worker ${index + 1}: container ${container.Names.join(',')} ${container.State}`);
  }
  return found;
}

/**
 * Nothing of agent-worker's is left on the manager or any worker. A node removes a removed service's task containers
 * by itself, a moment later: waited for, up to 60 s.
 */
async function expectNothingLeft(filter: (what: string) => boolean = () => true): Promise<void> {
  let left: string[] = [];
  const deadline = Date.now() + 60_000;
  do {
    left = (await leftovers()).filter(filter);
    if (left.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  } while (Date.now() < deadline);
  expect(left).toEqual([]);
}

/** Records, every 500 ms, which node each of agent-worker's agent services ran its task on (the manager's task list). */
function watchPlacement(manager: Docker): { stop: () => Promise<Map<string, string>> } {
  const placed = new Map<string, string>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const services = await manager.listServices({ filters: { label: [MANAGED] } }).catch(() => []);
      for (const service of services) {
        if (service.Spec?.Labels?.['dev.agent-worker.role']) continue;
        const tasks = (await manager.listTasks({ filters: { service: [service.ID!] } }).catch(() => [])) as Array<{ NodeID?: string }>;
        const node = tasks.find((task) => task.NodeID)?.NodeID;
        if (node) placed.set(service.Spec!.Name!, node);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return placed;
    },
  };
}

/** A batch task file (YAML) in a new folder: `defaults` lines, then one flow mapping per task. Returns its folder and path. */
function taskFile(name: string, defaults: string[], tasks: Array<{ project: string; branch: string; task: string; port: number }>): { dir: string; file: string } {
  const dir = tempDir(`aw-swarm-${name}-`);
  cleanup.push(dir);
  const file = path.join(dir, 'tasks.yaml');
  const lines = tasks.map((task) => `  - { project: ${task.project}, branch: ${task.branch}, task: "${task.task}", baseUrl: "http://${gateway}:${task.port}" }`);
  writeFileSync(file, ['defaults:', ...defaults.map((line) => `  ${line}`), 'tasks:', ...lines].join('\n'));
  return { dir, file };
}

/** True when `git rev-parse --verify` finds `rev` in `dir`. */
function gitOk(dir: string, rev: string): boolean {
  try {
    git(dir, 'rev-parse', '--verify', '--quiet', rev);
    return true;
  } catch {
    return false;
  }
}

function parse<T>(result: CliResult): T {
  expect(result.stdout.trim().startsWith('{'), `stdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(true);
  return JSON.parse(result.stdout) as T;
}

describe.runIf(hasDocker)('--backend swarm', { timeout: 1_200_000 }, () => {
  it('a single run: the branch, the report and the numstat as a local copy-mode run gives them; the credential never in the job; nothing left', async () => {
    const dir = repo({ 'README.md': '# one\n', 'src/a.txt': 'a\n' });
    const base = git(dir, 'rev-parse', 'HEAD').trim();
    const dump = 'mkdir -p leak && env > leak/env.txt && for p in /proc/[0-9]*; do tr "\\0" "\\n" < "$p/environ" 2>/dev/null; done > leak/proc.txt; ls -la /run/secrets > leak/secrets.txt 2>&1; cat /run/secrets/* > leak/secret-read.txt 2>&1; true';
    const fixture = await api([
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: dump, description: 'Dump' } }], usage: { input: 400, output: 50 } },
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/src/b.txt', content: 'b\nb\n' } }], usage: { input: 450, output: 30 } },
      { content: [{ type: 'text', text: 'Done.' }], usage: { input: 500, output: 5 } },
    ]);
    try {
      const result = await runCli(
        ['--project', dir, '--backend', 'swarm', '--registry', swarm.registry.address, '--base-url', `http://${gateway}:${fixture.port}`, '--ca-cert', TEST_CA_CERT, '--json', '--task', 'Add b', '--branch', 'swarm-one', '--memory', '1g'],
        { cwd: dir, env: swarmEnv() },
      );
      expect(result.code, result.stderr).toBe(0);
      const report = parse<RunReport>(result);
      expect(report.status).toBe('success');
      expect(report.baseCommit).toBe(base);
      expect(report.tokens).toEqual(servedTokens(fixture));
      expect(git(dir, 'show', 'swarm-one:src/b.txt')).toBe('b\nb\n');
      const changes = numstat(dir, base, 'swarm-one');
      expect(changes['src/b.txt']).toEqual([2, 0]);
      expect(report.changes.filesChanged).toBe(Object.keys(changes).length);
      // The agent saw the placeholder and the proxy, never the key; the hand-off secret is root's.
      expect(git(dir, 'show', 'swarm-one:leak/env.txt')).toContain('ANTHROPIC_API_KEY=agent-worker-placeholder-api-key');
      for (const file of ['env.txt', 'proc.txt', 'secrets.txt', 'secret-read.txt']) expect(git(dir, 'show', `swarm-one:leak/${file}`)).not.toContain(TEST_API_KEY);
      expect(git(dir, 'show', 'swarm-one:leak/secret-read.txt')).toMatch(/Permission denied/);
      expect(new Set(fixture.requests.map((request) => request.credential))).toEqual(new Set(['expected']));
      expect(git(dir, 'status', '--porcelain')).toBe('');
      // As after a copy-mode run: the branch is checked out.
      expect(git(dir, 'rev-parse', '--abbrev-ref', 'HEAD').trim()).toBe('swarm-one');
      await expectNothingLeft();
    } finally {
      await fixture.close();
    }
  });

  it('a placement no node satisfies is a clear error before anything is created (exit 2), not a hang', async () => {
    const dir = repo();
    const started = Date.now();
    const result = await runCli(
      ['--project', dir, '--backend', 'swarm', '--registry', swarm.registry.address, '--placement', 'node.labels.size==huge', '--base-url', `http://${gateway}:9`, '--json', '--task', 'x', '--branch', 'never'],
      { cwd: dir, env: swarmEnv() },
    );
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain('no ready, active node satisfies the placement "node.labels.size==huge"');
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(git(dir, 'branch', '--list', 'never').trim()).toBe('');
    await expectNothingLeft();
  });

  it('a batch of six tasks over three repositories spreads over both workers; every branch and report right; nothing left', async () => {
    const repos = [repo({ 'README.md': '# r1\n' }), repo({ 'README.md': '# r2\n' }), repo({ 'README.md': '# r3\n' })];
    const fixtures = await Promise.all([0, 1, 2, 3, 4, 5].map((index) => api(writeScript(`task-${index}.txt`, `${'line\n'.repeat(index + 1)}`))));
    const { dir, file } = taskFile('batch', ['memory: 512m', 'cpus: 0.5'], fixtures.map((fixture, index) => ({ project: repos[index % 3]!, branch: `six-${index}`, task: `Write task ${index}`, port: fixture.port })));
    const watch = watchPlacement(swarm.managerDocker);
    try {
      const result = await runCli(['batch', file, '--backend', 'swarm', '--registry', swarm.registry.address, '--ca-cert', TEST_CA_CERT, '--json', '--parallel', '4'], { cwd: dir, env: swarmEnv() });
      const placed = await watch.stop();
      expect(result.code, result.stderr).toBe(0);
      const report = parse<BatchReport>(result);
      expect(report.tasks.map((task) => task.status)).toEqual(Array(6).fill('success'));
      for (const [index, fixture] of fixtures.entries()) {
        const project = repos[index % 3]!;
        expect(git(project, 'show', `six-${index}:task-${index}.txt`)).toBe('line\n'.repeat(index + 1));
        const run = report.runs.find((r) => r.branch === `six-${index}`)!;
        expect(run.tokens).toEqual(servedTokens(fixture));
        expect(run.changes.filesChanged).toBe(1);
      }
      // Spread: the manager's task list put the six agents' tasks on both workers (and never on the drained manager).
      const workerIds = swarm.nodes.filter((node) => node.role === 'worker').map((node) => node.id);
      expect(placed.size).toBe(6);
      expect(new Set(placed.values())).toEqual(new Set(workerIds));
      for (const project of repos) expect(git(project, 'status', '--porcelain')).toBe('');
      await expectNothingLeft();
    } finally {
      await watch.stop();
      await Promise.all(fixtures.map((fixture) => fixture.close()));
    }
  });

  it('a worker killed mid-batch fails only its runs, as infrastructure failures; --retries runs them on the other worker and they succeed', async () => {
    const project = repo({ 'README.md': '# kill\n' });
    // Each task's agent first runs `sleep 30`, so both are running when a worker is killed.
    const fixtures = await Promise.all([0, 1].map((index) => api(sleepThenWrite(30, `k-${index}.txt`, `k${index}\n`))));
    const { dir, file } = taskFile('kill', ['memory: 512m'], fixtures.map((fixture, index) => ({ project, branch: `kill-${index}`, task: `Write k${index}`, port: fixture.port })));
    const watch = watchPlacement(swarm.managerDocker);
    const live = startCli(['batch', file, '--backend', 'swarm', '--registry', swarm.registry.address, '--ca-cert', TEST_CA_CERT, '--json', '--parallel', '2', '--retries', '2'], { cwd: dir, env: swarmEnv() });
    try {
      // Once the first agent has asked its API (it runs), the worker running it is killed.
      await waitFor(() => fixtures[0]!.requests.some((request) => request.kind === 'turn'), 'the first task\'s agent to run', 600_000);
      const services = await swarm.managerDocker.listServices({ filters: { label: [MANAGED] } });
      const first = services.find((service) => !service.Spec?.Labels?.['dev.agent-worker.role'] && service.Spec?.Labels?.['dev.agent-worker.project'] === project && service.Spec?.TaskTemplate && JSON.stringify(service.Spec).includes('kill-0'));
      expect(first, 'the first task\'s agent service').toBeDefined();
      const tasks = (await swarm.managerDocker.listTasks({ filters: { service: [first!.ID!] } })) as Array<{ NodeID?: string }>;
      const victim = swarm.nodes.find((node) => node.id === tasks[0]?.NodeID);
      expect(victim?.role).toBe('worker');
      await swarm.killWorker(victim!.workerIndex!);
      const result = await live.done;
      await watch.stop();
      expect(result.code, result.stderr).toBe(0);
      const report = parse<BatchReport>(result);
      expect(report.tasks.map((task) => task.status)).toEqual(['success', 'success']);
      // The killed one took a second attempt; the other one was not disturbed.
      expect(report.tasks[0]!.attempts).toBe(2);
      expect(report.tasks[1]!.attempts).toBe(1);
      expect(result.stderr).toMatch(/swarm node \S+ running the agent was lost/);
      for (const index of [0, 1]) {
        const run = report.runs.find((r) => r.runId === report.tasks[index]!.runId)!;
        expect(git(project, 'show', `${run.branch}:k-${index}.txt`)).toBe(`k${index}\n`);
      }
      await expectNothingLeft();
    } finally {
      await watch.stop();
      await live.done.catch(() => undefined);
      await Promise.all(fixtures.map((fixture) => fixture.close()));
    }
  });

  it('kill -9 of the tool mid-run leaves its services, secrets, configs and networks; `agent-worker gc` on the manager removes them all', async () => {
    const project = repo({ 'README.md': '# gc\n' });
    const fixture = await api(sleepThenWrite(120, 'never.txt', 'x\n'));
    const live = startCli(['--project', project, '--backend', 'swarm', '--registry', swarm.registry.address, '--ca-cert', TEST_CA_CERT, '--json', '--base-url', `http://${gateway}:${fixture.port}`, '--branch', 'gc-run', '--task', 'sleep'], { cwd: project, env: swarmEnv() });
    try {
      await waitFor(() => fixture.requests.some((request) => request.kind === 'turn'), 'the agent to run', 480_000);
      process.kill(live.pid, 'SIGKILL');
      await live.done;
      const left = await leftovers();
      for (const kind of ['service', 'secret', 'config', 'network']) expect(left.some((what) => what.startsWith(`${kind} agent-worker-`)), `${kind} in ${left.join('\n')}`).toBe(true);
      const gc = await runCli(['gc', '--json'], { cwd: project, env: swarmEnv() });
      expect(gc.code, gc.stderr).toBe(0);
      // The agent's service and its proxy's, reported as removed.
      expect((JSON.parse(gc.stdout) as { removed: Array<{ state: string }> }).removed.filter((item) => item.state === 'service')).toHaveLength(2);
      await expectNothingLeft();
    } finally {
      await live.done.catch(() => undefined);
      await fixture.close();
    }
  });
});

// The backend contract, on the same swarm.
backendContract('swarm', hasDocker, async () => ({
  backend: await SwarmBackend.open(swarm.managerDocker, { registry: swarm.registry.address, placement: [] }, { memoryBytes: 512 * 1024 ** 2 }),
  image: toolImage,
  gateway,
  leftovers: async (runId) => {
    await expectNothingLeft((what) => what.includes(runId));
    return [];
  },
}));

// Last: it takes the swarm down. The manager lost mid-batch: a clear error, the finished run's branch and report kept.
describe.runIf(hasDocker)('--backend swarm, the manager lost', { timeout: 600_000 }, () => {
  it('a manager lost mid-batch ends the running task with a clear infrastructure error; the finished run\'s branch and report are kept', async () => {
    const project = repo({ 'README.md': '# manager\n' });
    const fast = await api(writeScript('fast.txt', 'fast\n'));
    // The slow task's agent sleeps, so it runs when the manager goes.
    const slow = await api(sleepThenWrite(120, 'slow.txt', 'slow\n'));
    const { dir, file } = taskFile('manager', ['memory: 512m'], [
      { project, branch: 'mgr-fast', task: 'Write fast', port: fast.port },
      { project, branch: 'mgr-slow', task: 'Write slow', port: slow.port },
    ]);
    const live = startCli(['batch', file, '--backend', 'swarm', '--registry', swarm.registry.address, '--ca-cert', TEST_CA_CERT, '--json', '--parallel', '2', '--retries', '1'], { cwd: dir, env: swarmEnv() });
    try {
      // The fast run's work is on its branch, and the slow agent is running: the manager goes.
      await waitFor(() => slow.requests.some((request) => request.kind === 'turn') && gitOk(project, 'mgr-fast:fast.txt'), 'the fast run to finish while the slow one runs', 480_000);
      await swarm.manager.container.kill();
      const started = Date.now();
      const result = await live.done;
      // Bounded: the manager's answers are polled, not waited on forever.
      expect(Date.now() - started).toBeLessThan(180_000);
      expect(result.code, result.stderr).toBe(16);
      const report = parse<BatchReport>(result);
      const [fastTask, slowTask] = report.tasks;
      expect(fastTask!.status).toBe('success');
      // The slow one: lost with the manager, retried (as an infrastructure failure) against a manager that is gone.
      expect(slowTask!.status, JSON.stringify(slowTask)).toBe('not_run');
      expect(slowTask!.error?.infrastructure).toBe(true);
      expect(slowTask!.error?.message).toMatch(/Docker daemon at tcp:\/\/127\.0\.0\.1:\d+ .* did not answer/);
      expect(result.stderr).toMatch(/mgr-slow claude attempt 1 failed: Lost the swarm manager while the agent ran in service agent-worker-\S+: connect ECONNREFUSED/);
      // What it could not remove is named, for `agent-worker gc`.
      expect(result.stderr).toMatch(/could not be removed \(connect ECONNREFUSED [^)]*\); it is labelled dev\.agent-worker\.managed and `agent-worker gc` removes it/);
      // The finished run: its branch and its report, in the batch's folder too.
      expect(git(project, 'show', 'mgr-fast:fast.txt')).toBe('fast\n');
      const fastRun = report.runs.find((run) => run.branch === 'mgr-fast')!;
      expect(fastRun.status).toBe('success');
      expect(fastRun.tokens).toEqual(servedTokens(fast));
      const saved = JSON.parse(readFileSync(path.join(report.logDir, 'report.json'), 'utf8')) as BatchReport;
      expect(saved.runs.map((run) => run.branch)).toContain('mgr-fast');
      expect(git(project, 'status', '--porcelain')).toBe('');
    } finally {
      await live.done.catch(() => undefined);
      await Promise.all([fast.close(), slow.close()]);
    }
  });
});

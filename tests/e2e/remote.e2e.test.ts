/**
 * Remote daemons, for real: a second Docker daemon with its own filesystem (docker-in-docker on the
 * local engine) stands in for a build server. The core scenario runs through it over TLS and over
 * ssh (the image is built there, the workspace copied in, the commits bundled back); plain tcp, a
 * wrong TLS certificate and unknown or changed ssh host keys are refused; losing the daemon mid-run
 * is a clear error that leaves the local repository as it was, except for the branch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import { startFakeAnthropic, type FakeAnthropic, type ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { bridgeGateway, docker, dockerAvailable, managedContainers, runCli, TEST_CA_CERT, type CliResult } from '../helpers/docker.js';
import { startDind, type Dind } from '../helpers/dind.js';
import { servedTokens } from '../helpers/agent-run.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';
import type { RunReport } from '../../src/report/types.js';

const hasDocker = await dockerAvailable();
const API_KEY = 'sk-ant-remote-secret-abcdef0123456789';
const cleanup: string[] = [];
let dind: Dind;
let gateway: string;
let stateDir: string;

beforeAll(async () => {
  if (!hasDocker) return;
  gateway = await bridgeGateway();
  stateDir = tempDir('aw-state-');
  cleanup.push(stateDir);
  dind = await startDind();
}, 600_000);

afterAll(async () => {
  await dind?.stop();
  for (const dir of cleanup) removeDir(dir);
});

function tlsArgs(certDir: string): string[] {
  return ['--remote-docker', dind.tls.host, '--tls-ca', path.join(certDir, 'ca.pem'), '--tls-cert', path.join(certDir, 'cert.pem'), '--tls-key', path.join(certDir, 'key.pem')];
}

/** Runs the CLI against `repo`; the model API fixture is reached at the outer bridge gateway's IP (host.docker.internal there is the remote host). */
function run(repo: string, fixture: FakeAnthropic | undefined, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const base = fixture ? ['--base-url', `http://${gateway}:${fixture.port}`] : ['--base-url', `http://${gateway}:9`];
  return runCli(['--project', repo, ...base, '--ca-cert', TEST_CA_CERT, '--json', ...args], {
    cwd: repo,
    env: { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: API_KEY, ...env },
    // The first run builds the agent image on the remote daemon (vfs storage: several minutes).
    timeoutMs: 1_500_000,
  });
}

/**
 * Watches the inner daemon's containers while `running` lasts; returns every bind mount seen, how many egress proxy
 * sidecars were seen there, and every container whose `docker inspect` held the API key.
 */
async function bindMountsDuring(inner: Docker, running: Promise<unknown>): Promise<{ seen: number; binds: string[]; proxies: number; leaks: string[] }> {
  let done = false;
  void running.then(
    () => (done = true),
    () => (done = true),
  );
  const binds: string[] = [];
  const leaks: string[] = [];
  let seen = 0;
  let proxies = 0;
  while (!done) {
    try {
      for (const info of await inner.listContainers({ all: true, filters: { label: ['dev.agent-worker.managed=true'] } })) {
        seen += 1;
        if (info.Labels['dev.agent-worker.role'] === 'egress-proxy') proxies += 1;
        binds.push(...info.Mounts.filter((mount) => mount.Type === 'bind').map((mount) => mount.Source));
        const details = await inner.getContainer(info.Id).inspect().catch(() => undefined);
        if (details && JSON.stringify(details).includes(API_KEY)) leaks.push(info.Names.join(','));
      }
    } catch {
      // the daemon may be going away in the last test
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  return { seen, binds, proxies, leaks };
}

const coreScript = (): ScriptedTurn[] => [
  {
    content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/src/remote.ts', content: 'export const where = "remote";\n' } }],
    usage: { input: 900, output: 40, cacheRead: 120, cacheWrite: 60 },
  },
  {
    content: [{ type: 'tool_use', name: 'Bash', input: { command: 'sed -i s/beta/BETA/ notes.txt && git rm -q old.txt && git commit -qm "agent: drop old.txt" && echo committed' } }],
    usage: { input: 1000, output: 30 },
  },
];

/** The core scenario's assertions, shared by TLS and ssh. */
async function assertCoreRun(repo: string, base: string, branch: string, result: CliResult, fixture: FakeAnthropic, watched: { seen: number; binds: string[]; proxies: number; leaks: string[] }): Promise<void> {
  expect(result.code, result.stderr).toBe(0);
  expect(result.stderr).toMatch(/Docker daemon: .* engine /);
  const report = JSON.parse(result.stdout) as RunReport;
  expect(report.status).toBe('success');
  expect(report.baseCommit).toBe(base);
  expect(report.tokens).toEqual(servedTokens(fixture));
  // The branch holds exactly the agent's work: its own commit plus agent-worker's commit of the rest.
  expect(git(repo, 'log', '--format=%s', `${base}..${branch}`).trim().split('\n')).toEqual(['Remote task', 'agent: drop old.txt']);
  expect(git(repo, 'diff', '--numstat', base, branch).trim().split('\n').sort()).toEqual(['0\t1\told.txt', '1\t0\tsrc/remote.ts', '1\t1\tnotes.txt']);
  expect(report.changes).toMatchObject({ filesChanged: 3, linesAdded: 2, linesRemoved: 2 });
  expect(report.headCommit).toBe(git(repo, 'rev-parse', branch).trim());
  expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe(branch);
  expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
  // The container ran on the remote daemon, without any bind mount, and is gone from both daemons.
  expect(watched.seen).toBeGreaterThan(0);
  expect(watched.binds).toEqual([]);
  // The egress proxy ran next to the agent on the remote daemon (nothing listens on this machine for the agent),
  // the API got the real key on every request from it, and no container there ever showed the key.
  expect(watched.proxies).toBeGreaterThan(0);
  expect(watched.leaks).toEqual([]);
  expect(new Set(fixture.requests.map((request) => request.credential))).toEqual(new Set(['expected']));
  expect(await dind.inner.listNetworks({ filters: { label: [`dev.agent-worker.run-id=${report.runId}`] } })).toEqual([]);
  expect(await docker.listNetworks({ filters: { label: [`dev.agent-worker.run-id=${report.runId}`] } })).toEqual([]);
  expect(await dind.inner.listContainers({ all: true, filters: { label: [`dev.agent-worker.run-id=${report.runId}`] } })).toEqual([]);
  expect(await managedContainers(report.runId)).toEqual([]);
}

function coreRepo(): { repo: string; base: string } {
  const repo = makeRepo({ 'README.md': '# remote\n', 'notes.txt': 'alpha\nbeta\n', 'old.txt': 'old\n' });
  cleanup.push(repo);
  return { repo, base: git(repo, 'rev-parse', 'HEAD').trim() };
}

describe.runIf(hasDocker)('remote Docker daemon (docker-in-docker)', { timeout: 1_800_000 }, () => {
  it('over TLS: builds the image there, copies the workspace in, brings the commits back', async () => {
    const { repo, base } = coreRepo();
    const fixture = await startFakeAnthropic({ host: gateway, script: coreScript(), expectedKey: API_KEY });
    try {
      const running = run(repo, fixture, [...tlsArgs(dind.tls.certDir), '--branch', 'remote-tls', '--task', 'Remote task']);
      const watched = await bindMountsDuring(dind.inner, running);
      const result = await running;
      await assertCoreRun(repo, base, 'remote-tls', result, fixture, watched);
      const report = JSON.parse(result.stdout) as RunReport;
      // The image lives on the remote daemon now.
      expect((await dind.inner.getImage(report.image.tag).inspect()).Id).toMatch(/^sha256:/);
    } finally {
      await fixture.close();
    }
  });

  it('over ssh (key file, known_hosts checked): the same scenario passes', async () => {
    const { repo, base } = coreRepo();
    const fixture = await startFakeAnthropic({ host: gateway, script: coreScript(), expectedKey: API_KEY });
    try {
      const running = run(repo, fixture, ['--remote-docker', dind.ssh.url, '--branch', 'remote-ssh', '--task', 'Remote task'], { HOME: dind.ssh.home });
      const watched = await bindMountsDuring(dind.inner, running);
      const result = await running;
      await assertCoreRun(repo, base, 'remote-ssh', result, fixture, watched);
      expect((JSON.parse(result.stdout) as RunReport).image.built).toBe(false);
    } finally {
      await fixture.close();
    }
  });

  it('refuses plain tcp to a non-loopback daemon without --insecure-docker, and connects with it', async () => {
    const { repo } = coreRepo();
    const refused = await run(repo, undefined, ['--remote-docker', dind.plainHost, '--branch', 'plain', '--task', 'x']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/root on that host for anyone who can reach it/);
    expect(refused.stderr).toMatch(/--insecure-docker/);
    // With the flag it connects (the daemon banner), then fails on purpose at the image build (base image missing there).
    const allowed = await run(repo, undefined, ['--remote-docker', dind.plainHost, '--insecure-docker', '--branch', 'plain', '--task', 'x'], {
      AGENT_WORKER_BASE_IMAGE: 'agent-worker-test/no-such-base:1',
    });
    expect(allowed.stderr).toContain(`Docker daemon: ${dind.plainHost}`);
    expect(allowed.code).toBe(8);
    expect(git(repo, 'branch', '--list', 'plain')).toBe('');
  });

  it('refuses a daemon whose TLS certificate does not verify, and a client certificate it does not accept', async () => {
    const { repo } = coreRepo();
    const wrong = await run(repo, undefined, [...tlsArgs(dind.wrongCertDir), '--branch', 'tls-wrong', '--task', 'x']);
    expect(wrong.code).toBe(6);
    expect(wrong.stderr).toMatch(/TLS with the Docker daemon at tcp:\/\/127\.0\.0\.1:\d+ failed/);
    expect(wrong.stderr).toMatch(/--tls-ca/);
    // Right CA, wrong client certificate: the server refuses us.
    const clientOnly = tempDir('aw-tls-');
    cleanup.push(clientOnly);
    copyFileSync(path.join(dind.tls.certDir, 'ca.pem'), path.join(clientOnly, 'ca.pem'));
    copyFileSync(path.join(dind.wrongCertDir, 'cert.pem'), path.join(clientOnly, 'cert.pem'));
    copyFileSync(path.join(dind.wrongCertDir, 'key.pem'), path.join(clientOnly, 'key.pem'));
    const rejected = await run(repo, undefined, [...tlsArgs(clientOnly), '--branch', 'tls-client', '--task', 'x']);
    expect(rejected.code).toBe(6);
    expect(rejected.stderr).toMatch(/Docker daemon at tcp:\/\/127\.0\.0\.1:\d+/);
  });

  it('refuses an unknown and a changed ssh host key, showing the fingerprint', async () => {
    const { repo } = coreRepo();
    const home = tempDir('aw-home-');
    cleanup.push(home);
    mkdirSync(path.join(home, '.ssh'), { mode: 0o700 });
    copyFileSync(path.join(dind.ssh.home, '.ssh', 'id_ed25519'), path.join(home, '.ssh', 'id_ed25519'));
    const unknown = await run(repo, undefined, ['--remote-docker', dind.ssh.url, '--branch', 'ssh-unknown', '--task', 'x'], { HOME: home });
    expect(unknown.code).toBe(6);
    expect(unknown.stderr).toMatch(new RegExp(`ssh host key of \\[127\\.0\\.0\\.1\\]:${dind.ssh.port} \\(SHA256:[A-Za-z0-9+/]{43}\\) is not in ~/.ssh/known_hosts`));
    expect(unknown.stderr).toMatch(/ssh-keyscan -p/);
    writeFileSync(path.join(home, '.ssh', 'known_hosts'), `[127.0.0.1]:${dind.ssh.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n`);
    const changed = await run(repo, undefined, ['--remote-docker', dind.ssh.url, '--branch', 'ssh-changed', '--task', 'x'], { HOME: home });
    expect(changed.code).toBe(6);
    expect(changed.stderr).toMatch(/CHANGED/);
    expect(git(repo, 'branch', '--list', 'ssh-*')).toBe('');
  });

  it('daemon killed mid-run: clear error, local repository unchanged except the branch', async () => {
    const { repo, base } = coreRepo();
    const fixture = await startFakeAnthropic({
      host: gateway,
      script: [
        { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/wip.txt', content: 'wip\n' } }], usage: { input: 10, output: 1 } },
        { content: [{ type: 'text', text: 'stuck' }], usage: { input: 1, output: 1 }, stall: true },
      ],
    });
    try {
      const refsBefore = git(repo, 'for-each-ref', '--format=%(refname) %(objectname)');
      const running = run(repo, fixture, [...tlsArgs(dind.tls.certDir), '--branch', 'remote-killed', '--task', 'Doomed task', '--timeout', '600']);
      const deadline = Date.now() + 300_000;
      while (!fixture.requests.some((request) => request.turn === 1) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250));
      expect(fixture.requests.some((request) => request.turn === 1)).toBe(true);
      await dind.container.kill();
      const result = await running;
      expect(result.code, result.stderr).toBe(6);
      expect(result.stderr).toMatch(/Lost the agent's container|did not answer|Docker daemon/);
      expect(result.stdout).toBe('');
      // Only the branch is new (nothing could be recovered from a dead daemon: it is at the base commit).
      const refsAfter = git(repo, 'for-each-ref', '--format=%(refname) %(objectname)');
      expect(refsAfter.split('\n').filter((line) => !refsBefore.includes(line)).filter(Boolean)).toEqual([`refs/heads/remote-killed ${base}`]);
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await docker.listContainers({ all: true, filters: { label: [`dev.agent-worker.project=${repo}`] } })).toEqual([]);
    } finally {
      await fixture.close();
    }
  });
});

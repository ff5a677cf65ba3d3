/**
 * End to end, the agent never holds a credential: the real Claude Code in the project's image, the scripted Messages
 * API, a real dockerd. The agent gets a placeholder and the egress proxy as its API; the proxy, in a sidecar on the
 * run's internal network, adds the real key. Covers the leak scenario (the agent dumps its environment, every
 * process's environment and command line, and greps readable files), the allowlist by host name and wildcard
 * through the proxy, refused hosts and direct connections, the audit, and the proxy dying mid-run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import path from 'node:path';
import type { ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { startFakeAnthropic, type FakeAnthropic } from '../fixtures/fake-anthropic.js';
import { parseReport, runAgentWorker, TEST_API_KEY, waitFor } from '../helpers/agent-run.js';
import { bridgeGateway, docker, dockerAvailable, projectContainers } from '../helpers/docker.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';
import { makeTestCa, type TestCa } from '../helpers/test-ca.js';
import type { RunReport } from '../../src/report/types.js';

const hasDocker = await dockerAvailable();

const cleanup: string[] = [];
let stateDir: string;
let gateway: string;

beforeAll(async () => {
  if (!hasDocker) return;
  stateDir = tempDir('aw-state-');
  cleanup.push(stateDir);
  gateway = await bridgeGateway();
});

afterAll(() => {
  for (const dir of cleanup) removeDir(dir);
});

/** A regular expression that matches the test key without containing it (so a grep's own command line cannot match). */
const KEY_PATTERN = `${TEST_API_KEY.slice(0, -3)}[${TEST_API_KEY.slice(-3, -2)}]${TEST_API_KEY.slice(-2)}`;

/** Starts the scripted API on the bridge gateway, expecting the test key on every request. */
async function withApi<T>(script: ScriptedTurn[], body: (fixture: FakeAnthropic) => Promise<T>): Promise<T> {
  const fixture = await startFakeAnthropic({ host: gateway, script, expectedKey: TEST_API_KEY });
  try {
    return await body(fixture);
  } finally {
    await fixture.close();
  }
}

/**
 * Inspects every container and network of `repo`'s runs every 250 ms until stopped, and records each inspection
 * that holds the key (environment, labels, command, anything `docker inspect` shows).
 */
function watchInspect(repo: string): { stop: () => Promise<{ inspected: number; leaks: string[] }> } {
  let stopped = false;
  let inspected = 0;
  const leaks: string[] = [];
  const loop = (async () => {
    while (!stopped) {
      const containers = await docker.listContainers({ all: true, filters: { label: [`dev.agent-worker.project=${repo}`] } }).catch(() => []);
      for (const info of containers) {
        const details = await docker.getContainer(info.Id).inspect().catch(() => undefined);
        if (!details) continue;
        inspected += 1;
        if (JSON.stringify(details).includes(TEST_API_KEY)) leaks.push(`container ${info.Names.join(',')}`);
        for (const name of Object.keys(details.NetworkSettings?.Networks ?? {})) {
          const network = await docker.getNetwork(name).inspect().catch(() => undefined);
          if (network && JSON.stringify(network).includes(TEST_API_KEY)) leaks.push(`network ${name}`);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return { inspected, leaks };
    },
  };
}

/** Nothing of the run is left on the daemon: no container of the project, no network of the run. */
async function expectNothingLeft(repo: string, runId: string): Promise<void> {
  expect(await projectContainers(repo)).toEqual([]);
  expect(await docker.listNetworks({ filters: { label: [`dev.agent-worker.run-id=${runId}`] } })).toEqual([]);
}

/** The run's egress audit (`egress.jsonl`), one record a line. */
function auditOf(report: RunReport): Array<{ kind: string; host: string; port: number; allowed: boolean; bytesUp: number; bytesDown: number }> {
  const file = path.join(report.logDir, 'egress.jsonl');
  expect(existsSync(file)).toBe(true);
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { kind: string; host: string; port: number; allowed: boolean; bytesUp: number; bytesDown: number });
}

describe.runIf(hasDocker)('credentials never reach the agent (real Claude Code, egress proxy)', { timeout: 900_000 }, () => {
  it('the leak scenario: env, every /proc/*/environ and cmdline, and a grep of readable files hold no key; docker inspect never shows it; the API got the real key on every request', async () => {
    const repo = makeRepo({ 'README.md': '# leak\n' });
    cleanup.push(repo);
    const dump = [
      'mkdir -p leak',
      'env > leak/env.txt',
      'for p in /proc/[0-9]*; do { tr "\\0" "\\n" < "$p/environ"; tr "\\0" " " < "$p/cmdline"; echo; } 2>/dev/null; done > leak/proc.txt',
      `grep -rsl -e '${KEY_PATTERN}' /etc /home /run /tmp /root /workspace > leak/grep.txt; true`,
    ].join(' && ');
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: dump, description: 'Dump everything' } }], usage: { input: 400, output: 50 } },
      { content: [{ type: 'text', text: 'Dumped.' }], usage: { input: 500, output: 5 } },
    ];
    const watch = watchInspect(repo);
    const { result, fixture } = await withApi(script, async (fixture) => ({ result: await runAgentWorker(repo, fixture, ['--task', 'Dump the environment', '--branch', 'leak'], { stateDir }), fixture }));
    const watched = await watch.stop();
    expect(result.code, result.stderr).toBe(0);
    const report = parseReport(result);
    expect(report.status).toBe('success');
    // The dump happened, in the agent's real environment: the placeholder and the proxy are there.
    const env = git(repo, 'show', 'leak:leak/env.txt');
    expect(env).toContain('ANTHROPIC_API_KEY=agent-worker-placeholder-api-key');
    expect(env).toContain('HTTPS_PROXY=http://agent-worker-proxy:8080');
    expect(git(repo, 'show', 'leak:leak/proc.txt')).toMatch(/claude/);
    for (const file of ['env.txt', 'proc.txt', 'grep.txt']) expect(git(repo, 'show', `leak:leak/${file}`)).not.toContain(TEST_API_KEY);
    expect(git(repo, 'show', 'leak:leak/grep.txt').trim()).toBe('');
    expect(git(repo, 'log', '--format=%B', 'leak', '--')).not.toContain(TEST_API_KEY);
    // docker inspect of the run's containers (the agent's and the proxy's) and its network never showed the key.
    expect(watched.inspected).toBeGreaterThan(1);
    expect(watched.leaks).toEqual([]);
    // The model API got the real key on every request: the proxy swapped the placeholder.
    const turns = fixture.requests.filter((request) => request.kind === 'turn');
    expect(turns.length).toBeGreaterThanOrEqual(2);
    expect(new Set(fixture.requests.map((request) => request.credential))).toEqual(new Set(['expected']));
    // The audit has the API requests, with bytes both ways; nothing was refused.
    const audit = auditOf(report);
    expect(audit.filter((record) => record.kind === 'api' && record.allowed).length).toBeGreaterThanOrEqual(turns.length);
    expect(audit.every((record) => record.bytesDown > 0)).toBe(true);
    expect(report.egress).toEqual({ allowed: audit.length, refused: 0, refusedHosts: [] });
    expect(readFileSync(path.join(report.logDir, 'egress.jsonl'), 'utf8')).not.toContain(TEST_API_KEY);
    await expectNothingLeft(repo, report.runId);
  });

  it.each([
    ['mount', []],
    ['copy', ['--workspace', 'copy']],
  ])('%s workspace: a file the agent writes with the key in it (plain, base64 in a config) is not on the branch; quarantined, warned about, status credential_leak (exit 15)', async (mode, flags) => {
    const repo = makeRepo({ 'README.md': '# planted\n', 'config.yml': 'name: demo\n' });
    cleanup.push(repo);
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    const encoded = Buffer.from(`user:${TEST_API_KEY}`).toString('base64');
    // As if the agent had the key: a new file with it, a tracked file given it base64-encoded, and an honest change.
    const script: ScriptedTurn[] = [
      {
        content: [
          { type: 'tool_use', name: 'Write', input: { file_path: '/workspace/notes/key.txt', content: `token=${TEST_API_KEY}\n` } },
          { type: 'tool_use', name: 'Write', input: { file_path: '/workspace/config.yml', content: `name: demo\nauth: ${encoded}\n` } },
          { type: 'tool_use', name: 'Write', input: { file_path: '/workspace/honest.txt', content: 'real work\n' } },
        ],
        usage: { input: 300, output: 60 },
      },
      { content: [{ type: 'text', text: 'Done.' }], usage: { input: 400, output: 5 } },
    ];
    const branch = `planted-${mode}`;
    const result = await withApi(script, (fixture) => runAgentWorker(repo, fixture, ['--task', 'Plant the key', '--branch', branch, ...flags], { stateDir }));
    expect(result.code, result.stderr).toBe(15);
    const report = parseReport(result);
    expect(report.status).toBe('credential_leak');
    // The honest change is there; the key is nowhere on the branch, in any commit; config.yml keeps its base version.
    expect(git(repo, 'show', `${branch}:honest.txt`)).toBe('real work\n');
    expect(git(repo, 'ls-tree', '-r', '--name-only', branch)).not.toContain('notes/key.txt');
    expect(git(repo, 'show', `${branch}:config.yml`)).toBe('name: demo\n');
    for (const commit of git(repo, 'rev-list', `${base}..${branch}`).trim().split('\n')) {
      const tree = git(repo, 'ls-tree', '-r', commit).trim().split('\n').map((line) => line.split(/\s+/)[2]!);
      for (const blob of tree) expect(git(repo, 'cat-file', '-p', blob)).not.toMatch(new RegExp(`${TEST_API_KEY}|${encoded.slice(8, 40)}`));
    }
    // Quarantined and warned about, never quoting the key.
    expect(readFileSync(path.join(report.logDir, 'quarantine', 'notes', 'key.txt'), 'utf8')).toContain(TEST_API_KEY);
    expect(existsSync(path.join(report.logDir, 'quarantine', 'config.yml'))).toBe(true);
    expect(report.warnings.filter((warning) => warning.includes('credential given to agent-worker'))).toHaveLength(2);
    expect(JSON.stringify(report)).not.toContain(TEST_API_KEY);
    expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
    await expectNothingLeft(repo, report.runId);
  });

  describe('the allowlist by host name, through the proxy', () => {
    let ca: TestCa;
    let server: Server;
    let port: number;

    beforeAll(async () => {
      const dir = tempDir('aw-ca-');
      cleanup.push(dir);
      ca = makeTestCa(dir, ['host.docker.internal']);
      server = createServer({ key: ca.serverKey, cert: ca.serverCert }, (_req, res) => res.end('hello through the tunnel'));
      await new Promise<void>((resolve) => server.listen(0, gateway, resolve));
      port = (server.address() as { port: number }).port;
    });

    afterAll(async () => {
      await new Promise((resolve) => server?.close(resolve));
    });

    /**
     * A probe the agent runs with node: an HTTPS GET of `host:port` through HTTPS_PROXY (CONNECT, then TLS with the
     * test CA); a CONNECT to example.com; a direct TCP connection to the gateway, and a DNS lookup. One line each in
     * probe/out.txt.
     */
    const PROBE = `
const http = require('http'), tls = require('tls'), net = require('net'), dns = require('dns'), fs = require('fs');
const [host, port, gatewayIp, ca] = process.argv.slice(2);
const proxy = new URL(process.env.HTTPS_PROXY);
const out = [];
function tunnel(target, targetPort) {
  return new Promise((resolve) => {
    const req = http.request({ host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: target + ':' + targetPort });
    req.on('connect', (res, socket, head) => {
      if (res.statusCode !== 200) {
        let body = head.toString();
        socket.on('data', (d) => (body += d)); socket.on('end', () => resolve('refused ' + res.statusCode + ' ' + body.replace(/\\s+/g, ' ')));
        socket.on('error', () => resolve('refused ' + res.statusCode + ' ' + body.replace(/\\s+/g, ' ')));
        return;
      }
      const t = tls.connect({ socket, servername: target, ca }, () => t.write('GET / HTTP/1.1\\r\\nHost: ' + target + '\\r\\nConnection: close\\r\\n\\r\\n'));
      let text = ''; t.on('data', (d) => (text += d)); t.on('end', () => resolve('ok ' + text.split('\\r\\n\\r\\n').slice(1).join('')));
      t.on('error', (e) => resolve('tls error ' + e.message));
    });
    req.on('error', (e) => resolve('error ' + e.message));
    req.end();
  });
}
(async () => {
  out.push('allowed: ' + (await tunnel(host, port)));
  out.push('refused: ' + (await tunnel('example.com', 443)));
  out.push('direct: ' + (await new Promise((resolve) => { const s = net.connect({ host: gatewayIp, port: Number(port), timeout: 5000 }, () => { s.destroy(); resolve('connected'); }); s.on('error', (e) => resolve('error ' + e.code)); s.on('timeout', () => { s.destroy(); resolve('error timeout'); }); })));
  out.push('dns: ' + (await new Promise((resolve) => dns.lookup('example.com', (e, a) => resolve(e ? 'error ' + e.code : 'resolved ' + a)))));
  fs.mkdirSync('probe', { recursive: true });
  fs.writeFileSync('probe/out.txt', out.join('\\n') + '\\n');
})();
`;

    async function probeWith(allowHost: string, branch: string): Promise<{ out: Record<string, string>; report: RunReport }> {
      const repo = makeRepo({ 'README.md': '# egress\n', 'probe.js': PROBE, 'ca.pem': ca.caCert });
      cleanup.push(repo);
      const command = `node probe.js host.docker.internal ${port} ${gateway} "$(cat ca.pem)"`;
      const script: ScriptedTurn[] = [
        { content: [{ type: 'tool_use', name: 'Bash', input: { command, description: 'Probe the network' } }], usage: { input: 300, output: 30 } },
        { content: [{ type: 'text', text: 'Probed.' }], usage: { input: 400, output: 5 } },
      ];
      const result = await withApi(script, (fixture) => runAgentWorker(repo, fixture, ['--task', 'Probe', '--branch', branch, '--allow-host', allowHost], { stateDir }));
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      const lines = git(repo, 'show', `${branch}:probe/out.txt`).trim().split('\n');
      const out = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]));
      await expectNothingLeft(repo, report.runId);
      return { out, report };
    }

    it.each([
      ['by name', 'host.docker.internal'],
      ['by wildcard', '*.docker.internal'],
    ])('an allowed host (%s) is reached; example.com gets the 403 naming the flag; direct TCP and DNS fail; the audit says so', async (_how, allowHost) => {
      const { out, report } = await probeWith(allowHost, `probe-${allowHost.startsWith('*') ? 'wildcard' : 'name'}`);
      expect(out.allowed).toBe('ok hello through the tunnel');
      expect(out.refused).toMatch(/^refused 403 .*example\.com.*--allow-host example\.com/);
      expect(out.direct).toMatch(/^error /);
      expect(out.dns).toMatch(/^error /);
      const audit = auditOf(report);
      expect(audit.some((record) => record.kind === 'connect' && record.host === 'host.docker.internal' && record.port === port && record.allowed && record.bytesDown > 0)).toBe(true);
      expect(audit.some((record) => record.host === 'example.com' && !record.allowed)).toBe(true);
      expect(report.egress).toMatchObject({ refused: 1, refusedHosts: ['example.com'] });
    });
  });

  it('the proxy dying mid-run ends the run with a clear error; the partial work is kept; nothing is left behind', async () => {
    const repo = makeRepo({ 'README.md': '# proxy dies\n' });
    cleanup.push(repo);
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/partial.txt', content: 'before the proxy died\n' } }], usage: { input: 300, output: 30 } },
      { content: [{ type: 'text', text: 'thinking…' }], usage: { input: 10, output: 1 }, stall: true },
    ];
    const result = await withApi(script, async (fixture) => {
      const running = runAgentWorker(repo, fixture, ['--task', 'Work, then lose the proxy', '--branch', 'proxy-dies', '--timeout', '300'], { stateDir });
      await waitFor(() => fixture.requests.some((request) => request.turn === 1), 'the stalled turn');
      const [proxy] = await docker.listContainers({ filters: { label: [`dev.agent-worker.project=${repo}`, 'dev.agent-worker.role=egress-proxy'] } });
      expect(proxy).toBeDefined();
      await docker.getContainer(proxy!.Id).kill();
      return running;
    });
    expect(result.code, result.stderr).toBe(9);
    expect(result.stderr).toContain('The egress proxy stopped while the agent ran');
    expect(git(repo, 'show', 'proxy-dies:partial.txt')).toBe('before the proxy died\n');
    expect(await projectContainers(repo)).toEqual([]);
    expect(await docker.listNetworks({ filters: { label: [`dev.agent-worker.project=${repo}`] } })).toEqual([]);
  });
});

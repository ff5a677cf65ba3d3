/**
 * The contract every backend (src/backends/types.ts) passes, as one suite: the tool's image, the real entrypoint and
 * egress proxy, a copy-mode workspace made from a real repository's bundle, and a shell command standing in for the
 * agent (what is checked is the box, not an agent). Run by tests/integration/backend-local.test.ts for the local
 * daemon and by tests/e2e/swarm.e2e.test.ts for a swarm.
 *
 * Each case: the egress path is created and started (`ready` with the model API's check), the agent's box runs
 * behind it, its output arrives, and everything is removed (`leftovers` is empty afterwards).
 */
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import type { AgentBox, AgentBoxSpec, Backend, EgressBox } from '../../src/backends/types.js';
import { PROXY_ALIAS, PROXY_PORT } from '../../src/docker/egress.js';
import { createBundle, openRepo } from '../../src/git/repo.js';
import type { AuditRecord } from '../../src/proxy/egress-proxy.js';
import { VERSION } from '../../src/version.js';
import { git, makeRepo, removeDir, tempDir } from './git.js';

/** What a backend's contract run needs. */
export interface ContractSetup {
  backend: Backend;
  /** The tool image's tag (on the backend's daemon). */
  image: string;
  /** The address containers of this backend reach the test's servers on (the outer bridge gateway). */
  gateway: string;
  /** What agent-worker left on the backend (containers, services, networks, secrets…), as readable strings. */
  leftovers: (runId: string) => Promise<string[]>;
}

let counter = 0;

/**
 * Registers the contract's cases for `name` (skipped unless `enabled`: Docker answers); `setup` is called once, in
 * beforeAll.
 * @param timeoutMs each case's bound.
 */
export function backendContract(name: string, enabled: boolean, setup: () => Promise<ContractSetup>, timeoutMs = 300_000): void {
  describe.runIf(enabled)(`backend contract: ${name}`, { timeout: timeoutMs }, () => {
    let ready: ContractSetup;
    let api: Server;
    let apiPort: number;
    let requests = 0;
    const dirs: string[] = [];

    beforeAll(async () => {
      ready = await setup();
      api = createServer((req, res) => {
        requests += 1;
        res.end('ok');
      });
      await new Promise<void>((resolve) => api.listen(0, ready.gateway, resolve));
      apiPort = (api.address() as { port: number }).port;
    }, 1_200_000);

    /** What the cases made, removed again after a failed case (a passing one removes its own). */
    const made: Array<{ egress: EgressBox; box: AgentBox }> = [];

    afterAll(async () => {
      for (const parts of made) {
        await parts.box.removeAfterWork(30_000);
        await parts.egress.remove(30_000);
      }
      await new Promise((resolve) => api?.close(resolve));
      dirs.forEach(removeDir);
    });

    /** Egress and box for `script` (bash, run as the agent), in a copy-mode workspace of a fresh repository. */
    async function make(script: string, extra: Partial<AgentBoxSpec> = {}): Promise<{ egress: EgressBox; box: AgentBox; runId: string; scratch: string; audit: AuditRecord[] }> {
      const runId = `contract-${Date.now()}-${(counter += 1)}`;
      const repoDir = makeRepo({ 'README.md': '# contract\n' });
      const scratch = tempDir('aw-contract-');
      dirs.push(repoDir, scratch);
      const repo = await openRepo(repoDir);
      const bundleFile = path.join(scratch, 'repo.bundle');
      const bundleRef = `refs/agent-worker/runs/${runId}`;
      const base = git(repoDir, 'rev-parse', 'HEAD').trim();
      await createBundle(repo, bundleFile, base, bundleRef);
      const audit: AuditRecord[] = [];
      const egress = await ready.backend.createEgress({
        image: ready.image,
        runId,
        toolVersion: VERSION,
        project: repoDir,
        proxy: { routes: [{ prefix: '/', upstream: `http://${ready.gateway}:${apiPort}`, credentials: [] }], allowHosts: [] },
        onAudit: (record) => audit.push(record),
      });
      const box = await ready.backend.createAgent(
        {
          image: ready.image,
          runId,
          toolVersion: VERSION,
          workspace: { mode: 'copy', bundleFile, bundleRef, baseCommit: base, branch: 'contract', commitMessage: 'contract work', gitName: 'T', gitEmail: 't@example.com' },
          project: repoDir,
          uid: 1000,
          gid: 1000,
          command: ['bash', '-c', script],
          env: { HTTP_PROXY: `http://${PROXY_ALIAS}:${PROXY_PORT}` },
          secrets: { PLACEHOLDER: 'placeholder-value' },
          task: 'the task text',
          allowHosts: [PROXY_ALIAS],
          resolveWaitSeconds: 10,
          apiCheck: { host: PROXY_ALIAS, port: PROXY_PORT },
          timezone: 'UTC',
          limits: { memoryBytes: 512 * 1024 ** 2, pidsLimit: 512 },
          ...extra,
        },
        egress,
      );
      made.push({ egress, box });
      return { egress, box, runId, scratch, audit };
    }

    /** Runs the box; collects its output as text. */
    async function run(box: AgentBox, options: { timeoutMs?: number; signal?: AbortSignal; onStdout?: (text: string) => void } = {}): Promise<{ exit: Awaited<ReturnType<AgentBox['run']>>; stdout: string; stderr: string }> {
      let stdout = '';
      let stderr = '';
      const exit = await box.run({
        timeoutMs: options.timeoutMs ?? 120_000,
        signal: options.signal,
        sinks: {
          stdout: (chunk) => {
            stdout += chunk.toString();
            options.onStdout?.(stdout);
          },
          stderr: (chunk) => (stderr += chunk.toString()),
        },
      });
      return { exit, stdout, stderr };
    }

    async function finish(parts: { egress: EgressBox; box: AgentBox; runId: string }): Promise<void> {
      expect(await parts.box.removeAfterWork(60_000)).toBeUndefined();
      expect(await parts.egress.remove(60_000)).toEqual([]);
      expect(await ready.leftovers(parts.runId)).toEqual([]);
    }

    it('runs the agent behind the proxy: its exit code, stdout and stderr, the task on stdin, the proxy reached, the work and the verify output fetched', async () => {
      const parts = await make(
        [
          'read -r task; echo "task: $task"',
          'echo "placeholder: $PLACEHOLDER"',
          'echo to-stderr >&2',
          `curl -s --noproxy '*' http://${PROXY_ALIAS}:${PROXY_PORT}/ || (exec 3<>/dev/tcp/${PROXY_ALIAS}/${PROXY_PORT} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3 | tail -1)`,
          'echo',
          'echo work > made.txt',
          'exit 3',
        ].join('\n'),
        { verify: 'echo verified; exit 0' },
      );
      // As a run does: the proxy is started, the box runs, and the proxy's readiness is read meanwhile (a backend may
      // start the proxy only once the box is placed).
      const { ready: proxyReady } = await parts.egress.start();
      const running = run(parts.box);
      const checks = await proxyReady;
      expect(checks.every((check) => check.ok)).toBe(true);
      const ran = await running;
      expect(ran.exit).toMatchObject({ exitCode: 3, reason: 'exited' });
      expect(ran.stdout).toContain('task: the task text');
      expect(ran.stdout).toContain('placeholder: placeholder-value');
      expect(ran.stdout).toMatch(/^ok$/m);
      expect(ran.stderr).toContain('to-stderr');
      expect(ran.stderr).toMatch(/agent-worker: agent process started at \d+\.\d+/);
      expect(ran.stdout).not.toContain('agent-worker-out:');
      expect(requests).toBeGreaterThan(0);
      expect(parts.audit.some((record) => record.kind === 'api' && record.allowed)).toBe(true);
      const out = path.join(parts.scratch, 'out');
      await mkdir(out);
      const files = await parts.box.fetchCopyOutput(out);
      expect(files.sort()).toEqual(['agent-worker-out/result', 'agent-worker-out/work.bundle']);
      expect(readFileSync(path.join(out, 'agent-worker-out/result'), 'utf8')).toMatch(/^agent_status=3\nhead=[0-9a-f]{40}\ncommits=1\n$/);
      const verify = await parts.box.fetchVerifyOutput(out);
      expect(verify.sort()).toEqual(['agent-worker-verify/verify.log', 'agent-worker-verify/verify.result']);
      expect(readFileSync(path.join(out, 'agent-worker-verify/verify.log'), 'utf8')).toBe('verified\n');
      await finish(parts);
    });

    it('a stop asked for while the agent runs ends it as interrupted, and its work is still collected', async () => {
      const parts = await make('echo started; echo partial > partial.txt; sleep 300');
      const { ready: proxyReady } = await parts.egress.start();
      const stopping = new AbortController();
      let started!: () => void;
      const agentStarted = new Promise<void>((resolve) => (started = resolve));
      const running = run(parts.box, { signal: stopping.signal, onStdout: (text) => text.includes('started') && started() });
      await agentStarted;
      await proxyReady;
      stopping.abort('SIGINT');
      const ran = await running;
      expect(ran.exit.reason).toBe('interrupted');
      expect(ran.exit.exitCode).toBeNull();
      const out = path.join(parts.scratch, 'out');
      await mkdir(out);
      expect((await parts.box.fetchCopyOutput(out)).sort()).toEqual(['agent-worker-out/result', 'agent-worker-out/work.bundle']);
      await finish(parts);
    });

    it('the time limit ends the agent as timed_out, and its work is still collected', async () => {
      const parts = await make('echo partial > partial.txt; sleep 300');
      const { ready: proxyReady } = await parts.egress.start();
      const running = run(parts.box, { timeoutMs: 15_000 });
      await proxyReady;
      const ran = await running;
      expect(ran.exit.reason).toBe('timed_out');
      const out = path.join(parts.scratch, 'out');
      await mkdir(out);
      expect((await parts.box.fetchCopyOutput(out)).sort()).toEqual(['agent-worker-out/result', 'agent-worker-out/work.bundle']);
      await finish(parts);
    });
  });
}

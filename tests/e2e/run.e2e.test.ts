/**
 * End to end: the built CLI, a real dockerd, the project's real image, the REAL Claude Code binary,
 * and the scripted Messages API fixture served on the Docker bridge gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import type { FakeAnthropic, ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { numstat, parseReport, runAgentWorker as runWith, servedTokens, TEST_API_KEY as API_KEY, withFixture } from '../helpers/agent-run.js';
import { docker, dockerAvailable, managedContainers, runCli, TEST_CA_CERT, type CliResult } from '../helpers/docker.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';

const hasDocker = await dockerAvailable();

const cleanup: string[] = [];
let stateDir: string;

beforeAll(() => {
  if (!hasDocker) return;
  stateDir = tempDir('aw-state-');
  cleanup.push(stateDir);
});

/** Runs the CLI against `repo` with the fixture as the model API and this suite's state folder. */
function runAgentWorker(repo: string, fixture: FakeAnthropic, extra: string[]): Promise<CliResult> {
  return runWith(repo, fixture, extra, { stateDir });
}

afterAll(() => {
  for (const dir of cleanup) removeDir(dir);
});

describe.runIf(hasDocker)('agent-worker end to end (real Claude Code, scripted API)', { timeout: 900_000 }, () => {
  it('a. multi-turn: creates, modifies and deletes files; the branch holds exactly that; the report adds up', async () => {
    const repo = makeRepo({
      'README.md': '# demo\n',
      'src/keep.txt': 'line1\nline2\nline3\n',
      'old.txt': 'to be deleted\nsecond line\n',
      '.gitignore': 'node_modules/\n',
    });
    cleanup.push(repo);
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    const script: ScriptedTurn[] = [
      {
        content: [
          { type: 'text', text: 'Creating the new module.' },
          { type: 'tool_use', name: 'Write', input: { file_path: '/workspace/src/new.ts', content: 'export const answer = 42;\nexport const question = "?";\n' } },
        ],
        usage: { input: 1200, output: 80, cacheRead: 300, cacheWrite: 150 },
      },
      {
        content: [{ type: 'tool_use', name: 'Read', input: { file_path: '/workspace/src/keep.txt' } }],
        usage: { input: 1400, output: 40, cacheRead: 500, cacheWrite: 20 },
      },
      {
        content: [{ type: 'tool_use', name: 'Edit', input: { file_path: '/workspace/src/keep.txt', old_string: 'line2\n', new_string: 'line two\nline 2.5\n' } }],
        usage: { input: 1600, output: 60, cacheRead: 700, cacheWrite: 10 },
      },
      {
        content: [{ type: 'tool_use', name: 'Bash', input: { command: 'rm old.txt && mkdir -p node_modules && echo ignored > node_modules/x.js', description: 'Delete old.txt' } }],
        usage: { input: 1800, output: 30, cacheRead: 900, cacheWrite: 5 },
      },
    ];
    await withFixture(script, async (fixture) => {
      const task = 'Add the answer module, reword line2, delete old.txt\n\nDetails: "quotes", $(not run), `ticks`, ünïcödé';
      const result = await runAgentWorker(repo, fixture, ['--branch', 'feature/e2e-a', '--task', task]);
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);

      expect(report.status).toBe('success');
      expect(report.branch).toBe('feature/e2e-a');
      expect(report.baseCommit).toBe(base);
      expect(report.agent.exitCode).toBe(0);
      expect(report.agent.type).toBe('claude');
      expect(report.agent.version).toBe('2.1.330');

      // Tokens equal what the fixture served (all requests, side calls included).
      expect(report.tokens).toEqual(servedTokens(fixture));
      expect(report.tokens!.input).toBeGreaterThanOrEqual(1200 + 1400 + 1600 + 1800);
      expect(report.costUsd).toBeGreaterThan(0);
      expect(report.agent.turns).toBeGreaterThanOrEqual(5);

      // The task reached the model byte for byte.
      const firstTurn = fixture.requests.find((request) => request.kind === 'turn');
      expect(JSON.stringify(firstTurn?.body)).toContain(JSON.stringify(task).slice(1, -1));

      // The branch holds exactly the agent's changes, and the report's figures are git's numstat.
      const head = git(repo, 'rev-parse', 'HEAD').trim();
      expect(report.headCommit).toBe(head);
      expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('feature/e2e-a');
      const stats = numstat(repo, base, head);
      expect(Object.keys(stats).sort()).toEqual(['old.txt', 'src/keep.txt', 'src/new.ts']);
      expect(stats['src/new.ts']).toEqual([2, 0]);
      expect(stats['src/keep.txt']).toEqual([2, 1]);
      expect(stats['old.txt']).toEqual([0, 2]);
      const byPath = Object.fromEntries(report.changes.files.map((file) => [file.path, file]));
      for (const [file, [added, removed]] of Object.entries(stats)) {
        expect(byPath[file]).toMatchObject({ added, removed });
      }
      expect(byPath['src/new.ts']?.status).toBe('added');
      expect(byPath['src/keep.txt']?.status).toBe('modified');
      expect(byPath['old.txt']?.status).toBe('deleted');
      expect(report.changes).toMatchObject({ filesChanged: 3, linesAdded: 4, linesRemoved: 3 });
      expect(readFileSync(path.join(repo, 'src/keep.txt'), 'utf8')).toBe('line1\nline two\nline 2.5\nline3\n');
      expect(git(repo, 'log', '-1', '--format=%s').trim()).toBe('Add the answer module, reword line2, delete old.txt');

      // Clean tree (the ignored file stays, untracked and ignored), no container left.
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(existsSync(path.join(repo, 'node_modules/x.js'))).toBe(true);
      expect(await managedContainers(report.runId)).toEqual([]);

      // The run log: raw stream, report.json = stdout, and the key is nowhere.
      const files = readdirSync(report.logDir).sort();
      expect(files).toEqual(['agent-worker.log', 'agent.stderr.log', 'agent.stream.jsonl', 'egress.jsonl', 'report.json', 'run.json']);
      expect(JSON.parse(readFileSync(path.join(report.logDir, 'report.json'), 'utf8'))).toEqual(report);
      const stream = readFileSync(path.join(report.logDir, 'agent.stream.jsonl'), 'utf8');
      expect(stream).toContain('"type":"result"');
      for (const file of files) expect(readFileSync(path.join(report.logDir, file), 'utf8')).not.toContain(API_KEY);
      expect(result.stdout + result.stderr).not.toContain(API_KEY);
      // Nothing was written into the repository besides the agent's work.
      expect(git(repo, 'ls-files').split('\n').filter(Boolean).sort()).toEqual(['.gitignore', 'README.md', 'src/keep.txt', 'src/new.ts']);
    });
  });

  it('b. timeout: the fixture stalls; exit 124, partial work committed, no container left; the image is reused', async () => {
    const repo = makeRepo();
    cleanup.push(repo);
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    const script: ScriptedTurn[] = [
      {
        content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/partial.txt', content: 'half done\n' } }],
        usage: { input: 500, output: 25 },
      },
      { content: [{ type: 'text', text: 'never finishes' }], usage: { input: 1, output: 1 }, stall: true },
    ];
    await withFixture(script, async (fixture) => {
      const started = Date.now();
      const result = await runAgentWorker(repo, fixture, ['--branch', 'e2e-timeout', '--task', 'Do something slow', '--timeout', '25']);
      expect(result.code, result.stderr).toBe(124);
      const report = parseReport(result);
      expect(report.status).toBe('timed_out');
      expect(report.agent.exitCode).toBeNull();
      expect(Date.now() - started).toBeLessThan(90_000);
      // Partial work committed on the branch.
      expect(git(repo, 'show', 'e2e-timeout:partial.txt')).toBe('half done\n');
      expect(report.changes.files).toEqual([{ path: 'partial.txt', status: 'added', added: 1, removed: 0, binary: false }]);
      expect(report.baseCommit).toBe(base);
      // Tokens from the assistant messages seen (no result line arrived).
      expect(report.tokens!.input).toBeGreaterThanOrEqual(500);
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
      // e. A second run builds nothing.
      expect(report.image.built).toBe(false);
    });
  });

  it('copy workspace (local): the agent commits in the container; the branch, report and numstat match; the user\'s tree is never touched', async () => {
    const repo = makeRepo({ 'README.md': '# demo\n', 'lib/a.txt': 'one\ntwo\n', 'gone.txt': 'bye\n' });
    cleanup.push(repo);
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    const script: ScriptedTurn[] = [
      {
        content: [{ type: 'tool_use', name: 'Bash', input: { command: 'printf "one\\n2\\nthree\\n" > lib/a.txt && git add -A && git commit -qm "agent: first step" && git log --oneline | wc -l' } }],
        usage: { input: 300, output: 20 },
      },
      {
        content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/lib/b.txt', content: 'new\n' } }],
        usage: { input: 400, output: 20, cacheRead: 100 },
      },
      {
        content: [{ type: 'tool_use', name: 'Bash', input: { command: 'rm gone.txt; sleep 2; stat -c %U lib/b.txt' } }],
        usage: { input: 500, output: 20 },
      },
    ];
    await withFixture(script, async (fixture) => {
      const statusBefore = git(repo, 'status', '--porcelain', '--untracked-files=all');
      const headBefore = git(repo, 'symbolic-ref', 'HEAD');
      const running = runAgentWorker(repo, fixture, ['--branch', 'e2e-copy', '--workspace', 'copy', '--task', 'Copy mode task']);
      // While the agent works (its container is running): the user's checkout is untouched, no
      // branch exists yet, and the container has no bind mount.
      let sawContainer = false;
      let done = false;
      void running.then(() => (done = true));
      while (!done) {
        // The agent's container (its egress proxy's sidecar is not a workspace).
        const agentContainers = async (): Promise<Docker.ContainerInfo[]> =>
          (await docker.listContainers({ filters: { label: [`dev.agent-worker.project=${repo}`], status: ['running'] } })).filter((info) => info.Labels['dev.agent-worker.role'] === undefined);
        const runningContainers = await agentContainers();
        const snapshot = {
          status: git(repo, 'status', '--porcelain', '--untracked-files=all'),
          head: git(repo, 'symbolic-ref', 'HEAD'),
          branch: git(repo, 'branch', '--list', 'e2e-copy'),
        };
        const stillRunning = (await agentContainers()).length > 0;
        if (runningContainers.length > 0 && stillRunning) {
          sawContainer = true;
          expect(snapshot).toEqual({ status: statusBefore, head: headBefore, branch: '' });
          for (const info of runningContainers) expect(info.Mounts.filter((mount) => mount.Type === 'bind')).toEqual([]);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const result = await running;
      expect(result.code, result.stderr).toBe(0);
      expect(sawContainer).toBe(true);
      const report = parseReport(result);
      expect(report.status).toBe('success');
      expect(report.baseCommit).toBe(base);
      // The agent's own commit and agent-worker's commit of the rest, on the branch, checked out.
      expect(git(repo, 'log', '--format=%s', `${base}..e2e-copy`).trim().split('\n')).toEqual(['Copy mode task', 'agent: first step']);
      expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('e2e-copy');
      expect(report.headCommit).toBe(git(repo, 'rev-parse', 'e2e-copy').trim());
      const stats = numstat(repo, base, report.headCommit);
      expect(stats).toEqual({ 'gone.txt': [0, 1], 'lib/a.txt': [2, 1], 'lib/b.txt': [1, 0] });
      expect(report.changes).toMatchObject({ filesChanged: 3, linesAdded: 3, linesRemoved: 2 });
      expect(report.tokens!.input).toBe(fixture.served.input);
      expect(report.tokens!.output).toBe(fixture.served.output);
      expect(fixture.toolResults()[0]?.content).toContain('2');
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('copy workspace timeout: the stalled agent is stopped, its partial work is committed in the container and comes back', async () => {
    const repo = makeRepo();
    cleanup.push(repo);
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/partial.txt', content: 'half\n' } }], usage: { input: 70, output: 7 } },
      { content: [{ type: 'text', text: 'stuck' }], usage: { input: 1, output: 1 }, stall: true },
    ];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'e2e-copy-timeout', '--workspace', 'copy', '--task', 'Slow copy task', '--timeout', '20']);
      expect(result.code, result.stderr).toBe(124);
      const report = parseReport(result);
      expect(report.status).toBe('timed_out');
      expect(git(repo, 'show', 'e2e-copy-timeout:partial.txt')).toBe('half\n');
      expect(git(repo, 'log', '-1', '--format=%s', 'e2e-copy-timeout').trim()).toBe('Slow copy task');
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('interrupt: SIGINT while the agent runs → exit 130, container removed, partial work committed, report printed', async () => {
    const repo = makeRepo();
    cleanup.push(repo);
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/wip.txt', content: 'partial\n' } }], usage: { input: 50, output: 5 } },
      { content: [{ type: 'text', text: 'stuck' }], usage: { input: 1, output: 1 }, stall: true },
    ];
    await withFixture(script, async (fixture) => {
      let pid = 0;
      const running = runCli(
        ['--project', repo, '--base-url', `http://host.docker.internal:${fixture.port}`, '--ca-cert', TEST_CA_CERT, '--json', '--branch', 'e2e-int', '--task', 'Work until interrupted'],
        { cwd: repo, env: { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: API_KEY }, onSpawn: (childPid) => (pid = childPid) },
      );
      // Wait until the agent is stuck in its second turn, then press Ctrl-C.
      const deadline = Date.now() + 120_000;
      while (!fixture.requests.some((request) => request.turn === 1) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
      expect(fixture.requests.some((request) => request.turn === 1)).toBe(true);
      process.kill(pid, 'SIGINT');
      const result = await running;
      expect(result.code, result.stderr).toBe(130);
      const report = parseReport(result);
      expect(report.status).toBe('interrupted');
      expect(git(repo, 'show', 'e2e-int:wip.txt')).toBe('partial\n');
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('c. firewall: a second container on the bridge is unreachable, the fixture is reachable, iptables cannot be flushed', async () => {
    const repo = makeRepo();
    cleanup.push(repo);
    const image = (await docker.listImages({ filters: { reference: ['agent-worker'] } })).find((candidate) =>
      candidate.Labels?.['dev.agent-worker.managed'] === 'true',
    );
    expect(image, 'the agent image exists after the earlier runs').toBeDefined();
    const peer = await docker.createContainer({
      Image: image!.Id,
      Entrypoint: ['node', '-e', "require('http').createServer((q, s) => s.end('peer')).listen(8080)"],
      Labels: { 'dev.agent-worker.test': 'peer' },
    });
    try {
      await peer.start();
      const peerIp = (await peer.inspect()).NetworkSettings.Networks.bridge?.IPAddress ?? '';
      expect(peerIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      // Control: without the firewall, the peer answers (so a "blocked" below means the firewall).
      const control = await docker.run(image!.Id, ['-c', `for i in 1 2 3 4 5 6 7 8 9 10; do (exec 3<>/dev/tcp/${peerIp}/8080) 2>/dev/null && exit 0; sleep 0.5; done; exit 1`], process.stderr, {
        Entrypoint: ['bash'],
        HostConfig: { AutoRemove: true },
      });
      expect((control[0] as { StatusCode: number }).StatusCode).toBe(0);

      const probe = (target: string, port: number | string, name: string): string =>
        `if timeout 5 bash -c "exec 3<>/dev/tcp/${target}/${port}" 2>/dev/null; then echo ${name}_OPEN; else echo ${name}_BLOCKED; fi`;
      await withFixture(
        [
          { content: [{ type: 'tool_use', name: 'Bash', input: { command: probe(peerIp, 8080, 'PEER') } }], usage: { input: 100, output: 10 } },
          {
            // The fixture's port is only known once it listens: read it from the agent's ANTHROPIC_BASE_URL.
            content: [{ type: 'tool_use', name: 'Bash', input: { command: `hp=\${ANTHROPIC_BASE_URL#http://}; ${probe('$' + '{hp%%:*}', '$' + '{hp##*:}', 'FIXTURE')}` } }],
            usage: { input: 100, output: 10 },
          },
          {
            content: [{ type: 'tool_use', name: 'Bash', input: { command: "iptables -F OUTPUT; echo flush-exit=$?; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status" } }],
            usage: { input: 100, output: 10 },
          },
        ],
        async (fixture) => {
          const result = await runAgentWorker(repo, fixture, ['--branch', 'e2e-firewall', '--task', 'Probe the network']);
          expect(result.code, result.stderr).toBe(0);
          const outputs = fixture.toolResults().map((toolResult) => toolResult.content);
          expect(outputs[0]).toContain('PEER_BLOCKED');
          expect(outputs[1]).toContain('FIXTURE_OPEN');
          expect(outputs[2]).toMatch(/flush-exit=[1-9]/);
          expect(outputs[2]).toMatch(/CapEff:\s+0000000000000000/);
          expect(outputs[2]).toMatch(/CapBnd:\s+0000000000000000/);
          expect(outputs[2]).toMatch(/NoNewPrivs:\s+1/);
          const report = parseReport(result);
          expect(report.changes.filesChanged).toBe(0);
          expect(await managedContainers(report.runId)).toEqual([]);
        },
      );
    } finally {
      await peer.remove({ force: true });
    }
  });
});

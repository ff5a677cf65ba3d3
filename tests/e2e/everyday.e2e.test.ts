/**
 * End to end, everyday use: project Dockerfiles, --verify, --max-turns, --max-budget-usd,
 * --append-system-prompt/--persona, --mcp-config, `doctor`, `runs`/`logs`, and progress output without
 * a terminal. The built CLI, a real dockerd, the REAL Claude Code binary, the scripted Messages API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { parseReport, runAgentWorker, TEST_API_KEY, waitFor, withFixture } from '../helpers/agent-run.js';
import { docker, dockerAvailable, managedContainers, runCli, TEST_CA_CERT } from '../helpers/docker.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';
import type { RunReport } from '../../src/report/types.js';

const hasDocker = await dockerAvailable();

const cleanup: string[] = [];
let stateDir: string;

beforeAll(() => {
  stateDir = tempDir('aw-state-');
  cleanup.push(stateDir);
});

/** Project images this suite built (its contexts are unique), removed at the end. */
const projectImages: string[] = [];

afterAll(async () => {
  for (const dir of cleanup) removeDir(dir);
  for (const tag of projectImages) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
});

/** A one-tool script: the agent writes `file` with `content`, then says it is done. */
function writeScript(file: string, content: string): ScriptedTurn[] {
  return [
    { content: [{ type: 'tool_use', name: 'Write', input: { file_path: `/workspace/${file}`, content } }], usage: { input: 500, output: 40 } },
    { content: [{ type: 'text', text: 'Done.' }], usage: { input: 600, output: 10 } },
  ];
}

function repoFor(files?: Record<string, string>): string {
  const repo = makeRepo(files);
  cleanup.push(repo);
  return repo;
}

describe.runIf(hasDocker)('everyday use (real Claude Code, scripted API)', { timeout: 900_000 }, () => {
  it('a project Dockerfile is built FROM the tool image, its tools are on the agent\'s PATH, and it is reused by content hash', async () => {
    const dockerfile = [
      'ARG AGENT_WORKER_IMAGE',
      'FROM ${AGENT_WORKER_IMAGE}',
      'COPY project-tool /usr/local/bin/project-tool',
      'RUN chmod 0755 /usr/local/bin/project-tool',
      '',
    ].join('\n');
    // A nonce keeps this run's build contexts new to the daemon (an earlier run's images would be reused).
    const nonce = randomBytes(6).toString('hex');
    const repo = repoFor({ 'README.md': '# p\n', '.agent-worker/Dockerfile': dockerfile, '.agent-worker/project-tool': `#!/bin/sh\n# ${nonce}\necho "project tool v1"\n` });
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: 'project-tool > tool.txt', description: 'run the project tool' } }], usage: { input: 500, output: 30 } },
      { content: [{ type: 'text', text: 'Ran it.' }], usage: { input: 600, output: 10 } },
    ];
    const first = await withFixture(script, (fixture) => runAgentWorker(repo, fixture, ['--task', 'Run the project tool', '--branch', 'proj-1'], { stateDir }));
    expect(first.code, first.stderr).toBe(0);
    const report = parseReport(first);
    expect(report.image.tag).toMatch(/^agent-worker-project:[0-9a-f]{16}$/);
    projectImages.push(report.image.tag);
    expect(report.image.dockerfile).toBe(path.join(repo, '.agent-worker', 'Dockerfile'));
    expect(git(repo, 'show', 'proj-1:tool.txt')).toBe('project tool v1\n');

    git(repo, 'checkout', '-q', 'main');
    const second = await withFixture(script, (fixture) => runAgentWorker(repo, fixture, ['--task', 'Run it again', '--branch', 'proj-2'], { stateDir }));
    const again = parseReport(second);
    expect(again.image).toMatchObject({ tag: report.image.tag, built: false });

    // A change to the project's build context makes a new image.
    git(repo, 'checkout', '-q', 'main');
    writeFileSync(path.join(repo, '.agent-worker', 'project-tool'), `#!/bin/sh\n# ${nonce}\necho "project tool v2"\n`);
    git(repo, 'commit', '-qam', 'tool v2');
    const third = await withFixture(script, (fixture) => runAgentWorker(repo, fixture, ['--task', 'Run the new tool', '--branch', 'proj-3'], { stateDir }));
    const changed = parseReport(third);
    projectImages.push(changed.image.tag);
    expect(changed.image.tag).not.toBe(report.image.tag);
    expect(changed.image.built).toBe(true);
    expect(git(repo, 'show', 'proj-3:tool.txt')).toBe('project tool v2\n');
  });

  it('--dockerfile that does not build: exit 8 with the build log, the repository untouched', async () => {
    const repo = repoFor();
    const bad = path.join(tempDir('aw-df-'), 'Broken.Dockerfile');
    cleanup.push(path.dirname(bad));
    writeFileSync(bad, 'ARG AGENT_WORKER_IMAGE\nFROM ${AGENT_WORKER_IMAGE}\nRUN echo "step failing on purpose" && exit 7\n');
    const result = await runAgentWorker(repo, undefined, ['--task', 'x', '--branch', 'never', '--dockerfile', bad, '--api-key', TEST_API_KEY], { stateDir });
    expect(result.code).toBe(8);
    expect(result.stderr).toContain('Building the project image from');
    expect(result.stderr).toContain('step failing on purpose');
    expect(git(repo, 'branch', '--list', 'never')).toBe('');
    expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('main');
  });

  it('--verify passing: exit 0, verify in the report with its exit code, time and output; verify.log kept', async () => {
    const repo = repoFor();
    const result = await withFixture(writeScript('answer.txt', '42\n'), (fixture) =>
      runAgentWorker(repo, fixture, ['--task', 'Write the answer', '--branch', 'verify-ok', '--verify', 'test "$(cat answer.txt)" = 42 && echo "verified: $(whoami) in $PWD"'], { stateDir }),
    );
    expect(result.code, result.stderr).toBe(0);
    const report = parseReport(result);
    expect(report.status).toBe('success');
    expect(report.verify).toMatchObject({ command: expect.stringContaining('answer.txt'), exitCode: 0 });
    expect(report.verify!.outputTail).toEqual([expect.stringMatching(/^verified: \S+ in \/workspace$/)]);
    expect(report.verify!.durationMs).toBeGreaterThanOrEqual(0);
    // The agent's process time (from the entrypoint's marks and the container's end) is inside the run's.
    expect(report.agent.wallMs).toBeGreaterThan(0);
    expect(report.agent.wallMs).toBeLessThan(report.durationMs);
    expect(readFileSync(path.join(report.logDir, 'verify.log'), 'utf8')).toContain('verified:');
    expect(git(repo, 'show', 'verify-ok:answer.txt')).toBe('42\n');
    expect(await managedContainers(report.runId)).toEqual([]);
  });

  it('--verify failing, copy workspace, behind the firewall: status verify_failed, exit 12, the work still on the branch', async () => {
    const repo = repoFor();
    const verify = 'echo "before"; if node -e "fetch(\'http://1.1.1.1\',{signal:AbortSignal.timeout(3000)}).then(()=>process.exit(0),()=>process.exit(1))"; then echo "NET OPEN"; else echo "net blocked"; fi; echo boom >&2; exit 3';
    const result = await withFixture(writeScript('half.txt', 'half\n'), (fixture) =>
      runAgentWorker(repo, fixture, ['--task', 'Half a fix', '--branch', 'verify-bad', '--workspace', 'copy', '--verify', verify], { stateDir }),
    );
    expect(result.code, result.stderr).toBe(12);
    const report = parseReport(result);
    expect(report.status).toBe('verify_failed');
    expect(report.verify).toMatchObject({ exitCode: 3, outputTail: ['before', 'net blocked', 'boom'] });
    expect(report.agent.wallMs).toBeGreaterThan(0);
    expect(report.agent.wallMs! + report.verify!.durationMs).toBeLessThan(report.durationMs);
    expect(git(repo, 'show', 'verify-bad:half.txt')).toBe('half\n');
  });

  it('--max-turns: the agent stops at the limit → status max_turns, exit 13, partial work committed', async () => {
    const repo = repoFor();
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/one.txt', content: '1\n' } }], usage: { input: 100, output: 10 } },
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/two.txt', content: '2\n' } }], usage: { input: 100, output: 10 } },
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/three.txt', content: '3\n' } }], usage: { input: 100, output: 10 } },
      { content: [{ type: 'text', text: 'All three.' }], usage: { input: 100, output: 10 } },
    ];
    const result = await withFixture(script, (fixture) => runAgentWorker(repo, fixture, ['--task', 'Write three files', '--branch', 'turns', '--max-turns', '2'], { stateDir }));
    expect(result.code, result.stderr).toBe(13);
    const report = parseReport(result);
    expect(report.status).toBe('max_turns');
    expect(git(repo, 'show', 'turns:one.txt')).toBe('1\n');
    expect(git(repo, 'ls-tree', '--name-only', 'turns')).not.toContain('three.txt');
  });

  it('--max-budget-usd: the agent stops once its cost passes the budget → status budget_exceeded, exit 14', async () => {
    const repo = repoFor();
    // Each turn reports 2M input tokens: far more than $0.01 at any model's price.
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/spent.txt', content: 'money\n' } }], usage: { input: 2_000_000, output: 100 } },
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/more.txt', content: 'more\n' } }], usage: { input: 2_000_000, output: 100 } },
      { content: [{ type: 'text', text: 'Done.' }], usage: { input: 100, output: 10 } },
    ];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--task', 'Spend', '--branch', 'budget', '--max-budget-usd', '0.01'], { stateDir });
      expect(result.code, result.stderr).toBe(14);
      const report = parseReport(result);
      expect(report.status).toBe('budget_exceeded');
      expect(report.costUsd).toBeGreaterThan(0.01);
      // Claude Code stops right after the turn that went over: no second model turn was asked for.
      expect(fixture.requests.filter((request) => request.kind === 'turn').map((request) => request.turn)).toEqual([0]);
      expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('budget');
    });
  });

  it('--append-system-prompt and --persona reach the model as system prompt text; --mcp-config reaches Claude Code; a blocked MCP host is a warning', async () => {
    const repo = repoFor();
    const dir = tempDir('aw-steer-');
    cleanup.push(dir);
    writeFileSync(path.join(dir, 'persona.md'), '# Persona\nYou are Ada, a careful reviewer. Always write tests first.\n');
    writeFileSync(path.join(dir, 'mcp.json'), JSON.stringify({ mcpServers: { docs: { type: 'http', url: 'https://mcp.example.invalid/mcp' } } }));
    await withFixture(writeScript('steered.txt', 'ok\n'), async (fixture) => {
      const result = await runAgentWorker(
        repo,
        fixture,
        ['--task', 'Steered task', '--branch', 'steer', '--append-system-prompt', 'Prefer tabs over spaces.', '--persona', path.join(dir, 'persona.md'), '--mcp-config', path.join(dir, 'mcp.json')],
        { stateDir },
      );
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      const turn = fixture.requests.find((request) => request.kind === 'turn');
      const system = JSON.stringify((turn!.body as { system?: unknown }).system);
      expect(system).toContain('Prefer tabs over spaces.');
      expect(system).toContain('You are Ada, a careful reviewer.');
      expect(system).toContain('unattended inside agent-worker');
      const init = readFileSync(path.join(report.logDir, 'agent.stream.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { type?: string; subtype?: string; mcp_servers?: Array<{ name: string }> })
        .find((event) => event.type === 'system' && event.subtype === 'init');
      expect(init?.mcp_servers?.map((server) => server.name)).toContain('docs');
      expect(report.warnings.join('\n')).toContain('--allow-host mcp.example.invalid');
    });
  });

  it('doctor: all checks pass in a clean repo with credentials; fails with the first problem\'s exit code otherwise', async () => {
    const repo = repoFor();
    await withFixture([], async (fixture) => {
      const args = ['doctor', '--project', repo, '--base-url', `http://host.docker.internal:${fixture.port}`, '--ca-cert', TEST_CA_CERT];
      const ok = await runCli([...args, '--json'], { cwd: repo, env: { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: TEST_API_KEY } });
      expect(ok.code, ok.stderr + ok.stdout).toBe(0);
      const report = JSON.parse(ok.stdout) as { ok: boolean; checks: Array<{ id: string; status: string; detail: string }> };
      expect(report.ok).toBe(true);
      expect(Object.fromEntries(report.checks.map((check) => [check.id, check.status]))).toEqual({
        config: 'ok',
        repository: 'ok',
        credentials: 'ok',
        'ca-cert': 'ok',
        docker: 'ok',
        image: 'ok',
        api: 'ok',
      });
      expect(ok.stdout).not.toContain(TEST_API_KEY);
      expect(fixture.requests.some((request) => request.method === 'HEAD')).toBe(true);

      writeFileSync(path.join(repo, 'dirty.txt'), 'x\n');
      const bad = await runCli(args, { cwd: repo, env: { XDG_STATE_HOME: stateDir } });
      expect(bad.code).toBe(4);
      expect(bad.stdout).toMatch(/✗ repository .*uncommitted/);
      expect(bad.stdout).toMatch(/✗ credentials/);
      expect(bad.stdout).toMatch(/✓ docker/);
      expect(bad.stdout).not.toContain('\u001b[');
    });
    // A base URL nothing listens on is unreachable from the container.
    const repo2 = repoFor();
    const down = await runCli(['doctor', '--project', repo2, '--base-url', 'http://host.docker.internal:9', '--ca-cert', TEST_CA_CERT, '--json'], {
      cwd: repo2,
      env: { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: TEST_API_KEY },
    });
    expect(down.code).toBe(9);
    expect((JSON.parse(down.stdout) as { checks: Array<{ id: string; status: string }> }).checks.find((check) => check.id === 'api')?.status).toBe('fail');
    expect((await managedContainers()).filter((container) => container.Labels['dev.agent-worker.run-id']?.startsWith('doctor-'))).toEqual([]);
  });

  it('logs -f follows a running run\'s agent stream as readable lines, then prints its report', async () => {
    const repo = repoFor();
    const state = tempDir('aw-state-');
    cleanup.push(state);
    const env = { XDG_STATE_HOME: state, ANTHROPIC_API_KEY: TEST_API_KEY };
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: 'sleep 4 && echo slept > slept.txt', description: 'wait a bit' } }], usage: { input: 300, output: 20 } },
      { content: [{ type: 'text', text: 'Waited.' }], usage: { input: 400, output: 5 } },
    ];
    await withFixture(script, async (fixture) => {
      const running = runCli(['--project', repo, '--task', 'Wait', '--branch', 'follow', '--json', '--base-url', `http://host.docker.internal:${fixture.port}`, '--ca-cert', TEST_CA_CERT], { cwd: repo, env });
      const runsDir = path.join(state, 'agent-worker', 'runs');
      await waitFor(() => existsSync(runsDir) && readdirSync(runsDir).some((id) => existsSync(path.join(runsDir, id, 'run.json'))), 'run.json of the running run', 60_000);
      const listed = await runCli(['runs', '--json'], { cwd: repo, env });
      expect((JSON.parse(listed.stdout) as Array<{ status: string }>)[0]!.status).toBe('running');
      const followed = await runCli(['logs', '-f'], { cwd: repo, env, timeoutMs: 120_000 });
      const run = await running;
      expect(run.code, run.stderr).toBe(0);
      expect(followed.code, followed.stderr).toBe(0);
      expect(followed.stdout).toContain('Bash: sleep 4 && echo slept > slept.txt');
      expect(followed.stdout).toMatch(/result: success/);
      // The report table comes last, once the run has ended.
      expect(followed.stdout.indexOf('files changed')).toBeGreaterThan(followed.stdout.indexOf('result: success'));
    });
  });

  it('runs and logs read the run folders; without a terminal progress is plain lines; --quiet prints none', async () => {
    const repo = repoFor();
    const state = tempDir('aw-state-');
    cleanup.push(state);
    const env = { XDG_STATE_HOME: state, ANTHROPIC_API_KEY: TEST_API_KEY, NO_COLOR: '1' };
    const plain = await withFixture(writeScript('a.txt', 'a\n'), (fixture) =>
      runCli(['--project', repo, '--task', 'First', '--branch', 'hist-1', '--base-url', `http://host.docker.internal:${fixture.port}`, '--ca-cert', TEST_CA_CERT], { cwd: repo, env }),
    );
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toMatch(/^✓ Image agent-worker:[0-9a-f]{16} (cached|built)$/m);
    expect(plain.stderr).toMatch(/^✓ Changes committed to hist-1$/m);
    expect(plain.stderr + plain.stdout).not.toContain('\u001b');
    git(repo, 'checkout', '-q', 'main');
    const quiet = await withFixture(writeScript('b.txt', 'b\n'), (fixture) =>
      runCli(['--project', repo, '--task', 'Second', '--branch', 'hist-2', '--quiet', '--json', '--base-url', `http://host.docker.internal:${fixture.port}`, '--ca-cert', TEST_CA_CERT], { cwd: repo, env }),
    );
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
    const second = JSON.parse(quiet.stdout) as RunReport;

    const runs = await runCli(['runs', '--json'], { cwd: repo, env });
    expect(runs.code, runs.stderr).toBe(0);
    const listed = JSON.parse(runs.stdout) as Array<{ runId: string; branch: string; status: string; costUsd: number | null; project: string }>;
    expect(listed.map((run) => run.branch)).toEqual(['hist-2', 'hist-1']);
    expect(listed.every((run) => run.status === 'success' && run.project === repo)).toBe(true);
    const table = await runCli(['runs'], { cwd: repo, env });
    expect(table.stdout).toContain(second.runId);

    const logs = await runCli(['logs', second.runId.slice(0, 17), '--json'], { cwd: repo, env });
    expect(JSON.parse(logs.stdout)).toEqual(second);
    const stream = await runCli(['logs', '--stream'], { cwd: repo, env });
    expect(stream.code, stream.stderr).toBe(0);
    expect(stream.stdout).toContain('Write: ');
    expect(stream.stdout).toMatch(/result: success/);
    expect(existsSync(path.join(second.logDir, 'run.json'))).toBe(true);
  });
});

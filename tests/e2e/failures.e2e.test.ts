/**
 * End to end, runs that fail before or while the agent works, as a user sees them on stderr and in the table:
 * the model API refusing connections, a --base-url host that does not resolve, the agent's own API error, and a
 * timeout. The built CLI without --json (plain progress lines, since stderr is not a terminal), a real dockerd,
 * the REAL Claude Code binary, the scripted Messages API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { TEST_API_KEY, withFixture } from '../helpers/agent-run.js';
import { dockerAvailable, projectContainers, runCli, TEST_CA_CERT, type CliResult } from '../helpers/docker.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';
import type { RunReport } from '../../src/report/types.js';

const hasDocker = await dockerAvailable();

const cleanup: string[] = [];
let stateDir: string;

beforeAll(() => {
  stateDir = tempDir('aw-state-');
  cleanup.push(stateDir);
});

afterAll(() => {
  for (const dir of cleanup) removeDir(dir);
});

function repoFor(): string {
  const repo = makeRepo({ 'README.md': '# failures\n' });
  cleanup.push(repo);
  return repo;
}

/** Runs the built CLI on `repo` with `baseUrl` as the model API, the CA bundle and `extra` args, without --json. */
function run(repo: string, baseUrl: string, extra: string[]): Promise<CliResult> {
  return runCli(['--project', repo, '--base-url', baseUrl, '--ca-cert', TEST_CA_CERT, ...extra], {
    cwd: repo,
    env: { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: TEST_API_KEY },
  });
}

/** The run's report.json, from the log folder the table names. */
function reportOf(result: CliResult): RunReport {
  const logDir = /Log folder:\s*(\S+)/.exec(result.stdout)?.[1];
  expect(logDir, result.stdout).toBeDefined();
  return JSON.parse(readFileSync(path.join(logDir!, 'report.json'), 'utf8')) as RunReport;
}

/** No phase line of a failure may carry a success tick. */
function expectNoSuccessTickFor(stderr: string, phase: RegExp): void {
  for (const line of stderr.split('\n')) if (phase.test(line)) expect(line, stderr).not.toMatch(/^[✓✔]/);
}

describe.runIf(hasDocker)('failures a user sees (real Claude Code, scripted API)', { timeout: 600_000 }, () => {
  it('a model API whose port is closed stops the run before the agent starts: exit 9, the URL and "connection refused"', async () => {
    const repo = repoFor();
    const head = git(repo, 'rev-parse', 'HEAD').trim();
    // Port 9 (discard) on the Docker host: nothing listens, so the connection is refused.
    const result = await run(repo, 'http://host.docker.internal:9', ['--task', 'Write hello.txt', '--branch', 'closed-port']);
    expect(result.code, result.stderr).toBe(9);
    expect(result.stderr).toContain("agent-worker: The model API at http://host.docker.internal:9/ did not accept a connection from the egress proxy");
    expect(result.stderr).toContain('connection refused');
    expect(result.stderr).toMatch(/^✗ Starting the container/m);
    expect(result.stderr).not.toMatch(/Agent running|Agent exited/);
    // Nothing was changed: no branch, HEAD where it was, no container left.
    expect(git(repo, 'branch', '--list', 'closed-port').trim()).toBe('');
    expect(git(repo, 'rev-parse', 'HEAD').trim()).toBe(head);
    expect(await projectContainers(repo)).toEqual([]);
  });

  it('a --base-url host that does not resolve is named with its flag, the phase it failed in, and no internal names', async () => {
    const repo = repoFor();
    const result = await run(repo, 'http://api.nowhere.invalid', ['--task', 'Write hello.txt', '--branch', 'no-such-host']);
    expect(result.code, result.stderr).toBe(9);
    expect(result.stderr).toContain('agent-worker: The host api.nowhere.invalid (from --base-url http://api.nowhere.invalid) does not resolve to an address');
    expect(result.stderr).not.toContain('AW_ALLOW_HOSTS');
    expect(result.stderr).not.toContain('agent-worker: agent-worker:');
    expect(result.stderr).not.toContain('firewall setup failed: firewall setup failed');
    expect(result.stderr).toMatch(/^✗ Starting the container/m);
    expect(result.stderr).not.toContain('Agent running');
    expect(git(repo, 'branch', '--list', 'no-such-host').trim()).toBe('');
    expect(await projectContainers(repo)).toEqual([]);
  });

  it("an agent that fails says why on stderr and in the table's status row, and its phase gets no success tick", async () => {
    const repo = repoFor();
    const script: ScriptedTurn[] = [
      { content: [], usage: { input: 0, output: 0 }, error: { status: 400, type: 'invalid_request_error', message: 'scripted refusal 7f3a' } },
    ];
    const result = await withFixture(script, (fixture) => run(repo, `http://host.docker.internal:${fixture.port}`, ['--task', 'Write hello.txt', '--branch', 'agent-fails']));
    expect(result.code, result.stderr).toBe(1);
    const report = reportOf(result);
    expect(report.status).toBe('agent_error');
    expect(report.agent.error).toContain('scripted refusal 7f3a');
    // The progress line and the table's status row carry the agent's own reason.
    expect(result.stderr).toMatch(/^✗ Agent exited with code 1: .*scripted refusal 7f3a/m);
    expectNoSuccessTickFor(result.stderr, /Agent (exited|timed out|interrupted)/);
    expect(result.stdout).toMatch(/status\s+│?\s*agent error: .*scripted refusal 7f3a/);
    // Its (empty) work is still on the branch.
    expect(git(repo, 'branch', '--list', 'agent-fails').trim()).not.toBe('');
    expect(await projectContainers(repo)).toEqual([]);
  });

  it('a warning is shown once: under the table, not also on stderr', async () => {
    const repo = repoFor();
    const dir = tempDir('aw-mcp-');
    cleanup.push(dir);
    writeFileSync(path.join(dir, 'mcp.json'), JSON.stringify({ mcpServers: { docs: { type: 'http', url: 'https://mcp.example.invalid/mcp' } } }));
    const script: ScriptedTurn[] = [{ content: [{ type: 'text', text: 'Nothing to do.' }], usage: { input: 10, output: 2 } }];
    const result = await withFixture(script, (fixture) =>
      run(repo, `http://host.docker.internal:${fixture.port}`, ['--task', 'Do nothing', '--branch', 'warned', '--mcp-config', path.join(dir, 'mcp.json')]),
    );
    expect(result.code, result.stderr).toBe(0);
    const shown = `${result.stdout}\n${result.stderr}`.split('--allow-host mcp.example.invalid').length - 1;
    expect(shown, `${result.stdout}\n${result.stderr}`).toBe(1);
    expect(result.stdout).toMatch(/^warning: the egress proxy refuses the MCP server host/m);
    expect(reportOf(result).warnings).toHaveLength(1);
  });

  it('a timed-out agent gets a failure mark, not a success tick', async () => {
    const repo = repoFor();
    const script: ScriptedTurn[] = [{ content: [{ type: 'text', text: 'thinking…' }], usage: { input: 10, output: 1 }, stall: true }];
    const result = await withFixture(script, (fixture) => run(repo, `http://host.docker.internal:${fixture.port}`, ['--task', 'Think forever', '--branch', 'agent-slow', '--timeout', '5']));
    expect(result.code, result.stderr).toBe(124);
    expect(result.stderr).toMatch(/^✗ Agent timed out/m);
    expectNoSuccessTickFor(result.stderr, /Agent (exited|timed out|interrupted)/);
    expect(reportOf(result).status).toBe('timed_out');
    expect(await projectContainers(repo)).toEqual([]);
  });
});

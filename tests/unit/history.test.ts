import { spawnSync } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { logsCommand, runsCommand, type CommandIO } from '../../src/commands/history.js';
import { AgentWorkerError, ExitCode } from '../../src/errors.js';
import { followAgentStream, listRuns, readableLines, resolveRun } from '../../src/report/history.js';
import { renderReportJson, renderReportTable } from '../../src/report/render.js';
import { RunLog, runsRoot, type RunInfo } from '../../src/report/run-log.js';
import type { RunReport, RunStatus } from '../../src/report/types.js';

const SAMPLES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'agent-output-samples');

async function sample(name: 'success' | 'error_max_turns'): Promise<string[]> {
  const text = await readFile(path.join(SAMPLES, `claude-2.1.330-${name}.stream.jsonl`), 'utf8');
  return text.split('\n').filter((line) => line !== '');
}

/** A pid that no longer runs: a child that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  return child.pid;
}

function makeReport(runId: string, status: RunStatus, overrides: Partial<RunReport> = {}): RunReport {
  return {
    runId,
    status,
    branch: `agent/${runId}`,
    baseCommit: '0123456789abcdef0123456789abcdef01234567',
    headCommit: 'fedcba9876543210fedcba9876543210fedcba98',
    durationMs: 83_000,
    agent: { type: 'claude', version: '2.1.330', model: 'claude-sonnet-4-5', exitCode: 0, sessionId: 's', turns: 3, resultText: 'Done.' },
    tokens: { input: 1, output: 2, cacheRead: 3, cacheWrite: 4, reasoning: 0, total: 10 },
    costUsd: 0.0123,
    changes: { filesChanged: 0, linesAdded: 0, linesRemoved: 0, files: [] },
    image: { tag: 'agent-worker:abc', built: false, buildMs: 0 },
    warnings: [],
    logDir: `/logs/${runId}`,
    ...overrides,
  } as RunReport;
}

function makeInfo(runId: string, overrides: Partial<RunInfo> = {}): RunInfo {
  return {
    runId,
    project: '/src/project-a',
    branch: `agent/${runId}`,
    agentType: 'claude',
    pid: process.pid,
    host: os.hostname(),
    startedAt: new Date().toISOString(),
    toolVersion: '0.1.0',
    workspace: 'mount',
    ...overrides,
  };
}

/** Creates `<root>/<runId>/` with the given files. */
async function makeRun(root: string, runId: string, files: { info?: RunInfo | string; report?: RunReport; stream?: string[] }): Promise<string> {
  const dir = path.join(root, runId);
  await mkdir(dir, { recursive: true });
  if (files.info !== undefined) await writeFile(path.join(dir, 'run.json'), typeof files.info === 'string' ? files.info : JSON.stringify(files.info));
  if (files.report) await writeFile(path.join(dir, 'report.json'), JSON.stringify(files.report));
  if (files.stream) await writeFile(path.join(dir, 'agent.stream.jsonl'), files.stream.map((line) => `${line}\n`).join(''));
  return dir;
}

/** Output streams that record what is written; the command's working folder is `cwd` (default: the temp home, no repository). */
function fakeIO(env: NodeJS.ProcessEnv, signal?: AbortSignal, cwd = home): { io: CommandIO; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  return { io: { stdout, stderr, env, color: false, signal, cwd }, out: () => out, err: () => err };
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let home: string;
let root: string;
let env: NodeJS.ProcessEnv;

beforeEach(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'aw-history-'));
  env = { XDG_STATE_HOME: home };
  root = runsRoot(env);
  await mkdir(root, { recursive: true });
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('RunLog.writeInfo', () => {
  it('writes run.json, mode 0600, as pretty JSON ending in a newline', async () => {
    const log = await RunLog.open(root, '20261122-051230-a1b2c3', []);
    const info = makeInfo('20261122-051230-a1b2c3');
    await log.writeInfo(info);
    await log.close();
    const file = path.join(root, '20261122-051230-a1b2c3', 'run.json');
    const text = await readFile(file, 'utf8');
    expect(text).toBe(`${JSON.stringify(info, null, 2)}\n`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});

describe('listRuns', () => {
  async function makeFixtureRuns(): Promise<void> {
    await makeRun(root, '20260101-000000-aaaaaa', { info: makeInfo('20260101-000000-aaaaaa', { startedAt: '2026-01-01T00:00:00.000Z' }), report: makeReport('20260101-000000-aaaaaa', 'success') });
    await makeRun(root, '20260102-000000-bbbbbb', {
      info: makeInfo('20260102-000000-bbbbbb', { project: '/src/project-b', pid: deadPid(), startedAt: '2026-01-02T00:00:00.000Z' }),
      report: makeReport('20260102-000000-bbbbbb', 'agent_error', { costUsd: null, durationMs: 5_000 }),
    });
    // No run.json (older runs): branch from the report, start time from the id.
    await makeRun(root, '20260103-101112-cccccc', { report: makeReport('20260103-101112-cccccc', 'timed_out') });
    await makeRun(root, '20260104-000000-dddddd', { info: makeInfo('20260104-000000-dddddd', { pid: deadPid(), startedAt: '2026-01-04T00:00:00.000Z' }) });
    await makeRun(root, '20260105-000000-eeeeee', { info: makeInfo('20260105-000000-eeeeee', { startedAt: new Date(Date.now() - 60_000).toISOString() }) });
    // Not runs: a stray folder, a folder with broken JSON and a non-id name, a file.
    await mkdir(path.join(root, 'zzz-notes'));
    await makeRun(root, 'zzz-broken', { info: '{ not json' });
    await writeFile(path.join(root, 'README'), 'hello');
  }

  it('lists runs newest first with their status, cost and duration, skipping folders that are not runs', async () => {
    await makeFixtureRuns();
    const runs = await listRuns(root);
    expect(runs.map((run) => [run.runId, run.status])).toEqual([
      ['20260105-000000-eeeeee', 'running'],
      ['20260104-000000-dddddd', 'unfinished'],
      ['20260103-101112-cccccc', 'timed_out'],
      ['20260102-000000-bbbbbb', 'agent_error'],
      ['20260101-000000-aaaaaa', 'success'],
    ]);
    const [running, unfinished, old, errored, done] = runs;
    expect(running!.durationMs).toBeGreaterThanOrEqual(60_000);
    expect(running!.durationMs).toBeLessThan(120_000);
    expect(running!.costUsd).toBeNull();
    expect(unfinished).toMatchObject({ durationMs: null, costUsd: null, project: '/src/project-a', logDir: path.join(root, '20260104-000000-dddddd') });
    expect(old).toMatchObject({ project: null, branch: 'agent/20260103-101112-cccccc', agentType: 'claude', startedAt: '2026-01-03T10:11:12.000Z', durationMs: 83_000 });
    // A finished run's status comes from its report, whatever its process.
    expect(errored).toMatchObject({ costUsd: null, durationMs: 5_000, project: '/src/project-b' });
    expect(done).toMatchObject({ costUsd: 0.0123, durationMs: 83_000, startedAt: '2026-01-01T00:00:00.000Z' });
  });

  it('applies the limit and the project filter (a path inside the project matches)', async () => {
    await makeFixtureRuns();
    expect((await listRuns(root, { limit: 2 })).map((run) => run.runId)).toEqual(['20260105-000000-eeeeee', '20260104-000000-dddddd']);
    expect((await listRuns(root, { project: '/src/project-b/sub/dir' })).map((run) => run.runId)).toEqual(['20260102-000000-bbbbbb']);
    expect(await listRuns(root, { project: '/src/project' })).toEqual([]);
  });

  it('a run on another host cannot be checked: unfinished', async () => {
    await makeRun(root, '20260105-000000-eeeeee', { info: makeInfo('20260105-000000-eeeeee', { host: `not-${os.hostname()}` }) });
    expect((await listRuns(root))[0]!.status).toBe('unfinished');
  });

  it('returns [] when the runs folder does not exist', async () => {
    expect(await listRuns(path.join(home, 'missing'))).toEqual([]);
  });
});

describe('resolveRun', () => {
  beforeEach(async () => {
    await makeRun(root, '20260101-000000-aaaaaa', { report: makeReport('20260101-000000-aaaaaa', 'success') });
    await makeRun(root, '20260101-000000-abbbbb', { report: makeReport('20260101-000000-abbbbb', 'success') });
    await makeRun(root, '20260102-000000-cccccc', { report: makeReport('20260102-000000-cccccc', 'success') });
    await mkdir(path.join(root, 'zzz-not-a-run'));
  });

  it('gives the newest run without an id, skipping folders that are not runs', async () => {
    expect((await resolveRun(root)).runId).toBe('20260102-000000-cccccc');
  });

  it('accepts a full id or a unique prefix', async () => {
    expect((await resolveRun(root, '20260101-000000-aaaaaa')).runId).toBe('20260101-000000-aaaaaa');
    expect((await resolveRun(root, '20260101-000000-ab')).runId).toBe('20260101-000000-abbbbb');
    expect((await resolveRun(root, '20260102')).runId).toBe('20260102-000000-cccccc');
  });

  it('rejects an ambiguous prefix and an unknown id with a usage error naming `agent-worker runs`', async () => {
    const ambiguous = await resolveRun(root, '20260101').catch((error: unknown) => error);
    expect(ambiguous).toBeInstanceOf(AgentWorkerError);
    expect(ambiguous).toMatchObject({ exitCode: ExitCode.usage });
    expect((ambiguous as AgentWorkerError).message).toContain('matches 2 runs');
    expect((ambiguous as AgentWorkerError).hint).toContain('agent-worker runs');
    const unknown = await resolveRun(root, '2025').catch((error: unknown) => error);
    expect(unknown).toMatchObject({ exitCode: ExitCode.usage });
    expect((unknown as AgentWorkerError).hint).toContain('agent-worker runs');
    await expect(resolveRun(root, 'zzz-not-a-run')).rejects.toMatchObject({ exitCode: ExitCode.usage });
  });

  it('fails with a usage error when there are no runs', async () => {
    await expect(resolveRun(path.join(home, 'missing'))).rejects.toMatchObject({ exitCode: ExitCode.usage });
  });
});

describe('followAgentStream', () => {
  it('delivers every line once, in order, including lines appended later and a line written in two halves', async () => {
    const success = await sample('success');
    const error = await sample('error_max_turns');
    const runId = '20260105-000000-eeeeee';
    const dir = await makeRun(root, runId, { info: makeInfo(runId), stream: success.slice(0, 1) });
    const file = path.join(dir, 'agent.stream.jsonl');
    const split = Math.floor(success[1]!.length / 2);

    const writer = (async () => {
      await delay(60);
      await appendFile(file, success[1]!.slice(0, split));
      await delay(60);
      await appendFile(file, `${success[1]!.slice(split)}\n${success[2]}\n`);
      await delay(60);
      await appendFile(file, error.map((line) => `${line}\n`).join(''));
      await delay(60);
      await writeFile(path.join(dir, 'report.json'), JSON.stringify(makeReport(runId, 'success')));
    })();

    const lines: string[] = [];
    const end = await followAgentStream(dir, { onLine: (line) => void lines.push(line), pollMs: 20 });
    await writer;
    expect(end).toBe('ended');
    expect(lines).toEqual([...success, ...error]);
  });

  it('ends when the run process is gone, delivering a last line without a newline', async () => {
    const runId = '20260104-000000-dddddd';
    const dir = await makeRun(root, runId, { info: makeInfo(runId, { pid: deadPid() }), stream: ['one'] });
    await appendFile(path.join(dir, 'agent.stream.jsonl'), 'two, cut off');
    const lines: string[] = [];
    expect(await followAgentStream(dir, { onLine: (line) => void lines.push(line), pollMs: 20 })).toBe('ended');
    expect(lines).toEqual(['one', 'two, cut off']);
  });

  it('stops when the signal aborts', async () => {
    const runId = '20260105-000000-eeeeee';
    const dir = await makeRun(root, runId, { info: makeInfo(runId), stream: ['one'] });
    const controller = new AbortController();
    setTimeout(() => controller.abort('SIGINT'), 80);
    const lines: string[] = [];
    const started = Date.now();
    expect(await followAgentStream(dir, { onLine: (line) => void lines.push(line), pollMs: 20, signal: controller.signal })).toBe('aborted');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(lines).toEqual(['one']);
  });
});

describe('readableLines', () => {
  it('turns Claude Code stream-json into short readable lines', async () => {
    const toText = readableLines('claude');
    expect((await sample('success')).flatMap(toText)).toEqual([
      'init · claude-sonnet-4-5 · version 2.1.330',
      'turn 1 · 151 tokens',
      '  \u2502 Hello from mock',
      'result: success',
    ]);
    const toText2 = readableLines('claude');
    const lines = (await sample('error_max_turns')).flatMap(toText2);
    expect(lines).toContain('  Bash: echo hi >> out.txt');
    expect(lines.at(-1)).toBe('result: error_max_turns');
  });

  it('escapes control characters and ignores lines that are not stream-json', () => {
    const toText = readableLines('claude');
    expect(toText('not json')).toEqual([]);
    const line = JSON.stringify({
      type: 'assistant',
      message: { id: 'm1', model: 'x', content: [{ type: 'text', text: 'red \u001b[31m alert' }], usage: { input_tokens: 1, output_tokens: 1 } },
      parent_tool_use_id: null,
    });
    const out = toText(line);
    expect(out).toContain('  \u2502 red \\x1b[31m alert');
    // eslint-disable-next-line no-control-regex
    expect(out.join('')).not.toMatch(/\u001b/);
  });
});

describe('runsCommand', () => {
  beforeEach(async () => {
    await makeRun(root, '20260101-000000-aaaaaa', {
      info: makeInfo('20260101-000000-aaaaaa', { project: '/src/project-a', branch: 'fix/login' }),
      report: makeReport('20260101-000000-aaaaaa', 'success', { costUsd: 0.0123, durationMs: 83_000 }),
    });
    await makeRun(root, '20260102-000000-bbbbbb', {
      info: makeInfo('20260102-000000-bbbbbb', { project: path.join(home, 'project-b'), branch: 'feat/x', pid: deadPid() }),
    });
  });

  it('prints an aligned table, newest first', async () => {
    const { io, out, err } = fakeIO(env);
    expect(await runsCommand([], io)).toBe(0);
    const lines = out().trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]!.split(/\s{2,}/)).toEqual(['RUN ID', 'PROJECT', 'BRANCH', 'STATUS', 'COST', 'DURATION', 'STARTED']);
    expect(lines[1]!.split(/\s{2,}/).slice(0, 6)).toEqual(['20260102-000000-bbbbbb', 'project-b', 'feat/x', 'unfinished', '-', '-']);
    expect(lines[2]!.split(/\s{2,}/).slice(0, 6)).toEqual(['20260101-000000-aaaaaa', 'project-a', 'fix/login', 'success', '$0.0123', '1m 23s']);
    // Columns line up: every row's BRANCH starts where the header's does.
    const column = lines[0]!.indexOf('BRANCH');
    expect(lines[1]!.indexOf('feat/x')).toBe(column);
    expect(lines[2]!.indexOf('fix/login')).toBe(column);
    expect(err()).toBe('');
  });

  it('prints one JSON array with --json, honouring --limit and --project', async () => {
    const all = fakeIO(env);
    expect(await runsCommand(['--json', '--limit', '1'], all.io)).toBe(0);
    const runs = JSON.parse(all.out()) as Array<{ runId: string; status: string }>;
    expect(runs.map((run) => [run.runId, run.status])).toEqual([['20260102-000000-bbbbbb', 'unfinished']]);

    const filtered = fakeIO(env);
    expect(await runsCommand(['--json', '--project', '/src/project-a'], filtered.io)).toBe(0);
    expect((JSON.parse(filtered.out()) as Array<{ runId: string }>).map((run) => run.runId)).toEqual(['20260101-000000-aaaaaa']);
  });

  it('rejects a bad --limit with exit 2 and a message on stderr', async () => {
    const { io, out, err } = fakeIO(env);
    expect(await runsCommand(['--limit', 'many'], io)).toBe(ExitCode.usage);
    expect(out()).toBe('');
    expect(err()).toMatch(/^agent-worker: --limit must be .*\n {2}For example/);
  });

  it('says so when there are no runs', async () => {
    const { io, out } = fakeIO({ XDG_STATE_HOME: path.join(home, 'empty') });
    expect(await runsCommand([], io)).toBe(0);
    expect(out()).toMatch(/^No runs in /);
  });
});

describe('logsCommand', () => {
  const finished = '20260101-000000-aaaaaa';
  const running = '20260102-000000-bbbbbb';
  let report: RunReport;
  let success: string[];

  beforeEach(async () => {
    success = await sample('success');
    report = makeReport(finished, 'success');
    await makeRun(root, finished, { info: makeInfo(finished, { pid: deadPid() }), report, stream: success });
    await makeRun(root, running, { info: makeInfo(running), stream: success.slice(0, 2) });
  });

  it('prints the report table of a finished run, or its JSON', async () => {
    const table = fakeIO(env);
    expect(await logsCommand(['20260101'], table.io)).toBe(0);
    expect(table.out()).toBe(renderReportTable(report, { color: false }));
    const json = fakeIO(env);
    expect(await logsCommand([finished, '--json'], json.io)).toBe(0);
    expect(json.out()).toBe(renderReportJson(report));
  });

  it('prints the readable agent stream with --stream', async () => {
    const { io, out } = fakeIO(env);
    expect(await logsCommand([finished, '--stream'], io)).toBe(0);
    expect(out()).toBe('init · claude-sonnet-4-5 · version 2.1.330\nturn 1 · 151 tokens\n  \u2502 Hello from mock\nresult: success\n');
  });

  it('prints the stream so far and a note on stderr for a run without a report (the newest by default)', async () => {
    const { io, out, err } = fakeIO(env);
    expect(await logsCommand([], io)).toBe(0);
    expect(out()).toBe('init · claude-sonnet-4-5 · version 2.1.330\nturn 1 · 151 tokens\n  \u2502 Hello from mock\n');
    expect(err()).toContain(`agent-worker: Run ${running} is still running`);
    expect(err()).toContain(`agent-worker logs ${running} -f`);
  });

  it('with -f follows a running run until its report appears, then prints the report', async () => {
    const { io, out } = fakeIO(env);
    const runningReport = makeReport(running, 'agent_error');
    const writer = (async () => {
      await delay(300);
      await appendFile(path.join(root, running, 'agent.stream.jsonl'), `${success[2]}\n`);
      await delay(300);
      await writeFile(path.join(root, running, 'report.json'), JSON.stringify(runningReport));
    })();
    expect(await logsCommand([running, '-f'], io)).toBe(0);
    await writer;
    expect(out()).toBe(
      `init · claude-sonnet-4-5 · version 2.1.330\nturn 1 · 151 tokens\n  \u2502 Hello from mock\nresult: success\n\n${renderReportTable(runningReport, { color: false })}`,
    );
  });

  it('with -f stops on the signal and returns 128 + its number', async () => {
    const controller = new AbortController();
    const { io, out } = fakeIO(env, controller.signal);
    setTimeout(() => controller.abort('SIGINT'), 300);
    expect(await logsCommand([running, '--follow'], io)).toBe(ExitCode.sigint);
    expect(out()).toContain('turn 1 · 151 tokens');
  });

  it('reports an unknown id on stderr with a hint, exit 2', async () => {
    const { io, out, err } = fakeIO(env);
    expect(await logsCommand(['1999'], io)).toBe(ExitCode.usage);
    expect(out()).toBe('');
    expect(err()).toBe(`agent-worker: No run "1999" in ${root}.\n  Run \`agent-worker runs\` to list the runs and their ids.\n`);
  });

  it("without an id inside a repository shows that repository's newest run, not a newer one elsewhere", async () => {
    const repo = await realpath(await mkdtemp(path.join(home, 'repo-')));
    spawnSync('git', ['init', '--quiet'], { cwd: repo });
    const ours = '20251231-000000-cccccc';
    await makeRun(root, ours, { info: makeInfo(ours, { project: repo, pid: deadPid() }), report: makeReport(ours, 'success') });
    await mkdir(path.join(repo, 'src'));
    const inside = fakeIO(env, undefined, path.join(repo, 'src'));
    expect(await logsCommand(['--json'], inside.io)).toBe(0);
    expect((JSON.parse(inside.out()) as RunReport).runId).toBe(ours);
    // Outside any repository: the newest run of all.
    const outside = fakeIO(env);
    expect(await logsCommand(['--stream'], outside.io)).toBe(0);
    expect(outside.out()).toContain('init · claude-sonnet-4-5');
    // A repository with no runs says so instead of showing another repository's run.
    const other = await realpath(await mkdtemp(path.join(home, 'other-')));
    spawnSync('git', ['init', '--quiet'], { cwd: other });
    const none = fakeIO(env, undefined, other);
    expect(await logsCommand([], none.io)).toBe(ExitCode.usage);
    expect(none.err()).toContain(`There are no runs of ${other} in ${root}.`);
  });

  it('--json without a report is an error; --json with --stream is refused', async () => {
    const json = fakeIO(env);
    expect(await logsCommand([running, '--json'], json.io)).toBe(ExitCode.usage);
    expect(json.out()).toBe('');
    expect(json.err()).toContain('still running');
    const both = fakeIO(env);
    expect(await logsCommand(['--json', '--stream'], both.io)).toBe(ExitCode.usage);
    expect(both.err()).toContain('cannot be used with');
  });
});

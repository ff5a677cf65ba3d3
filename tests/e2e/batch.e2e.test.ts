/**
 * `agent-worker batch` end to end: the built CLI (and the built library), a real dockerd, the real agent CLIs in
 * their images, scripted model APIs on the Docker bridge gateway. Several repositories and agents in one batch;
 * two tasks on one repository; one image build shared by many runs; a bad task file; --retries with a daemon fault
 * injected for one task; --resume; Ctrl-C mid-batch; the API used from a script.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { startFakeAnthropic, type FakeAnthropic } from '../fixtures/fake-anthropic.js';
import { startFakeOpenAIResponses } from '../fixtures/fake-openai-responses.js';
import { ensureToolImage, numstat, servedTokens, TEST_API_KEY, waitFor } from '../helpers/agent-run.js';
import { bridgeGateway, dockerAvailable, managedContainers, projectContainers, runCli, startCli, TEST_CA_CERT, type CliResult } from '../helpers/docker.js';
import { startFaultyDaemon } from '../helpers/faulty-daemon.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';
import { codexPlugin } from '../../agents/codex/index.js';
import type { BatchReport } from '../../src/batch/types.js';

const hasDocker = await dockerAvailable();
const OPENAI_KEY = 'sk-proj-e2e0123456789abcdefghijklmnopqrstuvwx';
const ROOT = path.resolve(import.meta.dirname, '../..');

const cleanup: string[] = [];
let stateDir: string;
let gateway: string;

beforeAll(async () => {
  if (!hasDocker) return;
  stateDir = tempDir('aw-batch-state-');
  cleanup.push(stateDir);
  gateway = await bridgeGateway();
  await ensureToolImage();
});

afterAll(() => {
  for (const dir of cleanup) removeDir(dir);
});

/** A repository of its own for a task, removed after the suite. */
function repo(files: Record<string, string> = { 'README.md': '# demo\n', 'notes.txt': 'one\ntwo\n' }): string {
  const dir = makeRepo(files);
  cleanup.push(dir);
  return dir;
}

/** Writes a task file into a folder of its own; returns its path. */
function taskFile(name: string, text: string): string {
  const dir = tempDir('aw-batch-file-');
  cleanup.push(dir);
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** Runs `agent-worker batch <file> --json …` with the test CA and the keys of both dialects. */
function runBatch(file: string, extra: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(['batch', file, '--ca-cert', TEST_CA_CERT, '--json', ...extra], {
    cwd: path.dirname(file),
    env: { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: TEST_API_KEY, OPENAI_API_KEY: OPENAI_KEY, ...env },
    timeoutMs: 900_000,
  });
}

function parseBatch(result: CliResult): BatchReport {
  expect(result.stdout.trim().startsWith('{'), `stdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(true);
  return JSON.parse(result.stdout) as BatchReport;
}

/** Claude Code's script: write a file, then edit notes.txt. */
const CLAUDE_SCRIPT: ScriptedTurn[] = [
  { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/added.txt', content: 'a\nb\nc\n' } }], usage: { input: 900, output: 40, cacheRead: 100, cacheWrite: 50 } },
  { content: [{ type: 'tool_use', name: 'Edit', input: { file_path: '/workspace/notes.txt', old_string: 'two\n', new_string: 'TWO\n' } }], usage: { input: 1000, output: 30, cacheRead: 200, cacheWrite: 10 } },
];

async function withClaude<T>(script: ScriptedTurn[], body: (api: FakeAnthropic) => Promise<T>): Promise<T> {
  const api = await startFakeAnthropic({ host: gateway, script, expectedKey: TEST_API_KEY });
  try {
    return await body(api);
  } finally {
    await api.close();
  }
}

/** Nothing any of the batch's runs created is left on the daemon. */
async function expectNothingLeft(repos: string[], report: BatchReport): Promise<void> {
  for (const dir of repos) expect(await projectContainers(dir)).toEqual([]);
  for (const run of report.runs) expect(await managedContainers(run.runId)).toEqual([]);
}

describe.runIf(hasDocker)('agent-worker batch (real agents, scripted APIs)', { timeout: 1_800_000 }, () => {
  it('runs tasks over several repositories and agents in parallel: every branch right, two tasks on one repository one after the other from the same base, one image build shared, totals add up, repositories back on their branch, report.html written', async () => {
    await ensureToolImage(codexPlugin);
    const [a, b, c] = [repo(), repo(), repo()];
    const base = { a: git(a, 'rev-parse', 'HEAD').trim(), b: git(b, 'rev-parse', 'HEAD').trim(), c: git(c, 'rev-parse', 'HEAD').trim() };
    // A project Dockerfile no image was built from yet: the first run of each agent builds it, the others share it.
    const marker = randomBytes(6).toString('hex');
    const dockerfile = path.join(tempDir('aw-batch-df-'), 'Dockerfile');
    cleanup.push(path.dirname(dockerfile));
    writeFileSync(dockerfile, `ARG AGENT_WORKER_IMAGE\nFROM \${AGENT_WORKER_IMAGE}\nRUN echo ${marker} > /tmp/batch-marker\n`);
    await withClaude(CLAUDE_SCRIPT, async (claude) => {
      const codex = await startFakeOpenAIResponses({
        host: gateway,
        expectedKey: OPENAI_KEY,
        script: [
          { content: [{ type: 'tool_call', name: 'exec_command', input: { cmd: "printf 'x\\ny\\n' > codex.txt", workdir: '/workspace' } }], usage: { input: 500, output: 20, cacheRead: 100 } },
          { content: [{ type: 'text', text: 'Done.' }], usage: { input: 100, output: 5, cacheRead: 600 } },
        ],
      });
      try {
        const file = taskFile(
          'tasks.yaml',
          [
            'defaults:',
            `  baseUrl: http://host.docker.internal:${claude.port}`,
            `  dockerfile: ${dockerfile}`,
            'tasks:',
            `  - { project: ${a}, task: First task on A, branch: a1 }`,
            `  - { project: ${a}, task: Second task on A, branch: a2 }`,
            `  - { project: ${b}, task: The task on B, branch: b1, workspace: copy }`,
            `  - project: ${c}`,
            '    task: The codex task on C',
            '    branch: c1',
            '    agent-type: codex',
            '    model: mock',
            `    baseUrl: http://host.docker.internal:${codex.port}/v1`,
            '',
          ].join('\n'),
        );
        const result = await runBatch(file, ['--parallel', '3']);
        expect(result.code, result.stderr).toBe(0);
        const report = parseBatch(result);

        expect(report.tasks.map((task) => [task.task.branch, task.status, task.attempts])).toEqual([
          ['a1', 'success', 1],
          ['a2', 'success', 1],
          ['b1', 'success', 1],
          ['c1', 'success', 1],
        ]);
        expect(report.runs.map((run) => run.agent.type)).toEqual(['claude', 'claude', 'claude', 'codex']);
        // Each branch holds exactly its task's changes, from the commit HEAD was at when the batch started.
        for (const [dir, branch, commit] of [[a, 'a1', base.a], [a, 'a2', base.a], [b, 'b1', base.b]] as const) {
          expect(numstat(dir, commit, branch)).toEqual({ 'added.txt': [3, 0], 'notes.txt': [1, 1] });
          expect(git(dir, 'rev-parse', `${branch}~1`).trim()).toBe(commit);
        }
        expect(numstat(c, base.c, 'c1')).toEqual({ 'codex.txt': [2, 0] });
        for (const run of report.runs) expect(run.baseCommit).toBe(run.branch === 'c1' ? base.c : run.branch === 'b1' ? base.b : base.a);
        // Two runs on one work tree never overlap.
        const [t1, t2] = report.tasks;
        expect(Date.parse(t2!.startedAt!)).toBeGreaterThanOrEqual(Date.parse(t1!.endedAt!));
        // One build per image, however many runs use it.
        const byTag = new Map<string, boolean[]>();
        for (const run of report.runs) byTag.set(run.image.tag, [...(byTag.get(run.image.tag) ?? []), run.image.built]);
        expect([...byTag.values()].map((built) => built.filter(Boolean).length)).toEqual([1, 1]);
        expect([...byTag.values()].map((built) => built.length).sort()).toEqual([1, 3]);
        // The totals are the sums of the runs, and the tokens what the servers served.
        const sum = (pick: (run: BatchReport['runs'][number]) => number): number => report.runs.reduce((total, run) => total + pick(run), 0);
        expect(report.totals.runs).toBe(4);
        expect(report.totals.byStatus).toEqual({ success: 4 });
        expect(report.totals.costUsd).toBeCloseTo(sum((run) => run.costUsd ?? 0), 6);
        expect(report.totals.costUsd).toBeGreaterThan(0);
        expect(report.totals.linesAdded).toBe(sum((run) => run.changes.linesAdded));
        expect(report.totals.linesAdded).toBe(3 * 4 + 2);
        expect(report.totals.linesRemoved).toBe(3);
        expect(report.totals.tokens.total).toBe(sum((run) => run.tokens!.total));
        const claudeRuns = report.runs.filter((run) => run.agent.type === 'claude');
        expect(claudeRuns.reduce((total, run) => total + run.tokens!.input, 0)).toBe(servedTokens(claude)!.input);
        expect(claudeRuns.reduce((total, run) => total + run.tokens!.output, 0)).toBe(servedTokens(claude)!.output);
        for (const run of report.runs) {
          expect(run.resources?.cpuSeconds).toBeGreaterThan(0);
          expect(run.resources?.peakMemoryBytes).toBeGreaterThan(1024 * 1024);
        }
        expect(report.totals.resources.cpuSeconds).toBeCloseTo(sum((run) => run.resources!.cpuSeconds!), 6);
        // Every repository is back on the branch it was on, clean.
        for (const dir of [a, b, c]) {
          expect(git(dir, 'rev-parse', '--abbrev-ref', 'HEAD').trim()).toBe('main');
          expect(git(dir, 'status', '--porcelain', '--untracked-files=all')).toBe('');
        }
        expect(existsSync(path.join(report.logDir, 'report.html'))).toBe(true);
        expect(JSON.parse(readFileSync(path.join(report.logDir, 'report.json'), 'utf8'))).toEqual(report);
        await expectNothingLeft([a, b, c], report);
      } finally {
        await codex.close();
      }
    });
  });

  it('refuses an invalid task file before anything starts, every problem with its line', async () => {
    const a = repo();
    const parseProblems = taskFile('bad.yaml', ['tasks:', `  - project: ${a}`, '    task: fine', '    agentTyp: claude', '  - project: ${a}', '    timeout: [1, 2]', ''].join('\n'));
    const first = await runBatch(parseProblems, []);
    expect(first.code).toBe(2);
    expect(first.stdout).toBe('');
    expect(first.stderr).toMatch(/bad\.yaml:4: .*agentTyp.*agentType/);
    expect(first.stderr).toMatch(/bad\.yaml:6: .*timeout/);

    const dirty = repo();
    writeFileSync(path.join(dirty, 'notes.txt'), 'changed\n');
    const notARepo = tempDir('aw-not-a-repo-');
    cleanup.push(notARepo);
    const runProblems = taskFile(
      'bad.jsonl',
      [
        JSON.stringify({ project: a, task: 'ok', branch: 'fine' }),
        JSON.stringify({ project: notARepo, task: 'x' }),
        JSON.stringify({ project: dirty, task: 'x' }),
        JSON.stringify({ project: a, task: 'x', branch: 'bad..name' }),
        JSON.stringify({ project: a, task: 'x', base: 'no-such-ref' }),
        '',
      ].join('\n'),
    );
    const second = await runBatch(runProblems, []);
    expect(second.code, second.stderr).toBe(2);
    expect(second.stderr).toMatch(/bad\.jsonl:2: task 2: .*not inside a git/i);
    expect(second.stderr).toMatch(/bad\.jsonl:3: task 3: .*uncommitted/i);
    expect(second.stderr).toMatch(/bad\.jsonl:4: task 4: .*bad\.\.name/);
    expect(second.stderr).toMatch(/bad\.jsonl:5: task 5: .*no-such-ref/);
    // Nothing started: no branch was created, the first (valid) task included.
    expect(git(a, 'branch', '--list').trim()).toBe('* main');
  });

  it('--retries runs a task whose daemon failed again (and succeeds), never a task whose agent failed; --resume then skips what succeeded and runs the rest on a new branch', async () => {
    const daemon = await startFaultyDaemon({ failures: 1 });
    const failing: ScriptedTurn[] = [{ ...CLAUDE_SCRIPT[0]!, error: { status: 400, type: 'invalid_request_error', message: 'scripted refusal' } }, CLAUDE_SCRIPT[1]!];
    try {
      await withClaude(failing, async (bad) => {
        await withClaude(CLAUDE_SCRIPT, async (good) => {
          const [ok, flaky, broken] = [repo(), repo(), repo()];
          const file = taskFile(
            'tasks.jsonl',
            [
              JSON.stringify({ defaults: { baseUrl: `http://host.docker.internal:${good.port}` } }),
              JSON.stringify({ project: ok, task: 'fine', branch: 'ok' }),
              JSON.stringify({ project: flaky, task: 'daemon fails once', branch: 'flaky', remoteDocker: daemon.url }),
              JSON.stringify({ project: broken, task: 'agent fails', branch: 'broken', baseUrl: `http://host.docker.internal:${bad.port}` }),
              '',
            ].join('\n'),
          );
          const result = await runBatch(file, ['--parallel', '2', '--retries', '2']);
          expect(result.code, result.stderr).toBe(16);
          const report = parseBatch(result);
          expect(report.tasks.map((task) => [task.task.branch, task.status, task.attempts])).toEqual([
            ['ok', 'success', 1],
            ['flaky', 'success', 2],
            ['broken', 'agent_error', 1],
          ]);
          expect(daemon.refused()).toBe(1);
          expect(numstat(flaky, git(flaky, 'rev-parse', 'main').trim(), 'flaky')).toEqual({ 'added.txt': [3, 0], 'notes.txt': [1, 1] });
          expect(result.stderr).toMatch(/flaky.*(retry|again)/i);

          // The model API works now: --resume runs only the failed task, on a branch of its own (the failed run's
          // partial work stays on "broken").
          delete failing[0]!.error;
          const resumed = await runBatch(file, ['--parallel', '2', '--resume', report.batchId]);
          expect(resumed.code, resumed.stderr).toBe(0);
          const again = parseBatch(resumed);
          expect(again.batchId).toBe(report.batchId);
          expect(again.tasks.map((task) => [task.task.branch, task.status, task.attempts, task.resumed])).toEqual([
            ['ok', 'success', 0, true],
            ['flaky', 'success', 0, true],
            ['broken-attempt2', 'success', 1, false],
          ]);
          expect(again.runs.map((run) => run.runId).slice(0, 2)).toEqual(report.runs.map((run) => run.runId).slice(0, 2));
          expect(git(broken, 'branch', '--list', 'broken').trim()).toBe('broken');
          expect(numstat(broken, git(broken, 'rev-parse', 'main').trim(), 'broken-attempt2')).toEqual({ 'added.txt': [3, 0], 'notes.txt': [1, 1] });
          expect(again.totals.runs).toBe(3);
          await expectNothingLeft([ok, flaky, broken], again);
        });
      });
    } finally {
      await daemon.close();
    }
  });

  it('Ctrl-C mid-batch stops the running task the way a single run stops (work committed, containers removed), starts no other, prints the rollup, exit 130', async () => {
    const stalled: ScriptedTurn[] = [CLAUDE_SCRIPT[0]!, { content: [{ type: 'text', text: 'thinking' }], usage: { input: 1, output: 1 }, stall: true }];
    await withClaude(stalled, async (api) => {
      const [first, second, third] = [repo(), repo(), repo()];
      const file = taskFile(
        'tasks.yaml',
        [`- { project: ${first}, task: one, branch: one, baseUrl: "http://host.docker.internal:${api.port}" }`, `- { project: ${second}, task: two, branch: two }`, `- { project: ${third}, task: three, branch: three }`, ''].join('\n'),
      );
      const live = startCli(['batch', file, '--ca-cert', TEST_CA_CERT, '--json', '--parallel', '1', '--base-url', `http://host.docker.internal:${api.port}`], {
        cwd: path.dirname(file),
        env: { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: TEST_API_KEY },
      });
      // The agent wrote its file and now waits on the stalled turn.
      await waitFor(() => api.requests.some((request) => request.kind === 'turn' && request.turn === 1), 'the stalled turn');
      process.kill(live.pid, 'SIGINT');
      const result = await live.done;
      expect(result.code, result.stderr).toBe(130);
      const report = parseBatch(result);
      expect(report.interrupted).toBe(true);
      expect(report.tasks.map((task) => task.status)).toEqual(['interrupted', 'not_run', 'not_run']);
      expect(report.runs).toHaveLength(1);
      expect(git(first, 'show', 'one:added.txt')).toBe('a\nb\nc\n');
      for (const dir of [second, third]) expect(git(dir, 'branch', '--list').trim()).toBe('* main');
      expect(git(first, 'rev-parse', '--abbrev-ref', 'HEAD').trim()).toBe('main');
      await expectNothingLeft([first, second, third], report);
    });
  });

  it('the library: a script imports runBatch, runs three tasks and sums their cost; events arrive typed', async () => {
    await withClaude(CLAUDE_SCRIPT, async (api) => {
      const repos = [repo(), repo(), repo()];
      const dir = tempDir('aw-batch-api-');
      cleanup.push(dir);
      const script = path.join(dir, 'three.mjs');
      writeFileSync(
        script,
        [
          `import { runBatch } from ${JSON.stringify(path.join(ROOT, 'dist/src/index.js'))};`,
          'const events = [];',
          `const report = await runBatch(${JSON.stringify(repos.map((project, i) => ({ project, task: `task ${i}`, branch: `api-${i}` })))}, {`,
          `  defaults: { baseUrl: 'http://host.docker.internal:${api.port}', caCert: ${JSON.stringify(TEST_CA_CERT)} },`,
          '  parallel: 3,',
          '  on: (event) => events.push(event.type),',
          '});',
          'const cost = report.runs.reduce((sum, run) => sum + (run.costUsd ?? 0), 0);',
          'console.log(JSON.stringify({ cost, total: report.totals.costUsd, statuses: report.tasks.map((t) => t.status), finished: events.filter((e) => e === "task-finished").length }));',
        ].join('\n'),
      );
      // Asynchronously: the scripted API answers from this process.
      const { stdout: out } = await promisify(execFile)(process.execPath, [script], { cwd: dir, env: { PATH: process.env.PATH, HOME: process.env.HOME, XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: TEST_API_KEY }, encoding: 'utf8', timeout: 600_000 });
      const parsed = JSON.parse(out.trim().split('\n').pop()!) as { cost: number; total: number; statuses: string[]; finished: number };
      expect(parsed.statuses).toEqual(['success', 'success', 'success']);
      expect(parsed.finished).toBe(3);
      expect(parsed.cost).toBeGreaterThan(0);
      expect(parsed.total).toBeCloseTo(parsed.cost, 6);
      for (const [i, project] of repos.entries()) expect(numstat(project, git(project, 'rev-parse', 'main').trim(), `api-${i}`)).toEqual({ 'added.txt': [3, 0], 'notes.txt': [1, 1] });
    });
  });
});

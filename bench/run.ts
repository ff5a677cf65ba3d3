/**
 * Benchmark (not a test): `npm run bench`. Measures each figure of issue #6 as a ratio against a baseline
 * measured in the same invocation (several repetitions, the median reported), prints a table on stdout and
 * writes bench/results.json with the raw samples. Progress goes to stderr.
 *
 * | figure               | ours                                                   | baseline                                      | target  |
 * | warm-run overhead    | tool wall time − the agent process's (`agent.wallMs`)   | `docker run --rm --entrypoint true IMAGE` + `git branch` | ≤ 1.5   |
 * | warm vs cold         | warm run, image cached                                  | the same run with `--force-rebuild`            | ≤ 0.05  |
 * | start-up             | `agent-worker --version`                                | `node -e 0`                                    | ≤ 2.0   |
 * | memory under output  | peak RSS with 200 MB of agent output (200 × 1 MB lines) | peak RSS with 1 MB (one 1 MB line)             | ≤ 1.2   |
 *   (medians of BENCH_MEMORY_REPS runs of each, interleaved)
 * | cache check          | 2nd+ `ensureImage` of a 50 MB project image context     | (absolute)                                     | ≤ 50 ms |
 * | report on a big diff | `diffChanges` of 10,000 changed files                   | `git diff --numstat -z` alone                  | ≤ 1.3   |
 * | proxy latency        | first SSE byte through the egress proxy                 | the same request straight to the server        | ≤ 5 ms added |
 * | batch wall time      | `batch` of 8 four-turn tasks on 8 repositories, --parallel 4 | 2 × one warm run's wall time              | ≤ 1.3   |
 * | batch overhead       | per task in that batch: report durationMs − agent.wallMs, mean | the warm figure's baseline (docker run + git branch) | ≤ 1.2 |
 * | batch memory         | the batch process's peak RSS                            | one warm run's peak RSS                        | ≤ 2.0   |
 * | swarm overhead       | a warm run with --backend swarm: wall − agent.wallMs     | the same run on the local daemon (--workspace copy) | ≤ 2.0 |
 * | swarm spread         | `batch` of 6 tasks on a swarm of two workers            | the same batch placed on one worker            | ≤ 0.6   |
 *   (the swarm: docker-in-docker nodes on the local engine and a registry, tests/helpers/swarm.ts)
 *
 * The model API is the scripted fixture of the e2e tests (tests/fixtures/fake-anthropic.ts), so the figures
 * measure the tool, not a model. The CLI under test is the built `dist/src/cli.js` (`npm run bench` builds it).
 *
 * Environment: BENCH_REPS (warm runs and diff/cache repetitions, default 5), BENCH_MEMORY_REPS (runs of
 * each size for the memory figure, default 3), BENCH_TIMELINE=1 (print each warm run's debug timeline),
 * BENCH_ONLY (comma-separated figure ids to run: warm,cold,startup,memory,cache,diff,proxy,batch,swarm; default all),
 * BENCH_SWARM_BATCH=0 (the swarm's single runs only, not its two batches),
 * AGENT_WORKER_TEST_CA_CERT (CA bundle for the image, default /etc/ssl/certs/ca-certificates.crt, as the
 * tests use).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { startFakeAnthropic, type ScriptedTurn } from '../tests/fixtures/fake-anthropic.js';
import { bridgeGateway, CLI, CLI_NODE_FLAGS, runCli, TEST_CA_CERT, type CliResult } from '../tests/helpers/docker.js';
import { git, makeRepo, removeDir, tempDir, writeFiles } from '../tests/helpers/git.js';
import { connectDocker } from '../src/docker/client.js';
import { ensureImage, type ImageSpec } from '../src/docker/image.js';
import { diffChanges, openRepo } from '../src/git/repo.js';
import { startEgressProxy } from '../src/proxy/egress-proxy.js';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import type { RunReport } from '../src/report/types.js';
import type { BatchReport } from '../src/batch/types.js';
import { startSwarm, WORKER_INDEX_LABEL, type Swarm } from '../tests/helpers/swarm.js';

const REPS = Number(process.env.BENCH_REPS ?? 5);
const STARTUP_REPS = 20;
/** Runs of each size for the memory figure (a 200 MB run takes ~15 s). */
const MEMORY_REPS = Number(process.env.BENCH_MEMORY_REPS ?? 3);
/** Print each warm run's debug timeline (the CLI runs with DEBUG=agent-worker:*, which costs a little). */
const TIMELINE = process.env.BENCH_TIMELINE === '1';
const ONLY = new Set((process.env.BENCH_ONLY ?? 'warm,cold,startup,memory,cache,diff,proxy,batch,swarm').split(',').map((id) => id.trim()));
const API_KEY = 'sk-ant-bench-0123456789abcdef';
const RESULTS_FILE = path.join(import.meta.dirname, 'results.json');
const FLOOR_SCRIPT = path.join(import.meta.dirname, 'node-floor.mjs');

/** One row of the table, and its raw data in results.json. */
interface Figure {
  id: string;
  figure: string;
  /** Median of ours, in `unit`. */
  ours: number;
  /** Median of the baseline, in `unit`; undefined for an absolute target. */
  baseline?: number;
  unit: 'ms' | 'MiB';
  /** ours ÷ baseline (or ours itself for an absolute target). */
  ratio: number;
  /** Pass when ratio ≤ target. */
  target: number;
  targetText: string;
  /** Raw values, in `unit`; `floor`: the warm figure's bare-node floor (context, not part of the ratio). */
  samples: { ours: number[]; baseline?: number[]; floor?: number[] };
  note?: string;
}

const figures: Figure[] = [];
const scratch: string[] = [];

function progress(text: string): void {
  process.stderr.write(`[bench] ${text}\n`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function timeSync(body: () => void): number {
  const started = performance.now();
  body();
  return performance.now() - started;
}

function addFigure(figure: Omit<Figure, 'ratio'> & { ratio?: number }): void {
  const ratio = figure.ratio ?? (figure.baseline === undefined ? figure.ours : figure.ours / figure.baseline);
  figures.push({ ...figure, ratio });
  progress(`${figure.figure}: ours ${round(figure.ours)} ${figure.unit}${figure.baseline === undefined ? '' : `, baseline ${round(figure.baseline)} ${figure.unit}`} → ${round(ratio, 3)} (target ${figure.targetText})`);
}

// ---------------------------------------------------------------------------------------------------------
// Agent runs through the built CLI and the scripted fixture (what tests/helpers/agent-run.ts does; that module
// imports vitest's `expect`, which cannot load outside the test runner).

interface AgentRun {
  result: CliResult;
  report: RunReport;
  /** Wall time of the CLI process, spawn to exit, ms. */
  wallMs: number;
  /** When the CLI was spawned, ms since the epoch (for {@link timeline}). */
  spawnedAt: number;
}

/**
 * One run of the built CLI on `repo` against a scripted API serving `script` (on the bridge gateway). `apiHost` is the
 * API's host as the agent's container reaches it: host.docker.internal on the local daemon; the gateway's IP from a
 * swarm task.
 * @throws Error when the CLI does not exit 0 with a JSON report.
 */
async function runAgent(repo: string, script: ScriptedTurn[], extra: string[], env: Record<string, string> = {}, apiHost = 'host.docker.internal'): Promise<AgentRun> {
  const fixture = await startFakeAnthropic({ host: await bridgeGateway(), script });
  try {
    const stateDir = tempDir('aw-bench-state-');
    scratch.push(stateDir);
    const started = performance.now();
    const spawnedAt = Date.now();
    const result = await runCli(['--project', repo, '--base-url', `http://${apiHost}:${fixture.port}`, '--ca-cert', TEST_CA_CERT, '--json', ...extra], {
      cwd: repo,
      env: { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: API_KEY, ...env },
      timeoutMs: 900_000,
    });
    const wallMs = performance.now() - started;
    if (result.code !== 0 || !result.stdout.trim().startsWith('{')) {
      throw new Error(`agent-worker exited ${result.code} (${result.signal ?? 'no signal'}):\n${result.stderr.slice(-3000)}\n${failureDetail(result.stdout)}`);
    }
    return { result, report: JSON.parse(result.stdout) as RunReport, wallMs, spawnedAt };
  } finally {
    await fixture.close();
  }
}

/**
 * BENCH_TIMELINE=1: the CLI's debug lines (`DEBUG=agent-worker:*`, timestamped when stderr is not a
 * terminal) as milliseconds since the CLI was spawned, so a warm run's overhead can be taken apart.
 */
function timeline(stderr: string, spawnedAt: number): string {
  const lines: string[] = [];
  let previous = spawnedAt;
  for (const line of stderr.split('\n')) {
    const match = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) (.*)$/.exec(line);
    if (!match) continue;
    const at = Date.parse(match[1]!);
    lines.push(`  ${String(at - spawnedAt).padStart(6)} ms  +${String(at - previous).padStart(5)}  ${match[2]!.slice(0, 110)}`);
    previous = at;
  }
  return lines.join('\n');
}

/** What a failed run's report and logs say (status, the agent's stderr tail, the stream's last line), for the error. */
function failureDetail(stdout: string): string {
  try {
    const report = JSON.parse(stdout) as RunReport;
    const tail = (file: string, bytes: number): string => {
      const fd = openSync(path.join(report.logDir, file), 'r');
      try {
        const size = fstatSync(fd).size;
        const buffer = Buffer.alloc(Math.min(bytes, size));
        readSync(fd, buffer, 0, buffer.length, size - buffer.length);
        return `(${size} bytes) …${buffer.toString('utf8')}`;
      } finally {
        closeSync(fd);
      }
    };
    return `status ${report.status}, exit code ${report.agent.exitCode}\nagent.stderr.log: ${tail('agent.stderr.log', 2000)}\nagent.stream.jsonl (end): ${tail('agent.stream.jsonl', 1000)}`;
  } catch (error) {
    return `(no report: ${String(error)})`;
  }
}

/** Peak RSS the tool wrote as the last line of agent-worker.log (`peak RSS <N> MiB`). */
function peakRssMiB(logDir: string): number {
  const lines = readFileSync(path.join(logDir, 'agent-worker.log'), 'utf8').trim().split('\n');
  const match = /peak RSS (\d+) MiB$/.exec(lines[lines.length - 1] ?? '');
  if (!match) throw new Error(`agent-worker.log does not end in "peak RSS N MiB": ${lines[lines.length - 1]}`);
  return Number(match[1]);
}

/** Longest line of a file, bytes (without reading it as one string). */
function longestLine(file: string): number {
  const bytes = readFileSync(file);
  let longest = 0;
  for (let start = 0; start < bytes.length; ) {
    const newline = bytes.indexOf(0x0a, start);
    const end = newline === -1 ? bytes.length : newline;
    longest = Math.max(longest, end - start);
    start = end + 1;
  }
  return longest;
}

/** The e2e suite's 4-turn task: write, read, edit, bash; then the fixture's final answer. */
function fourTurnScript(): ScriptedTurn[] {
  return [
    {
      content: [
        { type: 'text', text: 'Creating the new module.' },
        { type: 'tool_use', name: 'Write', input: { file_path: '/workspace/src/new.ts', content: 'export const answer = 42;\n' } },
      ],
      usage: { input: 1200, output: 80, cacheRead: 300, cacheWrite: 150 },
    },
    { content: [{ type: 'tool_use', name: 'Read', input: { file_path: '/workspace/src/keep.txt' } }], usage: { input: 1400, output: 40 } },
    {
      content: [{ type: 'tool_use', name: 'Edit', input: { file_path: '/workspace/src/keep.txt', old_string: 'line2\n', new_string: 'line two\n' } }],
      usage: { input: 1600, output: 60 },
    },
    { content: [{ type: 'tool_use', name: 'Bash', input: { command: 'rm old.txt', description: 'Delete old.txt' } }], usage: { input: 1800, output: 30 } },
  ];
}

function fourTurnRepo(): string {
  const repo = makeRepo({ 'README.md': '# bench\n', 'src/keep.txt': 'line1\nline2\nline3\n', 'old.txt': 'to be deleted\n' });
  scratch.push(repo);
  return repo;
}

// ---------------------------------------------------------------------------------------------------------

/** What the warm runs measured, for the batch figures' baselines. */
const warmRuns: { wallMs: number[]; peakRssMiB: number[]; baselineMs: number[] } = { wallMs: [], peakRssMiB: [], baselineMs: [] };

/** warm-run overhead and (with `cold`) warm vs cold. */
async function benchWarmAndCold(): Promise<void> {
  const overhead: number[] = [];
  const warmWall: number[] = [];
  const agentMs: number[] = [];
  const baseline: number[] = [];
  const floor: number[] = [];
  let tag = '';
  if (ONLY.has('warm') || ONLY.has('cold')) {
    // One unmeasured run first: makes sure the image exists and warms the page cache and the daemon.
    progress('warm-up run (builds the image if it is missing)');
    tag = (await runAgent(fourTurnRepo(), fourTurnScript(), ['--branch', 'bench-warmup', '--task', 'warm up'])).report.image.tag;
  }
  if (ONLY.has('warm')) {
    for (let rep = 0; rep < REPS; rep += 1) {
      const repo = fourTurnRepo();
      const run = await runAgent(repo, fourTurnScript(), ['--branch', `bench-warm-${rep}`, '--task', 'Add the answer module, reword line2, delete old.txt'], TIMELINE ? { DEBUG: 'agent-worker:*' } : {});
      if (run.report.image.built) throw new Error('the warm run built the image');
      // The agent process's own wall time, start to exit, as the report gives it (agent.wallMs).
      const agent = run.report.agent.wallMs;
      if (agent === null) throw new Error('the report has no agent.wallMs');
      warmWall.push(run.wallMs);
      warmRuns.wallMs.push(run.wallMs);
      warmRuns.peakRssMiB.push(peakRssMiB(run.report.logDir));
      agentMs.push(agent);
      overhead.push(run.wallMs - agent);
      // Baseline, same repo and image: `docker run --rm IMAGE true` + creating a git branch.
      const base = timeSync(() => {
        // `--entrypoint true`: the image's entrypoint refuses to start without the run's environment (AW_UID, …).
        execFileSync('docker', ['run', '--rm', '--entrypoint', 'true', run.report.image.tag], { stdio: 'ignore' });
        execFileSync('git', ['branch', `bench-baseline-${rep}`], { cwd: repo, stdio: 'ignore' });
      });
      baseline.push(base);
      warmRuns.baselineMs.push(base);
      // Context, not the figure: the same work done by a bare node process (raw Docker API, no library).
      floor.push(timeSync(() => execFileSync(process.execPath, [FLOOR_SCRIPT, run.report.image.tag, repo, `bench-floor-${rep}`], { stdio: 'ignore' })));
      progress(`warm run ${rep + 1}/${REPS}: tool ${Math.round(run.wallMs)} ms, agent ${agent} ms, overhead ${Math.round(run.wallMs - agent)} ms; baseline ${Math.round(base)} ms; node floor ${Math.round(floor[floor.length - 1]!)} ms`);
      if (TIMELINE) progress(`timeline (ms since spawn, + since the line before):\n${timeline(run.result.stderr, run.spawnedAt)}`);
    }
    addFigure({
      id: 'warm',
      figure: 'warm-run overhead',
      ours: median(overhead),
      baseline: median(baseline),
      unit: 'ms',
      target: 1.5,
      targetText: '≤ 1.5',
      samples: { ours: overhead, baseline, floor },
      note:
        `tool wall time − the agent process's wall time (report agent.wallMs); tool wall median ${Math.round(median(warmWall))} ms, agent median ${Math.round(median(agentMs))} ms; ` +
        `node floor (bench/node-floor.mjs: the baseline's work by a bare node process, raw Docker API) ${Math.round(median(floor))} ms = ${(median(floor) / median(baseline)).toFixed(2)} × the baseline`,
    });
  }
  if (ONLY.has('cold')) {
    progress('cold run: --force-rebuild (no layer cache), 1 repetition');
    const run = await runAgent(fourTurnRepo(), fourTurnScript(), ['--branch', 'bench-cold', '--task', 'cold', '--force-rebuild']);
    if (!run.report.image.built) throw new Error('the cold run did not build the image');
    if (run.report.image.tag !== tag) progress(`warning: the cold run's image ${run.report.image.tag} is not the warm runs' ${tag}`);
    let warm = warmWall;
    if (warm.length === 0) {
      const again = await runAgent(fourTurnRepo(), fourTurnScript(), ['--branch', 'bench-warm-after-cold', '--task', 'warm']);
      warm = [again.wallMs];
    }
    progress(`cold run: ${Math.round(run.wallMs)} ms (image build ${run.report.image.buildMs} ms)`);
    addFigure({
      id: 'cold',
      figure: 'warm vs cold',
      ours: median(warm),
      baseline: run.wallMs,
      unit: 'ms',
      target: 0.05,
      targetText: '≤ 0.05',
      samples: { ours: warm, baseline: [run.wallMs] },
      note: 'cold: 1 repetition (an image build from scratch, no layer cache)',
    });
  }
}

/** Tasks in the batch figures, and how many run at once. */
const BATCH_TASKS = 8;
const BATCH_PARALLEL = 4;

/**
 * The batch figures: `agent-worker batch` of {@link BATCH_TASKS} four-turn tasks on as many repositories at
 * `--parallel` {@link BATCH_PARALLEL}, image cached, against one scripted server (it serves each conversation from its
 * own history). Baselines from the warm runs of the same invocation (run first when `warm` is not selected).
 */
async function benchBatch(): Promise<void> {
  if (warmRuns.wallMs.length === 0) {
    progress('batch: warm runs for the baselines (3)');
    for (let rep = 0; rep < 3; rep += 1) {
      const repo = fourTurnRepo();
      const run = await runAgent(repo, fourTurnScript(), ['--branch', `bench-batch-base-${rep}`, '--task', 'Add the answer module, reword line2, delete old.txt']);
      warmRuns.wallMs.push(run.wallMs);
      warmRuns.peakRssMiB.push(peakRssMiB(run.report.logDir));
      warmRuns.baselineMs.push(
        timeSync(() => {
          execFileSync('docker', ['run', '--rm', '--entrypoint', 'true', run.report.image.tag], { stdio: 'ignore' });
          execFileSync('git', ['branch', `bench-batch-baseline-${rep}`], { cwd: repo, stdio: 'ignore' });
        }),
      );
    }
  }
  const fixture = await startFakeAnthropic({ host: await bridgeGateway(), script: fourTurnScript() });
  const walls: number[] = [];
  const overheads: number[] = [];
  const rss: number[] = [];
  try {
    for (let rep = 0; rep < Math.max(1, Math.min(REPS, 3)); rep += 1) {
      const dir = tempDir('aw-bench-batch-');
      scratch.push(dir);
      const stateDir = tempDir('aw-bench-state-');
      scratch.push(stateDir);
      const tasks = Array.from({ length: BATCH_TASKS }, (_, i) => JSON.stringify({ project: fourTurnRepo(), task: 'Add the answer module, reword line2, delete old.txt', branch: `bench-batch-${i}` }));
      const file = path.join(dir, 'tasks.jsonl');
      writeFileSync(file, `${tasks.join('\n')}\n`);
      const started = performance.now();
      const result = await runCli(['batch', file, '--parallel', String(BATCH_PARALLEL), '--base-url', `http://host.docker.internal:${fixture.port}`, '--ca-cert', TEST_CA_CERT, '--json'], {
        cwd: dir,
        env: { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: API_KEY },
        timeoutMs: 900_000,
      });
      const wallMs = performance.now() - started;
      if (result.code !== 0) throw new Error(`agent-worker batch exited ${result.code}:\n${result.stderr.slice(-3000)}`);
      const report = JSON.parse(result.stdout) as { runs: RunReport[] };
      if (report.runs.some((run) => run.image.built)) throw new Error('a batch run built the image');
      const perTask = report.runs.map((run) => run.durationMs - (run.agent.wallMs ?? Number.NaN));
      walls.push(wallMs);
      overheads.push(perTask.reduce((sum, value) => sum + value, 0) / perTask.length);
      // Each run's log ends with the process's peak RSS so far: the largest is the batch's.
      rss.push(Math.max(...report.runs.map((run) => peakRssMiB(run.logDir))));
      progress(`batch ${rep + 1}: ${Math.round(wallMs)} ms for ${BATCH_TASKS} tasks; mean overhead per task ${Math.round(overheads[overheads.length - 1]!)} ms; peak RSS ${rss[rss.length - 1]} MiB`);
    }
  } finally {
    await fixture.close();
  }
  const oneTask = median(warmRuns.wallMs);
  addFigure({ id: 'batch', figure: 'batch wall time', ours: median(walls), baseline: 2 * oneTask, unit: 'ms', target: 1.3, targetText: '≤ 1.3', samples: { ours: walls, baseline: warmRuns.wallMs.map((ms) => 2 * ms) }, note: `${BATCH_TASKS} tasks at --parallel ${BATCH_PARALLEL} vs 2 × one warm run (${Math.round(oneTask)} ms)` });
  addFigure({ id: 'batch-overhead', figure: 'batch overhead per task', ours: median(overheads), baseline: median(warmRuns.baselineMs), unit: 'ms', target: 1.2, targetText: '≤ 1.2', samples: { ours: overheads, baseline: warmRuns.baselineMs }, note: `mean over the batch's runs of durationMs − agent.wallMs (${BATCH_PARALLEL} at once on this machine) vs docker run --rm IMAGE true + git branch` });
  addFigure({ id: 'batch-memory', figure: 'batch peak RSS', ours: median(rss), baseline: median(warmRuns.peakRssMiB), unit: 'MiB', target: 2.0, targetText: '≤ 2.0', samples: { ours: rss, baseline: warmRuns.peakRssMiB } });
}

/** The swarm's figures: single runs, then a batch of this many tasks on two workers and on one. */
const SWARM_REPS = Math.max(1, Math.min(REPS, 3));
const SWARM_BATCH_TASKS = 6;

/** The CLI's environment for a swarm's manager (its TLS endpoint). */
function swarmEnv(swarm: Swarm, stateDir: string): Record<string, string> {
  return { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: API_KEY, DOCKER_HOST: swarm.managerTls.host, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: swarm.managerTls.certDir };
}

/**
 * The swarm figures, on a swarm of docker-in-docker nodes on this engine (one drained manager, two workers, a
 * registry: tests/helpers/swarm.ts), the tool's image copied into the manager (the CLI pushes it to the registry on
 * its first run, unmeasured).
 *  - swarm overhead: a warm four-turn run with `--backend swarm`, wall − agent.wallMs, ÷ the same run on the local
 *    daemon with `--workspace copy` (what a swarm run always is), interleaved, {@link SWARM_REPS} each.
 *  - swarm spread: `batch` of {@link SWARM_BATCH_TASKS} four-turn tasks (default --memory/--cpus, --parallel as the
 *    swarm can place) on both workers ÷ the same batch with `placement: node.labels.worker-index==1`.
 * Both workers share this machine's cores, so the spread figure measures the scheduling, not added hardware.
 */
async function benchSwarm(): Promise<void> {
  progress('swarm: a local warm-up run (the image)');
  const tag = (await runAgent(fourTurnRepo(), fourTurnScript(), ['--branch', 'bench-swarm-warmup', '--task', 'warm up'])).report.image.tag;
  progress('swarm: starting a swarm (manager, two workers, registry) with the image in the manager');
  const swarm = await startSwarm({ loadImages: [tag] });
  const swarmArgs = ['--backend', 'swarm', '--registry', swarm.registry.address];
  // The scripted API as a swarm task reaches it (no host.docker.internal there).
  const gateway = await bridgeGateway();
  try {
    progress(`swarm: up in ${Math.round(swarm.timings.totalMs / 1000)} s; first run pushes the image (unmeasured)`);
    const stateDir = tempDir('aw-bench-swarm-state-');
    scratch.push(stateDir);
    await runAgent(fourTurnRepo(), fourTurnScript(), [...swarmArgs, '--branch', 'bench-swarm-push', '--task', 'warm up'], swarmEnv(swarm, stateDir), gateway);
    const local: number[] = [];
    const onSwarm: number[] = [];
    for (let rep = 0; rep < SWARM_REPS; rep += 1) {
      const task = ['--task', 'Add the answer module, reword line2, delete old.txt'];
      const here = await runAgent(fourTurnRepo(), fourTurnScript(), ['--workspace', 'copy', '--branch', `bench-local-copy-${rep}`, ...task]);
      const there = await runAgent(fourTurnRepo(), fourTurnScript(), [...swarmArgs, '--branch', `bench-swarm-${rep}`, ...task], { ...swarmEnv(swarm, stateDir), ...(TIMELINE ? { DEBUG: 'agent-worker:*' } : {}) }, gateway);
      for (const run of [here, there]) if (run.report.agent.wallMs === null) throw new Error('the report has no agent.wallMs');
      local.push(here.wallMs - here.report.agent.wallMs!);
      onSwarm.push(there.wallMs - there.report.agent.wallMs!);
      progress(`swarm run ${rep + 1}/${SWARM_REPS}: overhead ${Math.round(onSwarm[rep]!)} ms (wall ${Math.round(there.wallMs)} ms); local copy ${Math.round(local[rep]!)} ms (wall ${Math.round(here.wallMs)} ms)`);
      if (TIMELINE) progress(`swarm timeline (ms since spawn, + since the line before):\n${timeline(there.result.stderr, there.spawnedAt)}`);
    }
    addFigure({ id: 'swarm', figure: 'swarm overhead per run', ours: median(onSwarm), baseline: median(local), unit: 'ms', target: 2.0, targetText: '≤ 2.0', samples: { ours: onSwarm, baseline: local }, note: 'wall − agent.wallMs of a warm four-turn run with --backend swarm vs the same run on the local daemon with --workspace copy' });

    const fixture = await startFakeAnthropic({ host: gateway, script: fourTurnScript() });
    const batchWall = async (label: string, placement: string[]): Promise<number> => {
      const dir = tempDir('aw-bench-swarm-batch-');
      scratch.push(dir);
      const tasks = Array.from({ length: SWARM_BATCH_TASKS }, (_, i) =>
        JSON.stringify({ project: fourTurnRepo(), task: 'Add the answer module, reword line2, delete old.txt', branch: `bench-${label}-${i}`, ...(placement.length > 0 ? { placement } : {}) }),
      );
      const file = path.join(dir, 'tasks.jsonl');
      writeFileSync(file, `${tasks.join('\n')}\n`);
      const started = performance.now();
      const result = await runCli(['batch', file, ...swarmArgs, '--base-url', `http://${gateway}:${fixture.port}`, '--ca-cert', TEST_CA_CERT, '--json'], { cwd: dir, env: swarmEnv(swarm, stateDir), timeoutMs: 1_800_000 });
      const wallMs = performance.now() - started;
      if (result.code !== 0) throw new Error(`agent-worker batch (${label}) exited ${result.code}:\n${result.stderr.slice(-3000)}`);
      const report = JSON.parse(result.stdout) as BatchReport;
      if (report.runs.length !== SWARM_BATCH_TASKS) throw new Error(`the ${label} batch reported ${report.runs.length} runs`);
      progress(`swarm batch on ${label}: ${Math.round(wallMs)} ms for ${SWARM_BATCH_TASKS} tasks`);
      return wallMs;
    };
    try {
      if (process.env.BENCH_SWARM_BATCH === '0') return;
      const two = await batchWall('two-workers', []);
      const one = await batchWall('one-worker', [`node.labels.${WORKER_INDEX_LABEL}==1`]);
      addFigure({ id: 'swarm-spread', figure: 'swarm batch, 2 workers vs 1', ours: two, baseline: one, unit: 'ms', target: 0.6, targetText: '≤ 0.6', samples: { ours: [two], baseline: [one] }, note: `${SWARM_BATCH_TASKS} four-turn tasks, default --memory/--cpus and --parallel (what the placeable nodes hold); both workers are docker-in-docker on this machine's ${os.cpus().length} cores` });
    } finally {
      await fixture.close();
    }
  } finally {
    await swarm.stop();
  }
}

/** start-up: `node <shebang flags> dist/src/cli.js --version` (as the installed command starts) vs `node -e 0`, interleaved. */
function benchStartup(): void {
  const ours: number[] = [];
  const baseline: number[] = [];
  const spawnTimed = (args: string[]): number =>
    timeSync(() => {
      const result = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited ${result.status}: ${result.stderr.toString()}`);
    });
  spawnTimed([...CLI_NODE_FLAGS, CLI, '--version']);
  spawnTimed(['-e', '0']);
  for (let rep = 0; rep < STARTUP_REPS; rep += 1) {
    ours.push(spawnTimed([...CLI_NODE_FLAGS, CLI, '--version']));
    baseline.push(spawnTimed(['-e', '0']));
  }
  addFigure({ id: 'startup', figure: 'start-up', ours: median(ours), baseline: median(baseline), unit: 'ms', target: 2.0, targetText: '≤ 2.0', samples: { ours, baseline } });
}

/** memory under output: peak RSS with 200 MB of agent output (200 stream-json lines of 1 MB) vs 1 MB (one line of 1 MB). */
/**
 * proxy streaming latency: time to the first byte of a server-sent event stream through the egress proxy (a model
 * API route that swaps the placeholder key) against the same request straight to the server, on loopback, each over a
 * new connection, interleaved; the figure is the added time in ms (target ≤ 5 ms).
 */
async function benchProxyLatency(): Promise<void> {
  const reps = Math.max(REPS * 20, 100);
  const server = createHttpServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    res.write('event: message_start\ndata: {}\n\n');
    setTimeout(() => res.end('event: message_stop\ndata: {}\n\n'), 5);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const upstream = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const proxy = await startEgressProxy({
    port: 0,
    host: '127.0.0.1',
    routes: [{ prefix: '/', upstream, credentials: [{ header: 'x-api-key', placeholder: 'placeholder', value: API_KEY }] }],
    allowHosts: [],
  });
  const firstByte = (url: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const started = performance.now();
      const req = httpRequest(url, { method: 'POST', headers: { 'x-api-key': 'placeholder', connection: 'close' }, agent: false }, (res) => {
        res.once('data', () => {
          resolve(performance.now() - started);
          res.resume();
        });
      });
      req.on('error', reject);
      req.end('{}');
    });
  const direct: number[] = [];
  const through: number[] = [];
  try {
    for (let rep = 0; rep < reps; rep += 1) {
      direct.push(await firstByte(`${upstream}/v1/messages`));
      through.push(await firstByte(`http://127.0.0.1:${proxy.port}/v1/messages`));
    }
  } finally {
    await proxy.close();
    await new Promise((resolve) => server.close(resolve));
  }
  const added = median(through) - median(direct);
  addFigure({
    id: 'proxy',
    figure: 'proxy: time to first SSE byte added',
    ours: median(through),
    baseline: median(direct),
    unit: 'ms',
    ratio: added,
    target: 5,
    targetText: '≤ 5 ms added',
    samples: { ours: through, baseline: direct },
    note: `median ${round(median(through), 2)} ms through the egress proxy vs ${round(median(direct), 2)} ms direct (${reps} requests each, new connections, loopback)`,
  });
}

async function benchMemory(): Promise<void> {
  const line = 'All work and no play makes Jack a dull boy. 0123456789 ';
  const block = (index: number, bytes: number): string => `${index}:` + line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes - `${index}:`.length);
  const run = async (blocks: number): Promise<{ peak: number; streamBytes: number; longest: number; wallMs: number }> => {
    // One final turn (no tool_use, so Claude Code sends no further request): with a later request Claude Code
    // auto-compacts once its context passes ~1M tokens (~4 MB), the fixture's turn counting restarts and the run
    // loops until Claude Code gives up. Claude Code writes each text block as its own stream-json line (1 MB), and
    // the `result` line repeats the last block.
    const script: ScriptedTurn[] = [{ content: Array.from({ length: blocks }, (_, index) => ({ type: 'text' as const, text: block(index, 1_000_000) })), usage: { input: 100, output: 50 } }];
    const repo = makeRepo();
    scratch.push(repo);
    const agent = await runAgent(repo, script, ['--branch', `bench-memory-${blocks}`, '--task', 'Say a lot']);
    const streamFile = path.join(agent.report.logDir, 'agent.stream.jsonl');
    const result = { peak: peakRssMiB(agent.report.logDir), streamBytes: statSync(streamFile).size, longest: longestLine(streamFile), wallMs: agent.wallMs };
    progress(`memory: ${blocks} × 1 MB text blocks: peak RSS ${result.peak} MiB, agent.stream.jsonl ${result.streamBytes} B, longest line ${result.longest} B, ${Math.round(agent.wallMs)} ms`);
    return result;
  };
  // Interleaved, so that a drift of the machine during the bench falls on both sides.
  const smalls: Awaited<ReturnType<typeof run>>[] = [];
  const bigs: Awaited<ReturnType<typeof run>>[] = [];
  for (let rep = 0; rep < MEMORY_REPS; rep += 1) {
    smalls.push(await run(1));
    bigs.push(await run(200));
  }
  const ours = bigs.map((r) => r.peak);
  const baseline = smalls.map((r) => r.peak);
  addFigure({
    id: 'memory',
    figure: 'memory under output',
    ours: median(ours),
    baseline: median(baseline),
    unit: 'MiB',
    target: 1.2,
    targetText: '≤ 1.2',
    samples: { ours, baseline },
    note: `agent.stream.jsonl ${bigs[0]!.streamBytes} B (longest line ${bigs[0]!.longest} B) vs ${smalls[0]!.streamBytes} B; ${MEMORY_REPS} runs each, interleaved`,
  });
}

/** cache check: the second and later `ensureImage` of a project image with a 50 MB `.agent-worker/` context. */
async function benchCacheCheck(): Promise<void> {
  const { docker } = await connectDocker({ tls: {}, insecure: false, env: process.env, home: os.homedir() });
  const project = tempDir('aw-bench-project-');
  scratch.push(project);
  const contextDir = path.join(project, '.agent-worker');
  mkdirSync(contextDir);
  writeFileSync(path.join(contextDir, 'Dockerfile'), 'FROM debian:bookworm-slim\nCOPY . /ctx\n');
  for (let i = 0; i < 500; i += 1) {
    const dir = path.join(contextDir, `d${Math.floor(i / 50)}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `f${i}.bin`), randomBytes(100 * 1024));
  }
  const spec: ImageSpec = {
    contextDir,
    buildArgs: {},
    caPem: '',
    toolVersion: 'bench',
    dockerfile: 'Dockerfile',
    hashCache: path.join(project, 'hash-cache.json'),
  };
  progress('cache check: first ensureImage (builds the 50 MB project image)');
  const first = await ensureImage(docker, spec, { force: false });
  progress(`cache check: first call ${first.durationMs} ms, built ${first.built}, ${first.tag}`);
  const samples: number[] = [];
  try {
    for (let rep = 0; rep < Math.max(REPS, 5); rep += 1) {
      const started = performance.now();
      const again = await ensureImage(docker, spec, { force: false });
      samples.push(performance.now() - started);
      if (again.built || again.tag !== first.tag) throw new Error(`call ${rep + 2} built again or changed the tag (${again.tag})`);
    }
  } finally {
    // The context is random bytes: the image is never reused by another bench run.
    if (first.built) await docker.getImage(first.tag).remove({ force: true }).catch(() => undefined);
  }
  addFigure({
    id: 'cache',
    figure: 'cache check (2nd+ call)',
    ours: median(samples),
    unit: 'ms',
    target: 50,
    targetText: '≤ 50 ms',
    samples: { ours: samples },
    note: `50 MB context (500 × 100 KB); first call ${first.durationMs} ms (built: ${first.built})`,
  });
}

/** report on a big diff: `diffChanges` vs `git diff --numstat -z` for 10,000 changed files. */
async function benchDiff(): Promise<void> {
  const files = 10_000;
  progress(`diff: making a repository with ${files} files, all changed in a second commit`);
  const dir = tempDir('aw-bench-diff-');
  scratch.push(dir);
  git(dir, 'init', '--quiet', '--initial-branch=main');
  git(dir, 'config', 'gc.auto', '0');
  const content = (i: number, version: number): string => Array.from({ length: 10 }, (_, line) => `file ${i} line ${line}${line === 5 ? ` v${version}` : ''}\n`).join('');
  const tree = (version: number): Record<string, string> => Object.fromEntries(Array.from({ length: files }, (_, i) => [`d${Math.floor(i / 100)}/f${i}.txt`, content(i, version)]));
  writeFiles(dir, tree(1));
  git(dir, 'add', '-A');
  git(dir, 'commit', '--quiet', '-m', 'base');
  const base = git(dir, 'rev-parse', 'HEAD').trim();
  writeFiles(dir, tree(2));
  git(dir, 'add', '-A');
  git(dir, 'commit', '--quiet', '-m', 'head');
  const head = git(dir, 'rev-parse', 'HEAD').trim();

  const repo = await openRepo(dir);
  const check = await diffChanges(repo, base, head);
  if (check.filesChanged !== files) throw new Error(`diffChanges saw ${check.filesChanged} changed files, expected ${files}`);
  const runGit = (): number =>
    timeSync(() => {
      execFileSync('git', ['diff', '--numstat', '-z', base, head], { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 * 1024 * 1024 });
    });
  runGit();
  const ours: number[] = [];
  const baseline: number[] = [];
  for (let rep = 0; rep < Math.max(REPS, 7); rep += 1) {
    const started = performance.now();
    await diffChanges(repo, base, head);
    ours.push(performance.now() - started);
    baseline.push(runGit());
  }
  addFigure({ id: 'diff', figure: 'report on a big diff', ours: median(ours), baseline: median(baseline), unit: 'ms', target: 1.3, targetText: '≤ 1.3', samples: { ours, baseline }, note: `${files} changed files` });
}

// ---------------------------------------------------------------------------------------------------------

function machine(): Record<string, unknown> {
  let dockerVersion = 'unknown';
  try {
    dockerVersion = execFileSync('docker', ['version', '--format', '{{.Server.Version}}'], { encoding: 'utf8' }).trim();
  } catch {
    // keep 'unknown'
  }
  return {
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    docker: dockerVersion,
  };
}

function format(value: number, unit: string): string {
  return unit === 'ms' ? `${value < 100 ? value.toFixed(1) : Math.round(value)} ms` : `${Math.round(value)} ${unit}`;
}

function table(): string {
  const rows = [['figure', 'ours', 'baseline', 'ratio', 'target', 'result']];
  for (const f of figures) {
    rows.push([
      f.figure,
      format(f.ours, f.unit),
      f.baseline === undefined ? '—' : format(f.baseline, f.unit),
      f.baseline === undefined ? '—' : f.ratio.toFixed(f.ratio < 0.1 ? 3 : 2),
      f.targetText,
      f.ratio <= f.target ? 'pass' : 'FAIL',
    ]);
  }
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  const line = (row: string[]): string => `| ${row.map((cell, col) => cell.padEnd(widths[col]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

async function main(): Promise<void> {
  const started = Date.now();
  const info = machine();
  progress(`machine: ${info.cpus} × ${info.cpuModel}, ${info.memoryGiB} GiB, node ${info.node}, docker ${info.docker}`);
  try {
    if (ONLY.has('startup')) benchStartup();
    if (ONLY.has('diff')) await benchDiff();
    if (ONLY.has('cache')) await benchCacheCheck();
    if (ONLY.has('warm') || ONLY.has('cold')) await benchWarmAndCold();
    if (ONLY.has('memory')) await benchMemory();
    if (ONLY.has('proxy')) await benchProxyLatency();
    if (ONLY.has('batch')) await benchBatch();
    if (ONLY.has('swarm')) await benchSwarm();
  } finally {
    for (const dir of scratch) removeDir(dir);
  }
  const totalMs = Date.now() - started;
  const output = table();
  process.stdout.write(`${output}\n`);
  for (const f of figures) if (f.note) process.stdout.write(`${f.figure}: ${f.note}\n`);
  process.stdout.write(`machine: ${info.cpus} cores (${info.cpuModel}), ${info.memoryGiB} GiB, ${info.os}, node ${info.node}, docker ${info.docker}; bench took ${Math.round(totalMs / 1000)} s\n`);
  writeFileSync(
    RESULTS_FILE,
    `${JSON.stringify({ date: new Date().toISOString(), machine: info, repetitions: REPS, durationMs: totalMs, figures: figures.map((f) => ({ ...f, pass: f.ratio <= f.target })), table: output }, null, 2)}\n`,
  );
  progress(`wrote ${path.relative(process.cwd(), RESULTS_FILE)}`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});

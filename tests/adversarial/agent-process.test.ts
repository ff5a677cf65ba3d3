/**
 * The agent's process misbehaving, driven through the product's own container supervision
 * (AgentContainer + runAgent) on the real image, with a stand-in command where the real Claude Code
 * cannot be made to misbehave on purpose.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { docker, dockerAvailable, managedContainers } from '../helpers/docker.js';
import { makeRepo, removeDir, tempDir } from '../helpers/git.js';
import { ensureToolImage } from '../helpers/agent-run.js';
import { AgentContainer } from '../../src/docker/container.js';
import { runAgent } from '../../src/run.js';
import { RunLog } from '../../src/report/run-log.js';
import { silentProgress } from '../../src/ui/progress.js';
import { claudeCodePlugin } from '../../agents/claude-code/index.js';
import { VERSION } from '../../src/version.js';

const hasDocker = await dockerAvailable();
const cleanup: string[] = [];
let image = '';

beforeAll(async () => {
  if (!hasDocker) return;
  image = await ensureToolImage();
}, 900_000);
afterAll(() => cleanup.forEach(removeDir));

const RESULT_LINE = JSON.stringify({
  type: 'result',
  subtype: 'success',
  is_error: false,
  num_turns: 1,
  result: 'done',
  total_cost_usd: 0.01,
  modelUsage: { m: { inputTokens: 5, outputTokens: 2, cacheReadInputTokens: 0, cacheCreationInputTokens: 0, costUSD: 0.01 } },
});

async function supervise(script: string, options: { timeoutSeconds: number; graceMs: number }) {
  const repo = makeRepo();
  const logs = tempDir('aw-logs-');
  cleanup.push(repo, logs);
  const runId = `adv-${process.pid}-${Date.now()}`;
  const container = await AgentContainer.create(docker, {
    image,
    runId,
    toolVersion: VERSION,
    workspace: { mode: 'mount', workTree: repo, gitDir: path.join(repo, '.git') },
    project: repo,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    command: ['bash', '-c', script],
    env: {},
    secrets: {},
    task: '',
    allowHosts: [],
    timezone: 'UTC',
  });
  const runLog = await RunLog.open(logs, runId, []);
  const started = Date.now();
  try {
    const result = await runAgent(container, claudeCodePlugin, runLog, { timeoutSeconds: options.timeoutSeconds }, { progress: silentProgress, signal: new AbortController().signal }, options.graceMs);
    return { ...result, elapsedMs: Date.now() - started, runId, stream: () => readFileSync(path.join(logs, runId, 'agent.stream.jsonl'), 'utf8') };
  } finally {
    await container.remove();
    await runLog.close();
  }
}

describe.runIf(hasDocker)('the agent process misbehaving', { timeout: 300_000 }, () => {
  it('P01 hangs after its final result: stopped after the grace period, the result decides', async () => {
    const run = await supervise(`printf '%s\\n' '${RESULT_LINE}'; sleep 600`, { timeoutSeconds: 300, graceMs: 2_000 });
    expect(run.exit.reason).toBe('after_result');
    expect(run.outcome).toMatchObject({ resultSubtype: 'success', isError: false, fromResult: true, turns: 1 });
    expect(run.elapsedMs).toBeLessThan(30_000);
    expect(await managedContainers(run.runId)).toEqual([]);
  });

  it('P02 ignores SIGTERM at the timeout: killed after the stop grace period', async () => {
    const run = await supervise(`trap '' TERM; echo '{"type":"system","subtype":"init"}'; while :; do sleep 1; done`, { timeoutSeconds: 3, graceMs: 60_000 });
    expect(run.exit.reason).toBe('timed_out');
    expect(run.exit.exitCode).toBeNull();
    expect(run.elapsedMs).toBeLessThan(25_000);
    expect(await managedContainers(run.runId)).toEqual([]);
  });

  it('P03 output written at the very start is not lost (attached before start)', async () => {
    const run = await supervise(`echo first-line; printf '%s\\n' '${RESULT_LINE}'`, { timeoutSeconds: 60, graceMs: 10_000 });
    expect(run.exit).toMatchObject({ reason: 'exited', exitCode: 0 });
    expect(run.stream().split('\n')[0]).toBe('first-line');
  });

  it('P04 exits non-zero without a result: the outcome says so', async () => {
    const run = await supervise('echo "partial output"; exit 3', { timeoutSeconds: 60, graceMs: 10_000 });
    expect(run.exit).toMatchObject({ reason: 'exited', exitCode: 3 });
    expect(run.outcome.fromResult).toBe(false);
  });
});

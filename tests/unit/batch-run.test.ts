/**
 * The batch's pure parts: its totals, which failures --retries applies to, and its exit code.
 */
import { describe, expect, it } from 'vitest';
import { batchExitCode, batchTotals, isInfrastructureFailure } from '../../src/batch/run-batch.js';
import type { TaskResult } from '../../src/batch/types.js';
import type { RunReport } from '../../src/report/types.js';
import { AgentWorkerError, ConfigError, DockerError, ExitCode, ImageBuildError, PreflightError } from '../../src/errors.js';
import { DaemonLostError } from '../../src/docker/container.js';
import { makeRunReport } from '../helpers/reports.js';

function run(overrides: Partial<RunReport>): RunReport {
  return makeRunReport({
    tokens: { input: 10, output: 5, cacheRead: 2, cacheWrite: 1, reasoning: 1, total: 18 },
    costUsd: 0.1,
    changes: { filesChanged: 1, linesAdded: 3, linesRemoved: 1, files: [] },
    resources: { peakMemoryBytes: 100, cpuSeconds: 1.5 },
    ...overrides,
  });
}

function result(status: TaskResult['status'], index = 0): TaskResult {
  return { task: { index, line: null, project: '/p', branch: 'b', agentType: 'claude' }, status, runId: status === 'not_run' ? null : 'r', attempts: 1, startedAt: null, endedAt: null, error: null, resumed: false };
}

describe('batchTotals', () => {
  it('sums cost, tokens, lines and CPU; counts statuses; null cost, tokens and resources count 0', () => {
    const runs = [
      run({}),
      run({ status: 'agent_error', costUsd: null, tokens: null, resources: { peakMemoryBytes: null, cpuSeconds: null } }),
      run({ costUsd: 0.2000001, changes: { filesChanged: 2, linesAdded: 10, linesRemoved: 4, files: [] }, resources: { peakMemoryBytes: 300, cpuSeconds: 2 } }),
      run({ resources: undefined }),
    ];
    const totals = batchTotals([result('success'), result('agent_error', 1), result('success', 2), result('success', 3), result('not_run', 4)], runs);
    expect(totals.tasks).toBe(5);
    expect(totals.runs).toBe(4);
    expect(totals.byStatus).toEqual({ success: 3, agent_error: 1, not_run: 1 });
    expect(totals.costUsd).toBe(0.4);
    expect(totals.runsWithoutCost).toBe(1);
    expect(totals.tokens).toEqual({ input: 30, output: 15, cacheRead: 6, cacheWrite: 3, reasoning: 3, total: 54 });
    expect(totals.linesAdded).toBe(3 + 3 + 10 + 3);
    expect(totals.linesRemoved).toBe(1 + 1 + 4 + 1);
    expect(totals.resources).toEqual({ cpuSeconds: 3.5, peakMemoryBytesMax: 300, peakMemoryBytesSum: 400 });
  });

  it('an empty batch sums to zeros', () => {
    expect(batchTotals([], [])).toMatchObject({ tasks: 0, runs: 0, byStatus: {}, costUsd: 0, linesAdded: 0 });
  });
});

describe('isInfrastructureFailure (what --retries runs again)', () => {
  it('the daemon, the container setup and a build that failed on the network', () => {
    expect(isInfrastructureFailure(new DockerError('The Docker daemon did not answer', ExitCode.docker))).toBe(true);
    expect(isInfrastructureFailure(new DaemonLostError('lost', ExitCode.docker))).toBe(true);
    expect(isInfrastructureFailure(new AgentWorkerError('The container could not start', ExitCode.container))).toBe(true);
    expect(isInfrastructureFailure(new ImageBuildError('build failed', ['npm ERR! network request failed, reason: getaddrinfo EAI_AGAIN registry.npmjs.org']))).toBe(true);
    expect(isInfrastructureFailure(new ImageBuildError('build failed', ['E: Failed to fetch http://deb.debian.org/…  Temporary failure resolving']))).toBe(true);
  });

  it('never the task itself: a bad Dockerfile, a dirty tree, bad options, credentials, a plain error', () => {
    expect(isInfrastructureFailure(new ImageBuildError('build failed', ['/bin/sh: 1: nosuchcommand: not found']))).toBe(false);
    expect(isInfrastructureFailure(new PreflightError('dirty', ExitCode.dirtyTree))).toBe(false);
    expect(isInfrastructureFailure(new PreflightError('no key', ExitCode.credentials))).toBe(false);
    expect(isInfrastructureFailure(new ConfigError(['--timeout: bad']))).toBe(false);
    expect(isInfrastructureFailure(new Error('ECONNRESET'))).toBe(false);
  });
});

describe('batchExitCode', () => {
  const report = (statuses: TaskResult['status'][], interrupted = false) =>
    ({ interrupted, tasks: statuses.map((status, i) => result(status, i)) }) as Parameters<typeof batchExitCode>[0];
  it('0 only when every task succeeded; 16 otherwise; 128 + signal when interrupted', () => {
    expect(batchExitCode(report(['success', 'success']))).toBe(0);
    expect(batchExitCode(report(['success', 'verify_failed']))).toBe(16);
    expect(batchExitCode(report(['success', 'not_run']))).toBe(16);
    const controller = new AbortController();
    controller.abort('SIGTERM');
    expect(batchExitCode(report(['interrupted', 'not_run'], true), controller.signal)).toBe(143);
    expect(batchExitCode(report(['interrupted'], true))).toBe(130);
  });
});

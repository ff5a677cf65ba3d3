/** A run report with plausible figures, for tests of what reads reports (rollups, tables, views). */
import type { RunReport } from '../../src/report/types.js';

/** A successful codex run's report; `overrides` replace whole fields. */
export function makeRunReport(overrides: Partial<RunReport> = {}): RunReport {
  return {
    runId: 'run-x',
    status: 'success',
    branch: 'feat/x',
    baseCommit: '0'.repeat(40),
    headCommit: '1'.repeat(40),
    durationMs: 41_234,
    agent: { type: 'codex', version: '0.1', model: 'gpt-5', exitCode: 0, wallMs: 40_000, sessionId: null, turns: 4, resultText: null, error: null },
    tokens: { input: 10_000, output: 2_000, cacheRead: 345, cacheWrite: 0, reasoning: 0, total: 12_345 },
    costUsd: 0.0123,
    changes: { filesChanged: 2, linesAdded: 10, linesRemoved: 2, files: [] },
    image: { tag: 'agent-worker:x', built: false, buildMs: 1, dockerfile: null },
    warnings: [],
    verify: null,
    logDir: '/tmp/run-x',
    ...overrides,
  };
}

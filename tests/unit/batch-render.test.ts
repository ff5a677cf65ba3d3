/** The batch's final table and its `--json` document (src/report/batch-render.ts). */
import { describe, expect, it } from 'vitest';
import type { BatchReport, TaskRef, TaskResult } from '../../src/batch/types.js';
import { formatBytes, renderBatchJson, renderBatchTable } from '../../src/report/batch-render.js';
import { makeRunReport } from '../helpers/reports.js';
import type { RunReport } from '../../src/report/types.js';

const ESC = '\u001B';
const MiB = 1024 * 1024;

function runReport(overrides: Partial<RunReport>): RunReport {
  return makeRunReport({ resources: { cpuSeconds: 12.34, peakMemoryBytes: 512 * MiB }, ...overrides });
}

function ref(index: number, project: string, branch: string, agentType: string): TaskRef {
  return { index, line: index + 1, project, branch, agentType };
}

function result(task: TaskRef, fields: Partial<TaskResult>): TaskResult {
  return { task, status: 'success', runId: null, attempts: 1, startedAt: null, endedAt: null, error: null, resumed: false, ...fields };
}

/** Three tasks: a success, an agent error without a cost, and one that never ran. */
function batchReport(): BatchReport {
  const tasks = [ref(0, '/home/me/src/api-server', 'feat/login', 'codex'), ref(1, '/home/me/src/web', 'fix/css', 'claude'), ref(2, '/home/me/src/cli', 'chore/deps', 'gemini')];
  const runs = [
    runReport({ runId: 'run-a', branch: 'feat/login' }),
    runReport({
      runId: 'run-b',
      branch: 'fix/css',
      status: 'agent_error',
      costUsd: null,
      durationMs: 125_000,
      tokens: { input: 100, output: 50, cacheRead: 0, cacheWrite: 5, reasoning: 0, total: 155 },
      changes: { filesChanged: 1, linesAdded: 3, linesRemoved: 40, files: [] },
      resources: { cpuSeconds: 1.5, peakMemoryBytes: 2 * 1024 * MiB },
    }),
  ];
  return {
    batchId: 'batch-20261130-abc123',
    startedAt: '2026-11-30T10:00:00.000Z',
    durationMs: 3_723_000,
    logDir: '/home/me/.local/state/agent-worker/batches/batch-20261130-abc123',
    interrupted: false,
    totals: {
      tasks: 3,
      runs: 2,
      byStatus: { success: 1, agent_error: 1, not_run: 1 },
      costUsd: 0.0123,
      runsWithoutCost: 1,
      tokens: { input: 10_100, output: 2_050, cacheRead: 345, cacheWrite: 5, reasoning: 0, total: 12_500 },
      linesAdded: 13,
      linesRemoved: 42,
      resources: { cpuSeconds: 13.84, peakMemoryBytesMax: 2 * 1024 * MiB, peakMemoryBytesSum: 2560 * MiB },
    },
    tasks: [
      result(tasks[0]!, { runId: 'run-a', attempts: 1 }),
      result(tasks[1]!, { status: 'agent_error', runId: 'run-b', attempts: 2 }),
      result(tasks[2]!, {
        status: 'not_run',
        attempts: 3,
        startedAt: '2026-11-30T10:00:00.000Z',
        endedAt: '2026-11-30T10:00:07.000Z',
        error: {
          message: `The image did not build: step 7/9 RUN npm install -g @google/gemini-cli exited 1 after many lines of output\n${ESC}[31mnpm ERR!`,
          hint: 'Check the network',
          exitCode: 4,
          infrastructure: true,
        },
      }),
    ],
    runs,
  };
}

/** The table's rows that hold `text`, split into trimmed cells. */
function rowsWith(table: string, text: string): string[][] {
  return table
    .split('\n')
    .filter((line) => line.includes(text))
    .map((line) => line.split('│').slice(1, -1).map((cell) => cell.trim()));
}

describe('formatBytes', () => {
  it.each([
    [null, '—'],
    [0, '0 B'],
    [1023, '1023 B'],
    [1536, '2 KiB'],
    [812.4 * MiB, '812 MiB'],
    [512 * MiB, '512 MiB'],
    [2 * 1024 * MiB, '2.0 GiB'],
    [-1, '—'],
  ])('%s → %s', (bytes, text) => expect(formatBytes(bytes)).toBe(text));
});

describe('renderBatchTable', () => {
  it('has a header and one row per task, in file order, with its figures', () => {
    const text = renderBatchTable(batchReport(), { color: false });
    expect(text).not.toContain(ESC);
    expect(text.endsWith('\n')).toBe(true);
    expect(rowsWith(text, 'peak memory')[0]).toEqual(['#', 'project', 'branch', 'agent', 'status', 'cost', 'tokens', '±lines', 'duration', 'CPU s', 'peak memory', 'attempts']);
    expect(rowsWith(text, 'feat/login')).toEqual([['1', 'api-server', 'feat/login', 'codex', 'success', '$0.0123', '12,345', '+10 −2', '41s', '12.3', '512 MiB', '1']]);
    expect(rowsWith(text, 'fix/css')).toEqual([['2', 'web', 'fix/css', 'claude', 'agent error', '—', '155', '+3 −40', '2m 05s', '1.5', '2.0 GiB', '2']]);
    const body = text.split('\n').filter((line) => /^│\s+\d+ │/.test(line));
    expect(body).toHaveLength(3);
    expect(text.indexOf('feat/login')).toBeLessThan(text.indexOf('fix/css'));
    expect(text.indexOf('fix/css')).toBeLessThan(text.indexOf('chore/deps'));
  });

  it("shows a not_run task's error message, on one line and shortened, with no figures", () => {
    const text = renderBatchTable(batchReport(), { color: false });
    const [row] = rowsWith(text, 'chore/deps');
    expect(row).toBeDefined();
    const [index, project, branch, agent, status, cost, tokens, lines, duration, cpu, memory, attempts] = row!;
    expect([index, project, branch, agent]).toEqual(['3', 'cli', 'chore/deps', 'gemini']);
    expect(status).toMatch(/^not run: The image did not build: step 7\/9 RUN n…$/);
    expect(Array.from(status!).length).toBeLessThanOrEqual('not run: '.length + 40);
    expect([cost, tokens, lines, duration, cpu, memory, attempts]).toEqual(['—', '—', '—', '7s', '—', '—', '3']);
    expect(text).not.toContain('npm ERR!');
  });

  it('ends with the totals: tasks, by status, cost and runs without cost, tokens, lines, CPU, memory, duration, folders', () => {
    const text = renderBatchTable(batchReport(), { color: false });
    const value = (label: string): string | undefined => rowsWith(text, ` ${label} `).find((cells) => cells[0] === label)?.[1];
    expect(value('batch')).toBe('batch-20261130-abc123');
    expect(value('tasks')).toBe('3 (2 ran)');
    expect(value('by status')).toBe('success 1 · agent error 1 · not run 1');
    expect(value('cost')).toBe('$0.0123 (1 run without cost)');
    expect(value('tokens')).toBe('12,500 (input 10,100 · output 2,050 · cache read 345 · cache write 5)');
    expect(value('lines')).toBe('+13 −42');
    expect(value('CPU s')).toBe('13.8');
    expect(value('peak memory max')).toBe('2.0 GiB');
    expect(value('duration')).toBe('1h 02m 03s');
    expect(value('log folder')).toBe('/home/me/.local/state/agent-worker/batches/batch-20261130-abc123');
    expect(value('HTML report')).toBe('/home/me/.local/state/agent-worker/batches/batch-20261130-abc123/report.html');
  });

  it('says nothing of runs without cost when every run has one, and marks an interrupted batch', () => {
    const report = batchReport();
    report.totals.runsWithoutCost = 0;
    report.interrupted = true;
    const text = renderBatchTable(report, { color: false });
    expect(text).not.toContain('without cost');
    expect(text).toContain('batch-20261130-abc123 (interrupted)');
  });

  it('colours when asked, and escapes control characters in names so each task stays on one row', () => {
    const report = batchReport();
    report.tasks[0]!.task = ref(0, '/home/me/src/api\nserver', `feat/${ESC}[2Jx\ty`, 'codex');
    const plain = renderBatchTable(report, { color: false });
    expect(plain).not.toContain(ESC);
    expect(plain).toContain('api\\nserver');
    expect(plain).toContain('feat/\\x1b[2Jx\\ty');
    expect(renderBatchTable(batchReport(), { color: true })).toContain(`${ESC}[32msuccess`);
  });
});

describe('renderBatchJson', () => {
  it('is one JSON document that round-trips to the report', () => {
    const report = batchReport();
    const json = renderBatchJson(report);
    expect(json.endsWith('}\n')).toBe(true);
    expect(JSON.parse(json)).toEqual(report);
    expect(json).toContain('\n  "batchId": "batch-20261130-abc123"');
  });
});

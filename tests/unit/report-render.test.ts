import { describe, expect, it } from 'vitest';
import { formatCost, formatCount, formatDuration, formatResources, renderReportJson, renderReportTable } from '../../src/report/render.js';
import type { RunReport } from '../../src/report/types.js';

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[/;

function makeReport(overrides: Partial<RunReport> = {}): RunReport {
  return {
    runId: 'run-20261122-abc123',
    status: 'success',
    branch: 'agent/fix-tests-abc123',
    baseCommit: '0123456789abcdef0123456789abcdef01234567',
    headCommit: 'fedcba9876543210fedcba9876543210fedcba98',
    durationMs: 123_456,
    agent: {
      type: 'claude',
      version: '2.1.330',
      model: 'claude-sonnet-4-5',
      exitCode: 0,
      wallMs: 118_000,
      sessionId: '70cc4719-3d65-4cab-b47a-51bae7c7a8f3',
      turns: 17,
      resultText: 'Done.',
      error: null,
    },
    tokens: { input: 12_345, output: 6_789, cacheRead: 1_234_567, cacheWrite: 45_678, reasoning: 0, total: 1_299_379 },
    costUsd: 0.012345,
    changes: {
      filesChanged: 4,
      linesAdded: 1_234,
      linesRemoved: 56,
      files: [
        { path: 'src/a.ts', status: 'modified', added: 1_200, removed: 50, binary: false },
        { path: 'src/new.ts', status: 'added', added: 30, removed: 0, binary: false },
        { path: 'lib/b.ts', oldPath: 'src/b.ts', status: 'renamed', added: 4, removed: 6, binary: false },
        { path: 'logo.png', status: 'modified', added: 0, removed: 0, binary: true },
      ],
    },
    image: { tag: 'agent-worker:aaaabbbbccccdddd', built: false, buildMs: 12, dockerfile: null },
    warnings: [],
    verify: null,
    logDir: '/home/me/.agent-worker/runs/run-20261122-abc123',
    ...overrides,
  };
}

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [850, '850ms'],
    [1_000, '1s'],
    [42_400, '42s'],
    [59_600, '1m 00s'],
    [123_456, '2m 03s'],
    [3_723_000, '1h 02m 03s'],
    [-5, '0ms'],
    [Number.NaN, '0ms'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('formatCount and formatCost', () => {
  it('uses thousands separators and 4-decimal dollars', () => {
    expect(formatCount(0)).toBe('0');
    expect(formatCount(1_234_567)).toBe('1,234,567');
    expect(formatCost(0.012345)).toBe('$0.0123');
    expect(formatCost(12.5)).toBe('$12.5000');
    expect(formatCost(null)).toBe('—');
  });
});

describe('renderReportTable', () => {
  it('shows every figure, without ANSI escapes when color is false', () => {
    const text = renderReportTable(makeReport(), { color: false });
    expect(text).not.toMatch(ANSI);
    expect(text.endsWith('\n')).toBe(true);
    for (const expected of [
      'agent/fix-tests-abc123',
      '0123456789ab',
      'fedcba987654',
      '2m 03s',
      'success',
      'claude 2.1.330',
      'claude-sonnet-4-5',
      '12,345',
      '6,789',
      '1,234,567',
      '45,678',
      '1,299,379',
      '$0.0123',
      '17',
      '+1,234',
      '\u221256',
      'src/b.ts \u2192 lib/b.ts',
      '+1,200',
      '\u221250',
      'bin',
      '/home/me/.agent-worker/runs/run-20261122-abc123',
    ]) {
      expect(text).toContain(expected);
    }
    expect(text).not.toContain('0123456789abc');
    // The log folder comes last.
    expect(text.trimEnd().split('\n').at(-1)).toContain('/home/me/.agent-worker/runs/run-20261122-abc123');
  });

  it('labels the summary rows', () => {
    const text = renderReportTable(makeReport(), { color: false });
    const rowOf = (label: string): string => text.split('\n').find((l) => l.includes(` ${label} `)) ?? '';
    expect(rowOf('agent exit code')).toMatch(/│ 0\s+│/);
    expect(rowOf('turns')).toContain('17');
    expect(rowOf('files changed')).toContain('4');
    expect(rowOf('cache read tokens')).toContain('1,234,567');
    expect(rowOf('cache write tokens')).toContain('45,678');
  });

  it.each([
    ['agent_error', 'agent error'],
    ['timed_out', 'timed out'],
    ['interrupted', 'interrupted'],
  ] as const)('shows status %s as "%s"', (status, words) => {
    const text = renderReportTable(makeReport({ status }), { color: false });
    expect(text).toContain(words);
  });

  it('shows unknowns as dashes', () => {
    const report = makeReport({ status: 'timed_out', costUsd: null });
    report.agent = { ...report.agent, exitCode: null, model: null, version: null };
    const text = renderReportTable(report, { color: false });
    expect(text).toMatch(/cost\s+│ —/);
    expect(text).toMatch(/model\s+│ —/);
    expect(text).toContain('— (killed)');
  });

  it("shows a failed agent's own reason in the status row, wrapped, never the success words", () => {
    const reason = 'API Error: Connection refused. The server at http://host.docker.internal:9/v1/messages refused the connection (ECONNREFUSED) after 10 retries over 3 minutes.';
    const report = makeReport({ status: 'agent_error' });
    report.agent = { ...report.agent, exitCode: 1, error: reason };
    const out = renderReportTable(report, { color: false });
    const lines = out.split('\n');
    const statusLine = lines.findIndex((line) => line.includes('status') && line.includes('agent error: API Error: Connection refused.'));
    expect(statusLine, out).toBeGreaterThan(-1);
    // The reason continues on the next line of the same row, and all of it is there.
    const rowText = lines.slice(statusLine, statusLine + 3).join(' ').replace(/[│|]/g, ' ').replace(/\s+/g, ' ');
    expect(rowText).toContain('after 10 retries over 3 minutes.');
    expect(Math.max(...lines.map((line) => line.length))).toBeLessThan(120);
    // No reason: the status word alone.
    expect(renderReportTable(makeReport(), { color: false })).toMatch(/status\s+│?\s*success\s/);
  });

  it('shows what the egress proxy refused, only when it refused something', () => {
    const refused = renderReportTable(makeReport({ egress: { allowed: 5, refused: 2, refusedHosts: ['example.com', 'evil\ttest'] } }), { color: false });
    expect(refused).toMatch(/egress refused\s+│?\s*2 \(example\.com, evil\\ttest\); allow with --allow-host/);
    expect(renderReportTable(makeReport({ egress: { allowed: 5, refused: 0, refusedHosts: [] } }), { color: false })).not.toContain('egress');
    expect(renderReportTable(makeReport(), { color: false })).not.toContain('egress');
  });

  it('shows what the container used, only when the report has it, and "unknown" for what the engine could not say', () => {
    const measured = renderReportTable(makeReport({ resources: { peakMemoryBytes: 222_298_112, cpuSeconds: 1.4321 } }), { color: false });
    expect(measured).toMatch(/resources\s+│?\s*CPU 1\.4 s · peak memory 212 MiB/);
    const unknown = renderReportTable(makeReport({ resources: { peakMemoryBytes: null, cpuSeconds: null } }), { color: false });
    expect(unknown).toMatch(/resources\s+│?\s*CPU unknown · peak memory unknown/);
    // Reports of earlier versions have no resources: no row.
    expect(renderReportTable(makeReport(), { color: false })).not.toContain('resources');
    expect(formatResources({ peakMemoryBytes: 3 * 1024 ** 3 + 512 * 1024 ** 2, cpuSeconds: null })).toBe('CPU unknown · peak memory 3.5 GiB');
    expect(formatResources({ peakMemoryBytes: null, cpuSeconds: 0.04 })).toBe('CPU 0.0 s · peak memory unknown');
  });

  it('colours when asked', () => {
    const text = renderReportTable(makeReport(), { color: true });
    expect(text).toMatch(ANSI);
    expect(text).toContain('\u001b[32msuccess\u001b[39m');
  });

  it('keeps odd paths on one row and says when nothing changed', () => {
    const report = makeReport({
      changes: {
        filesChanged: 1,
        linesAdded: 1,
        linesRemoved: 0,
        files: [{ path: 'new\nline\tfile ü.txt', status: 'added', added: 1, removed: 0, binary: false }],
      },
    });
    const text = renderReportTable(report, { color: false });
    expect(text).toContain('new\\nline\\tfile ü.txt');

    const empty = renderReportTable(makeReport({ changes: { filesChanged: 0, linesAdded: 0, linesRemoved: 0, files: [] } }), {
      color: false,
    });
    expect(empty).toContain('No files changed.');
  });
});

describe('renderReportJson', () => {
  it('is exactly one JSON document that round-trips', () => {
    const report = makeReport();
    const json = renderReportJson(report);
    expect(json.endsWith('}\n')).toBe(true);
    expect(json.indexOf('\n')).toBe(1);
    expect(json).toContain('\n  "runId": ');
    expect(JSON.parse(json)).toEqual(report);
    expect(json.split('\n').filter((l) => l === '}')).toHaveLength(1);
  });

  it('keeps nulls and odd paths', () => {
    const report = makeReport({ costUsd: null });
    report.agent = { ...report.agent, exitCode: null, sessionId: null, resultText: null };
    report.changes.files[0] = { path: 'a\tb\nc ü.txt', status: 'added', added: 1, removed: 0, binary: false };
    expect(JSON.parse(renderReportJson(report))).toEqual(report);
  });
});

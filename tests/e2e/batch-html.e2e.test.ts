/**
 * The batch HTML report in a real headless browser (Debian's chromium through playwright-core): it renders (title,
 * one table row per task with its status and cost, three charts with one bar per task), hostile strings from the
 * report show as text and run nothing, and the page loads nothing but itself. Leaves a full-page screenshot at
 * `artifacts/batch-report.png` (the CI artifact).
 *
 * Without chromium the suite is skipped, except with CI=true, where it fails naming `.ci/setup-chromium.sh`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { BatchReport, TaskResult, TaskStatus } from '../../src/batch/types.js';
import { BATCH_HTML_CSP, renderBatchHtml } from '../../src/report/batch-html.js';
import type { RunReport } from '../../src/report/types.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const SCREENSHOT = path.join(REPO_ROOT, 'artifacts', 'batch-report.png');

/** Whether chromium is installed. With CI=true a missing browser is an error, never a skip (as tests/helpers/docker.ts does for Docker). */
function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI === 'true') throw new Error(`CI=true but there is no chromium at ${CHROMIUM}; run .ci/setup-chromium.sh`);
  return false;
}

const hasChromium = chromiumAvailable();

const HOSTILE_BRANCH = 'x"><script>alert(1)</script>';
const HOSTILE_PROJECT = '/srv/repos/<img src=x onerror=alert(2)>';
const HOSTILE_ERROR = `image build failed: <b onmouseover="alert(3)">apt-get</b> exited 100 & 'quoted'`;
const START = Date.parse('2025-06-02T09:00:00.000Z');
const at = (seconds: number): string => new Date(START + seconds * 1000).toISOString();

function run(runId: string, overrides: Partial<RunReport>): RunReport {
  return {
    runId, status: 'success', branch: 'aw/x', baseCommit: 'a'.repeat(40), headCommit: 'b'.repeat(40), durationMs: 60_000,
    agent: { type: 'claude', version: '2.0.14', model: 'claude-sonnet-4-5', exitCode: 0, wallMs: 55_000, sessionId: 's', turns: 12, resultText: 'done', error: null },
    tokens: { input: 1200, output: 8400, cacheRead: 210_000, cacheWrite: 4000, reasoning: 0, total: 219_600 },
    costUsd: 0.42, costSource: 'agent',
    changes: { filesChanged: 3, linesAdded: 120, linesRemoved: 14, files: [] },
    image: { tag: 'agent-worker:abc', built: false, buildMs: 40, dockerfile: null },
    warnings: [], verify: null, resources: { peakMemoryBytes: 812 * 1024 * 1024, cpuSeconds: 41.3 }, logDir: `/tmp/logs/${runId}`,
    ...overrides,
  };
}

function task(index: number, project: string, branch: string, status: TaskStatus, extra: Partial<TaskResult>): TaskResult {
  return {
    task: { index, line: index + 1, project, branch, agentType: 'claude' },
    status, runId: null, attempts: 1, startedAt: null, endedAt: null, error: null, resumed: false, ...extra,
  };
}

/** A realistic batch: a success, an agent error, a task that never ran, and a verify failure on a hostile branch with no cost. */
function fixture(): BatchReport {
  const runs = [
    run('r-ok', { branch: 'aw/fix-login', durationMs: 94_000 }),
    run('r-err', {
      status: 'agent_error', branch: 'aw/refactor-db', durationMs: 41_500, costUsd: 0.0831,
      agent: { ...run('x', {}).agent, exitCode: 1, error: 'API Error: 529 overloaded <retry later>' },
      changes: { filesChanged: 0, linesAdded: 0, linesRemoved: 0, files: [] },
    }),
    run('r-verify', {
      status: 'verify_failed', branch: HOSTILE_BRANCH, durationMs: 128_000, costUsd: null, costSource: null, tokens: null,
      agent: { ...run('x', {}).agent, type: 'exec', model: null }, resources: { peakMemoryBytes: null, cpuSeconds: null },
    }),
  ];
  const tasks = [
    task(0, '/home/dev/projects/webshop', 'aw/fix-login', 'success', { runId: 'r-ok', startedAt: at(0.4), endedAt: at(94.4) }),
    task(1, HOSTILE_PROJECT, 'aw/refactor-db', 'agent_error', { runId: 'r-err', attempts: 2, startedAt: at(1), endedAt: at(42.5) }),
    task(2, '/home/dev/projects/billing', 'aw/upgrade-deps', 'not_run', {
      attempts: 3, error: { message: HOSTILE_ERROR, hint: 'check the Dockerfile', exitCode: 4, infrastructure: true },
    }),
    task(3, '/home/dev/projects/docs-site', HOSTILE_BRANCH, 'verify_failed', { runId: 'r-verify', startedAt: at(94.6), endedAt: at(222.6) }),
  ];
  tasks[3]!.task.agentType = 'exec';
  return {
    batchId: 'b-20250602-0900', startedAt: at(0), durationMs: 223_000, logDir: '/home/dev/.agent-worker/batches/b-20250602-0900', interrupted: false,
    totals: {
      tasks: 4, runs: 3, byStatus: { success: 1, agent_error: 1, verify_failed: 1, not_run: 1 }, costUsd: 0.5031, runsWithoutCost: 1,
      tokens: { input: 2400, output: 16_800, cacheRead: 420_000, cacheWrite: 8000, reasoning: 0, total: 439_200 },
      linesAdded: 240, linesRemoved: 28, resources: { cpuSeconds: 82.6, peakMemoryBytesMax: 812 * 1024 * 1024, peakMemoryBytesSum: 1624 * 1024 * 1024 },
    },
    tasks, runs,
  };
}

/** `n` tasks that all succeeded in no time at no cost (null and zero figures everywhere). */
function zeroBatch(n: number): BatchReport {
  const report = fixture();
  report.runs = Array.from({ length: n }, (_, i) => run(`z${i}`, { durationMs: 0, costUsd: i % 2 ? 0 : null, tokens: null, resources: undefined }));
  report.tasks = report.runs.map((r, i) => task(i, `/p/${i}`, `aw/${i}`, 'success', { runId: r.runId, startedAt: at(0), endedAt: at(0) }));
  report.durationMs = 0;
  report.totals = { ...report.totals, tasks: n, costUsd: 0, resources: { cpuSeconds: 0, peakMemoryBytesMax: 0, peakMemoryBytesSum: 0 } };
  return report;
}

describe.runIf(hasChromium)('batch report.html in headless chromium', { timeout: 60_000 }, () => {
  let browser: Browser;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'aw-batch-html-'));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  });

  afterAll(async () => {
    await browser?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Writes `html` as `<name>/report.html`, opens it, and records every request and dialog the page makes. */
  async function open(html: string, name: string): Promise<{ page: Page; url: string; requests: string[]; dialogs: string[] }> {
    const file = path.join(dir, name, 'report.html');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, html);
    const url = pathToFileURL(file).href;
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const requests: string[] = [];
    const dialogs: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await page.route('**/*', (route) => (route.request().url() === url ? route.continue() : route.abort()));
    await page.goto(url, { waitUntil: 'load' });
    return { page, url, requests, dialogs };
  }

  it('renders the table and charts, shows hostile strings as text, loads nothing, and leaves a screenshot', async () => {
    const report = fixture();
    const html = renderBatchHtml(report);
    expect(html).not.toMatch(/NaN|Infinity|undefined/);
    const { page, url, requests, dialogs } = await open(html, 'main');

    expect(await page.title()).toBe('agent-worker batch b-20250602-0900');
    expect(await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content')).toBe(BATCH_HTML_CSP);

    const rows = page.locator('tbody tr');
    expect(await rows.count()).toBe(4);
    const statuses = await rows.locator('.badge').evaluateAll((els) => els.map((el) => [el.getAttribute('data-status'), el.textContent]));
    expect(statuses).toEqual([['success', 'success'], ['agent_error', 'agent error'], ['not_run', 'not run'], ['verify_failed', 'verify failed']]);
    expect(await rows.locator('td.cost').allTextContents()).toEqual(['$0.42', '$0.08', '—', '—']);
    expect(await rows.nth(2).locator('.err').innerText()).toContain(HOSTILE_ERROR);
    expect(await rows.nth(1).locator('.err').innerText()).toBe('API Error: 529 overloaded <retry later>');

    for (const chart of ['cost', 'duration', 'timeline']) {
      const svg = page.locator(`svg[data-chart="${chart}"]`);
      expect(await svg.count(), chart).toBe(1);
      expect(await svg.getAttribute('role')).toBe('img');
      expect(await svg.getAttribute('aria-label')).toBeTruthy();
      expect(await page.locator(`[data-chart="${chart}"] [data-task]`).evaluateAll((els) => els.map((el) => el.getAttribute('data-task')))).toEqual(['0', '1', '2', '3']);
    }
    const barWidths = (chart: string): Promise<number[]> =>
      page.locator(`[data-chart="${chart}"] [data-task]`).evaluateAll((els) => els.map((el) => Number(el.querySelector('rect')?.getAttribute('width') ?? -1)));
    const cost = await barWidths('cost');
    expect(cost[0]).toBeGreaterThan(cost[1]!);
    expect(cost[1]).toBeGreaterThan(0);
    expect([cost[2], cost[3]]).toEqual([0, 0]);
    const duration = await barWidths('duration');
    expect(duration[3]).toBeGreaterThan(duration[0]!);
    expect(duration[2]).toBe(0);
    expect((await barWidths('timeline'))[2]).toBe(-1); // never started: no segment, a note instead
    expect(await page.locator('[data-chart="timeline"] [data-task="2"]').textContent()).toContain('did not start');

    // Hostile strings are text: in the cell, in the title attribute, and nothing of them became an element.
    expect(await rows.nth(3).locator('code').textContent()).toBe(HOSTILE_BRANCH);
    expect(await rows.nth(1).locator('td').nth(1).locator('span').getAttribute('title')).toBe(HOSTILE_PROJECT);
    expect(await page.getByText(HOSTILE_BRANCH).count()).toBeGreaterThan(0);
    expect(await page.locator('script').count()).toBe(0);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('b[onmouseover]').count()).toBe(0);
    await page.locator('tbody').hover();
    expect(dialogs).toEqual([]);
    expect(requests).toEqual([url]);

    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);
    await page.close();
  });

  it.each([1, 50])('renders %i task(s) with zero and null figures: no NaN, one bar per task', async (n) => {
    const html = renderBatchHtml(zeroBatch(n));
    expect(html).not.toMatch(/NaN|Infinity|undefined/);
    const { page, url, requests } = await open(html, `zero-${n}`);
    expect(await page.locator('tbody tr').count()).toBe(n);
    for (const chart of ['cost', 'duration', 'timeline']) {
      expect(await page.locator(`[data-chart="${chart}"] [data-task]`).count(), chart).toBe(n);
    }
    expect(requests).toEqual([url]);
    await page.close();
  });
});

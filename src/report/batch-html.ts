/**
 * The batch HTML report (`<batch log folder>/report.html`): one self-contained page for people — a header of totals,
 * a table of tasks, and three inline SVG charts (cost per task, duration per task, a timeline). No script, no
 * network: a Content-Security-Policy meta tag allows inline styles and data: images only, and every value taken from
 * the report (task paths, branch names, error messages, agent output) is HTML-escaped.
 */
import path from 'node:path';
import type { BatchReport, TaskResult, TaskStatus } from '../batch/types.js';
import { formatCost, formatCount, formatDuration, STATUS_WORDS } from './render.js';
import type { RunReport } from './types.js';

/** The page's Content-Security-Policy: nothing loads, nothing runs; inline CSS and data: images only. */
export const BATCH_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/** Colour of each status: green for success, amber for incomplete work, red for failures, grey/purple otherwise. */
const STATUS_COLORS: Record<TaskStatus, string> = {
  success: '#1a7f37',
  verify_failed: '#b35900',
  max_turns: '#b35900',
  budget_exceeded: '#b35900',
  credential_leak: '#b35900',
  agent_error: '#c62828',
  auth_failed: '#c62828',
  out_of_memory: '#c62828',
  timed_out: '#c62828',
  interrupted: '#6e7781',
  not_run: '#8250df',
};

/** One task joined to its run report, with the figures the table and charts show. */
interface Row {
  task: TaskResult;
  run: RunReport | null;
  /** Display number (task index + 1). */
  n: number;
  /** In US dollars; null when unknown or the task did not run. */
  cost: number | null;
  /** In milliseconds: the run's wall time, else the task's start to end; null when unknown. */
  durationMs: number | null;
  /** Start and end relative to the batch start, in milliseconds; null when the task never started. */
  span: { from: number; to: number } | null;
}

/** Escapes `&`, `<`, `>`, `"` and `'` so any string is safe as HTML text and inside quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

const finite = (n: number | null | undefined): number | null => (typeof n === 'number' && Number.isFinite(n) ? n : null);
const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
const usd = (n: number | null): string => (n === null ? '—' : n === 0 || n >= 0.01 ? `$${n.toFixed(2)}` : formatCost(n));
const ms = (n: number | null): string => (n === null ? '—' : formatDuration(n));
const statusWord = (s: TaskStatus): string => (s === 'not_run' ? 'not run' : (STATUS_WORDS[s] ?? s));
const clip = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/** Bytes as `512 MiB` / `1.5 GiB`; `—` when unknown. */
function bytes(n: number | null): string {
  if (n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** An ISO 8601 time as `2025-01-02 10:00:00 UTC`; the raw text when it does not parse. */
function when(iso: string): string {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC` : iso;
}

function badge(status: TaskStatus): string {
  return `<span class="badge" data-status="${escapeHtml(status)}" style="background:${STATUS_COLORS[status] ?? '#6e7781'}">${escapeHtml(statusWord(status))}</span>`;
}

function toRows(report: BatchReport): Row[] {
  const runs = new Map(report.runs.map((run) => [run.runId, run]));
  const batchStart = Date.parse(report.startedAt);
  return report.tasks.map((task) => {
    const run = task.runId === null ? null : (runs.get(task.runId) ?? null);
    const from = task.startedAt === null ? NaN : Date.parse(task.startedAt) - batchStart;
    const to = task.endedAt === null ? NaN : Date.parse(task.endedAt) - batchStart;
    const span = Number.isFinite(from) && Number.isFinite(to) ? { from: Math.max(0, from), to: Math.max(0, from, to) } : null;
    const durationMs = finite(run?.durationMs) ?? (span ? span.to - span.from : null);
    return { task, run, n: task.task.index + 1, cost: finite(run?.costUsd), durationMs, span };
  });
}

/** A row label for the charts: `#3 project-name`. */
const label = (row: Row): string => clip(`#${row.n} ${path.basename(row.task.task.project)}`, 22);

/** Chart geometry, in SVG user units (px at 100 % zoom). */
const ROW_H = 22;
const LABEL_W = 180;
const TOP = 8;

/** A horizontal bar chart, one bar per row (`data-task` = task index); values ≤ 0 or null draw no bar. */
function barChart(rows: Row[], kind: 'cost' | 'duration', title: string, value: (r: Row) => number | null, text: (r: Row) => string): string {
  const width = 560;
  const plot = width - LABEL_W - 80;
  const max = Math.max(0, ...rows.map((r) => value(r) ?? 0));
  const height = TOP * 2 + Math.max(1, rows.length) * ROW_H;
  const bars = rows.map((row, i) => {
    const v = value(row) ?? 0;
    const w = max > 0 && v > 0 ? Math.max(1, (v / max) * plot) : 0;
    const y = TOP + i * ROW_H;
    return `<g data-task="${row.task.task.index}"><title>${escapeHtml(`#${row.n} ${row.task.task.project}: ${text(row)}`)}</title>`
      + `<text x="${LABEL_W - 8}" y="${y + 15}" text-anchor="end" class="lbl">${escapeHtml(label(row))}</text>`
      + `<rect x="${LABEL_W}" y="${y + 3}" width="${w.toFixed(1)}" height="${ROW_H - 6}" rx="2" fill="${STATUS_COLORS[row.task.status] ?? '#6e7781'}"/>`
      + `<text x="${(LABEL_W + w + 6).toFixed(1)}" y="${y + 15}" class="val">${escapeHtml(text(row))}</text></g>`;
  });
  return `<figure><figcaption>${escapeHtml(title)}</figcaption><svg data-chart="${kind}" role="img" aria-label="${escapeHtml(title)}" `
    + `viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">`
    + `<line x1="${LABEL_W}" y1="${TOP}" x2="${LABEL_W}" y2="${height - TOP}" class="axis"/>${bars.join('')}</svg></figure>`;
}

/** Tick step for an axis spanning `span` seconds: 1, 2 or 5 × 10^k giving at most ~8 ticks. */
function tickStep(span: number): number {
  const raw = span / 8;
  const pow = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * pow).find((step) => step >= raw) ?? 10 * pow;
}

/** The Gantt timeline: one row per task from its start to its end (seconds since the batch start), coloured by status. */
function timeline(rows: Row[], batchMs: number): string {
  const width = 1120;
  const plot = width - LABEL_W - 24;
  const spanS = Math.max(1, (finite(batchMs) ?? 0) / 1000, ...rows.map((r) => (r.span ? r.span.to / 1000 : 0)));
  const step = tickStep(spanS);
  const x = (s: number): number => LABEL_W + (s / spanS) * plot;
  const bottom = TOP + Math.max(1, rows.length) * ROW_H;
  const height = bottom + 36;
  const ticks: string[] = [];
  for (let k = 0; k * step <= spanS + 1e-9; k++) {
    const s = k * step;
    const label = step < 1 ? s.toFixed(1) : String(Math.round(s));
    ticks.push(`<line x1="${x(s).toFixed(1)}" y1="${TOP}" x2="${x(s).toFixed(1)}" y2="${bottom + 4}" class="grid"/>`
      + `<text x="${x(s).toFixed(1)}" y="${bottom + 17}" text-anchor="middle" class="val">${label}</text>`);
  }
  const segments = rows.map((row, i) => {
    const y = TOP + i * ROW_H;
    const what = row.span
      ? `${(row.span.from / 1000).toFixed(1)} s → ${(row.span.to / 1000).toFixed(1)} s, ${statusWord(row.task.status)}`
      : `did not start, ${statusWord(row.task.status)}`;
    const bar = row.span
      ? `<rect x="${x(row.span.from / 1000).toFixed(1)}" y="${y + 3}" width="${Math.max(2, ((row.span.to - row.span.from) / 1000 / spanS) * plot).toFixed(1)}" height="${ROW_H - 6}" rx="2" fill="${STATUS_COLORS[row.task.status] ?? '#6e7781'}"/>`
      : `<text x="${LABEL_W + 6}" y="${y + 15}" class="val">did not start</text>`;
    return `<g data-task="${row.task.task.index}"><title>${escapeHtml(`#${row.n} ${row.task.task.project}: ${what}`)}</title>`
      + `<text x="${LABEL_W - 8}" y="${y + 15}" text-anchor="end" class="lbl">${escapeHtml(label(row))}</text>${bar}</g>`;
  });
  const legend = [...new Set(rows.map((r) => r.task.status))].map(badge).join(' ');
  const title = 'Timeline: each task from its start to its end, in seconds since the batch started';
  return `<figure class="wide"><figcaption>Timeline (seconds since the batch started) <span class="legend">${legend}</span></figcaption><svg data-chart="timeline" role="img" `
    + `aria-label="${escapeHtml(title)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">${ticks.join('')}`
    + `<line x1="${LABEL_W}" y1="${bottom + 4}" x2="${width - 24}" y2="${bottom + 4}" class="axis"/>${segments.join('')}`
    + `<text x="${LABEL_W + plot / 2}" y="${bottom + 32}" text-anchor="middle" class="val">seconds</text></svg></figure>`;
}

function tableRow(row: Row): string {
  const { task, run } = row;
  const t = run?.tokens ?? null;
  const cpu = finite(run?.resources?.cpuSeconds);
  const reason = task.error
    ? `<div class="err">${escapeHtml(task.error.message)}${task.error.hint ? `<br><span class="hint">${escapeHtml(task.error.hint)}</span>` : ''}</div>`
    : run?.agent.error ? `<div class="err">${escapeHtml(run.agent.error)}</div>` : '';
  const tokens = t
    ? `<span title="${escapeHtml(`input ${formatCount(t.input)} / output ${formatCount(t.output)} / cache-read ${formatCount(t.cacheRead)}`)}">`
      + `${compact.format(t.input)} / ${compact.format(t.output)} / ${compact.format(t.cacheRead)}</span>`
    : '—';
  const cells = [
    `<td class="num">${row.n}</td>`,
    `<td class="project"><span title="${escapeHtml(task.task.project)}">${escapeHtml(path.basename(task.task.project))}</span></td>`,
    `<td class="branch"><code>${escapeHtml(task.task.branch)}</code></td>`,
    `<td>${escapeHtml(task.task.agentType)}${run?.agent.model ? `<div class="hint nowrap">${escapeHtml(run.agent.model)}</div>` : ''}</td>`,
    `<td class="status">${badge(task.status)}${task.resumed ? ' <span class="hint">(resumed)</span>' : ''}${reason}</td>`,
    `<td class="num cost">${usd(row.cost)}</td>`,
    `<td class="num">${tokens}</td>`,
    `<td class="num">${ms(row.durationMs)}</td>`,
    `<td class="num">${run ? `<span class="add">+${formatCount(run.changes.linesAdded)}</span> <span class="del">−${formatCount(run.changes.linesRemoved)}</span>` : '—'}</td>`,
    `<td class="num">${cpu === null ? '—' : cpu.toFixed(1)}</td>`,
    `<td class="num">${bytes(finite(run?.resources?.peakMemoryBytes))}</td>`,
    `<td class="num">${task.attempts}</td>`,
  ];
  return `<tr data-task="${task.task.index}">${cells.join('')}</tr>`;
}

const CSS = `
*{box-sizing:border-box}body{margin:0;padding:24px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#fff}
main{max-width:1180px;margin:0 auto}h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 10px}
.sub{color:#57606a;margin:0 0 16px}.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{border:1px solid #d0d7de;border-radius:8px;padding:10px 12px}.card b{display:block;font-size:18px}.card .what{color:#57606a;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border-bottom:1px solid #d8dee4;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600;white-space:nowrap}tbody tr:nth-child(even){background:#fafbfc}
td.num,th.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}td.status{min-width:170px;max-width:280px}td.project{min-width:110px}td.branch{min-width:150px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
.badge{display:inline-block;color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600;white-space:nowrap}
.err{color:#a40e26;font-size:12px;margin-top:3px;word-break:break-word}.hint{color:#57606a;font-size:12px}.nowrap{white-space:nowrap}
.add{color:#1a7f37}.del{color:#c62828}.by .badge{margin:2px 4px 0 0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
figure{margin:0;border:1px solid #d0d7de;border-radius:8px;padding:10px;overflow-x:auto}figure.wide{grid-column:1/-1}
figcaption{font-weight:600;margin-bottom:6px}.legend{float:right;font-weight:400}svg{max-width:100%;height:auto;display:block}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}svg .val{fill:#57606a;font-size:11px}
svg .axis{stroke:#8c959f}svg .grid{stroke:#eaeef2}
@media print{body{padding:0;font-size:11px}figure,tr,.card{break-inside:avoid}*{print-color-adjust:exact;-webkit-print-color-adjust:exact}}
`;

/**
 * Renders a batch's rollup as one self-contained HTML page (no script, no external resource; see
 * {@link BATCH_HTML_CSP}). Every string from the report is escaped, so hostile paths, branches and messages show as text.
 *
 * Charts are inline SVG, each `<svg role="img" data-chart="cost|duration|timeline">` with one `[data-task="<task
 * index>"]` element per task (a bar, a timeline segment, or a "did not start" note). Unknown (null) costs, durations
 * and resources show `—` and draw no bar.
 *
 * @param report - the `batch --json` document ({@link BatchReport}); costs in US dollars, durations in ms, memory in bytes.
 * @returns the whole page, UTF-8 text starting with `<!doctype html>`.
 */
export function renderBatchHtml(report: BatchReport): string {
  const rows = toRows(report);
  const tot = report.totals;
  const byStatus = Object.entries(tot.byStatus)
    .filter(([, n]) => (n ?? 0) > 0)
    .map(([s, n]) => `${badge(s as TaskStatus)}${n}`)
    .join(' ');
  const card = (value: string, what: string, extra = ''): string => `<div class="card"><b>${value}</b><span class="what">${what}</span>${extra}</div>`;
  const cards = [
    card(String(tot.tasks), 'tasks', byStatus ? `<div class="by">${byStatus}</div>` : ''),
    card(usd(finite(tot.costUsd) ?? 0), 'cost (USD)', tot.runsWithoutCost > 0 ? `<div class="hint">${tot.runsWithoutCost} run(s) without a cost</div>` : ''),
    card(compact.format(tot.tokens.total), 'tokens',
      `<div class="hint">in ${compact.format(tot.tokens.input)} · out ${compact.format(tot.tokens.output)} · cache-read ${compact.format(tot.tokens.cacheRead)}</div>`),
    card(`<span class="add">+${formatCount(tot.linesAdded)}</span> <span class="del">−${formatCount(tot.linesRemoved)}</span>`, 'lines added / removed'),
    card(`${(finite(tot.resources.cpuSeconds) ?? 0).toFixed(1)} s`, 'CPU time'),
    card(bytes(finite(tot.resources.peakMemoryBytesMax)), 'peak memory (largest run)'),
  ];
  const headers = ['#', 'project', 'branch', 'agent', 'status', 'cost', 'tokens', 'duration', 'lines', 'CPU s', 'peak memory', 'attempts'];
  const numeric = new Set(['#', 'cost', 'tokens', 'duration', 'lines', 'CPU s', 'peak memory', 'attempts']);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${BATCH_HTML_CSP}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>agent-worker batch ${escapeHtml(report.batchId)}</title><style>${CSS}</style></head>
<body><main>
<h1>Batch <code>${escapeHtml(report.batchId)}</code></h1>
<p class="sub">Started ${escapeHtml(when(report.startedAt))} · took ${ms(finite(report.durationMs))} · logs in <code>${escapeHtml(report.logDir)}</code></p>
${report.interrupted ? '<p class="warn">This batch was interrupted before every task ran.</p>' : ''}
<section class="cards">${cards.join('')}</section>
<h2>Tasks</h2>
<div style="overflow-x:auto"><table><thead><tr>${headers.map((h) => `<th${numeric.has(h) ? ' class="num"' : ''}>${escapeHtml(h)}${h === 'tokens' ? '<div class="hint">in / out / cache-read</div>' : ''}</th>`).join('')}</tr></thead>
<tbody>${rows.map(tableRow).join('\n')}</tbody></table></div>
<h2>Charts</h2>
<section class="charts">
${barChart(rows, 'cost', 'Cost per task (USD)', (r) => r.cost, (r) => usd(r.cost))}
${barChart(rows, 'duration', 'Duration per task', (r) => r.durationMs, (r) => ms(r.durationMs))}
${timeline(rows, report.durationMs)}
</section>
</main></body></html>
`;
}

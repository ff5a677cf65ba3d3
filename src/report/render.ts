/**
 * Rendering of the run report: a human table (stdout by default) and the `--json` document.
 * These functions return strings; the caller (cli) writes them.
 */
import { Chalk, type ChalkInstance } from 'chalk';
import Table from 'cli-table3';
import type { ContainerResources, FileChange, FileChangeStatus, RunReport, RunStatus } from './types.js';

/** Length of abbreviated commit ids in the table, in hex digits. */
export const SHORT_COMMIT_LENGTH = 12;

/** Words shown for each {@link RunStatus}. */
export const STATUS_WORDS: Record<RunStatus, string> = {
  success: 'success',
  agent_error: 'agent error',
  auth_failed: 'credential refused by the model API',
  timed_out: 'timed out',
  interrupted: 'interrupted',
  out_of_memory: 'out of memory',
  max_turns: 'stopped at --max-turns',
  budget_exceeded: 'stopped at --max-budget-usd',
  verify_failed: 'verify failed',
  credential_leak: 'credential removed: work incomplete',
};

const numberFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** Options of {@link renderReportTable}. */
export interface RenderTableOptions {
  /** Use ANSI colours. When false the output contains no escape sequences at all. */
  color: boolean;
}

/**
 * Renders `report` as text tables: a summary table (branch, base and head commits, duration, the agent process's
 * time and agent-worker's own, status with the agent's own reason when it failed, agent exit code,
 * agent and model, tokens, cost, turns, lines added/removed, files changed, image, and what the container used when
 * the report has it), then a table of changed files (status,
 * path — `old → new` for renames, `+added`, `−removed`, `bin` for binary files), then the log folder.
 *
 * Control characters in paths and names (tabs, newlines) are shown escaped (`\t`, `\n`) so each file stays on one row.
 *
 * @returns the rendered text, ending in a newline.
 */
export function renderReportTable(report: RunReport, options: RenderTableOptions): string {
  const c = new Chalk({ level: options.color ? 1 : 0 });
  // No cli-table3 colours (it would colour on its own terminal detection); compact: no line between rows.
  const tableStyle = { head: [] as string[], border: [] as string[], compact: true };

  const summary = new Table({ style: tableStyle });
  const label = (text: string): string => c.bold(text);
  const dash = '—';
  const { agent, tokens, changes } = report;

  const agentText = [agent.type, agent.version].filter((s): s is string => s !== null && s !== '').join(' ');
  summary.push(
    [label('branch'), printable(report.branch)],
    [label('base commit'), shortCommit(report.baseCommit)],
    [label('head commit'), shortCommit(report.headCommit)],
    [label('duration'), formatDuration(report.durationMs)],
    [label('agent time'), agent.wallMs === null ? dash : `${formatDuration(agent.wallMs)} (agent-worker's own: ${formatDuration(report.durationMs - agent.wallMs)})`],
    [label('status'), agent.error ? `${colorStatus(c, report.status)}: ${wrapLine(printable(agent.error), STATUS_REASON_WIDTH)}` : colorStatus(c, report.status)],
    [label('agent exit code'), agent.exitCode === null ? `${dash} (killed)` : String(agent.exitCode)],
    [label('agent'), printable(agentText)],
    [label('model'), agent.model === null ? dash : printable(agent.model)],
    ...(tokens === null
      ? [[label('tokens'), `${dash} (the agent does not report them)`]]
      : [
          [label('input tokens'), formatCount(tokens.input)],
          [label('output tokens'), tokens.reasoning ? `${formatCount(tokens.output)} (${formatCount(tokens.reasoning)} reasoning)` : formatCount(tokens.output)],
          [label('cache read tokens'), formatCount(tokens.cacheRead)],
          [label('cache write tokens'), formatCount(tokens.cacheWrite)],
          [label('total tokens'), formatCount(tokens.total)],
        ]),
    [label('cost'), report.costSource === 'prices' ? `${formatCost(report.costUsd)} (from --prices)` : formatCost(report.costUsd)],
    [label('turns'), formatCount(agent.turns)],
    [label('lines added'), c.green(`+${formatCount(changes.linesAdded)}`)],
    [label('lines removed'), c.red(`\u2212${formatCount(changes.linesRemoved)}`)],
    [label('files changed'), formatCount(changes.filesChanged)],
    [label('image'), `${report.image.tag} (${report.image.built ? `built in ${formatDuration(report.image.buildMs)}` : 'cached'})`],
  );
  // Reports of earlier versions have no resources.
  if (report.resources) summary.push([label('resources'), formatResources(report.resources)]);
  // A blocked agent is often why a run failed: what the egress proxy refused is shown whenever there was any.
  if (report.egress && report.egress.refused > 0) {
    const hosts = report.egress.refusedHosts.map(printable).join(', ');
    summary.push([label('egress refused'), c.yellow(`${formatCount(report.egress.refused)} (${hosts}); allow with --allow-host`)]);
  }
  const verify = report.verify;
  if (verify) {
    const passed = verify.exitCode === 0;
    const outcome = passed ? c.green('passed') : c.red(verify.exitCode === null ? 'did not finish' : `failed (exit ${verify.exitCode})`);
    summary.push([label('verify'), `${printable(verify.command)}: ${outcome} in ${formatDuration(verify.durationMs)}`]);
  }

  let out = `${summary.toString()}\n`;

  if (changes.files.length > 0) {
    const files = new Table({
      head: [c.bold('status'), c.bold('path'), c.bold('added'), c.bold('removed')],
      style: tableStyle,
    });
    for (const f of changes.files) files.push(fileRow(c, f));
    out += `${files.toString()}\n`;
  } else {
    out += 'No files changed.\n';
  }

  if (verify && verify.exitCode !== 0 && verify.outputTail.length > 0) {
    out += `${c.bold('verify output (last lines):')}\n${verify.outputTail.map((line) => `  ${printable(line)}`).join('\n')}\n`;
  }
  for (const warning of report.warnings ?? []) out += `${c.yellow('warning:')} ${printable(warning)}\n`;
  out += `${c.dim('Log folder:')} ${printable(report.logDir)}\n`;
  return out;
}

/** Characters of the agent's failure reason per line of the status row (it spans at most three). */
const STATUS_REASON_WIDTH = 72;

/** `text` broken into lines of at most `width` characters, at spaces where it can be. */
function wrapLine(text: string, width: number): string {
  const lines: string[] = [];
  let rest = text;
  while (rest.length > width) {
    const cut = rest.lastIndexOf(' ', width);
    const at = cut > width / 2 ? cut : width;
    lines.push(rest.slice(0, at));
    rest = rest.slice(at).trimStart();
  }
  lines.push(rest);
  return lines.join('\n');
}

/**
 * Renders `report` as exactly one JSON document (2-space indent) followed by a newline: the `--json` output.
 * Fields whose value is `undefined` (e.g. `oldPath` of a file that was not renamed) are left out.
 */
export function renderReportJson(report: RunReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/**
 * Formats a duration for people: `850ms` under a second, `42s` under a minute, `2m 03s` under an hour, else
 * `1h 02m 03s`. Whole seconds are rounded to nearest. Negative or non-finite values are shown as `0ms`.
 *
 * @param ms - duration in milliseconds.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '0ms';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const totalSeconds = Math.round(ms / 1000);
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (hours > 0) return `${hours}h ${pad(minutes)}m ${pad(seconds)}s`;
  if (minutes > 0) return `${minutes}m ${pad(seconds)}s`;
  return `${seconds}s`;
}

/** A whole count with thousands separators: `1234567` → `1,234,567`. */
export function formatCount(n: number): string {
  return numberFormat.format(n);
}

/** A cost in US dollars with 4 decimals (`$0.0123`), or `—` when unknown (null). */
export function formatCost(usd: number | null): string {
  return usd === null ? '—' : `$${usd.toFixed(4)}`;
}

/** Bytes in a MiB and a GiB. */
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/**
 * What the container used, on one line: `CPU 1.4 s · peak memory 212 MiB` (CPU seconds to one decimal; memory in
 * whole MiB, from 1 GiB up in GiB to one decimal). A value the engine could not give (null) shows as `unknown`.
 */
export function formatResources(resources: ContainerResources): string {
  const cpu = resources.cpuSeconds === null ? 'unknown' : `${resources.cpuSeconds.toFixed(1)} s`;
  const bytes = resources.peakMemoryBytes;
  const memory = bytes === null ? 'unknown' : bytes >= GIB ? `${(bytes / GIB).toFixed(1)} GiB` : `${Math.round(bytes / MIB)} MiB`;
  return `CPU ${cpu} \u00b7 peak memory ${memory}`;
}

function shortCommit(sha: string): string {
  return sha === '' ? '—' : sha.slice(0, SHORT_COMMIT_LENGTH);
}

/** `status` in its colour: green for success, red for failures of the agent, yellow for the rest; `word` replaces its text. */
export function colorStatus(c: ChalkInstance, status: RunStatus, word = STATUS_WORDS[status] ?? String(status)): string {
  switch (status) {
    case 'success':
      return c.green(word);
    case 'agent_error':
    case 'auth_failed':
    case 'credential_leak':
      return c.red(word);
    default:
      return c.yellow(word);
  }
}

const FILE_STATUS_COLOR: Record<FileChangeStatus, (c: ChalkInstance, s: string) => string> = {
  added: (c, s) => c.green(s),
  modified: (c, s) => c.yellow(s),
  deleted: (c, s) => c.red(s),
  renamed: (c, s) => c.cyan(s),
};

function fileRow(c: ChalkInstance, f: FileChange): Table.HorizontalTableRow {
  const color = FILE_STATUS_COLOR[f.status] ?? ((_c: ChalkInstance, s: string) => s);
  const path =
    f.status === 'renamed' && f.oldPath !== undefined
      ? `${printable(f.oldPath)} \u2192 ${printable(f.path)}`
      : printable(f.path);
  const row: Table.HorizontalTableRow = [color(c, f.status), path];
  if (f.binary) {
    row.push({ content: c.dim('bin'), colSpan: 2, hAlign: 'right' });
  } else {
    row.push(
      { content: c.green(`+${formatCount(f.added)}`), hAlign: 'right' },
      { content: c.red(`\u2212${formatCount(f.removed)}`), hAlign: 'right' },
    );
  }
  return row;
}

/**
 * Escapes control characters (C0, DEL, C1) so a value renders on one line and agent output cannot move the
 * cursor or recolour the terminal: tab → `\t`, newline → `\n`, carriage return → `\r`, else `\xNN`.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (ch) => {
    if (ch === '\n') return '\\n';
    if (ch === '\t') return '\\t';
    if (ch === '\r') return '\\r';
    return `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

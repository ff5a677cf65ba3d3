import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createCodexParser, summarizeCodexTool } from '../../agents/codex/exec-json.js';
import { createOpenCodeParser, summarizeOpenCodeTool } from '../../agents/opencode/run-json.js';
import { createCopilotParser, parseCopilotUsageFile, summarizeCopilotTool } from '../../agents/copilot/json.js';
import { LONG_LINE_CHARS } from '../../agents/shared/json.js';
import type { AgentEvent, AgentStreamParser, TokenUsage } from '../../agents/types.js';

// Real output of Codex, OpenCode and Copilot CLI (see the README in that folder). The success runs were served
// 3000 input tokens (1800 from the cache) and 30 output tokens (5 of them reasoning) in all.
const SAMPLES = new URL('../fixtures/agent-output-samples', import.meta.url).pathname;

function sampleText(name: string): string {
  return readFileSync(`${SAMPLES}/${name}`, 'utf8');
}

function sampleLines(name: string): string[] {
  return sampleText(name)
    .split('\n')
    .filter((l) => l !== '');
}

function feed(parser: AgentStreamParser, lines: string[]): AgentEvent[] {
  return lines.flatMap((line) => parser.push(line));
}

const ZERO: TokenUsage = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0, reasoning: 0, total: 0 };
/** What every success sample must come to: 3000 input of which 1800 cached, 30 output of which 5 reasoning. */
const SERVED: TokenUsage = { input: 1200, output: 30, cacheRead: 1800, cacheWrite: 0, reasoning: 5, total: 3030 };

const GARBAGE = ['', 'not json', '{broken', '[1,2,3]', 'null', '42', '"str"', '{"type":"mystery","x":1}', '{"type":null}', 'WARN something went wrong'];

/** A garbage line before each real line: the parser must give what it gives on the clean stream. */
function withGarbage(lines: string[]): string[] {
  return lines.flatMap((l) => [...GARBAGE, l]);
}

/** Lines of every plausible wrong shape for the given event types: none may throw. */
function oddLines(types: string[]): string[] {
  const values = ['null', '5', '"x"', '[]', '{}', '[null,5,"x",{}]', 'true', '{"a":{"b":null}}', '-1e308', '1e400'];
  const keys = ['item', 'usage', 'error', 'part', 'data', 'message', 'text', 'thread_id', 'sessionID', 'sessionId', 'exitCode', 'tokens', 'state', 'content', 'arguments', 'toolName', 'tool', 'changes', 'modelMetrics'];
  const lines: string[] = [];
  for (const type of types) {
    for (const key of keys) for (const value of values) lines.push(`{"type":"${type}","${key}":${value}}`);
    lines.push(`{"type":"${type}","item":{"type":"command_execution","id":5,"command":7}}`);
    lines.push(`{"type":"${type}","item":{"type":"file_change","changes":[null,{"path":3}]}}`);
    lines.push(`{"type":"${type}","item":{"type":"mcp_tool_call","arguments":[1,2]}}`);
    lines.push(`{"type":"${type}","usage":{"input_tokens":"many","cached_input_tokens":null,"output_tokens":1e400}}`);
    lines.push(`{"type":"${type}","part":{"tokens":{"input":"1","cache":5},"cost":"0.1","reason":7,"tool":[],"state":"x"}}`);
    lines.push(`{"type":"${type}","data":{"toolName":5,"arguments":"x","content":[],"turnId":{},"parentToolCallId":null},"exitCode":"1"}`);
    lines.push(`{"type":"${type}","error":{"data":"x","name":5}}`);
  }
  lines.push('\u0000\u0001', '{"type":"item.completed","item":{"type":"agent_message","text":"\\ud800"}}');
  return lines;
}

/** A text that makes a line over a megabyte long. */
const MEGABYTE_TEXT = 'All work and no play. '.repeat(50_000);

describe('Codex exec --json parser: real samples', () => {
  it('reads the 0.171.0 success sample', () => {
    const parser = createCodexParser();
    const events = feed(parser, sampleLines('codex-0.171.0-exec.jsonl'));
    expect(events).toEqual([
      { kind: 'init', sessionId: '01a22bc2-c1bf-7e32-9c85-dd86ea1bb4e3' },
      // The command: the model's first answer. Codex reports tokens only when the turn completes.
      { kind: 'turn', turn: 1, tokens: ZERO },
      { kind: 'tool', name: 'command_execution', summary: "Shell: printf 'hello from mock\\n' > hello.txt" },
      { kind: 'text', text: 'Done: I wrote hello.txt.' },
      { kind: 'turn', turn: 2, tokens: SERVED },
      { kind: 'result', subtype: 'success', isError: false },
    ]);
    expect(parser.outcome()).toEqual({
      sessionId: '01a22bc2-c1bf-7e32-9c85-dd86ea1bb4e3',
      // One action (the command) + the final answer: the server was called twice.
      turns: 2,
      resultText: 'Done: I wrote hello.txt.',
      resultSubtype: 'success',
      isError: false,
      // input_tokens 3000 includes cached_input_tokens 1800; output_tokens 30 includes reasoning_output_tokens 5.
      tokens: SERVED,
      fromResult: true,
    });
    expect(parser.outcome().costUsd).toBeUndefined();
    expect(parser.outcome().model).toBeUndefined();
    expect(parser.outcome().version).toBeUndefined();
    expect(parser.outcome().limitReached).toBeUndefined();
  });

  it('reads the 0.171.0 HTTP 500 sample as an error with Codex’s own reason', () => {
    const parser = createCodexParser();
    const events = feed(parser, sampleLines('codex-0.171.0-exec-500.jsonl'));
    expect(events).toEqual([
      { kind: 'init', sessionId: '01a22bc2-f791-7cc1-9327-1cc83acc279c' },
      { kind: 'result', subtype: 'error', isError: true },
    ]);
    expect(parser.outcome()).toEqual({
      sessionId: '01a22bc2-f791-7cc1-9327-1cc83acc279c',
      turns: 0,
      resultText: 'We’re currently experiencing high demand, which may cause temporary errors.',
      resultSubtype: 'error',
      isError: true,
      tokens: ZERO,
      fromResult: true,
    });
  });

  it('reads the 0.169.0 sample: retries reported as errors do not fail a turn that completed', () => {
    const parser = createCodexParser();
    const events = feed(parser, sampleLines('codex-0.169.0-exec.jsonl'));
    // This older run was served by the first scripted server (the one behind the Claude Code 2.1.330 samples):
    // 100 input tokens of which 30 cached, 7 output of which 2 reasoning. Not the 3000/1800/30/5 of the later runs.
    const tokens = { input: 70, output: 7, cacheRead: 30, cacheWrite: 0, reasoning: 2, total: 107 };
    expect(events).toEqual([
      { kind: 'init', sessionId: '01a200ed-8d1c-7a93-a561-72e09238ba50' },
      { kind: 'text', text: 'Hello from mock' },
      { kind: 'turn', turn: 1, tokens },
      { kind: 'result', subtype: 'success', isError: false },
    ]);
    expect(parser.outcome()).toEqual({
      sessionId: '01a200ed-8d1c-7a93-a561-72e09238ba50',
      turns: 1,
      resultText: 'Hello from mock',
      resultSubtype: 'success',
      isError: false,
      tokens,
      fromResult: true,
    });
  });

  it('gives what was seen when the stream is cut before turn.completed', () => {
    const lines = sampleLines('codex-0.171.0-exec.jsonl').filter((l) => !l.includes('"turn.completed"'));
    const parser = createCodexParser();
    const events = feed(parser, lines);
    expect(events.some((e) => e.kind === 'result')).toBe(false);
    expect(parser.outcome()).toEqual({
      sessionId: '01a22bc2-c1bf-7e32-9c85-dd86ea1bb4e3',
      turns: 1,
      isError: false,
      tokens: ZERO,
      fromResult: false,
    });
    expect(parser.outcome().resultText).toBeUndefined();
    expect(parser.outcome().resultSubtype).toBeUndefined();
  });

  it('ignores garbage lines mixed into the real samples', () => {
    for (const name of ['codex-0.171.0-exec.jsonl', 'codex-0.171.0-exec-500.jsonl', 'codex-0.169.0-exec.jsonl']) {
      const clean = createCodexParser();
      const dirty = createCodexParser();
      expect(feed(dirty, withGarbage(sampleLines(name)))).toEqual(feed(clean, sampleLines(name)));
      expect(dirty.outcome()).toEqual(clean.outcome());
    }
  });
});

const codexItem = (event: string, item: Record<string, unknown>): string => JSON.stringify({ type: event, item });
const codexUsage = (input: number, cached: number, output: number, reasoning: number, write?: number): string =>
  JSON.stringify({
    type: 'turn.completed',
    usage: { input_tokens: input, cached_input_tokens: cached, ...(write !== undefined && { cache_write_input_tokens: write }), output_tokens: output, reasoning_output_tokens: reasoning },
  });

describe('Codex exec --json parser: synthetic streams', () => {
  it('counts each action once, whether started, updated or completed, and emits one tool event for it', () => {
    const parser = createCodexParser();
    const events = feed(parser, [
      '{"type":"thread.started","thread_id":"t-1"}',
      '{"type":"turn.started"}',
      codexItem('item.completed', { id: 'item_0', type: 'reasoning', text: '**Looking around**' }),
      codexItem('item.started', { id: 'item_1', type: 'todo_list', items: [{ text: 'read the code', completed: false }] }),
      codexItem('item.started', { id: 'item_2', type: 'command_execution', command: "bash -lc 'ls -la'", status: 'in_progress' }),
      codexItem('item.updated', { id: 'item_2', type: 'command_execution', command: "bash -lc 'ls -la'", status: 'in_progress' }),
      codexItem('item.completed', { id: 'item_2', type: 'command_execution', command: "bash -lc 'ls -la'", exit_code: 0, status: 'completed' }),
      codexItem('item.updated', { id: 'item_1', type: 'todo_list', items: [{ text: 'read the code', completed: true }] }),
      codexItem('item.completed', { id: 'item_3', type: 'file_change', changes: [{ path: '/workspace/src/a.ts', kind: 'update' }, { path: '/workspace/b.ts', kind: 'add' }], status: 'completed' }),
      codexItem('item.started', { id: 'item_4', type: 'mcp_tool_call', server: 'github', tool: 'search_issues', arguments: { limit: 5, query: 'flaky test' }, status: 'in_progress' }),
      codexItem('item.completed', { id: 'item_4', type: 'mcp_tool_call', server: 'github', tool: 'search_issues', arguments: { limit: 5, query: 'flaky test' }, status: 'failed', error: { message: 'x' } }),
      codexItem('item.completed', { id: 'item_5', type: 'web_search', query: 'vitest fake timers' }),
      codexItem('item.completed', { id: 'item_6', type: 'error', message: 'a warning' }),
      codexItem('item.completed', { id: 'item_7', type: 'agent_message', text: '  Done.\n\nAll   good. ' }),
      codexItem('item.completed', { id: 'item_1', type: 'todo_list', items: [{ text: 'read the code', completed: true }] }),
      codexUsage(5000, 4000, 300, 100, 50),
    ]);
    const zero = ZERO;
    const final = { input: 1000, output: 300, cacheRead: 4000, cacheWrite: 50, reasoning: 100, total: 5350 };
    expect(events).toEqual([
      { kind: 'init', sessionId: 't-1' },
      { kind: 'tool', name: 'todo_list', summary: 'Plan: read the code' },
      { kind: 'turn', turn: 1, tokens: zero },
      { kind: 'tool', name: 'command_execution', summary: 'Shell: ls -la' },
      { kind: 'turn', turn: 2, tokens: zero },
      { kind: 'tool', name: 'file_change', summary: 'Patch: src/a.ts (+1 more)' },
      { kind: 'turn', turn: 3, tokens: zero },
      { kind: 'tool', name: 'mcp_tool_call', summary: 'github.search_issues: flaky test' },
      { kind: 'turn', turn: 4, tokens: zero },
      { kind: 'tool', name: 'web_search', summary: 'WebSearch: vitest fake timers' },
      { kind: 'text', text: 'Done. All good.' },
      { kind: 'turn', turn: 5, tokens: final },
      { kind: 'result', subtype: 'success', isError: false },
    ]);
    const outcome = parser.outcome();
    expect(outcome.turns).toBe(5);
    expect(outcome.tokens).toEqual(final);
    // The whole message, not its one-line form.
    expect(outcome.resultText).toBe('  Done.\n\nAll   good. ');
  });

  it('takes the last turn.completed usage: Codex reports the thread’s running total', () => {
    const parser = createCodexParser();
    feed(parser, [
      '{"type":"turn.started"}',
      codexUsage(1000, 0, 10, 0),
      '{"type":"turn.started"}',
      codexUsage(2500, 1000, 25, 4),
    ]);
    const outcome = parser.outcome();
    expect(outcome.tokens).toEqual({ input: 1500, output: 25, cacheRead: 1000, cacheWrite: 0, reasoning: 4, total: 2525 });
    expect(outcome.turns).toBe(2);
    expect(outcome.fromResult).toBe(true);
  });

  it('fails on turn.failed, with the last top-level error when the failure has no message', () => {
    const parser = createCodexParser();
    const events = feed(parser, [
      '{"type":"turn.started"}',
      codexItem('item.completed', { id: 'item_0', type: 'agent_message', text: 'Working on it' }),
      '{"type":"error","message":"stream disconnected before completion"}',
      '{"type":"turn.failed","error":{}}',
    ]);
    expect(events.at(-1)).toEqual({ kind: 'result', subtype: 'error', isError: true });
    const outcome = parser.outcome();
    expect(outcome.isError).toBe(true);
    expect(outcome.resultText).toBe('stream disconnected before completion');
    expect(outcome.resultSubtype).toBe('error');
  });

  it('does not fail on top-level errors alone (retries), and keeps no result text without a final event', () => {
    const parser = createCodexParser();
    feed(parser, ['{"type":"thread.started","thread_id":"t-2"}', '{"type":"turn.started"}', '{"type":"error","message":"Reconnecting... 1/5"}']);
    expect(parser.outcome()).toEqual({ sessionId: 't-2', turns: 0, isError: false, tokens: ZERO, fromResult: false });
  });

  it('never throws on odd shapes', () => {
    const parser = createCodexParser();
    const types = ['thread.started', 'turn.started', 'item.started', 'item.updated', 'item.completed', 'turn.completed', 'turn.failed', 'error'];
    expect(() => feed(parser, oddLines(types))).not.toThrow();
    const outcome = parser.outcome();
    for (const value of Object.values(outcome.tokens)) expect(Number.isFinite(value)).toBe(true);
    expect(Number.isFinite(outcome.turns)).toBe(true);
  });

  it('reads a megabyte-long line in linear time: truncated text event, whole result text', () => {
    const parser = createCodexParser();
    const started = Date.now();
    const output = codexItem('item.completed', { id: 'item_1', type: 'command_execution', command: `echo ${'x'.repeat(2_000_000)}`, aggregated_output: MEGABYTE_TEXT, exit_code: 0 });
    const message = codexItem('item.completed', { id: 'item_2', type: 'agent_message', text: MEGABYTE_TEXT });
    expect(output.length).toBeGreaterThan(1_000_000);
    const events = [...parser.push(output), ...parser.push(message), ...parser.push(codexUsage(10, 0, 1, 0))];
    expect(Date.now() - started).toBeLessThan(5_000);
    const tool = events.find((e) => e.kind === 'tool');
    expect(tool?.kind === 'tool' && tool.summary.length).toBeLessThanOrEqual(60);
    expect(tool?.kind === 'tool' && tool.summary.startsWith('Shell: echo xxx')).toBe(true);
    const text = events.find((e) => e.kind === 'text');
    expect(text?.kind === 'text' && text.text.length).toBeLessThanOrEqual(200);
    expect(text?.kind === 'text' && text.text.endsWith('…')).toBe(true);
    expect(parser.outcome().resultText).toBe(MEGABYTE_TEXT);
  });
});

describe('summarizeCodexTool', () => {
  it('summarizes Codex items', () => {
    expect(summarizeCodexTool('command_execution', { command: '/bin/bash -lc "npm test -- --run"' })).toBe('Shell: npm test -- --run');
    expect(summarizeCodexTool('command_execution', { command: "bash -lc 'echo '\"'\"'hi'\"'\"''" })).toBe("Shell: echo 'hi'");
    expect(summarizeCodexTool('command_execution', { command: '/usr/bin/zsh -c "echo \\"\\$HOME\\""' })).toBe('Shell: echo "$HOME"');
    expect(summarizeCodexTool('command_execution', { command: 'git status' })).toBe('Shell: git status');
    expect(summarizeCodexTool('command_execution', { command: '/bin/bash -lc "unterminated' })).toBe('Shell: /bin/bash -lc "unterminated');
    expect(summarizeCodexTool('file_change', { changes: [{ path: '/workspace/README.md', kind: 'update' }] })).toBe('Patch: README.md');
    expect(summarizeCodexTool('file_change', { changes: [] })).toBe('Patch');
    expect(summarizeCodexTool('mcp_tool_call', { server: 'fs', tool: 'read', arguments: { path: '/etc/hosts' } })).toBe('fs.read: /etc/hosts');
    expect(summarizeCodexTool('mcp_tool_call', {})).toBe('mcp_tool_call');
    expect(summarizeCodexTool('web_search', { query: 'node 20 fetch' })).toBe('WebSearch: node 20 fetch');
    expect(summarizeCodexTool('collab_tool_call', { tool: 'spawn_agent', prompt: 'review the diff' })).toBe('Agent: spawn_agent: review the diff');
    expect(summarizeCodexTool('todo_list', { items: [] })).toBe('Plan');
    expect(summarizeCodexTool('something_new', { x: 1 })).toBe('something_new');
    expect(summarizeCodexTool('command_execution', null)).toBe('Shell');
  });

  it('makes summaries single-line and at most 60 characters', () => {
    expect(summarizeCodexTool('command_execution', { command: "bash -lc 'cd /workspace &&\n  npm ci\n\tnpm test'" })).toBe('Shell: cd /workspace && npm ci npm test');
    const long = summarizeCodexTool('command_execution', { command: `echo ${'x'.repeat(500)}` });
    expect(long.length).toBeLessThanOrEqual(60);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('OpenCode run --format json parser: real samples', () => {
  it('reads the 1.18.33 success sample', () => {
    const parser = createOpenCodeParser();
    const events = feed(parser, sampleLines('opencode-1.18.33-run.jsonl'));
    // Step 1: input 700 + cache read 300, output 15 + reasoning 5; step 2: input 500 + cache read 1500, output 10.
    const step1 = { input: 700, output: 20, cacheRead: 300, cacheWrite: 0, reasoning: 5, total: 1020 };
    expect(events).toEqual([
      { kind: 'init', sessionId: 'ses_dd43b5772ffe43jJitO2zcxQ0f' },
      // The sample ran in /work/repo, not /workspace: shown as is.
      { kind: 'tool', name: 'write', summary: 'write: /work/repo/hello.txt' },
      { kind: 'turn', turn: 1, tokens: step1, costUsd: 0.00077 },
      { kind: 'text', text: 'Done: I wrote hello.txt.' },
      { kind: 'turn', turn: 2, tokens: SERVED, costUsd: expect.closeTo(0.00144, 12) as number },
      { kind: 'result', subtype: 'success', isError: false },
    ]);
    expect(parser.outcome()).toEqual({
      sessionId: 'ses_dd43b5772ffe43jJitO2zcxQ0f',
      turns: 2,
      resultText: 'Done: I wrote hello.txt.',
      resultSubtype: 'success',
      isError: false,
      tokens: SERVED,
      costUsd: expect.closeTo(0.00144, 12) as number,
      fromResult: true,
    });
  });

  it('reads the 1.18.33 HTTP 500 sample as an error with OpenCode’s own reason', () => {
    const parser = createOpenCodeParser();
    const events = feed(parser, sampleLines('opencode-1.18.33-run-500.jsonl'));
    expect(events).toEqual([
      { kind: 'init', sessionId: 'ses_dd437be4fffe3AW6v5hfPX8TeG' },
      { kind: 'result', subtype: 'error', isError: true },
    ]);
    expect(parser.outcome()).toEqual({
      sessionId: 'ses_dd437be4fffe3AW6v5hfPX8TeG',
      turns: 0,
      resultText: 'mock internal error',
      resultSubtype: 'error',
      isError: true,
      tokens: ZERO,
      fromResult: true,
    });
    expect(parser.outcome().costUsd).toBeUndefined();
  });

  it('gives the finished steps when the stream is cut before its last step finished', () => {
    const lines = sampleLines('opencode-1.18.33-run.jsonl').slice(0, -1);
    const parser = createOpenCodeParser();
    const events = feed(parser, lines);
    expect(events.some((e) => e.kind === 'result')).toBe(false);
    expect(parser.outcome()).toEqual({
      sessionId: 'ses_dd43b5772ffe43jJitO2zcxQ0f',
      turns: 1,
      isError: false,
      tokens: { input: 700, output: 20, cacheRead: 300, cacheWrite: 0, reasoning: 5, total: 1020 },
      costUsd: 0.00077,
      fromResult: false,
    });
  });

  it('ignores garbage lines mixed into the real samples', () => {
    for (const name of ['opencode-1.18.33-run.jsonl', 'opencode-1.18.33-run-500.jsonl']) {
      const clean = createOpenCodeParser();
      const dirty = createOpenCodeParser();
      expect(feed(dirty, withGarbage(sampleLines(name)))).toEqual(feed(clean, sampleLines(name)));
      expect(dirty.outcome()).toEqual(clean.outcome());
    }
  });
});

const ocLine = (type: string, part?: Record<string, unknown>, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ type, timestamp: 1, sessionID: 'ses_1', ...(part && { part }), ...extra });
const ocStep = (reason: string, input: number, output: number, reasoning: number, read: number, write: number, cost?: number): string =>
  ocLine('step_finish', { type: 'step-finish', reason, tokens: { input, output, reasoning, cache: { read, write } }, ...(cost !== undefined && { cost }) });

describe('OpenCode run --format json parser: synthetic streams', () => {
  it('leaves the cost undefined when no step reports one, and gives a non-stop end as the subtype', () => {
    const parser = createOpenCodeParser();
    const events = feed(parser, [ocLine('step_start', { type: 'step-start' }), ocStep('length', 10, 4000, 100, 0, 50)]);
    expect(events).toEqual([
      { kind: 'init', sessionId: 'ses_1' },
      { kind: 'turn', turn: 1, tokens: { input: 10, output: 4100, cacheRead: 0, cacheWrite: 50, reasoning: 100, total: 4160 }, costUsd: undefined },
      { kind: 'result', subtype: 'length', isError: false },
    ]);
    expect(parser.outcome().costUsd).toBeUndefined();
    expect(parser.outcome().resultSubtype).toBe('length');
    expect(parser.outcome().fromResult).toBe(true);
  });

  it('ends at done when no step ended the loop, and a new step reopens a finished run', () => {
    const parser = createOpenCodeParser();
    const events = feed(parser, [
      ocStep('stop', 1, 1, 0, 0, 0, 0),
      ocLine('step_start', { type: 'step-start' }),
      ocStep('tool-calls', 1, 1, 0, 0, 0, 0),
    ]);
    expect(events.filter((e) => e.kind === 'result')).toHaveLength(1);
    expect(parser.outcome().fromResult).toBe(false);
    expect(parser.push(ocLine('done', undefined, { reason: 'idle', rejected: [] }))).toEqual([{ kind: 'result', subtype: 'success', isError: false }]);
    expect(parser.outcome()).toMatchObject({ fromResult: true, isError: false, resultSubtype: 'success', turns: 2, costUsd: 0 });
  });

  it('fails on an error after some steps, keeping their tokens; the last error is the reason', () => {
    const parser = createOpenCodeParser();
    const events = feed(parser, [
      ocLine('step_start', { type: 'step-start' }),
      ocLine('tool_use', { type: 'tool', tool: 'bash', state: { status: 'error', input: { command: 'npm test', description: 'Run tests' }, error: 'exit 1' } }),
      ocStep('tool-calls', 100, 5, 0, 900, 0, 0.01),
      ocLine('error', undefined, { error: { name: 'UnknownError', data: { message: 'first' } } }),
      ocLine('error', undefined, { error: { name: 'ProviderAuthError' } }),
      ocLine('done', undefined, { reason: 'idle' }),
    ]);
    expect(events.filter((e) => e.kind === 'result')).toEqual([
      { kind: 'result', subtype: 'error', isError: true },
      { kind: 'result', subtype: 'error', isError: true },
    ]);
    expect(events.find((e) => e.kind === 'tool')).toEqual({ kind: 'tool', name: 'bash', summary: 'bash: npm test' });
    expect(parser.outcome()).toEqual({
      sessionId: 'ses_1',
      turns: 1,
      resultText: 'ProviderAuthError',
      resultSubtype: 'error',
      isError: true,
      tokens: { input: 100, output: 5, cacheRead: 900, cacheWrite: 0, reasoning: 0, total: 1005 },
      costUsd: 0.01,
      fromResult: true,
    });
  });

  it('never throws on odd shapes', () => {
    const parser = createOpenCodeParser();
    expect(() => feed(parser, oddLines(['step_start', 'step_finish', 'tool_use', 'text', 'reasoning', 'error', 'done']))).not.toThrow();
    const outcome = parser.outcome();
    for (const value of Object.values(outcome.tokens)) expect(Number.isFinite(value)).toBe(true);
    expect(outcome.costUsd === undefined || Number.isFinite(outcome.costUsd)).toBe(true);
  });

  it('reads a megabyte-long line in linear time: truncated text event, whole result text', () => {
    const parser = createOpenCodeParser();
    const started = Date.now();
    const tool = ocLine('tool_use', { type: 'tool', tool: 'read', state: { status: 'completed', input: { filePath: '/workspace/big.log' }, output: MEGABYTE_TEXT } });
    const text = ocLine('text', { type: 'text', text: MEGABYTE_TEXT });
    expect(tool.length).toBeGreaterThan(1_000_000);
    const events = [...parser.push(tool), ...parser.push(text), ...parser.push(ocStep('stop', 1, 1, 0, 0, 0))];
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(events.find((e) => e.kind === 'tool')).toEqual({ kind: 'tool', name: 'read', summary: 'read: big.log' });
    const shown = events.find((e) => e.kind === 'text');
    expect(shown?.kind === 'text' && shown.text.length).toBeLessThanOrEqual(200);
    expect(shown?.kind === 'text' && shown.text.endsWith('…')).toBe(true);
    expect(parser.outcome().resultText).toBe(MEGABYTE_TEXT);
  });
});

describe('summarizeOpenCodeTool', () => {
  it('summarizes OpenCode tools', () => {
    expect(summarizeOpenCodeTool('bash', { command: 'npm test', description: 'Run tests' })).toBe('bash: npm test');
    expect(summarizeOpenCodeTool('edit', { filePath: '/workspace/src/a.ts', oldString: 'a', newString: 'b' })).toBe('edit: src/a.ts');
    expect(summarizeOpenCodeTool('read', { filePath: '/workspace' })).toBe('read: .');
    expect(summarizeOpenCodeTool('list', { path: '/workspace/src' })).toBe('list: src');
    expect(summarizeOpenCodeTool('grep', { pattern: 'TODO', include: '*.ts' })).toBe('grep: TODO');
    expect(summarizeOpenCodeTool('webfetch', { url: 'https://example.com' })).toBe('webfetch: https://example.com');
    expect(summarizeOpenCodeTool('task', { description: 'explore', prompt: 'long' })).toBe('task: explore');
    expect(summarizeOpenCodeTool('apply_patch', { patchText: '*** Begin Patch\n*** Update File: /workspace/x.ts\n@@\n-a\n+b\n*** End Patch' })).toBe('apply_patch: x.ts');
    expect(summarizeOpenCodeTool('todowrite', { todos: [] })).toBe('todowrite');
    expect(summarizeOpenCodeTool('github_create_issue', { title: 'x' })).toBe('github_create_issue');
    expect(summarizeOpenCodeTool('bash', undefined)).toBe('bash');
    const long = summarizeOpenCodeTool('bash', { command: `printf '%s\\n' ${'y'.repeat(300)}` });
    expect(long.length).toBeLessThanOrEqual(60);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('Copilot CLI --output-format json parser: real samples', () => {
  it('reads the 1.0.102 success sample (no tokens on standard output)', () => {
    const parser = createCopilotParser();
    const events = feed(parser, sampleLines('copilot-1.0.102.jsonl'));
    expect(events).toEqual([
      { kind: 'init', sessionId: undefined, model: 'mock', version: undefined },
      { kind: 'turn', turn: 1, tokens: ZERO },
      // The sample ran in /work/repo, not /workspace: shown as is.
      { kind: 'tool', name: 'create', summary: 'create: /work/repo/hello.txt' },
      { kind: 'turn', turn: 2, tokens: ZERO },
      { kind: 'text', text: 'Done: I wrote hello.txt.' },
      { kind: 'init', sessionId: '3adb3106-5ce1-495c-99e3-721083467758', model: 'mock', version: undefined },
      { kind: 'result', subtype: 'success', isError: false },
    ]);
    expect(parser.outcome()).toEqual({
      model: 'mock',
      sessionId: '3adb3106-5ce1-495c-99e3-721083467758',
      turns: 2,
      resultText: 'Done: I wrote hello.txt.',
      resultSubtype: 'success',
      isError: false,
      tokens: ZERO,
      fromResult: true,
    });
    expect(parser.outcome().costUsd).toBeUndefined();
  });

  it('reads the 1.0.102 HTTP 500 sample as an error with Copilot’s own reason', () => {
    const parser = createCopilotParser();
    const events = feed(parser, sampleLines('copilot-1.0.102-500.jsonl'));
    expect(events).toEqual([
      { kind: 'init', sessionId: undefined, model: 'mock', version: undefined },
      { kind: 'init', sessionId: '195133dc-01fa-46a9-8c3c-aff8ab271365', model: 'mock', version: undefined },
      { kind: 'result', subtype: 'error', isError: true },
    ]);
    expect(parser.outcome()).toEqual({
      model: 'mock',
      sessionId: '195133dc-01fa-46a9-8c3c-aff8ab271365',
      // Six calls were made, none answered.
      turns: 0,
      resultText: 'Failed to get response from the AI model; retried 5 times (total retry wait time: 14.34 seconds) Last error: 500 mock internal error',
      resultSubtype: 'error',
      isError: true,
      tokens: ZERO,
      fromResult: true,
    });
  });

  it('reads the 1.0.102 usage file: inputTokens includes the cache reads', () => {
    expect(parseCopilotUsageFile(sampleText('copilot-1.0.102-usage-output-file.json'))).toEqual({ tokens: SERVED, model: 'mock', requests: 2 });
  });

  it('gives what was seen when the stream is cut before the result line', () => {
    const parser = createCopilotParser();
    const events = feed(parser, sampleLines('copilot-1.0.102.jsonl').slice(0, -1));
    expect(events.some((e) => e.kind === 'result')).toBe(false);
    expect(parser.outcome()).toEqual({ model: 'mock', turns: 2, isError: false, tokens: ZERO, fromResult: false });
    const failing = createCopilotParser();
    feed(failing, sampleLines('copilot-1.0.102-500.jsonl').slice(0, -1));
    expect(failing.outcome()).toEqual({ model: 'mock', turns: 0, isError: false, tokens: ZERO, fromResult: false });
  });

  it('ignores garbage lines mixed into the real samples', () => {
    for (const name of ['copilot-1.0.102.jsonl', 'copilot-1.0.102-500.jsonl']) {
      const clean = createCopilotParser();
      const dirty = createCopilotParser();
      expect(feed(dirty, withGarbage(sampleLines(name)))).toEqual(feed(clean, sampleLines(name)));
      expect(dirty.outcome()).toEqual(clean.outcome());
    }
  });
});

const cpLine = (type: string, data: Record<string, unknown>): string => JSON.stringify({ type, data, id: 'e', timestamp: '2026-11-30T00:00:00.000Z', parentId: null });

describe('Copilot CLI --output-format json parser: synthetic streams', () => {
  it('reads session.start and model changes, counts main-agent turns once, and not subagent messages', () => {
    const parser = createCopilotParser();
    const events = feed(parser, [
      cpLine('session.start', { sessionId: 's-1', copilotVersion: '1.0.102', selectedModel: 'gpt-5' }),
      cpLine('session.model_change', { previousModel: 'gpt-5', newModel: 'claude-sonnet-4.5' }),
      cpLine('assistant.message', { messageId: 'm1', content: 'Let me look.', toolRequests: [{ name: 'bash' }], turnId: '0', interactionId: 'i' }),
      cpLine('tool.execution_start', { toolCallId: 'c1', toolName: 'task', arguments: { description: 'explore the repo' } }),
      cpLine('assistant.message', { messageId: 'm2', content: 'sub says hi', turnId: '0', parentToolCallId: 'c1' }),
      cpLine('assistant.message', { messageId: 'm3', content: '', toolRequests: [{ name: 'view' }], turnId: '0', interactionId: 'i' }),
      cpLine('tool.execution_start', { toolCallId: 'c2', toolName: 'view', arguments: { path: '/workspace/src/index.ts' } }),
      cpLine('assistant.message', { messageId: 'm4', content: 'All done.', turnId: '1', interactionId: 'i' }),
      JSON.stringify({ type: 'result', sessionId: 's-1', exitCode: 0 }),
    ]);
    expect(events).toEqual([
      { kind: 'init', sessionId: 's-1', model: 'gpt-5', version: '1.0.102' },
      { kind: 'init', sessionId: 's-1', model: 'claude-sonnet-4.5', version: '1.0.102' },
      { kind: 'turn', turn: 1, tokens: ZERO },
      { kind: 'text', text: 'Let me look.' },
      { kind: 'tool', name: 'task', summary: 'task: explore the repo' },
      { kind: 'text', text: 'sub says hi' },
      { kind: 'tool', name: 'view', summary: 'view: src/index.ts' },
      { kind: 'turn', turn: 2, tokens: ZERO },
      { kind: 'text', text: 'All done.' },
      { kind: 'result', subtype: 'success', isError: false },
    ]);
    expect(parser.outcome()).toEqual({
      version: '1.0.102',
      model: 'claude-sonnet-4.5',
      sessionId: 's-1',
      turns: 2,
      resultText: 'All done.',
      resultSubtype: 'success',
      isError: false,
      tokens: ZERO,
      fromResult: true,
    });
  });

  it('decides the error by the exit code, else by a session.error', () => {
    const nonZero = createCopilotParser();
    feed(nonZero, [JSON.stringify({ type: 'result', exitCode: 2 })]);
    expect(nonZero.outcome()).toMatchObject({ isError: true, resultSubtype: 'error', fromResult: true, resultText: undefined });
    const noCode = createCopilotParser();
    feed(noCode, [cpLine('session.error', { errorType: 'authentication', message: 'No authentication information found.' }), '{"type":"result"}']);
    expect(noCode.outcome()).toMatchObject({ isError: true, resultText: 'No authentication information found.' });
    const clean = createCopilotParser();
    feed(clean, ['{"type":"result"}']);
    expect(clean.outcome()).toMatchObject({ isError: false, resultSubtype: 'success' });
  });

  it('never throws on odd shapes', () => {
    const parser = createCopilotParser();
    const types = ['session.start', 'session.tools_updated', 'session.model_change', 'assistant.message', 'tool.execution_start', 'session.error', 'result'];
    expect(() => feed(parser, oddLines(types))).not.toThrow();
    expect(parser.outcome().tokens).toEqual(ZERO);
    expect(Number.isFinite(parser.outcome().turns)).toBe(true);
  });

  it('reads megabyte-long lines in linear time: truncated text event, whole result text', () => {
    const parser = createCopilotParser();
    const started = Date.now();
    const message = cpLine('assistant.message', { messageId: 'm1', content: MEGABYTE_TEXT, toolRequests: [], turnId: '0' });
    const output = cpLine('tool.execution_complete', { toolCallId: 'c', success: true, result: { content: MEGABYTE_TEXT } });
    const call = cpLine('tool.execution_start', { toolCallId: 'c', toolName: 'create', arguments: { path: '/workspace/big.txt', file_text: MEGABYTE_TEXT } });
    expect(call.length).toBeGreaterThan(LONG_LINE_CHARS);
    const events = [...parser.push(call), ...parser.push(output), ...parser.push(message), ...parser.push('{"type":"result","exitCode":0}')];
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(events.find((e) => e.kind === 'tool')).toEqual({ kind: 'tool', name: 'create', summary: 'create: big.txt' });
    const text = events.find((e) => e.kind === 'text');
    expect(text?.kind === 'text' && text.text.length).toBeLessThanOrEqual(200);
    expect(parser.outcome().resultText).toBe(MEGABYTE_TEXT);
  });
});

describe('parseCopilotUsageFile', () => {
  it('sums over models and picks the current model', () => {
    const file = {
      currentModel: 'gpt-5',
      modelMetrics: {
        'gpt-5': { requests: { count: 3, cost: 0 }, usage: { inputTokens: 10_000, outputTokens: 500, cacheReadTokens: 8_000, cacheWriteTokens: 0, reasoningTokens: 200 } },
        'gpt-5-mini': { requests: { count: 1, cost: 0 }, usage: { inputTokens: 300, outputTokens: 20, cacheReadTokens: 0, cacheWriteTokens: 100, reasoningTokens: 0 } },
      },
    };
    expect(parseCopilotUsageFile(JSON.stringify(file))).toEqual({
      tokens: { input: 2_300, output: 520, cacheRead: 8_000, cacheWrite: 100, reasoning: 200, total: 10_920 },
      model: 'gpt-5',
      requests: 4,
    });
  });

  it('falls back to the busiest model and leaves requests undefined when none is counted', () => {
    const file = {
      modelMetrics: {
        small: { usage: { inputTokens: 10, outputTokens: 1 } },
        big: { usage: { inputTokens: 3000, outputTokens: 10, cacheReadTokens: 2000 } },
        broken: null,
      },
    };
    const parsed = parseCopilotUsageFile(JSON.stringify(file));
    expect(parsed).toEqual({ tokens: { input: 1010, output: 11, cacheRead: 2000, cacheWrite: 0, reasoning: 0, total: 3021 }, model: 'big' });
    expect(parsed).not.toHaveProperty('requests');
  });

  it('is undefined for what is not a usage file, and zero for one without models', () => {
    for (const text of ['', 'not json', '[]', 'null', '{}', '{"modelMetrics":[]}', '{"modelMetrics":5}', '{"modelMetrics":{']) {
      expect(parseCopilotUsageFile(text), text).toBeUndefined();
    }
    expect(parseCopilotUsageFile('{"modelMetrics":{}}')).toEqual({ tokens: ZERO });
    expect(parseCopilotUsageFile('{"modelMetrics":{"m":{"usage":{"inputTokens":"5","outputTokens":-0}}}}')?.tokens).toEqual(ZERO);
  });
});

describe('summarizeCopilotTool', () => {
  it('summarizes Copilot CLI tools', () => {
    expect(summarizeCopilotTool('bash', { command: 'npm test', description: 'Run tests', mode: 'sync' })).toBe('bash: npm test');
    expect(summarizeCopilotTool('str_replace', { path: '/workspace/src/a.ts', old_str: 'a', new_str: 'b' })).toBe('str_replace: src/a.ts');
    expect(summarizeCopilotTool('grep', { pattern: 'TODO' })).toBe('grep: TODO');
    expect(summarizeCopilotTool('web_fetch', { url: 'https://example.com' })).toBe('web_fetch: https://example.com');
    expect(summarizeCopilotTool('report_intent', { intent: 'Exploring codebase' })).toBe('report_intent: Exploring codebase');
    expect(summarizeCopilotTool('github-mcp-server-get_file_contents', { path: '/workspace/README.md', owner: 'o' })).toBe('github-mcp-server-get_file_contents: README.md');
    expect(summarizeCopilotTool('update_todo', { todos: '- [ ] a' })).toBe('update_todo');
    expect(summarizeCopilotTool('view', 'not an object')).toBe('view');
    const long = summarizeCopilotTool('bash', { command: `cat <<'EOF'\n${'z'.repeat(400)}\nEOF` });
    expect(long.length).toBeLessThanOrEqual(60);
    expect(long.endsWith('…')).toBe(true);
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { getAgentPlugin, agentTypes } from '../../agents/index.js';
import { CLAUDE_CODE_VERSION, claudeCodePlugin } from '../../agents/claude-code/index.js';
import { createClaudeStreamParser, LONG_LINE_CHARS, parseBounded, summarizeToolUse } from '../../agents/claude-code/stream-json.js';
import type { AgentEvent, AgentStreamParser } from '../../agents/types.js';

// Real Claude Code 2.1.330 output (copied from the shared samples); see the README in that folder.
const SAMPLES = new URL('../fixtures/agent-output-samples', import.meta.url).pathname;

function sampleLines(name: string): string[] {
  return readFileSync(`${SAMPLES}/${name}`, 'utf8').split('\n').filter((l) => l !== '');
}

function feed(parser: AgentStreamParser, lines: string[]): AgentEvent[] {
  return lines.flatMap((line) => parser.push(line));
}

function assistantLine(id: string, content: unknown[], usage: Record<string, number>, parent: string | null = null) {
  return JSON.stringify({
    type: 'assistant',
    message: { id, type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', content, usage },
    parent_tool_use_id: parent,
    session_id: 's-1',
  });
}

const usage = (input: number, output: number, read: number, write: number) => ({
  input_tokens: input,
  output_tokens: output,
  cache_read_input_tokens: read,
  cache_creation_input_tokens: write,
});

describe('Claude Code stream-json parser: real samples', () => {
  it('reads the success sample', () => {
    const parser = createClaudeStreamParser();
    const events = feed(parser, sampleLines('claude-2.1.330-success.stream.jsonl'));
    expect(events).toEqual([
      { kind: 'init', sessionId: '70cc4719-3d65-4cab-b47a-51bae7c7a8f3', model: 'claude-sonnet-4-5', version: '2.1.330' },
      { kind: 'turn', turn: 1, tokens: { input: 100, output: 1, cacheRead: 30, cacheWrite: 20, reasoning: 0, total: 151 } },
      { kind: 'text', text: 'Hello from mock' },
      { kind: 'result', subtype: 'success', isError: false },
    ]);
    expect(parser.outcome()).toEqual({
      version: '2.1.330',
      model: 'claude-sonnet-4-5',
      sessionId: '70cc4719-3d65-4cab-b47a-51bae7c7a8f3',
      turns: 1,
      resultText: 'Hello from mock',
      resultSubtype: 'success',
      isError: false,
      // From result.modelUsage: output is 7 there, while the assistant line said 1.
      tokens: { input: 100, output: 7, cacheRead: 30, cacheWrite: 20, reasoning: 0, total: 157 },
      costUsd: 0.0004890000000000001,
      fromResult: true,
    });
  });

  it('reads the error_max_turns sample', () => {
    const parser = createClaudeStreamParser();
    const events = feed(parser, sampleLines('claude-2.1.330-error_max_turns.stream.jsonl'));
    const tools = events.filter((e) => e.kind === 'tool');
    expect(tools).toEqual([
      { kind: 'tool', name: 'Bash', summary: 'Bash: echo hi >> out.txt' },
      { kind: 'tool', name: 'Bash', summary: 'Bash: echo hi >> out.txt' },
    ]);
    expect(events.at(-1)).toEqual({ kind: 'result', subtype: 'error_max_turns', isError: true });
    const outcome = parser.outcome();
    expect(outcome).toEqual({
      version: '2.1.330',
      model: 'claude-sonnet-4-5',
      sessionId: '77fe1aee-a040-4143-91e8-61fb6a671846',
      turns: 3,
      resultText: undefined,
      resultSubtype: 'error_max_turns',
      isError: true,
      limitReached: 'max_turns',
      tokens: { input: 200, output: 14, cacheRead: 60, cacheWrite: 40, reasoning: 0, total: 314 },
      costUsd: 0.0009780000000000001,
      fromResult: true,
    });
  });

  it('estimates from assistant messages when the result line is missing (success sample cut)', () => {
    const lines = sampleLines('claude-2.1.330-success.stream.jsonl').filter((l) => !l.includes('"type":"result"'));
    expect(lines).toHaveLength(2);
    const parser = createClaudeStreamParser();
    feed(parser, lines);
    expect(parser.outcome()).toEqual({
      version: '2.1.330',
      model: 'claude-sonnet-4-5',
      sessionId: '70cc4719-3d65-4cab-b47a-51bae7c7a8f3',
      turns: 1,
      isError: false,
      tokens: { input: 100, output: 1, cacheRead: 30, cacheWrite: 20, reasoning: 0, total: 151 },
      fromResult: false,
    });
    expect(parser.outcome().costUsd).toBeUndefined();
    expect(parser.outcome().resultSubtype).toBeUndefined();
  });

  it('counts a repeated message id once when the result line is missing (error_max_turns sample cut)', () => {
    const lines = sampleLines('claude-2.1.330-error_max_turns.stream.jsonl').filter(
      (l) => !l.includes('"type":"result"'),
    );
    const parser = createClaudeStreamParser();
    const events = feed(parser, lines);
    // Both assistant lines carry message id msg_1 (the sample's scripted server reuses it).
    expect(events.filter((e) => e.kind === 'turn')).toHaveLength(1);
    const outcome = parser.outcome();
    expect(outcome.tokens).toEqual({ input: 100, output: 1, cacheRead: 30, cacheWrite: 20, reasoning: 0, total: 151 });
    expect(outcome.turns).toBe(1);
    expect(outcome.fromResult).toBe(false);
    expect(outcome.costUsd).toBeUndefined();
  });

  it('ignores garbage lines mixed into a real sample', () => {
    const garbage = ['', 'not json', '{broken', '[1,2,3]', 'null', '42', '"str"', '{"type":"mystery","x":1}'];
    const lines = sampleLines('claude-2.1.330-success.stream.jsonl').flatMap((l) => [...garbage, l]);
    const parser = createClaudeStreamParser();
    const events = feed(parser, lines);
    expect(events.map((e) => e.kind)).toEqual(['init', 'turn', 'text', 'result']);
    expect(parser.outcome().tokens.total).toBe(157);
  });
});

describe('Claude Code stream-json parser: synthetic streams', () => {
  it('counts tokens of a message split over several lines once, and emits a turn per new id', () => {
    const parser = createClaudeStreamParser();
    const events = feed(parser, [
      assistantLine('m1', [{ type: 'text', text: 'Looking.' }], usage(10, 2, 100, 5)),
      assistantLine('m1', [{ type: 'tool_use', id: 't1', name: 'Read', input: { file_path: '/workspace/a.ts' } }], usage(10, 2, 100, 5)),
      assistantLine('m1', [{ type: 'tool_use', id: 't2', name: 'Read', input: { file_path: '/workspace/b.ts' } }], usage(10, 2, 100, 5)),
      JSON.stringify({ type: 'user', message: { role: 'user', content: [{ type: 'tool_result', content: 'x' }] } }),
      assistantLine('m2', [{ type: 'tool_use', id: 't3', name: 'Edit', input: { file_path: '/workspace/a.ts' } }], usage(20, 3, 200, 0)),
    ]);
    expect(events).toEqual([
      { kind: 'turn', turn: 1, tokens: { input: 10, output: 2, cacheRead: 100, cacheWrite: 5, reasoning: 0, total: 117 } },
      { kind: 'text', text: 'Looking.' },
      { kind: 'tool', name: 'Read', summary: 'Read: a.ts' },
      { kind: 'tool', name: 'Read', summary: 'Read: b.ts' },
      { kind: 'turn', turn: 2, tokens: { input: 30, output: 5, cacheRead: 300, cacheWrite: 5, reasoning: 0, total: 340 } },
      { kind: 'tool', name: 'Edit', summary: 'Edit: a.ts' },
    ]);
    const outcome = parser.outcome();
    expect(outcome.turns).toBe(2);
    expect(outcome.tokens).toEqual({ input: 30, output: 5, cacheRead: 300, cacheWrite: 5, reasoning: 0, total: 340 });
    expect(outcome.model).toBe('claude-sonnet-4-5');
    expect(outcome.sessionId).toBe('s-1');
  });

  it('counts subagent messages in tokens but not in turns', () => {
    const parser = createClaudeStreamParser();
    const events = feed(parser, [
      assistantLine('m1', [{ type: 'tool_use', id: 't1', name: 'Task', input: { description: 'explore' } }], usage(1, 1, 0, 0)),
      assistantLine('sub1', [{ type: 'text', text: 'sub' }], usage(5, 5, 0, 0), 't1'),
    ]);
    expect(events.filter((e) => e.kind === 'turn')).toHaveLength(1);
    expect(parser.outcome().turns).toBe(1);
    expect(parser.outcome().tokens.total).toBe(12);
  });

  it('sums modelUsage over several models and falls back to their costUSD', () => {
    const parser = createClaudeStreamParser();
    parser.push(
      JSON.stringify({
        type: 'result',
        subtype: 'success',
        is_error: false,
        num_turns: 4,
        result: 'done',
        session_id: 's-2',
        usage: usage(1, 1, 1, 1),
        modelUsage: {
          'claude-sonnet-4-5': { inputTokens: 1000, outputTokens: 200, cacheReadInputTokens: 5000, cacheCreationInputTokens: 300, costUSD: 0.25 },
          'claude-haiku-4-5': { inputTokens: 50, outputTokens: 10, cacheReadInputTokens: 0, cacheCreationInputTokens: 0, costUSD: 0.001 },
        },
      }),
    );
    const outcome = parser.outcome();
    expect(outcome.tokens).toEqual({ input: 1050, output: 210, cacheRead: 5000, cacheWrite: 300, reasoning: 0, total: 6560 });
    expect(outcome.costUsd).toBeCloseTo(0.251, 10);
    expect(outcome.turns).toBe(4);
    expect(outcome.resultText).toBe('done');
    expect(outcome.sessionId).toBe('s-2');
  });

  it('falls back to result.usage when modelUsage is absent', () => {
    const parser = createClaudeStreamParser();
    parser.push(JSON.stringify({ type: 'result', subtype: 'success', is_error: false, num_turns: 1, total_cost_usd: 0.5, usage: usage(7, 8, 9, 10) }));
    expect(parser.outcome().tokens).toEqual({ input: 7, output: 8, cacheRead: 9, cacheWrite: 10, reasoning: 0, total: 34 });
    expect(parser.outcome().costUsd).toBe(0.5);
  });

  it('reports is_error true with subtype success as an error', () => {
    const parser = createClaudeStreamParser();
    const events = parser.push(
      JSON.stringify({ type: 'result', subtype: 'success', is_error: true, num_turns: 0, result: 'Not logged in · Please run /login', total_cost_usd: 0 }),
    );
    expect(events).toEqual([{ kind: 'result', subtype: 'success', isError: true }]);
    const outcome = parser.outcome();
    expect(outcome.isError).toBe(true);
    expect(outcome.resultSubtype).toBe('success');
    expect(outcome.costUsd).toBe(0);
    expect(outcome.fromResult).toBe(true);
  });

  it('never throws on odd shapes', () => {
    const parser = createClaudeStreamParser();
    const odd = [
      '{"type":"assistant"}',
      '{"type":"assistant","message":"text"}',
      '{"type":"assistant","message":{"content":"not an array"}}',
      '{"type":"assistant","message":{"id":5,"content":[null,5,"x",{"type":"tool_use"},{"type":"text"}],"usage":{"input_tokens":"many"}}}',
      '{"type":"system","subtype":"init","session_id":7}',
      '{"type":"result","modelUsage":{"m":null},"usage":null,"num_turns":"3"}',
      '\u0000\u0001',
    ];
    expect(() => feed(parser, odd)).not.toThrow();
    const outcome = parser.outcome();
    expect(outcome.tokens.total).toBe(0);
    expect(Number.isFinite(outcome.turns)).toBe(true);
  });

  it('handles a multi-megabyte line in linear time and truncates its text', () => {
    const big = 'word '.repeat(2_000_000); // 10 MB
    const parser = createClaudeStreamParser();
    const started = Date.now();
    const events = parser.push(assistantLine('m1', [{ type: 'text', text: big }], usage(1, 1, 0, 0)));
    parser.push(JSON.stringify({ type: 'user', message: { content: [{ type: 'tool_result', content: big }] } }));
    expect(Date.now() - started).toBeLessThan(5_000);
    const text = events.find((e) => e.kind === 'text');
    expect(text?.kind === 'text' && text.text.length).toBeLessThanOrEqual(200);
    expect(text?.kind === 'text' && text.text.endsWith('…')).toBe(true);
  });
});

describe('Claude Code stream-json parser: long lines', () => {
  /** `text` cut as parseBounded promises to keep it: its head, and whether anything but whitespace follows. */
  const shortened = (text: string): string => (text.length <= 1_000 ? text : text.slice(0, 1_000) + (text.slice(1_000).trim() === '' ? '' : 'y'));

  it('gives the events and outcome of the whole line, without copying its long strings', () => {
    const texts = ['Here is the output:\n' + 'All work and no play. '.repeat(10_000), ' \t\n'.repeat(30_000) + 'late text', ' '.repeat(100_000), '日本\n'.repeat(40_000)];
    const commands = ['echo "' + 'x'.repeat(100_000) + '"', ' '.repeat(90_000) + 'ls', '\n'.repeat(90_000), 'short'];
    for (const [index, text] of texts.entries()) {
      const command = commands[index]!;
      const line = (t: string, c: string, filler: string): string =>
        assistantLine(`m${index}`, [{ type: 'text', text: t }, { type: 'tool_use', name: 'Bash', input: { command: c, filler } }], usage(10, 20, 30, 40));
      const long = line(text, command, 'z'.repeat(LONG_LINE_CHARS));
      const short = line(shortened(text), shortened(command), '');
      expect(long.length).toBeGreaterThan(LONG_LINE_CHARS);
      expect(short.length).toBeLessThan(LONG_LINE_CHARS);
      const a = createClaudeStreamParser();
      const b = createClaudeStreamParser();
      expect(a.push(long)).toEqual(b.push(short));
      expect(a.outcome()).toEqual(b.outcome());
    }
  });

  it('keeps the whole result text of a long result line', () => {
    const answer = 'The answer is 42. '.repeat(10_000);
    const parser = createClaudeStreamParser();
    const events = parser.push(JSON.stringify({ type: 'result', subtype: 'success', is_error: false, num_turns: 1, result: answer, session_id: 's-9' }));
    expect(events).toEqual([{ kind: 'result', subtype: 'success', isError: false }]);
    expect(parser.outcome().resultText).toBe(answer);
    expect(parser.outcome().sessionId).toBe('s-9');
  });

  it('ignores long lines that are not JSON, as JSON.parse would', () => {
    const good = assistantLine('m1', [{ type: 'text', text: 'x'.repeat(LONG_LINE_CHARS) }], usage(1, 1, 0, 0));
    const bad = [good.slice(0, -1), `${good}x`, good.replace('xxxx', 'x\u0001x'), good.replace('xxxx', 'x\\qx'), good.replace('xxxx', 'x\\u12gx')];
    const parser = createClaudeStreamParser();
    for (const line of bad) expect(parser.push(line)).toEqual([]);
    expect(parser.push(good).map((e) => e.kind)).toEqual(['turn', 'text']);
  });
});

describe('parseBounded', () => {
  let seed = 11;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const pieces = ['a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\u0001', '\u001f', 'é', '日', '\ud83d\ude00', '\ud800', '\u2028', '\u00a0'];
  const randomString = (): string => Array.from({ length: random(12) }, () => pieces[random(pieces.length)]).join('');
  const randomValue = (depth: number): unknown => {
    switch (random(depth > 3 ? 4 : 6)) {
      case 0:
        return randomString();
      case 1:
        return [0, -0, 1.5, -2e-7, 1e21, 123456789012345680000, 0.1][random(7)];
      case 2:
        return [true, false, null][random(3)];
      case 3:
        return random(1000) - 500;
      case 4:
        return Array.from({ length: random(4) }, () => randomValue(depth + 1));
      default:
        return Object.fromEntries(Array.from({ length: random(4) }, () => [[randomString(), '__proto__', 'type', 'a'][random(4)], randomValue(depth + 1)]));
    }
  };
  const same = (text: string): void => {
    let expected: unknown;
    let expectedError = false;
    try {
      expected = JSON.parse(text);
    } catch {
      expectedError = true;
    }
    if (expectedError) {
      expect(() => parseBounded(text), text).toThrow();
      return;
    }
    const actual = parseBounded(text);
    expect(actual, text).toEqual(expected);
    expect(JSON.stringify(actual), text).toBe(JSON.stringify(expected));
  };

  it('agrees with JSON.parse on valid and broken JSON without long strings', () => {
    const noise = ['{', '}', '[', ']', ',', ':', '"', '\\', 'u', '0', '-', '.', 'e', ' ', '\n', '\u0000', 't', 'x'];
    for (let i = 0; i < 3000; i += 1) {
      const value = { type: 'assistant', value: randomValue(0) };
      const text = JSON.stringify(value, null, [undefined, 2, '\t', ' \r\n'.slice(0, 1)][random(4)]);
      same(text);
      const at = random(text.length);
      same(text.slice(0, at) + noise[random(noise.length)] + text.slice(at + random(2)));
    }
    for (const text of ['{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":-}', '{"a":+1}', '{"a":1e}', '{"a":"\\x"}', '{"a":tru}', '{"a":nul}', '{"a":1,}', '[1,]', '{,}', ' {"a":1} ', '{"__proto__":{"x":1}}', '{"a":1,"a":2}']) same(text);
  });

  it('cuts long strings at their start, marks what follows, and never inside an escape', () => {
    const head = (value: unknown): string => value as string;
    const long = 'é'.repeat(5_000) + '\n'.repeat(5_000) + 'end';
    const cut = head(parseBounded(JSON.stringify(long)));
    expect(cut.length).toBeGreaterThanOrEqual(1_364);
    expect(cut.endsWith('…')).toBe(true);
    expect(long.startsWith(cut.slice(0, -1))).toBe(true);
    const blank = head(parseBounded(JSON.stringify('x' + ' \n\t\u00a0\u2028'.repeat(5_000))));
    expect(blank.endsWith('…')).toBe(false);
    expect(blank.startsWith('x ')).toBe(true);
    for (let offset = 0; offset < 12; offset += 1) {
      const escaped = 'a'.repeat(offset) + '\u0001\ud83d\ude00"'.repeat(2_000);
      const value = head(parseBounded(JSON.stringify(escaped)));
      expect(value.length).toBeGreaterThanOrEqual(1_364);
      expect(escaped.startsWith(value.slice(0, -1))).toBe(true);
    }
  });
});

describe('summarizeToolUse', () => {
  it('summarizes common tools', () => {
    expect(summarizeToolUse('Bash', { command: 'npm test' })).toBe('Bash: npm test');
    expect(summarizeToolUse('Edit', { file_path: '/workspace/src/a.ts' })).toBe('Edit: src/a.ts');
    expect(summarizeToolUse('Write', { file_path: '/workspace/new file.md' })).toBe('Write: new file.md');
    expect(summarizeToolUse('Read', { file_path: '/etc/hosts' })).toBe('Read: /etc/hosts');
    expect(summarizeToolUse('Read', { file_path: '/workspace' })).toBe('Read: .');
    expect(summarizeToolUse('Read', { file_path: '/workspacex/a' })).toBe('Read: /workspacex/a');
    expect(summarizeToolUse('Grep', { pattern: 'TODO\\(' })).toBe('Grep: TODO\\(');
    expect(summarizeToolUse('Glob', { pattern: '**/*.ts' })).toBe('Glob: **/*.ts');
    expect(summarizeToolUse('TodoWrite', { todos: [] })).toBe('TodoWrite');
    expect(summarizeToolUse('Bash', {})).toBe('Bash');
    expect(summarizeToolUse('Bash', null)).toBe('Bash');
  });

  it('makes summaries single-line and at most 60 characters', () => {
    expect(summarizeToolUse('Bash', { command: 'cd /workspace &&\n  npm ci\n\tnpm test' })).toBe(
      'Bash: cd /workspace && npm ci npm test',
    );
    const long = summarizeToolUse('Bash', { command: `echo ${'x'.repeat(500)}` });
    expect(long.length).toBeLessThanOrEqual(60);
    expect(long.startsWith('Bash: echo xxx')).toBe(true);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('claudeCodePlugin', () => {
  it('is registered as claude', () => {
    expect(agentTypes[0]).toBe('claude');
    expect(getAgentPlugin('claude')).toBe(claudeCodePlugin);
    expect(getAgentPlugin('Claude')).toBeUndefined();
    expect(claudeCodePlugin.image).toEqual({ installScript: 'claude-code/install.sh', version: '2.1.330' });
    expect(CLAUDE_CODE_VERSION).toBe('2.1.330');
  });

  it('builds argv without the task', () => {
    const base = ['claude', '-p', '--output-format', 'stream-json', '--verbose', '--dangerously-skip-permissions', '--append-system-prompt', 'be brief'];
    expect(claudeCodePlugin.argv({ apiBaseUrl: 'http://proxy:8080', appendSystemPrompt: 'be brief' })).toEqual(base);
    expect(claudeCodePlugin.argv({ apiBaseUrl: 'http://proxy:8080', appendSystemPrompt: 'be brief', model: 'claude-opus-4-1', maxTurns: 30 })).toEqual([
      ...base,
      '--model',
      'claude-opus-4-1',
      '--max-turns',
      '30',
    ]);
  });

  it('hands an MCP configuration in as a file in its HOME and points --mcp-config at it', () => {
    const launch = { apiBaseUrl: 'http://proxy:8080', appendSystemPrompt: 'x', mcpConfigJson: '{"mcpServers":{}}' };
    expect(claudeCodePlugin.argv(launch).slice(-2)).toEqual(['--mcp-config', '/home/agent/.mcp-config.json']);
    expect(claudeCodePlugin.homeFiles?.(launch)).toEqual({ '.mcp-config.json': '{"mcpServers":{}}' });
    expect(claudeCodePlugin.homeFiles?.({ apiBaseUrl: 'http://proxy:8080', appendSystemPrompt: 'x' })).toEqual({});
  });

  it('splits credentials into secret and plain environment', () => {
    expect(claudeCodePlugin.env({ apiKey: 'sk-1', oauthToken: 'oat-1', baseUrl: 'http://proxy:8080' })).toEqual({
      secret: { ANTHROPIC_API_KEY: 'sk-1', CLAUDE_CODE_OAUTH_TOKEN: 'oat-1' },
      plain: { ANTHROPIC_BASE_URL: 'http://proxy:8080', CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', IS_SANDBOX: '1' },
    });
    expect(claudeCodePlugin.env({ oauthToken: 'oat-1' })).toEqual({
      secret: { CLAUDE_CODE_OAUTH_TOKEN: 'oat-1' },
      plain: { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', IS_SANDBOX: '1' },
    });
  });

  it('creates independent parsers', () => {
    const a = claudeCodePlugin.createParser();
    const b = claudeCodePlugin.createParser();
    a.push(assistantLine('m1', [], usage(1, 0, 0, 0)));
    expect(a.outcome().tokens.total).toBe(1);
    expect(b.outcome().tokens.total).toBe(0);
  });
});

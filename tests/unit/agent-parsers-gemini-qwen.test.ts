import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createGeminiStreamParser,
  GEMINI_RESULT_TEXT_MAX_CHARS,
  geminiErrorReason,
  geminiStreamStatsUsage,
  parseGeminiJsonOutput,
  summarizeGeminiTool,
} from '../../agents/gemini/stream-json.js';
import { createQwenStreamParser, qwenUsage, summarizeQwenTool } from '../../agents/qwen/stream-json.js';
import { LONG_LINE_CHARS } from '../../agents/shared/json.js';
import type { AgentEvent, AgentStreamParser } from '../../agents/types.js';

// Real Gemini CLI 0.61.0 and Qwen Code 0.24.4 output; see the README in that folder. The runs served 3000 input tokens
// (1800 cached) and 30 output tokens (5 reasoning).
const SAMPLES = new URL('../fixtures/agent-output-samples', import.meta.url).pathname;

function sample(name: string): string {
  return readFileSync(`${SAMPLES}/${name}`, 'utf8');
}

function sampleLines(name: string): string[] {
  return sample(name).split('\n').filter((l) => l !== '');
}

function feed(parser: AgentStreamParser, lines: string[]): AgentEvent[] {
  return lines.flatMap((line) => parser.push(line));
}

const zero = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0, reasoning: 0, total: 0 };
const GARBAGE = ['', 'not json', '{broken', '[1,2,3]', '[', 'null', '42', '"str"', '{"type":"mystery","x":1}', '\u0000\u0001', 'Warning: something'];

describe('Gemini CLI stream-json parser: real samples', () => {
  const SESSION = 'ca29fa3e-dbf5-434c-ad62-c05a6eefe3f6';
  // The stream's stats have no thoughts and its total (3030) leaves no room for any: output is the 30 candidates.
  const tokens = { input: 1200, output: 30, cacheRead: 1800, cacheWrite: 0, reasoning: 0, total: 3030 };

  it('reads the success sample', () => {
    const parser = createGeminiStreamParser();
    const events = feed(parser, sampleLines('gemini-0.61.0.stream.jsonl'));
    expect(events).toEqual([
      { kind: 'init', sessionId: SESSION, model: 'mock' },
      { kind: 'turn', turn: 1, tokens: zero },
      { kind: 'tool', name: 'write_file', summary: 'write_file: /work/repo/hello.txt' },
      { kind: 'turn', turn: 2, tokens: zero },
      { kind: 'text', text: 'Done: I wrote hello.txt.' },
      { kind: 'turn', turn: 2, tokens },
      { kind: 'result', subtype: 'success', isError: false },
    ]);
    expect(parser.outcome()).toEqual({
      model: 'mock',
      sessionId: SESSION,
      turns: 2,
      resultText: 'Done: I wrote hello.txt.',
      resultSubtype: 'success',
      isError: false,
      tokens,
      fromResult: true,
    });
    expect(parser.outcome().costUsd).toBeUndefined();
    expect(parser.outcome().version).toBeUndefined();
  });

  it('keeps what it saw when the result line is missing', () => {
    const lines = sampleLines('gemini-0.61.0.stream.jsonl').filter((l) => !l.includes('"type":"result"'));
    const parser = createGeminiStreamParser();
    const events = feed(parser, lines);
    expect(events.map((e) => e.kind)).toEqual(['init', 'turn', 'tool', 'turn']);
    expect(parser.outcome()).toEqual({ model: 'mock', sessionId: SESSION, turns: 2, isError: false, tokens: zero, fromResult: false });
    expect(parser.outcome().resultSubtype).toBeUndefined();
  });

  it('gives nothing from the empty stdout of the 500 run', () => {
    const parser = createGeminiStreamParser();
    expect(parser.push('')).toEqual([]);
    expect(parser.outcome()).toEqual({ turns: 0, isError: false, tokens: zero, fromResult: false });
  });

  it('ignores garbage lines mixed into the sample', () => {
    const lines = sampleLines('gemini-0.61.0.stream.jsonl').flatMap((l) => [...GARBAGE, l]);
    const parser = createGeminiStreamParser();
    expect(feed(parser, lines).map((e) => e.kind)).toEqual(['init', 'turn', 'tool', 'turn', 'text', 'turn', 'result']);
    expect(parser.outcome().tokens.total).toBe(3030);
  });
});

describe('Gemini CLI -o json and stderr error', () => {
  it('reads the -o json sample: output = candidates + thoughts', () => {
    expect(parseGeminiJsonOutput(sample('gemini-0.61.0.json'))).toEqual({
      model: 'mock',
      sessionId: 'fb0cc13e-eb8f-464e-95c4-1f660bb64a7e',
      turns: 2,
      resultText: 'Done: I wrote hello.txt.',
      resultSubtype: 'success',
      isError: false,
      // 30 candidates + 5 thoughts; the sample's own total (3030) leaves the thoughts out.
      tokens: { input: 1200, output: 35, cacheRead: 1800, cacheWrite: 0, reasoning: 5, total: 3035 },
      fromResult: true,
    });
  });

  it('reads the API message from the 500 run stderr', () => {
    const lines = sample('gemini-0.61.0-500.stderr-tail.json').split('\n');
    expect(geminiErrorReason(lines)).toBe('mock internal error');
    // Retry notices before it and the entrypoint's own lines after it are skipped.
    const noisy = [
      'Attempt 1 failed with status 500. Retrying with backoff... ApiError: {"error":{"message":"other"}}',
      ...lines,
      'agent-worker: agent exited with status 244',
    ];
    expect(geminiErrorReason(noisy)).toBe('mock internal error');
    // The same document parsed whole (what `-o json` prints on error).
    expect(parseGeminiJsonOutput(sample('gemini-0.61.0-500.stderr-tail.json'))).toEqual({
      model: undefined,
      sessionId: '823515c9-12bb-44c2-bff7-a1858142ed56',
      turns: 0,
      resultText: 'mock internal error',
      resultSubtype: 'error',
      isError: true,
      tokens: zero,
      fromResult: true,
    });
  });

  it('reads other error documents and ignores stderr without one', () => {
    const doc = (message: string): string[] => JSON.stringify({ session_id: 's', error: { type: 'Error', message, code: 1 } }, null, 2).split('\n');
    expect(geminiErrorReason(doc('Reached max session turns for this session.'))).toBe('Reached max session turns for this session.');
    expect(geminiErrorReason(doc('got status: 429 Too Many Requests. [{"error":{"code":429,"message":"Quota\\nexceeded","status":"RESOURCE_EXHAUSTED"}}]'))).toBe('Quota exceeded');
    expect(geminiErrorReason(doc('[API Error: x]'))).toBe('[API Error: x]');
    expect(geminiErrorReason([JSON.stringify({ error: { message: 'one line' } })])).toBe('one line');
    expect(geminiErrorReason(doc('x'.repeat(1000)))?.length).toBeLessThanOrEqual(200);
    expect(geminiErrorReason([])).toBeUndefined();
    expect(geminiErrorReason(['Error when talking to Gemini API', '}', '{', 'not json', '{ "a": 1 }'])).toBeUndefined();
    expect(geminiErrorReason(doc(''))).toBeUndefined();
    expect(parseGeminiJsonOutput('not json')).toBeUndefined();
    expect(parseGeminiJsonOutput('[1]')).toBeUndefined();
  });
});

describe('Gemini CLI stream-json parser: synthetic streams', () => {
  const line = (obj: Record<string, unknown>): string => JSON.stringify(obj);

  it('joins text deltas of a turn into one text event and reads an error result', () => {
    const parser = createGeminiStreamParser();
    const events = feed(parser, [
      line({ type: 'init', session_id: 's', model: 'gemini-2.5-pro' }),
      line({ type: 'message', role: 'assistant', content: 'Let me ', delta: true }),
      line({ type: 'message', role: 'assistant', content: 'look.\n', delta: true }),
      line({ type: 'tool_use', tool_name: 'run_shell_command', tool_id: 't1', parameters: { command: 'npm test' } }),
      line({ type: 'tool_use', tool_name: 'read_file', tool_id: 't2', parameters: { file_path: '/workspace/src/a.ts' } }),
      line({ type: 'tool_result', tool_id: 't1', status: 'success', output: 'ok' }),
      line({ type: 'error', severity: 'warning', message: 'loop detected?' }),
      line({ type: 'message', role: 'assistant', content: 'Half', delta: true }),
      line({ type: 'result', status: 'error', error: { type: 'Error', message: '{"error":{"message":"quota exceeded","code":429}}' }, stats: { input_tokens: 10, output_tokens: 2, cached: 4, input: 6, total_tokens: 12 } }),
    ]);
    expect(events).toEqual([
      { kind: 'init', sessionId: 's', model: 'gemini-2.5-pro' },
      { kind: 'turn', turn: 1, tokens: zero },
      { kind: 'text', text: 'Let me look.' },
      { kind: 'tool', name: 'run_shell_command', summary: 'run_shell_command: npm test' },
      { kind: 'tool', name: 'read_file', summary: 'read_file: src/a.ts' },
      { kind: 'turn', turn: 2, tokens: zero },
      { kind: 'text', text: 'Half' },
      { kind: 'turn', turn: 2, tokens: { input: 6, output: 2, cacheRead: 4, cacheWrite: 0, reasoning: 0, total: 12 } },
      { kind: 'result', subtype: 'error', isError: true },
    ]);
    expect(parser.outcome()).toMatchObject({ turns: 2, isError: true, resultSubtype: 'error', resultText: 'quota exceeded', fromResult: true });
  });

  it('uses the last error event when an error result has no message', () => {
    const parser = createGeminiStreamParser();
    feed(parser, [line({ type: 'error', severity: 'error', message: 'fatal thing' }), line({ type: 'result', status: 'error' })]);
    expect(parser.outcome()).toMatchObject({ isError: true, resultText: 'fatal thing', turns: 0, tokens: zero });
  });

  it('counts thoughts from a thoughts field, else from what the total leaves', () => {
    // Real Gemini API: totalTokenCount = prompt + candidates + thoughts.
    expect(geminiStreamStatsUsage({ input_tokens: 1000, output_tokens: 50, cached: 600, input: 400, total_tokens: 1250 })).toEqual({
      input: 400, output: 250, cacheRead: 600, cacheWrite: 0, reasoning: 200, total: 1250,
    });
    expect(geminiStreamStatsUsage({ input_tokens: 1000, output_tokens: 50, cached: 600, thoughts: 7, total_tokens: 1250 })).toEqual({
      input: 400, output: 57, cacheRead: 600, cacheWrite: 0, reasoning: 7, total: 1057,
    });
    // Per-model entries when the top-level fields are absent; an inconsistent total never gives negative thoughts.
    expect(geminiStreamStatsUsage({ models: { a: { input_tokens: 10, output_tokens: 1, cached: 0, total_tokens: 5 }, b: { input_tokens: 20, output_tokens: 2, cached: 5, input: 15 }, c: null } })).toEqual({
      input: 25, output: 3, cacheRead: 5, cacheWrite: 0, reasoning: 0, total: 33,
    });
    expect(geminiStreamStatsUsage(undefined)).toEqual(zero);
    expect(geminiStreamStatsUsage({ input_tokens: 'many' })).toEqual(zero);
  });

  it('handles a megabyte line in linear time: text truncated, final answer capped', () => {
    const big = 'word '.repeat(200_000); // 1 MB
    const parser = createGeminiStreamParser();
    const started = Date.now();
    const events = feed(parser, [
      line({ type: 'tool_use', tool_name: 'write_file', tool_id: 't', parameters: { file_path: '/workspace/big.txt', content: big } }),
      line({ type: 'tool_result', tool_id: 't', status: 'success', output: big }),
      line({ type: 'message', role: 'assistant', content: big, delta: true }),
      line({ type: 'tool_result', tool_id: 't', status: 'success' }),
      // The final answer, 1 MB streamed in small deltas.
      ...Array.from({ length: 20_000 }, () => line({ type: 'message', role: 'assistant', content: 'word '.repeat(10), delta: true })),
      line({ type: 'result', status: 'success', stats: {} }),
    ]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(events).toContainEqual({ kind: 'tool', name: 'write_file', summary: 'write_file: big.txt' });
    const texts = events.filter((e) => e.kind === 'text');
    expect(texts).toHaveLength(2);
    for (const text of texts) {
      expect(text.kind === 'text' && text.text.length).toBeLessThanOrEqual(200);
      expect(text.kind === 'text' && text.text.endsWith('…')).toBe(true);
    }
    const answer = parser.outcome().resultText ?? '';
    expect(answer.length).toBe(GEMINI_RESULT_TEXT_MAX_CHARS);
    expect(answer.endsWith('…')).toBe(true);
    expect(big.startsWith(answer.slice(0, -1))).toBe(true);
  });

  it('never throws on odd shapes', () => {
    const parser = createGeminiStreamParser();
    const odd = [
      '{"type":"init","session_id":7,"model":[]}',
      '{"type":"message","role":"assistant","content":{"x":1}}',
      '{"type":"message"}',
      '{"type":"tool_use","tool_name":5,"parameters":"x"}',
      '{"type":"tool_use","tool_name":"glob","parameters":{"pattern":["a",1,null]}}',
      '{"type":"error","severity":"error","message":null}',
      '{"type":"result","status":null,"error":"plain","stats":{"models":"x"}}',
      '{"type":"result","stats":[1,2]}',
    ];
    expect(() => feed(parser, odd)).not.toThrow();
    expect(Number.isFinite(parser.outcome().turns)).toBe(true);
    expect(parser.outcome().tokens).toEqual(zero);
  });
});

describe('Qwen Code stream-json parser: real samples', () => {
  const SESSION = 'e52783a6-4b8d-4407-8be7-606cdd0d0afc';
  const tokens = { input: 1200, output: 30, cacheRead: 1800, cacheWrite: 0, reasoning: 0, total: 3030 };

  it('reads the stream-json success sample: input excludes cache reads', () => {
    const parser = createQwenStreamParser();
    const events = feed(parser, sampleLines('qwen-0.24.4.stream.jsonl'));
    expect(events).toEqual([
      { kind: 'init', sessionId: SESSION, model: 'mock', version: '0.24.4' },
      { kind: 'turn', turn: 1, tokens: { input: 700, output: 20, cacheRead: 300, cacheWrite: 0, reasoning: 0, total: 1020 } },
      { kind: 'tool', name: 'write_file', summary: 'write_file: /work/repo/hello.txt' },
      { kind: 'turn', turn: 2, tokens },
      { kind: 'text', text: 'Done: I wrote hello.txt.' },
      { kind: 'result', subtype: 'success', isError: false },
    ]);
    expect(parser.outcome()).toEqual({
      version: '0.24.4',
      model: 'mock',
      sessionId: SESSION,
      turns: 2,
      resultText: 'Done: I wrote hello.txt.',
      resultSubtype: 'success',
      isError: false,
      limitReached: undefined,
      tokens,
      fromResult: true,
    });
    expect(parser.outcome().costUsd).toBeUndefined();
  });

  it('reads the -o json success sample (one array line), with reasoning from its stats', () => {
    const lines = sampleLines('qwen-0.24.4.json');
    expect(lines).toHaveLength(1);
    const parser = createQwenStreamParser();
    const events = feed(parser, lines);
    expect(events.map((e) => e.kind)).toEqual(['init', 'turn', 'tool', 'turn', 'text', 'result']);
    expect(parser.outcome()).toEqual({
      version: '0.24.4',
      model: 'mock',
      sessionId: '74cf879b-ce2f-4324-a675-6cdafab43c1e',
      turns: 2,
      resultText: 'Done: I wrote hello.txt.',
      resultSubtype: 'success',
      isError: false,
      limitReached: undefined,
      // output 30 = completion tokens, reasoning (stats thoughts: 5) included.
      tokens: { ...tokens, reasoning: 5 },
      fromResult: true,
    });
  });

  it('reads the 500 sample as an error with the agent reason', () => {
    const lines = sampleLines('qwen-0.24.4-500.json');
    expect(lines).toHaveLength(1);
    const parser = createQwenStreamParser();
    const events = feed(parser, lines);
    expect(events).toEqual([
      { kind: 'init', sessionId: '8c570aa0-9d01-4821-b26d-272a40732819', model: 'mock', version: '0.24.4' },
      { kind: 'turn', turn: 1, tokens: zero },
      { kind: 'text', text: '[API Error: 500 mock internal error]' },
      { kind: 'result', subtype: 'error_during_execution', isError: true },
    ]);
    expect(parser.outcome()).toEqual({
      version: '0.24.4',
      model: 'mock',
      sessionId: '8c570aa0-9d01-4821-b26d-272a40732819',
      turns: 1,
      resultText: '[API Error: 500 mock internal error]',
      resultSubtype: 'error_during_execution',
      isError: true,
      limitReached: undefined,
      tokens: zero,
      fromResult: true,
    });
  });

  it('sums assistant messages when the result line is missing', () => {
    const lines = sampleLines('qwen-0.24.4.stream.jsonl').filter((l) => !l.includes('"type":"result"'));
    const parser = createQwenStreamParser();
    feed(parser, lines);
    expect(parser.outcome()).toEqual({ version: '0.24.4', model: 'mock', sessionId: SESSION, turns: 2, isError: false, tokens, fromResult: false });
  });

  it('ignores garbage lines mixed into the sample', () => {
    const lines = sampleLines('qwen-0.24.4.stream.jsonl').flatMap((l) => [...GARBAGE, l]);
    const parser = createQwenStreamParser();
    expect(feed(parser, lines).map((e) => e.kind)).toEqual(['init', 'turn', 'tool', 'turn', 'text', 'result']);
    expect(parser.outcome().tokens).toEqual(tokens);
  });
});

describe('Qwen Code stream-json parser: synthetic streams', () => {
  const assistant = (id: string, content: unknown[], usage: Record<string, number>, parent: string | null = null): string =>
    JSON.stringify({ type: 'assistant', uuid: id, session_id: 's', parent_tool_use_id: parent, message: { id, type: 'message', role: 'assistant', model: 'qwen3-coder-plus', content, usage } });
  const none = { input_tokens: 0, output_tokens: 0 };
  const user = JSON.stringify({ type: 'user', session_id: 's', parent_tool_use_id: null, message: { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'ok' }] } });

  it('counts a response split over several messages as one turn, its usage once', () => {
    const parser = createQwenStreamParser();
    const events = feed(parser, [
      assistant('m1', [{ type: 'thinking', thinking: 'hmm' }], none),
      assistant('m2', [{ type: 'text', text: 'Checking.' }], none),
      assistant('m3', [{ type: 'tool_use', id: 't1', name: 'run_shell_command', input: { command: 'ls -la' } }], { input_tokens: 100, output_tokens: 10, cache_read_input_tokens: 60 }),
      assistant('m3', [{ type: 'tool_use', id: 't1', name: 'run_shell_command', input: { command: 'ls -la' } }], { input_tokens: 100, output_tokens: 10, cache_read_input_tokens: 60 }),
      assistant('sub1', [{ type: 'text', text: 'sub' }], { input_tokens: 5, output_tokens: 1 }, 't1'),
      user,
      assistant('m4', [{ type: 'tool_use', id: 't2', name: 'edit', input: { file_path: '/workspace/a.ts', old_string: 'x', new_string: 'y' } }], { input_tokens: 200, output_tokens: 20, cache_read_input_tokens: 150 }),
    ]);
    expect(events).toEqual([
      { kind: 'turn', turn: 1, tokens: zero },
      { kind: 'text', text: 'Checking.' },
      { kind: 'turn', turn: 1, tokens: { input: 40, output: 10, cacheRead: 60, cacheWrite: 0, reasoning: 0, total: 110 } },
      { kind: 'tool', name: 'run_shell_command', summary: 'run_shell_command: ls -la' },
      { kind: 'tool', name: 'run_shell_command', summary: 'run_shell_command: ls -la' },
      { kind: 'turn', turn: 1, tokens: { input: 45, output: 11, cacheRead: 60, cacheWrite: 0, reasoning: 0, total: 116 } },
      { kind: 'text', text: 'sub' },
      { kind: 'turn', turn: 2, tokens: { input: 95, output: 31, cacheRead: 210, cacheWrite: 0, reasoning: 0, total: 336 } },
      { kind: 'tool', name: 'edit', summary: 'edit: a.ts' },
    ]);
    expect(parser.outcome()).toMatchObject({ turns: 2, fromResult: false, model: 'qwen3-coder-plus', sessionId: 's' });
  });

  it('reads error_max_turns as the max_turns limit', () => {
    const parser = createQwenStreamParser();
    const events = parser.push(
      JSON.stringify({ type: 'result', subtype: 'error_max_turns', is_error: true, num_turns: 5, usage: { input_tokens: 10, output_tokens: 1, cache_read_input_tokens: 4 }, error: { message: 'Reached max session turns' } }),
    );
    expect(events).toEqual([{ kind: 'result', subtype: 'error_max_turns', isError: true }]);
    expect(parser.outcome()).toMatchObject({
      turns: 5,
      isError: true,
      limitReached: 'max_turns',
      resultText: 'Reached max session turns',
      tokens: { input: 6, output: 1, cacheRead: 4, cacheWrite: 0, reasoning: 0, total: 11 },
    });
  });

  it('normalises usage: input is the prompt less cache reads and writes', () => {
    expect(qwenUsage({ input_tokens: 3000, output_tokens: 30, cache_read_input_tokens: 1800, total_tokens: 3030 })).toEqual({
      input: 1200, output: 30, cacheRead: 1800, cacheWrite: 0, reasoning: 0, total: 3030,
    });
    expect(qwenUsage({ input_tokens: 100, output_tokens: 1, cache_read_input_tokens: 50, cache_creation_input_tokens: 30 })).toEqual({
      input: 20, output: 1, cacheRead: 50, cacheWrite: 30, reasoning: 0, total: 101,
    });
    expect(qwenUsage({ input_tokens: 1, cache_read_input_tokens: 5 }).input).toBe(0);
    expect(qwenUsage('x')).toEqual(zero);
  });

  it('keeps the whole result text of a long stream-json result line, and handles megabyte lines', () => {
    const big = 'word '.repeat(200_000); // 1 MB
    const parser = createQwenStreamParser();
    const started = Date.now();
    const events = feed(parser, [
      assistant('m1', [{ type: 'tool_use', id: 't1', name: 'write_file', input: { file_path: '/workspace/big.txt', content: big } }], { input_tokens: 1, output_tokens: 1 }),
      JSON.stringify({ type: 'user', message: { role: 'user', content: [{ type: 'tool_result', content: big }] } }),
      assistant('m2', [{ type: 'text', text: big }], { input_tokens: 1, output_tokens: 1 }),
      JSON.stringify({ type: 'result', subtype: 'success', is_error: false, num_turns: 2, result: big, usage: { input_tokens: 2, output_tokens: 2 } }),
    ]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(events).toContainEqual({ kind: 'tool', name: 'write_file', summary: 'write_file: big.txt' });
    const text = events.find((e) => e.kind === 'text');
    expect(text?.kind === 'text' && text.text.length).toBeLessThanOrEqual(200);
    expect(parser.outcome().resultText).toBe(big);

    // A -o json array longer than LONG_LINE_CHARS is read with bounded strings.
    const array = JSON.stringify([
      { type: 'system', subtype: 'init', session_id: 'a', model: 'm', qwen_code_version: '0.24.4' },
      { type: 'assistant', session_id: 'a', parent_tool_use_id: null, message: { id: 'x', content: [{ type: 'text', text: big }], usage: { input_tokens: 3, output_tokens: 2 } } },
      { type: 'result', subtype: 'success', is_error: false, num_turns: 1, result: big, usage: { input_tokens: 3, output_tokens: 2 } },
    ]);
    expect(array.length).toBeGreaterThan(LONG_LINE_CHARS);
    const p2 = createQwenStreamParser();
    expect(p2.push(array).map((e) => e.kind)).toEqual(['init', 'turn', 'text', 'result']);
    const answer = p2.outcome().resultText ?? '';
    expect(answer.length).toBeLessThan(10_000);
    expect(answer.endsWith('…')).toBe(true);
    expect(p2.outcome().tokens.total).toBe(5);
  });

  it('never throws on odd shapes', () => {
    const parser = createQwenStreamParser();
    const odd = [
      '{"type":"assistant"}',
      '{"type":"assistant","message":"text"}',
      '{"type":"assistant","message":{"content":"not an array"}}',
      '{"type":"assistant","message":{"id":5,"content":[null,5,"x",{"type":"tool_use"},{"type":"text"}],"usage":{"input_tokens":"many"}}}',
      '{"type":"system","subtype":"init","session_id":7}',
      '{"type":"system","subtype":"model_fallback"}',
      '{"type":"result","usage":null,"num_turns":"3","stats":{"models":{"m":{"tokens":null}}}}',
      '[{"type":"result","error":"plain","is_error":true}, 5, null, "x"]',
      '[{"type":',
    ];
    expect(() => feed(parser, odd)).not.toThrow();
    expect(Number.isFinite(parser.outcome().turns)).toBe(true);
    expect(parser.outcome()).toMatchObject({ isError: true, resultText: 'plain' });
  });
});

describe('garbage never throws', () => {
  it('survives every cut and splice of the real samples', () => {
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const texts = ['gemini-0.61.0.stream.jsonl', 'gemini-0.61.0.json', 'gemini-0.61.0-500.stderr-tail.json', 'qwen-0.24.4.stream.jsonl', 'qwen-0.24.4.json', 'qwen-0.24.4-500.json'].map(sample);
    for (let i = 0; i < 800; i += 1) {
      const text = texts[random(texts.length)]!;
      const at = random(text.length);
      const mangled = text.slice(0, at) + ['{', '}', '"', '[', '\\', 'null', '\n', ''][random(8)] + text.slice(at + random(40));
      const lines = mangled.split('\n');
      for (const parser of [createGeminiStreamParser(), createQwenStreamParser()]) {
        expect(() => feed(parser, lines)).not.toThrow();
        const outcome = parser.outcome();
        expect(Number.isFinite(outcome.tokens.total)).toBe(true);
      }
      expect(() => geminiErrorReason(lines)).not.toThrow();
      expect(() => parseGeminiJsonOutput(mangled)).not.toThrow();
    }
  });
});

describe('tool summaries', () => {
  it('summarizes Gemini CLI tools', () => {
    expect(summarizeGeminiTool('write_file', { file_path: '/workspace/hello.txt', content: 'secret body' })).toBe('write_file: hello.txt');
    expect(summarizeGeminiTool('replace', { file_path: '/workspace/src/a.ts', old_string: 'a', new_string: 'b' })).toBe('replace: src/a.ts');
    expect(summarizeGeminiTool('read_file', { absolute_path: '/workspace' })).toBe('read_file: .');
    expect(summarizeGeminiTool('run_shell_command', { command: 'npm ci &&\n npm test', description: 'tests', dir_path: '/workspace' })).toBe(
      'run_shell_command: npm ci && npm test',
    );
    expect(summarizeGeminiTool('glob', { pattern: '**/*.ts', dir_path: '/workspace/src' })).toBe('glob: **/*.ts');
    expect(summarizeGeminiTool('search_file_content', { pattern: 'TODO\\(' })).toBe('search_file_content: TODO\\(');
    expect(summarizeGeminiTool('list_directory', { dir_path: '/workspace/src' })).toBe('list_directory: src');
    expect(summarizeGeminiTool('read_many_files', { paths: ['/workspace/a.ts', '/workspace/b.ts'] })).toBe('read_many_files: a.ts b.ts');
    expect(summarizeGeminiTool('google_web_search', { query: 'vitest' })).toBe('google_web_search: vitest');
    expect(summarizeGeminiTool('write_todos', { todos: [] })).toBe('write_todos');
    expect(summarizeGeminiTool('run_shell_command', { command: '   ' })).toBe('run_shell_command');
    expect(summarizeGeminiTool('run_shell_command', null)).toBe('run_shell_command');
    const long = summarizeGeminiTool('run_shell_command', { command: `echo ${'x'.repeat(500)}` });
    expect(long.length).toBeLessThanOrEqual(60);
    expect(long.endsWith('…')).toBe(true);
  });

  it('summarizes Qwen Code tools', () => {
    expect(summarizeQwenTool('write_file', { file_path: '/workspace/hello.txt', content: 'secret body' })).toBe('write_file: hello.txt');
    expect(summarizeQwenTool('edit', { file_path: '/workspace/a.ts', old_string: 'a', new_string: 'b' })).toBe('edit: a.ts');
    expect(summarizeQwenTool('run_shell_command', { command: 'git status', is_background: false })).toBe('run_shell_command: git status');
    expect(summarizeQwenTool('grep_search', { pattern: 'foo', path: '/workspace/src' })).toBe('grep_search: foo');
    expect(summarizeQwenTool('web_fetch', { url: 'https://example.com', prompt: 'summarize' })).toBe('web_fetch: https://example.com');
    expect(summarizeQwenTool('agent', { description: 'explore the repo', prompt: 'long…', subagent_type: 'Explore' })).toBe('agent: explore the repo');
    expect(summarizeQwenTool('skill', { skill: 'review' })).toBe('skill: review');
    expect(summarizeQwenTool('todo_write', { todos: [] })).toBe('todo_write');
    expect(summarizeQwenTool('read_file', { file_path: `/workspace/${'d/'.repeat(100)}f.ts` }).length).toBeLessThanOrEqual(60);
  });
});

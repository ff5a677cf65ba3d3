import { afterEach, describe, expect, it } from 'vitest';
import {
  startFakeChatCompletions,
  type FakeChatCompletions,
  type ScriptedTurn,
} from '../fixtures/fake-chat-completions.js';

type Chunk = Record<string, unknown>;

/** Parses a complete Chat Completions stream (`data:` frames ending with `[DONE]`), tolerant of `\r\n` line ends. */
function parseChunks(text: string): { chunks: Chunk[]; done: boolean } {
  const frames = text
    .replace(/\r\n?/g, '\n')
    .split('\n\n')
    .filter((frame) => frame.trim().length > 0)
    .map((frame) => {
      const data = frame.split('\n').find((l) => l.startsWith('data:'));
      if (data === undefined) throw new Error(`malformed SSE frame: ${frame}`);
      return data.slice('data:'.length).trim();
    });
  const done = frames[frames.length - 1] === '[DONE]';
  return { chunks: frames.filter((f) => f !== '[DONE]').map((f) => JSON.parse(f) as Chunk), done };
}

interface Assembled {
  role?: string;
  text: string;
  toolCalls: Array<{ id: string; type: string; name: string; arguments: string }>;
  finishReason?: string;
  usage?: Record<string, unknown>;
}

/** Rebuilds the message the way `@ai-sdk/openai-compatible` and the `openai` SDK do (tool calls by `index`). */
function assemble(chunks: Chunk[]): Assembled {
  const out: Assembled = { text: '', toolCalls: [] };
  for (const chunk of chunks) {
    expect(chunk.object).toBe('chat.completion.chunk');
    if (chunk.usage !== null && chunk.usage !== undefined) out.usage = chunk.usage as Record<string, unknown>;
    const choice = (chunk.choices as Array<Record<string, unknown>>)[0];
    if (choice === undefined) continue;
    if (typeof choice.finish_reason === 'string') out.finishReason = choice.finish_reason;
    const delta = choice.delta as Record<string, unknown>;
    if (typeof delta.role === 'string') out.role = delta.role;
    if (typeof delta.content === 'string') out.text += delta.content;
    for (const call of (delta.tool_calls as Array<Record<string, unknown>> | undefined) ?? []) {
      const fn = call.function as Record<string, string | undefined>;
      expect(fn).toBeDefined(); // @ai-sdk/openai-compatible requires `function` on every entry
      const index = call.index as number;
      if (out.toolCalls[index] === undefined) {
        expect(typeof call.id).toBe('string');
        expect(typeof fn.name).toBe('string');
        out.toolCalls[index] = {
          id: call.id as string,
          type: call.type as string,
          name: fn.name as string,
          arguments: fn.arguments ?? '',
        };
      } else {
        expect(call.id).toBeUndefined();
        (out.toolCalls[index] as { arguments: string }).arguments += fn.arguments ?? '';
      }
    }
  }
  return out;
}

const KEY = 'sk-test-secret';
const tools = [{ type: 'function', function: { name: 'bash', parameters: { type: 'object' } } }];

async function post(url: string, path: string, body: unknown, key: string | null = KEY): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  return fetch(`${url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
}

const turnBody = (messages: unknown[], includeUsage = true) => ({
  model: 'qwen-test',
  stream: true,
  ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
  tools,
  messages,
});

const script: ScriptedTurn[] = [
  {
    content: [
      { type: 'text', text: 'Writing the file.' },
      { type: 'tool_call', name: 'write', input: { filePath: '/work/x.txt', content: 'x\n' } },
    ],
    usage: { input: 100, output: 20, cacheRead: 40, reasoning: 8 },
  },
  {
    content: [
      { type: 'tool_call', name: 'bash', input: { command: 'cat /work/x.txt', description: 'show' } },
      { type: 'tool_call', name: 'read', input: { filePath: '/work/x.txt' } },
    ],
    usage: { input: 200, output: 30 },
  },
];

describe('fake OpenAI Chat Completions API', () => {
  let fake: FakeChatCompletions | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('streams scripted turns as chat.completion.chunk events, picked by counting tool messages', async () => {
    fake = await startFakeChatCompletions({ host: '127.0.0.1', script, expectedKey: KEY });
    expect(fake.url).toBe(`http://127.0.0.1:${fake.port}`);

    const first = await post(fake.url, '/v1/chat/completions', turnBody([{ role: 'user', content: 'go' }]));
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const { chunks, done } = parseChunks(await first.text());
    expect(done).toBe(true);
    // role chunk, 2 text pieces, tool-call opening + 3 argument pieces, finish chunk, usage chunk.
    expect(chunks).toHaveLength(9);
    const id = chunks[0]?.id;
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({ id, object: 'chat.completion.chunk', model: 'qwen-test' });
      expect(typeof chunk.created).toBe('number');
    }
    expect(chunks[0]?.choices).toEqual([
      { index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null },
    ]);
    expect((chunks[3]?.choices as Chunk[])[0]?.delta).toEqual({
      tool_calls: [
        { index: 0, id: 'call_fake_0_1', type: 'function', function: { name: 'write', arguments: '' } },
      ],
    });
    expect((chunks[4]?.choices as Chunk[])[0]?.delta).toMatchObject({ tool_calls: [{ index: 0, function: {} }] });
    expect(chunks[7]?.choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }]);
    // include_usage asked: every chunk but the last carries usage: null; the last has no choices.
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks[8]?.choices).toEqual([]);
    const turn0 = assemble(chunks);
    expect(turn0.role).toBe('assistant');
    expect(turn0.text).toBe('Writing the file.');
    expect(turn0.toolCalls).toEqual([
      {
        id: 'call_fake_0_1',
        type: 'function',
        name: 'write',
        arguments: JSON.stringify({ filePath: '/work/x.txt', content: 'x\n' }),
      },
    ]);
    expect(turn0.finishReason).toBe('tool_calls');
    // prompt_tokens includes the cached tokens; completion_tokens includes the reasoning tokens.
    expect(turn0.usage).toEqual({
      prompt_tokens: 140,
      completion_tokens: 20,
      total_tokens: 160,
      prompt_tokens_details: { cached_tokens: 40, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 8,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    });

    // One tool message → turn 1 (any prefix).
    const history1 = [
      { role: 'user', content: 'go' },
      {
        role: 'assistant',
        content: 'Writing the file.',
        tool_calls: [{ id: 'call_fake_0_1', type: 'function', function: { name: 'write', arguments: '{}' } }],
      },
      { role: 'tool', tool_call_id: 'call_fake_0_1', content: 'Wrote file successfully.' },
    ];
    const turn1 = assemble(parseChunks(await (await post(fake.url, '/api/chat/completions', turnBody(history1))).text()).chunks);
    expect(turn1.text).toBe('');
    expect(turn1.toolCalls.map((c) => [c.id, c.name, JSON.parse(c.arguments)])).toEqual([
      ['call_fake_1_0', 'bash', { command: 'cat /work/x.txt', description: 'show' }],
      ['call_fake_1_1', 'read', { filePath: '/work/x.txt' }],
    ]);

    // Three tool messages → final text turn ending with finish_reason "stop".
    const history2 = [
      ...history1,
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_fake_1_0', type: 'function', function: { name: 'bash', arguments: '{}' } },
          { id: 'call_fake_1_1', type: 'function', function: { name: 'read', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_fake_1_0', content: [{ type: 'text', text: 'x' }] },
      { role: 'tool', tool_call_id: 'call_fake_1_1', content: '1\tx' },
    ];
    const final = assemble(parseChunks(await (await post(fake.url, '/chat/completions', turnBody(history2))).text()).chunks);
    expect(final).toMatchObject({ text: 'Done.', toolCalls: [], finishReason: 'stop' });

    expect(fake.requests.map((r) => [r.kind, r.turn, r.status, r.credential])).toEqual([
      ['turn', 0, 200, 'expected'],
      ['turn', 1, 200, 'expected'],
      ['turn', 'final', 200, 'expected'],
    ]);
    expect(fake.requests[0]?.headers.authorization).toBe('[REDACTED]');
    expect(JSON.stringify(fake.requests)).not.toContain(KEY);
    expect(fake.served).toEqual({ input: 310, output: 55, cacheRead: 40, reasoning: 8, responses: 3 });
    expect(fake.toolResults()).toEqual([
      { callId: 'call_fake_0_1', name: 'write', output: 'Wrote file successfully.', isError: false },
      { callId: 'call_fake_1_0', name: 'bash', output: 'x', isError: false },
      { callId: 'call_fake_1_1', name: 'read', output: '1\tx', isError: false },
    ]);
  });

  it('sends the usage chunk unasked by default, and only when asked with usageChunk "requested"', async () => {
    fake = await startFakeChatCompletions({ host: '127.0.0.1', script: [] });
    const unasked = parseChunks(await (await post(fake.url, '/v1/chat/completions', turnBody([], false))).text());
    expect(unasked.done).toBe(true);
    expect(unasked.chunks.slice(0, -1).every((c) => !('usage' in c))).toBe(true);
    expect(unasked.chunks[unasked.chunks.length - 1]).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });

    const strict = await startFakeChatCompletions({ host: '127.0.0.1', script: [], usageChunk: 'requested' });
    try {
      const withoutUsage = parseChunks(await (await post(strict.url, '/v1/chat/completions', turnBody([], false))).text());
      expect(withoutUsage.done).toBe(true);
      expect(withoutUsage.chunks.every((c) => (c.choices as unknown[]).length === 1 && !('usage' in c))).toBe(true);
      expect(assemble(withoutUsage.chunks)).toMatchObject({ text: 'Done.', finishReason: 'stop' });
      const withUsage = parseChunks(await (await post(strict.url, '/v1/chat/completions', turnBody([], true))).text());
      expect(assemble(withUsage.chunks).usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 5 });
      // Served totals count the completion either way.
      expect(strict.served).toEqual({ input: 20, output: 10, cacheRead: 0, reasoning: 0, responses: 2 });
    } finally {
      await strict.close();
    }
  });

  it('answers side calls (streamed and not), model lists, probes and unknown routes, and tells credentials apart', async () => {
    fake = await startFakeChatCompletions({ host: '127.0.0.1', script, model: 'gpt-fallback', expectedKey: KEY });

    // OpenCode's title generation: no tools, streamed.
    const title = await post(
      fake.url,
      '/v1/chat/completions',
      { model: 'small-model', stream: true, messages: [{ role: 'user', content: 'title?' }] },
      'wrong',
    );
    const titleTurn = assemble(parseChunks(await title.text()).chunks);
    expect(titleTurn).toMatchObject({ text: 'OK', finishReason: 'stop' });

    const nonStreaming = await post(fake.url, '/v1/chat/completions', { messages: [], tools: [] }, null);
    expect(await nonStreaming.json()).toEqual({
      id: expect.stringMatching(/^chatcmpl-/) as unknown,
      object: 'chat.completion',
      created: expect.any(Number) as unknown,
      model: 'gpt-fallback',
      system_fingerprint: 'fp_fake',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'OK', refusal: null },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: {
        prompt_tokens: 8,
        completion_tokens: 1,
        total_tokens: 9,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: {
          reasoning_tokens: 0,
          audio_tokens: 0,
          accepted_prediction_tokens: 0,
          rejected_prediction_tokens: 0,
        },
      },
    });

    // A non-streaming scripted turn carries tool_calls in the message.
    const turnJson = await post(fake.url, '/v1/chat/completions', { ...turnBody([]), stream: false });
    expect(await turnJson.json()).toMatchObject({
      choices: [
        {
          message: {
            role: 'assistant',
            content: 'Writing the file.',
            tool_calls: [{ id: 'call_fake_0_1', type: 'function', function: { name: 'write' } }],
          },
          finish_reason: 'tool_calls',
        },
      ],
      usage: { prompt_tokens: 140, completion_tokens: 20 },
    });

    const models = await fetch(`${fake.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(await models.json()).toMatchObject({ object: 'list', data: [{ id: 'gpt-fallback', object: 'model' }] });
    expect((await fetch(`${fake.url}/`, { method: 'HEAD' })).status).toBe(200);
    const unknown = await post(fake.url, '/v1/completions', {});
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { type: 'invalid_request_error', param: null, code: null } });

    expect(fake.requests.map((r) => [r.method, r.kind, r.turn, r.credential, r.status])).toEqual([
      ['POST', 'side', undefined, 'other', 200],
      ['POST', 'side', undefined, 'none', 200],
      ['POST', 'turn', 0, 'expected', 200],
      ['GET', 'models', undefined, 'expected', 200],
      ['HEAD', 'other', undefined, 'none', 200],
      ['POST', 'other', undefined, 'expected', 404],
    ]);
    expect(fake.served).toEqual({ input: 116, output: 22, cacheRead: 40, reasoning: 8, responses: 3 });
  });

  it('answers an error turn in the API error shape and serves nothing for it', async () => {
    fake = await startFakeChatCompletions({
      host: '127.0.0.1',
      script: [{ content: [], usage: { input: 1, output: 1 }, error: { status: 503, message: 'overloaded' } }],
    });
    const response = await post(fake.url, '/v1/chat/completions', turnBody([]));
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({
      error: { message: 'overloaded', type: 'server_error', param: null, code: null },
    });
    expect(fake.requests.map((r) => [r.kind, r.turn, r.status])).toEqual([['turn', 0, 503]]);
    expect(fake.served).toEqual({ input: 0, output: 0, cacheRead: 0, reasoning: 0, responses: 0 });
  });

  it('failAll answers every request with the error and counts them', async () => {
    fake = await startFakeChatCompletions({ host: '127.0.0.1', script, failAll: { status: 500, message: 'down' } });
    const statuses = [
      (await post(fake.url, '/v1/chat/completions', turnBody([]))).status,
      (await post(fake.url, '/v1/chat/completions', { stream: true, messages: [] })).status,
      (await fetch(`${fake.url}/v1/models`)).status,
      (await fetch(`${fake.url}/`, { method: 'HEAD' })).status,
    ];
    expect(statuses).toEqual([500, 500, 500, 500]);
    const again = await post(fake.url, '/v1/chat/completions', turnBody([]));
    expect(await again.json()).toEqual({ error: { message: 'down', type: 'server_error', param: null, code: null } });
    expect(fake.requests.map((r) => [r.kind, r.status])).toEqual([
      ['turn', 500],
      ['side', 500],
      ['models', 500],
      ['other', 500],
      ['turn', 500],
    ]);
    expect(fake.served.responses).toBe(0);
  });

  it('stalls after the role chunk and close() ends the open response promptly', async () => {
    fake = await startFakeChatCompletions({
      host: '127.0.0.1',
      script: [{ content: [{ type: 'text', text: 'never sent' }], usage: { input: 5, output: 5 }, stall: true }],
    });
    const response = await post(fake.url, '/v1/chat/completions', turnBody([]));
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const text = new TextDecoder().decode((await reader.read()).value);
    expect(text).toMatch(/^data: \{/);
    expect(text).toContain('"role":"assistant"');
    expect(text).not.toContain('[DONE]');

    const closedAt = Date.now();
    await fake.close();
    expect(Date.now() - closedAt).toBeLessThan(1000);
    await expect(reader.read()).rejects.toThrow();
    expect(fake.served.responses).toBe(0);
    await fake.close(); // repeatable
  });
});

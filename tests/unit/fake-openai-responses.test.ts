import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import {
  startFakeOpenAIResponses,
  type FakeOpenAIResponses,
  type ScriptedTurn,
} from '../fixtures/fake-openai-responses.js';

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/** Parses a complete `text/event-stream` body (`event:` + `data:` per frame), tolerant of `\r\n` line ends. */
function parseSse(text: string): SseEvent[] {
  return text
    .replace(/\r\n?/g, '\n')
    .split('\n\n')
    .filter((frame) => frame.trim().length > 0)
    .map((frame) => {
      const lines = frame.split('\n');
      const event = lines.find((l) => l.startsWith('event:'))?.slice('event:'.length).trim();
      const data = lines.find((l) => l.startsWith('data:'))?.slice('data:'.length).trim();
      if (event === undefined || data === undefined) throw new Error(`malformed SSE frame: ${frame}`);
      const parsed = JSON.parse(data) as Record<string, unknown>;
      expect(parsed.type).toBe(event);
      return { event, data: parsed };
    });
}

/** Rebuilds the output items from the stream the way a client does, checking deltas against the `.done` events. */
function assemble(events: SseEvent[]) {
  events.forEach((e, index) => expect(e.data.sequence_number).toBe(index));
  const text = new Map<string, string>();
  const args = new Map<string, string>();
  const done: Array<Record<string, unknown>> = [];
  let completed: Record<string, unknown> | undefined;
  for (const { data } of events) {
    const itemId = data.item_id as string;
    if (data.type === 'response.output_text.delta') text.set(itemId, `${text.get(itemId) ?? ''}${data.delta as string}`);
    if (data.type === 'response.output_text.done') expect(data.text).toBe(text.get(itemId));
    if (data.type === 'response.function_call_arguments.delta') {
      args.set(itemId, `${args.get(itemId) ?? ''}${data.delta as string}`);
    }
    if (data.type === 'response.function_call_arguments.done') expect(data.arguments).toBe(args.get(itemId));
    if (data.type === 'response.output_item.done') done.push(data.item as Record<string, unknown>);
    if (data.type === 'response.completed') completed = data.response as Record<string, unknown>;
  }
  for (const item of done) {
    if (item.type === 'message') {
      const content = item.content as Array<Record<string, unknown>>;
      expect(content[0]?.text).toBe(text.get(item.id as string));
    } else {
      expect(item.arguments).toBe(args.get(item.id as string));
    }
  }
  return { items: done, completed: completed as Record<string, unknown> };
}

const KEY = 'sk-test-secret';
const tools = [{ type: 'function', name: 'exec_command', parameters: { type: 'object' } }];

async function post(url: string, path: string, body: unknown, key: string | null = KEY): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  return fetch(`${url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
}

const turnBody = (input: unknown[]) => ({ model: 'gpt-test', stream: true, tools, input, store: false });

const script: ScriptedTurn[] = [
  {
    content: [
      { type: 'text', text: 'Running a command now.' },
      { type: 'tool_call', name: 'exec_command', input: { cmd: 'echo hi && cat "a b.txt"', workdir: '/work' } },
    ],
    usage: { input: 100, output: 20, cacheRead: 30, reasoning: 5 },
  },
  {
    content: [
      { type: 'tool_call', name: 'shell', input: { command: ['bash', '-lc', 'ls'] } },
      { type: 'tool_call', name: 'exec_command', input: { cmd: 'pwd' } },
    ],
    usage: { input: 200, output: 30 },
  },
];

describe('fake OpenAI Responses API', () => {
  let fake: FakeOpenAIResponses | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('streams scripted turns as Responses events, picked by counting function_call_output items', async () => {
    fake = await startFakeOpenAIResponses({ host: '127.0.0.1', script, expectedKey: KEY });
    expect(fake.url).toBe(`http://127.0.0.1:${fake.port}`);

    const user = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go' }] };
    const first = await post(fake.url, '/v1/responses', turnBody([user]));
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = parseSse(await first.text());
    expect(events.map((e) => e.event)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]);
    const created = events[0]?.data.response as Record<string, unknown>;
    expect(created).toMatchObject({ object: 'response', status: 'in_progress', model: 'gpt-test', output: [], usage: null });
    expect(events[2]?.data.item).toEqual({
      id: 'msg_fake_0_0',
      type: 'message',
      status: 'in_progress',
      content: [],
      role: 'assistant',
    });
    expect(events[9]?.data.item).toEqual({
      id: 'fc_fake_0_1',
      type: 'function_call',
      status: 'in_progress',
      arguments: '',
      call_id: 'call_fake_0_1',
      name: 'exec_command',
    });
    const turn0 = assemble(events);
    expect(turn0.items).toEqual([
      {
        id: 'msg_fake_0_0',
        type: 'message',
        status: 'completed',
        content: [{ type: 'output_text', annotations: [], logprobs: [], text: 'Running a command now.' }],
        role: 'assistant',
      },
      {
        id: 'fc_fake_0_1',
        type: 'function_call',
        status: 'completed',
        arguments: JSON.stringify({ cmd: 'echo hi && cat "a b.txt"', workdir: '/work' }),
        call_id: 'call_fake_0_1',
        name: 'exec_command',
      },
    ]);
    expect(turn0.completed).toMatchObject({ id: created.id, status: 'completed', output: turn0.items });
    // input_tokens includes the cached tokens; output_tokens includes the reasoning tokens.
    expect(turn0.completed.usage).toEqual({
      input_tokens: 130,
      input_tokens_details: { cached_tokens: 30 },
      output_tokens: 20,
      output_tokens_details: { reasoning_tokens: 5 },
      total_tokens: 150,
    });

    // One function_call_output in the history → turn 1 (path without the /v1 prefix).
    const history1 = [
      user,
      { type: 'function_call', name: 'exec_command', arguments: '{}', call_id: 'call_fake_0_1' },
      { type: 'function_call_output', call_id: 'call_fake_0_1', output: 'hi\nA B' },
    ];
    const turn1 = assemble(parseSse(await (await post(fake.url, '/responses', turnBody(history1))).text()));
    expect(turn1.items.map((i) => [i.type, i.name, i.call_id])).toEqual([
      ['function_call', 'shell', 'call_fake_1_0'],
      ['function_call', 'exec_command', 'call_fake_1_1'],
    ]);
    expect(JSON.parse(turn1.items[0]?.arguments as string)).toEqual({ command: ['bash', '-lc', 'ls'] });

    // Three outputs → script exhausted → final text turn (any prefix ending in /responses).
    const history2 = [
      ...history1,
      { type: 'function_call', name: 'shell', arguments: '{}', call_id: 'call_fake_1_0' },
      { type: 'function_call', name: 'exec_command', arguments: '{}', call_id: 'call_fake_1_1' },
      { type: 'function_call_output', call_id: 'call_fake_1_0', output: [{ type: 'input_text', text: 'a.txt' }] },
      { type: 'function_call_output', call_id: 'call_fake_1_1', output: '/work' },
    ];
    const final = assemble(parseSse(await (await post(fake.url, '/openai/v1/responses?x=1', turnBody(history2))).text()));
    expect(final.items).toEqual([
      {
        id: 'msg_fake_2_0',
        type: 'message',
        status: 'completed',
        content: [{ type: 'output_text', annotations: [], logprobs: [], text: 'Done.' }],
        role: 'assistant',
      },
    ]);

    expect(fake.requests.map((r) => [r.kind, r.turn, r.status, r.credential])).toEqual([
      ['turn', 0, 200, 'expected'],
      ['turn', 1, 200, 'expected'],
      ['turn', 'final', 200, 'expected'],
    ]);
    expect(fake.requests[0]?.headers.authorization).toBe('[REDACTED]');
    expect(JSON.stringify(fake.requests)).not.toContain(KEY);
    expect(fake.requests[2]?.path).toBe('/openai/v1/responses?x=1');
    expect(fake.served).toEqual({ input: 310, output: 55, cacheRead: 30, reasoning: 5, responses: 3 });
    expect(fake.toolResults()).toEqual([
      { callId: 'call_fake_0_1', name: 'exec_command', output: 'hi\nA B', isError: false },
      { callId: 'call_fake_1_0', name: 'shell', output: 'a.txt', isError: false },
      { callId: 'call_fake_1_1', name: 'exec_command', output: '/work', isError: false },
    ]);
  });

  it('answers side calls, model lists, probes and unknown routes, and tells credentials apart', async () => {
    fake = await startFakeOpenAIResponses({ host: '127.0.0.1', script, model: 'gpt-fallback', expectedKey: KEY });

    const side = await post(fake.url, '/v1/responses', { model: 'gpt-mini', stream: true, input: 'title?' }, 'wrong');
    const sideTurn = assemble(parseSse(await side.text()));
    expect(sideTurn.items).toMatchObject([{ type: 'message', content: [{ text: 'OK' }] }]);
    expect(sideTurn.completed.model).toBe('gpt-mini');

    const nonStreaming = await post(fake.url, '/v1/responses', { input: [], tools: [] }, null);
    expect(await nonStreaming.json()).toMatchObject({
      object: 'response',
      status: 'completed',
      model: 'gpt-fallback',
      output: [{ type: 'message', content: [{ type: 'output_text', text: 'OK' }] }],
      usage: { input_tokens: 8, output_tokens: 1, total_tokens: 9 },
    });

    const models = await fetch(`${fake.url}/v1/models?client_version=0.1.0`);
    expect(await models.json()).toMatchObject({ object: 'list', data: [{ id: 'gpt-fallback' }], models: [] });
    expect((await fetch(`${fake.url}/`, { method: 'HEAD' })).status).toBe(200);
    const unknown = await post(fake.url, '/v1/responses/compact', {});
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { type: 'invalid_request_error', param: null, code: null } });
    const upgradeStatus = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${fake?.url}/v1/responses`, {
        headers: { connection: 'Upgrade', upgrade: 'websocket', authorization: `Bearer ${KEY}` },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(upgradeStatus).toBe(426);

    expect(fake.requests.map((r) => [r.method, r.kind, r.credential, r.status])).toEqual([
      ['POST', 'side', 'other', 200],
      ['POST', 'side', 'none', 200],
      ['GET', 'models', 'none', 200],
      ['HEAD', 'other', 'none', 200],
      ['POST', 'other', 'expected', 404],
      ['GET', 'other', 'expected', 426],
    ]);
    expect(fake.served).toEqual({ input: 16, output: 2, cacheRead: 0, reasoning: 0, responses: 2 });
  });

  it('answers an error turn in the API error shape and serves nothing for it', async () => {
    fake = await startFakeOpenAIResponses({
      host: '127.0.0.1',
      script: [
        {
          content: [],
          usage: { input: 1, output: 1 },
          error: { status: 400, message: 'context too long', code: 'context_length_exceeded' },
        },
      ],
    });
    const response = await post(fake.url, '/v1/responses', turnBody([]));
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: { message: 'context too long', type: 'invalid_request_error', param: null, code: 'context_length_exceeded' },
    });
    const rateLimited = await startFakeOpenAIResponses({
      host: '127.0.0.1',
      script: [{ content: [], usage: { input: 1, output: 1 }, error: { status: 429, message: 'slow down', type: 'tokens' } }],
    });
    try {
      const limited = await post(rateLimited.url, '/v1/responses', turnBody([]));
      expect(limited.status).toBe(429);
      expect(await limited.json()).toEqual({ error: { message: 'slow down', type: 'tokens', param: null, code: null } });
    } finally {
      await rateLimited.close();
    }
    expect(fake.requests.map((r) => [r.kind, r.turn, r.status])).toEqual([['turn', 0, 400]]);
    expect(fake.served).toEqual({ input: 0, output: 0, cacheRead: 0, reasoning: 0, responses: 0 });
  });

  it('failAll answers every request with the error and counts them', async () => {
    fake = await startFakeOpenAIResponses({ host: '127.0.0.1', script, failAll: { status: 500, message: 'down' } });
    const responses = [
      await post(fake.url, '/v1/responses', turnBody([])),
      await post(fake.url, '/v1/responses', { input: 'side', stream: true }),
      await fetch(`${fake.url}/v1/models`),
      await fetch(`${fake.url}/`, { method: 'HEAD' }),
    ];
    expect(responses.map((r) => r.status)).toEqual([500, 500, 500, 500]);
    expect(await responses[0]?.json()).toEqual({ error: { message: 'down', type: 'server_error', param: null, code: null } });
    expect(fake.requests.map((r) => [r.kind, r.status])).toEqual([
      ['turn', 500],
      ['side', 500],
      ['models', 500],
      ['other', 500],
    ]);
    expect(fake.served.responses).toBe(0);
  });

  it('stalls after response.created / response.in_progress and close() ends the open response promptly', async () => {
    fake = await startFakeOpenAIResponses({
      host: '127.0.0.1',
      script: [{ content: [{ type: 'text', text: 'never sent' }], usage: { input: 5, output: 5 }, stall: true }],
    });
    const response = await post(fake.url, '/v1/responses', turnBody([]));
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes('response.in_progress')) {
      const chunk = await reader.read();
      text += new TextDecoder().decode(chunk.value);
    }
    expect(text).toMatch(/^event: response\.created\n/);
    expect(text).not.toContain('response.completed');

    const closedAt = Date.now();
    await fake.close();
    expect(Date.now() - closedAt).toBeLessThan(1000);
    await expect(reader.read()).rejects.toThrow();
    expect(fake.served.responses).toBe(0);
    expect(fake.requests[0]?.status).toBe(200);
    await fake.close(); // repeatable
  });

  it('rejects a script whose reasoning exceeds its output', async () => {
    await expect(
      startFakeOpenAIResponses({ host: '127.0.0.1', script: [{ content: [], usage: { input: 1, output: 2, reasoning: 3 } }] }),
    ).rejects.toThrow(/reasoning \(3\) exceeds usage\.output \(2\)/);
  });
});

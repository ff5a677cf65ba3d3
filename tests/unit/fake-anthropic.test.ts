import { afterEach, describe, expect, it } from 'vitest';
import { startFakeAnthropic, type FakeAnthropic, type ScriptedTurn } from '../fixtures/fake-anthropic.js';

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/** Parses a complete `text/event-stream` body into events (each `event:` line followed by one `data:` line). */
function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((frame) => frame.trim().length > 0)
    .map((frame) => {
      const lines = frame.split('\n');
      const event = lines.find((l) => l.startsWith('event: '))?.slice('event: '.length);
      const data = lines.find((l) => l.startsWith('data: '))?.slice('data: '.length);
      if (event === undefined || data === undefined) throw new Error(`malformed SSE frame: ${frame}`);
      const parsed = JSON.parse(data) as Record<string, unknown>;
      expect(parsed.type).toBe(event);
      return { event, data: parsed };
    });
}

/** Rebuilds the assistant message from an SSE stream the way an SDK client does. */
function assemble(events: SseEvent[]) {
  const start = events[0]?.data.message as Record<string, unknown>;
  const blocks: Array<Record<string, unknown>> = [];
  const partialJson: string[] = [];
  let stopReason: unknown;
  let outputTokens: unknown;
  for (const { data } of events) {
    const index = data.index as number;
    if (data.type === 'content_block_start') {
      blocks[index] = { ...(data.content_block as Record<string, unknown>) };
      partialJson[index] = '';
    } else if (data.type === 'content_block_delta') {
      const delta = data.delta as Record<string, string>;
      const block = blocks[index] as Record<string, unknown>;
      if (delta.type === 'text_delta') block.text = `${block.text as string}${delta.text}`;
      else partialJson[index] = `${partialJson[index]}${delta.partial_json}`;
    } else if (data.type === 'content_block_stop') {
      const block = blocks[index] as Record<string, unknown>;
      if (block.type === 'tool_use') block.input = JSON.parse(partialJson[index] as string);
    } else if (data.type === 'message_delta') {
      stopReason = (data.delta as Record<string, unknown>).stop_reason;
      outputTokens = (data.usage as Record<string, unknown>).output_tokens;
    }
  }
  return { start, blocks, stopReason, outputTokens };
}

const toolsBody = (messages: unknown[], model = 'claude-test-1') => ({
  model,
  stream: true,
  max_tokens: 1000,
  tools: [{ name: 'Bash', input_schema: { type: 'object' } }],
  messages,
});

async function post(url: string, path: string, body: unknown): Promise<Response> {
  return fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-secret', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify(body),
  });
}

const script: ScriptedTurn[] = [
  {
    content: [
      { type: 'text', text: 'Running a command now.' },
      { type: 'tool_use', name: 'Bash', input: { command: 'echo hi && cat "a b.txt"', description: 'greet' } },
    ],
    usage: { input: 100, output: 20, cacheRead: 7, cacheWrite: 3 },
  },
  {
    content: [
      { type: 'tool_use', name: 'Write', input: { file_path: '/work/x.txt', content: 'x\n' } },
      { type: 'tool_use', name: 'Bash', input: { command: 'ls' } },
    ],
    usage: { input: 200, output: 30 },
  },
];

describe('fake Anthropic Messages API', () => {
  let fake: FakeAnthropic | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('streams scripted turns in Anthropic SSE framing, picked by counting tool_use blocks', async () => {
    fake = await startFakeAnthropic({ host: '127.0.0.1', script });
    expect(fake.url).toBe(`http://127.0.0.1:${fake.port}`);

    const first = await post(fake.url, '/v1/messages?beta=true', toolsBody([{ role: 'user', content: 'go' }]));
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = parseSse(await first.text());
    expect(events.map((e) => e.event)).toEqual([
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    const turn0 = assemble(events);
    expect(turn0.start.model).toBe('claude-test-1');
    expect(turn0.start.role).toBe('assistant');
    expect(turn0.start.usage).toEqual({
      input_tokens: 100,
      output_tokens: 1,
      cache_read_input_tokens: 7,
      cache_creation_input_tokens: 3,
    });
    expect(turn0.blocks).toEqual([
      { type: 'text', text: 'Running a command now.' },
      {
        type: 'tool_use',
        id: 'toolu_fake_0_1',
        name: 'Bash',
        input: { command: 'echo hi && cat "a b.txt"', description: 'greet' },
      },
    ]);
    expect(turn0.stopReason).toBe('tool_use');
    expect(turn0.outputTokens).toBe(20);

    // Claude Code merges consecutive assistant turns: one assistant message holding 1 tool_use → turn 1.
    const history = [
      { role: 'user', content: 'go' },
      { role: 'assistant', content: turn0.blocks },
      {
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: 'toolu_fake_0_1', content: [{ type: 'text', text: 'hi\nA B' }] }],
      },
    ];
    const turn1 = assemble(parseSse(await (await post(fake.url, '/v1/messages', toolsBody(history))).text()));
    expect(turn1.blocks.map((b) => [b.type, b.name, b.id])).toEqual([
      ['tool_use', 'Write', 'toolu_fake_1_0'],
      ['tool_use', 'Bash', 'toolu_fake_1_1'],
    ]);
    expect(turn1.stopReason).toBe('tool_use');

    // Three tool_use blocks in the history (merged into one assistant message) → script exhausted → final.
    const merged = [
      { role: 'user', content: 'go' },
      { role: 'assistant', content: [...turn0.blocks, ...turn1.blocks] },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_fake_0_1', content: 'hi\nA B' },
          { type: 'tool_result', tool_use_id: 'toolu_fake_1_0', content: 'written' },
          { type: 'tool_result', tool_use_id: 'toolu_fake_1_1', content: 'ls: denied', is_error: true },
        ],
      },
    ];
    const final = assemble(parseSse(await (await post(fake.url, '/v1/messages', toolsBody(merged))).text()));
    expect(final.blocks).toEqual([{ type: 'text', text: 'Done.' }]);
    expect(final.stopReason).toBe('end_turn');

    expect(fake.requests.map((r) => [r.kind, r.turn])).toEqual([
      ['turn', 0],
      ['turn', 1],
      ['turn', 'final'],
    ]);
    expect(fake.requests[0]?.headers['x-api-key']).toBe('[REDACTED]');
    expect(fake.requests[0]?.path).toBe('/v1/messages?beta=true');
    expect(fake.served).toEqual({ input: 310, output: 55, cacheRead: 7, cacheWrite: 3, responses: 3 });
    expect(fake.toolResults()).toEqual([
      { toolUseId: 'toolu_fake_0_1', name: 'Bash', content: 'hi\nA B', isError: false },
      { toolUseId: 'toolu_fake_1_0', name: 'Write', content: 'written', isError: false },
      { toolUseId: 'toolu_fake_1_1', name: 'Bash', content: 'ls: denied', isError: true },
    ]);
  });

  it('answers side calls, count_tokens, probes and unknown routes, and records them', async () => {
    fake = await startFakeAnthropic({ host: '127.0.0.1', script: [], model: 'claude-fallback' });

    const side = await post(fake.url, '/v1/messages?beta=true', {
      model: 'claude-haiku-test',
      stream: true,
      max_tokens: 10,
      messages: [{ role: 'user', content: 'title?' }],
    });
    const sideTurn = assemble(parseSse(await side.text()));
    expect(sideTurn.start.model).toBe('claude-haiku-test');
    expect(sideTurn.blocks).toEqual([{ type: 'text', text: 'OK' }]);
    expect(sideTurn.stopReason).toBe('end_turn');

    const nonStreaming = await post(fake.url, '/v1/messages', { max_tokens: 10, messages: [] });
    expect(await nonStreaming.json()).toMatchObject({
      type: 'message',
      model: 'claude-fallback',
      content: [{ type: 'text', text: 'OK' }],
      stop_reason: 'end_turn',
      usage: { input_tokens: 8, output_tokens: 1 },
    });

    const count = await post(fake.url, '/v1/messages/count_tokens?beta=true', { model: 'm', messages: [] });
    const counted = (await count.json()) as { input_tokens: number };
    expect(counted.input_tokens).toBeGreaterThan(0);

    expect((await fetch(`${fake.url}/api/hello`, { method: 'HEAD' })).status).toBe(200);
    const unknown = await post(fake.url, '/v1/complete', {});
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });

    expect(fake.requests.map((r) => [r.method, r.kind])).toEqual([
      ['POST', 'side'],
      ['POST', 'side'],
      ['POST', 'count_tokens'],
      ['HEAD', 'other'],
      ['POST', 'other'],
    ]);
    // count_tokens and probes are not messages responses.
    expect(fake.served).toEqual({ input: 16, output: 2, cacheRead: 0, cacheWrite: 0, responses: 2 });
  });

  it('stalls after message_start and close() ends the open response promptly', async () => {
    fake = await startFakeAnthropic({
      host: '127.0.0.1',
      script: [{ content: [{ type: 'text', text: 'never sent' }], usage: { input: 5, output: 5 }, stall: true }],
    });
    const response = await post(fake.url, '/v1/messages', toolsBody([{ role: 'user', content: 'go' }]));
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const firstChunk = await reader.read();
    const text = new TextDecoder().decode(firstChunk.value);
    expect(text).toMatch(/^event: message_start\n/);
    expect(text).not.toContain('message_stop');

    const closedAt = Date.now();
    await fake.close();
    expect(Date.now() - closedAt).toBeLessThan(1000);
    await expect(reader.read()).rejects.toThrow();
    expect(fake.served.responses).toBe(0);
    await fake.close(); // repeatable
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { startFakeGemini, type FakeGemini, type ScriptedTurn } from '../fixtures/fake-gemini.js';

type GenerateContentResponse = {
  candidates: Array<{
    content: { role: string; parts: Array<Record<string, unknown>> };
    finishReason?: string;
    index: number;
  }>;
  usageMetadata?: Record<string, number>;
  modelVersion: string;
  responseId: string;
};

/** Parses a complete `alt=sse` body (one `data:` line per event), tolerant of `\r\n` and `\n` delimiters. */
function parseSse(text: string): GenerateContentResponse[] {
  return text
    .replace(/\r\n?/g, '\n')
    .split('\n\n')
    .filter((frame) => frame.trim().length > 0)
    .map((frame) => {
      if (!frame.startsWith('data: ')) throw new Error(`malformed SSE frame: ${frame}`);
      return JSON.parse(frame.slice('data: '.length)) as GenerateContentResponse;
    });
}

/** Joins the parts of a stream the way `@google/genai` consumers do (text concatenated, function calls collected). */
function assemble(chunks: GenerateContentResponse[]) {
  let text = '';
  const functionCalls: Array<Record<string, unknown>> = [];
  for (const chunk of chunks) {
    for (const part of chunk.candidates[0]?.content.parts ?? []) {
      if (typeof part.text === 'string') text += part.text;
      if (part.functionCall !== undefined) functionCalls.push(part.functionCall as Record<string, unknown>);
    }
  }
  const last = chunks[chunks.length - 1];
  return { text, functionCalls, finishReason: last?.candidates[0]?.finishReason, usage: last?.usageMetadata };
}

const KEY = 'AIza-test-secret';
const tools = [{ functionDeclarations: [{ name: 'run_shell_command', parameters: { type: 'OBJECT' } }] }];
const STREAM = '/v1beta/models/gemini-test:streamGenerateContent?alt=sse';

async function post(url: string, path: string, body: unknown, key: string | null = KEY): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== null) headers['x-goog-api-key'] = key;
  return fetch(`${url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
}

const user = (text: string) => ({ role: 'user', parts: [{ text }] });
const turnBody = (contents: unknown[]) => ({ contents, tools, generationConfig: { temperature: 0 } });

const script: ScriptedTurn[] = [
  {
    content: [
      { type: 'text', text: 'Writing the file now.' },
      { type: 'tool_call', name: 'write_file', input: { file_path: '/work/x.txt', content: 'x\n' } },
    ],
    usage: { input: 100, output: 50, cacheRead: 40, reasoning: 20 },
  },
  {
    content: [
      { type: 'tool_call', name: 'run_shell_command', input: { command: 'cat /work/x.txt' } },
      { type: 'tool_call', name: 'replace', input: { file_path: '/work/x.txt', old_string: 'x', new_string: 'y' } },
    ],
    usage: { input: 200, output: 30 },
  },
];

describe('fake Gemini API', () => {
  let fake: FakeGemini | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('streams scripted turns as alt=sse GenerateContentResponse events, picked by counting functionResponse parts', async () => {
    fake = await startFakeGemini({ host: '127.0.0.1', script, expectedKey: KEY });
    expect(fake.url).toBe(`http://127.0.0.1:${fake.port}`);

    const first = await post(fake.url, STREAM, turnBody([user('go')]));
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const raw = await first.text();
    // The real API delimits events with CRLF CRLF.
    expect(raw).toMatch(/^data: \{.*\}\r\n\r\ndata: /);
    expect(raw.endsWith('}\r\n\r\n')).toBe(true);
    const chunks = parseSse(raw);
    expect(chunks).toHaveLength(3); // two text pieces, one function call
    for (const chunk of chunks) {
      expect(chunk.modelVersion).toBe('gemini-test');
      expect(chunk.responseId).toBe(chunks[0]?.responseId);
      expect(chunk.candidates).toHaveLength(1);
      expect(chunk.candidates[0]).toMatchObject({ content: { role: 'model' }, index: 0 });
    }
    // finishReason and usageMetadata only on the last chunk.
    expect(chunks.slice(0, -1).every((c) => c.usageMetadata === undefined && c.candidates[0]?.finishReason === undefined)).toBe(
      true,
    );
    expect(chunks[2]?.candidates[0]?.content.parts).toEqual([
      { functionCall: { name: 'write_file', args: { file_path: '/work/x.txt', content: 'x\n' } } },
    ]);
    const turn0 = assemble(chunks);
    expect(turn0.text).toBe('Writing the file now.');
    expect(turn0.finishReason).toBe('STOP');
    // promptTokenCount includes the cache; candidatesTokenCount excludes the thoughts, which sit beside it.
    expect(turn0.usage).toEqual({
      promptTokenCount: 140,
      candidatesTokenCount: 30,
      totalTokenCount: 190,
      cachedContentTokenCount: 40,
      thoughtsTokenCount: 20,
    });

    // One functionResponse in the history → turn 1.
    const history1 = [
      user('go'),
      { role: 'model', parts: [{ text: 'Writing the file now.' }, { functionCall: { name: 'write_file', args: {} } }] },
      {
        role: 'user',
        parts: [{ functionResponse: { id: 'write_file-1-a', name: 'write_file', response: { output: 'Wrote x.txt' } } }],
      },
    ];
    const turn1 = assemble(parseSse(await (await post(fake.url, STREAM, turnBody(history1))).text()));
    expect(turn1.text).toBe('');
    expect(turn1.functionCalls).toEqual([
      { name: 'run_shell_command', args: { command: 'cat /work/x.txt' } },
      { name: 'replace', args: { file_path: '/work/x.txt', old_string: 'x', new_string: 'y' } },
    ]);
    expect(turn1.usage).toEqual({ promptTokenCount: 200, candidatesTokenCount: 30, totalTokenCount: 230 });

    // Three functionResponse parts → final text turn.
    const history2 = [
      ...history1,
      {
        role: 'model',
        parts: [
          { functionCall: { name: 'run_shell_command', args: {} } },
          { functionCall: { name: 'replace', args: {} } },
        ],
      },
      {
        role: 'user',
        parts: [
          { functionResponse: { id: 'run-2-b', name: 'run_shell_command', response: { output: 'x' } } },
          { functionResponse: { id: 'replace-2-c', name: 'replace', response: { error: 'old_string not found' } } },
        ],
      },
    ];
    const final = assemble(parseSse(await (await post(fake.url, STREAM, turnBody(history2))).text()));
    expect(final).toMatchObject({ text: 'Done.', functionCalls: [], finishReason: 'STOP' });

    expect(fake.requests.map((r) => [r.kind, r.turn, r.status, r.credential])).toEqual([
      ['turn', 0, 200, 'expected'],
      ['turn', 1, 200, 'expected'],
      ['turn', 'final', 200, 'expected'],
    ]);
    expect(fake.requests[0]?.headers['x-goog-api-key']).toBe('[REDACTED]');
    expect(JSON.stringify(fake.requests)).not.toContain(KEY);
    expect(fake.served).toEqual({ input: 310, output: 85, cacheRead: 40, reasoning: 20, responses: 3 });
    expect(fake.toolResults()).toEqual([
      { callId: 'write_file-1-a', name: 'write_file', output: 'Wrote x.txt', isError: false },
      { callId: 'run-2-b', name: 'run_shell_command', output: 'x', isError: false },
      { callId: 'replace-2-c', name: 'replace', output: 'old_string not found', isError: true },
    ]);
  });

  it('answers generateContent, countTokens, side calls and probes, and reads the key from ?key= too', async () => {
    fake = await startFakeGemini({ host: '127.0.0.1', script, expectedKey: KEY });

    const whole = await post(fake.url, '/v1beta/models/gemini-pro-test:generateContent', turnBody([user('go')]));
    expect(await whole.json()).toEqual({
      candidates: [
        {
          content: {
            role: 'model',
            parts: [
              { text: 'Writing the file now.' },
              { functionCall: { name: 'write_file', args: { file_path: '/work/x.txt', content: 'x\n' } } },
            ],
          },
          finishReason: 'STOP',
          index: 0,
        },
      ],
      usageMetadata: {
        promptTokenCount: 140,
        candidatesTokenCount: 30,
        totalTokenCount: 190,
        cachedContentTokenCount: 40,
        thoughtsTokenCount: 20,
      },
      modelVersion: 'gemini-pro-test',
      responseId: expect.any(String) as unknown,
    });

    const counted = await post(fake.url, '/v1beta/models/gemini-test:countTokens', { contents: [user('hello')] });
    expect(((await counted.json()) as { totalTokens: number }).totalTokens).toBeGreaterThan(0);

    // Side calls: no tools. A JSON-mode side call (next-speaker / routing checks) gets `{}`.
    const side = await post(fake.url, `/v1beta/models/gemini-flash:streamGenerateContent?alt=sse&key=${KEY}`, {
      contents: [user('title?')],
    }, null);
    expect(assemble(parseSse(await side.text()))).toMatchObject({ text: 'OK', finishReason: 'STOP' });
    const jsonSide = await post(
      fake.url,
      '/v1beta/models/gemini-flash:generateContent',
      { contents: [user('who speaks next?')], generationConfig: { responseMimeType: 'application/json' } },
      'wrong',
    );
    expect(((await jsonSide.json()) as GenerateContentResponse).candidates[0]?.content.parts).toEqual([{ text: '{}' }]);

    // streamGenerateContent without alt=sse: a JSON array of the same chunks.
    const array = await post(fake.url, '/v1beta/models/gemini-flash:streamGenerateContent', { contents: [] }, null);
    const chunks = (await array.json()) as GenerateContentResponse[];
    expect(assemble(chunks)).toMatchObject({ text: 'OK', usage: { promptTokenCount: 8, candidatesTokenCount: 1 } });

    expect((await fetch(`${fake.url}/`, { method: 'HEAD' })).status).toBe(200);
    const unknown = await post(fake.url, '/v1beta/models/gemini-test:embedContent', {});
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: 404, status: 'NOT_FOUND' } });

    expect(fake.requests.map((r) => [r.method, r.kind, r.turn, r.credential, r.status])).toEqual([
      ['POST', 'turn', 0, 'expected', 200],
      ['POST', 'count_tokens', undefined, 'expected', 200],
      ['POST', 'side', undefined, 'expected', 200],
      ['POST', 'side', undefined, 'other', 200],
      ['POST', 'side', undefined, 'none', 200],
      ['HEAD', 'other', undefined, 'none', 200],
      ['POST', 'other', undefined, 'expected', 404],
    ]);
    expect(fake.requests[2]?.path).toBe('/v1beta/models/gemini-flash:streamGenerateContent?alt=sse&key=[REDACTED]');
    expect(JSON.stringify(fake.requests)).not.toContain(KEY);
    // countTokens and probes are not model responses.
    expect(fake.served).toEqual({ input: 124, output: 53, cacheRead: 40, reasoning: 20, responses: 4 });
  });

  it('answers an error turn in the API error shape and serves nothing for it', async () => {
    fake = await startFakeGemini({
      host: '127.0.0.1',
      script: [{ content: [], usage: { input: 1, output: 1 }, error: { status: 429, message: 'Quota exceeded' } }],
    });
    const response = await post(fake.url, STREAM, turnBody([user('go')]));
    expect(response.status).toBe(429);
    expect(await response.json()).toEqual({ error: { code: 429, message: 'Quota exceeded', status: 'RESOURCE_EXHAUSTED' } });
    expect(fake.requests.map((r) => [r.kind, r.turn, r.status])).toEqual([['turn', 0, 429]]);
    expect(fake.served).toEqual({ input: 0, output: 0, cacheRead: 0, reasoning: 0, responses: 0 });
  });

  it('failAll answers every request with the error and counts them', async () => {
    fake = await startFakeGemini({ host: '127.0.0.1', script, failAll: { status: 500, message: 'Internal error' } });
    const responses = [
      await post(fake.url, STREAM, turnBody([user('go')])),
      await post(fake.url, '/v1beta/models/gemini-test:countTokens', { contents: [] }),
      await post(fake.url, '/v1beta/models/gemini-test:generateContent', { contents: [] }),
      await fetch(`${fake.url}/`, { method: 'HEAD' }),
    ];
    expect(responses.map((r) => r.status)).toEqual([500, 500, 500, 500]);
    expect(await responses[0]?.json()).toEqual({ error: { code: 500, message: 'Internal error', status: 'INTERNAL' } });
    expect(fake.requests.map((r) => [r.kind, r.status])).toEqual([
      ['turn', 500],
      ['count_tokens', 500],
      ['side', 500],
      ['other', 500],
    ]);
    expect(fake.served.responses).toBe(0);
  });

  it('stalls after the headers and close() ends the open response promptly', async () => {
    fake = await startFakeGemini({
      host: '127.0.0.1',
      script: [{ content: [{ type: 'text', text: 'never sent' }], usage: { input: 5, output: 5 }, stall: true }],
    });
    const response = await post(fake.url, STREAM, turnBody([user('go')]));
    expect(response.status).toBe(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const pending = reader.read();

    const closedAt = Date.now();
    await fake.close();
    expect(Date.now() - closedAt).toBeLessThan(1000);
    await expect(pending).rejects.toThrow();
    expect(fake.served.responses).toBe(0);
    await fake.close(); // repeatable
  });
});

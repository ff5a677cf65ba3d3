/**
 * The scripted Messages API for bench/capture-terminal.sh: a 4-turn script (Bash `ls`, Write, Edit, a
 * final text) served on the Docker bridge gateway, so Claude Code in the container reaches it at
 * `http://host.docker.internal:<port>`. In front of the fixture sits a small proxy that holds each
 * `POST /v1/messages` for LATENCY_MS before forwarding it, as a real model takes a moment per turn; that
 * gives the terminal capture a mid-run frame to catch.
 *
 * Prints `port=<n>` on stdout once it listens, then stays up until SIGINT/SIGTERM.
 * Run: `npx vite-node bench/capture-fixture.ts`.
 */
import { createServer, request } from 'node:http';
import { startFakeAnthropic, type ScriptedTurn } from '../tests/fixtures/fake-anthropic.js';
import { bridgeGateway } from '../tests/helpers/docker.js';

/** How long each messages request is held before the fixture answers it, in ms. */
const LATENCY_MS = Number(process.env.CAPTURE_LATENCY_MS ?? 1500);

const GREETING = 'export function greet(name) {\n  return `Hello, ${name}!`;\n}\n';

const script: ScriptedTurn[] = [
  {
    content: [
      { type: 'text', text: 'Let me look at the project first.' },
      { type: 'tool_use', name: 'Bash', input: { command: 'ls', description: 'List the project files' } },
    ],
    usage: { input: 3120, output: 64, cacheRead: 0, cacheWrite: 2860 },
  },
  {
    content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/src/greeting.js', content: GREETING } }],
    usage: { input: 210, output: 118, cacheRead: 2860, cacheWrite: 240 },
  },
  {
    content: [
      {
        type: 'tool_use',
        name: 'Edit',
        input: {
          file_path: '/workspace/src/greeting.js',
          old_string: 'export function greet(name) {\n',
          new_string: '/** Greets `name` (default: world). */\nexport function greet(name = \'world\') {\n',
        },
      },
    ],
    usage: { input: 180, output: 96, cacheRead: 3100, cacheWrite: 150 },
  },
  {
    content: [{ type: 'text', text: 'Added src/greeting.js exporting greet(name), which defaults to "world".' }],
    usage: { input: 160, output: 42, cacheRead: 3250, cacheWrite: 0 },
  },
];

const fixture = await startFakeAnthropic({ host: '127.0.0.1', script });
const gateway = await bridgeGateway();

const proxy = createServer((req, res) => {
  const forward = (): void => {
    const upstream = request({ host: '127.0.0.1', port: fixture.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(error));
    });
    req.pipe(upstream);
  };
  const isMessages = req.method === 'POST' && (req.url ?? '').split('?')[0] === '/v1/messages';
  if (isMessages) {
    req.pause();
    setTimeout(forward, LATENCY_MS);
  } else {
    forward();
  }
});
await new Promise<void>((resolve, reject) => {
  proxy.once('error', reject);
  proxy.listen(0, gateway, resolve);
});
const address = proxy.address();
if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP address');
process.stdout.write(`port=${address.port}\n`);

const shutdown = (): void => {
  proxy.closeAllConnections();
  proxy.close();
  void fixture.close().then(() => process.exit(0));
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);

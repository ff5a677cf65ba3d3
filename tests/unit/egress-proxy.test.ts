/**
 * The egress proxy (src/proxy/egress-proxy.ts) against real sockets on 127.0.0.1: plain HTTP upstreams, an HTTPS
 * upstream with a throwaway CA, TCP echo servers behind CONNECT, and the compiled file run as a child process.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  checkUpstreams,
  EgressProxyConfigError,
  hostAllowed,
  normalizeHost,
  parseEgressProxyConfig,
  startEgressProxy,
  type AuditRecord,
  type EgressProxyConfig,
} from '../../src/proxy/egress-proxy.js';
import { removeDir, tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';
import { makeTestCa, type TestCa } from '../helpers/test-ca.js';

// Not import.meta.dirname (Node 20.11): this file also runs on Node 18 (see AW_TEST_PROXY_NODE below).
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SECRET = 'sk-ant-api03-REAL-SECRET-never-leaves-the-proxy';
const PLACEHOLDER = 'agent-worker-placeholder-api-key';
const OAUTH_SECRET = 'sk-ant-oat01-REAL-OAUTH-TOKEN';
const OAUTH_PLACEHOLDER = 'agent-worker-placeholder-oauth-token';
/** The rules Claude Code's plugin gives (agents/claude-code/index.ts). */
const CREDENTIALS = [
  { header: 'x-api-key', placeholder: PLACEHOLDER, value: SECRET },
  { header: 'authorization', scheme: 'Bearer', placeholder: PLACEHOLDER, value: SECRET },
  { header: 'authorization', scheme: 'Bearer', placeholder: OAUTH_PLACEHOLDER, value: OAUTH_SECRET },
];

const track = removedAfterEach();
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Listens on 127.0.0.1 (port 0) and registers the server's closing (connections dropped) after the test. */
async function listen<S extends net.Server>(server: S, host = '127.0.0.1'): Promise<{ server: S; port: number }> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('secureConnection', (socket: net.Socket) => socket.on('error', () => undefined));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** What a test upstream saw of one request. */
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

/**
 * A plain HTTP upstream on 127.0.0.1 that records each request and answers `{"ok":true}` (or what `respond` does).
 */
async function startUpstream(
  respond?: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void,
): Promise<{ port: number; url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const { port } = await listen(
    http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
        if (respond) respond(req, res, body);
        else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"ok":true}');
        }
      });
    }),
  );
  return { port, url: `http://127.0.0.1:${port}`, seen };
}

/** A proxy on 127.0.0.1 (port 0) whose audit records are collected; closed after the test. */
async function startProxy(config: Partial<EgressProxyConfig>): Promise<{ port: number; audits: Audits }> {
  const audits = new Audits();
  const proxy = await startEgressProxy(
    { port: 0, host: '127.0.0.1', routes: [], allowHosts: [], ...config },
    { onAudit: (record) => audits.push(record) },
  );
  cleanups.push(() => proxy.close());
  return { port: proxy.port, audits };
}

/** Audit records as they arrive, and a way to wait for them. */
class Audits {
  readonly records: AuditRecord[] = [];
  private waiters: Array<() => void> = [];

  push(record: AuditRecord): void {
    this.records.push(record);
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /** Waits until `count` records arrived (at most `timeoutMs`), then returns them all. */
  async waitFor(count: number, timeoutMs = 5_000): Promise<AuditRecord[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.records.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`waited ${timeoutMs} ms for ${count} audit records, got ${this.records.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.records;
  }
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
}

/** One request to the proxy on a fresh connection; `path` may be absolute-form (`http://host/…`). */
function send(
  port: number,
  options: { method?: string; path: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body, text: body.toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Everything a reply shows the client (status line parts, headers, body), for "never contains" checks. */
function everything(reply: Reply): string {
  return `${reply.status} ${reply.rawHeaders.join('\n')}\n${reply.text}`;
}

/**
 * Opens a raw connection to the proxy, sends `CONNECT target` (and `extra` in the same write, before any answer),
 * and resolves with the answer's head once it arrived; the socket then carries the tunnel.
 */
function connectThrough(
  proxyPort: number,
  target: string,
  extra = '',
): Promise<{ socket: net.Socket; statusLine: string; head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: proxyPort });
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      const head = buffered.subarray(0, end).toString('latin1');
      resolve({ socket, statusLine: head.split('\r\n')[0]!, head, rest: buffered.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('connect', () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n${extra}`));
  });
}

/** Reads a socket to its end (resolves on 'end' or 'close'), starting with `first`. */
function readToEnd(socket: net.Socket, first: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [first];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('close', () => resolve(Buffer.concat(chunks)));
    socket.on('error', () => undefined);
    socket.resume();
  });
}

/** A TCP echo server on 127.0.0.1 (or `host`). */
async function startEcho(host = '127.0.0.1'): Promise<number> {
  const { port } = await listen(
    net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    }),
    host,
  );
  return port;
}

/** A port on 127.0.0.1 where nothing listens (it did a moment ago). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('hostAllowed', () => {
  it('matches exact names case-insensitively, ignoring one trailing dot on either side', () => {
    expect(hostAllowed('registry.npmjs.org', ['registry.npmjs.org'])).toBe(true);
    expect(hostAllowed('Registry.NPMJS.org', ['registry.npmjs.org'])).toBe(true);
    expect(hostAllowed('registry.npmjs.org.', ['registry.npmjs.org'])).toBe(true);
    expect(hostAllowed('registry.npmjs.org', ['REGISTRY.npmjs.org.'])).toBe(true);
    expect(hostAllowed('registry.npmjs.org..', ['registry.npmjs.org'])).toBe(false);
    expect(hostAllowed('registry.npmjs.org', [])).toBe(false);
    expect(hostAllowed('npmjs.org', ['registry.npmjs.org'])).toBe(false);
    expect(hostAllowed('xregistry.npmjs.org', ['registry.npmjs.org'])).toBe(false);
  });

  it('matches wildcards at any depth below the domain, never the domain itself or a look-alike', () => {
    const allow = ['*.npmjs.org'];
    expect(hostAllowed('registry.npmjs.org', allow)).toBe(true);
    expect(hostAllowed('a.b.npmjs.org', allow)).toBe(true);
    expect(hostAllowed('A.B.NPMJS.ORG.', allow)).toBe(true);
    expect(hostAllowed('registry.npmjs.org', ['*.NPMJS.org.'])).toBe(true);
    expect(hostAllowed('npmjs.org', allow)).toBe(false);
    expect(hostAllowed('npmjs.org.', allow)).toBe(false);
    expect(hostAllowed('evilnpmjs.org', allow)).toBe(false);
    expect(hostAllowed('npmjs.org.evil.com', allow)).toBe(false);
    expect(hostAllowed('registry.npmjs.org.evil.com', allow)).toBe(false);
    expect(hostAllowed('registry.npmjs.orgx', allow)).toBe(false);
  });

  it('matches IP literals exactly, IPv6 with or without brackets, in any spelling', () => {
    expect(hostAllowed('127.0.0.1', ['127.0.0.1'])).toBe(true);
    expect(hostAllowed('127.0.0.2', ['127.0.0.1'])).toBe(false);
    expect(hostAllowed('127.1', ['127.0.0.1'])).toBe(false);
    expect(hostAllowed('[::1]', ['::1'])).toBe(true);
    expect(hostAllowed('::1', ['[::1]'])).toBe(true);
    expect(hostAllowed('[0:0:0:0:0:0:0:1]', ['::1'])).toBe(true);
    expect(hostAllowed('[2001:DB8::1]', ['2001:db8:0::1'])).toBe(true);
    expect(hostAllowed('[::2]', ['::1'])).toBe(false);
    // A wildcard never matches an address.
    expect(hostAllowed('10.0.0.1', ['*.0.0.1'])).toBe(false);
  });

  it('refuses what is not a host, and ignores patterns that are not hosts', () => {
    for (const host of ['', 'evil.com:443', 'evil.com/x', 'a b.com', 'evil.com\0.npmjs.org', '[evil.com]', 'fe80::1%eth0', '*.npmjs.org']) {
      expect(hostAllowed(host, ['*.npmjs.org', 'evil.com', host]), host).toBe(false);
    }
    expect(hostAllowed('npmjs.org', ['*'])).toBe(false);
    expect(hostAllowed('registry.npmjs.org', ['npm*.org', '*npmjs.org', '*'])).toBe(false);
  });

  it('normalizes hosts', () => {
    expect(normalizeHost('Example.COM.')).toBe('example.com');
    expect(normalizeHost('[0:0::1]')).toBe('::1');
    expect(normalizeHost('example.com:80')).toBeUndefined();
  });
});

describe('config', () => {
  it('names each invalid field, never a secret', async () => {
    const bad = {
      port: 70000,
      routes: [
        { prefix: 'v1', upstream: 'ftp://example.com', credentials: [{ header: 'X-Api-Key', placeholder: 'p', value: `${SECRET}\r\nx: y` }] },
        { prefix: '/', upstream: `https://user:${SECRET}@example.com`, credentials: [{ header: 'connection', placeholder: SECRET, value: SECRET }] },
      ],
      allowHosts: ['ok.example', '*', 'bad host'],
    };
    let error: unknown;
    try {
      parseEgressProxyConfig(bad);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(EgressProxyConfigError);
    const { problems, message } = error as EgressProxyConfigError;
    expect(problems).toEqual([
      'port must be an integer from 0 to 65535',
      'allowHosts[1] must be a host name, an IP address or *.domain',
      'allowHosts[2] must be a host name, an IP address or *.domain',
      'routes[0].prefix must be a path starting with /',
      'routes[0].upstream must be an http: or https: URL',
      'routes[0].credentials[0].header must be a lower-case header name',
      'routes[0].credentials[0].value must be a non-empty header value (printable ASCII, no line breaks)',
      'routes[1].upstream must have no user, password, query or fragment',
      'routes[1].credentials[0].header must not be a hop-by-hop header or host',
      'routes[1].credentials[0].placeholder must differ from the value',
    ]);
    expect(message).not.toContain(SECRET);
    await expect(startEgressProxy(bad as unknown as EgressProxyConfig)).rejects.toBeInstanceOf(EgressProxyConfigError);
    expect(() => parseEgressProxyConfig(null)).toThrow(EgressProxyConfigError);
  });

  it('accepts what run.ts hands in', () => {
    const config = { port: 8080, host: '0.0.0.0', routes: [{ prefix: '/', upstream: 'https://api.anthropic.com', credentials: CREDENTIALS }], allowHosts: ['registry.npmjs.org', '::1'], blockedHint: 'allow it with --allow-host HOST' };
    expect(parseEgressProxyConfig(config)).toBe(config);
  });
});

describe('model API routes', () => {
  it('replaces the placeholder in x-api-key; the upstream sees the secret and the client never does', async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: CREDENTIALS }] });
    const reply = await send(proxy.port, { method: 'POST', path: '/v1/messages?beta=true', headers: { 'x-api-key': PLACEHOLDER, 'content-type': 'application/json' }, body: '{"model":"m"}' });
    expect(reply.status).toBe(200);
    expect(reply.text).toBe('{"ok":true}');
    expect(upstream.seen[0]!.headers['x-api-key']).toBe(SECRET);
    expect(upstream.seen[0]!.url).toBe('/v1/messages?beta=true');
    expect(upstream.seen[0]!.body.toString()).toBe('{"model":"m"}');
    expect(everything(reply)).not.toContain(SECRET);
    const [record] = await proxy.audits.waitFor(1);
    expect(JSON.stringify(record)).not.toContain(SECRET);
  });

  it('masks a secret an upstream reflects, in headers and in bodies split anywhere, keeping Content-Length', async () => {
    const upstream = await startUpstream((req, res) => {
      const key = String(req.headers['x-api-key']);
      if (req.url === '/fixed') {
        const body = `{"key":"${key}"}`;
        res.writeHead(401, { 'content-length': Buffer.byteLength(body), 'x-echo': `key=${key}` });
        res.end(body);
        return;
      }
      // Chunked, the secret split across writes that reach the proxy separately.
      res.writeHead(200, { 'content-type': 'text/plain' });
      const cut = 9;
      res.write(`start ${key.slice(0, cut)}`, () =>
        setTimeout(() => res.write(key.slice(cut, cut + 4), () => setTimeout(() => res.end(`${key.slice(cut + 4)} end ${key.slice(0, 5)}`), 20)), 20),
      );
    });
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: CREDENTIALS }] });
    const fixed = await send(proxy.port, { path: '/fixed', headers: { 'x-api-key': PLACEHOLDER, 'accept-encoding': 'gzip, br' } });
    const stars = '*'.repeat(SECRET.length);
    expect(fixed.status).toBe(401);
    expect(fixed.headers['x-echo']).toBe('key=[redacted]');
    expect(fixed.text).toBe(`{"key":"${stars}"}`);
    expect(fixed.headers['content-length']).toBe(String(fixed.body.length));
    expect(upstream.seen[0]!.headers['accept-encoding']).toBe('identity');
    const split = await send(proxy.port, { path: '/split', headers: { 'x-api-key': PLACEHOLDER } });
    expect(split.text).toBe(`start ${stars} end ${SECRET.slice(0, 5)}`);
  });

  it('replaces `Authorization: Bearer <placeholder>`, the scheme in any case, for each rule', async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: CREDENTIALS }] });
    await send(proxy.port, { path: '/a', headers: { authorization: `Bearer ${PLACEHOLDER}` } });
    await send(proxy.port, { path: '/b', headers: { authorization: `bearer ${OAUTH_PLACEHOLDER}` } });
    await send(proxy.port, { path: '/c', headers: { authorization: `BEARER ${PLACEHOLDER}`, 'x-api-key': PLACEHOLDER } });
    expect(upstream.seen.map((seen) => [seen.url, seen.headers.authorization, seen.headers['x-api-key']])).toEqual([
      ['/a', `Bearer ${SECRET}`, undefined],
      ['/b', `bearer ${OAUTH_SECRET}`, undefined],
      ['/c', `BEARER ${SECRET}`, SECRET],
    ]);
  });

  it('forwards any other value unchanged: the agent’s own key, near-misses, other headers', async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: CREDENTIALS }] });
    const cases: Array<[string, string]> = [
      ['x-api-key', 'sk-ant-the-agents-own-key'],
      ['x-api-key', `${PLACEHOLDER}x`],
      ['x-api-key', `x${PLACEHOLDER}`],
      ['x-api-key', `Bearer ${PLACEHOLDER}`],
      ['authorization', PLACEHOLDER],
      ['authorization', `Basic ${PLACEHOLDER}`],
      ['authorization', `Bearer  ${PLACEHOLDER}`],
      ['authorization', `Bearer ${PLACEHOLDER}-more`],
      ['authorization', 'Bearer sk-ant-oat01-the-agents-own-token'],
      ['x-other-key', PLACEHOLDER],
      ['anthropic-api-key', PLACEHOLDER],
    ];
    for (const [header, value] of cases) {
      const reply = await send(proxy.port, { path: '/v1/messages', headers: { [header]: value } });
      expect(everything(reply)).not.toContain(SECRET);
    }
    expect(upstream.seen.map((seen, i) => seen.headers[cases[i]![0]])).toEqual(cases.map(([, value]) => value));
    for (const seen of upstream.seen) expect(JSON.stringify(seen.rawHeaders)).not.toContain(SECRET);
  });

  it('joins the upstream’s own path with the rest after the prefix, keeps the query, and never follows a host name', async () => {
    const a = await startUpstream();
    const b = await startUpstream();
    const bystander = await startUpstream();
    const proxy = await startProxy({
      routes: [
        { prefix: '/anthropic/', upstream: `${a.url}/some/base/`, credentials: [] },
        { prefix: '/', upstream: `${b.url}/root`, credentials: [] },
      ],
    });
    for (const p of ['/anthropic/v1/messages?beta=true', '/anthropic', '/anthropic/', '/anthropicx/y', '/v1/models?limit=2&x=%20', `//127.0.0.1:${bystander.port}/steal`, '/']) {
      expect((await send(proxy.port, { path: p })).status).toBe(200);
    }
    expect(a.seen.map((seen) => seen.url)).toEqual(['/some/base/v1/messages?beta=true', '/some/base', '/some/base/']);
    expect(b.seen.map((seen) => seen.url)).toEqual(['/root/anthropicx/y', '/root/v1/models?limit=2&x=%20', `/root//127.0.0.1:${bystander.port}/steal`, '/root/']);
    expect(bystander.seen).toEqual([]);
    expect(b.seen.every((seen) => seen.headers.host === `127.0.0.1:${b.port}`)).toBe(true);
  });

  it('drops hop-by-hop headers both ways and sets Host to the upstream', async () => {
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, [
        ['Connection', 'x-resp-hop'],
        ['X-Resp-Hop', 'drop me'],
        ['Keep-Alive', 'timeout=5'],
        ['X-Kept', 'yes'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
      ].flat());
      res.end('body');
    });
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: [] }] });
    const reply = await send(proxy.port, {
      method: 'POST',
      path: '/x',
      body: 'chunked body',
      headers: {
        'transfer-encoding': 'chunked',
        host: 'agent-worker-proxy:8080',
        connection: 'keep-alive, x-hop',
        'x-hop': 'drop me',
        'keep-alive': 'timeout=5',
        'proxy-authorization': 'Basic c2VjcmV0',
        'proxy-connection': 'keep-alive',
        te: 'trailers',
        trailer: 'x-t',
        upgrade: 'h2c',
        'x-end-to-end': 'kept',
      },
    });
    expect(reply.text).toBe('body');
    const seen = upstream.seen[0]!;
    expect(seen.headers.host).toBe(`127.0.0.1:${upstream.port}`);
    expect(seen.headers['x-end-to-end']).toBe('kept');
    expect(seen.body.toString()).toBe('chunked body');
    for (const name of ['x-hop', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'upgrade']) {
      expect(seen.headers[name], name).toBeUndefined();
    }
    expect(reply.headers['x-resp-hop']).toBeUndefined();
    expect(reply.headers['x-kept']).toBe('yes');
    expect(reply.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  });

  it('answers `Expect: 100-continue` itself and streams the body on', async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: [] }] });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'POST', path: '/e', headers: { expect: '100-continue', 'content-length': 5 }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('continue', () => req.end('hello'));
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(status).toBe(200);
    expect(upstream.seen[0]!.body.toString()).toBe('hello');
    expect(upstream.seen[0]!.headers.expect).toBeUndefined();
  });

  it('answers 404 JSON for a path no route has', async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({ routes: [{ prefix: '/anthropic', upstream: upstream.url, credentials: CREDENTIALS }] });
    const reply = await send(proxy.port, { method: 'POST', path: '/openai/v1/chat?x=1', headers: { 'x-api-key': PLACEHOLDER }, body: 'hello' });
    expect(reply.status).toBe(404);
    expect(reply.headers['content-type']).toBe('application/json');
    expect(JSON.parse(reply.text)).toEqual({ error: 'agent-worker egress proxy: no API route for /openai/v1/chat' });
    expect(upstream.seen).toEqual([]);
    const [record] = await proxy.audits.waitFor(1);
    expect(record).toMatchObject({ kind: 'api', allowed: false, status: 404, method: 'POST', bytesUp: 0, bytesDown: 0 });
  });

  it('does not forward TRACE, which would echo the injected credential', async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: CREDENTIALS }] });
    const reply = await send(proxy.port, { method: 'TRACE', path: '/', headers: { 'x-api-key': PLACEHOLDER } });
    expect(reply.status).toBe(405);
    expect(upstream.seen).toEqual([]);
  });

  it('streams Server-Sent Events unbuffered: the upstream sends each event only after the client got the last', async () => {
    const EVENTS = 5;
    const gates = Array.from({ length: EVENTS }, () => deferred());
    const { port: upstreamPort } = await listen(
      http.createServer(async (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        for (let i = 0; i < EVENTS; i += 1) {
          res.write(`event: ping\ndata: {"n":${i}}\n\n`);
          // A buffering proxy never delivers this event, so the test times out here.
          await gates[i]!.promise;
        }
        res.end();
      }),
    );
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: `http://127.0.0.1:${upstreamPort}`, credentials: CREDENTIALS }] });
    const { events, headers } = await new Promise<{ events: string[]; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'POST', path: '/v1/messages', headers: { 'x-api-key': PLACEHOLDER }, agent: false }, (res) => {
        const events: string[] = [];
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
            events.push(text.slice(0, end));
            text = text.slice(end + 2);
            gates[events.length - 1]?.resolve();
          }
        });
        res.on('end', () => resolve({ events, headers: res.headers }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end('{"stream":true}');
    });
    expect(events).toEqual(Array.from({ length: EVENTS }, (_, i) => `event: ping\ndata: {"n":${i}}`));
    expect(headers['content-type']).toBe('text/event-stream');
    const [record] = await proxy.audits.waitFor(1);
    expect(record).toMatchObject({ kind: 'api', status: 200, bytesUp: '{"stream":true}'.length, bytesDown: events.join('\n\n').length + 2 });
  }, 10_000);

  it('streams a large request body: the upstream gets its start before the client sends the rest', async () => {
    const CHUNK = 1024 * 1024;
    const CHUNKS = 32;
    const firstBytes = deferred();
    const { port: upstreamPort } = await listen(
      http.createServer((req, res) => {
        const hash = createHash('sha256');
        let length = 0;
        req.on('data', (chunk: Buffer) => {
          if (length === 0) firstBytes.resolve();
          length += chunk.length;
          hash.update(chunk);
        });
        req.on('end', () => res.end(JSON.stringify({ length, sha256: hash.digest('hex') })));
      }),
    );
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: `http://127.0.0.1:${upstreamPort}`, credentials: [] }] });
    const expected = createHash('sha256');
    const reply = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'POST', path: '/upload', agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      void (async () => {
        for (let i = 0; i < CHUNKS; i += 1) {
          const chunk = Buffer.alloc(CHUNK, i);
          expected.update(chunk);
          if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
          // Nothing more is sent until the upstream has seen the first bytes: a buffering proxy deadlocks here.
          if (i === 0) await firstBytes.promise;
        }
        req.end();
      })();
    });
    expect(JSON.parse(reply)).toEqual({ length: CHUNK * CHUNKS, sha256: expected.digest('hex') });
    const [record] = await proxy.audits.waitFor(1);
    expect(record).toMatchObject({ bytesUp: CHUNK * CHUNKS, bytesDown: reply.length, status: 200 });
  }, 20_000);

  it('streams a large response body intact', async () => {
    const body = Buffer.alloc(16 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4) body.writeUInt32LE(i, i);
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: [] }] });
    const reply = await send(proxy.port, { path: '/download' });
    expect(reply.headers['content-length']).toBe(String(body.length));
    expect(sha256(reply.body)).toBe(sha256(body));
    const [record] = await proxy.audits.waitFor(1);
    expect(record).toMatchObject({ bytesUp: 0, bytesDown: body.length });
  });

  describe('an HTTPS upstream', () => {
    let ca: TestCa;
    beforeAll(() => {
      ca = makeTestCa(tempDir('aw-proxy-ca-'));
      return () => track(ca.dir);
    });

    async function startHttpsUpstream(): Promise<{ port: number; seen: http.IncomingHttpHeaders[] }> {
      const seen: http.IncomingHttpHeaders[] = [];
      const { port } = await listen(
        https.createServer({ key: ca.serverKey, cert: ca.serverCert }, (req, res) => {
          seen.push(req.headers);
          res.end(`tls ${req.url}`);
        }),
      );
      return { port, seen };
    }

    it('is trusted through caPem, on top of the bundled roots', async () => {
      const upstream = await startHttpsUpstream();
      const proxy = await startProxy({ caPem: ca.caCert, routes: [{ prefix: '/', upstream: `https://127.0.0.1:${upstream.port}/base`, credentials: CREDENTIALS }] });
      const reply = await send(proxy.port, { path: '/v1/messages?q=1', headers: { 'x-api-key': PLACEHOLDER } });
      expect(reply.text).toBe('tls /base/v1/messages?q=1');
      expect(upstream.seen[0]!['x-api-key']).toBe(SECRET);
      expect(upstream.seen[0]!.host).toBe(`127.0.0.1:${upstream.port}`);
    });

    it('is refused without caPem: 502 naming the host, no secret, and the proxy keeps serving', async () => {
      const upstream = await startHttpsUpstream();
      const plain = await startUpstream();
      const proxy = await startProxy({
        routes: [
          { prefix: '/tls', upstream: `https://127.0.0.1:${upstream.port}`, credentials: CREDENTIALS },
          { prefix: '/', upstream: plain.url, credentials: CREDENTIALS },
        ],
      });
      const reply = await send(proxy.port, { method: 'POST', path: '/tls/v1/messages', headers: { 'x-api-key': PLACEHOLDER }, body: 'x'.repeat(10_000) });
      expect(reply.status).toBe(502);
      expect(reply.headers['content-type']).toBe('application/json');
      expect(JSON.parse(reply.text)).toEqual({ error: 'agent-worker egress proxy: upstream 127.0.0.1 failed (UNABLE_TO_VERIFY_LEAF_SIGNATURE)' });
      expect(everything(reply)).not.toContain(SECRET);
      expect(upstream.seen).toEqual([]);
      expect((await send(proxy.port, { path: '/fine' })).status).toBe(200);
      const records = await proxy.audits.waitFor(2);
      expect(records[0]).toMatchObject({ kind: 'api', allowed: true, status: 502, host: '127.0.0.1', port: upstream.port });
      expect(records[0]!.error).toMatch(/^upstream 127\.0\.0\.1: UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate$/);
    });
  });

  it('answers 502 when the upstream refuses the connection, and keeps serving', async () => {
    const port = await closedPort();
    const upstream = await startUpstream();
    const proxy = await startProxy({
      routes: [
        { prefix: '/down', upstream: `http://127.0.0.1:${port}`, credentials: CREDENTIALS },
        { prefix: '/', upstream: upstream.url, credentials: CREDENTIALS },
      ],
    });
    const reply = await send(proxy.port, { method: 'POST', path: '/down/v1/messages', headers: { 'x-api-key': PLACEHOLDER }, body: '{}' });
    expect(reply.status).toBe(502);
    expect(JSON.parse(reply.text)).toEqual({ error: 'agent-worker egress proxy: upstream 127.0.0.1 failed (ECONNREFUSED)' });
    expect((await send(proxy.port, { path: '/up' })).status).toBe(200);
    const records = await proxy.audits.waitFor(2);
    expect(records[0]).toMatchObject({ status: 502, allowed: true, error: `upstream 127.0.0.1: connect ECONNREFUSED 127.0.0.1:${port}` });
  });

  it('aborts the upstream request when the client leaves mid-stream, and keeps serving', async () => {
    const upstreamSawClose = deferred<boolean>();
    const { port: upstreamPort } = await listen(
      http.createServer((req, res) => {
        if (req.url === '/ok') {
          res.end('ok');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: first\ndata: {}\n\n');
        res.on('close', () => upstreamSawClose.resolve(res.writableFinished));
      }),
    );
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: `http://127.0.0.1:${upstreamPort}`, credentials: [] }] });
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, path: '/stream', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.on('close', () => resolve());
      req.once('error', reject);
      req.end();
    });
    expect(await upstreamSawClose.promise).toBe(false);
    const [record] = await proxy.audits.waitFor(1);
    expect(record).toMatchObject({ status: 200, error: 'the client closed the connection before the response ended' });
    expect(record!.bytesDown).toBeGreaterThan(0);
    expect((await send(proxy.port, { path: '/ok' })).text).toBe('ok');
  });

  it('aborts the upstream request when the client leaves mid-upload', async () => {
    const upstreamAborted = deferred<boolean>();
    const gotSome = deferred();
    const { port: upstreamPort } = await listen(
      http.createServer((req) => {
        req.once('data', () => gotSome.resolve());
        req.on('error', () => undefined);
        req.on('close', () => upstreamAborted.resolve(req.complete));
      }),
    );
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: `http://127.0.0.1:${upstreamPort}`, credentials: [] }] });
    const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'POST', path: '/upload', headers: { 'content-length': 1_000_000 }, agent: false });
    req.on('error', () => undefined);
    req.write(Buffer.alloc(100_000));
    await gotSome.promise;
    req.destroy();
    expect(await upstreamAborted.promise).toBe(false);
    const [record] = await proxy.audits.waitFor(1);
    expect(record!.error).toBe('the client closed the connection before the response ended');
    expect(record!.bytesUp).toBe(100_000);
  });

  it('cuts the client’s response short when the upstream closes mid-stream (never a clean end)', async () => {
    const upstream = await startUpstream((req, res) => {
      if (req.url !== '/stream') {
        res.end('ok');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: first\ndata: {}\n\n', () => setTimeout(() => res.socket?.destroy(), 50));
    });
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: [] }] });
    const outcome = await new Promise<{ complete: boolean; text: string }>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, path: '/stream', agent: false }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('error', () => undefined);
        res.on('close', () => resolve({ complete: res.complete, text }));
      });
      req.on('error', () => undefined);
      req.end();
    });
    expect(outcome).toEqual({ complete: false, text: 'event: first\ndata: {}\n\n' });
    const [record] = await proxy.audits.waitFor(1);
    expect(record!.error).toBe('upstream 127.0.0.1 closed the connection before the response ended');
    expect((await send(proxy.port, { path: '/again' })).status).toBe(200);
  });

  it('serves many concurrent requests over keep-alive connections', async () => {
    const upstream = await startUpstream((req, res, body) => {
      setTimeout(() => res.end(JSON.stringify({ url: req.url, key: req.headers['x-api-key'] === SECRET, length: body.length })), 5);
    });
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: CREDENTIALS }] });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    cleanups.push(() => agent.destroy());
    const COUNT = 200;
    const replies = await Promise.all(
      Array.from(
        { length: COUNT },
        (_, i) =>
          new Promise<string>((resolve, reject) => {
            const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'POST', path: `/r/${i}`, headers: { 'x-api-key': PLACEHOLDER }, agent }, (res) => {
              let text = '';
              res.on('data', (chunk: Buffer) => (text += chunk.toString()));
              res.on('end', () => resolve(text));
            });
            req.on('error', reject);
            req.end('x'.repeat(i));
          }),
      ),
    );
    replies.forEach((reply, i) => expect(JSON.parse(reply)).toEqual({ url: `/r/${i}`, key: true, length: i }));
    const records = await proxy.audits.waitFor(COUNT);
    expect(records.filter((record) => record.status === 200)).toHaveLength(COUNT);
  });

  it('survives garbage, resets and half-sent requests without an unhandled error', async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: [] }], allowHosts: ['127.0.0.1'] });
    const errors: unknown[] = [];
    const onError = (error: unknown): void => void errors.push(error);
    process.on('uncaughtException', onError);
    cleanups.push(() => void process.off('uncaughtException', onError));

    const raw = async (bytes: string, reset: boolean): Promise<string> => {
      const socket = net.connect({ host: '127.0.0.1', port: proxy.port });
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(bytes);
      if (reset) {
        socket.resetAndDestroy();
        return '';
      }
      return (await readToEnd(socket)).toString('latin1');
    };
    expect(await raw('NOT HTTP AT ALL\r\n\r\n', false)).toMatch(/^HTTP\/1\.1 400 /);
    expect(await raw(`GET / HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`, false)).toMatch(/^HTTP\/1\.1 (400|431) /);
    expect(await raw('CONNECT 127.0.0.1\r\n\r\n', false)).toMatch(/^HTTP\/1\.1 400 /);
    await raw('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc', true);
    await raw('GET / HTTP/1.1\r\nHo', true);
    await raw(`CONNECT 127.0.0.1:${await closedPort()} HTTP/1.1\r\n\r\n`, true);
    await raw('CONNECT evil.example.com:443 HTTP/1.1\r\n\r\n', true);
    expect((await send(proxy.port, { path: '/still-here' })).status).toBe(200);
    expect(errors).toEqual([]);
  });
});

describe('forward proxy', () => {
  it('tunnels CONNECT to an allowed host, data both ways, pipelined bytes included', async () => {
    const echo = await startEcho();
    const proxy = await startProxy({ allowHosts: ['127.0.0.1'] });
    const { socket, statusLine, rest } = await connectThrough(proxy.port, `127.0.0.1:${echo}`, 'early ');
    expect(statusLine).toBe('HTTP/1.1 200 Connection Established');
    const echoed = readToEnd(socket, rest);
    socket.write('hello ');
    socket.end('world');
    expect((await echoed).toString()).toBe('early hello world');
    const [record] = await proxy.audits.waitFor(1);
    expect(record).toMatchObject({ kind: 'connect', host: '127.0.0.1', port: echo, method: 'CONNECT', allowed: true, status: null, bytesUp: 17, bytesDown: 17 });
    expect(record!.error).toBeUndefined();
  });

  it('carries TLS end to end through the tunnel (the proxy sees no plaintext)', async () => {
    const ca = makeTestCa(track(tempDir('aw-proxy-ca-')));
    const { port } = await listen(https.createServer({ key: ca.serverKey, cert: ca.serverCert }, (_req, res) => res.end('hello through the tunnel')));
    const proxy = await startProxy({ allowHosts: ['LOCALHOST.'] });
    const { socket } = await connectThrough(proxy.port, `localhost:${port}`);
    const secure = tls.connect({ socket, servername: 'localhost', ca: ca.caCert });
    await new Promise((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    secure.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    const text = await new Promise<string>((resolve) => {
      let out = '';
      secure.on('data', (chunk: Buffer) => (out += chunk.toString()));
      secure.on('end', () => resolve(out));
    });
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nhello through the tunnel$/);
    const [record] = await proxy.audits.waitFor(1);
    expect(record).toMatchObject({ kind: 'connect', host: 'localhost', allowed: true });
    expect(record!.bytesUp).toBeGreaterThan(100);
    expect(record!.bytesDown).toBeGreaterThan(text.length);
  });

  it('refuses CONNECT to other hosts with 403 naming the host and the flag, and closes', async () => {
    const proxy = await startProxy({ allowHosts: ['127.0.0.1', '*.npmjs.org'] });
    for (const [target, body] of [
      ['evil.example.com:443', 'agent-worker: egress to evil.example.com:443 is blocked; allow it with --allow-host evil.example.com\n'],
      ['NPMJS.org.:443', 'agent-worker: egress to npmjs.org:443 is blocked; allow it with --allow-host npmjs.org\n'],
      ['[::1]:8443', 'agent-worker: egress to [::1]:8443 is blocked; allow it with --allow-host ::1\n'],
    ] as const) {
      const { socket, statusLine, head, rest } = await connectThrough(proxy.port, target);
      expect(statusLine).toBe('HTTP/1.1 403 Forbidden');
      expect(head).toMatch(/\r\nContent-Type: text\/plain; charset=utf-8\r\n/);
      expect((await readToEnd(socket, rest)).toString()).toBe(body);
    }
    const records = await proxy.audits.waitFor(3);
    expect(records.map((r) => [r.kind, r.host, r.port, r.allowed, r.status, r.bytesUp, r.bytesDown])).toEqual([
      ['connect', 'evil.example.com', 443, false, 403, 0, 0],
      ['connect', 'npmjs.org', 443, false, 403, 0, 0],
      ['connect', '::1', 8443, false, 403, 0, 0],
    ]);
  });

  it('uses blockedHint, with HOST replaced', async () => {
    const proxy = await startProxy({ allowHosts: [], blockedHint: 'add HOST to allowHosts (HOST)' });
    const { socket, rest } = await connectThrough(proxy.port, 'evil.example.com:443');
    expect((await readToEnd(socket, rest)).toString()).toBe('agent-worker: egress to evil.example.com:443 is blocked; add evil.example.com to allowHosts (evil.example.com)\n');
  });

  it('tunnels to an allowed IPv6 literal in brackets', async (context) => {
    let echo: number;
    try {
      echo = await startEcho('::1');
    } catch {
      context.skip();
      return;
    }
    const proxy = await startProxy({ allowHosts: ['::1'] });
    const { socket, statusLine, rest } = await connectThrough(proxy.port, `[0:0::1]:${echo}`);
    expect(statusLine).toBe('HTTP/1.1 200 Connection Established');
    const echoed = readToEnd(socket, rest);
    socket.end('v6');
    expect((await echoed).toString()).toBe('v6');
    expect((await proxy.audits.waitFor(1))[0]).toMatchObject({ host: '::1', port: echo, allowed: true });
  });

  it('answers 502 when an allowed host refuses the tunnel', async () => {
    const port = await closedPort();
    const proxy = await startProxy({ allowHosts: ['127.0.0.1'] });
    const { socket, statusLine, rest } = await connectThrough(proxy.port, `127.0.0.1:${port}`);
    expect(statusLine).toBe('HTTP/1.1 502 Bad Gateway');
    expect((await readToEnd(socket, rest)).toString()).toBe(`agent-worker: connecting to 127.0.0.1:${port} failed (ECONNREFUSED)\n`);
    const [record] = await proxy.audits.waitFor(1);
    expect(record).toMatchObject({ allowed: true, status: 502, error: `upstream 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}` });
  });

  it('forwards absolute-form http:// requests to allowed hosts, without credentials or proxy headers', async () => {
    const upstream = await startUpstream((_req, res) => res.end('plain http'));
    const proxy = await startProxy({ allowHosts: ['127.0.0.1'], routes: [{ prefix: '/', upstream: upstream.url, credentials: CREDENTIALS }] });
    const reply = await send(proxy.port, {
      method: 'POST',
      path: `http://127.0.0.1:${upstream.port}/pkg/x?y=1`,
      headers: { 'proxy-authorization': 'Basic c2VjcmV0', 'proxy-connection': 'keep-alive', 'x-api-key': PLACEHOLDER },
      body: 'abc',
    });
    expect(reply.text).toBe('plain http');
    const seen = upstream.seen[0]!;
    expect(seen.url).toBe('/pkg/x?y=1');
    expect(seen.headers.host).toBe(`127.0.0.1:${upstream.port}`);
    expect(seen.headers['proxy-authorization']).toBeUndefined();
    expect(seen.headers['proxy-connection']).toBeUndefined();
    // Only model API routes get credentials.
    expect(seen.headers['x-api-key']).toBe(PLACEHOLDER);
    const [record] = await proxy.audits.waitFor(1);
    expect(record).toMatchObject({ kind: 'http', host: '127.0.0.1', port: upstream.port, method: 'POST', allowed: true, status: 200, bytesUp: 3, bytesDown: 10 });
  });

  it('refuses absolute-form requests to other hosts with 403, and https:// ones with 400', async () => {
    const proxy = await startProxy({ allowHosts: ['127.0.0.1'] });
    const refused = await send(proxy.port, { path: 'http://Evil.Example.com./x' });
    expect(refused.status).toBe(403);
    expect(refused.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(refused.text).toBe('agent-worker: egress to evil.example.com:80 is blocked; allow it with --allow-host evil.example.com\n');
    const https443 = await send(proxy.port, { path: 'https://127.0.0.1/x' });
    expect(https443.status).toBe(400);
    const records = await proxy.audits.waitFor(2);
    expect(records.map((r) => [r.kind, r.host, r.port, r.allowed, r.status])).toEqual([
      ['http', 'evil.example.com', 80, false, 403],
      ['http', '127.0.0.1', 0, false, 400],
    ]);
  });
});

describe('audit', () => {
  it('records each attempt once, with time, bytes each way and status, never a header or a body', async () => {
    const responseBody = 'r'.repeat(500);
    const upstream = await startUpstream((_req, res) => res.end(responseBody));
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: upstream.url, credentials: CREDENTIALS }], allowHosts: [] });
    const before = Date.now();
    const requestBody = `{"secret-looking body":"${'b'.repeat(1000)}"}`;
    await send(proxy.port, { method: 'POST', path: '/v1/messages', headers: { 'x-api-key': PLACEHOLDER, 'x-custom': 'header-value' }, body: requestBody });
    await send(proxy.port, { path: 'http://blocked.example/' });
    const records = await proxy.audits.waitFor(2);
    expect(records).toHaveLength(2);
    const [api, refused] = records;
    expect(api).toEqual({
      time: expect.any(String),
      kind: 'api',
      host: '127.0.0.1',
      port: upstream.port,
      method: 'POST',
      allowed: true,
      status: 200,
      bytesUp: requestBody.length,
      bytesDown: responseBody.length,
      durationMs: expect.any(Number),
    });
    expect(Date.parse(api!.time)).toBeGreaterThanOrEqual(before - 1);
    expect(api!.durationMs).toBeGreaterThanOrEqual(0);
    expect(api!.durationMs).toBeLessThan(5_000);
    expect(refused).toMatchObject({ kind: 'http', host: 'blocked.example', allowed: false, status: 403, bytesUp: 0, bytesDown: 0, error: 'host not on the allowlist' });
    const text = JSON.stringify(records);
    for (const needle of [SECRET, PLACEHOLDER, 'header-value', 'secret-looking', 'rrrrr']) expect(text).not.toContain(needle);
  });
});

describe('close', () => {
  it('drops open tunnels and streams, reports them before it resolves, and stops listening', async () => {
    const echo = await startEcho();
    const { port: upstreamPort } = await listen(
      http.createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: first\ndata: {}\n\n');
      }),
    );
    const audits = new Audits();
    const proxy = await startEgressProxy(
      { port: 0, host: '127.0.0.1', routes: [{ prefix: '/', upstream: `http://127.0.0.1:${upstreamPort}`, credentials: [] }], allowHosts: ['127.0.0.1'] },
      { onAudit: (record) => audits.push(record) },
    );
    const tunnel = await connectThrough(proxy.port, `127.0.0.1:${echo}`);
    tunnel.socket.on('error', () => undefined);
    const tunnelEnded = readToEnd(tunnel.socket, tunnel.rest);
    expect(tunnel.statusLine).toBe('HTTP/1.1 200 Connection Established');
    const firstByte = deferred();
    const streamClosed = new Promise<boolean>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, path: '/stream', agent: false }, (res) => {
        res.once('data', () => firstByte.resolve());
        res.on('error', () => undefined);
        res.on('close', () => resolve(res.complete));
      });
      req.on('error', reject);
      req.end();
    });
    await firstByte.promise;
    expect(audits.records).toEqual([]);
    await proxy.close();
    expect(audits.records.map((record) => record.kind).sort()).toEqual(['api', 'connect']);
    expect(await streamClosed).toBe(false);
    await tunnelEnded;
    await proxy.close();
    await expect(send(proxy.port, { path: '/' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('checkUpstreams', () => {
  it('reports each route’s upstream: ok, or connection refused', async () => {
    const upstream = await startUpstream();
    const port = await closedPort();
    const checks = await checkUpstreams([
      { prefix: '/', upstream: upstream.url, credentials: [] },
      { prefix: '/b', upstream: `http://127.0.0.1:${port}/x`, credentials: [] },
    ]);
    expect(checks).toEqual([
      { url: upstream.url, ok: true },
      { url: `http://127.0.0.1:${port}/x`, ok: false, error: 'connection refused' },
    ]);
    expect(upstream.seen).toEqual([]);
  });
});

describe('the compiled program', () => {
  /**
   * The compiled file alone in a temp folder, as the sidecar gets it (`.mjs`: ESM without a package.json): the
   * build's output when it is newer than the source, else this one file compiled with the build's options.
   */
  let compiled: string | undefined;
  afterAll(() => {
    if (compiled) removeDir(path.dirname(compiled));
  });
  function compiledProgram(dir: string): string {
    const source = path.join(ROOT, 'src/proxy/egress-proxy.ts');
    let built = path.join(ROOT, 'dist/src/proxy/egress-proxy.js');
    if (compiled) built = compiled;
    else if (!existsSync(built) || statSync(built).mtimeMs < statSync(source).mtimeMs) {
      const out = tempDir('aw-proxy-tsc-');
      const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
      execFileSync(process.execPath, [tsc, '--outDir', out, '--rootDir', path.dirname(source), '--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--types', 'node', '--strict', '--skipLibCheck', source], { cwd: ROOT, stdio: 'pipe' });
      built = compiled = path.join(out, 'egress-proxy.js');
    }
    const program = path.join(dir, 'egress-proxy.mjs');
    copyFileSync(built, program);
    return program;
  }

  /** Runs the program (with `AW_TEST_PROXY_NODE`, e.g. a Node 18 binary, when set) and collects its stdout lines. */
  function run(program: string, configFile: string) {
    const node = process.env.AW_TEST_PROXY_NODE || process.execPath;
    const child = spawn(node, [program, configFile], { stdio: ['ignore', 'pipe', 'pipe'], cwd: path.dirname(program) });
    cleanups.push(() => void child.kill('SIGKILL'));
    const lines: string[] = [];
    let stdout = '';
    let stderr = '';
    const waiters: Array<() => void> = [];
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      for (let end = stdout.indexOf('\n'); end >= 0; end = stdout.indexOf('\n')) {
        lines.push(stdout.slice(0, end));
        stdout = stdout.slice(end + 1);
      }
      for (const waiter of waiters.splice(0)) waiter();
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // 'close', not 'exit': stdout may still hold lines when the process has exited.
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    /** Waits (at most 10 s) for a stdout line of type `type`. */
    const line = async (type: string): Promise<Record<string, unknown>> => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const found = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.type === type);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no ${type} line within 10 s; stdout: ${lines.join('\n')}; stderr: ${stderr}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 200);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    };
    return { child, lines, line, exited, stderr: () => stderr };
  }

  it('reads and deletes its config, drops root, says ready, proxies, audits, and exits 0 on SIGTERM', async () => {
    const dir = track(tempDir('aw-proxy-main-'));
    const program = compiledProgram(dir);
    const upstream = await startUpstream();
    const down = await closedPort();
    const configFile = path.join(dir, 'egress-proxy.json');
    const config: EgressProxyConfig = {
      port: 0,
      host: '127.0.0.1',
      routes: [{ prefix: '/', upstream: upstream.url, credentials: CREDENTIALS }],
      allowHosts: ['127.0.0.1'],
    };
    // A model API that does not answer: the proxy says so and never listens (the agent's container waits for it).
    const downFile = path.join(dir, 'egress-proxy-down.json');
    writeFileSync(downFile, JSON.stringify({ ...config, routes: [...config.routes, { prefix: '/down', upstream: `http://127.0.0.1:${down}`, credentials: [] }] }), { mode: 0o600 });
    const unready = run(program, downFile);
    expect(await unready.line('ready')).toEqual({
      type: 'ready',
      port: 0,
      upstreams: [
        { url: upstream.url, ok: true },
        { url: `http://127.0.0.1:${down}`, ok: false, error: 'connection refused' },
      ],
    });
    expect(await unready.exited).toBe(0);
    expect(unready.lines).toHaveLength(1);

    writeFileSync(configFile, JSON.stringify(config), { mode: 0o600 });
    const proxy = run(program, configFile);
    const ready = await proxy.line('ready');
    expect(ready).toEqual({ type: 'ready', port: expect.any(Number), upstreams: [{ url: upstream.url, ok: true }] });
    expect(existsSync(configFile)).toBe(false);
    if (process.getuid?.() === 0) {
      const status = readFileSync(`/proc/${proxy.child.pid}/status`, 'utf8');
      expect(status).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
      expect(status).toMatch(/^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
      expect(status).toMatch(/^Groups:\s*$/m);
    }
    const reply = await send(ready.port as number, { method: 'POST', path: '/v1/messages', headers: { 'x-api-key': PLACEHOLDER }, body: '{}' });
    expect(reply.status).toBe(200);
    expect(upstream.seen[0]!.headers['x-api-key']).toBe(SECRET);
    const audit = await proxy.line('audit');
    expect(audit).toMatchObject({ type: 'audit', kind: 'api', method: 'POST', allowed: true, status: 200, bytesUp: 2, bytesDown: 11 });
    proxy.child.kill('SIGTERM');
    expect(await proxy.exited).toBe(0);
    expect(proxy.stderr()).toBe('');
    expect(proxy.lines.join('\n')).not.toContain(SECRET);
    expect(proxy.lines.map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['ready', 'audit']);
  });

  it('fails with one error line and exit 1, deleting the config and quoting none of it', async () => {
    const dir = track(tempDir('aw-proxy-main-'));
    const program = compiledProgram(dir);
    const cases: Array<[string, string]> = [
      [`{"port": 0, "routes": [{"value": "${SECRET}"`, 'the config file is not valid JSON'],
      [JSON.stringify({ port: 0, routes: [{ prefix: '/', upstream: 'https://x.example', credentials: [{ header: 'x-api-key', placeholder: SECRET, value: SECRET }] }], allowHosts: [] }), 'invalid egress proxy config: routes[0].credentials[0].placeholder must differ from the value'],
    ];
    for (const [text, message] of cases) {
      const configFile = path.join(dir, 'egress-proxy.json');
      writeFileSync(configFile, text, { mode: 0o600 });
      const proxy = run(program, configFile);
      expect(await proxy.exited).toBe(1);
      expect(proxy.lines.map((l) => JSON.parse(l) as unknown)).toEqual([{ type: 'error', message }]);
      expect(existsSync(configFile)).toBe(false);
    }
    const missing = run(program, path.join(dir, 'nope.json'));
    expect(await missing.exited).toBe(1);
    expect(JSON.parse(missing.lines[0]!)).toEqual({ type: 'error', message: `cannot read the config file ${path.join(dir, 'nope.json')}: ENOENT` });
  });
});

describe('latency (measured, not asserted)', () => {
  it('time to the first SSE byte, direct vs through the proxy, on loopback', async () => {
    const { port: upstreamPort } = await listen(
      http.createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: message_start\ndata: {}\n\n');
        res.end();
      }),
    );
    const proxy = await startProxy({ routes: [{ prefix: '/', upstream: `http://127.0.0.1:${upstreamPort}`, credentials: CREDENTIALS }] });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const firstByte = (port: number, keepAlive: boolean): Promise<number> =>
      new Promise((resolve, reject) => {
        const started = process.hrtime.bigint();
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/messages', headers: { 'x-api-key': PLACEHOLDER }, agent: keepAlive ? agent : false }, (res) => {
          res.once('data', () => resolve(Number(process.hrtime.bigint() - started) / 1e6));
          res.resume();
        });
        req.on('error', reject);
        req.end('{}');
      });
    const RUNS = 200;
    const stats = async (port: number, keepAlive: boolean): Promise<string> => {
      for (let i = 0; i < 20; i += 1) await firstByte(port, keepAlive);
      const times: number[] = [];
      for (let i = 0; i < RUNS; i += 1) times.push(await firstByte(port, keepAlive));
      times.sort((a, b) => a - b);
      const at = (q: number): string => times[Math.min(times.length - 1, Math.floor(q * times.length))]!.toFixed(3);
      return `median ${at(0.5)} ms, p90 ${at(0.9)} ms, p99 ${at(0.99)} ms`;
    };
    const results = {
      'direct, new connection': await stats(upstreamPort, false),
      'proxy, new connection': await stats(proxy.port, false),
      'direct, keep-alive': await stats(upstreamPort, true),
      'proxy, keep-alive': await stats(proxy.port, true),
    };
    console.log(`time to first SSE byte over ${RUNS} requests (loopback):\n${Object.entries(results).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
    expect(proxy.audits.records.length).toBeGreaterThan(0);
  }, 30_000);
});

/**
 * The egress proxy of issue #12 ("the agent never holds a credential"). It runs in a sidecar container on the
 * run's internal network and is the agent container's only way out:
 *
 *  - **Model API routes.** The agent's base URL points here and it holds a placeholder key. An origin-form request
 *    (`POST /v1/messages?beta=true`) goes to the first {@link ApiRoute} whose prefix matches; a credential header
 *    whose value is exactly the placeholder is replaced with the real secret on the way out, and any other value is
 *    left as it is. Nothing the proxy answers contains a secret: its own messages never do, and a secret an upstream
 *    reflects is masked (in headers, and in bodies, which it asks to get uncompressed).
 *  - **Forward proxy.** `CONNECT host:port` (RFC 9110 §9.3.6) and absolute-form `GET http://host/…` requests
 *    (RFC 9112 §3.2.2) reach hosts on the allowlist ({@link hostAllowed}); anything else gets `403` naming the flag
 *    that allows it. Credentials are never injected here.
 *  - **Audit.** One {@link AuditRecord} per attempt, emitted when it finishes: never a header, never a body.
 *
 * Bodies and responses stream in both directions (Server-Sent Events from the model API arrive unbuffered).
 *
 * The compiled file is handed alone to the sidecar (as `egress-proxy.mjs`: ESM without a package.json; see
 * src/docker/egress.ts), where it runs on Debian bookworm's Node 18 without node_modules: it imports only `node:`
 * builtins and nothing newer than Node 18. Executed directly (`node egress-proxy.mjs <config-file>`) it runs
 * {@link main}; imported, it has no side effects.
 */
import { realpathSync, readFileSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Transform, type Duplex, type TransformCallback } from 'node:stream';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';

/** A credential the proxy adds to requests of one {@link ApiRoute}. */
export interface CredentialRule {
  /** Request header that carries it, lower-case: `x-api-key`, `authorization`. */
  header: string;
  /** Authorization scheme in front of the value (`Bearer`), compared case-insensitively; none for a bare value. */
  scheme?: string;
  /** The value the agent was given instead of the secret. Replaced only when the header holds exactly this. */
  placeholder: string;
  /** The real secret. Never logged, echoed or written anywhere but into the upstream request. */
  value: string;
}

/** One model API the agent reaches through the proxy's own address. */
export interface ApiRoute {
  /**
   * Path prefix of the agent's base URL, e.g. `/` or `/anthropic`. Matched on whole segments: `/anthropic` matches
   * `/anthropic` and `/anthropic/v1/messages`, not `/anthropicx`.
   */
  prefix: string;
  /** Upstream base URL, `http:` or `https:`, e.g. `https://api.anthropic.com` or `http://host:1234/some/base`. */
  upstream: string;
  /** Credentials added to this route's requests. */
  credentials: CredentialRule[];
}

/** Configuration of {@link startEgressProxy}; the JSON document of the config file given to {@link main}. */
export interface EgressProxyConfig {
  /** TCP port to listen on; 0 = any free port (the one taken is returned). */
  port: number;
  /** Listen address. Default `0.0.0.0`. */
  host?: string;
  /** Model API routes, tried in order for origin-form requests. */
  routes: ApiRoute[];
  /**
   * Hosts the forward proxy reaches: exact names (`registry.npmjs.org`), wildcards (`*.npmjs.org` matches
   * `sub.npmjs.org` and `a.b.npmjs.org`, not `npmjs.org`), or IP literals (`127.0.0.1`, `::1`). Compared
   * case-insensitively, ignoring a trailing dot.
   */
  allowHosts: string[];
  /** Extra CA certificates (PEM) trusted for upstream TLS, on top of Node's bundled Mozilla roots. */
  caPem?: string;
  /**
   * The second half of the 403 body, telling which flag allows a host; every `HOST` is replaced by the host name.
   * Default `allow it with --allow-host HOST`.
   */
  blockedHint?: string;
}

/** What one attempt through the proxy did. Never holds a header value or a body. */
export interface AuditRecord {
  /** ISO 8601 time when the attempt started. */
  time: string;
  /** `api`: a model API route; `connect`: a CONNECT tunnel; `http`: an absolute-form request. */
  kind: 'api' | 'connect' | 'http';
  /** Upstream host name (the route's upstream for `api`; empty for a path that matched no route). */
  host: string;
  /** Upstream TCP port (0 for a path that matched no route). */
  port: number;
  /** Request method (`CONNECT` for a tunnel). */
  method: string;
  /** Whether the request was let through (a route matched, or the host is on the allowlist). */
  allowed: boolean;
  /**
   * HTTP status received from the upstream, or given by the proxy itself (403, 404, 502); null for a tunnel that
   * was established.
   */
  status: number | null;
  /** Bytes sent from the client toward the upstream: request body, or tunnel data. Headers are not counted. */
  bytesUp: number;
  /** Bytes sent from the upstream toward the client: response body, or tunnel data. */
  bytesDown: number;
  /** From the start of the attempt to its end (response finished, or both tunnel sides closed), in ms. */
  durationMs: number;
  /** Why it failed, when it did (refused, DNS, TLS, a side closing early). Never contains a header value. */
  error?: string;
}

/** Options of {@link startEgressProxy}. */
export interface EgressProxyOptions {
  /** Called once per finished attempt. Must not throw (an exception from it is ignored). */
  onAudit?: (record: AuditRecord) => void;
}

/** A listening proxy. */
export interface EgressProxy {
  /** The TCP port it listens on. */
  port: number;
  /**
   * Stops listening, drops every open connection and tunnel, and resolves once the server is closed and the audit
   * records of the attempts that were in flight have been emitted (waits at most {@link CLOSE_DRAIN_MS}). Safe to
   * call again.
   */
  close(): Promise<void>;
}

/** An invalid {@link EgressProxyConfig}: each problem names its field, never a secret. */
export class EgressProxyConfigError extends Error {
  override name = 'EgressProxyConfigError';
  /** @param problems one sentence per invalid field, e.g. `routes[0].upstream must be an http: or https: URL`. */
  constructor(readonly problems: string[]) {
    super(`invalid egress proxy config: ${problems.join('; ')}`);
  }
}

/** The `uid` and `gid` {@link main} drops to when started as root (Debian's `nobody` / `nogroup`). */
export const UNPRIVILEGED_ID = 65534;
/** How long connecting to an upstream (TCP, for a route or a tunnel) may take before it fails with 502, in ms. */
export const CONNECT_TIMEOUT_MS = 30_000;
/** How long {@link EgressProxy.close} waits for in-flight attempts to report, in ms. */
export const CLOSE_DRAIN_MS = 2_000;
/** How long an idle keep-alive connection from the agent stays open, in ms (longer than clients' usual 5 s). */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** How long the agent may take to send a request's headers, in ms (must exceed {@link KEEP_ALIVE_TIMEOUT_MS}). */
const HEADERS_TIMEOUT_MS = 66_000;
/** How long a refused CONNECT's socket may stay half-open after the 403 was sent, in ms. */
const REFUSED_LINGER_MS = 5_000;
/** Longest `error` text in an audit record, in characters. */
const MAX_ERROR_CHARS = 300;

const DEFAULT_BLOCKED_HINT = 'allow it with --allow-host HOST';

/** Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded either way. Node frames bodies itself. */
const HOP_BY_HOP_HEADERS = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
/** Request headers never forwarded upstream: the hop-by-hop ones plus the ones the proxy itself answers for. */
const REQUEST_HEADERS_DROPPED = new Set([
  ...HOP_BY_HOP_HEADERS,
  'proxy-authorization',
  // The proxy answers `100 Continue` to the client itself; the upstream gets the body as it comes.
  'expect',
  'host',
]);
/** Response headers never forwarded to the client. */
const RESPONSE_HEADERS_DROPPED = new Set(HOP_BY_HOP_HEADERS);
/** Methods that echo the request back (headers included) and so could hand out an injected credential. */
const ECHOING_METHODS = new Set(['TRACE', 'TRACK']);
/** An HTTP field name (RFC 9110 §5.1, token), lower-case. */
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
/** A field value the proxy can put into a header: visible ASCII and inner spaces/tabs (RFC 9110 §5.5). */
const HEADER_VALUE = /^[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?$/;
/** A DNS name after lower-casing and removing one trailing dot (underscores allowed, as resolvers do). */
const DNS_NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

/** Request headers as forwarded: lower-case name → value (an array when the header was repeated). */
type HeaderMap = Record<string, string | string[]>;

/**
 * Normalizes a host name or IP literal for comparison: lower-case, one trailing dot removed, IPv6 brackets removed
 * and the address written in its canonical (compressed) form.
 * @returns the normalized host, or undefined when `host` is not a DNS name, an IPv4 address or an IPv6 address
 *   (e.g. it has a port, a path, a zone id or characters a host name cannot have).
 */
export function normalizeHost(host: string): string | undefined {
  let h = host.toLowerCase();
  const bracketed = h.startsWith('[') && h.endsWith(']');
  if (bracketed) h = h.slice(1, -1);
  else if (h.endsWith('.')) h = h.slice(0, -1);
  if (h.includes('%')) return undefined;
  if (net.isIPv6(h)) return new URL(`http://[${h}]/`).hostname.slice(1, -1);
  if (bracketed) return undefined;
  if (net.isIPv4(h)) return h;
  return h.length <= 253 && DNS_NAME.test(h) ? h : undefined;
}

/**
 * Whether the forward proxy may reach `host`.
 * @param host a host name or IP literal (IPv6 with or without brackets), as a client named it.
 * @param allowHosts exact names, IP literals, or wildcards `*.example.org` (any name ending in `.example.org`, at any
 *   depth, but not `example.org` itself and never an IP address). Case and one trailing dot are ignored on both
 *   sides; an entry that is none of these matches nothing.
 */
export function hostAllowed(host: string, allowHosts: string[]): boolean {
  const h = normalizeHost(host);
  if (h === undefined) return false;
  for (const pattern of allowHosts) {
    if (pattern.startsWith('*.')) {
      const base = normalizeHost(pattern.slice(2));
      if (base !== undefined && net.isIP(h) === 0 && h.endsWith(`.${base}`)) return true;
    } else if (normalizeHost(pattern) === h) {
      return true;
    }
  }
  return false;
}

/**
 * Checks a parsed config document field by field.
 * @param value anything, e.g. the result of `JSON.parse` of the config file.
 * @returns `value`, typed.
 * @throws EgressProxyConfigError listing every invalid field (by its path, never its value).
 */
export function parseEgressProxyConfig(value: unknown): EgressProxyConfig {
  const problems: string[] = [];
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(value)) throw new EgressProxyConfigError(['the config must be a JSON object']);
  const { port, host, routes, allowHosts, caPem, blockedHint } = value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    problems.push('port must be an integer from 0 to 65535');
  }
  if (host !== undefined && (typeof host !== 'string' || net.isIP(host) === 0)) problems.push('host must be an IP address');
  if (caPem !== undefined && (typeof caPem !== 'string' || !caPem.includes('-----BEGIN CERTIFICATE-----'))) {
    problems.push('caPem must be PEM text with at least one CERTIFICATE block');
  }
  if (blockedHint !== undefined && typeof blockedHint !== 'string') problems.push('blockedHint must be a string');
  if (!Array.isArray(allowHosts)) problems.push('allowHosts must be an array of host names');
  else {
    allowHosts.forEach((entry, i) => {
      const name = typeof entry === 'string' && entry.startsWith('*.') ? entry.slice(2) : entry;
      if (typeof name !== 'string' || normalizeHost(name) === undefined) {
        problems.push(`allowHosts[${i}] must be a host name, an IP address or *.domain`);
      }
    });
  }
  if (!Array.isArray(routes)) problems.push('routes must be an array');
  else {
    routes.forEach((route: unknown, i) => {
      const at = `routes[${i}]`;
      if (!isObject(route)) {
        problems.push(`${at} must be an object`);
        return;
      }
      if (typeof route.prefix !== 'string' || !route.prefix.startsWith('/') || /[?#\s]/.test(route.prefix)) {
        problems.push(`${at}.prefix must be a path starting with /`);
      }
      let upstream: URL | undefined;
      try {
        upstream = typeof route.upstream === 'string' ? new URL(route.upstream) : undefined;
      } catch {
        upstream = undefined;
      }
      if (upstream === undefined || (upstream.protocol !== 'http:' && upstream.protocol !== 'https:')) {
        problems.push(`${at}.upstream must be an http: or https: URL`);
      } else if (upstream.username !== '' || upstream.password !== '' || upstream.search !== '' || upstream.hash !== '') {
        problems.push(`${at}.upstream must have no user, password, query or fragment`);
      }
      if (!Array.isArray(route.credentials)) {
        problems.push(`${at}.credentials must be an array`);
        return;
      }
      route.credentials.forEach((rule: unknown, j) => {
        const r = `${at}.credentials[${j}]`;
        if (!isObject(rule)) {
          problems.push(`${r} must be an object`);
          return;
        }
        if (typeof rule.header !== 'string' || !HEADER_NAME.test(rule.header)) {
          problems.push(`${r}.header must be a lower-case header name`);
        } else if (REQUEST_HEADERS_DROPPED.has(rule.header)) {
          problems.push(`${r}.header must not be a hop-by-hop header or host`);
        }
        if (rule.scheme !== undefined && (typeof rule.scheme !== 'string' || !HEADER_NAME.test(rule.scheme.toLowerCase()))) {
          problems.push(`${r}.scheme must be a single word such as Bearer`);
        }
        if (typeof rule.placeholder !== 'string' || !HEADER_VALUE.test(rule.placeholder)) {
          problems.push(`${r}.placeholder must be a non-empty header value`);
        }
        if (typeof rule.value !== 'string' || !HEADER_VALUE.test(rule.value)) {
          problems.push(`${r}.value must be a non-empty header value (printable ASCII, no line breaks)`);
        } else if (rule.value === rule.placeholder) {
          problems.push(`${r}.placeholder must differ from the value`);
        }
      });
    });
  }
  if (problems.length > 0) throw new EgressProxyConfigError(problems);
  return value as unknown as EgressProxyConfig;
}

/** A route ready to serve. */
interface CompiledRoute {
  /** The prefix without its trailing slashes; '' for `/`. */
  prefix: string;
  transport: typeof http | typeof https;
  agent: http.Agent;
  /** Host name to connect to (IPv6 without brackets). */
  hostname: string;
  port: number;
  /** `host[:port]` as the upstream's Host header. */
  hostHeader: string;
  /** The upstream's own path without trailing slashes ('' for the root). */
  basePath: string;
  credentials: CredentialRule[];
}

/** An attempt being tracked until its audit record is emitted. */
interface Attempt {
  record: Omit<AuditRecord, 'durationMs'>;
  started: number;
  finished: boolean;
}

/** What the request handlers of one proxy share. */
interface ProxyContext {
  config: EgressProxyConfig;
  routes: CompiledRoute[];
  /** For absolute-form requests (no keep-alive: each goes to a different host). */
  forwardAgent: http.Agent;
  /** The secrets' bytes, for {@link SecretMask}. */
  secretBytes: Buffer[];
  /** Client and tunnel sockets open now, destroyed by `close`. */
  sockets: Set<net.Socket>;
  /** Replaces every secret in a text that may end up in a record or a response. */
  scrub(text: string): string;
  /** Starts tracking an attempt; its time is now. */
  begin(record: Omit<AuditRecord, 'time' | 'durationMs'>): Attempt;
  /** Sets the attempt's error unless it has one already (the first cause wins). */
  fail(attempt: Attempt, error: string): void;
  /** Emits the attempt's audit record, once. */
  finish(attempt: Attempt): void;
}

/**
 * Starts the proxy: an HTTP/1.1 server that serves the model API routes, CONNECT tunnels and absolute-form requests
 * (see the module comment).
 * @param config what to serve; checked with {@link parseEgressProxyConfig}.
 * @param options.onAudit receives one {@link AuditRecord} per finished attempt.
 * @returns the port it listens on and `close`.
 * @throws EgressProxyConfigError when `config` is invalid; the listen error (EADDRINUSE, EACCES…) when the port
 *   cannot be bound.
 */
export async function startEgressProxy(config: EgressProxyConfig, options: EgressProxyOptions = {}): Promise<EgressProxy> {
  parseEgressProxyConfig(config);
  const secrets = [...new Set(config.routes.flatMap((route) => route.credentials.map((rule) => rule.value)))];
  // Made once (parsing ~150 roots takes milliseconds), not per connection. Without caPem, Node's default store:
  // the bundled roots, or OpenSSL's system store for a Node built with --use-openssl-ca (as Debian's is).
  const secureContext = config.caPem === undefined ? undefined : tls.createSecureContext({ ca: [...tls.rootCertificates, config.caPem] });
  const agents: http.Agent[] = [];
  const routes = config.routes.map((route) => compileRoute(route, secureContext, agents));
  const forwardAgent = new http.Agent({ keepAlive: false });
  agents.push(forwardAgent);
  const pending = new Set<Attempt>();
  let drained: (() => void) | undefined;
  const scrub = (text: string): string => secrets.reduce((t, secret) => t.split(secret).join('[redacted]'), text);
  const context: ProxyContext = {
    config,
    routes,
    forwardAgent,
    secretBytes: secrets.map((secret) => Buffer.from(secret, 'latin1')),
    sockets: new Set(),
    scrub,
    begin(record) {
      const attempt: Attempt = { record: { time: new Date().toISOString(), ...record }, started: Date.now(), finished: false };
      pending.add(attempt);
      return attempt;
    },
    fail(attempt, error) {
      attempt.record.error ??= error;
    },
    finish(attempt) {
      if (attempt.finished) return;
      attempt.finished = true;
      pending.delete(attempt);
      const { error, ...rest } = attempt.record;
      const record: AuditRecord = { ...rest, durationMs: Date.now() - attempt.started };
      if (error !== undefined) record.error = scrub(error).slice(0, MAX_ERROR_CHARS);
      try {
        options.onAudit?.(record);
      } catch {
        // Documented: a throwing observer must not take the proxy down.
      }
      if (pending.size === 0) drained?.();
    },
  };

  const server = createServer(context);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => {
    // After listening, only accept errors (EMFILE) reach here; the server keeps listening.
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of context.sockets) socket.destroy();
      for (const agent of agents) agent.destroy();
      await serverClosed;
      if (pending.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          drained = resolve;
          timer = setTimeout(resolve, CLOSE_DRAIN_MS);
        });
        clearTimeout(timer);
      }
    })();
    return closing;
  };
  return { port, close };
}

/** The proxy's HTTP server (not listening yet): requests, CONNECT, malformed input, socket tracking. */
function createServer(context: ProxyContext): http.Server {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (url.startsWith('/')) handleApi(context, req, res, url);
    else handleAbsolute(context, req, res, url);
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  // Request bodies stream for as long as they take; a response never counts against this anyway.
  server.requestTimeout = 0;
  server.on('connection', (socket: net.Socket) => {
    socket.setNoDelay(true);
    context.sockets.add(socket);
    socket.on('close', () => context.sockets.delete(socket));
  });
  server.on('clientError', (error: Error, socket: Duplex) => {
    // Malformed request or headers too large: answer as Node would by default (write, then destroy); never throw.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ECONNRESET' && socket.writable && !socket.destroyed) {
      const status = code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.write(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    }
    socket.destroy();
  });
  server.on('connect', (req: http.IncomingMessage, client: Duplex, head: Buffer) => handleConnect(context, req, client as net.Socket, head));
  return server;
}

/** An origin-form request: to the first matching route's upstream, credentials swapped; 404 without a route. */
function handleApi(context: ProxyContext, req: http.IncomingMessage, res: http.ServerResponse, url: string): void {
  const query = url.indexOf('?');
  const path = query < 0 ? url : url.slice(0, query);
  const search = query < 0 ? '' : url.slice(query);
  const method = req.method ?? 'GET';
  const match = findRoute(context.routes, path);
  if (match === undefined) {
    const attempt = context.begin({ kind: 'api', host: '', port: 0, method, allowed: false, status: 404, bytesUp: 0, bytesDown: 0 });
    context.fail(attempt, 'no API route for the path');
    res.on('close', () => context.finish(attempt));
    sendJson(res, 404, { error: `agent-worker egress proxy: no API route for ${path}` });
    return;
  }
  const { route, rest } = match;
  const attempt = context.begin({ kind: 'api', host: route.hostname, port: route.port, method, allowed: true, status: null, bytesUp: 0, bytesDown: 0 });
  if (ECHOING_METHODS.has(method.toUpperCase())) {
    attempt.record.allowed = false;
    attempt.record.status = 405;
    context.fail(attempt, `method ${method} is not forwarded to API routes`);
    res.on('close', () => context.finish(attempt));
    sendJson(res, 405, { error: `agent-worker egress proxy: method ${method} is not forwarded to API routes` });
    return;
  }
  const headers = forwardableHeaders(req.rawHeaders, REQUEST_HEADERS_DROPPED);
  headers.host = route.hostHeader;
  // Uncompressed, so that a secret an upstream reflects can be masked (SecretMask); SSE is uncompressed anyway.
  headers['accept-encoding'] = 'identity';
  injectCredentials(headers, route.credentials);
  // String concatenation, never `new URL(path, upstream)`: a path like `//evil.example/x` must stay a path.
  const upstreamPath = `${route.basePath}${rest}` || '/';
  forward(context, req, res, { ...route, path: `${upstreamPath}${search}`, headers, maskSecrets: true }, attempt);
}

/** An absolute-form request (`GET http://host/…`): forwarded when the host is allowed, else 403; never credentials. */
function handleAbsolute(context: ProxyContext, req: http.IncomingMessage, res: http.ServerResponse, url: string): void {
  const method = req.method ?? 'GET';
  let target: URL | undefined;
  try {
    target = new URL(url);
  } catch {
    target = undefined;
  }
  const host = target === undefined ? undefined : normalizeHost(target.hostname);
  if (target === undefined || host === undefined || target.protocol !== 'http:') {
    const attempt = context.begin({ kind: 'http', host: host ?? '', port: 0, method, allowed: false, status: 400, bytesUp: 0, bytesDown: 0 });
    context.fail(attempt, 'not an http:// URL with a valid host');
    res.on('close', () => context.finish(attempt));
    sendText(res, 400, 'agent-worker: only http:// URLs are forwarded in absolute form; https goes through CONNECT\n');
    return;
  }
  const port = target.port === '' ? 80 : Number(target.port);
  const allowed = hostAllowed(host, context.config.allowHosts);
  const attempt = context.begin({ kind: 'http', host, port, method, allowed, status: null, bytesUp: 0, bytesDown: 0 });
  if (!allowed) {
    attempt.record.status = 403;
    context.fail(attempt, 'host not on the allowlist');
    res.on('close', () => context.finish(attempt));
    sendText(res, 403, blockedText(context.config, host, port));
    return;
  }
  const headers = forwardableHeaders(req.rawHeaders, REQUEST_HEADERS_DROPPED);
  headers.host = target.host;
  const path = `${target.pathname}${target.search}`;
  forward(context, req, res, { transport: http, agent: context.forwardAgent, hostname: host, port, path, headers, maskSecrets: false }, attempt);
}

/** Where {@link forward} sends a request. */
interface ForwardTarget {
  transport: typeof http | typeof https;
  agent: http.Agent;
  /** Host name or IP address (IPv6 without brackets). */
  hostname: string;
  port: number;
  /** Path and query, as sent in the request line. */
  path: string;
  /** The request headers as they go out, Host included. */
  headers: HeaderMap;
  /** Mask the secrets in the response body (model API routes: the only requests that carry them). */
  maskSecrets: boolean;
}

/**
 * Sends `req` to `target`, body streamed, and streams the answer back (status, headers without hop-by-hop ones,
 * body); 502 when the upstream cannot be reached. Either side leaving early ends the other. The attempt finishes
 * when `res` closes.
 */
function forward(context: ProxyContext, req: http.IncomingMessage, res: http.ServerResponse, target: ForwardTarget, attempt: Attempt): void {
  const upstreamName = attempt.record.host;
  let upstream: http.ClientRequest | undefined;
  let answered = false;
  res.on('close', () => {
    if (!res.writableFinished) {
      context.fail(attempt, 'the client closed the connection before the response ended');
      upstream?.destroy();
    }
    context.finish(attempt);
  });
  const answerError = (error: unknown): void => {
    if (answered) return;
    answered = true;
    context.fail(attempt, `upstream ${upstreamName}: ${describeError(error)}`);
    // The rest of the request body goes nowhere; read it so the 502 can be sent.
    if (upstream !== undefined) req.unpipe(upstream);
    req.resume();
    if (res.destroyed || res.writableEnded) return;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    attempt.record.status = 502;
    sendJson(res, 502, { error: context.scrub(`agent-worker egress proxy: upstream ${upstreamName} failed (${errorCode(error)})`) });
  };
  try {
    upstream = target.transport.request({
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      path: target.path,
      headers: target.headers,
      agent: target.agent,
      setHost: false,
    });
  } catch (error) {
    // Node refuses a path or header it cannot send (ERR_UNESCAPED_CHARACTERS, ERR_INVALID_CHAR): name only.
    answerError(error);
    return;
  }
  const up = upstream;
  up.on('socket', (socket: net.Socket) => {
    socket.setNoDelay(true);
    if (!socket.connecting) return;
    const timer = setTimeout(() => up.destroy(new TimeoutError(`connecting took over ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
    socket.once('connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
  });
  up.on('error', answerError);
  up.on('response', (upRes) => {
    attempt.record.status = upRes.statusCode ?? 502;
    upRes.on('data', (chunk: Buffer) => {
      attempt.record.bytesDown += chunk.length;
    });
    upRes.on('error', () => {
      // 'aborted' (ECONNRESET) when the upstream closes mid-response; handled on 'close' below.
    });
    upRes.on('close', () => {
      if (upRes.complete) return;
      context.fail(attempt, `upstream ${upstreamName} closed the connection before the response ended`);
      if (!res.writableFinished) res.destroy();
    });
    if (res.destroyed || answered) {
      upRes.resume();
      return;
    }
    try {
      const headers = forwardableHeaders(upRes.rawHeaders, RESPONSE_HEADERS_DROPPED);
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage || undefined, scrubHeaders(headers, context.scrub));
    } catch (error) {
      upRes.resume();
      answerError(error);
      return;
    }
    // Server-Sent Events: the client sees the status and headers now, and each chunk as it arrives (pipe).
    res.flushHeaders();
    const encoding = (upRes.headers['content-encoding'] ?? 'identity').toLowerCase();
    if (target.maskSecrets && context.secretBytes.length > 0 && encoding === 'identity') {
      upRes.pipe(new SecretMask(context.secretBytes)).pipe(res);
    } else {
      upRes.pipe(res);
    }
  });
  req.on('data', (chunk: Buffer) => {
    attempt.record.bytesUp += chunk.length;
  });
  req.on('error', () => {
    // The client went away mid-upload; res 'close' aborts the upstream request.
  });
  req.pipe(up);
}

/**
 * `CONNECT host:port`: a tunnel piped both ways when the host is allowed, else 403 (400 when malformed); 502 when
 * the host cannot be reached. The attempt finishes when both sides have closed.
 */
function handleConnect(context: ProxyContext, req: http.IncomingMessage, client: net.Socket, head: Buffer): void {
  // The tunnel reads from the client only once the upstream is there (pipe resumes it).
  client.pause();
  client.on('error', () => {
    // Reset by the client; 'close' below ends the attempt.
  });
  const authority = parseAuthority(req.url ?? '');
  const allowed = authority !== undefined && hostAllowed(authority.host, context.config.allowHosts);
  const attempt = context.begin({
    kind: 'connect',
    host: authority?.host ?? '',
    port: authority?.port ?? 0,
    method: 'CONNECT',
    allowed,
    status: null,
    bytesUp: 0,
    bytesDown: 0,
  });
  if (authority === undefined || !allowed) {
    const [status, body]: [400 | 403, string] =
      authority === undefined
        ? [400, 'agent-worker: CONNECT needs host:port (IPv6 in brackets)\n']
        : [403, blockedText(context.config, authority.host, authority.port)];
    attempt.record.status = status;
    context.fail(attempt, authority === undefined ? 'malformed CONNECT target' : 'host not on the allowlist');
    refuse(client, rawResponse(status, body), () => context.finish(attempt));
    return;
  }
  const { host, port } = authority;
  const upstream = net.connect({ host, port, allowHalfOpen: true });
  context.sockets.add(upstream);
  let connected = false;
  let closedSides = 0;
  const sideClosed = (): void => {
    closedSides += 1;
    if (closedSides < 2) return;
    attempt.record.bytesUp = upstream.bytesWritten;
    attempt.record.bytesDown = upstream.bytesRead;
    context.finish(attempt);
  };
  const timer = setTimeout(() => upstream.destroy(new TimeoutError(`connecting took over ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
  upstream.on('connect', () => {
    clearTimeout(timer);
    connected = true;
    upstream.setNoDelay(true);
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  upstream.on('error', (error) => {
    clearTimeout(timer);
    context.fail(attempt, `upstream ${host}:${port}: ${describeError(error)}`);
    if (connected || client.destroyed) {
      client.destroy();
      return;
    }
    attempt.record.status = 502;
    refuse(client, rawResponse(502, `agent-worker: connecting to ${host}:${port} failed (${errorCode(error)})\n`));
  });
  upstream.on('close', () => {
    clearTimeout(timer);
    context.sockets.delete(upstream);
    // Closed without its peer ending the stream (reset, destroyed): the client's side goes too.
    if (connected && !upstream.readableEnded) client.destroy();
    sideClosed();
  });
  client.on('close', () => {
    if (!client.readableEnded) {
      context.fail(attempt, connected ? 'the client closed the tunnel abruptly' : 'the client left before the tunnel was established');
      upstream.destroy();
    }
    sideClosed();
  });
}

/** The 403 body: which host was refused, and {@link EgressProxyConfig.blockedHint} with HOST replaced. */
function blockedText(config: EgressProxyConfig, host: string, port: number): string {
  const shown = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
  return `agent-worker: egress to ${shown} is blocked; ${(config.blockedHint ?? DEFAULT_BLOCKED_HINT).split('HOST').join(host)}\n`;
}

/**
 * Builds a route's transport, agent (keep-alive; TLS trusting `secureContext`'s CAs when given) and upstream parts;
 * pushes its agent to `agents`.
 */
function compileRoute(route: ApiRoute, secureContext: tls.SecureContext | undefined, agents: http.Agent[]): CompiledRoute {
  const upstream = new URL(route.upstream);
  const secure = upstream.protocol === 'https:';
  const agent = secure ? new https.Agent({ keepAlive: true, secureContext }) : new http.Agent({ keepAlive: true });
  agents.push(agent);
  return {
    prefix: route.prefix.replace(/\/+$/, ''),
    transport: secure ? https : http,
    agent,
    hostname: upstream.hostname.startsWith('[') ? upstream.hostname.slice(1, -1) : upstream.hostname,
    port: upstream.port === '' ? (secure ? 443 : 80) : Number(upstream.port),
    hostHeader: upstream.host,
    basePath: upstream.pathname.replace(/\/+$/, ''),
    credentials: route.credentials,
  };
}

/**
 * The first route whose prefix matches `path` on whole segments, and the rest of the path after the prefix ('' or
 * starting with `/`).
 */
function findRoute(routes: CompiledRoute[], path: string): { route: CompiledRoute; rest: string } | undefined {
  for (const route of routes) {
    if (route.prefix === '' || path === route.prefix || path.startsWith(`${route.prefix}/`)) {
      return { route, rest: path.slice(route.prefix.length) };
    }
  }
  return undefined;
}

/**
 * The headers of a message as they go on: names lower-cased, repeated headers kept as arrays, and every header in
 * `dropped` or named in the message's own `Connection` header left out.
 * @param rawHeaders Node's `rawHeaders`: name, value, name, value…
 */
function forwardableHeaders(rawHeaders: string[], dropped: Set<string>): HeaderMap {
  const named = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue;
    for (const token of rawHeaders[i + 1]!.split(',')) named.add(token.trim().toLowerCase());
  }
  const headers: HeaderMap = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (dropped.has(name) || named.has(name)) continue;
    const value = rawHeaders[i + 1]!;
    const previous = headers[name];
    headers[name] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value];
  }
  return headers;
}

/**
 * Replaces the placeholder with the real value in each header a rule names; any other value stays as it is. Each
 * value is compared with the rules as the client sent it, and the first rule that matches wins (so a secret is
 * never itself taken for another rule's placeholder).
 */
function injectCredentials(headers: HeaderMap, rules: CredentialRule[]): void {
  for (const name of new Set(rules.map((rule) => rule.header))) {
    const value = headers[name];
    if (value === undefined) continue;
    const forHeader = rules.filter((rule) => rule.header === name);
    const swap = (v: string): string => {
      for (const rule of forHeader) {
        const replaced = withCredential(v, rule);
        if (replaced !== undefined) return replaced;
      }
      return v;
    };
    headers[name] = Array.isArray(value) ? value.map(swap) : swap(value);
  }
}

/**
 * `value` with the secret in place of the placeholder when `value` is exactly the placeholder (after the rule's
 * scheme, compared case-insensitively, and one space); undefined when the rule does not match.
 */
function withCredential(value: string, rule: CredentialRule): string | undefined {
  if (rule.scheme === undefined) return value === rule.placeholder ? rule.value : undefined;
  const space = value.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = value.slice(0, space);
  if (scheme.toLowerCase() !== rule.scheme.toLowerCase() || value.slice(space + 1) !== rule.placeholder) return undefined;
  return `${scheme} ${rule.value}`;
}

/** Response headers with any secret an upstream might have reflected replaced (bodies are not scanned). */
function scrubHeaders(headers: HeaderMap, scrub: (text: string) => string): HeaderMap {
  for (const [name, value] of Object.entries(headers)) {
    headers[name] = Array.isArray(value) ? value.map(scrub) : scrub(value);
  }
  return headers;
}

/**
 * Parses a CONNECT request target (RFC 9110 §9.3.6, authority-form): `host:port` or `[ipv6]:port`.
 * @returns the normalized host (see {@link normalizeHost}) and the port, or undefined when malformed.
 */
function parseAuthority(authority: string): { host: string; port: number } | undefined {
  let hostPart: string;
  let portPart: string;
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    if (end < 0 || authority[end + 1] !== ':') return undefined;
    hostPart = authority.slice(0, end + 1);
    portPart = authority.slice(end + 2);
  } else {
    const colon = authority.indexOf(':');
    if (colon < 0 || authority.indexOf(':', colon + 1) >= 0) return undefined;
    hostPart = authority.slice(0, colon);
    portPart = authority.slice(colon + 1);
  }
  if (!/^[0-9]{1,5}$/.test(portPart)) return undefined;
  const port = Number(portPart);
  const host = normalizeHost(hostPart);
  if (host === undefined || port < 1 || port > 65535) return undefined;
  return { host, port };
}

/**
 * Replaces each secret in a response body with as many `*` (so Content-Length still holds), as the body streams:
 * defense in depth against an upstream that reflects the credential it was sent. A chunk's end is held back only
 * while it could be the start of a secret (a few bytes at most, and never for text such as SSE frames ending in a
 * newline), so streaming stays unbuffered.
 */
class SecretMask extends Transform {
  private carry = Buffer.alloc(0);

  /** @param secrets the secrets' bytes, each at least one byte. */
  constructor(private readonly secrets: Buffer[]) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const data = maskSecrets(this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk, this.secrets);
    const held = partialSecretAtEnd(data, this.secrets);
    this.carry = Buffer.from(data.subarray(data.length - held));
    if (data.length > held) this.push(data.subarray(0, data.length - held));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    // The body ended inside what might have been a secret: it was not one.
    callback(null, this.carry.length > 0 ? this.carry : undefined);
  }
}

/** `data` with each whole occurrence of a secret overwritten by `*` (a copy when anything was found). */
function maskSecrets(data: Buffer, secrets: Buffer[]): Buffer {
  let out = data;
  for (const secret of secrets) {
    for (let at = out.indexOf(secret); at >= 0; at = out.indexOf(secret, at + secret.length)) {
      if (out === data) out = Buffer.from(data);
      out.fill(0x2a, at, at + secret.length);
    }
  }
  return out;
}

/** Length of the longest end of `data` that is a proper beginning of a secret (0 when none). */
function partialSecretAtEnd(data: Buffer, secrets: Buffer[]): number {
  let held = 0;
  for (const secret of secrets) {
    for (let length = Math.min(secret.length - 1, data.length); length > held; length -= 1) {
      if (data.compare(secret, 0, length, data.length - length, data.length) === 0) {
        held = length;
        break;
      }
    }
  }
  return held;
}

/**
 * Sends a refusal on a raw (CONNECT) socket and closes it: what the client still sends is read and dropped so its
 * FIN is seen, and a client that never closes its side is cut after {@link REFUSED_LINGER_MS}.
 */
function refuse(client: net.Socket, response: string, onClose?: () => void): void {
  if (onClose) client.on('close', onClose);
  client.setTimeout(REFUSED_LINGER_MS, () => client.destroy());
  client.end(response);
  client.resume();
}

/** A complete HTTP/1.1 response with a text body, for a raw (CONNECT) socket; the connection closes after it. */
function rawResponse(status: 400 | 403 | 502, body: string): string {
  const reason = { 400: 'Bad Request', 403: 'Forbidden', 502: 'Bad Gateway' }[status];
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/** Answers with a JSON body; the connection closes after it (the request body may be unread). */
function sendJson(res: http.ServerResponse, status: number, body: { error: string }): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' });
  res.end(text);
}

/** Answers with a text/plain body; the connection closes after it. */
function sendText(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
}

/** A connect that took longer than {@link CONNECT_TIMEOUT_MS}. */
class TimeoutError extends Error {
  override name = 'TimeoutError';
  readonly code = 'ETIMEDOUT';
}

/** The error's code (`ECONNREFUSED`, `ENOTFOUND`, `SELF_SIGNED_CERT_IN_CHAIN`…), or `error` when it has none. */
function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Za-z0-9_]+$/.test(code) ? code : 'error';
}

/** `CODE: message` of an error, for an audit record (scrubbed of secrets by the caller). */
function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = errorCode(error);
  return code === 'error' || message.includes(code) ? message : `${code}: ${message}`;
}

/** {@link UpstreamCheck.error} of an upstream whose host name does not resolve (DNS says it does not exist). */
export const UNRESOLVED = 'the host name does not resolve';
/** How long {@link checkUpstreams} waits for each TCP connection, in ms. */
export const UPSTREAM_CHECK_TIMEOUT_MS = 10_000;

/** Whether the proxy could open a TCP connection to a route's upstream when it started. */
export interface UpstreamCheck {
  /** The route's `upstream`, as configured. */
  url: string;
  /** Whether a TCP connection was accepted (no TLS handshake, no request). */
  ok: boolean;
  /**
   * Why not, in words: {@link UNRESOLVED}, `connection refused`, `no answer within 10 s`, `host unreachable`,
   * `network unreachable`, `the host name could not be looked up (EAI_AGAIN)`, or the error code.
   */
  error?: string;
}

/**
 * Tries a TCP connection to each route's upstream (host and port of its URL; in parallel), and closes it at once.
 * @param routes the routes to check; an upstream that is not a valid URL is reported as not ok.
 * @param timeoutMs how long each connection may take, in ms.
 * @returns one check per route, in order. Never throws.
 */
export async function checkUpstreams(routes: ApiRoute[], timeoutMs = UPSTREAM_CHECK_TIMEOUT_MS): Promise<UpstreamCheck[]> {
  return Promise.all(
    routes.map(async (route): Promise<UpstreamCheck> => {
      let target: URL;
      try {
        target = new URL(route.upstream);
      } catch {
        return { url: route.upstream, ok: false, error: 'not a URL' };
      }
      const host = target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname;
      const port = target.port === '' ? (target.protocol === 'https:' ? 443 : 80) : Number(target.port);
      const error = await new Promise<string | undefined>((resolve) => {
        const socket = net.connect({ host, port });
        const timer = setTimeout(() => {
          socket.destroy();
          resolve(`no answer within ${timeoutMs % 1000 === 0 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`}`);
        }, timeoutMs);
        socket.once('connect', () => {
          clearTimeout(timer);
          socket.destroy();
          resolve(undefined);
        });
        socket.on('error', (err) => {
          clearTimeout(timer);
          resolve(connectFailure(err));
        });
      });
      return error === undefined ? { url: route.upstream, ok: true } : { url: route.upstream, ok: false, error };
    }),
  );
}

/** A failed TCP connection in words, for {@link UpstreamCheck.error}. */
function connectFailure(error: unknown): string {
  const code = errorCode(error);
  switch (code) {
    case 'ENOTFOUND':
      return UNRESOLVED;
    case 'EAI_AGAIN':
      return 'the host name could not be looked up (EAI_AGAIN)';
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'ETIMEDOUT':
      return 'connection timed out';
    default:
      return code;
  }
}

/** One line of {@link main}'s stdout. */
export type ProxyOutputLine =
  | { type: 'ready'; port: number; upstreams: UpstreamCheck[] }
  | ({ type: 'audit' } & AuditRecord)
  | { type: 'error'; message: string };

/**
 * The sidecar's entry point: `node egress-proxy.js [--secret-file] <config-file>`. Reads the JSON
 * {@link EgressProxyConfig} from the file and deletes it (it holds the secrets) — or, with `--secret-file`, leaves
 * it: a swarm secret is a read-only file only root may read, and the proxy is no longer root once it has read it —
 * drops to uid/gid {@link UNPRIVILEGED_ID} when running as root, starts
 * the proxy, and writes one JSON line per event on stdout ({@link ProxyOutputLine}): `ready` once it listens and has
 * tried each route's upstream ({@link checkUpstreams}; a failed check is reported, not fatal), then one `audit` per
 * attempt. Any failure is an `error` line and exit status 1; SIGTERM or SIGINT closes the proxy and
 * exits 0. Nothing else is printed, and never a secret.
 * @param argv `process.argv`.
 */
export async function main(argv: string[]): Promise<void> {
  const emit = (line: ProxyOutputLine): void => {
    process.stdout.write(`${JSON.stringify(line)}\n`);
  };
  let secrets: string[] = [];
  const die = (message: string): never => {
    const scrubbed = secrets.reduce((t, secret) => t.split(secret).join('[redacted]'), message);
    emit({ type: 'error', message: scrubbed });
    process.exit(1);
  };
  process.on('uncaughtException', (error) => die(`egress proxy crashed: ${describeError(error)}`));
  process.on('unhandledRejection', (error) => die(`egress proxy crashed: ${describeError(error)}`));
  // Handled from the start: as a container's PID 1, the process would otherwise ignore SIGTERM.
  let proxy: EgressProxy | undefined = undefined;
  const stop = (): void => {
    if (proxy === undefined) process.exit(0);
    void proxy.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);

  const secretFile = argv[2] === '--secret-file';
  const file = argv[secretFile ? 3 : 2];
  if (file === undefined || argv.length > (secretFile ? 4 : 3)) die('usage: node egress-proxy.js [--secret-file] <config-file>');
  const configFile = file as string;
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (error) {
    return die(`cannot read the config file ${configFile}: ${errorCode(error)}`);
  }
  try {
    if (!secretFile) unlinkSync(configFile);
  } catch (error) {
    return die(
      `cannot delete the config file ${configFile} (${errorCode(error)}); it holds secrets: hand it in as a file the ` +
        'proxy may delete (docker cp, or a file inside a mounted folder), not a single-file bind mount',
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The parser's message quotes the text around the fault, which may be a secret.
    return die('the config file is not valid JSON');
  }
  let config: EgressProxyConfig;
  try {
    config = parseEgressProxyConfig(parsed);
  } catch (error) {
    return die(error instanceof Error ? error.message : String(error));
  }
  secrets = config.routes.flatMap((route) => route.credentials.map((rule) => rule.value));

  if (secretFile && !(typeof process.getuid === 'function' && process.getuid() === 0)) {
    return die('--secret-file needs the proxy to start as root (it reads the secret, then drops to an unprivileged user)');
  }
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    try {
      process.setgroups?.([]);
      process.setgid?.(UNPRIVILEGED_ID);
      process.setuid?.(UNPRIVILEGED_ID);
    } catch (error) {
      return die(`cannot drop root privileges to ${UNPRIVILEGED_ID}: ${describeError(error)}`);
    }
  }

  // Records of attempts made while the upstreams are checked wait, so that `ready` is the first line.
  let early: AuditRecord[] | undefined = [];
  const onAudit = (record: AuditRecord): void => {
    if (early) early.push(record);
    else emit({ type: 'audit', ...record });
  };
  // The model API is checked before the proxy listens: when it does not answer, the proxy never listens, so the
  // agent's container (which waits for a connection to the proxy before it starts the agent) never starts it.
  const upstreams = await checkUpstreams(config.routes);
  if (upstreams.some((check) => !check.ok)) {
    emit({ type: 'ready', port: 0, upstreams });
    return;
  }
  let started: EgressProxy;
  try {
    started = await startEgressProxy(config, { onAudit });
  } catch (error) {
    return die(`cannot start the egress proxy: ${describeError(error)}`);
  }
  proxy = started;
  emit({ type: 'ready', port: started.port, upstreams });
  for (const record of early) emit({ type: 'audit', ...record });
  early = undefined;
}

/** Whether this file is the process's entry script (`node egress-proxy.js …`), not an import. */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) void main(process.argv);

/**
 * A Docker daemon whose container removal is slow, as a slow docker-in-docker daemon's is: a proxy on a
 * unix socket that forwards the Docker API to the real daemon's socket, and holds back the removal
 * (`DELETE /containers/<id>`) of the containers started through it. Other containers' removals (another
 * session's leftovers swept at a run's start) pass at once.
 */
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { removeDir, tempDir } from './git.js';

/** Where the real daemon listens. */
const DAEMON_SOCKET = '/var/run/docker.sock';

/** A started {@link startSlowRemovalProxy}. */
export interface SlowRemovalProxy {
  /** For DOCKER_HOST / --remote-docker: `unix://<socket>` (a unix socket, so the daemon counts as local). */
  url: string;
  /** Full ids of the containers whose removal was asked for through the proxy, in order. */
  removalsAsked: string[];
  /** Full ids of the containers whose removal was passed on to the daemon (after the delay). */
  removalsForwarded: string[];
  /** Stops listening, drops open connections and deletes the socket's folder. */
  close(): Promise<void>;
}

/** `/containers/<id>/start` or `/containers/<id>` (with an optional `/v1.xx` prefix): the id. */
const START_PATH = /^(?:\/v[\d.]+)?\/containers\/([^/?]+)\/start(?:\?|$)/;
const CONTAINER_PATH = /^(?:\/v[\d.]+)?\/containers\/([^/?]+)(?:\?|$)/;

/**
 * Starts the proxy. Requests are forwarded as they come (bodies and responses streamed); a hijacked
 * request (`Upgrade: tcp`, the attach) becomes a raw pipe to the daemon.
 * @param options.removalDelayMs how long a held removal waits before it is passed on, in ms;
 *   `Infinity` holds it until the client goes away (the daemon never sees it).
 */
export async function startSlowRemovalProxy(options: { removalDelayMs: number }): Promise<SlowRemovalProxy> {
  const dir = tempDir('aw-docker-proxy-');
  const socketPath = path.join(dir, 'docker.sock');
  const started = new Set<string>();
  const removalsAsked: string[] = [];
  const removalsForwarded: string[] = [];
  const sockets = new Set<net.Socket>();

  const forward = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const upstream = http.request({ socketPath: DAEMON_SOCKET, method: req.method, path: req.url, headers: req.headers, agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    // The client went away before the answer was through: so does the request to the daemon.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  };

  const server = http.createServer({ requestTimeout: 0 }, (req, res) => {
    const url = req.url ?? '';
    const startedId = req.method === 'POST' ? START_PATH.exec(url)?.[1] : undefined;
    if (startedId) started.add(startedId);
    const removedId = req.method === 'DELETE' ? CONTAINER_PATH.exec(url)?.[1] : undefined;
    if (removedId === undefined || !started.has(removedId)) return forward(req, res);
    removalsAsked.push(removedId);
    if (options.removalDelayMs === Infinity) return;
    const timer = setTimeout(() => {
      removalsForwarded.push(removedId);
      forward(req, res);
    }, options.removalDelayMs);
    res.on('close', () => clearTimeout(timer));
  });
  // Idle connections stay open, as the daemon's do (a client reusing one must not find it closed).
  server.keepAliveTimeout = 0;
  server.on('upgrade', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const upstream = net.connect(DAEMON_SOCKET, () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      // The bytes after the request's head (its JSON body) came with the upgrade.
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
  });
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });

  return {
    url: `unix://${socketPath}`,
    removalsAsked,
    removalsForwarded,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      removeDir(dir);
    },
  };
}

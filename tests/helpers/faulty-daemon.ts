/**
 * A Docker daemon that fails the first connections made to it, as a daemon restarting or a flaky link does: a unix
 * socket that closes its first `failures` connections at once and pipes every later one to the real daemon's
 * socket untouched (so it counts as a local daemon: bind mounts work).
 */
import net from 'node:net';
import path from 'node:path';
import { removeDir, tempDir } from './git.js';

const DAEMON_SOCKET = '/var/run/docker.sock';

/** A started {@link startFaultyDaemon}. */
export interface FaultyDaemon {
  /** For DOCKER_HOST / --remote-docker / a task's `remoteDocker`: `unix://<socket>`. */
  url: string;
  /** Connections closed so far without an answer. */
  refused(): number;
  /** Connections passed to the daemon so far. */
  passed(): number;
  /** Stops listening, drops open connections, deletes the socket's folder. */
  close(): Promise<void>;
}

/** Starts the socket; its first `failures` connections are closed at once. */
export async function startFaultyDaemon(options: { failures: number }): Promise<FaultyDaemon> {
  const dir = tempDir('aw-faulty-docker-');
  const socketPath = path.join(dir, 'docker.sock');
  let refused = 0;
  let passed = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (refused < options.failures) {
      refused += 1;
      client.destroy();
      return;
    }
    passed += 1;
    const upstream = net.connect(DAEMON_SOCKET);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  return {
    url: `unix://${socketPath}`,
    refused: () => refused,
    passed: () => passed,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      removeDir(dir);
    },
  };
}

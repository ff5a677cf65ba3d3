/**
 * The connection to the Docker daemon: one dockerode client per run, made from `--remote-docker`
 * / `DOCKER_HOST` or the local socket, checked with a bounded ping before anything else.
 */
import os from 'node:os';
import { existsSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import createDebug from 'debug';
import { DockerError, ExitCode, errorMessage } from '../errors.js';

const log = createDebug('agent-worker:docker');

/** How long the first request to the daemon may take before it counts as unreachable, in ms. */
export const CONNECT_TIMEOUT_MS = 10_000;

/** What the daemon said about itself. */
export interface DaemonInfo {
  /** The endpoint, as shown to the user (e.g. `unix:///var/run/docker.sock`). */
  endpoint: string;
  /** The daemon's host name (`docker info` Name). */
  name: string;
  /** Engine version, e.g. `28.2.2`. */
  version: string;
  /** `linux/amd64` style. */
  platform: string;
  /**
   * True when bind mounts of host paths reach this machine's files: a unix socket, or a tcp
   * endpoint on loopback whose daemon runs on this host.
   */
  seesHostPaths: boolean;
}

/** A connected daemon. */
export interface DockerConnection {
  docker: Docker;
  info: DaemonInfo;
}

/** Builds dockerode options from a daemon URL (`unix://`, `tcp://`, `http(s)://`, `ssh://`); undefined = local socket. */
export function modemOptions(dockerHost: string | undefined): { options: Docker.DockerOptions; endpoint: string } {
  if (!dockerHost) {
    const userSocket = path.join(os.homedir(), '.docker', 'run', 'docker.sock');
    const socketPath = existsSync(userSocket) ? userSocket : '/var/run/docker.sock';
    return { options: { socketPath }, endpoint: `unix://${socketPath}` };
  }
  const url = new URL(dockerHost);
  if (url.protocol === 'unix:') return { options: { socketPath: url.pathname }, endpoint: dockerHost };
  if (url.protocol === 'ssh:') {
    return {
      options: {
        protocol: 'ssh',
        host: url.hostname,
        port: url.port || '22',
        username: decodeURIComponent(url.username) || os.userInfo().username,
        sshOptions: { agent: process.env.SSH_AUTH_SOCK },
      } as Docker.DockerOptions,
      endpoint: dockerHost,
    };
  }
  const tls = url.protocol === 'https:' || url.port === '2376' || process.env.DOCKER_TLS_VERIFY === '1';
  return {
    options: { protocol: tls ? 'https' : 'http', host: url.hostname, port: url.port || (tls ? '2376' : '2375') },
    endpoint: dockerHost,
  };
}

/**
 * Connects to the daemon and asks it who it is, within {@link CONNECT_TIMEOUT_MS}.
 * @throws DockerError (exit {@link ExitCode.docker}) naming the daemon tried.
 */
export async function connectDocker(dockerHost: string | undefined): Promise<DockerConnection> {
  const { options, endpoint } = modemOptions(dockerHost);
  const docker = new Docker(options);
  log('connecting to %s', endpoint);
  try {
    const version = await withTimeout(docker.version(), CONNECT_TIMEOUT_MS, `the Docker daemon at ${endpoint} to answer`);
    const info = (await withTimeout(docker.info(), CONNECT_TIMEOUT_MS, `docker info from ${endpoint}`)) as { Name?: string };
    const seesHostPaths = isLocalEndpoint(options, info.Name);
    const daemon: DaemonInfo = {
      endpoint,
      name: info.Name ?? 'unknown',
      version: version.Version,
      platform: `${version.Os}/${version.Arch}`,
      seesHostPaths,
    };
    log('connected: %o', daemon);
    return { docker, info: daemon };
  } catch (error) {
    throw new DockerError(
      `The Docker daemon at ${endpoint} did not answer: ${errorMessage(error)}`,
      ExitCode.docker,
      dockerHost
        ? 'Check that the daemon named by --remote-docker / DOCKER_HOST is running and reachable.'
        : 'Start Docker (e.g. `sudo systemctl start docker`), make sure your user may use its socket (the `docker` group), or name another daemon with --remote-docker.',
      { cause: error },
    );
  }
}

function isLocalEndpoint(options: Docker.DockerOptions, daemonName: string | undefined): boolean {
  if (options.socketPath) return true;
  if (options.protocol === 'ssh') return false;
  const host = String(options.host ?? '');
  const loopback = host === 'localhost' || host === '::1' || host === '[::1]' || host.startsWith('127.');
  return loopback && daemonName === os.hostname();
}

/** Resolves or rejects like `promise`, or rejects after `ms` with a message naming what was waited for. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, waitingFor: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${waitingFor}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

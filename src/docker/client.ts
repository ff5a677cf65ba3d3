/**
 * The connection to the Docker daemon: one dockerode client per run.
 *
 * Which daemon, as the docker CLI decides it: `--remote-docker` / `DOCKER_HOST`; else the current
 * context (`DOCKER_CONTEXT`, or `currentContext` in `$DOCKER_CONFIG/config.json`, with its endpoint in
 * `contexts/meta/<sha256(name)>/meta.json` and TLS files in `contexts/tls/<sha256(name)>/docker/`);
 * else the local socket. tcp:// uses TLS with `--tls-*` files or `DOCKER_TLS_VERIFY` /
 * `DOCKER_CERT_PATH`; plain tcp:// to a non-loopback host needs `--insecure-docker`. ssh:// uses
 * docker-modem's ssh2 transport with the ssh agent or a key file, and checks the host key against
 * known_hosts. The first request is bounded by {@link CONNECT_TIMEOUT_MS}; later ones (streams, the
 * wait) have no request timeout.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import './deferred-modules.js';
import Docker from 'dockerode';
import createDebug from 'debug';
import { AgentWorkerError, DockerError, ExitCode, errorMessage } from '../errors.js';
import { checkHostKey, type HostKeyVerdict } from './known-hosts.js';

const log = createDebug('agent-worker:docker');

/** How long connecting and the first answer may take before the daemon counts as unreachable, in ms. */
export const CONNECT_TIMEOUT_MS = 10_000;

/** What the daemon said about itself. */
export interface DaemonInfo {
  /** The endpoint, as shown to the user (e.g. `unix:///var/run/docker.sock`, `ssh://ci@build-box`). */
  endpoint: string;
  /** Where the endpoint came from: `--remote-docker`/`DOCKER_HOST`, a docker context, or the default socket. */
  source: string;
  /** The daemon's host name (`docker info` Name). */
  name: string;
  /** Engine version, e.g. `28.2.2`. */
  version: string;
  /** `linux/amd64` style. */
  platform: string;
  /**
   * True when bind mounts of host paths reach this machine's files: a unix socket, or a tcp
   * endpoint on loopback whose daemon reports this host's name.
   */
  seesHostPaths: boolean;
  /** CPUs the daemon's machine has (`docker info` NCPU); null when it did not say. */
  cpus: number | null;
  /** Memory of the daemon's machine (`docker info` MemTotal), in bytes; null when it did not say. */
  memoryBytes: number | null;
}

/** A connected daemon. */
export interface DockerConnection {
  docker: Docker;
  info: DaemonInfo;
}

/** Inputs for choosing and reaching the daemon. */
export interface DockerConnectOptions {
  /** `--remote-docker` or `DOCKER_HOST`. */
  dockerHost?: string;
  /** PEM file paths from `--tls-ca`, `--tls-cert`, `--tls-key`. */
  tls: { ca?: string; cert?: string; key?: string };
  insecure: boolean;
  /** `--ssh-key`. */
  sshKey?: string;
  env: NodeJS.ProcessEnv;
  /** The user's home folder (for ~/.docker and ~/.ssh). */
  home: string;
  /** Aborts connecting (the user pressed Ctrl-C). */
  signal?: AbortSignal;
}

/**
 * The connect options of a run's configuration (`--remote-docker`, the `--tls-*` files,
 * `--insecure-docker`, `--ssh-key`), with HOME from `env` (else the OS's).
 */
export function connectOptionsFor(
  config: { dockerHost?: string; tls: DockerConnectOptions['tls']; insecureDocker: boolean; sshKey?: string },
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
): DockerConnectOptions {
  return { dockerHost: config.dockerHost, tls: config.tls, insecure: config.insecureDocker, sshKey: config.sshKey, env, home: env.HOME || os.homedir(), signal };
}

/** The chosen endpoint and how to reach it. */
export interface ResolvedEndpoint {
  url: string;
  source: string;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

function readPem(file: string, what: string, hint: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new AgentWorkerError(`Cannot read the ${what} ${file}: ${errorMessage(error)}`, ExitCode.docker, hint, { cause: error });
  }
}

/**
 * Chooses the daemon: option, else docker context, else the local socket.
 * @throws AgentWorkerError (exit {@link ExitCode.docker}) for a missing context or unreadable TLS files.
 */
export function resolveEndpoint(options: DockerConnectOptions): ResolvedEndpoint {
  const { env } = options;
  const configDir = env.DOCKER_CONFIG || path.join(options.home, '.docker');
  if (options.dockerHost) {
    const source = '--remote-docker / DOCKER_HOST';
    const flagged = options.tls;
    if (flagged.ca || flagged.cert || flagged.key) {
      const hint = 'Check --tls-ca, --tls-cert and --tls-key.';
      return {
        url: options.dockerHost,
        source,
        tls: {
          ca: flagged.ca ? readPem(flagged.ca, 'TLS CA', hint) : undefined,
          cert: flagged.cert ? readPem(flagged.cert, 'TLS client certificate', hint) : undefined,
          key: flagged.key ? readPem(flagged.key, 'TLS client key', hint) : undefined,
        },
      };
    }
    if (env.DOCKER_TLS_VERIFY === '1' || (env.DOCKER_CERT_PATH && env.DOCKER_TLS_VERIFY !== '0')) {
      const certDir = env.DOCKER_CERT_PATH || configDir;
      const hint = `DOCKER_TLS_VERIFY / DOCKER_CERT_PATH: ${certDir} must hold ca.pem, cert.pem and key.pem (as for the docker CLI).`;
      return {
        url: options.dockerHost,
        source,
        tls: {
          ca: readPem(path.join(certDir, 'ca.pem'), 'TLS CA', hint),
          cert: readPem(path.join(certDir, 'cert.pem'), 'TLS client certificate', hint),
          key: readPem(path.join(certDir, 'key.pem'), 'TLS client key', hint),
        },
      };
    }
    return { url: options.dockerHost, source };
  }

  let contextName = env.DOCKER_CONTEXT;
  if (!contextName) {
    try {
      contextName = (JSON.parse(readFileSync(path.join(configDir, 'config.json'), 'utf8')) as { currentContext?: string }).currentContext;
    } catch {
      contextName = undefined;
    }
  }
  if (contextName && contextName !== 'default') {
    const id = createHash('sha256').update(contextName).digest('hex');
    const metaFile = path.join(configDir, 'contexts', 'meta', id, 'meta.json');
    let host: string | undefined;
    try {
      const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as { Endpoints?: { docker?: { Host?: string } } };
      host = meta.Endpoints?.docker?.Host;
    } catch (error) {
      throw new AgentWorkerError(`The docker context ${JSON.stringify(contextName)} was not found (${metaFile}).`, ExitCode.docker, 'Pick another with `docker context use <name>`, or name the daemon with --remote-docker.', { cause: error });
    }
    if (!host) throw new AgentWorkerError(`The docker context ${JSON.stringify(contextName)} names no Docker endpoint.`, ExitCode.docker, 'Fix it with `docker context update`, or name the daemon with --remote-docker.');
    const tlsDir = path.join(configDir, 'contexts', 'tls', id, 'docker');
    const file = (name: string): Buffer | undefined => (existsSync(path.join(tlsDir, name)) ? readFileSync(path.join(tlsDir, name)) : undefined);
    const tls = { ca: file('ca.pem'), cert: file('cert.pem'), key: file('key.pem') };
    return { url: host, source: `docker context ${contextName}`, tls: tls.ca || tls.cert ? tls : undefined };
  }

  const userSocket = path.join(options.home, '.docker', 'run', 'docker.sock');
  const socketPath = existsSync(userSocket) ? userSocket : '/var/run/docker.sock';
  return { url: `unix://${socketPath}`, source: 'default socket' };
}

function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  return bare === 'localhost' || bare === '::1' || /^127\./.test(bare);
}

/** Private key files tried for ssh:// when no --ssh-key is given, in this order. */
const DEFAULT_SSH_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

/** What the host key check found, when it refused (read after a failed connection). */
interface HostKeyOutcome {
  verdict?: HostKeyVerdict;
}

/**
 * dockerode options for an endpoint.
 * @throws AgentWorkerError (exit {@link ExitCode.usage}) for plain tcp:// to a non-loopback host without `insecure`.
 */
export function modemOptions(endpoint: ResolvedEndpoint, options: DockerConnectOptions, hostKey: HostKeyOutcome = {}): Docker.DockerOptions {
  const url = new URL(endpoint.url);
  if (url.protocol === 'unix:' || url.protocol === 'npipe:') return { socketPath: url.pathname || '/var/run/docker.sock' };
  if (url.protocol === 'ssh:') {
    const port = Number(url.port || 22);
    const keyFile = options.sshKey ?? DEFAULT_SSH_KEYS.map((name) => path.join(options.home, '.ssh', name)).find((file) => existsSync(file));
    const knownHosts = [path.join(options.home, '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts'];
    return {
      protocol: 'ssh',
      host: url.hostname,
      port,
      username: decodeURIComponent(url.username) || os.userInfo().username,
      sshOptions: {
        agent: options.env.SSH_AUTH_SOCK,
        privateKey: keyFile ? readFileSync(keyFile) : undefined,
        readyTimeout: CONNECT_TIMEOUT_MS,
        hostVerifier: (key: Buffer) => {
          const verdict = checkHostKey(knownHosts, url.hostname, port, key);
          hostKey.verdict = verdict;
          return verdict.ok;
        },
      },
    } as Docker.DockerOptions;
  }
  if (url.protocol !== 'tcp:' && url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new AgentWorkerError(`Unsupported Docker endpoint ${endpoint.url}.`, ExitCode.usage, 'Use unix://, tcp:// or ssh://.');
  }
  const tls = endpoint.tls;
  const useTls = Boolean(tls) || url.protocol === 'https:';
  if (!useTls && !isLoopback(url.hostname) && !options.insecure) {
    throw new AgentWorkerError(
      `Refusing plain tcp:// to ${url.host}: an unauthenticated Docker daemon is root on that host for anyone who can reach it, and everything sent to it (code, credentials) travels in clear.`,
      ExitCode.usage,
      'Use TLS (--tls-ca/--tls-cert/--tls-key, or DOCKER_TLS_VERIFY=1 with DOCKER_CERT_PATH), or ssh://user@host; pass --insecure-docker only on a network you trust.',
    );
  }
  return {
    protocol: useTls ? 'https' : 'http',
    host: url.hostname,
    port: url.port || (useTls ? '2376' : '2375'),
    ca: tls?.ca,
    cert: tls?.cert,
    key: tls?.key,
  };
}

/**
 * Connects to the daemon and asks who it is, within {@link CONNECT_TIMEOUT_MS}.
 * @throws DockerError (exit {@link ExitCode.docker}) naming the daemon tried and, for TLS or ssh host
 *   key failures, what to fix; AgentWorkerError (exit {@link ExitCode.usage}) for refused plain tcp.
 */
export async function connectDocker(options: DockerConnectOptions): Promise<DockerConnection> {
  const endpoint = resolveEndpoint(options);
  const hostKey: HostKeyOutcome = {};
  const docker = new Docker(modemOptions(endpoint, options, hostKey));
  log('connecting to %s (%s)', endpoint.url, endpoint.source);
  try {
    // One budget for both requests: an unreachable daemon fails within CONNECT_TIMEOUT_MS, not twice that.
    const [version, info] = (await withTimeout(
      Promise.all([docker.version(), docker.info()]),
      CONNECT_TIMEOUT_MS,
      `the Docker daemon at ${endpoint.url} to answer`,
      options.signal,
    )) as [Docker.DockerVersion, { Name?: string; NCPU?: number; MemTotal?: number }];
    const modem = docker.modem as unknown as { socketPath?: string; host?: string; protocol?: string };
    const seesHostPaths = Boolean(modem.socketPath) || (modem.protocol !== 'ssh' && isLoopback(String(modem.host ?? '')) && info.Name === os.hostname());
    const daemon: DaemonInfo = {
      endpoint: endpoint.url,
      source: endpoint.source,
      name: info.Name ?? 'unknown',
      version: version.Version,
      platform: `${version.Os}/${version.Arch}`,
      seesHostPaths,
      cpus: typeof info.NCPU === 'number' && info.NCPU > 0 ? info.NCPU : null,
      memoryBytes: typeof info.MemTotal === 'number' && info.MemTotal > 0 ? info.MemTotal : null,
    };
    log('connected: %o', daemon);
    return { docker, info: daemon };
  } catch (error) {
    if (options.signal?.aborted) throw error;
    throw connectError(error, endpoint, hostKey.verdict, options);
  }
}

function connectError(error: unknown, endpoint: ResolvedEndpoint, verdict: HostKeyVerdict | undefined, options: DockerConnectOptions): DockerError {
  const message = errorMessage(error);
  if (verdict && !verdict.ok) {
    const what =
      verdict.reason === 'unknown'
        ? `is not in ~/.ssh/known_hosts`
        : verdict.reason === 'revoked'
          ? `is marked @revoked in known_hosts`
          : `does not match the key known_hosts has for it — it CHANGED (a reinstalled host, or someone in between)`;
    return new DockerError(
      `The ssh host key of ${verdict.hostName} (${verdict.fingerprint}) ${what}; refusing to connect.`,
      ExitCode.docker,
      verdict.reason === 'unknown'
        ? `If that fingerprint is the host's, add it: \`ssh-keyscan ${verdict.hostName.startsWith('[') ? `-p ${verdict.hostName.split(':').pop()} ${verdict.hostName.slice(1, verdict.hostName.indexOf(']'))}` : verdict.hostName} >> ~/.ssh/known_hosts\` (or connect once with ssh).`
        : 'Check with the host\'s administrator; when the new key is right, remove the old line with `ssh-keygen -R <host>`.',
      { cause: error },
    );
  }
  const tlsProblem = /certificate|self[- ]signed|CERT_|unable to verify|alert|wrong version number|EPROTO/i.test(message);
  if (tlsProblem) {
    return new DockerError(
      `TLS with the Docker daemon at ${endpoint.url} failed: ${message}`,
      ExitCode.docker,
      'The daemon\'s certificate must be signed by the CA you give (--tls-ca or $DOCKER_CERT_PATH/ca.pem) and name the host you connect to; the daemon must accept your client certificate (--tls-cert/--tls-key).',
      { cause: error },
    );
  }
  return new DockerError(
    `The Docker daemon at ${endpoint.url} (${endpoint.source}) did not answer: ${message}`,
    ExitCode.docker,
    options.dockerHost
      ? 'Check that the daemon named by --remote-docker / DOCKER_HOST is running and reachable.'
      : 'Start Docker (e.g. `sudo systemctl start docker`), make sure your user may use its socket (the `docker` group), or name another daemon with --remote-docker.',
    { cause: error },
  );
}

/** Thrown by {@link withTimeout} when the bound ran out (the awaited work may still finish later). */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/**
 * Resolves or rejects like `promise`, or rejects after `ms` with a message naming what was waited
 * for, or as soon as `signal` aborts (with the signal's reason).
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, waitingFor: string, signal?: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms waiting for ${waitingFor}`)), ms);
    if (signal) {
      onAbort = () => reject(new Error(`aborted (${String(signal.reason)}) while waiting for ${waitingFor}`));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

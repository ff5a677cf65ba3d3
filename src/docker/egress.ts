/**
 * A run's egress path: a per-run internal network with no way out, and the egress proxy (src/proxy/egress-proxy.ts)
 * in a sidecar container on that network and on the daemon's default bridge. The agent's container joins only the
 * internal network, so the proxy is the one place it can send anything; the proxy adds the real credential to
 * model API requests and lets through only the allowed host names.
 *
 * Both run on the daemon the agent runs on (a remote one too), so nothing listens on the user's machine for the
 * agent. The proxy's program and its configuration, credentials included, reach the sidecar as root-only files
 * through the archive API: never an environment variable, a label or an argv entry, so never in `docker inspect`.
 * The proxy reports on its stdout, one JSON object a line: `{"type":"ready",…}` once it has checked the model API
 * (and listens, when the API answered), then one `{"type":"audit",…}` per egress attempt.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pack as tarPack } from 'tar-stream';
import type Docker from 'dockerode';
import createDebug from 'debug';
import { AgentWorkerError, DockerError, ExitCode, errorMessage } from '../errors.js';
import { LineSplitter } from '../stream/lines.js';
import { FrameDemuxer } from './demux.js';
import { TimeoutError, withTimeout } from './client.js';
import { LABEL_MANAGED, LABEL_ROLE, runLabels } from './labels.js';
import type { AuditRecord, EgressProxyConfig, UpstreamCheck } from '../proxy/egress-proxy.js';
import { PACKAGE_ROOT } from '../version.js';

const log = createDebug('agent-worker:docker');

/** The proxy's name on the run's network: the agent's base URL and HTTP(S)_PROXY point at it. */
export const PROXY_ALIAS = 'agent-worker-proxy';
/** The port the proxy listens on, inside the run's network. */
export const PROXY_PORT = 8080;
/** Root-only folder of the image where the proxy's program and configuration are handed in. */
const PROXY_DIR = '/run/agent-worker';
/** The proxy's program in the sidecar (ESM whatever package.json says, hence `.mjs`). */
const PROXY_PROGRAM = `${PROXY_DIR}/egress-proxy.mjs`;
/** Its configuration (credentials included), read and deleted by the proxy at start. */
const PROXY_CONFIG = `${PROXY_DIR}/egress-proxy.json`;
/** The compiled proxy, as the package ships it. */
export const PROXY_PROGRAM_SOURCE = path.join(PACKAGE_ROOT, 'dist', 'src', 'proxy', 'egress-proxy.js');
/** How long the proxy may take to listen and check its upstreams, in ms. */
const READY_TIMEOUT_MS = 30_000;
/** Value of {@link LABEL_ROLE} on the sidecar. */
export const ROLE_EGRESS_PROXY = 'egress-proxy';
/** Limits of the sidecar: memory in bytes, processes. */
const SIDECAR_LIMITS = { memoryBytes: 256 * 1024 ** 2, pidsLimit: 256 };

/** What the egress path is made of. */
export interface EgressSpec {
  /** Image holding `node` (the run's image). */
  image: string;
  runId: string;
  toolVersion: string;
  /** Host path of the project, recorded as a label. */
  project: string;
  /** The proxy's routes, allowlist and extra CA; `port` and `host` are set here. */
  proxy: Omit<EgressProxyConfig, 'port' | 'host'>;
  /** Called with each egress attempt the proxy reports, in order. */
  onAudit: (record: AuditRecord) => void;
}

/** Thrown when the proxy stops while the agent runs: the agent lost its only way to the model API. */
export class EgressProxyLostError extends AgentWorkerError {
  override name = 'EgressProxyLostError';
}

/** The egress path of one run: created by {@link EgressPath.create}, started by {@link EgressPath.start}. */
export class EgressPath {
  private removal?: Promise<string[]>;
  private stoppedWith?: { exitCode: number | null };
  private stoppedBecause?: () => void;
  /** Resolves when the sidecar stops (by itself or removed), with its exit code when known. */
  readonly stopped: Promise<{ exitCode: number | null }>;

  private constructor(
    private readonly docker: Docker,
    /** The run's internal network (no way out; the agent's container joins only it). */
    readonly network: Docker.Network,
    /** The sidecar running the proxy. */
    readonly sidecar: Docker.Container,
    private readonly spec: EgressSpec,
  ) {
    this.stopped = new Promise((resolve) => (this.stoppedBecause = () => resolve(this.stoppedWith ?? { exitCode: null })));
  }

  /** The network's name, for the agent container's `NetworkMode`. */
  get networkName(): string {
    return networkName(this.spec.runId);
  }

  /** The proxy's URL inside the run's network: the agent's base URL and HTTP(S)_PROXY. */
  static get proxyUrl(): string {
    return `http://${PROXY_ALIAS}:${PROXY_PORT}`;
  }

  /**
   * Creates the internal network and the sidecar (not started) on it and on the default bridge, and hands the
   * proxy its program and configuration.
   * @throws DockerError (exit {@link ExitCode.container}); whatever was created is removed first.
   */
  static async create(docker: Docker, spec: EgressSpec): Promise<EgressPath> {
    const labels = runLabels(spec);
    let program: Buffer;
    try {
      program = await readFile(PROXY_PROGRAM_SOURCE);
    } catch (error) {
      throw new AgentWorkerError(`The egress proxy's program ${PROXY_PROGRAM_SOURCE} is missing.`, ExitCode.internal, 'Run `npm run build` (or reinstall agent-worker).', { cause: error });
    }
    let network: Docker.Network | undefined;
    let sidecar: Docker.Container | undefined;
    try {
      network = await docker.createNetwork({ Name: networkName(spec.runId), Driver: 'bridge', Internal: true, CheckDuplicate: true, Labels: labels });
      log('created network %s', networkName(spec.runId));
      sidecar = await docker.createContainer({
        name: `agent-worker-${spec.runId}-proxy`,
        Image: spec.image,
        Entrypoint: ['node', PROXY_PROGRAM],
        Cmd: [PROXY_CONFIG],
        User: '0:0',
        WorkingDir: '/',
        // The image's NODE_EXTRA_CA_CERTS costs ~170 ms of node's start (it parses the whole bundle); the proxy
        // trusts the system store (which holds --ca-cert's certificates) or, with caPem, Node's roots plus those.
        Env: ['NODE_EXTRA_CA_CERTS='],
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        OpenStdin: false,
        Labels: { ...labels, [LABEL_ROLE]: ROLE_EGRESS_PROXY },
        HostConfig: {
          NetworkMode: 'bridge',
          // It reads its root-only files as root, then drops to nobody (setgid, setuid); nothing else.
          CapDrop: ['ALL'],
          CapAdd: ['SETUID', 'SETGID'],
          SecurityOpt: ['no-new-privileges'],
          ExtraHosts: ['host.docker.internal:host-gateway'],
          Memory: SIDECAR_LIMITS.memoryBytes,
          MemorySwap: SIDECAR_LIMITS.memoryBytes,
          PidsLimit: SIDECAR_LIMITS.pidsLimit,
          LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '1' } },
          AutoRemove: false,
        },
      });
      log('created egress proxy container %s', sidecar.id.slice(0, 12));
      await network.connect({ Container: sidecar.id, EndpointConfig: { Aliases: [PROXY_ALIAS] } });
      const config: EgressProxyConfig = { ...spec.proxy, port: PROXY_PORT, host: '0.0.0.0' };
      await sidecar.putArchive(handoff(program, JSON.stringify(config)), { path: PROXY_DIR });
    } catch (error) {
      const made = new EgressPath(docker, network ?? docker.getNetwork(networkName(spec.runId)), sidecar ?? docker.getContainer(`agent-worker-${spec.runId}-proxy`), spec);
      if (network) await made.remove(30_000);
      throw new DockerError(`Setting up the egress proxy failed: ${errorMessage(error)}`, ExitCode.container, 'Run with --debug for details.', { cause: error });
    }
    return new EgressPath(docker, network, sidecar, spec);
  }

  /**
   * Starts the sidecar; once it has started (so its name resolves on the run's network) the agent's container may
   * start too: its entrypoint waits for the proxy to accept connections.
   * @returns `ready`: settles once the proxy has tried each model API upstream (a TCP connection from the sidecar),
   *   with each one's check (`ok`, or why not). It listens only when every upstream answered.
   * @throws DockerError (exit {@link ExitCode.container}) when the sidecar does not start; `ready` rejects with one
   *   when the proxy stops before it is ready, or is not ready within 30 s.
   */
  async start(signal?: AbortSignal): Promise<{ ready: Promise<UpstreamCheck[]> }> {
    // Hijacked, as the agent's (./container.ts): the raw connection, read straight into the demultiplexer.
    const attach = (await this.sidecar.attach({ stream: true, stdout: true, stderr: true, logs: true, hijack: true })) as unknown as Readable;
    const reports = readProxyReports(this.spec.onAudit);
    const { ready, onFailure, stderrTail, stdoutLines, stderrLines } = reports;
    const demux = new FrameDemuxer(reports.sinks);
    attach.on('data', (chunk: Buffer) => demux.push(chunk));
    attach.on('error', (error) => log('egress proxy output: %s', errorMessage(error)));
    const waiting = this.sidecar.wait({ condition: 'next-exit' });
    await this.sidecar.start();
    log('started egress proxy container %s', this.sidecar.id.slice(0, 12));
    waiting.then(
      (status: { StatusCode?: number }) => {
        this.stoppedWith = { exitCode: status.StatusCode ?? null };
        stdoutLines.end();
        stderrLines.end();
        onFailure(`it exited with code ${status.StatusCode}${stderrTail.length > 0 ? `: ${stderrTail.join(' | ')}` : ''}`);
        this.stoppedBecause?.();
      },
      (error: unknown) => {
        log('waiting for the egress proxy: %s', errorMessage(error));
        this.stoppedBecause?.();
      },
    );
    const readyInTime = withTimeout(ready, READY_TIMEOUT_MS, 'the egress proxy to listen', signal).catch((error: unknown) => {
      if (error instanceof TimeoutError) throw new DockerError(`The egress proxy did not start within ${READY_TIMEOUT_MS / 1000} s.`, ExitCode.container, 'Run with --debug for details.', { cause: error });
      throw error;
    });
    readyInTime.catch(() => undefined);
    return { ready: readyInTime };
  }

  /** Whether the sidecar has stopped by itself (its exit code then), as opposed to still running. */
  get exited(): { exitCode: number | null } | undefined {
    return this.stoppedWith;
  }

  /**
   * Removes the sidecar, then the network. Never throws: this is cleanup after the work is safe.
   * @param timeoutMs how long each removal may take, in ms.
   * @returns warnings for what was left behind (labelled; `agent-worker gc` removes it).
   */
  remove(timeoutMs: number): Promise<string[]> {
    this.removal ??= this.removeOnce(timeoutMs);
    return this.removal;
  }

  private async removeOnce(timeoutMs: number): Promise<string[]> {
    const warnings: string[] = [];
    const bound = timeoutMs % 1000 === 0 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`;
    try {
      await withTimeout(this.sidecar.remove({ force: true, v: true }), timeoutMs, 'the removal of the egress proxy');
      log('removed egress proxy container %s', this.sidecar.id.slice(0, 12));
    } catch (error) {
      const code = (error as { statusCode?: number }).statusCode;
      if (code !== 404 && code !== 409) {
        log('remove egress proxy: %s', errorMessage(error));
        warnings.push(`the egress proxy's container ${this.sidecar.id.slice(0, 12)} ${error instanceof TimeoutError ? `was not removed within ${bound}` : `could not be removed (${errorMessage(error)})`}; it is labelled ${LABEL_MANAGED} and \`agent-worker gc\` removes it`);
      }
    }
    this.stoppedBecause?.();
    try {
      await withTimeout(this.network.remove(), timeoutMs, 'the removal of the run network');
      log('removed network %s', this.networkName);
    } catch (error) {
      const code = (error as { statusCode?: number }).statusCode;
      if (code !== 404) {
        log('remove network: %s', errorMessage(error));
        warnings.push(`the run's network ${this.networkName} ${error instanceof TimeoutError ? `was not removed within ${bound}` : `could not be removed (${errorMessage(error)})`}; it is labelled ${LABEL_MANAGED} and \`agent-worker gc\` removes it`);
      }
    }
    return warnings;
  }
}

/** The proxy's reports as {@link readProxyReports} reads them from its output. */
export interface ProxyReports {
  /** Settles with the upstream checks of its `ready` line; rejects (DockerError) on its `error` line or {@link onFailure}. */
  ready: Promise<UpstreamCheck[]>;
  /** Fails `ready` with `why` (e.g. the proxy exited), when it has not settled. */
  onFailure: (why: string) => void;
  /** The last lines of its stderr. */
  stderrTail: string[];
  /** Its stdout and stderr, demultiplexed: feed them here. */
  sinks: { stdout: (piece: Buffer) => void; stderr: (piece: Buffer) => void };
  stdoutLines: LineSplitter;
  stderrLines: LineSplitter;
}

/**
 * Reads the egress proxy's stdout (src/proxy/egress-proxy.ts `main`: one JSON object a line, `ready`, `audit`,
 * `error`) and keeps its stderr's last lines, whichever backend runs it.
 * @param onAudit called with each egress attempt, in order.
 */
export function readProxyReports(onAudit: (record: AuditRecord) => void): ProxyReports {
  let onReady: (checks: UpstreamCheck[]) => void = () => undefined;
  let onFailure: (why: string) => void = () => undefined;
  const ready = new Promise<UpstreamCheck[]>((resolve, reject) => {
    onReady = resolve;
    onFailure = (why) => reject(new DockerError(`The egress proxy did not start: ${why}`, ExitCode.container, 'Run with --debug for details.'));
  });
  const stderrTail: string[] = [];
  const stdoutLines = new LineSplitter((line) => {
    let message: { type?: string; upstreams?: UpstreamCheck[]; message?: string } & Partial<AuditRecord>;
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      log('egress proxy said: %s', line);
      return;
    }
    if (message.type === 'audit') {
      const { type: _type, ...record } = message;
      onAudit(record as AuditRecord);
    } else if (message.type === 'ready') {
      onReady(message.upstreams ?? []);
    } else if (message.type === 'error') {
      onFailure(String(message.message));
    }
  }, 1024 * 1024);
  const stderrLines = new LineSplitter((line) => {
    stderrTail.push(line);
    if (stderrTail.length > 10) stderrTail.shift();
  }, 64 * 1024);
  return {
    ready,
    onFailure: (why) => onFailure(why),
    stderrTail,
    sinks: { stdout: (piece) => stdoutLines.push(piece), stderr: (piece) => stderrLines.push(piece) },
    stdoutLines,
    stderrLines,
  };
}

/** The name of a run's internal network. */
export function networkName(runId: string): string {
  return `agent-worker-${runId}`;
}

/** A tar for {@link PROXY_DIR}: the proxy's program and its configuration, both root-only. */
function handoff(program: Buffer, configJson: string): Readable {
  const tarball = tarPack();
  tarball.entry({ name: path.basename(PROXY_PROGRAM), mode: 0o400, uid: 0, gid: 0 }, program);
  tarball.entry({ name: path.basename(PROXY_CONFIG), mode: 0o400, uid: 0, gid: 0 }, Buffer.from(configJson, 'utf8'));
  tarball.finalize();
  return tarball as unknown as Readable;
}

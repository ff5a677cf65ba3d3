/**
 * The agent's container: created with the workspace bind-mounted, secrets and the task delivered
 * through the archive API (never in the container's config), output attached before start and
 * demultiplexed as it arrives (./demux.ts), a host-enforced timeout, and removal that is safe to repeat.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pack as tarPack } from 'tar-stream';
import type Docker from 'dockerode';
import createDebug from 'debug';
import { AgentWorkerError, DockerError, ExitCode, errorMessage } from '../errors.js';
import { TimeoutError, withTimeout } from './client.js';
import { extractSafely } from './archive.js';
import { FrameDemuxer } from './demux.js';
import { LABEL_MANAGED, runLabels } from './labels.js';
import { watchResources, type ResourceWatch } from './stats.js';
import type { AgentBox } from '../backends/types.js';

const log = createDebug('agent-worker:docker');

/** Where the workspace is mounted inside the container. */
export const WORKSPACE_DIR = '/workspace';
/** Folder (root-only) where the entrypoint finds `secrets` and `task`. */
export const HANDOFF_DIR = '/run/agent-worker';
/** Exit code of the entrypoint when the firewall could not be set up (the agent never started). */
export const FIREWALL_EXIT_CODE = 78;
/**
 * Exit code of the entrypoint when the model API's host and port did not accept a TCP connection from behind the
 * firewall (refused, unresolvable, or no answer in time); the agent never started. Its reason is on stderr:
 * `agent-worker: model API check failed: HOST:PORT: connection refused`.
 */
export const API_UNREACHABLE_EXIT_CODE = 69;
/** Folder the entrypoint fills in copy mode (`result`, `work.bundle`) for the host to fetch. */
export const COPY_OUT_DIR = '/run/agent-worker-out';
/** Root's folder where the entrypoint leaves the --verify command's `verify.log` and `verify.result`. */
export const VERIFY_OUT_DIR = '/run/agent-worker-verify';
/** Exit code of the entrypoint when, in copy mode, the agent ran but collecting its work failed. */
export const COLLECT_FAILED_EXIT_CODE = 75;
/**
 * Capabilities the entrypoint needs (firewall; user switch; HOME and workspace ownership; stopping the
 * agent's processes in copy mode); it drops them all before the agent starts.
 */
export const ENTRYPOINT_CAPABILITIES = ['NET_ADMIN', 'NET_RAW', 'SETUID', 'SETGID', 'SETPCAP', 'CHOWN', 'KILL'];
/**
 * Seconds between SIGTERM and SIGKILL when the host stops the container: the agent is PID 1 in mount
 * mode; the entrypoint supervises (and, in copy mode, collects the work) in the others.
 */
const STOP_GRACE_SECONDS = { mount: 3, supervised: 10, copy: 60 } as const;
/** How long to wait for the last output after the container exited, in ms. */
const OUTPUT_DRAIN_MS = 5_000;
/** While the agent runs, the daemon is pinged this often, in ms… */
export const HEARTBEAT_INTERVAL_MS = 15_000;
/** …each ping may take this long, in ms… */
const HEARTBEAT_TIMEOUT_MS = 10_000;
/** …and this many failed pings in a row mean the daemon is lost (a dead host sends no reset: streams just stall). */
const HEARTBEAT_FAILURES = 2;

/**
 * Reads the entrypoint's timing lines on stderr, `agent-worker: agent process started at S.U` (right
 * before the agent's exec) and `agent-worker: agent process ended at S.U` (when it supervises), S.U being
 * seconds since the epoch with microseconds (bash's EPOCHREALTIME).
 * @returns which mark the line is and its time in ms since the epoch, or undefined for any other line.
 */
export function agentProcessMark(line: string): { mark: 'started' | 'ended'; atMs: number } | undefined {
  const match = /^agent-worker: agent process (started|ended) at (\d+)[.,](\d{1,6})$/.exec(line);
  if (!match) return undefined;
  return { mark: match[1] as 'started' | 'ended', atMs: Number(match[2]) * 1000 + Number(match[3]!.padEnd(6, '0')) / 1000 };
}

/** Thrown when the daemon stops answering while the agent runs. */
export class DaemonLostError extends DockerError {
  override name = 'DaemonLostError';
}

/** What the agent's container is made of. */
export interface AgentContainerSpec {
  image: string;
  runId: string;
  toolVersion: string;
  /** How the workspace reaches the container. */
  workspace: WorkspaceSpec;
  /** Host path of the project, recorded as a label. */
  project: string;
  /** The agent runs as this uid:gid. */
  uid: number;
  gid: number;
  /** The agent's argv. */
  command: string[];
  /** Plain environment (visible in `docker inspect`; never secrets). */
  env: Record<string, string>;
  /** Secret environment, delivered as a root-only file the entrypoint reads and deletes. */
  secrets: Record<string, string>;
  /** The task: the agent's standard input. */
  task: string;
  /** Files the agent's plugin reads after the run (AgentPlugin.outputFiles): a backend without an archive API brings them out. */
  outputFiles?: string[];
  /** Command run in the container after the agent ends (env AW_VERIFY of the entrypoint). */
  verify?: string;
  /**
   * Files the agent needs in its HOME (`AGENT_HOME` of agents/types.ts), by path relative to it (`a/b.json`), as
   * text: its settings, an MCP configuration. Handed in root-only; the entrypoint gives them to the agent (0600).
   */
  homeFiles?: Record<string, string>;
  /** Host names / IPs the firewall lets the agent reach. */
  allowHosts: string[];
  /**
   * The model API's host and port: the entrypoint checks, behind the firewall, that they accept a TCP connection
   * before the agent starts (exit {@link API_UNREACHABLE_EXIT_CODE} otherwise). No check when undefined.
   */
  apiCheck?: { host: string; port: number };
  /** How long the firewall looks up an allowed name that does not resolve yet, in seconds (env AW_RESOLVE_WAIT_SECONDS). */
  resolveWaitSeconds?: number;
  /** The network the container joins alone (a run's internal network); default: the daemon's default bridge. */
  networkMode?: string;
  /** Resource limits: memory in bytes (no extra swap), CPUs, processes. */
  limits?: { memoryBytes: number; cpus?: number; pidsLimit: number };
  timezone: string;
}

/**
 * `mount`: the host work tree is bind-mounted at {@link WORKSPACE_DIR}, its `.git` read-only on top;
 * `extraReadOnly` folders (a worktree's common git dir) are mounted read-only at their own paths, so
 * the absolute `gitdir:` of a `.git` file resolves inside the container too.
 * `copy`: a git bundle of the base commit (a host file, streamed in) becomes the workspace inside the
 * container; the agent's commits come back as a bundle from {@link COPY_OUT_DIR}.
 * `none`: no workspace (an empty /workspace), for probes such as `agent-worker doctor`'s.
 */
export type WorkspaceSpec =
  | { mode: 'none' }
  | { mode: 'mount'; workTree: string; gitDir: string; extraReadOnly?: string[] }
  | { mode: 'copy'; bundleFile: string; bundleRef: string; baseCommit: string; branch: string; commitMessage: string; gitName: string; gitEmail: string };

/** How the agent's process ended. */
export interface ContainerExit {
  /** Exit code of the container's main process; null when the host killed it. */
  exitCode: number | null;
  /** `exited`, or why the host stopped it (`after_result`: the agent reported its result, then did not exit). */
  reason: 'exited' | 'timed_out' | 'interrupted' | 'after_result';
  /** True when Docker reports the container was killed for running out of memory. */
  oomKilled: boolean;
  /** When the container's main process ended, per the daemon (ms since the epoch); undefined when unknown. */
  finishedAt?: number;
}

/**
 * Callbacks for the container's output as it arrives: views of the attach stream's chunks, valid only
 * during the call. The next chunk is read once they return, so a sink that blocks slows the container's
 * output down instead of queueing it.
 */
export interface OutputSinks {
  stdout: (chunk: Buffer) => void;
  stderr: (chunk: Buffer) => void;
}

/**
 * How long removing a container may take, in ms: a lost daemon must not hang the tool, and a slow one
 * (docker-in-docker under load has taken more than 30 s) must not turn a finished run into a failure.
 * A container still there after this is left, labelled {@link LABEL_MANAGED}, for `agent-worker gc`.
 */
export const REMOVE_TIMEOUT_MS = 120_000;
/**
 * Environment variable that replaces {@link REMOVE_TIMEOUT_MS} with a whole number of ms: for tests,
 * which need a short bound to stand for a daemon that never removes the container (documented in the
 * README's Troubleshooting, not a setting of its own).
 */
export const REMOVE_TIMEOUT_ENV = 'AGENT_WORKER_REMOVE_TIMEOUT_MS';

/**
 * The bound for removing a container, in ms: {@link REMOVE_TIMEOUT_ENV} when it holds a positive whole
 * number, else {@link REMOVE_TIMEOUT_MS}.
 */
export function removeTimeoutMs(env: NodeJS.ProcessEnv): number {
  const value = env[REMOVE_TIMEOUT_ENV];
  return value !== undefined && /^[1-9]\d*$/.test(value) ? Number(value) : REMOVE_TIMEOUT_MS;
}

async function pingWithin(docker: Docker, ms: number): Promise<void> {
  await withTimeout(docker.ping(), ms, 'a ping of the Docker daemon');
}

/** A created agent container: the local backend's {@link AgentBox}. */
export class AgentContainer implements AgentBox {
  /** The one removal request: later calls join it and get its outcome. */
  private removal?: Promise<void>;
  private stopRequest?: (why: ContainerExit['reason']) => void;
  /** A stop asked for before {@link run} started the container: it is stopped as soon as it has started. */
  private pendingStop?: ContainerExit['reason'];

  private constructor(
    private readonly docker: Docker,
    readonly container: Docker.Container,
    readonly spec: AgentContainerSpec,
  ) {}

  /** Short container id, for logs. */
  get shortId(): string {
    return this.container.id.slice(0, 12);
  }

  /**
   * Creates the container (not started) and hands it the secrets and the task.
   * @throws DockerError (exit {@link ExitCode.container}); nothing is left behind.
   */
  static async create(docker: Docker, spec: AgentContainerSpec): Promise<AgentContainer> {
    const workspace = spec.workspace;
    const env = entrypointEnv(spec);
    let container: Docker.Container;
    try {
      container = await docker.createContainer({
        name: `agent-worker-${spec.runId}`,
        Image: spec.image,
        Cmd: spec.command,
        Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
        WorkingDir: WORKSPACE_DIR,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        OpenStdin: false,
        Labels: runLabels(spec),
        HostConfig: {
          Binds:
            workspace.mode === 'mount'
              ? [
                  `${workspace.workTree}:${WORKSPACE_DIR}`,
                  `${workspace.gitDir}:${WORKSPACE_DIR}/.git:ro`,
                  ...(workspace.extraReadOnly ?? []).map((dir) => `${dir}:${dir}:ro`),
                ]
              : [],
          CapDrop: ['ALL'],
          CapAdd: ENTRYPOINT_CAPABILITIES,
          SecurityOpt: ['no-new-privileges'],
          ...(spec.networkMode ? { NetworkMode: spec.networkMode } : { ExtraHosts: ['host.docker.internal:host-gateway'] }),
          LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '1' } },
          ...(spec.limits
            ? {
                Memory: spec.limits.memoryBytes,
                MemorySwap: spec.limits.memoryBytes,
                PidsLimit: spec.limits.pidsLimit,
                ...(spec.limits.cpus ? { NanoCpus: Math.round(spec.limits.cpus * 1e9) } : {}),
              }
            : {}),
          AutoRemove: false,
        },
      });
    } catch (error) {
      throw new DockerError(`Creating the agent's container failed: ${errorMessage(error)}`, ExitCode.container, 'Run with --debug for details.', { cause: error });
    }
    const agentContainer = new AgentContainer(docker, container, spec);
    log('created container %s', agentContainer.shortId);
    try {
      await container.putArchive(await handoffArchive(spec), { path: HANDOFF_DIR });
    } catch (error) {
      // The error that matters is the hand-off's: a removal that fails too is only logged.
      await agentContainer.remove().catch((removeError: unknown) => log('remove %s: %s', agentContainer.shortId, errorMessage(removeError)));
      throw new DockerError(`Handing the task to the container failed: ${errorMessage(error)}`, ExitCode.container, 'Run with --debug for details.', { cause: error });
    }
    return agentContainer;
  }

  /**
   * Attaches to the output, starts the container and waits for it to end, killing it at
   * `timeoutMs` or when `signal` aborts. Output reaches `sinks` as it arrives; `onStarted` is called once
   * the container has started.
   * @throws DockerError when the daemon fails (the container is left for {@link remove}).
   */
  async run(options: { sinks: OutputSinks; timeoutMs: number; signal?: AbortSignal; heartbeatMs?: number; onStarted?: () => void }): Promise<ContainerExit> {
    // Hijacked (`Upgrade: tcp`), the attach stream is the raw connection: read straight into one buffer
    // per socket read. As a chunked HTTP response, Node's parser copied every body piece into an
    // ArrayBuffer of its own, thousands per 100 MB, which kept the tool's peak memory growing with the
    // output (heaptrack, `npm run bench`).
    const attach = (await this.container.attach({ stream: true, stdout: true, stderr: true, logs: true, hijack: true })) as unknown as Readable;
    const demux = new FrameDemuxer(options.sinks);
    attach.on('data', (chunk: Buffer) => demux.push(chunk));
    const ended = new Promise<void>((resolve) => {
      attach.once('end', resolve);
      attach.once('close', resolve);
      attach.once('error', () => resolve());
    });

    const waiting = this.container.wait({ condition: 'next-exit' });
    await this.container.start();
    log('started container %s', this.shortId);
    options.onStarted?.();

    let reason: ContainerExit['reason'] = 'exited';
    let timer: NodeJS.Timeout | undefined;
    let stopping: Promise<void> | undefined;
    const stopFor = (why: ContainerExit['reason']): void => {
      if (reason !== 'exited') return;
      reason = why;
      log('stopping container %s: %s', this.shortId, why);
      const mode = this.spec.workspace.mode === 'copy' ? 'copy' : this.spec.verify !== undefined ? 'supervised' : 'mount';
      stopping = this.container.stop({ t: STOP_GRACE_SECONDS[mode] }).then(
        () => undefined,
        (error: unknown) => {
          // 304: it had already stopped by itself, so the host stopped nothing and its exit stands.
          if ((error as { statusCode?: number }).statusCode === 304) reason = 'exited';
          else log('stop %s: %s', this.shortId, errorMessage(error));
        },
      );
    };
    this.stopRequest = stopFor;
    if (this.pendingStop) stopFor(this.pendingStop);
    timer = setTimeout(() => stopFor('timed_out'), options.timeoutMs);
    const onAbort = (): void => stopFor('interrupted');
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let heartbeat: NodeJS.Timeout | undefined;
    const lost = new Promise<never>((_, reject) => {
      let failures = 0;
      let busy = false;
      heartbeat = setInterval(() => {
        if (busy) return;
        busy = true;
        pingWithin(this.docker, HEARTBEAT_TIMEOUT_MS)
          .then(() => (failures = 0))
          .catch((error: unknown) => {
            failures += 1;
            log('heartbeat %d failed: %s', failures, errorMessage(error));
            if (failures >= HEARTBEAT_FAILURES) reject(new Error(`the daemon did not answer ${failures} pings in a row (${errorMessage(error)})`));
          })
          .finally(() => (busy = false));
      }, options.heartbeatMs ?? HEARTBEAT_INTERVAL_MS);
    });
    let status: { StatusCode?: number };
    try {
      status = (await Promise.race([waiting, lost])) as { StatusCode?: number };
    } catch (error) {
      attach.destroy();
      throw new DaemonLostError(`Lost the Docker daemon while the agent ran in container ${this.shortId}: ${errorMessage(error)}`, ExitCode.docker, 'Check the Docker daemon and the network to it; what could be recovered is on the branch.', { cause: error });
    } finally {
      clearTimeout(timer);
      clearInterval(heartbeat);
      timer = undefined;
      options.signal?.removeEventListener('abort', onAbort);
    }
    // The container's final state is read while the rest of its output drains.
    const [, state] = await Promise.all([
      Promise.race([ended, new Promise((resolve) => setTimeout(resolve, OUTPUT_DRAIN_MS).unref())]),
      this.container.inspect().then(
        (info) => info.State,
        () => undefined, // Already gone: nothing more to learn.
      ),
    ]);
    if (demux.partial) log('container %s: the output stream ended inside a frame', this.shortId);
    const oomKilled = Boolean(state?.OOMKilled);
    const finished = Date.parse(state?.FinishedAt ?? '');
    const finishedAt = finished > 0 ? finished : undefined;
    if (stopping) await withTimeout(stopping, HEARTBEAT_TIMEOUT_MS, 'the stop request').catch(() => undefined);
    const exitCode = reason === 'exited' ? (status.StatusCode ?? null) : null;
    log('container %s ended: %s, exit %s', this.shortId, reason, status.StatusCode);
    return { exitCode, reason, oomKilled, finishedAt };
  }

  /** Reads what the container uses from its cgroup while it runs (Docker stats API, a frame a second). */
  watchResources(): ResourceWatch {
    return watchResources(this.container);
  }

  /**
   * Stops the running container for `why` (SIGTERM, then SIGKILL after the grace period); asked before {@link run}
   * has started it, it is stopped right after it starts. No-op once it has ended.
   */
  requestStop(why: ContainerExit['reason']): void {
    if (this.stopRequest) this.stopRequest(why);
    else this.pendingStop ??= why;
  }

  /**
   * Copy mode: fetches {@link COPY_OUT_DIR} from the (stopped) container into `destDir`, extracting it
   * safely (no absolute paths, no `..`, no links outside).
   * @returns the relative paths of the files written (under `agent-worker-out/`).
   */
  async fetchCopyOutput(destDir: string): Promise<string[]> {
    return this.fetchFolder(COPY_OUT_DIR, destDir, 16 * 1024 ** 3);
  }

  /**
   * Fetches {@link VERIFY_OUT_DIR} (`verify.log`, `verify.result`) from the stopped container into
   * `destDir`; nothing when the folder does not exist (the verify command did not run).
   * @returns the relative paths of the files written (under `agent-worker-verify/`).
   */
  async fetchVerifyOutput(destDir: string): Promise<string[]> {
    try {
      return await this.fetchFolder(VERIFY_OUT_DIR, destDir, 4 * 1024 ** 3);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return [];
      throw error;
    }
  }

  /**
   * Fetches one file the agent wrote (e.g. a usage report at a path its plugin names) from the stopped container
   * into `destDir`, extracted safely: the agent chose what is there, so links out, `..` and anything above
   * `maxBytes` are refused. Nothing when it does not exist.
   * @returns the relative paths written (the file's base name, when it was a regular file).
   */
  async fetchAgentFile(containerPath: string, destDir: string, maxBytes: number): Promise<string[]> {
    try {
      return await this.fetchFolder(containerPath, destDir, maxBytes);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return [];
      throw error;
    }
  }

  private async fetchFolder(containerPath: string, destDir: string, maxBytes: number): Promise<string[]> {
    const archive = (await this.container.getArchive({ path: containerPath })) as unknown as Readable;
    return extractSafely(archive, destDir, { maxBytes, maxEntries: 10 });
  }

  /**
   * Kills and removes the container (with its anonymous volumes). Safe to call more than once: one
   * request is sent, and a later call joins it and gets its outcome (its own `timeoutMs` is not used).
   * A container already gone (404) or being removed by another request (409) counts as removed.
   * @param timeoutMs how long to wait for the daemon, in ms ({@link REMOVE_TIMEOUT_MS} by default).
   * @throws Error naming the container when the daemon did not answer within `timeoutMs` (the request
   *   is not withdrawn: the daemon may still remove it), or the daemon's error.
   */
  remove(timeoutMs = REMOVE_TIMEOUT_MS): Promise<void> {
    this.removal ??= this.removeOnce(timeoutMs);
    return this.removal;
  }

  /**
   * Removes the container once the work is safe (on the branch, or given up on): its outcome never
   * changes how the run ended, so nothing is thrown (STYLE rule 16).
   * @param timeoutMs how long to wait for the daemon, in ms (see {@link removeTimeoutMs}).
   * @returns undefined when the container is gone, else a warning for the report saying it was left
   *   behind and how it is cleaned up.
   */
  async removeAfterWork(timeoutMs: number): Promise<string | undefined> {
    try {
      await this.remove(timeoutMs);
      return undefined;
    } catch (error) {
      log('remove %s: %s', this.shortId, errorMessage(error));
      const timedOut = error instanceof TimeoutError;
      const bound = timeoutMs % 1000 === 0 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`;
      const why = timedOut ? `was not removed within ${bound}` : `could not be removed (${errorMessage(error)})`;
      return `container ${this.shortId} ${why}; it is labelled ${LABEL_MANAGED} and \`agent-worker gc\` removes it`;
    }
  }

  private async removeOnce(timeoutMs: number): Promise<void> {
    try {
      await withTimeout(this.container.remove({ force: true, v: true }), timeoutMs, `the removal of container ${this.shortId}`);
      log('removed container %s', this.shortId);
    } catch (error) {
      const code = (error as { statusCode?: number }).statusCode;
      if (code !== 404 && code !== 409) throw error;
    }
  }
}

/** The entrypoint's environment for `spec` (container/entrypoint.sh's inputs), on top of the agent's plain one. */
export function entrypointEnv(spec: Omit<AgentContainerSpec, 'networkMode'>): Record<string, string> {
  const workspace = spec.workspace;
  const env: Record<string, string> = {
    ...spec.env,
    AW_UID: String(spec.uid),
    AW_GID: String(spec.gid),
    AW_ALLOW_HOSTS: spec.allowHosts.join(' '),
    AW_WORKSPACE: workspace.mode,
    TZ: spec.timezone,
  };
  if (spec.verify !== undefined) env.AW_VERIFY = spec.verify;
  if (spec.apiCheck) env.AW_API_CHECK = `${spec.apiCheck.host} ${spec.apiCheck.port}`;
  if (spec.resolveWaitSeconds) env.AW_RESOLVE_WAIT_SECONDS = String(spec.resolveWaitSeconds);
  if (workspace.mode === 'copy') {
    Object.assign(env, { AW_BRANCH: workspace.branch, AW_BASE_COMMIT: workspace.baseCommit, AW_BUNDLE_REF: workspace.bundleRef, AW_GIT_NAME: workspace.gitName, AW_GIT_EMAIL: workspace.gitEmail });
  }
  return env;
}

/**
 * A tar for {@link HANDOFF_DIR}: `secrets` (NUL-separated KEY=value), `task` and the agent's files under
 * `home/`, all root-only, and in
 * copy mode `commit-message` and `repo.bundle` (streamed from disk, never held in memory).
 * @param options.bundle false: without `repo.bundle` (a backend that hands the bundle in another way).
 * @param options.extra more root-only files, by name.
 */
export async function handoffArchive(spec: Omit<AgentContainerSpec, 'networkMode'>, options: { bundle?: boolean; extra?: Record<string, string> } = {}): Promise<Readable> {
  const tarball = tarPack();
  const secrets = Object.entries(spec.secrets)
    .map(([key, value]) => `${key}=${value}\0`)
    .join('');
  tarball.entry({ name: 'secrets', mode: 0o400, uid: 0, gid: 0 }, Buffer.from(secrets, 'utf8'));
  tarball.entry({ name: 'task', mode: 0o400, uid: 0, gid: 0 }, Buffer.from(spec.task, 'utf8'));
  for (const [file, content] of Object.entries(spec.homeFiles ?? {})) {
    const name = path.posix.normalize(`home/${file}`);
    if (!name.startsWith('home/') || name === 'home/' || path.posix.isAbsolute(file)) {
      throw new AgentWorkerError(`The agent's file ${file} is not a path inside its HOME.`, ExitCode.internal);
    }
    tarball.entry({ name, mode: 0o400, uid: 0, gid: 0 }, Buffer.from(content, 'utf8'));
  }
  for (const [name, content] of Object.entries(options.extra ?? {})) tarball.entry({ name, mode: 0o400, uid: 0, gid: 0 }, Buffer.from(content, 'utf8'));
  const workspace = spec.workspace;
  if (workspace.mode === 'copy') {
    tarball.entry({ name: 'commit-message', mode: 0o400, uid: 0, gid: 0 }, Buffer.from(workspace.commitMessage, 'utf8'));
  }
  if (workspace.mode === 'copy' && options.bundle !== false) {
    const size = (await stat(workspace.bundleFile)).size;
    const entry = tarball.entry({ name: 'repo.bundle', mode: 0o400, uid: 0, gid: 0, size }, (error) => {
      if (error) tarball.destroy(error);
      else tarball.finalize();
    });
    createReadStream(workspace.bundleFile)
      .on('error', (error) => tarball.destroy(error))
      .pipe(entry as unknown as NodeJS.WritableStream);
  } else {
    tarball.finalize();
  }
  return tarball as unknown as Readable;
}

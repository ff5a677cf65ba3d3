/**
 * One swarm job: a one-task service that is never restarted, through the manager's API — its spec, its task's
 * state, its output stream, its removal. Docker Engine API 1.41 (`POST /services/create`, `GET /tasks`,
 * `GET /services/{id}/logs`, `DELETE /services/{id}`).
 *
 * Mode `Replicated` with one replica and restart condition `none`, not `ReplicatedJob`: measured on Engine 20.10
 * (tests/fixtures/registry/NOTES.md), removing a running replicated-job service sends its task no SIGTERM (the
 * container runs on, moby#44312) and every job task's container stays on its node after removal, while a
 * replicated service's task is stopped (SIGTERM, the grace period) and its container removed. Exit codes and task
 * states are the same. Endpoint mode `dnsrr`: the VIP mode needs IPVS in the node's kernel, which not every node has.
 */
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import createDebug from 'debug';
import { DockerError, ExitCode, errorMessage } from '../../errors.js';
import { withTimeout } from '../../docker/client.js';
import { FrameDemuxer, type DemuxSinks } from '../../docker/demux.js';

const log = createDebug('agent-worker:swarm');

/** What a job is made of. */
export interface JobSpec {
  /** The service's name (unique in the swarm). */
  name: string;
  /** Image reference the nodes pull (`registry/repo:tag@sha256:…` when known). */
  image: string;
  labels: Record<string, string>;
  /** The container's entrypoint and arguments; the image's when left out. */
  entrypoint?: string[];
  args?: string[];
  /** Plain environment (visible in `docker service inspect`: never secrets). */
  env: Record<string, string>;
  /** `uid:gid`; the image's when left out. */
  user?: string;
  workingDir?: string;
  /** Capabilities: all dropped, then these added. */
  capabilities: string[];
  /**
   * Swarm secrets mounted as files: target is a name under /run/secrets or an absolute path; mode 0400, owned by
   * `uid` (default 0: root-only).
   */
  secrets?: Array<{ id: string; name: string; target: string; uid?: number }>;
  /** Swarm configs mounted as files at absolute paths, root-only (0400). */
  configs?: Array<{ id: string; name: string; target: string }>;
  /** Networks by id, each with the aliases the task answers to on it. */
  networks: Array<{ id: string; aliases?: string[] }>;
  /** Limits and reservations alike: memory in bytes, CPUs, processes. */
  resources: { memoryBytes: number; cpus?: number; pidsLimit?: number };
  /** Placement constraints (`node.labels.size==large`). */
  placement: string[];
  /** How long the task gets between SIGTERM and SIGKILL when it is stopped, in ms. */
  stopGracePeriodMs: number;
}

/**
 * The service spec of a job: one replica, restart condition none, DNS round robin, resources
 * reserved as much as limited (the scheduler places a task only where its reservation fits), json-file logs.
 */
export function jobServiceSpec(spec: JobSpec): Record<string, unknown> {
  const nanoCpus = spec.resources.cpus === undefined ? undefined : Math.round(spec.resources.cpus * 1e9);
  return {
    Name: spec.name,
    Labels: spec.labels,
    Mode: { Replicated: { Replicas: 1 } },
    EndpointSpec: { Mode: 'dnsrr' },
    TaskTemplate: {
      ContainerSpec: {
        Image: spec.image,
        Labels: spec.labels,
        ...(spec.entrypoint ? { Command: spec.entrypoint } : {}),
        ...(spec.args ? { Args: spec.args } : {}),
        Env: Object.entries(spec.env).map(([key, value]) => `${key}=${value}`),
        ...(spec.user ? { User: spec.user } : {}),
        ...(spec.workingDir ? { Dir: spec.workingDir } : {}),
        CapabilityDrop: ['ALL'],
        CapabilityAdd: spec.capabilities.map((name) => `CAP_${name}`),
        StopGracePeriod: spec.stopGracePeriodMs * 1e6,
        Secrets: (spec.secrets ?? []).map((secret) => ({ SecretID: secret.id, SecretName: secret.name, File: { Name: secret.target, UID: String(secret.uid ?? 0), GID: String(secret.uid ?? 0), Mode: 0o400 } })),
        Configs: (spec.configs ?? []).map((config) => ({ ConfigID: config.id, ConfigName: config.name, File: { Name: config.target, UID: '0', GID: '0', Mode: 0o400 } })),
        Init: false,
      },
      Resources: {
        Limits: { MemoryBytes: spec.resources.memoryBytes, ...(nanoCpus ? { NanoCPUs: nanoCpus } : {}), ...(spec.resources.pidsLimit ? { Pids: spec.resources.pidsLimit } : {}) },
        Reservations: { MemoryBytes: spec.resources.memoryBytes, ...(nanoCpus ? { NanoCPUs: nanoCpus } : {}) },
      },
      RestartPolicy: { Condition: 'none', MaxAttempts: 0 },
      Placement: { Constraints: spec.placement },
      Networks: spec.networks.map((network) => ({ Target: network.id, ...(network.aliases ? { Aliases: network.aliases } : {}) })),
      LogDriver: { Name: 'json-file', Options: { 'max-size': '10m', 'max-file': '1' } },
    },
  };
}

/** A task's state as `GET /tasks` gives it (the fields read here). */
export interface EngineTask {
  ID?: string;
  NodeID?: string;
  DesiredState?: string;
  CreatedAt?: string;
  Status?: { State?: string; Err?: string; Message?: string; Timestamp?: string; ContainerStatus?: { ContainerID?: string; ExitCode?: number } };
}

/** A job's task, read. */
export interface JobTask {
  id: string;
  /** The swarm's task state: new, pending, assigned, accepted, preparing, starting, running, complete, failed, shutdown, rejected, orphaned, remove. */
  state: string;
  desiredState: string;
  /** The swarm's error text (`task: non-zero exit (7)`, `no suitable node (…)`), when any. */
  err: string | undefined;
  /** The node it was placed on, once placed. */
  nodeId: string | undefined;
  /** The container's exit code once it exited. */
  exitCode: number | undefined;
}

/** States after which a task never runs again. */
export const TERMINAL_STATES = new Set(['complete', 'failed', 'shutdown', 'rejected', 'orphaned', 'remove']);
/** States in which a task's container exists on its node (it may be running). */
export const STARTED_STATES = new Set(['starting', 'running']);

/** A task from the Engine API's `Task`. */
export function jobTask(task: EngineTask): JobTask {
  return {
    id: task.ID ?? '',
    state: task.Status?.State ?? 'unknown',
    desiredState: task.DesiredState ?? 'unknown',
    err: task.Status?.Err || undefined,
    nodeId: task.NodeID || undefined,
    exitCode: task.Status?.ContainerStatus?.ExitCode,
  };
}

/** A created job. */
export class SwarmJob {
  private removal?: Promise<void>;

  private constructor(
    private readonly docker: Docker,
    readonly service: Docker.Service,
    readonly name: string,
  ) {}

  /** Short service id, for logs. */
  get shortId(): string {
    return this.service.id.slice(0, 12);
  }

  /**
   * Creates the service; the swarm schedules its task at once.
   * @throws DockerError (exit {@link ExitCode.container}).
   */
  static async create(docker: Docker, spec: JobSpec): Promise<SwarmJob> {
    try {
      const service = (await docker.createService(jobServiceSpec(spec) as Docker.CreateServiceOptions)) as Docker.Service;
      const job = new SwarmJob(docker, service, spec.name);
      log('created service %s (%s)', job.shortId, spec.name);
      return job;
    } catch (error) {
      throw new DockerError(`Creating the swarm service ${spec.name} failed: ${errorMessage(error)}`, ExitCode.container, 'Run with --debug for details.', { cause: error });
    }
  }

  /**
   * The job's task (the newest, should the swarm have made more than one), or undefined before the swarm made it.
   * @throws the daemon's error.
   */
  async task(): Promise<JobTask | undefined> {
    const tasks = (await this.docker.listTasks({ filters: { service: [this.service.id] } })) as EngineTask[];
    const newest = tasks.sort((a, b) => Date.parse(b.CreatedAt ?? '') - Date.parse(a.CreatedAt ?? ''))[0];
    return newest && jobTask(newest);
  }

  /**
   * Opens the job's output stream (`follow`): stdout and stderr demultiplexed into `sinks` as they arrive.
   * @returns `ended`, resolving when the stream ends or fails, and `close()` to end it.
   * @throws the daemon's error when it cannot be opened.
   */
  async follow(sinks: DemuxSinks): Promise<{ ended: Promise<void>; close: () => void }> {
    const stream = (await this.service.logs({ follow: true, stdout: true, stderr: true })) as unknown as Readable;
    const demux = new FrameDemuxer(sinks);
    stream.on('data', (chunk: Buffer) => demux.push(chunk));
    const ended = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', (error) => {
        log('service %s output: %s', this.shortId, errorMessage(error));
        resolve();
      });
    });
    return { ended, close: () => stream.destroy() };
  }

  /**
   * Stops the task and keeps the service: scaled to 0 replicas, the task's container gets SIGTERM, then the grace
   * period, then SIGKILL, while the service's output stream goes on (a removed service's may not deliver what its
   * stopping task still writes).
   * @throws the manager's error, or TimeoutError after `timeoutMs`.
   */
  async stopTask(timeoutMs: number): Promise<void> {
    const info = (await withTimeout(this.service.inspect(), timeoutMs, `the manager to describe service ${this.name}`)) as { Version?: { Index?: number }; Spec?: Record<string, unknown> };
    const spec = { ...info.Spec, Mode: { Replicated: { Replicas: 0 } } };
    await withTimeout(this.service.update({ version: info.Version?.Index, ...spec } as never), timeoutMs, `the manager to scale service ${this.name} to 0`);
    log('scaled service %s to 0', this.shortId);
  }

  /**
   * Removes the service (its task's container is stopped: SIGTERM, the grace period, SIGKILL). Safe to repeat: one
   * request is sent and later calls join it. A service already gone counts as removed.
   * @throws TimeoutError when the manager does not answer within `timeoutMs`; the manager's error.
   */
  remove(timeoutMs: number): Promise<void> {
    this.removal ??= (async () => {
      try {
        await withTimeout(this.service.remove(), timeoutMs, `the removal of service ${this.name}`);
        log('removed service %s', this.shortId);
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode !== 404) throw error;
      }
    })();
    return this.removal;
  }
}


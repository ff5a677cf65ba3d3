/**
 * Where a run's containers run: the backend interface. A run needs two things from a backend — the egress path (a
 * network with no way out but the egress proxy, which holds the credentials) and the agent's box behind it — and
 * nothing else: the pipeline (src/run.ts) is the same on every backend.
 *
 * Backends: `local` (src/backends/local.ts: one Docker daemon, local or remote — containers, a bridge network,
 * archives in and out) and `swarm` (src/backends/swarm/: a Docker Swarm manager — services, an overlay network,
 * secrets in, the output stream out). Kubernetes would be a third (pods, a NetworkPolicy, exec in and out).
 * tests/integration/backend-contract.ts is the suite every backend passes.
 */
import type { AgentContainerSpec, ContainerExit, OutputSinks } from '../docker/container.js';
import type { EgressSpec } from '../docker/egress.js';
import type { ResourceWatch } from '../docker/stats.js';
import type { UpstreamCheck } from '../proxy/egress-proxy.js';

/** The names of the backends. */
export type BackendName = 'local' | 'swarm';

/** A run's egress path once created: a private network and the proxy on it (a container or a service). */
export interface EgressBox {
  /** The run's private network's name (for logs). */
  readonly networkName: string;
  /**
   * Starts the proxy and reads its reports.
   * @returns once it is started; `ready` settles when the proxy has tried the model API (with its checks), or
   *   rejects when it stopped or never reported in time.
   * @throws DockerError when it cannot be started.
   */
  start(signal?: AbortSignal): Promise<{ ready: Promise<UpstreamCheck[]> }>;
  /** Resolves when the proxy stops (by itself or removed), with its exit code when known. */
  readonly stopped: Promise<{ exitCode: number | null }>;
  /** Set once the proxy stopped by itself (not removed), with its exit code when known. */
  readonly exited: { exitCode: number | null } | undefined;
  /**
   * Removes the proxy and the network; safe to repeat (later calls join the first). Never throws.
   * @param timeoutMs how long each removal may take, in ms.
   * @returns warnings naming what was left for `agent-worker gc` (empty when all is gone).
   */
  remove(timeoutMs: number): Promise<string[]>;
}

/** What the agent's box is made of: the container spec without the network (the egress box's). */
export type AgentBoxSpec = Omit<AgentContainerSpec, 'networkMode'>;

/** Options of {@link AgentBox.run}. */
export interface AgentRunOptions {
  /** Receive the agent's stdout and stderr as they arrive (never the backend's own hand-off data). */
  sinks: OutputSinks;
  /** The host-enforced time limit, in ms: the agent is stopped then (reason `timed_out`). */
  timeoutMs: number;
  /** Aborted: the agent is stopped (reason `interrupted`). */
  signal?: AbortSignal;
  /** How often the backend's daemon is checked while the agent runs, in ms. */
  heartbeatMs?: number;
  /** Called once the box has started. */
  onStarted?: () => void;
}

/** The agent's box: a container on a daemon, or a job on a cluster. */
export interface AgentBox {
  /** A short id for logs (12 hex digits of the container's or service's id). */
  readonly shortId: string;
  /**
   * Starts the box and waits for it to end, passing its output on as it arrives; stops it at `timeoutMs` or when
   * `signal` aborts.
   * @throws DaemonLostError when the daemon (or the node the job runs on) is lost; DockerError when the backend fails.
   */
  run(options: AgentRunOptions): Promise<ContainerExit>;
  /** Stops the running agent for `why` (a grace period, then killed); asked before it started, it stops once started. */
  requestStop(why: ContainerExit['reason']): void;
  /**
   * Copy-mode workspaces: the entrypoint's /run/agent-worker-out (`result`, `work.bundle`), into `destDir`.
   * @returns relative paths of the files written (under `agent-worker-out/`).
   * @throws when they cannot be had.
   */
  fetchCopyOutput(destDir: string): Promise<string[]>;
  /** The --verify command's `verify.log` and `verify.result` into `destDir` (under `agent-worker-verify/`); none when it did not run. */
  fetchVerifyOutput(destDir: string): Promise<string[]>;
  /** One file the agent's plugin reads after the run, when it is a regular file of at most `maxBytes` bytes; none otherwise. */
  fetchAgentFile(containerPath: string, destDir: string, maxBytes: number): Promise<string[]>;
  /** Starts reading what the box uses (memory, CPU) while it runs. */
  watchResources(): ResourceWatch;
  /**
   * Removes the box once the work is safe; never throws (STYLE rule 16).
   * @returns undefined when it is gone, else a warning saying what was left for `agent-worker gc`.
   */
  removeAfterWork(timeoutMs: number): Promise<string | undefined>;
}

/** Where a run's boxes are made. */
export interface Backend {
  readonly name: BackendName;
  /**
   * Creates the run's egress path (not started).
   * @throws DockerError; whatever was created is removed first.
   */
  createEgress(spec: EgressSpec): Promise<EgressBox>;
  /**
   * Creates the agent's box (not started) behind `egress`, which this backend created.
   * @throws DockerError; whatever was created is removed first.
   */
  createAgent(spec: AgentBoxSpec, egress: EgressBox): Promise<AgentBox>;
}

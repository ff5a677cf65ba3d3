/**
 * A run's egress path on a swarm: a per-run internal overlay network (no way out), and the egress proxy as a job on
 * it and on a second, ordinary overlay network (its way out, through the node's gateway bridge), on the node the
 * agent's task was placed on (a lost node takes only its own runs with it). The proxy's
 * configuration — the credentials — is a swarm secret only the proxy's service is given (a root-only tmpfs file in
 * its task, read before the proxy drops root); its program is a swarm config. Its reports come back on its output
 * stream, read as the local sidecar's are (readProxyReports).
 */
import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import createDebug from 'debug';
import { AgentWorkerError, DockerError, ExitCode, errorMessage } from '../../errors.js';
import { TimeoutError, withTimeout } from '../../docker/client.js';
import { LABEL_ROLE, runLabels } from '../../docker/labels.js';
import { PROXY_ALIAS, PROXY_PORT, PROXY_PROGRAM_SOURCE, ROLE_EGRESS_PROXY, readProxyReports, type EgressSpec } from '../../docker/egress.js';
import type { EgressProxyConfig, UpstreamCheck } from '../../proxy/egress-proxy.js';
import type { EgressBox } from '../types.js';
import { SwarmJob, TERMINAL_STATES } from './job.js';
import { createConfig, createOverlay, createSecret, removeQuietly } from './objects.js';

const log = createDebug('agent-worker:swarm');

/** Where the proxy's program and configuration are in its task. */
const PROGRAM_PATH = '/usr/local/lib/agent-worker/egress-proxy.mjs';
const CONFIG_SECRET_TARGET = 'agent-worker-egress-proxy.json';
/** How long the proxy's task may take to start running (its image pulled on a node the first time), in ms. */
export const PROXY_START_TIMEOUT_MS = 10 * 60_000;
/** How long the proxy may take to report `ready` once its task runs, in ms. */
const READY_TIMEOUT_MS = 30_000;
/** How often the proxy's task is looked at, in ms. */
const POLL_MS = 1000;
/** The proxy's limits: memory in bytes, processes. */
const PROXY_LIMITS = { memoryBytes: 256 * 1024 ** 2, pidsLimit: 256 };

/** Names of a run's swarm objects. */
export function swarmNames(runId: string): { internal: string; outside: string; proxy: string; proxySecret: string; proxyProgram: string; agent: string; handoff: string } {
  const base = `agent-worker-${runId}`;
  return { internal: base, outside: `${base}-out`, proxy: `${base}-proxy`, proxySecret: `${base}-proxy-config`, proxyProgram: `${base}-proxy-program`, agent: base, handoff: `${base}-handoff` };
}

/** The egress path of one run on a swarm. */
export class SwarmEgress implements EgressBox {
  private job?: SwarmJob;
  private removal?: Promise<string[]>;
  private stoppedWith?: { exitCode: number | null };
  private removedByUs = false;
  private markStopped: () => void = () => undefined;
  readonly stopped: Promise<{ exitCode: number | null }>;
  private launching = false;
  /** Settles once {@link launchOn} created the proxy's job (with its task's start and its `ready`), or failed to. */
  private readonly launched: Promise<{ running: Promise<void>; ready: Promise<UpstreamCheck[]> }>;
  private launch: (made: Promise<{ running: Promise<void>; ready: Promise<UpstreamCheck[]> }>) => void = () => undefined;

  private constructor(
    private readonly docker: Docker,
    private readonly spec: EgressSpec,
    /** Ids of the internal network (the agent's only one) and the proxy's way out. */
    readonly networks: { internal: string; outside: string },
    private readonly secretId: string,
    private readonly programId: string,
  ) {
    this.stopped = new Promise((resolve) => (this.markStopped = () => resolve(this.stoppedWith ?? { exitCode: null })));
    this.launched = new Promise((resolve) => (this.launch = resolve));
    this.launched.catch(() => undefined);
  }

  get networkName(): string {
    return swarmNames(this.spec.runId).internal;
  }

  /**
   * Creates the networks, the proxy's secret and config (the service itself is created by {@link start}).
   * @throws DockerError; whatever was created is removed first.
   */
  static async create(docker: Docker, spec: EgressSpec): Promise<SwarmEgress> {
    const names = swarmNames(spec.runId);
    const labels = runLabels(spec);
    let program: Buffer;
    try {
      program = await readFile(PROXY_PROGRAM_SOURCE);
    } catch (error) {
      throw new AgentWorkerError(`The egress proxy's program ${PROXY_PROGRAM_SOURCE} is missing.`, ExitCode.internal, 'Run `npm run build` (or reinstall agent-worker).', { cause: error });
    }
    const created: Array<[string, () => Promise<unknown>]> = [];
    try {
      const config: EgressProxyConfig = { ...spec.proxy, port: PROXY_PORT, host: '0.0.0.0' };
      const internal = await createOverlay(docker, names.internal, true, labels);
      created.push([`network ${names.internal}`, () => docker.getNetwork(internal).remove()]);
      const outside = await createOverlay(docker, names.outside, false, labels);
      created.push([`network ${names.outside}`, () => docker.getNetwork(outside).remove()]);
      const secretId = await createSecret(docker, names.proxySecret, Buffer.from(JSON.stringify(config), 'utf8'), labels, "the egress proxy's configuration");
      created.push([`secret ${names.proxySecret}`, () => docker.getSecret(secretId).remove()]);
      const programId = await createConfig(docker, names.proxyProgram, program, labels, "the egress proxy's program");
      created.push([`config ${names.proxyProgram}`, () => docker.getConfig(programId).remove()]);
      return new SwarmEgress(docker, spec, { internal, outside }, secretId, programId);
    } catch (error) {
      for (const [what, remove] of created.reverse()) await removeQuietly(what, remove, 30_000);
      throw error;
    }
  }

  /**
   * Readies the proxy: its job is created by {@link launchOn} once the agent's task has a node, on that node, so that
   * a lost node takes only its own runs' proxies with it.
   * @returns at once; `ready` settles when the proxy has tried the model API, and rejects when its job cannot be
   *   created, its task ends first, it does not run within {@link PROXY_START_TIMEOUT_MS} of this call, or does not
   *   report within 30 s of running.
   */
  async start(signal?: AbortSignal): Promise<{ ready: Promise<UpstreamCheck[]> }> {
    const readyInTime = (async () => {
      const { running, ready } = await withTimeout(this.launched, PROXY_START_TIMEOUT_MS, "the agent's task to be placed", signal);
      await withTimeout(running, PROXY_START_TIMEOUT_MS, "the egress proxy's task to start", signal);
      return withTimeout(ready, READY_TIMEOUT_MS, 'the egress proxy to listen', signal);
    })().catch((error: unknown) => {
      if (error instanceof TimeoutError) throw new DockerError(`The egress proxy did not start: ${error.message}.`, ExitCode.container, 'Check the swarm\'s nodes (`docker node ls`) and that they can pull from the registry.', { cause: error });
      throw error;
    });
    readyInTime.catch(() => undefined);
    return { ready: readyInTime };
  }

  /**
   * Creates the proxy's job on the node `nodeId` (the agent's) and reads its reports; later calls do nothing.
   * A failure to create it fails {@link start}'s `ready`.
   */
  launchOn(nodeId: string): void {
    if (this.launching) return;
    this.launching = true;
    const names = swarmNames(this.spec.runId);
    const launch = (async () => {
      const job = await SwarmJob.create(this.docker, {
        name: names.proxy,
        image: this.spec.image,
        labels: { ...runLabels(this.spec), [LABEL_ROLE]: ROLE_EGRESS_PROXY },
        entrypoint: ['node', PROGRAM_PATH],
        args: ['--secret-file', `/run/secrets/${CONFIG_SECRET_TARGET}`],
        // The image's NODE_EXTRA_CA_CERTS costs ~170 ms of node's start; the proxy trusts the system store itself.
        env: { NODE_EXTRA_CA_CERTS: '' },
        user: '0:0',
        workingDir: '/',
        capabilities: ['SETUID', 'SETGID'],
        secrets: [{ id: this.secretId, name: names.proxySecret, target: CONFIG_SECRET_TARGET }],
        configs: [{ id: this.programId, name: names.proxyProgram, target: PROGRAM_PATH }],
        networks: [{ id: this.networks.internal, aliases: [PROXY_ALIAS] }, { id: this.networks.outside }],
        resources: PROXY_LIMITS,
        placement: [`node.id==${nodeId}`],
        stopGracePeriodMs: 5000,
      });
      this.job = job;
      if (this.removedByUs) await job.remove(30_000).catch(() => undefined);
      const reports = readProxyReports(this.spec.onAudit);
      const output = await job.follow(reports.sinks).catch((error: unknown) => {
        log('proxy output: %s', errorMessage(error));
        return undefined;
      });
      return { running: this.watch(job, reports.onFailure, output?.close), ready: reports.ready };
    })();
    launch.catch(() => undefined);
    this.launch(launch);
  }

  /** Follows the proxy's task: resolves once it runs; marks the proxy stopped when the task ends. */
  private watch(job: SwarmJob, onFailure: (why: string) => void, closeOutput?: () => void): Promise<void> {
    let markRunning: () => void = () => undefined;
    const running = new Promise<void>((resolve) => (markRunning = resolve));
    void (async () => {
      let failures = 0;
      for (;;) {
        if (this.removedByUs) break;
        try {
          const task = await withTimeout(job.task(), 10_000, "the swarm manager to list the proxy's task");
          failures = 0;
          if (task?.state === 'running') markRunning();
          if (task && TERMINAL_STATES.has(task.state)) {
            if (!this.removedByUs) {
              this.stoppedWith = { exitCode: task.exitCode ?? null };
              onFailure(`its task ended (${task.state}${task.err ? `: ${task.err}` : ''})`);
            }
            break;
          }
        } catch (error) {
          failures += 1;
          log('proxy task: %s', errorMessage(error));
          if (failures >= 5) break;
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_MS).unref());
      }
      closeOutput?.();
      this.markStopped();
    })();
    return running;
  }

  get exited(): { exitCode: number | null } | undefined {
    return this.stoppedWith;
  }

  remove(timeoutMs: number): Promise<string[]> {
    this.removal ??= this.removeOnce(timeoutMs);
    return this.removal;
  }

  private async removeOnce(timeoutMs: number): Promise<string[]> {
    this.removedByUs = true;
    const names = swarmNames(this.spec.runId);
    const warnings: string[] = [];
    const note = (warning: string | undefined): void => {
      if (warning) warnings.push(warning);
    };
    if (this.job) note(await removeQuietly(`the egress proxy's service ${names.proxy}`, () => this.job!.remove(timeoutMs), timeoutMs));
    this.markStopped();
    note(await removeQuietly(`secret ${names.proxySecret}`, () => this.docker.getSecret(this.secretId).remove(), timeoutMs));
    note(await removeQuietly(`config ${names.proxyProgram}`, () => this.docker.getConfig(this.programId).remove(), timeoutMs));
    // A network goes once no task's container is attached: after the agent's and the proxy's services are gone.
    note(await removeQuietly(`network ${names.outside}`, () => this.docker.getNetwork(this.networks.outside).remove(), timeoutMs));
    note(await removeQuietly(`network ${names.internal}`, () => this.docker.getNetwork(this.networks.internal).remove(), timeoutMs));
    return warnings;
  }
}

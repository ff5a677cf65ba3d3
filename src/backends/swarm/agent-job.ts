/**
 * The agent's box on a swarm: a job whose task runs the usual entrypoint with AW_HANDOFF=stream. The manager has no
 * archive API into a task's container, so:
 *  - in: the task, the placeholders, the agent's settings and the output nonce are a swarm secret only this service
 *    gets; the repository bundle too when it is small (split into up to {@link BUNDLE_SECRET_PARTS} secrets), else it
 *    rides in a per-run image (the agent's image plus one layer, built on the manager and pushed to the registry)
 *    (container/handoff.sh `in`);
 *  - out: the collected work (`work.bundle`, `result`), the --verify output and the plugin's files come back as one
 *    block on the job's stdout (handoff.sh `out`, read by OutBlockReader), extracted safely into a private folder.
 * The time limit is the entrypoint's own (AW_STOP_AFTER_SECONDS: it stops the agent and still collects), with the
 * host's as a backstop; a stop asked for by the host removes the service (SIGTERM, then the grace period in which the
 * entrypoint collects and writes the block).
 */
import { createReadStream } from 'node:fs';
import { cp, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pack as tarPack } from 'tar-stream';
import type Docker from 'dockerode';
import createDebug from 'debug';
import { DockerError, ExitCode, errorMessage } from '../../errors.js';
import { extractSafely } from '../../docker/archive.js';
import { withTimeout } from '../../docker/client.js';
import { API_UNREACHABLE_EXIT_CODE, COPY_OUT_DIR, DaemonLostError, ENTRYPOINT_CAPABILITIES, FIREWALL_EXIT_CODE, VERIFY_OUT_DIR, WORKSPACE_DIR, entrypointEnv, handoffArchive, type ContainerExit } from '../../docker/container.js';
import { LABEL_MANAGED, runLabels } from '../../docker/labels.js';
import { noResources, type ResourceWatch } from '../../docker/stats.js';
import { LineSplitter } from '../../stream/lines.js';
import type { AgentBox, AgentBoxSpec, AgentRunOptions } from '../types.js';
import { swarmNames, type SwarmEgress } from './egress.js';
import { SwarmJob, STARTED_STATES, TERMINAL_STATES, type JobTask } from './job.js';
import { createSecret, removeQuietly, SECRET_MAX_BYTES } from './objects.js';
import { newOutNonce, OutBlockError, OutBlockReader } from './out-block.js';
import { publishImage } from './registry.js';

const log = createDebug('agent-worker:swarm');

/**
 * Owner of the agent's hand-off secrets in its task (mode 0400): neither root nor the agent's user, so an agent that
 * runs as root (the host user is root) cannot read them either — a secret's file cannot be deleted; the entrypoint
 * reads them as this user (container/handoff.sh, HANDOFF_UID).
 */
const HANDOFF_UID = 65533;
/** How long the entrypoint waits for the proxy's name to resolve on a swarm, in seconds. */
const PROXY_RESOLVE_WAIT_SECONDS = 120;
/** Where the hand-off secret is in the task. */
const HANDOFF_TARGET = 'agent-worker-handoff';
/** Grace between SIGTERM and SIGKILL when the host stops the job: the entrypoint collects the work and writes it out. */
const STOP_GRACE_MS = 60_000;
/** How often the job's task is looked at, in ms. */
const POLL_MS = 1000;
/** Failed looks in a row after which the manager counts as lost… */
const MANAGER_FAILURES = 5;
/** …each of which may take this long, in ms (a manager whose host died sends no reset: requests just stall). */
const MANAGER_ANSWER_MS = 10_000;
/** How long the output may take to drain once the task ended by itself, in ms… */
const OUTPUT_DRAIN_MS = 15_000;
/** …and, when no block can come (the agent never started), how long it must have been quiet to count as drained, in ms. */
const QUIET_MS = 2000;
/** Beyond the entrypoint's own time limit, what the host allows before it removes the job itself, in ms. */
const BACKSTOP_MS = STOP_GRACE_MS + 60_000;
/**
 * The entrypoint's exit codes when the agent never started (container/entrypoint.sh): no output block follows. 64 (bad
 * input) and 71 (the hand-off or a capability missing) are its `die` codes, named nowhere else.
 */
const SETUP_EXIT_CODES = new Set([64, API_UNREACHABLE_EXIT_CODE, 71, FIREWALL_EXIT_CODE]);
/** The line the entrypoint writes on stderr when its time limit stopped the agent. */
const TIME_LIMIT_LINE = 'agent-worker: time limit reached, stopping the agent';

/** Most secrets a bundle is split into; a larger bundle rides in a per-run image instead. */
export const BUNDLE_SECRET_PARTS = 8;
/** Where the bundle's parts are in the task: `<prefix>0`, `<prefix>1`, … (container/handoff.sh joins them). */
const BUNDLE_PART_TARGET = 'agent-worker-bundle-';

/** Repository of per-run images (the agent's image plus the run's repository bundle). */
export const RUN_IMAGE_REPOSITORY = 'agent-worker-run';

/** Thrown when the node a job ran on was lost: an infrastructure failure (batch --retries runs it again). */
export class NodeLostError extends DaemonLostError {
  override name = 'NodeLostError';
}

/** Where a swarm job's parts come from. */
export interface SwarmAgentJobOptions {
  docker: Docker;
  registry: string;
  placement: string[];
  /** The node a job was placed on, by id, for messages and the report (hostname). */
  nodeName: (nodeId: string) => Promise<string>;
  /** Whether a node is down (lost) now. */
  nodeDown: (nodeId: string) => Promise<boolean>;
}

/** The agent's job on a swarm. */
export class SwarmAgentJob implements AgentBox {
  private job?: SwarmJob;
  private stopWhy?: ContainerExit['reason'];
  private stopNow?: () => void;
  private removal?: Promise<string | undefined>;
  /** The node the task was placed on (its id), once placed. */
  nodeId?: string;

  private constructor(
    private readonly options: SwarmAgentJobOptions,
    private readonly spec: AgentBoxSpec,
    private readonly egress: SwarmEgress,
    /** The image the job runs: the agent's, or a per-run one carrying the bundle (`localTag` then set). */
    private readonly image: { reference: string; localTag?: string },
    private readonly handoffSecretId: string,
    /** The bundle's parts as secrets (small bundles), in order. */
    private readonly bundleParts: Array<{ id: string; name: string }>,
    private readonly nonce: string,
    /** The run's private folder: the output block and what it holds. */
    private readonly dir: string,
  ) {}

  get shortId(): string {
    return this.job?.shortId ?? swarmNames(this.spec.runId).agent;
  }

  /**
   * Builds and pushes the run's image and creates the hand-off secret (the job is created by {@link run}).
   * @throws DockerError; whatever was created is removed first.
   */
  static async create(options: SwarmAgentJobOptions, spec: AgentBoxSpec, egress: SwarmEgress): Promise<SwarmAgentJob> {
    const { docker } = options;
    const names = swarmNames(spec.runId);
    const labels = runLabels(spec);
    const dir = await mkdtemp(path.join(os.tmpdir(), `agent-worker-swarm-${spec.runId}-`));
    const nonce = newOutNonce();
    let secretId: string | undefined;
    let localTag: string | undefined;
    const parts: Array<{ id: string; name: string }> = [];
    try {
      const handoff = await collect(await handoffArchive(spec, { bundle: false, extra: { 'out-nonce': nonce } }));
      secretId = await createSecret(docker, names.handoff, handoff, labels, "the run's hand-off (task, settings)");
      const workspace = spec.workspace;
      const bundleBytes = workspace.mode === 'copy' ? (await stat(workspace.bundleFile)).size : 0;
      let reference = spec.image;
      if (workspace.mode === 'copy' && bundleBytes <= BUNDLE_SECRET_PARTS * SECRET_MAX_BYTES) {
        // A small bundle travels as secrets (no image to build, push and pull, nothing left in the registry).
        const bundle = await readFile(workspace.bundleFile);
        for (let at = 0, index = 0; at < bundle.length || index === 0; at += SECRET_MAX_BYTES, index += 1) {
          const name = `${names.handoff}-bundle-${index}`;
          parts.push({ id: await createSecret(docker, name, bundle.subarray(at, at + SECRET_MAX_BYTES), labels, "the repository's bundle"), name });
        }
        log('bundle of %d bytes in %d secret(s)', bundleBytes, parts.length);
      } else {
        localTag = `${RUN_IMAGE_REPOSITORY}:${spec.runId}`;
        await buildRunImage(docker, spec, localTag, labels);
        reference = await publishImage(docker, localTag, options.registry);
      }
      return new SwarmAgentJob(options, spec, egress, { reference, localTag }, secretId, parts, nonce, dir);
    } catch (error) {
      for (const part of parts) await removeQuietly(`secret ${part.name}`, () => docker.getSecret(part.id).remove(), 30_000);
      if (secretId) await removeQuietly(`secret ${names.handoff}`, () => docker.getSecret(secretId!).remove(), 30_000);
      if (localTag) await removeRunImage(docker, localTag, options.registry);
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /**
   * Creates the job and follows it to its end: its output (the agent's lines passed on, the output block kept), its
   * task's state (exit code, the node it ran on), the time limit and stop requests.
   * @throws NodeLostError when its node was lost; DaemonLostError when the manager stops answering; DockerError.
   */
  async run(options: AgentRunOptions): Promise<ContainerExit> {
    const { docker } = this.options;
    const names = swarmNames(this.spec.runId);
    const timeoutSeconds = Math.max(1, Math.ceil(options.timeoutMs / 1000));
    const env: Record<string, string> = {
      ...entrypointEnv(this.spec),
      AW_HANDOFF: 'stream',
      AW_HANDOFF_FILE: `/run/secrets/${HANDOFF_TARGET}`,
      ...(this.bundleParts.length > 0 ? { AW_BUNDLE_PARTS: this.bundleParts.map((_, index) => `/run/secrets/${BUNDLE_PART_TARGET}${index}`).join(' ') } : {}),
      AW_STOP_AFTER_SECONDS: String(timeoutSeconds),
    };
    if (this.spec.outputFiles?.length) env.AW_OUTPUT_FILES = this.spec.outputFiles.join('\n');
    // The proxy's task is created once this one is placed: its name may take longer to resolve than beside a local daemon.
    if (this.spec.resolveWaitSeconds) env.AW_RESOLVE_WAIT_SECONDS = String(Math.max(this.spec.resolveWaitSeconds, PROXY_RESOLVE_WAIT_SECONDS));
    const job = await SwarmJob.create(docker, {
      name: names.agent,
      image: this.image.reference,
      labels: runLabels(this.spec),
      args: this.spec.command,
      env,
      workingDir: WORKSPACE_DIR,
      capabilities: ENTRYPOINT_CAPABILITIES,
      secrets: [
        { id: this.handoffSecretId, name: names.handoff, target: HANDOFF_TARGET, uid: HANDOFF_UID },
        ...this.bundleParts.map((part, index) => ({ ...part, target: `${BUNDLE_PART_TARGET}${index}`, uid: HANDOFF_UID })),
      ],
      networks: [{ id: this.egress.networks.internal }],
      resources: { memoryBytes: this.spec.limits?.memoryBytes ?? 4 * 1024 ** 3, cpus: this.spec.limits?.cpus, pidsLimit: this.spec.limits?.pidsLimit },
      placement: this.options.placement,
      stopGracePeriodMs: STOP_GRACE_MS,
    });
    this.job = job;

    // stdout: the agent's lines go on (with their newline), the block's are kept; stderr goes on as it is.
    const block = new OutBlockReader(this.nonce, path.join(this.dir, 'out.tar'));
    let timeLimitReached = false;
    const stdoutLines = new LineSplitter((line) => {
      if (!block.line(line)) options.sinks.stdout(Buffer.from(`${line}\n`, 'utf8'));
    });
    const stderrLines = new LineSplitter((line) => {
      if (line === TIME_LIMIT_LINE) timeLimitReached = true;
    }, 64 * 1024);
    let lastOutputAt = Date.now();
    const output = await job.follow({
      stdout: (chunk) => {
        lastOutputAt = Date.now();
        stdoutLines.push(chunk);
      },
      stderr: (chunk) => {
        lastOutputAt = Date.now();
        stderrLines.push(chunk);
        options.sinks.stderr(chunk);
      },
    });

    let reason: ContainerExit['reason'] = 'exited';
    const stopFor = (why: ContainerExit['reason']): void => {
      if (reason !== 'exited') return;
      reason = why;
      log('stopping job %s: %s', job.shortId, why);
      // SIGTERM to the task's container; the entrypoint collects and writes the block within the grace period, on the
      // output stream of the service, which stays until the work is safe. Removing it is the fallback.
      void job.stopTask(30_000).catch((error: unknown) => {
        log('stop %s: %s', job.shortId, errorMessage(error));
        return job.remove(30_000).catch((removeError: unknown) => log('remove %s: %s', job.shortId, errorMessage(removeError)));
      });
    };
    this.stopNow = () => stopFor(this.stopWhy ?? 'interrupted');
    if (this.stopWhy) stopFor(this.stopWhy);
    const onAbort = (): void => stopFor('interrupted');
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const backstop = setTimeout(() => stopFor('timed_out'), options.timeoutMs + BACKSTOP_MS);

    let last: JobTask | undefined;
    let started = false;
    try {
      last = await this.follow(job, () => {
        if (!started) {
          started = true;
          options.onStarted?.();
        }
      }, () => reason !== 'exited');
    } catch (error) {
      // The node or the manager is gone: nothing more will come.
      output.close();
      throw error;
    } finally {
      clearTimeout(backstop);
      options.signal?.removeEventListener('abort', onAbort);
    }
    // The output stream does not end by itself (not even once the service is gone): it is read until the block has
    // come, or, without one, until it has been quiet a moment; after a stop, for as long as the grace period lasts.
    // When the entrypoint failed before the agent started, no block comes: quiet is enough. Otherwise the block is
    // waited for (the output reaches the manager later than the task's state).
    const noBlock = last?.exitCode !== undefined && SETUP_EXIT_CODES.has(last.exitCode);
    const drainUntil = Date.now() + (reason === 'exited' ? OUTPUT_DRAIN_MS : STOP_GRACE_MS + 5000);
    while (Date.now() < drainUntil && !block.ended) {
      const quiet = Date.now() - lastOutputAt > QUIET_MS;
      if (quiet && !block.inBlock && reason === 'exited' && noBlock) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    output.close();
    stdoutLines.end();
    stderrLines.end();
    if (timeLimitReached && reason === 'exited') reason = 'timed_out';
    await this.unpack(block);
    const exitCode = reason === 'exited' ? (last?.exitCode ?? null) : null;
    log('job %s ended: %s, %s, exit %s', job.shortId, reason, last?.state, last?.exitCode);
    return { exitCode, reason, oomKilled: false };
  }

  /**
   * Looks at the job's task until it ended; calls `onRunning` once it runs.
   * @throws NodeLostError when its node goes down first; DaemonLostError when the manager stops answering.
   */
  private async follow(job: SwarmJob, onRunning: () => void, stopping: () => boolean): Promise<JobTask | undefined> {
    let failures = 0;
    let last: JobTask | undefined;
    for (;;) {
      let task: JobTask | undefined;
      try {
        task = await withTimeout(job.task(), MANAGER_ANSWER_MS, 'the swarm manager to list the task');
        failures = 0;
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404 && stopping()) return last;
        failures += 1;
        log('task of %s: %s', job.shortId, errorMessage(error));
        if (failures >= MANAGER_FAILURES) {
          throw new DaemonLostError(`Lost the swarm manager while the agent ran in service ${job.name}: ${errorMessage(error)}`, ExitCode.docker, 'Check the manager and the network to it; finished runs are kept.', { cause: error });
        }
      }
      if (task) {
        last = task;
        if (task.nodeId) {
          this.nodeId = task.nodeId;
          // Its egress proxy goes to the same node.
          this.egress.launchOn(task.nodeId);
        }
        if (STARTED_STATES.has(task.state) || TERMINAL_STATES.has(task.state)) onRunning();
        if (TERMINAL_STATES.has(task.state)) {
          if (task.state === 'orphaned' || (task.nodeId && !stopping() && task.state !== 'complete' && task.state !== 'failed' && (await this.options.nodeDown(task.nodeId).catch(() => false)))) {
            throw await this.nodeLost(task);
          }
          return task;
        }
        if (task.nodeId && task.state === 'running' && (await this.options.nodeDown(task.nodeId).catch(() => false))) throw await this.nodeLost(task);
      } else if (stopping()) {
        // The service is gone (removed to stop it): its task with it.
        return last;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS).unref());
    }
  }

  private async nodeLost(task: JobTask): Promise<NodeLostError> {
    const node = task.nodeId ? await this.options.nodeName(task.nodeId).catch(() => task.nodeId!) : 'unknown';
    return new NodeLostError(
      `The swarm node ${node} running the agent was lost (task ${task.state}${task.err ? `: ${task.err}` : ''}); its work there is gone.`,
      ExitCode.docker,
      'Run it again (batch: --retries); the swarm places it on another node.',
    );
  }

  /** Extracts the output block, when one came, into the run's folder. */
  private async unpack(block: OutBlockReader): Promise<void> {
    let got;
    try {
      got = block.finish();
    } catch (error) {
      if (error instanceof OutBlockError) log('output block: %s', error.message);
      this.blockProblem = error instanceof Error ? error.message : String(error);
      return;
    }
    if (!got) return;
    this.unpacked = await extractSafely(createReadStream(got.file), path.join(this.dir, 'out'), { maxBytes: 16 * 1024 ** 3, maxEntries: 10_000 });
    await rm(got.file, { force: true });
  }

  private unpacked?: string[];
  private blockProblem?: string;

  requestStop(why: ContainerExit['reason']): void {
    this.stopWhy ??= why;
    this.stopNow?.();
  }

  async fetchCopyOutput(destDir: string): Promise<string[]> {
    if (!this.unpacked) {
      throw new DockerError(`The agent's work did not come back from the swarm job: ${this.blockProblem ?? 'its output ended before the work was written'}.`, ExitCode.container, 'Run with --debug for details.');
    }
    return this.copyOut(path.posix.basename(COPY_OUT_DIR), destDir);
  }

  async fetchVerifyOutput(destDir: string): Promise<string[]> {
    return this.copyOut(path.posix.basename(VERIFY_OUT_DIR), destDir);
  }

  async fetchAgentFile(containerPath: string, destDir: string, maxBytes: number): Promise<string[]> {
    const index = this.spec.outputFiles?.indexOf(containerPath) ?? -1;
    if (index < 0) return [];
    const from = path.join(this.dir, 'out', 'agent-files', String(index), path.posix.basename(containerPath));
    const size = await stat(from).then((info) => (info.isFile() ? info.size : -1), () => -1);
    if (size < 0 || size > maxBytes) return [];
    await cp(from, path.join(destDir, path.posix.basename(containerPath)));
    return [path.posix.basename(containerPath)];
  }

  /** Copies `<folder>/` of the unpacked block into `destDir`. @returns the relative paths of the files written. */
  private async copyOut(folder: string, destDir: string): Promise<string[]> {
    const files = (this.unpacked ?? []).filter((file) => file.startsWith(`${folder}/`));
    if (files.length === 0) return [];
    await cp(path.join(this.dir, 'out', folder), path.join(destDir, folder), { recursive: true, verbatimSymlinks: true });
    return files;
  }

  /** Swarm nodes give no resource figures through the manager: the report's are null. */
  watchResources(): ResourceWatch {
    return { stop: async () => noResources() };
  }

  removeAfterWork(timeoutMs: number): Promise<string | undefined> {
    this.removal ??= (async () => {
      const { docker } = this.options;
      const names = swarmNames(this.spec.runId);
      const warnings: string[] = [];
      if (this.job) {
        const left = await removeQuietly(`service ${names.agent}`, () => this.job!.remove(timeoutMs), timeoutMs);
        if (left) warnings.push(left);
      }
      for (const [id, name] of [[this.handoffSecretId, names.handoff], ...this.bundleParts.map((part) => [part.id, part.name])] as const) {
        const secret = await removeQuietly(`secret ${name}`, () => docker.getSecret(id).remove(), timeoutMs);
        if (secret) warnings.push(secret);
      }
      if (this.image.localTag) await removeRunImage(docker, this.image.localTag, this.options.registry);
      await rm(this.dir, { recursive: true, force: true });
      return warnings.length > 0 ? warnings.join('; ') : undefined;
    })();
    return this.removal;
  }
}

/** A stream's bytes, whole (the hand-off: a few KB). */
async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Builds the run's image on the manager: the agent's image plus the repository bundle at
 * /run/agent-worker-in/repo.bundle (container/handoff.sh `in` moves it into place).
 * @throws DockerError (exit {@link ExitCode.container}).
 */
async function buildRunImage(docker: Docker, spec: AgentBoxSpec, tag: string, labels: Record<string, string>): Promise<void> {
  const base = spec.image.replace(/@sha256:[0-9a-f]+$/, '');
  const context = tarPack();
  context.entry({ name: 'Dockerfile' }, `FROM ${base}\nCOPY repo.bundle /run/agent-worker-in/repo.bundle\n`);
  const workspace = spec.workspace;
  if (workspace.mode === 'copy') {
    const size = (await stat(workspace.bundleFile)).size;
    const entry = context.entry({ name: 'repo.bundle', size, mode: 0o400 }, (error) => {
      if (error) context.destroy(error);
      else context.finalize();
    });
    createReadStream(workspace.bundleFile)
      .on('error', (error) => context.destroy(error))
      .pipe(entry as unknown as NodeJS.WritableStream);
  } else {
    context.entry({ name: 'repo.bundle' }, '');
    context.finalize();
  }
  try {
    const stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, { t: tag, labels: { ...labels, [LABEL_MANAGED]: 'true' }, rm: true, forcerm: true });
    await new Promise<void>((resolve, reject) => {
      let buildError: string | undefined;
      docker.modem.followProgress(
        stream,
        (error: Error | null) => (error ? reject(error) : buildError ? reject(new Error(buildError)) : resolve()),
        (event: { error?: string }) => {
          if (event.error) buildError = event.error;
        },
      );
    });
  } catch (error) {
    throw new DockerError(`Building the run's image on the swarm manager failed: ${errorMessage(error)}`, ExitCode.container, 'Run with --debug for details.', { cause: error });
  }
}

/** Removes the run's image's tags from the manager (its layers stay shared); never throws. */
async function removeRunImage(docker: Docker, localTag: string, registry: string): Promise<void> {
  for (const name of [`${registry}/${localTag}`, localTag]) {
    await docker
      .getImage(name)
      .remove({ noprune: false })
      .catch((error: unknown) => log('remove image %s: %s', name, errorMessage(error)));
  }
}

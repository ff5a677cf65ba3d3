/**
 * A Docker Swarm for integration tests, made of docker-in-docker containers on the local engine
 * (tests/helpers/dind.ts): one manager, drained so tasks only run on workers, N workers labelled
 * `node.labels.worker-index=1..N`, and an image registry (tests/fixtures/registry: Debian's
 * docker-registry 2.8, plain HTTP on port 5000) that every node trusts as an insecure registry.
 *
 * Images reach the workers through the registry: {@link startSwarm} copies `loadImages` into the manager
 * only; a test tags and pushes from the manager, and services name `<registry.address>/<name>:<tag>`.
 *
 * Every node is on the local engine's default bridge (172.17.0.0/16): the manager advertises its bridge
 * IP for the swarm's control plane (tcp/2377) and the overlay data path (VXLAN, udp/4789); the registry
 * listens on its own bridge IP, which the nodes' daemons and the test process both reach.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import createDebug from 'debug';
import type Docker from 'dockerode';
import { pack as packFolder } from 'tar-fs';
import tarStream from 'tar-stream';
import {
  DIND_BASE_IMAGE,
  DIND_LABEL,
  type Dind,
  ensureDindImage,
  followStream,
  imageExists,
  startDind,
} from './dind.js';
import { docker as localDocker } from './docker.js';

const log = createDebug('agent-worker:test-swarm');

/** The registry image's build context; only {@link REGISTRY_CONTEXT_FILES} of it go into the build. */
export const REGISTRY_CONTEXT_DIR = path.resolve(import.meta.dirname, '../fixtures/registry');
/** The files of {@link REGISTRY_CONTEXT_DIR} that make the registry image (NOTES.md is not one of them). */
export const REGISTRY_CONTEXT_FILES = ['Dockerfile', 'config.yml'] as const;
/** Repository part of the registry image's tag; the tag is the first 16 hex digits of its content hash. */
export const REGISTRY_IMAGE_REPOSITORY = 'agent-worker-test-registry';
/** Value of {@link DIND_LABEL} on the registry image and container (plain dind containers carry `dind`). */
export const REGISTRY_LABEL_VALUE = 'swarm-registry';
/** Value of {@link DIND_LABEL} on the swarm's dind containers: not `dind`, so a swarm left up for other suites does not count as a plain dind container. */
export const SWARM_NODE_LABEL_VALUE = 'swarm-node';
/** The registry's port, inside its container and on its bridge IP (not published). */
export const REGISTRY_PORT = 5000;
/** The node label that numbers the workers (1-based), for placement constraints `node.labels.worker-index==N`. */
export const WORKER_INDEX_LABEL = 'worker-index';

/** One node of the swarm as the manager lists it. */
export interface SwarmNode {
  /** Swarm node id (`GET /nodes`). */
  id: string;
  /** The node's hostname: its dind container's hostname (the first 12 hex digits of the container id). */
  hostname: string;
  role: 'manager' | 'worker';
  /** The worker's `worker-index` label (1-based); undefined for the manager. */
  workerIndex?: number;
}

/** How long the parts of {@link startSwarm} took, in ms. */
export interface SwarmTimings {
  /** Finding or building the dind and registry images (in parallel); `imagesBuilt` says whether any was built. */
  imagesMs: number;
  imagesBuilt: boolean;
  /** Starting the registry and every dind node (in parallel), including copying `loadImages` to the manager. */
  nodesMs: number;
  /** Making every node trust the registry (daemon.json + SIGHUP, until `GET /info` shows it insecure). */
  trustMs: number;
  /** `swarm init`, the joins, draining, labelling, until every node is ready. */
  swarmMs: number;
  /** All of {@link startSwarm}. */
  totalMs: number;
}

/** A running swarm; see the module comment. */
export interface Swarm {
  manager: Dind;
  /** `workers[i]` has `worker-index` i + 1. */
  workers: Dind[];
  /** dockerode over TLS to the manager's daemon (the swarm API: services, tasks, nodes, secrets). */
  managerDocker: Docker;
  /** The manager's TLS endpoint: `tcp://127.0.0.1:PORT` and a DOCKER_CERT_PATH-style folder. */
  managerTls: { host: string; certDir: string };
  registry: {
    /** The registry container, on the local engine. */
    container: Docker.Container;
    /** `<its bridge IP>:5000`: reachable from every node's daemon, from containers, and from the test process. */
    address: string;
  };
  /** The manager first, then the workers in index order. */
  nodes: SwarmNode[];
  /** How long {@link startSwarm}'s steps took. */
  timings: SwarmTimings;
  /**
   * SIGKILLs worker `index`'s dind container (its `worker-index`, 1-based: `workers[index - 1]`), to
   * simulate a lost node. The container stays (exited) until {@link Swarm.stop}.
   * @throws RangeError for an index that is not a worker's.
   */
  killWorker(index: number): Promise<void>;
  /** Removes every container it created (by id) and the dind temp folders. Safe to call again, or concurrently. */
  stop(): Promise<void>;
}

/** Options of {@link startSwarm}. */
export interface StartSwarmOptions {
  /** How many workers. Default 2. */
  workers?: number;
  /** Images on the local engine to copy into the manager (only). Default: [{@link DIND_BASE_IMAGE}]. */
  loadImages?: string[];
  /** Bound of each wait (a daemon answering, the registry answering, the nodes being ready), in ms. Default 60 000. */
  readyTimeoutMs?: number;
}

/**
 * Starts the registry and the dind nodes, makes the nodes trust the registry, inits the swarm on the
 * manager (advertising its bridge IP), joins the workers with the worker join token, drains the
 * manager, labels the workers and waits until every node is ready (workers active, manager drained).
 * @throws Error when an image build, a container start, a join or a wait fails (waits name what they
 *   waited for). Whatever was created is removed before the error is rethrown.
 */
export async function startSwarm(options: StartSwarmOptions = {}): Promise<Swarm> {
  const started = Date.now();
  const workerCount = options.workers ?? 2;
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  if (!Number.isInteger(workerCount) || workerCount < 1) throw new RangeError(`workers must be a positive integer, got ${workerCount}`);

  const [dindImage, registryImage] = await Promise.all([ensureDindImage(localDocker), ensureRegistryImage(localDocker)]);
  const imagesMs = Date.now() - started;

  const created: { registry?: Docker.Container; dinds: Dind[] } = { dinds: [] };
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const results = await Promise.allSettled([
        ...created.dinds.map((dind) => dind.stop()),
        ...(created.registry ? [removeContainer(created.registry)] : []),
      ]);
      const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failure) throw failure.reason;
    })().catch((error: unknown) => {
      stopping = undefined;
      throw error;
    });
    return stopping;
  };

  try {
    const nodesStarted = Date.now();
    const track = async (start: Promise<Dind>): Promise<Dind> => {
      const dind = await start;
      created.dinds.push(dind);
      return dind;
    };
    const startRegistry = async (): Promise<string> => {
      const { address } = await startRegistryContainer(registryImage, timeoutMs, (container) => (created.registry = container));
      return address;
    };
    // allSettled, not all: every started node must be tracked for stop() before a failure is rethrown.
    const results = await Promise.allSettled([
      startRegistry(),
      track(startDind({ loadImages: options.loadImages ?? [DIND_BASE_IMAGE], readyTimeoutMs: timeoutMs, labelValue: SWARM_NODE_LABEL_VALUE })),
      ...Array.from({ length: workerCount }, () => track(startDind({ loadImages: [], readyTimeoutMs: timeoutMs, labelValue: SWARM_NODE_LABEL_VALUE }))),
    ]);
    const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure) throw failure.reason;
    const [registryAddress, manager, ...workers] = results.map((result) => (result as PromiseFulfilledResult<unknown>).value) as [string, Dind, ...Dind[]];
    const nodesMs = Date.now() - nodesStarted;
    log('registry at %s, manager %s, workers %s up in %d ms', registryAddress, manager.ip, workers.map((worker) => worker.ip).join(' '), nodesMs);

    const trustStarted = Date.now();
    await Promise.all([manager, ...workers].map((dind) => trustRegistry(dind, registryAddress, timeoutMs)));
    const trustMs = Date.now() - trustStarted;

    const swarmStarted = Date.now();
    const nodes = await formSwarm(manager, workers, timeoutMs);
    const swarmMs = Date.now() - swarmStarted;

    const timings: SwarmTimings = { imagesMs, imagesBuilt: dindImage.built || registryImage.built, nodesMs, trustMs, swarmMs, totalMs: Date.now() - started };
    log('swarm of %d workers up in %d ms: %o', workerCount, timings.totalMs, timings);
    return {
      manager,
      workers,
      managerDocker: manager.inner,
      managerTls: { host: manager.tls.host, certDir: manager.tls.certDir },
      registry: { container: created.registry!, address: registryAddress },
      nodes,
      timings,
      async killWorker(index: number): Promise<void> {
        const worker = Number.isInteger(index) ? workers[index - 1] : undefined;
        if (!worker) throw new RangeError(`no worker with index ${index} (workers are 1..${workers.length})`);
        log('killing worker %d (%s)', index, worker.container.id.slice(0, 12));
        await worker.container.kill({ signal: 'SIGKILL' });
      },
      stop,
    };
  } catch (error) {
    await stop().catch((cleanupError: unknown) => log('cleanup after a failed start failed: %O', cleanupError));
    throw error;
  }
}

/**
 * Force-removes containers by id on the local engine (what `swarm-cli down` does with the ids `up` printed);
 * missing ones are fine. Resolves to how many were removed.
 */
export async function removeContainersById(ids: string[]): Promise<number> {
  let removed = 0;
  for (const id of ids) if (await removeContainer(localDocker.getContainer(id))) removed++;
  return removed;
}

/** Result of {@link ensureRegistryImage}. */
export interface RegistryImage {
  tag: string;
  /** True when the image was built now, false when the tag was already there. */
  built: boolean;
  /** In ms. */
  durationMs: number;
}

/**
 * Makes sure the registry image exists on `docker`: `agent-worker-test-registry:<hash>` (sha256 of
 * {@link REGISTRY_CONTEXT_FILES} and the base image name) is reused when present, else built with the
 * classic builder from those files (apt-get inside the build, as for the dind image).
 * @throws Error when {@link DIND_BASE_IMAGE} is not on the engine, or the build fails (with the build log's tail).
 */
export async function ensureRegistryImage(docker: Docker): Promise<RegistryImage> {
  const started = Date.now();
  const buildArgs = { BASE_IMAGE: DIND_BASE_IMAGE };
  const hash = createHash('sha256').update(`agent-worker-test-registry-v1\0${JSON.stringify(buildArgs)}\0`);
  for (const file of REGISTRY_CONTEXT_FILES) {
    hash.update(`${file}\0${createHash('sha256').update(readFileSync(path.join(REGISTRY_CONTEXT_DIR, file))).digest('hex')}\0`);
  }
  const tag = `${REGISTRY_IMAGE_REPOSITORY}:${hash.digest('hex').slice(0, 16)}`;
  if (await imageExists(docker, tag)) {
    log('registry image %s is cached', tag);
    return { tag, built: false, durationMs: Date.now() - started };
  }
  if (!(await imageExists(docker, DIND_BASE_IMAGE))) {
    throw new Error(`the registry image needs ${DIND_BASE_IMAGE} on the local engine (no registry is reachable): docker load or pull it first`);
  }
  log('building registry image %s', tag);
  const context = packFolder(REGISTRY_CONTEXT_DIR, { entries: [...REGISTRY_CONTEXT_FILES] }) as unknown as NodeJS.ReadableStream;
  const stream = await docker.buildImage(context, { t: tag, buildargs: buildArgs, labels: { [DIND_LABEL]: REGISTRY_LABEL_VALUE }, rm: true, forcerm: true });
  await followStream(docker, stream, `building ${tag}`);
  if (!(await imageExists(docker, tag))) throw new Error(`building ${tag} ended without producing the image`);
  const durationMs = Date.now() - started;
  log('built registry image %s in %d ms', tag, durationMs);
  return { tag, built: true, durationMs };
}

/**
 * Creates and starts the registry container and waits until `GET http://<ip>:5000/v2/` answers 200.
 * `onCreated` gets the container as soon as it exists, so a failed start can still remove it.
 */
async function startRegistryContainer(
  image: RegistryImage,
  timeoutMs: number,
  onCreated: (container: Docker.Container) => void,
): Promise<{ container: Docker.Container; address: string }> {
  const container = await localDocker.createContainer({ Image: image.tag, Labels: { [DIND_LABEL]: REGISTRY_LABEL_VALUE } });
  onCreated(container);
  await container.start();
  const ip = (await container.inspect()).NetworkSettings.Networks.bridge?.IPAddress;
  if (!ip) throw new Error('the registry container has no address on the default bridge');
  const address = `${ip}:${REGISTRY_PORT}`;
  await waitFor(`the registry to answer GET http://${address}/v2/ with 200`, timeoutMs, async () => {
    if (!(await container.inspect()).State.Running) throw new Error('the registry container exited');
    const response = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
    return response?.status === 200;
  });
  log('registry %s answers at %s', container.id.slice(0, 12), address);
  return { container, address };
}

/**
 * Writes /etc/docker/daemon.json (`insecure-registries: [address]`) into the dind container, sends it
 * SIGHUP (tini forwards it to dockerd, which reloads that setting) and waits until `GET /info` lists the
 * registry as not secure.
 */
async function trustRegistry(dind: Dind, address: string, timeoutMs: number): Promise<void> {
  const pack = tarStream.pack();
  pack.entry({ name: 'daemon.json', mode: 0o644 }, `${JSON.stringify({ 'insecure-registries': [address] }, null, 2)}\n`);
  pack.finalize();
  await dind.container.putArchive(pack as unknown as NodeJS.ReadableStream, { path: '/etc/docker' });
  await dind.container.kill({ signal: 'SIGHUP' });
  await waitFor(`the daemon of ${dind.ip} to trust the registry ${address} as insecure after SIGHUP`, timeoutMs, async () => {
    const info = (await dind.inner.info()) as { RegistryConfig?: { IndexConfigs?: Record<string, { Secure?: boolean }> } };
    return info.RegistryConfig?.IndexConfigs?.[address]?.Secure === false;
  });
}

/** Inits the swarm on `manager`, joins `workers`, drains the manager, labels the workers, waits until all are ready. */
async function formSwarm(manager: Dind, workers: Dind[], timeoutMs: number): Promise<SwarmNode[]> {
  const managerDocker = manager.inner;
  const managerId = (await managerDocker.swarmInit({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: `${manager.ip}:2377` })) as string;
  const { JoinTokens } = (await managerDocker.swarmInspect()) as { JoinTokens: { Worker: string } };
  log('swarm initialised on %s, manager node %s', manager.ip, managerId);

  const workerIds = await Promise.all(
    workers.map(async (worker) => {
      await worker.inner.swarmJoin({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: `${worker.ip}:2377`, RemoteAddrs: [`${manager.ip}:2377`], JoinToken: JoinTokens.Worker });
      const info = (await worker.inner.info()) as { Swarm?: { NodeID?: string } };
      if (!info.Swarm?.NodeID) throw new Error(`worker ${worker.ip} joined but reports no swarm node id`);
      return info.Swarm.NodeID;
    }),
  );

  await updateNode(managerDocker, managerId, (spec) => ({ ...spec, Availability: 'drain' }));
  for (const [index, id] of workerIds.entries()) {
    await updateNode(managerDocker, id, (spec) => ({ ...spec, Labels: { ...spec.Labels, [WORKER_INDEX_LABEL]: String(index + 1) } }));
  }

  const expected = new Map<string, { availability: string; workerIndex?: number }>([
    [managerId, { availability: 'drain' }],
    ...workerIds.map((id, index) => [id, { availability: 'active', workerIndex: index + 1 }] as const),
  ]);
  let listed: NodeInfo[] = [];
  await waitFor(`all ${expected.size} swarm nodes to be ready (workers active and labelled, manager drained)`, timeoutMs, async () => {
    listed = (await managerDocker.listNodes()) as NodeInfo[];
    return (
      listed.length === expected.size &&
      listed.every((node) => {
        const want = expected.get(node.ID);
        return (
          want !== undefined &&
          node.Status.State === 'ready' &&
          node.Spec.Availability === want.availability &&
          (want.workerIndex === undefined || node.Spec.Labels?.[WORKER_INDEX_LABEL] === String(want.workerIndex))
        );
      })
    );
  });
  const byId = new Map(listed.map((node) => [node.ID, node]));
  return [managerId, ...workerIds].map((id, index) => ({
    id,
    hostname: byId.get(id)!.Description.Hostname,
    role: index === 0 ? 'manager' : 'worker',
    ...(index === 0 ? {} : { workerIndex: index }),
  }));
}

/** The fields of `GET /nodes` used here. */
interface NodeInfo {
  ID: string;
  Version: { Index: number };
  Spec: { Availability: string; Role: string; Labels?: Record<string, string> };
  Status: { State: string };
  Description: { Hostname: string };
}

/** `POST /nodes/ID/update` with the node's current version and the spec `change` returns. */
async function updateNode(docker: Docker, id: string, change: (spec: NodeInfo['Spec']) => NodeInfo['Spec']): Promise<void> {
  const node = docker.getNode(id);
  const info = (await node.inspect()) as NodeInfo;
  await node.update({ _query: { version: info.Version.Index }, _body: change(info.Spec) });
}

/** Polls `ready` every 250 ms until it is true. @throws Error naming `what` after `timeoutMs`, or the first error `ready` throws. */
async function waitFor(what: string, timeoutMs: number, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Force-removes a container with its anonymous volumes. Resolves false when it was already gone or going. */
async function removeContainer(container: Docker.Container): Promise<boolean> {
  try {
    await container.remove({ force: true, v: true });
    log('removed container %s', container.id.slice(0, 12));
    return true;
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 404 || status === 409) return false;
    throw error;
  }
}

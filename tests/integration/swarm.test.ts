/**
 * The Docker Swarm test harness (tests/helpers/swarm.ts) against a real swarm of dind nodes, and the facts
 * the swarm backend's design rests on, each measured here (written down in tests/fixtures/registry/NOTES.md):
 * one-shot jobs and their exit codes, placement, service logs, overlay networks, capabilities, secrets,
 * what removing a running service does, and what a lost node does. Every wait is bounded; the facts are
 * printed as one JSON document at the end (and with DEBUG=agent-worker:test-swarm as they are measured).
 *
 * The test may ask each node's own daemon (to check what is left on it); the product may not.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import createDebug from 'debug';
import type Docker from 'dockerode';
import tarStream from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIND_BASE_IMAGE, DIND_LABEL, type Dind, followStream } from '../helpers/dind.js';
import { bridgeGateway, docker, dockerAvailable } from '../helpers/docker.js';
import { startSwarm, SWARM_NODE_LABEL_VALUE, type Swarm } from '../helpers/swarm.js';

const log = createDebug('agent-worker:test-swarm');
const hasDocker = await dockerAvailable();

/** `X-Registry-Auth` for the unauthenticated test registry: base64 of `{}`. */
const NO_AUTH = {};
/** Every service this file creates is named with this prefix. */
const PREFIX = 'aw-swarm-test';

/** The fields of `GET /tasks` read here. */
interface TaskInfo {
  ID: string;
  NodeID?: string;
  DesiredState: string;
  Status: { State: string; Message?: string; Err?: string; ContainerStatus?: { ContainerID?: string; ExitCode?: number } };
}

/** One frame of Docker's multiplexed stream: 1 stdout / 2 stderr, and its payload. */
interface Frame {
  stream: number;
  payload: Buffer;
}

/** Splits a multiplexed log stream (8-byte header: stream, 3 zero bytes, uint32 BE size) into its frames. */
function frames(raw: Buffer): Frame[] {
  const out: Frame[] = [];
  for (let offset = 0; offset + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(offset + 4);
    out.push({ stream: raw[offset]!, payload: raw.subarray(offset + 8, offset + 8 + size) });
    offset += 8 + size;
  }
  return out;
}

const text = (raw: Buffer): string => Buffer.concat(frames(raw).map((frame) => frame.payload)).toString('utf8');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `read` every 100 ms until `done` holds for its value; throws naming `what` after `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(value)}`);
    await sleep(100);
  }
}

/** A follow stream of service logs, collecting what arrives with the arrival time (ms since `openedAt`). */
interface LogFollower {
  raw(): Buffer;
  text(): string;
  /** ms after opening when the stream ended by itself; undefined while it has not. */
  endedAfterMs(): number | undefined;
  close(): void;
}

async function followLogs(service: Docker.Service): Promise<LogFollower> {
  const openedAt = Date.now();
  const stream = (await service.logs({ stdout: true, stderr: true, follow: true })) as unknown as NodeJS.ReadableStream & { destroy(): void };
  const chunks: Buffer[] = [];
  let endedAfterMs: number | undefined;
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => (endedAfterMs = Date.now() - openedAt));
  stream.on('error', (error: Error) => log('log stream error: %s', error.message));
  return {
    raw: () => Buffer.concat(chunks),
    text: () => text(Buffer.concat(chunks)),
    endedAfterMs: () => endedAfterMs,
    close: () => stream.destroy(),
  };
}

// One swarm for the file; the steps below run in order, the lost-node one last (it kills worker 2).
describe.runIf(hasDocker)('docker swarm test harness', { timeout: 180_000 }, () => {
  let swarm: Swarm;
  let image: string;
  const facts: Record<string, unknown> = {};
  const jobServices: string[] = [];
  const replicatedServices: string[] = [];
  let serial = 0;

  const fact = (name: string, value: unknown): void => {
    facts[name] = value;
    log('fact %s: %o', name, value);
  };
  const tasksOf = async (serviceId: string): Promise<TaskInfo[]> =>
    (await swarm.managerDocker.listTasks({ filters: JSON.stringify({ service: [serviceId] }) })) as TaskInfo[];
  const waitTask = (serviceId: string, states: string[], timeoutMs = 90_000): Promise<TaskInfo> =>
    until(`a task of ${serviceId} in ${states.join('|')}`, timeoutMs, () => tasksOf(serviceId), (tasks) => tasks.some((task) => states.includes(task.Status.State))).then(
      (tasks) => tasks.find((task) => states.includes(task.Status.State))!,
    );

  /** Creates a one-shot service: ReplicatedJob (1 completion, 1 at a time) unless `replicated`, restart none. */
  async function createService(
    command: string[],
    options: { worker?: number; constraints?: string[]; container?: Record<string, unknown>; task?: Record<string, unknown>; spec?: Record<string, unknown>; image?: string; replicated?: boolean } = {},
  ): Promise<Docker.Service> {
    const constraints = options.constraints ?? (options.worker ? [`node.labels.worker-index==${options.worker}`] : []);
    const service = await swarm.managerDocker.createService(NO_AUTH, {
      Name: `${PREFIX}-${++serial}`,
      Mode: options.replicated ? { Replicated: { Replicas: 1 } } : { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } },
      TaskTemplate: {
        ContainerSpec: { Image: options.image ?? image, Command: command, ...options.container },
        RestartPolicy: { Condition: 'none' },
        Placement: { Constraints: constraints },
        ...options.task,
      },
      ...options.spec,
    } as Docker.CreateServiceOptions);
    (options.replicated ? replicatedServices : jobServices).push(service.id);
    return service;
  }

  /** State of a container on a worker's own daemon: its State.Status, or 'gone'. */
  const containerState = async (worker: Dind, id: string): Promise<string> =>
    ((await worker.inner.getContainer(id).inspect().catch(() => undefined)) as { State?: { Status?: string } } | undefined)?.State?.Status ?? 'gone';

  async function push(name: string): Promise<number> {
    const started = Date.now();
    await followStream(swarm.managerDocker, await swarm.managerDocker.getImage(name).push({ authconfig: NO_AUTH }), `pushing ${name}`);
    return Date.now() - started;
  }

  beforeAll(async () => {
    swarm = await startSwarm();
    fact('startup', swarm.timings);
    image = `${swarm.registry.address}/test-base:1`;
    await swarm.managerDocker.getImage(DIND_BASE_IMAGE).tag({ repo: `${swarm.registry.address}/test-base`, tag: '1' });
    fact('firstPushMs', await push(image));
  }, 600_000);

  afterAll(async () => {
    console.log(`swarm facts: ${JSON.stringify(facts, null, 1)}`);
    if (!swarm) return;
    const ids = [swarm.registry.container.id, swarm.manager.container.id, ...swarm.workers.map((worker) => worker.container.id)];
    await swarm.stop();
    await swarm.stop(); // safe to repeat
    const left = await docker.listContainers({ all: true, filters: { id: ids } });
    expect(left.map((info) => info.Id)).toEqual([]);
  });

  it('forms a swarm: manager drained, workers ready and labelled, every node trusts the registry', async () => {
    const nodes = (await swarm.managerDocker.listNodes()) as Array<{ ID: string; Spec: { Availability: string; Role: string; Labels?: Record<string, string> }; Status: { State: string } }>;
    expect(nodes).toHaveLength(3);
    for (const node of swarm.nodes) {
      const listed = nodes.find((candidate) => candidate.ID === node.id)!;
      expect(listed.Status.State).toBe('ready');
      expect(listed.Spec.Role).toBe(node.role);
      expect(listed.Spec.Availability).toBe(node.role === 'manager' ? 'drain' : 'active');
      if (node.workerIndex) expect(listed.Spec.Labels?.['worker-index']).toBe(String(node.workerIndex));
    }
    for (const dind of [swarm.manager, ...swarm.workers]) {
      const info = (await dind.inner.info()) as { RegistryConfig: { IndexConfigs: Record<string, { Secure: boolean }> } };
      expect(info.RegistryConfig.IndexConfigs[swarm.registry.address]?.Secure).toBe(false);
    }
    // Labelled apart from plain dind containers, so a swarm left up for other suites is not one of theirs.
    for (const dind of [swarm.manager, ...swarm.workers]) expect((await dind.container.inspect()).Config.Labels[DIND_LABEL]).toBe(SWARM_NODE_LABEL_VALUE);
    // loadImages went to the manager only.
    expect(await swarm.workers[0]!.inner.listImages()).toEqual([]);
    expect(await fetch(`http://${swarm.registry.address}/v2/_catalog`).then((response) => response.json())).toEqual({ repositories: ['test-base'] });
  });

  it('runs a replicated job on a worker: exit 7 → task failed, ExitCode 7', async () => {
    const service = await createService(['sh', '-c', 'echo ran; exit 7']);
    const task = await waitTask(service.id, ['failed', 'complete', 'rejected']);
    expect(task.Status.State).toBe('failed');
    expect(task.Status.ContainerStatus?.ExitCode).toBe(7);
    expect(task.Status.Err).toBe('task: non-zero exit (7)');
    expect(swarm.nodes.find((node) => node.id === task.NodeID)?.role).toBe('worker');
    expect(text(Buffer.from((await service.logs({ stdout: true, stderr: true })) as unknown as Buffer))).toBe('ran\n');
    fact('exit7', { state: task.Status.State, err: task.Status.Err, desired: task.DesiredState });
  });

  it('places by node label; an unsatisfiable constraint leaves the task pending with "no suitable node"', async () => {
    const placed = await createService(['true'], { worker: 2 });
    const task = await waitTask(placed.id, ['complete', 'failed']);
    expect(task.Status.State).toBe('complete');
    expect(task.NodeID).toBe(swarm.nodes.find((node) => node.workerIndex === 2)!.id);

    const nowhere = await createService(['true'], { constraints: ['node.labels.nope==1'] });
    const pending = await waitTask(nowhere.id, ['pending']);
    const settled = await until('the pending task to carry an error', 10_000, () => tasksOf(nowhere.id), (tasks) => Boolean(tasks[0]?.Status.Err));
    expect(settled[0]!.Status.State).toBe('pending');
    expect(settled[0]!.Status.Err).toBe('no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not available for new tasks)');
    fact('pendingTask', { state: pending.Status.State, message: settled[0]!.Status.Message, err: settled[0]!.Status.Err, desired: settled[0]!.DesiredState });
    await nowhere.remove();
  });

  it('streams service logs: a 20,000-byte line comes as 16 KiB frames without added newlines; follow does not end when the job completes', async () => {
    const service = await createService(['bash', '-c', 'echo first; head -c 20000 /dev/zero | tr "\\0" x; echo; echo last'], { worker: 1 });
    await waitTask(service.id, ['running', 'complete']);
    const follower = await followLogs(service);
    const done = await waitTask(service.id, ['complete', 'failed']);
    const completedAt = Date.now();
    expect(done.Status.State).toBe('complete');
    await until('the follow stream to deliver "last"', 15_000, async () => follower.text(), (output) => output.includes('last\n'));
    const sizes = frames(follower.raw()).map((frame) => frame.payload.length);
    expect(sizes).toEqual([6, 16_384, 3_617, 5]);
    expect(follower.text()).toBe(`first\n${'x'.repeat(20_000)}\nlast\n`);
    // Bounded: the stream is still open 15 s after the task completed.
    const bound = 15_000;
    await sleep(Math.max(0, completedAt + bound - Date.now()));
    expect(follower.endedAfterMs()).toBeUndefined();
    follower.close();
    fact('logs', { frameSizes: sizes, followEndedWithin15sOfComplete: false });
  });

  it('measures create → running (warm image) and create → complete for `true`', async () => {
    let started = Date.now();
    const sleeper = await createService(['sleep', '3'], { worker: 1 });
    await waitTask(sleeper.id, ['running']);
    const runningMs = Date.now() - started;
    started = Date.now();
    const quick = await createService(['true'], { worker: 1 });
    await waitTask(quick.id, ['complete']);
    const completeMs = Date.now() - started;
    expect(runningMs).toBeLessThan(30_000);
    fact('latency', { createToRunningWarmMs: runningMs, trueCreateToCompleteMs: completeMs });
  });

  it('resolves a digest from the registry without pulling; an unchanged re-push is quick', async () => {
    const started = Date.now();
    const distribution = (await swarm.managerDocker.getImage(image).distribution({ authconfig: NO_AUTH })) as { Descriptor: { digest: string } };
    const distributionMs = Date.now() - started;
    const repoDigests = ((await swarm.managerDocker.getImage(image).inspect()) as { RepoDigests: string[] }).RepoDigests;
    expect(repoDigests).toContain(`${swarm.registry.address}/test-base@${distribution.Descriptor.digest}`);
    const repushMs = await push(image);
    fact('registry', { distributionMs, repushMs, digest: distribution.Descriptor.digest });
  });

  it('overlays: internal-only has no way out, a normal overlay goes out via docker_gwbridge, an alias resolves across nodes (dnsrr; VIP does not connect)', async () => {
    const gateway = await bridgeGateway();
    const server = http.createServer((_request, response) => response.end('host-says-hi\n'));
    await new Promise<void>((resolve) => server.listen(0, gateway, resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const internal = await swarm.managerDocker.createNetwork({ Name: `${PREFIX}-internal`, Driver: 'overlay', Internal: true, Attachable: false, CheckDuplicate: true });
      const egress = await swarm.managerDocker.createNetwork({ Name: `${PREFIX}-egress`, Driver: 'overlay', Internal: false, Attachable: false, CheckDuplicate: true });
      const hostProbe = `if timeout 5 bash -c 'exec 3<>/dev/tcp/${gateway}/${port}; printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3; tail -n 1 <&3'; then echo HOST-OK; else echo HOST-FAIL; fi`;
      const results: Record<string, string> = {};
      for (const endpointMode of ['dnsrr', 'vip']) {
        const serve = `perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die "listen: $!"; $| = 1; print "listening\\n"; $c = $s->accept; print $c "proxy-says-hi\\n"; close $c'`;
        const proxy = await createService(['bash', '-c', `timeout 25 ${serve} & ${hostProbe}; wait`], {
          worker: 1,
          task: { Networks: [{ Target: internal.id, Aliases: [`agent-worker-proxy-${endpointMode}`] }] },
          spec: { EndpointSpec: { Mode: endpointMode } },
        });
        await waitTask(proxy.id, ['running']);
        const client = await createService(
          ['bash', '-c', `getent hosts agent-worker-proxy-${endpointMode} || echo RESOLVE-FAIL; if timeout 5 bash -c 'exec 3<>/dev/tcp/agent-worker-proxy-${endpointMode}/8080; head -n 1 <&3'; then echo PROXY-OK; else echo PROXY-FAIL; fi; ${hostProbe}`],
          { worker: 2, task: { Networks: [{ Target: internal.id }, { Target: egress.id }] }, spec: { EndpointSpec: { Mode: endpointMode } } },
        );
        await waitTask(client.id, ['complete', 'failed']);
        await waitTask(proxy.id, ['complete', 'failed'], 60_000);
        results[`${endpointMode}:internalOnly`] = text(Buffer.from((await proxy.logs({ stdout: true, stderr: true })) as unknown as Buffer));
        results[`${endpointMode}:internalAndEgress`] = text(Buffer.from((await client.logs({ stdout: true, stderr: true })) as unknown as Buffer));
      }
      fact('networks', results);
      // Internal only: no route out at all.
      expect(results['dnsrr:internalOnly']).toContain('HOST-FAIL');
      expect(results['dnsrr:internalOnly']).toContain('Network is unreachable');
      // Internal + normal overlay: out through docker_gwbridge and the node's NAT to the host's bridge gateway.
      expect(results['dnsrr:internalAndEgress']).toContain('host-says-hi\nHOST-OK');
      // The alias resolves on the other node; with dnsrr it is the task's own address and connects.
      expect(results['dnsrr:internalAndEgress']).toMatch(/^10\.\d+\.\d+\.\d+\s+agent-worker-proxy-dnsrr\nproxy-says-hi\nPROXY-OK\n/);
      // With a VIP it never connects: this kernel has no IPVS (dockerd: "Could not get ipvs family information").
      // The name resolved to the VIP (then "No route to host") in 3 runs, and not at all under load in 1.
      expect(results['vip:internalAndEgress']).toContain('PROXY-FAIL');
      expect(results['vip:internalAndEgress']).toMatch(/agent-worker-proxy-vip\n(.|\n)*No route to host|Name or service not known/);
    } finally {
      server.close();
    }
  });

  it('accepts CapabilityAdd NET_ADMIN/NET_RAW with CapabilityDrop ALL; iptables -L works in the job', async () => {
    const iptablesImage = `${swarm.registry.address}/test-iptables:1`;
    const context = tarStream.pack();
    context.entry({ name: 'Dockerfile' }, `FROM ${DIND_BASE_IMAGE}\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*\n`);
    context.finalize();
    let started = Date.now();
    await followStream(swarm.managerDocker, await swarm.managerDocker.buildImage(context as unknown as NodeJS.ReadableStream, { t: iptablesImage, rm: true, forcerm: true }), 'building the iptables image on the manager');
    const buildMs = Date.now() - started;
    const pushMs = await push(iptablesImage);
    started = Date.now();
    const service = await createService(['bash', '-c', 'grep -E "^Cap(Eff|Bnd)" /proc/self/status; iptables -V; iptables -L -n >/dev/null && echo IPT-OK; iptables-legacy -L -n >/dev/null && echo IPT-LEGACY-OK'], {
      image: iptablesImage,
      worker: 2,
      container: { CapabilityAdd: ['NET_ADMIN', 'NET_RAW'], CapabilityDrop: ['ALL'] },
    });
    const task = await waitTask(service.id, ['complete', 'failed', 'rejected']);
    const output = text(Buffer.from((await service.logs({ stdout: true, stderr: true })) as unknown as Buffer));
    fact('capabilities', { buildMs, pushMs, runMs: Date.now() - started, state: task.Status.State, output });
    expect(task.Status.State).toBe('complete');
    // Bits 12 (CAP_NET_ADMIN) and 13 (CAP_NET_RAW) only.
    expect(output).toContain('CapEff:\t0000000000003000\nCapBnd:\t0000000000003000\n');
    expect(output).toContain('IPT-OK\n');
    expect(output).toContain('IPT-LEGACY-OK\n');
  });

  it('mounts a secret at /run/secrets/<Name>, root 0400 on tmpfs; a non-root process cannot read it', async () => {
    const secret = await swarm.managerDocker.createSecret({ Name: `${PREFIX}-secret`, Data: Buffer.from('s3cret-value').toString('base64') });
    // vfs nodes leave a container's / at 0700 (overlay2 ones at 755): opened up first so uid 1000 can run programs at all.
    const script = [
      'stat -c "%U:%G %a %s" /run/secrets/api-key',
      'stat -f -c %T /run/secrets/api-key',
      'cat /run/secrets/api-key; echo',
      'chmod 755 /',
      'setpriv --reuid 1000 --regid 1000 --clear-groups cat /run/secrets/api-key; echo "non-root rc=$?"',
    ].join('; ');
    const service = await createService(['bash', '-c', script], {
      container: { Secrets: [{ SecretID: secret.id, SecretName: `${PREFIX}-secret`, File: { Name: 'api-key', UID: '0', GID: '0', Mode: 0o400 } }] },
    });
    const task = await waitTask(service.id, ['complete', 'failed', 'rejected']);
    const output = text(Buffer.from((await service.logs({ stdout: true, stderr: true })) as unknown as Buffer));
    fact('secret', output);
    expect(task.Status.State).toBe('complete');
    expect(output).toBe(
      'root:root 400 12\ntmpfs\ns3cret-value\ncat: /run/secrets/api-key: Permission denied\nnon-root rc=1\n',
    );
  });

  it('removing a running service: a job keeps running (no SIGTERM); TotalCompletions 0 or a replicated service stops it gracefully, and follow delivers the lines after SIGTERM', async () => {
    const script = 'trap \'for i in 1 2 3 4 5; do echo "after-term $i"; sleep 1; done; echo bye; exit 0\' TERM; echo started; while :; do sleep 0.2; done';
    const worker = swarm.workers[0]!;
    const results: Record<string, unknown> = {};
    for (const how of ['job-remove', 'job-total-0', 'replicated-remove'] as const) {
      const service = await createService(['bash', '-c', script], { worker: 1, replicated: how === 'replicated-remove', container: { StopGracePeriod: 20e9 } });
      const running = await waitTask(service.id, ['running']);
      const containerId = running.Status.ContainerStatus!.ContainerID!;
      const follower = await followLogs(service);
      await until('"started" in the logs', 15_000, async () => follower.text(), (output) => output.includes('started\n'));
      const stoppedAt = Date.now();
      if (how === 'job-total-0') {
        const info = (await service.inspect()) as { Version: { Index: number }; Spec: Record<string, unknown> };
        await service.update({ version: info.Version.Index, ...info.Spec, Mode: { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 0 } } });
      } else {
        await service.remove();
      }
      if (how === 'job-remove') {
        // Bounded look: 10 s later the container still runs and got no SIGTERM; the task stays listed.
        await sleep(10_000);
        const orphan = ((await swarm.managerDocker.listTasks()) as TaskInfo[]).find((task) => task.ID === running.ID);
        results[how] = { containerAfter10s: await containerState(worker, containerId), linesAfterStop: follower.text(), orphanTask: orphan && [orphan.Status.State, orphan.DesiredState] };
        expect(await containerState(worker, containerId)).toBe('running');
        expect(follower.text()).toBe('started\n');
        expect(orphan && [orphan.Status.State, orphan.DesiredState]).toEqual(['running', 'complete']);
        await worker.inner.getContainer(containerId).remove({ force: true });
      } else {
        await until('"bye" in the follow stream', 25_000, async () => follower.text(), (output) => output.includes('bye\n'));
        const byeMs = Date.now() - stoppedAt;
        const gone = await until('the task container to be removed', 20_000, () => containerState(worker, containerId), (state) => state === 'gone');
        const goneMs = Date.now() - stoppedAt;
        expect(gone).toBe('gone');
        expect(follower.text()).toBe('started\nafter-term 1\nafter-term 2\nafter-term 3\nafter-term 4\nafter-term 5\nbye\n');
        if (how === 'job-total-0') {
          const tasks = await tasksOf(service.id);
          results[`${how}:tasksAfter`] = tasks.map((task) => [task.Status.State, task.DesiredState]);
          await service.remove();
        }
        results[how] = { byeMs, containerGoneMs: goneMs, streamEndedAfterMs: follower.endedAfterMs() ?? 'not ended' };
      }
      const afterRemoval = await service.logs({ stdout: true, stderr: true }).then(
        () => 'answered',
        (error: { statusCode?: number; json?: { message?: string } }) => `${error.statusCode} ${error.json?.message ?? ''}`,
      );
      expect(afterRemoval).toBe(`404 service ${service.id} not found`);
      results[`${how}:logsAfterRemoval`] = afterRemoval;
      follower.close();
    }
    fact('removal', results);
  });

  it('nothing left: no services; a replicated service leaves no container, a removed job leaves its exited containers (moby#42789)', async () => {
    for (const id of [...jobServices, ...replicatedServices]) await swarm.managerDocker.getService(id).remove().catch(() => undefined);
    expect(await swarm.managerDocker.listServices()).toEqual([]);
    const leftovers: Record<string, string[]> = {};
    for (const [index, worker] of swarm.workers.entries()) {
      const list = await until(
        `worker ${index + 1} to have no running container and none of a replicated service`,
        20_000,
        () => worker.inner.listContainers({ all: true }),
        (containers) => containers.every((info) => info.State !== 'running' && !replicatedServices.includes(info.Labels['com.docker.swarm.service.id'] ?? '')),
      );
      leftovers[`worker${index + 1}`] = list.map((info) => `${info.State} ${info.Labels['com.docker.swarm.service.name']}`);
      // What is left belongs to removed jobs only, exited.
      for (const info of list) expect(jobServices).toContain(info.Labels['com.docker.swarm.service.id']);
      // The test (not the product) clears them on the node's own daemon, so that the node is really empty.
      for (const info of list) await worker.inner.getContainer(info.Id).remove({ force: true });
      expect(await worker.inner.listContainers({ all: true })).toEqual([]);
    }
    expect(await swarm.manager.inner.listContainers({ all: true })).toEqual([]);
    expect(Object.values(leftovers).flat().length).toBeGreaterThan(0);
    fact('leftoversAfterJobRemoval', leftovers);
  });

  it('a lost node: SIGKILL a worker mid-job → node down after a heartbeat failure; the task stays "running", no new task', async () => {
    const service = await createService(['sleep', '600'], { worker: 2 });
    const running = await waitTask(service.id, ['running']);
    const nodeId = running.NodeID!;
    const killedAt = Date.now();
    await swarm.killWorker(2);
    const node = await until(
      'worker 2 to be down',
      60_000,
      async () => ((await swarm.managerDocker.getNode(nodeId).inspect()) as { Status: { State: string; Message?: string } }).Status,
      (status) => status.State === 'down',
    );
    const downMs = Date.now() - killedAt;
    // Bounded look: 20 s after the node went down.
    await sleep(20_000);
    const tasks = await tasksOf(service.id);
    fact('lostNode', { downMs, node, tasks: tasks.map((task) => ({ state: task.Status.State, message: task.Status.Message, err: task.Status.Err, desired: task.DesiredState })) });
    expect(node.Message).toBe('heartbeat failure');
    expect(tasks).toHaveLength(1);
    expect([tasks[0]!.Status.State, tasks[0]!.DesiredState]).toEqual(['running', 'complete']);
    await service.remove();
  });
});

/**
 * watchResources against the real engine: a container that holds ~80 MB and burns CPU for 3 s reports both; the
 * last read catches figures the 1-second stream has not sent yet; a container that exits in under a second ends
 * the watch quickly, and what the engine says once it has exited (nothing: its cgroup is gone) is read as null.
 * Nothing is left behind.
 */
import type Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { docker, dockerAvailable } from '../helpers/docker.js';
import { frameResources, noResources, watchResources } from '../../src/docker/stats.js';

const hasDocker = await dockerAvailable();
const IMAGE = 'debian:bookworm-slim';
const TEST_LABEL = 'dev.agent-worker.test';
const TEST_LABEL_VALUE = 'stats';
const MB = 1_000_000;

async function leftovers(): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${TEST_LABEL_VALUE}`] } });
}

afterAll(async () => {
  if (!hasDocker) return;
  for (const info of await leftovers()) await docker.getContainer(info.Id).remove({ force: true }).catch(() => undefined);
});

/** Creates a labelled container running `script` with sh; removed by the caller (and by afterAll after a failure). */
function create(script: string): Promise<Docker.Container> {
  return docker.createContainer({ Image: IMAGE, Cmd: ['sh', '-c', script], Labels: { [TEST_LABEL]: TEST_LABEL_VALUE }, HostConfig: { NetworkMode: 'none' } });
}

/** Resolves once the container's output holds `text`; rejects after `ms`, naming what it waited for. */
async function outputHolds(container: Docker.Container, stream: NodeJS.ReadableStream, text: string, ms: number): Promise<void> {
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${JSON.stringify(text)} in the output of ${container.id.slice(0, 12)}`)), ms);
    stream.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

describe.runIf(hasDocker)('watchResources on a real engine', () => {
  it('reports the peak memory and CPU time of a container that holds ~80 MB and burns CPU for 3 s', async () => {
    const container = await create('x=$(head -c 80000000 /dev/zero | tr "\\0" a); timeout 3 sh -c "while :; do :; done"; sleep 1');
    try {
      const watch = watchResources(container);
      await container.start();
      const started = Date.now();
      expect((await container.wait()) as { StatusCode: number }).toMatchObject({ StatusCode: 0 });
      const ranMs = Date.now() - started;
      const stopStarted = Date.now();
      const resources = await watch.stop();
      const stopMs = Date.now() - stopStarted;
      console.log(`stats: ran ${ranMs} ms, stop took ${stopMs} ms:`, resources);
      // The shell held the 80 MB string from the first second to the last (measured here: 161 MB, cgroup v1 max_usage).
      expect(resources.peakMemoryBytes).toBeGreaterThanOrEqual(60 * MB);
      expect(resources.peakMemoryBytes).toBeLessThan(2_000 * MB);
      // 3 s of a busy loop, sampled once a second (measured: 3.6 s); seconds, not ns or ms.
      expect(resources.cpuSeconds).toBeGreaterThanOrEqual(1.5);
      expect(resources.cpuSeconds).toBeLessThan(60);
      expect(stopMs).toBeLessThan(2_500);
    } finally {
      await container.remove({ force: true });
    }
  });

  it('reads the figures one last time at the stop, while the container still runs', async () => {
    const container = await create('timeout 1.5 sh -c "while :; do :; done"; echo burnt; exec sleep 60');
    const output = await container.attach({ stream: true, stdout: true, stderr: true });
    try {
      const watch = watchResources(container);
      await container.start();
      await outputHolds(container, output, 'burnt', 20_000);
      // The stream's last frame is up to a second old; the last read has the whole 1.5 s burst.
      const resources = await watch.stop();
      // The container only sleeps now: a read of our own gives the same CPU time, which the stream's last frame
      // (read up to a second before) would have only if the collector's tick fell within the few ms since the burst.
      const now = frameResources(await container.stats({ stream: false, 'one-shot': true }));
      console.log('stats: stopped right after the burst:', resources, 'read again:', now);
      expect(resources.cpuSeconds).toBeGreaterThanOrEqual(0.5);
      expect(Math.abs(resources.cpuSeconds! - now.cpuSeconds!)).toBeLessThan(0.05);
      expect(resources.peakMemoryBytes).toBeGreaterThan(0);
    } finally {
      (output as unknown as { destroy(): void }).destroy();
      await container.remove({ force: true });
    }
  });

  it('ends quickly for a container that exits in under a second; once it exited the engine has no figures', async () => {
    const container = await create('timeout 0.5 sh -c "while :; do :; done"');
    try {
      const watch = watchResources(container);
      await container.start();
      await container.wait();
      const stopStarted = Date.now();
      const resources = await watch.stop();
      const stopMs = Date.now() - stopStarted;
      console.log(`stats: a 0.5 s container, stop took ${stopMs} ms:`, resources);
      expect(stopMs).toBeLessThan(2_500);
      // The last read came after the exit and says nothing: on this engine (cgroup v1, Docker 20.10) the cgroup is
      // removed with the container's last process, so the stats endpoint answers a zero `read` time, zero CPU and an
      // empty memory_stats. Figures come only from a stream frame the engine's 1-second collector happened to send
      // while the container ran: then they are a lower bound (at most the 0.5 s it burnt); else null.
      const afterExit = await container.stats({ stream: false, 'one-shot': true });
      expect(frameResources(afterExit)).toEqual(noResources());
      if (resources.cpuSeconds !== null) {
        expect(resources.cpuSeconds).toBeGreaterThan(0);
        expect(resources.cpuSeconds).toBeLessThanOrEqual(0.6);
      }
      if (resources.peakMemoryBytes !== null) expect(resources.peakMemoryBytes).toBeGreaterThan(0);
    } finally {
      await container.remove({ force: true });
    }
  });

  it('leaves no container behind', async () => {
    expect(await leftovers()).toEqual([]);
  });
});

/**
 * The stats reader: frames of the Docker Engine API's `GET /containers/{id}/stats` folded into peak memory and CPU
 * time — cgroup v1 (a frame as Docker 20.10.24 on cgroup v1 sends it), cgroup v2 (the keys moby reports from
 * `memory.stat`, no `max_usage`), a stopped container's zero frames, frames split at every chunk boundary — and the
 * watch's life with a fake container: the stream is destroyed, the last read is bounded and its failure ignored.
 */
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { STATS_FRAME_MAX_BYTES, StatsStreamParser, accumulateStats, frameResources, noResources, watchResources } from '../../src/docker/stats.js';

/** A frame as Docker 20.10.24 (API 1.41, cgroup v1, cgroupfs driver) sent it for a running container. */
const V1_FRAME = {
  read: '2026-11-30T18:22:39.079672312Z',
  preread: '2026-11-30T18:22:38.074810376Z',
  pids_stats: { current: 2 },
  num_procs: 0,
  storage_stats: {},
  cpu_stats: {
    cpu_usage: { total_usage: 178_854_238, percpu_usage: [171_983_217, 6_871_021], usage_in_kernelmode: 120_000_000, usage_in_usermode: 50_000_000 },
    system_cpu_usage: 49_215_480_000_000,
    online_cpus: 2,
    throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
  },
  precpu_stats: {
    cpu_usage: { total_usage: 178_854_238, percpu_usage: [171_983_217, 6_871_021], usage_in_kernelmode: 120_000_000, usage_in_usermode: 50_000_000 },
    system_cpu_usage: 49_213_520_000_000,
    online_cpus: 2,
    throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
  },
  memory_stats: {
    usage: 23_515_136,
    max_usage: 43_261_952,
    stats: {
      active_anon: 4096, active_file: 1_466_368, cache: 2_433_024, dirty: 0, hierarchical_memory_limit: 9_223_372_036_854_771_712,
      inactive_anon: 20_267_008, inactive_file: 966_656, mapped_file: 1_671_168, pgfault: 11_114, pgmajfault: 7, rss: 20_271_104,
      total_active_anon: 4096, total_active_file: 1_466_368, total_cache: 2_433_024, total_inactive_anon: 20_267_008,
      total_inactive_file: 966_656, total_mapped_file: 1_671_168, total_rss: 20_271_104, unevictable: 0, writeback: 0,
    },
    limit: 25_276_510_208,
  },
  name: '/hardcore_nash',
  id: '395c05d83bf011206af156edd8232e40d08f4d740c8902c2b98599fcc539eaa1',
  networks: { eth0: { rx_bytes: 1086, rx_packets: 9, rx_errors: 0, rx_dropped: 0, tx_bytes: 0, tx_packets: 0, tx_errors: 0, tx_dropped: 0 } },
};

/** The same engine's frame once the container exited (its cgroup is gone): zero time, zero CPU, empty memory_stats. */
const STOPPED_FRAME = {
  read: '0001-01-01T00:00:00Z',
  preread: '0001-01-01T00:00:00Z',
  pids_stats: {},
  num_procs: 0,
  storage_stats: {},
  cpu_stats: { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } },
  precpu_stats: { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } },
  memory_stats: {},
  name: '/hardcore_nash',
  id: '395c05d83bf011206af156edd8232e40d08f4d740c8902c2b98599fcc539eaa1',
};

/** A cgroup v2 frame: `usage` is `memory.current`, `stats` the v2 `memory.stat` keys, no `max_usage` nor `percpu_usage`. */
function v2Frame(totalUsageNs: number, usage: number, inactiveFile: number): Record<string, unknown> {
  return {
    read: '2026-11-30T18:30:00.000000001Z',
    preread: '2026-11-30T18:29:59.000000001Z',
    pids_stats: { current: 3, limit: 4_915 },
    cpu_stats: {
      cpu_usage: { total_usage: totalUsageNs, usage_in_kernelmode: 20_000_000, usage_in_usermode: 100_000_000 },
      system_cpu_usage: 12_345_670_000_000,
      online_cpus: 4,
      throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
    },
    memory_stats: {
      usage,
      stats: {
        active_anon: 0, active_file: 4_096, anon: usage - inactiveFile - 4_096, anon_thp: 0, file: inactiveFile + 4_096, file_dirty: 0,
        file_mapped: 0, file_writeback: 0, inactive_anon: usage - inactiveFile - 4_096, inactive_file: inactiveFile, kernel_stack: 16_384,
        pgactivate: 0, pgfault: 1_234, pgmajfault: 0, shmem: 0, slab: 100_000, sock: 0, unevictable: 0, workingset_refault: 0,
      },
      limit: 8_217_579_520,
    },
    name: '/v2',
    id: 'f'.repeat(64),
  };
}

describe('frameResources', () => {
  it('cgroup v1: max_usage is the peak; total_usage in ns becomes seconds', () => {
    expect(frameResources(V1_FRAME)).toEqual({ peakMemoryBytes: 43_261_952, cpuSeconds: 0.178854238 });
  });

  it('cgroup v1 without max_usage: usage minus total_inactive_file, as docker stats shows it', () => {
    const { max_usage: _max, ...memory } = V1_FRAME.memory_stats;
    expect(frameResources({ ...V1_FRAME, memory_stats: memory }).peakMemoryBytes).toBe(23_515_136 - 966_656);
  });

  it('cgroup v2: usage minus inactive_file', () => {
    expect(frameResources(v2Frame(1_500_000_000, 90_000_000, 10_000_000))).toEqual({ peakMemoryBytes: 80_000_000, cpuSeconds: 1.5 });
  });

  it('an engine before 20.10 (only `cache`) takes the cache off; a cache as large as usage is not taken off', () => {
    expect(frameResources({ read: 'x', memory_stats: { usage: 5_000, stats: { cache: 1_000 } } }).peakMemoryBytes).toBe(4_000);
    expect(frameResources({ read: 'x', memory_stats: { usage: 5_000, stats: { inactive_file: 5_000 } } }).peakMemoryBytes).toBe(5_000);
    expect(frameResources({ read: 'x', memory_stats: { usage: 5_000 } }).peakMemoryBytes).toBe(5_000);
  });

  it('a stopped container\'s frame, no memory_stats, and values that are not numbers say nothing', () => {
    expect(frameResources(STOPPED_FRAME)).toEqual(noResources());
    expect(frameResources({ ...V1_FRAME, memory_stats: {} })).toEqual({ peakMemoryBytes: null, cpuSeconds: 0.178854238 });
    expect(frameResources({ read: 'x', memory_stats: { usage: '5' }, cpu_stats: { cpu_usage: { total_usage: null } } })).toEqual(noResources());
    for (const nothing of [null, 42, 'frame', [], {}]) expect(frameResources(nothing)).toEqual(noResources());
  });
});

describe('accumulateStats', () => {
  it('keeps the largest memory and CPU figures; zero frames after the stop change nothing', () => {
    const frames = [
      STOPPED_FRAME, // before the start
      v2Frame(100_000_000, 30_000_000, 1_000_000),
      v2Frame(1_100_000_000, 120_000_000, 2_000_000),
      v2Frame(2_300_000_000, 40_000_000, 2_000_000), // memory freed: the peak stays
      STOPPED_FRAME,
      STOPPED_FRAME,
    ];
    const input = noResources();
    const result = frames.reduce(accumulateStats, input);
    expect(result).toEqual({ peakMemoryBytes: 118_000_000, cpuSeconds: 2.3 });
    expect(input).toEqual(noResources());
  });

  it('stays null when no frame said anything', () => {
    expect([STOPPED_FRAME, STOPPED_FRAME].reduce(accumulateStats, noResources())).toEqual(noResources());
  });
});

describe('StatsStreamParser', () => {
  const stream = Buffer.from(
    [STOPPED_FRAME, V1_FRAME, { ...V1_FRAME, cpu_stats: { cpu_usage: { total_usage: 2_000_000_000 } }, memory_stats: { usage: 50_000_000, max_usage: 60_000_000 } }, STOPPED_FRAME]
      .map((frame) => `${JSON.stringify(frame)}\n`)
      .join(''),
  );
  const expected = { peakMemoryBytes: 60_000_000, cpuSeconds: 2 };

  it('gives the same figures for every split of the stream into two chunks, and for single bytes', () => {
    for (let cut = 0; cut <= stream.length; cut += 1) {
      const parser = new StatsStreamParser();
      parser.push(stream.subarray(0, cut));
      parser.push(stream.subarray(cut));
      parser.end();
      expect([parser.resources, parser.frames, parser.skipped], `cut at ${cut}`).toEqual([expected, 4, 0]);
    }
    const parser = new StatsStreamParser();
    for (const byte of stream) parser.push(Buffer.from([byte]));
    expect(parser.resources).toEqual(expected);
  });

  it('parses a last frame without a newline at the end, and skips lines that are not JSON or too long', () => {
    const parser = new StatsStreamParser();
    parser.push(Buffer.from('not json\n\r\n'));
    parser.push(Buffer.from(`{"read":"x","memory_stats":{"usage":${'1'.repeat(STATS_FRAME_MAX_BYTES)}}}\n`));
    parser.push(Buffer.from(JSON.stringify(V1_FRAME)));
    expect(parser.frames).toBe(0);
    parser.end();
    expect([parser.resources, parser.frames, parser.skipped]).toEqual([{ peakMemoryBytes: 43_261_952, cpuSeconds: 0.178854238 }, 1, 2]);
  });
});

/** A fake container whose stats stream and last read the test drives. */
function fakeContainer(lastRead: (options: { abortSignal?: AbortSignal }) => Promise<unknown>, openStream?: (options: { abortSignal?: AbortSignal }) => Promise<unknown>) {
  const stream = new PassThrough();
  const calls: Array<Record<string, unknown>> = [];
  const container = {
    id: 'c0ffee'.repeat(10) + 'abcd',
    stats(options: Record<string, unknown>) {
      calls.push({ ...options });
      const abortSignal = options.abortSignal as AbortSignal | undefined;
      if (options.stream === false) return lastRead({ abortSignal });
      return openStream ? openStream({ abortSignal }) : Promise.resolve(stream);
    },
  };
  return { container: container as unknown as Docker.Container, stream, calls };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('watchResources', () => {
  it('folds in the stream and one last one-shot read, and destroys the stream', async () => {
    const { container, stream, calls } = fakeContainer(async () => ({ ...V1_FRAME, cpu_stats: { cpu_usage: { total_usage: 3_000_000_000 } } }));
    const watch = watchResources(container);
    await tick();
    const line = Buffer.from(`${JSON.stringify(V1_FRAME)}\n`);
    stream.write(line.subarray(0, 100));
    stream.write(line.subarray(100));
    await tick();
    const stopped = watch.stop();
    expect(stream.destroyed).toBe(true);
    expect(await stopped).toEqual({ peakMemoryBytes: 43_261_952, cpuSeconds: 3 });
    expect(calls.map(({ abortSignal: _signal, ...rest }) => rest)).toEqual([{ stream: true }, { stream: false, 'one-shot': true }]);
    // Asking again gives the same figures without another read.
    expect(await watch.stop()).toEqual({ peakMemoryBytes: 43_261_952, cpuSeconds: 3 });
    expect(calls).toHaveLength(2);
  });

  it('a stream over ssh (its socket an ssh2 channel without unref) is read like any other, nothing thrown', async () => {
    const channel = new PassThrough();
    // ssh2's Channel: a duplex stream with no unref().
    const { container } = fakeContainer(async () => V1_FRAME, async () => Object.assign(channel, { socket: new PassThrough() }));
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const watch = watchResources(container);
      await tick();
      channel.write(`${JSON.stringify(V1_FRAME)}\n`);
      await tick();
      expect(await watch.stop()).toEqual({ peakMemoryBytes: 43_261_952, cpuSeconds: V1_FRAME.cpu_stats.cpu_usage.total_usage / 1e9 });
      await tick();
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('ignores a failed last read (the container is gone) and a stream that never opened', async () => {
    const gone = fakeContainer(() => Promise.reject(new Error('(HTTP code 404) no such container')));
    const watch = watchResources(gone.container);
    await tick();
    gone.stream.write(`${JSON.stringify(V1_FRAME)}\n${JSON.stringify(STOPPED_FRAME)}\n`);
    await tick();
    expect(await watch.stop()).toEqual({ peakMemoryBytes: 43_261_952, cpuSeconds: 0.178854238 });

    const refused = fakeContainer(() => Promise.reject(new Error('no')), () => Promise.reject(new Error('(HTTP code 500) server error')));
    expect(await watchResources(refused.container).stop()).toEqual(noResources());
  });

  it('bounds the last read and aborts its request', async () => {
    let lastReadSignal: AbortSignal | undefined;
    const { container } = fakeContainer(({ abortSignal }) => {
      lastReadSignal = abortSignal;
      return new Promise(() => undefined);
    });
    const started = Date.now();
    expect(await watchResources(container, { finalReadTimeoutMs: 50 }).stop()).toEqual(noResources());
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(lastReadSignal?.aborted).toBe(true);
  });

  it('aborts a stream request still pending at the stop', async () => {
    let streamSignal: AbortSignal | undefined;
    const { container } = fakeContainer(
      async () => STOPPED_FRAME,
      ({ abortSignal }) => {
        streamSignal = abortSignal;
        return new Promise((_, reject) => abortSignal?.addEventListener('abort', () => reject(new Error('aborted'))));
      },
    );
    expect(await watchResources(container).stop()).toEqual(noResources());
    expect(streamSignal?.aborted).toBe(true);
  });

  it('stops at once on the signal: the stream is destroyed and no last read is made', async () => {
    const { container, stream, calls } = fakeContainer(async () => V1_FRAME);
    const controller = new AbortController();
    const watch = watchResources(container, { signal: controller.signal });
    await tick();
    stream.write(`${JSON.stringify(v2Frame(500_000_000, 20_000_000, 0))}\n`);
    await tick();
    controller.abort();
    expect(stream.destroyed).toBe(true);
    expect(await watch.stop()).toEqual({ peakMemoryBytes: 20_000_000, cpuSeconds: 0.5 });
    expect(calls).toHaveLength(1);

    const never = fakeContainer(async () => V1_FRAME);
    expect(await watchResources(never.container, { signal: AbortSignal.abort() }).stop()).toEqual(noResources());
    expect(never.calls).toHaveLength(0);
  });
});

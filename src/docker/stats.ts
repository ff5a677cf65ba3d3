/**
 * What a container used, read through the Docker Engine API's `GET /containers/{id}/stats`: a stream of
 * newline-delimited JSON frames (one a second, from the daemon's stats collector) while it runs, and one
 * last `one-shot` read when the watch stops. The frames are the container's cgroup figures as the engine
 * reports them (API schema `ContainerStatsResponse`):
 *
 * - `memory_stats.usage`: cgroup v1 `memory.usage_in_bytes`, v2 `memory.current`, page cache included;
 * - `memory_stats.max_usage`: cgroup v1 `memory.max_usage_in_bytes`, the kernel's high-water mark of `usage`
 *   (page cache included); omitted on cgroup v2;
 * - `memory_stats.stats`: the cgroup's `memory.stat` keys — v1 `total_inactive_file` and `cache`, v2
 *   `inactive_file` — the page cache `docker stats` takes off `usage`;
 * - `cpu_stats.cpu_usage.total_usage`: CPU time of all its processes since it started, in nanoseconds
 *   (Linux containers; a Windows engine counts 100 ns units and is not read here).
 *
 * A container that is not running (not yet started, exited) gives frames with a zero `read` time, zero CPU
 * and an empty `memory_stats`: they are ignored. Once its processes exit the engine has no figures left (its
 * cgroup is gone), so the last figures are those of the last frame or read before the exit.
 */
import type { IncomingMessage } from 'node:http';
import type Docker from 'dockerode';
import createDebug from 'debug';
import { errorMessage } from '../errors.js';
import type { ContainerResources } from '../report/types.js';
import { ByteLineSplitter } from '../stream/lines.js';
import { withTimeout } from './client.js';

const log = createDebug('agent-worker:docker');

/** How long {@link ResourceWatch.stop}'s last read of the figures may take, in ms. */
export const STATS_FINAL_READ_TIMEOUT_MS = 2_000;
/**
 * Longest stats frame parsed, in bytes. A frame is 2–4 KiB (more with many CPUs in `percpu_usage` or many
 * network interfaces); a longer line is skipped, never held whole.
 */
export const STATS_FRAME_MAX_BYTES = 256 * 1024;

/** Zero time of a frame read from a container that is not running (Go's zero `time.Time`). */
const ZERO_READ_TIME = '0001-01-01T00:00:00Z';

/** Figures before any frame: nothing seen. */
export function noResources(): ContainerResources {
  return { peakMemoryBytes: null, cpuSeconds: null };
}

/** A finite number above zero, else null (absent, zero, negative, or not a number). */
function positive(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : null;
}

/** A finite number of zero or more, else null. */
function nonNegative(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : null;
}

function record(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/**
 * The figures of one stats frame (a parsed JSON object of the stats endpoint; any other value gives nulls):
 *
 * - `peakMemoryBytes`: cgroup v1 `memory_stats.max_usage` when present; else `memory_stats.usage` minus the
 *   page cache as `docker stats` computes it (docker/cli `calculateMemUsageUnixNoCache`): v1
 *   `stats.total_inactive_file`, v2 `stats.inactive_file`, engines before 20.10 `stats.cache` — the first
 *   present, taken off only when smaller than `usage`. Note that v1 `max_usage` includes page cache.
 * - `cpuSeconds`: `cpu_stats.cpu_usage.total_usage` (ns) in seconds.
 *
 * A frame of a container that is not running (zero `read` time) and zero or missing values give null.
 */
export function frameResources(frame: unknown): ContainerResources {
  const root = record(frame);
  if (!root || root.read === ZERO_READ_TIME) return noResources();
  const cpuNs = positive(record(record(root.cpu_stats)?.cpu_usage)?.total_usage);
  return { peakMemoryBytes: memoryBytes(record(root.memory_stats)), cpuSeconds: cpuNs === null ? null : cpuNs / 1e9 };
}

function memoryBytes(memory: Record<string, unknown> | null): number | null {
  if (!memory) return null;
  const maxUsage = positive(memory.max_usage);
  if (maxUsage !== null) return maxUsage;
  const usage = positive(memory.usage);
  if (usage === null) return null;
  const stats = record(memory.stats) ?? {};
  const cache = nonNegative(stats.total_inactive_file) ?? nonNegative(stats.inactive_file) ?? nonNegative(stats.cache);
  return cache !== null && cache < usage ? usage - cache : usage;
}

/** The larger of two figures, null only when both are. */
function larger(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

/**
 * Folds one stats frame into the figures so far: the largest memory figure of any frame
 * ({@link frameResources}) and the largest CPU time (a cumulative counter, so the latest). Pure: returns a new
 * object; a frame that says nothing (a stopped container's zeros, an unparsable value) leaves the figures as
 * they were.
 */
export function accumulateStats(acc: ContainerResources, frame: unknown): ContainerResources {
  const seen = frameResources(frame);
  return { peakMemoryBytes: larger(acc.peakMemoryBytes, seen.peakMemoryBytes), cpuSeconds: larger(acc.cpuSeconds, seen.cpuSeconds) };
}

/**
 * Reads the stats endpoint's byte stream: splits it into lines (a frame may arrive split across chunks;
 * a line longer than {@link STATS_FRAME_MAX_BYTES} is skipped), parses each as JSON and folds it in with
 * {@link accumulateStats}. Lines that are empty, cut or not JSON are counted in `skipped`.
 */
export class StatsStreamParser {
  /** The figures so far. */
  resources: ContainerResources = noResources();
  /** Frames parsed. */
  frames = 0;
  /** Lines that were not a whole JSON frame. */
  skipped = 0;
  private readonly splitter = new ByteLineSplitter((line, truncated) => this.line(line, truncated), STATS_FRAME_MAX_BYTES);

  /** Feeds a chunk of the stream; the chunk is not kept. */
  push(chunk: Buffer): void {
    this.splitter.push(chunk);
  }

  /** Parses a last frame that had no newline. */
  end(): void {
    this.splitter.end();
  }

  /** Folds in a frame read on its own (the non-stream read). */
  fold(frame: unknown): void {
    this.frames += 1;
    this.resources = accumulateStats(this.resources, frame);
  }

  private line(line: Buffer, truncated: boolean): void {
    if (line.length === 0) return;
    if (truncated) {
      this.skipped += 1;
      return;
    }
    let frame: unknown;
    try {
      frame = JSON.parse(line.toString('utf8'));
    } catch {
      this.skipped += 1;
      return;
    }
    this.fold(frame);
  }
}

/** A running watch of a container's resource use. */
export interface ResourceWatch {
  /**
   * Ends the stats stream, reads the figures one last time (a `one-shot` read bounded by
   * {@link STATS_FINAL_READ_TIMEOUT_MS}, skipped once `signal` aborted; its failure — e.g. the container is
   * gone — is ignored) and resolves with the figures: null for any the engine never gave. Never rejects;
   * later calls resolve with the same figures.
   *
   * Called while the container still runs, the last read has its figures up to that moment; called after it
   * exited, the read finds nothing (the cgroup is gone) and the figures are those of the stream's last frame,
   * up to a second before the exit.
   */
  stop(): Promise<ContainerResources>;
}

/** Options of {@link watchResources}. */
export interface WatchResourcesOptions {
  /** Stops the watch at once: the stream is destroyed and {@link ResourceWatch.stop} makes no last read. */
  signal?: AbortSignal;
  /** Bound of the last read, in ms (default {@link STATS_FINAL_READ_TIMEOUT_MS}). */
  finalReadTimeoutMs?: number;
}

/**
 * Starts watching what `container` uses: opens `GET /containers/{id}/stats?stream=true` right away and folds
 * in each frame as it arrives (see {@link StatsStreamParser}). Call it once the container is created or
 * started: frames before the start say nothing and are ignored. Figures come once a second, so a container
 * that runs for less than that may give none.
 *
 * Never throws, and never keeps the process alive: the stream's socket is unreferenced, and `stop()` (or the
 * signal) destroys it; a failure to open the stream is logged and leaves the figures null.
 *
 * @returns the watch; call {@link ResourceWatch.stop} once the container has ended, before removing it.
 */
export function watchResources(container: Docker.Container, options: WatchResourcesOptions = {}): ResourceWatch {
  const shortId = container.id.slice(0, 12);
  const parser = new StatsStreamParser();
  const streamRequest = new AbortController();
  let stream: IncomingMessage | undefined;
  let closed = false;
  let stopping: Promise<ContainerResources> | undefined;

  const close = (why: string): void => {
    if (closed) return;
    closed = true;
    options.signal?.removeEventListener('abort', onAbort);
    streamRequest.abort();
    if (stream) {
      stream.destroy();
      parser.end();
    }
    log('stats of %s: stream closed (%s) after %d frames', shortId, why, parser.frames);
  };
  const onAbort = (): void => close('aborted');

  if (options.signal?.aborted) {
    closed = true;
  } else {
    options.signal?.addEventListener('abort', onAbort, { once: true });
    log('stats of %s: opening the stream', shortId);
    const request = container.stats({ stream: true, abortSignal: streamRequest.signal } as { stream: true }) as Promise<unknown>;
    request.then(
      (opened) => {
        const response = opened as IncomingMessage;
        if (closed) {
          response.destroy();
          return;
        }
        stream = response;
        // Over ssh the socket is an ssh2 channel, which has no unref(): the stream is then ended by stop().
        const socket = response.socket as { unref?: unknown } | null | undefined;
        if (typeof socket?.unref === 'function') (socket as { unref(): void }).unref();
        response.on('data', (chunk: Buffer | string) => parser.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
        response.on('error', (error: unknown) => log('stats of %s: stream error: %s', shortId, errorMessage(error)));
        response.on('end', () => {
          parser.end();
          log('stats of %s: the engine ended the stream after %d frames', shortId, parser.frames);
        });
        log('stats of %s: stream open', shortId);
      },
      (error: unknown) => {
        if (!closed) log('stats of %s: cannot open the stream: %s', shortId, errorMessage(error));
      },
    )
      // Reading what a container used is never worth a run: nothing here may end the process.
      .catch((error: unknown) => log('stats of %s: %s', shortId, errorMessage(error)));
  }

  const finalRead = async (): Promise<void> => {
    const request = new AbortController();
    const timeoutMs = options.finalReadTimeoutMs ?? STATS_FINAL_READ_TIMEOUT_MS;
    log('stats of %s: last read', shortId);
    try {
      const frame = await withTimeout(
        container.stats({ stream: false, 'one-shot': true, abortSignal: request.signal } as { stream: false; 'one-shot': boolean }),
        timeoutMs,
        `the last stats of container ${shortId}`,
        options.signal,
      );
      parser.fold(frame);
      log('stats of %s: last read done', shortId);
    } catch (error) {
      log('stats of %s: last read failed: %s', shortId, errorMessage(error));
    } finally {
      request.abort();
    }
  };

  return {
    stop(): Promise<ContainerResources> {
      stopping ??= (async () => {
        const aborted = closed;
        close('stopped');
        if (!aborted) await finalRead();
        const { resources } = parser;
        log('stats of %s: %d frames (%d skipped): peak memory %s bytes, CPU %s s', shortId, parser.frames, parser.skipped, resources.peakMemoryBytes, resources.cpuSeconds);
        return resources;
      })().catch((error: unknown) => {
        log('stats of %s: %s', shortId, errorMessage(error));
        return parser.resources;
      });
      return stopping;
    },
  };
}

/**
 * The runner: one per process. It connects to each Docker daemon once, makes sure each image exists once (runs
 * that need the same image at the same time wait for one build), and sweeps containers left by dead runs once per
 * daemon. A run ({@link runTask}) owns only its repository, branch, container, abort signal and report; it borrows
 * all of this from the runner it is given (a single run makes its own).
 */
import createDebug from 'debug';
import { connectDocker, connectOptionsFor, type DockerConnection } from './docker/client.js';
import { ensureImage, imageContentHash, imageTag, type EnsuredImage, type ImageSpec } from './docker/image.js';
import { collectGarbage, type RemovedContainer } from './gc.js';
import type { RunConfig } from './config.js';

const log = createDebug('agent-worker:runner');

/** The settings that pick a daemon and how it is reached (RunConfig's). */
export type DaemonSettings = Pick<RunConfig, 'dockerHost' | 'tls' | 'insecureDocker' | 'sshKey'>;

/** Shares daemon connections, image builds and the leftover sweep between the runs of one process. */
export class Runner {
  private readonly connections = new Map<string, Promise<DockerConnection>>();
  private readonly images = new Map<string, Promise<EnsuredImage>>();
  private readonly sweeps = new Map<string, Promise<RemovedContainer[]>>();

  /**
   * @param env the process environment (HOME, DOCKER_* for the daemon).
   */
  constructor(private readonly env: NodeJS.ProcessEnv) {}

  /**
   * The connection to the daemon `settings` name: made on first use and shared after. A failed attempt is not kept:
   * the next call tries again.
   * @param signal aborts this caller's wait (and the attempt, when it is the one that started it).
   * @throws DockerError as connectDocker does.
   */
  connect(settings: DaemonSettings, signal?: AbortSignal): Promise<DockerConnection> {
    const key = daemonKey(settings);
    let connecting = this.connections.get(key);
    if (!connecting) {
      connecting = connectDocker(connectOptionsFor(settings, this.env, signal));
      this.connections.set(key, connecting);
      connecting.catch(() => {
        if (this.connections.get(key) === connecting) this.connections.delete(key);
      });
    }
    return connecting;
  }

  /**
   * Forgets the connection to a daemon (it was lost): the next {@link connect} makes a new one.
   */
  forget(settings: DaemonSettings): void {
    this.connections.delete(daemonKey(settings));
    log('forgot the connection to %s', daemonKey(settings));
  }

  /**
   * Makes sure the image of `spec` exists on the daemon, once per runner: the first caller builds it (or finds it
   * cached, or rebuilds it with `force`), callers at the same time wait for that, later callers get it at once.
   * Only the caller that did the work sees `built: true`; the others see the time they waited. A failed build is not
   * kept: the next caller tries again.
   * @throws ImageBuildError as ensureImage does.
   */
  async ensureImage(docker: DockerConnection, spec: ImageSpec, options: Omit<Parameters<typeof ensureImage>[2], 'contentHash'>): Promise<EnsuredImage> {
    const started = Date.now();
    const contentHash = await imageContentHash(spec);
    const key = `${docker.info.endpoint}\0${imageTag(contentHash, spec.repository)}`;
    const pending = this.images.get(key);
    if (pending) {
      const image = await pending;
      log('image %s shared', image.tag);
      return { ...image, built: false, durationMs: Date.now() - started };
    }
    const ensuring = ensureImage(docker.docker, spec, { ...options, contentHash });
    this.images.set(key, ensuring);
    ensuring.catch(() => {
      if (this.images.get(key) === ensuring) this.images.delete(key);
    });
    return ensuring;
  }

  /**
   * Removes containers left by agent-worker runs that died (kill -9), once per daemon and runner.
   * @returns the containers removed by the first sweep (later callers get the same list).
   * @throws the daemon's error; a failed sweep is tried again by the next caller.
   */
  sweep(docker: DockerConnection): Promise<RemovedContainer[]> {
    const key = docker.info.endpoint;
    let sweeping = this.sweeps.get(key);
    if (!sweeping) {
      sweeping = collectGarbage(docker.docker, { all: false });
      this.sweeps.set(key, sweeping);
      sweeping.catch(() => {
        if (this.sweeps.get(key) === sweeping) this.sweeps.delete(key);
      });
      return sweeping;
    }
    // Only the first caller reports what was removed.
    return sweeping.then(() => []);
  }
}

/** One key per daemon and the way it is reached. */
function daemonKey(settings: DaemonSettings): string {
  return JSON.stringify([settings.dockerHost ?? '', settings.tls.ca ?? '', settings.tls.cert ?? '', settings.tls.key ?? '', settings.insecureDocker, settings.sshKey ?? '']);
}

/**
 * Images for a swarm: the nodes run only what they can pull, so each image the manager built is pushed to the
 * registry the user names (`--registry host:port`) — by the manager's daemon, which must trust it (TLS, or its
 * `insecure-registries`) — and run by digest. An image already in the registry (`GET /distribution/{name}/json` on
 * the manager: the registry's answer, without pulling) is not pushed again; its tag is a content hash, so a tag
 * there is the same image.
 */
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import createDebug from 'debug';
import { DockerError, ExitCode, errorMessage } from '../../errors.js';

const log = createDebug('agent-worker:swarm');

/** `X-Registry-Auth` for a registry without authentication (the engine wants the header, even empty). */
const NO_AUTH = {};

/** `host:port` (or a host name) as Docker writes a registry in an image reference. */
const REGISTRY = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::\d{1,5})?$/;

/**
 * Checks a `--registry` value.
 * @returns the value without a trailing slash.
 * @throws Error naming the form when it is not `host[:port]` (a scheme or a path is refused).
 */
export function parseRegistry(value: string): string {
  const trimmed = value.trim().replace(/\/+$/, '');
  if (!REGISTRY.test(trimmed)) {
    throw new Error(`"${value}" is not a registry address: give host:port (e.g. registry.example.com:5000), without https:// or a path`);
  }
  return trimmed;
}

/** The reference of a local image `repo:tag` in `registry`. */
export function registryReference(registry: string, tag: string): string {
  return `${registry}/${tag}`;
}

/**
 * Makes `tag` (an image on the manager) pullable by the nodes: pushes it to `registry` unless the registry already
 * has it.
 * @returns `registry/repo:tag@sha256:…`, the reference the swarm's tasks run.
 * @throws DockerError (exit {@link ExitCode.docker}) naming the registry when the push fails (not trusted, not
 *   reachable from the manager, refused).
 */
export async function publishImage(docker: Docker, tag: string, registry: string, options: { signal?: AbortSignal } = {}): Promise<string> {
  const reference = registryReference(registry, tag);
  const present = await registryDigest(docker, reference);
  if (present) {
    log('image %s is in the registry (%s)', reference, present);
    return `${reference}@${present}`;
  }
  const started = Date.now();
  const colon = reference.lastIndexOf(':');
  try {
    await docker.getImage(tag).tag({ repo: reference.slice(0, colon), tag: reference.slice(colon + 1) });
  } catch (error) {
    throw new DockerError(`Tagging image ${tag} for the registry ${registry} failed: ${errorMessage(error)}`, ExitCode.docker, 'Run with --debug for details.', { cause: error });
  }
  const digest = await push(docker, reference, registry, options.signal);
  log('pushed %s (%s) in %d ms', reference, digest, Date.now() - started);
  return `${reference}@${digest}`;
}

/** The digest the registry has for `reference`, or undefined when it has none (or cannot say). */
async function registryDigest(docker: Docker, reference: string): Promise<string | undefined> {
  try {
    const info = (await docker.getImage(reference).distribution({ authconfig: NO_AUTH } as never)) as unknown as { Descriptor?: { digest?: string } };
    return info.Descriptor?.digest;
  } catch (error) {
    log('registry has no %s: %s', reference, errorMessage(error));
    return undefined;
  }
}

/** Pushes `reference` from the manager; resolves with the digest the registry gave it. */
async function push(docker: Docker, reference: string, registry: string, signal?: AbortSignal): Promise<string> {
  const failed = (why: string, cause?: unknown): DockerError =>
    new DockerError(
      `Pushing the image ${reference} to the registry ${registry} failed: ${why}`,
      ExitCode.docker,
      `The swarm's manager must reach ${registry} and trust it: TLS, or "insecure-registries": ["${registry}"] in its daemon.json. Check with \`docker push ${reference}\` on the manager.`,
      cause === undefined ? undefined : { cause },
    );
  let stream: Readable;
  try {
    stream = (await docker.getImage(reference).push({ authconfig: NO_AUTH, abortSignal: signal } as never)) as unknown as Readable;
  } catch (error) {
    throw failed(errorMessage(error), error);
  }
  return new Promise<string>((resolve, reject) => {
    let digest: string | undefined;
    let pushError: string | undefined;
    docker.modem.followProgress(
      stream,
      (error: Error | null) => {
        if (error) reject(failed(errorMessage(error), error));
        else if (pushError !== undefined) reject(failed(pushError));
        else if (!digest) reject(failed('the registry gave no digest'));
        else resolve(digest);
      },
      (event: { error?: string; errorDetail?: { message?: string }; aux?: { Digest?: string } }) => {
        if (event.error !== undefined) pushError = event.errorDetail?.message ?? event.error;
        if (event.aux?.Digest) digest = event.aux.Digest;
      },
    );
  });
}

/**
 * The agent's image: build context from `container/` (packed with tar-fs), a tag that is a hash of
 * everything that goes into the image, reuse when that tag exists, and a build whose errors are
 * read from the build stream itself.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { pack } from 'tar-fs';
import type Docker from 'dockerode';
import createDebug from 'debug';
import { ImageBuildError, errorMessage } from '../errors.js';
import { LABEL_CONTENT_HASH, LABEL_MANAGED, LABEL_VERSION } from './labels.js';

const log = createDebug('agent-worker:docker');

/** Repository part of every image tag. */
export const IMAGE_REPOSITORY = 'agent-worker';
/** Name of the CA file inside the build context (empty when no --ca-cert was given). */
export const CONTEXT_CA_FILE = 'extra-ca.crt';
/** How many lines of build output an {@link ImageBuildError} keeps. */
const BUILD_LOG_TAIL_LINES = 30;

/** Everything that goes into the image. */
export interface ImageSpec {
  /** Folder holding the Dockerfile and the in-container scripts. */
  contextDir: string;
  /** Dockerfile build args (base image, pinned agent CLI version, …). */
  buildArgs: Record<string, string>;
  /** Extra CA certificates (PEM) trusted in the image; empty string for none. */
  caPem: string;
  /** agent-worker's version, recorded as a label (not part of the hash). */
  toolVersion: string;
}

/** A file of the build context: its path relative to the context folder and its bytes. */
interface ContextFile {
  name: string;
  mode: number;
  data: Buffer;
}

async function readContextFiles(dir: string, prefix = ''): Promise<ContextFile[]> {
  const entries = await readdir(path.join(dir, prefix), { withFileTypes: true });
  const files: ContextFile[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const name = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) files.push(...(await readContextFiles(dir, name)));
    else if (entry.isFile()) {
      const full = path.join(dir, name);
      files.push({ name, mode: (await stat(full)).mode & 0o777, data: await readFile(full) });
    }
  }
  return files;
}

/**
 * The image's content hash: sha256 over the context files (names, exec bits, bytes), the build
 * args and the CA file. Hex, 64 characters.
 */
export async function imageContentHash(spec: ImageSpec): Promise<string> {
  const hash = createHash('sha256');
  hash.update('agent-worker-image-v1\0');
  for (const file of await readContextFiles(spec.contextDir)) {
    if (file.name === CONTEXT_CA_FILE) continue;
    hash.update(`${file.name}\0${file.mode & 0o111 ? 'x' : '-'}\0${file.data.length}\0`);
    hash.update(file.data);
  }
  const args = Object.keys(spec.buildArgs).sort().map((key) => [key, spec.buildArgs[key]]);
  hash.update(`args\0${JSON.stringify(args)}\0ca\0${spec.caPem.length}\0`);
  hash.update(spec.caPem);
  return hash.digest('hex');
}

/** The image tag for a content hash: `agent-worker:<first 16 hex digits>`. */
export function imageTag(contentHash: string): string {
  return `${IMAGE_REPOSITORY}:${contentHash.slice(0, 16)}`;
}

/** Progress of a build, one line of the daemon's build output at a time. */
export type BuildProgress = (line: string) => void;

/** Result of {@link ensureImage}. */
export interface EnsuredImage {
  tag: string;
  contentHash: string;
  /** True when the image was built now, false when an image with the tag was reused. */
  built: boolean;
  /** Time spent deciding and (maybe) building, in ms. */
  durationMs: number;
}

/**
 * Makes sure the image for `spec` exists on the daemon: reuses the tag when present (unless
 * `force`), else builds it from a tar-fs build context.
 * @throws ImageBuildError with the tail of the build log when the build reports an error entry,
 *   the stream fails, or `signal` aborts it.
 */
export async function ensureImage(
  docker: Docker,
  spec: ImageSpec,
  options: { force: boolean; onProgress?: BuildProgress; signal?: AbortSignal },
): Promise<EnsuredImage> {
  const started = Date.now();
  const contentHash = await imageContentHash(spec);
  const tag = imageTag(contentHash);
  if (!options.force && (await imageExists(docker, tag))) {
    log('image %s is cached', tag);
    return { tag, contentHash, built: false, durationMs: Date.now() - started };
  }
  log('building image %s (force=%s)', tag, options.force);
  await buildImage(docker, spec, tag, contentHash, options);
  return { tag, contentHash, built: true, durationMs: Date.now() - started };
}

async function imageExists(docker: Docker, tag: string): Promise<boolean> {
  try {
    await docker.getImage(tag).inspect();
    return true;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return false;
    throw error;
  }
}

async function buildImage(
  docker: Docker,
  spec: ImageSpec,
  tag: string,
  contentHash: string,
  options: { force: boolean; onProgress?: BuildProgress; signal?: AbortSignal },
): Promise<void> {
  const context = pack(spec.contextDir, {
    ignore: (name) => path.basename(name) === CONTEXT_CA_FILE,
    finalize: false,
    finish: (tarball) => {
      tarball.entry({ name: CONTEXT_CA_FILE, mode: 0o644 }, spec.caPem);
      tarball.finalize();
    },
  });
  const tail: string[] = [];
  const remember = (text: string): void => {
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > BUILD_LOG_TAIL_LINES) tail.shift();
      options.onProgress?.(line);
      log('build: %s', line);
    }
  };

  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, {
      t: tag,
      buildargs: spec.buildArgs,
      labels: { [LABEL_MANAGED]: 'true', [LABEL_VERSION]: spec.toolVersion, [LABEL_CONTENT_HASH]: contentHash },
      rm: true,
      forcerm: true,
      nocache: options.force,
      abortSignal: options.signal,
    } as Docker.ImageBuildOptions);
  } catch (error) {
    throw new ImageBuildError(`Building image ${tag} failed to start: ${errorMessage(error)}`, tail, { cause: error });
  }

  await new Promise<void>((resolve, reject) => {
    let buildError: string | undefined;
    const onAbort = (): void => {
      (stream as unknown as { destroy?: (error?: Error) => void }).destroy?.();
      reject(new ImageBuildError(`Building image ${tag} was interrupted.`, tail));
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    docker.modem.followProgress(
      stream,
      (error: Error | null) => {
        options.signal?.removeEventListener('abort', onAbort);
        if (options.signal?.aborted) return;
        if (error) reject(new ImageBuildError(`Building image ${tag} failed: ${errorMessage(error)}`, tail, { cause: error }));
        else if (buildError !== undefined) reject(new ImageBuildError(`Building image ${tag} failed: ${buildError}`, tail));
        else resolve();
      },
      (event: { stream?: string; status?: string; error?: string; errorDetail?: { message?: string } }) => {
        if (event.stream) remember(event.stream);
        else if (event.status) remember(event.status);
        if (event.error || event.errorDetail) {
          buildError = event.errorDetail?.message ?? event.error ?? 'unknown error';
          remember(buildError);
        }
      },
    );
  });

  // The stream's end without an error entry is not proof enough: the tag must now exist.
  if (!(await imageExists(docker, tag))) {
    throw new ImageBuildError(`Building image ${tag} ended without producing the image.`, tail);
  }
}

/**
 * The agent's image: build context from `container/` (packed with tar-fs), a tag that is a hash of
 * everything that goes into the image, reuse when that tag exists, and a build whose errors are
 * read from the build stream itself.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import type Docker from 'dockerode';
import createDebug from 'debug';
import { ImageBuildError, errorMessage } from '../errors.js';
import { LABEL_CONTENT_HASH, LABEL_MANAGED, LABEL_VERSION } from './labels.js';

const log = createDebug('agent-worker:docker');

/** Repository part of the tool's image tags. */
export const IMAGE_REPOSITORY = 'agent-worker';
/** Repository part of project image tags (built from a project's own Dockerfile, FROM the tool's image). */
export const PROJECT_IMAGE_REPOSITORY = 'agent-worker-project';
/** Build arg naming the tool's image in a project Dockerfile: `ARG AGENT_WORKER_IMAGE` + `FROM ${AGENT_WORKER_IMAGE}`. */
export const PROJECT_BASE_ARG = 'AGENT_WORKER_IMAGE';
/** Name of the CA file inside the build context (empty when no --ca-cert was given). */
export const CONTEXT_CA_FILE = 'extra-ca.crt';
/** How many lines of build output an {@link ImageBuildError} keeps. */
const BUILD_LOG_TAIL_LINES = 30;

/** Everything that goes into an image. */
export interface ImageSpec {
  /** The build context folder. */
  contextDir: string;
  /** The Dockerfile, relative to `contextDir`; default `Dockerfile`. */
  dockerfile?: string;
  /** Dockerfile build args (base image, pinned agent CLI version, …). */
  buildArgs: Record<string, string>;
  /**
   * Extra CA certificates (PEM) added to the context as {@link CONTEXT_CA_FILE} ('' = an empty file);
   * undefined = the context goes as it is (project images).
   */
  caPem?: string;
  /**
   * Files added to the context by name (a context file of the same name is replaced), contents as text, mode 0644:
   * e.g. the agent plugin's install script as `agent-install.sh`. Part of the hash.
   */
  extraFiles?: Record<string, string>;
  /** agent-worker's version, recorded as a label (not part of the hash). */
  toolVersion: string;
  /** Repository part of the tag; default {@link IMAGE_REPOSITORY}. */
  repository?: string;
  /**
   * A JSON file caching each context file's sha256 by its size, mtime, ctime and inode, so deciding
   * that an unchanged image is cached reads no file contents. Undefined = no cache.
   */
  hashCache?: string;
}

/** A file of the build context: its path relative to the context folder, exec bit and content digest. */
interface ContextFile {
  name: string;
  executable: boolean;
  sha256: string;
}

/** One cached digest: valid while the file's size, mtime, ctime and inode are unchanged. */
interface CachedDigest {
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
  sha256: string;
}

async function loadHashCache(file: string | undefined, contextDir: string): Promise<Map<string, CachedDigest>> {
  if (!file) return new Map();
  try {
    const all = JSON.parse(await readFile(file, 'utf8')) as Record<string, Record<string, CachedDigest>>;
    return new Map(Object.entries(all[contextDir] ?? {}));
  } catch {
    return new Map();
  }
}

async function saveHashCache(file: string, contextDir: string, entries: Map<string, CachedDigest>): Promise<void> {
  let all: Record<string, Record<string, CachedDigest>> = {};
  try {
    all = JSON.parse(await readFile(file, 'utf8')) as typeof all;
  } catch {
    // a missing or broken cache starts over
  }
  all[contextDir] = Object.fromEntries(entries);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(all), { mode: 0o600 });
  await rename(temp, file);
}

/**
 * Lists the context's regular files (sorted, recursively) with their digests, reading only files whose
 * stat differs from `cache`; `cache` is updated in place. Returns whether it changed.
 */
async function readContextFiles(dir: string, cache: Map<string, CachedDigest>): Promise<{ files: ContextFile[]; changed: boolean }> {
  const files: ContextFile[] = [];
  const seen = new Set<string>();
  let changed = false;
  const walk = async (prefix: string): Promise<void> => {
    const entries = await readdir(path.join(dir, prefix), { withFileTypes: true });
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const name = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        await walk(name);
        continue;
      }
      if (!entry.isFile()) continue;
      const full = path.join(dir, name);
      const info = await stat(full, { bigint: true });
      const key = { size: Number(info.size), mtimeNs: String(info.mtimeNs), ctimeNs: String(info.ctimeNs), ino: String(info.ino) };
      let cached = cache.get(name);
      if (!cached || cached.size !== key.size || cached.mtimeNs !== key.mtimeNs || cached.ctimeNs !== key.ctimeNs || cached.ino !== key.ino) {
        cached = { ...key, sha256: await fileDigest(full) };
        cache.set(name, cached);
        changed = true;
      }
      seen.add(name);
      files.push({ name, executable: (Number(info.mode) & 0o111) !== 0, sha256: cached.sha256 });
    }
  };
  await walk('');
  for (const name of cache.keys()) {
    if (!seen.has(name)) {
      cache.delete(name);
      changed = true;
    }
  }
  return { files, changed };
}

function fileDigest(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('error', reject)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/**
 * The image's content hash: sha256 over the context files (names, exec bits, contents' sha256), the
 * Dockerfile name, the build args and the CA file. Hex, 64 characters.
 */
export async function imageContentHash(spec: ImageSpec): Promise<string> {
  const cache = await loadHashCache(spec.hashCache, spec.contextDir);
  const { files, changed } = await readContextFiles(spec.contextDir, cache);
  if (changed && spec.hashCache) await saveHashCache(spec.hashCache, spec.contextDir, cache).catch((error: unknown) => log('hash cache: %s', errorMessage(error)));
  const hash = createHash('sha256');
  hash.update('agent-worker-image-v2\0');
  const extra = spec.extraFiles ?? {};
  for (const file of files) {
    if (spec.caPem !== undefined && file.name === CONTEXT_CA_FILE) continue;
    if (Object.hasOwn(extra, file.name)) continue;
    hash.update(`${file.name}\0${file.executable ? 'x' : '-'}\0${file.sha256}\0`);
  }
  for (const name of Object.keys(extra).sort()) {
    hash.update(`extra\0${name}\0${createHash('sha256').update(extra[name]!).digest('hex')}\0`);
  }
  const args = Object.keys(spec.buildArgs).sort().map((key) => [key, spec.buildArgs[key]]);
  hash.update(`dockerfile\0${spec.dockerfile ?? 'Dockerfile'}\0args\0${JSON.stringify(args)}\0`);
  if (spec.caPem !== undefined) hash.update(`ca\0${spec.caPem.length}\0${spec.caPem}`);
  return hash.digest('hex');
}

/** The image tag for a content hash: `<repository>:<first 16 hex digits>`. */
export function imageTag(contentHash: string, repository = IMAGE_REPOSITORY): string {
  return `${repository}:${contentHash.slice(0, 16)}`;
}

/**
 * Progress of a build: where it is, as one line made by {@link buildStepReader}
 * (`step 4/9 · RUN apt-get install … · <the step's latest output line>`), each time that changes.
 */
export type BuildProgress = (detail: string) => void;

/** A classic builder step line, `Step 4/9 : RUN apt-get install …` (moby's builder/dockerfile prints "Step %d/%d : %s"). */
const STEP_LINE = /^Step (\d+)\/(\d+) : (.*)$/;
/**
 * The classic builder's own lines around a step's output: ` ---> 1a2b3c4d`, ` ---> Running in …`,
 * ` ---> Using cache`, `Removing intermediate container …`, `Successfully built …`, `Successfully tagged …`.
 */
const BUILDER_LINE = /^(?:--->|Removing intermediate container |Successfully (?:built|tagged) )/;
/** Most characters of a step's instruction that {@link buildStepReader} keeps, so its output line can follow. */
const STEP_INSTRUCTION_CHARS = 32;

/**
 * Reads a classic-builder build's output (the `stream` and `status` entries of the daemon's JSON build
 * stream, one line at a time, without the newline) and says where the build is: the latest
 * `Step N/M : INSTRUCTION` as `step N/M · INSTRUCTION` (whitespace collapsed, the instruction cut to
 * {@link STEP_INSTRUCTION_CHARS} characters), then ` · ` and the step's latest output line. Escape
 * sequences (the builder wraps a RUN's stderr in `ESC[91m` … `ESC[0m`) are removed, and of a line
 * redrawn with `\r` only its last text is kept. BuildKit's progress (protobuf `aux` entries, only sent
 * with `version: '2'`, which agent-worker does not ask for) is not read.
 * @returns a function taking a line and returning the new detail, or undefined when the line changes
 *   nothing (blank, or the builder's own ` ---> …` lines).
 */
export function buildStepReader(): (line: string) => string | undefined {
  let step = '';
  let output = '';
  return (line) => {
    const segments = stripVTControlCharacters(line).split('\r').map((segment) => segment.replace(/\s+/g, ' ').trim());
    const text = segments.filter(Boolean).at(-1);
    if (!text || BUILDER_LINE.test(text)) return undefined;
    const match = STEP_LINE.exec(text);
    if (match) {
      const instruction = match[3]!;
      const short = instruction.length > STEP_INSTRUCTION_CHARS ? `${instruction.slice(0, STEP_INSTRUCTION_CHARS - 1)}…` : instruction;
      step = `step ${match[1]}/${match[2]} · ${short}`;
      output = '';
    } else {
      output = text;
    }
    return [step, output].filter(Boolean).join(' · ');
  };
}

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
  options: { force: boolean; onProgress?: BuildProgress; signal?: AbortSignal; contentHash?: string },
): Promise<EnsuredImage> {
  const started = Date.now();
  // The caller may have hashed the spec already (the runner does, to share one build between runs).
  const contentHash = options.contentHash ?? (await imageContentHash(spec));
  const tag = imageTag(contentHash, spec.repository);
  if (!options.force && (await imageExists(docker, tag))) {
    log('image %s is cached', tag);
    return { tag, contentHash, built: false, durationMs: Date.now() - started };
  }
  log('building image %s (force=%s)', tag, options.force);
  await buildImage(docker, spec, tag, contentHash, options);
  return { tag, contentHash, built: true, durationMs: Date.now() - started };
}

/** True when the daemon has an image tagged `tag`. @throws the daemon's error for anything but 404. */
export async function imageExists(docker: Docker, tag: string): Promise<boolean> {
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
  // The CA (when given) and the extra files are added to the folder's files, replacing any of the same name.
  const added: Record<string, string> = { ...(spec.caPem === undefined ? {} : { [CONTEXT_CA_FILE]: spec.caPem }), ...spec.extraFiles };
  // Loaded here: a run whose image is cached never needs it.
  const { pack } = await import('tar-fs');
  const context =
    Object.keys(added).length === 0
      ? pack(spec.contextDir)
      : pack(spec.contextDir, {
          ignore: (name) => Object.hasOwn(added, path.relative(spec.contextDir, name)),
          finalize: false,
          finish: (tarball) => {
            for (const [name, content] of Object.entries(added)) tarball.entry({ name, mode: 0o644 }, content);
            tarball.finalize();
          },
        });
  const tail: string[] = [];
  const readStep = buildStepReader();
  /** Keeps the lines of `text` for the error's tail and the debug log; `shown` (a pull's progress bar) only goes to the detail. */
  const remember = (text: string, shown?: string): void => {
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > BUILD_LOG_TAIL_LINES) tail.shift();
      const detail = readStep(shown ? `${line} ${shown}` : line);
      if (detail !== undefined) options.onProgress?.(detail);
      log('build: %s', line);
    }
  };

  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, {
      t: tag,
      dockerfile: spec.dockerfile ?? 'Dockerfile',
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
      (event: { stream?: string; status?: string; progress?: string; error?: string; errorDetail?: { message?: string } }) => {
        if (event.stream) remember(event.stream);
        else if (event.status) remember(event.status, event.progress);
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

/**
 * A second Docker daemon for integration tests: docker-in-docker on the local engine, standing in for a
 * remote host. It has its own filesystem and its own images, and serves the Docker API three ways:
 *  - tcp+TLS on 2376, published on 127.0.0.1 (client certs from a throwaway CA required);
 *  - plain, unauthenticated tcp on 2375, reached on the container's bridge IP (not published);
 *  - ssh on 22, published on 127.0.0.1 (root, key only; `docker system dial-stdio` works).
 *
 * The image is built from tests/fixtures/dind (tag = hash of that folder and the build args); see its
 * Dockerfile and start.sh for what runs inside. The inner daemon's /var/lib/docker is an anonymous volume
 * (removed with the container), so it uses the overlay2 storage driver (vfs copied a 1 GB image whole per layer
 * and per container: minutes per build, pull and removal). It puts its default bridge on 10.213.0.0/24, so
 * nested containers reach the outer bridge's gateway (172.17.0.1, where tests listen) through its NAT.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import createDebug from 'debug';
import Docker from 'dockerode';
import { pack as packFolder } from 'tar-fs';
import tarStream from 'tar-stream';
import { imageContentHash } from '../../src/docker/image.js';
import { docker as localDocker } from './docker.js';
import { removeDir, tempDir } from './git.js';

const log = createDebug('agent-worker:test-dind');

/** The build context of the dind image. */
export const DIND_CONTEXT_DIR = path.resolve(import.meta.dirname, '../fixtures/dind');
/** Label (name and value) on the dind image and every dind container; cleanup finds them by it. */
export const DIND_LABEL = 'dev.agent-worker.test';
export const DIND_LABEL_VALUE = 'dind';
/** Repository part of the dind image's tag; the tag is the first 16 hex digits of its content hash. */
export const DIND_IMAGE_REPOSITORY = 'agent-worker-test-dind';
/** Base image of the dind image and the image copied into the inner daemon by default. Must be local. */
export const DIND_BASE_IMAGE = 'debian:bookworm-slim';
/** The inner daemon's default bridge (dockerd --bip): gateway address / prefix length. */
export const DIND_INNER_BRIDGE = '10.213.0.1/24';
/** Inner daemon's TLS port and plain port, inside the container. */
export const DIND_TLS_PORT = 2376;
export const DIND_PLAIN_PORT = 2375;

/**
 * The capabilities the dind container gets, after dropping all: Docker's 14 default capabilities plus
 * SYS_ADMIN and NET_ADMIN. Measured on Docker 20.10 / cgroup v1 by leaving out one at a time: without
 * SYS_ADMIN or MKNOD image loads fail (mounts, device nodes in layers); without NET_ADMIN or NET_RAW
 * dockerd cannot set up iptables; without CHOWN or DAC_OVERRIDE dockerd does not start; without any of
 * the others runc cannot start a nested container with Docker's default capability set (a nested
 * container can only get capabilities this list has). `--privileged` is not an option on these
 * machines: it asks for CAP_SYS_RESOURCE, which the engine itself does not hold.
 */
export const DIND_CAPABILITIES = [
  'SYS_ADMIN',
  'NET_ADMIN',
  // Docker's default set, which nested containers get.
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'NET_RAW',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
];

/** A running dind container and every way to reach its daemon. */
export interface Dind {
  /** The dind container, on the local engine. */
  container: Docker.Container;
  /** The container's IPv4 address on the local engine's default bridge (not loopback). */
  ip: string;
  tls: {
    /** `tcp://127.0.0.1:PORT`, the published TLS port (server cert SAN: 127.0.0.1, localhost, `ip`). */
    host: string;
    /** The published host port of `host`. */
    port: number;
    /** Folder with ca.pem, cert.pem, key.pem in the Docker CLI's DOCKER_CERT_PATH layout. */
    certDir: string;
  };
  /**
   * Folder in the same layout whose ca.pem, cert.pem and key.pem come from an unrelated CA: the server
   * rejects its client cert, and its ca.pem fails to verify the server.
   */
  wrongCertDir: string;
  /** `tcp://<ip>:2375`: the inner daemon's API without TLS or authentication. */
  plainHost: string;
  ssh: {
    /** `ssh://root@127.0.0.1:PORT`. */
    url: string;
    /** The published host port of sshd. */
    port: number;
    /**
     * A temp HOME holding .ssh/id_ed25519 (+ .pub, no passphrase) and .ssh/known_hosts with the
     * container's host key for `[127.0.0.1]:PORT`. Only for code that reads `$HOME` (Node's
     * `os.homedir()`): OpenSSH's `ssh` takes ~ from the passwd entry, not from `$HOME`.
     */
    home: string;
    /** The known_hosts line: `[127.0.0.1]:PORT ssh-ed25519 <base64>`. */
    hostKeyLine: string;
  };
  /** dockerode client to the inner daemon over TLS. */
  inner: Docker;
  /** How long the parts of {@link startDind} took, in ms. */
  timings: DindTimings;
  /** Removes the container (force) and the temp folders. Safe to call again, or concurrently. */
  stop(): Promise<void>;
}

/** Durations of {@link startDind}'s steps, in ms. */
export interface DindTimings {
  /** Finding or building the dind image; `imageBuilt` says which. */
  imageMs: number;
  imageBuilt: boolean;
  /** From creating the container to the inner daemon answering a ping over TLS. */
  readyMs: number;
  /** Copying the images named in `loadImages` into the inner daemon. */
  loadMs: number;
  /** All of {@link startDind}. */
  totalMs: number;
}

/** Options of {@link startDind}. */
export interface StartDindOptions {
  /** Images on the local engine to copy into the inner daemon. Default: [{@link DIND_BASE_IMAGE}]. */
  loadImages?: string[];
  /** How long to wait for the inner daemon to answer, in ms. Default 60 000. */
  readyTimeoutMs?: number;
  /**
   * Value of {@link DIND_LABEL} on the container. Default {@link DIND_LABEL_VALUE}. Harnesses built on this
   * one (tests/helpers/swarm.ts) set their own, so that checks and sweeps of plain dind containers
   * ({@link removeDindContainers}) leave theirs alone.
   */
  labelValue?: string;
}

/**
 * Builds (or reuses) the dind image, starts a dind container on the local engine, waits until its
 * inner daemon answers over TLS, copies `options.loadImages` into it and writes the client-side TLS
 * and ssh material into a temp folder.
 * @throws Error when the base image is not on the local engine, the build fails (with the log's
 *   tail), the container exits or does not answer within `readyTimeoutMs` (with its log's tail), or an
 *   image load fails. Whatever was created is removed before the error is rethrown.
 */
export async function startDind(options: StartDindOptions = {}): Promise<Dind> {
  const started = Date.now();
  const image = await ensureDindImage(localDocker);
  const dir = tempDir('aw-dind-');
  let container: Docker.Container | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    // Concurrent calls share one removal; a failed one may be tried again.
    stopping ??= (async () => {
      if (container) await removeContainer(container);
      removeDir(dir);
    })().catch((error: unknown) => {
      stopping = undefined;
      throw error;
    });
    return stopping;
  };

  try {
    const material = makeClientMaterial(dir);
    const createdAt = Date.now();
    container = await localDocker.createContainer({
      Image: image.tag,
      Labels: { [DIND_LABEL]: options.labelValue ?? DIND_LABEL_VALUE },
      Env: [`DIND_BIP=${DIND_INNER_BRIDGE}`],
      ExposedPorts: { '22/tcp': {}, [`${DIND_TLS_PORT}/tcp`]: {}, [`${DIND_PLAIN_PORT}/tcp`]: {} },
      HostConfig: {
        CapDrop: ['ALL'],
        CapAdd: DIND_CAPABILITIES,
        SecurityOpt: ['seccomp=unconfined', 'apparmor=unconfined'],
        Binds: ['/sys/fs/cgroup:/sys/fs/cgroup'],
        // The inner daemon's storage on the outer host's filesystem (not this container's overlayfs root), so it
        // can use overlay2; removed with the container (`v: true`).
        Mounts: [{ Type: 'volume', Source: '', Target: '/var/lib/docker' }],
        PortBindings: {
          [`${DIND_TLS_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }],
          '22/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }],
        },
      },
    });
    const short = container.id.slice(0, 12);
    log('created dind container %s from %s', short, image.tag);
    await container.putArchive(await tarOf(material.input), { path: '/run/dind-input' });
    await container.start();
    const info = await container.inspect();
    const ip = info.NetworkSettings.Networks.bridge?.IPAddress;
    if (!ip) throw new Error('the dind container has no address on the default bridge');
    const tlsPort = publishedPort(info, `${DIND_TLS_PORT}/tcp`);
    const sshPort = publishedPort(info, '22/tcp');
    log('dind %s started: ip %s, tls 127.0.0.1:%d, ssh 127.0.0.1:%d', short, ip, tlsPort, sshPort);

    const inner = new Docker({
      protocol: 'https',
      host: '127.0.0.1',
      port: tlsPort,
      ca: readFileSync(path.join(material.certDir, 'ca.pem')),
      cert: readFileSync(path.join(material.certDir, 'cert.pem')),
      key: readFileSync(path.join(material.certDir, 'key.pem')),
    });
    await waitForInnerDaemon(container, inner, tlsPort, options.readyTimeoutMs ?? 60_000);
    const readyMs = Date.now() - createdAt;
    log('dind %s ready after %d ms', short, readyMs);

    const loadStarted = Date.now();
    for (const name of options.loadImages ?? [DIND_BASE_IMAGE]) await copyImage(localDocker, inner, name);
    const loadMs = Date.now() - loadStarted;

    const hostKey = (await readContainerFile(container, '/etc/ssh/ssh_host_ed25519_key.pub')).toString('utf8').trim();
    const [keyType, keyData] = hostKey.split(/\s+/);
    if (!keyType || !keyData) throw new Error(`the dind container's ssh host key is malformed: ${JSON.stringify(hostKey)}`);
    const hostKeyLine = `[127.0.0.1]:${sshPort} ${keyType} ${keyData}`;
    writeFileSync(path.join(material.sshHome, '.ssh', 'known_hosts'), `${hostKeyLine}\n`, { mode: 0o600 });

    const totalMs = Date.now() - started;
    log('dind %s up in %d ms (image %d ms, built=%s; ready %d ms; load %d ms)', short, totalMs, image.durationMs, image.built, readyMs, loadMs);
    return {
      container,
      ip,
      tls: { host: `tcp://127.0.0.1:${tlsPort}`, port: tlsPort, certDir: material.certDir },
      wrongCertDir: material.wrongCertDir,
      plainHost: `tcp://${ip}:${DIND_PLAIN_PORT}`,
      ssh: { url: `ssh://root@127.0.0.1:${sshPort}`, port: sshPort, home: material.sshHome, hostKeyLine },
      inner,
      timings: { imageMs: image.durationMs, imageBuilt: image.built, readyMs, loadMs, totalMs },
      stop,
    };
  } catch (error) {
    await stop().catch((cleanupError: unknown) => log('cleanup after a failed start failed: %O', cleanupError));
    throw error;
  }
}

/**
 * Removes every container labelled {@link DIND_LABEL}={@link DIND_LABEL_VALUE} on the local engine
 * (leftovers of an interrupted run). Resolves to how many were removed.
 */
export async function removeDindContainers(docker: Docker = localDocker): Promise<number> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${DIND_LABEL}=${DIND_LABEL_VALUE}`] } });
  for (const info of containers) await removeContainer(docker.getContainer(info.Id));
  return containers.length;
}

/**
 * Copies image `name` from one daemon to another without a registry: `from`'s `docker save` stream
 * into `to`'s `docker load`.
 * @throws Error when the image is missing on `from` or the load reports an error.
 */
export async function copyImage(from: Docker, to: Docker, name: string): Promise<void> {
  const started = Date.now();
  let response: NodeJS.ReadableStream;
  try {
    response = await to.loadImage(await from.getImage(name).get(), { quiet: true });
  } catch (error) {
    throw new Error(`copying image ${name} to the other daemon failed (is it on the source engine?): ${String(error)}`, { cause: error });
  }
  await followStream(to, response, `loading ${name} into the other daemon`);
  log('copied image %s in %d ms', name, Date.now() - started);
}

/** Result of {@link ensureDindImage}. */
export interface DindImage {
  tag: string;
  /** True when the image was built now, false when the tag was already there. */
  built: boolean;
  /** In ms. */
  durationMs: number;
}

/**
 * Makes sure the dind image exists on `docker`: the tag `agent-worker-test-dind:<hash>` is reused when
 * present, else built from {@link DIND_CONTEXT_DIR} with the classic builder (no registry needed).
 * @throws Error when {@link DIND_BASE_IMAGE} is not on the engine, or the build fails (with the tail of
 *   the build log).
 */
export async function ensureDindImage(docker: Docker): Promise<DindImage> {
  const started = Date.now();
  const buildArgs = { BASE_IMAGE: DIND_BASE_IMAGE };
  const hash = await imageContentHash({ contextDir: DIND_CONTEXT_DIR, buildArgs, caPem: '', toolVersion: '' });
  const tag = `${DIND_IMAGE_REPOSITORY}:${hash.slice(0, 16)}`;
  if (await imageExists(docker, tag)) {
    log('dind image %s is cached', tag);
    return { tag, built: false, durationMs: Date.now() - started };
  }
  if (!(await imageExists(docker, DIND_BASE_IMAGE))) {
    throw new Error(`the dind image needs ${DIND_BASE_IMAGE} on the local engine (no registry is reachable): docker load or pull it first`);
  }
  log('building dind image %s', tag);
  const stream = await docker.buildImage(packFolder(DIND_CONTEXT_DIR) as unknown as NodeJS.ReadableStream, {
    t: tag,
    buildargs: buildArgs,
    labels: { [DIND_LABEL]: DIND_LABEL_VALUE },
    rm: true,
    forcerm: true,
  });
  await followStream(docker, stream, `building ${tag}`);
  if (!(await imageExists(docker, tag))) throw new Error(`building ${tag} ended without producing the image`);
  const durationMs = Date.now() - started;
  log('built dind image %s in %d ms', tag, durationMs);
  return { tag, built: true, durationMs };
}

/** Files made on the host for one dind container: what goes in, and what the client keeps. */
interface ClientMaterial {
  /** Uploaded to /run/dind-input: file name → content. */
  input: Record<string, Buffer>;
  certDir: string;
  wrongCertDir: string;
  sshHome: string;
}

/**
 * Under `dir`: a throwaway CA (its key goes to the container, which signs its own server cert once
 * its address is known), a client cert of it in certDir, an unrelated CA and its client cert in
 * wrongCertDir, and an ed25519 ssh key in sshHome/.ssh. EC P-256 keys: quick to make.
 */
function makeClientMaterial(dir: string): ClientMaterial {
  const ca = makeCa(path.join(dir, 'ca'), 'agent-worker test dind CA');
  const certDir = makeClientCert(path.join(dir, 'client'), ca);
  const wrongCa = makeCa(path.join(dir, 'wrong-ca'), 'agent-worker unrelated CA');
  const wrongCertDir = makeClientCert(path.join(dir, 'wrong-client'), wrongCa);

  const sshHome = path.join(dir, 'home');
  const sshDir = path.join(sshHome, '.ssh');
  mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  chmodSync(sshHome, 0o700);
  const keyFile = path.join(sshDir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'agent-worker-test', '-f', keyFile], { stdio: 'pipe' });

  return {
    input: {
      'ca.pem': readFileSync(ca.cert),
      'ca-key.pem': readFileSync(ca.key),
      authorized_keys: readFileSync(`${keyFile}.pub`),
    },
    certDir,
    wrongCertDir,
    sshHome,
  };
}

interface Ca {
  cert: string;
  key: string;
}

function makeCa(dir: string, commonName: string): Ca {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = { cert: path.join(dir, 'ca.pem'), key: path.join(dir, 'ca-key.pem') };
  openssl(['req', '-x509', ...EC_KEY, '-nodes', '-days', '2', '-subj', `/CN=${commonName}`, '-keyout', ca.key, '-out', ca.cert]);
  return ca;
}

/** A folder with ca.pem (of `ca`), cert.pem and key.pem (a client cert `ca` signed). */
function makeClientCert(dir: string, ca: Ca): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const csr = path.join(dir, 'client.csr');
  const ext = path.join(dir, 'client.ext');
  openssl(['req', '-new', ...EC_KEY, '-nodes', '-subj', '/CN=agent-worker-test-client', '-keyout', path.join(dir, 'key.pem'), '-out', csr]);
  writeFileSync(ext, 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n');
  openssl([
    'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '2', '-extfile', ext, '-out', path.join(dir, 'cert.pem'),
  ]);
  writeFileSync(path.join(dir, 'ca.pem'), readFileSync(ca.cert));
  rmSync(csr);
  rmSync(ext);
  return dir;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

/** Polls the inner daemon's `/_ping` over TLS until it answers; fails early when the container exits. */
async function waitForInnerDaemon(container: Docker.Container, inner: Docker, port: number, timeoutMs: number): Promise<void> {
  const what = `the inner Docker daemon to answer /_ping over TLS on 127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      await inner.ping();
      return;
    } catch (error) {
      lastError = error;
    }
    const state = (await container.inspect()).State;
    if (!state.Running) {
      throw new Error(`the dind container exited (code ${state.ExitCode}) while waiting for ${what}; its log ends:\n${await logTail(container)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last error: ${String(lastError)}); the dind log ends:\n${await logTail(container)}`, {
        cause: lastError,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The last lines of a non-TTY container's stdout and stderr (Docker's multiplexed log frames). */
async function logTail(container: Docker.Container, lines = 30): Promise<string> {
  const raw = (await container.logs({ stdout: true, stderr: true, tail: lines, follow: false })) as unknown as Buffer;
  const parts: Buffer[] = [];
  for (let offset = 0; offset + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(offset + 4);
    parts.push(raw.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(parts).toString('utf8');
}

/** One file's bytes from a container, via the archive endpoint (`docker cp`). */
async function readContainerFile(container: Docker.Container, file: string): Promise<Buffer> {
  const archive = await container.getArchive({ path: file });
  const extract = tarStream.extract();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (_header, stream, next) => {
      stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
      stream.on('end', next);
      stream.resume();
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  archive.pipe(extract);
  await done;
  return Buffer.concat(chunks);
}

/** A tar archive (Buffer) of `files` (name → content), each mode 0600. */
async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o600 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function publishedPort(info: Docker.ContainerInspectInfo, port: string): number {
  const hostPort = info.NetworkSettings.Ports[port]?.[0]?.HostPort;
  if (!hostPort) throw new Error(`the dind container has no published host port for ${port}`);
  return Number(hostPort);
}

/** Reads a daemon's JSON-lines progress stream (build, load) to its end. @throws on an error entry. */
export async function followStream(docker: Docker, stream: NodeJS.ReadableStream, what: string): Promise<void> {
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let failure: string | undefined;
    docker.modem.followProgress(
      stream,
      (error: Error | null) => {
        if (error) reject(new Error(`${what} failed: ${error.message}\n${tail.join('\n')}`, { cause: error }));
        else if (failure !== undefined) reject(new Error(`${what} failed: ${failure}\n${tail.join('\n')}`));
        else resolve();
      },
      (event: { stream?: string; status?: string; error?: string; errorDetail?: { message?: string } }) => {
        for (const line of (event.stream ?? event.status ?? '').split('\n')) {
          if (!line.trim()) continue;
          tail.push(line);
          if (tail.length > 30) tail.shift();
          log('%s: %s', what, line);
        }
        if (event.error || event.errorDetail) failure = event.errorDetail?.message ?? event.error;
      },
    );
  });
}

/** Whether image `name` (tag or id) is on `docker`; a 404 is false, any other error is thrown. */
export async function imageExists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return false;
    throw error;
  }
}

/** Force-removes a container with its anonymous volumes; a missing one, or one already being removed, is fine. */
async function removeContainer(container: Docker.Container): Promise<void> {
  const short = container.id.slice(0, 12);
  log('removing dind container %s', short);
  try {
    await container.remove({ force: true, v: true });
    log('removed dind container %s', short);
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 404 || status === 409) log('dind container %s already gone or going (%d)', short, status);
    else throw error;
  }
}

/**
 * The docker-in-docker harness (tests/helpers/dind.ts) that stands in for a remote Docker host: its
 * daemon answers over TLS (and refuses a stranger's cert), over plain tcp and over ssh; its nested
 * containers reach the outer bridge's gateway through NAT; its filesystem is not the host's; and
 * stop() leaves nothing behind.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import createDebug from 'debug';
import Docker from 'dockerode';
import tarStream from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIND_BASE_IMAGE, DIND_LABEL, DIND_LABEL_VALUE, type Dind, startDind } from '../helpers/dind.js';
import { bridgeGateway, docker, dockerAvailable } from '../helpers/docker.js';
import { ENTRYPOINT_CAPABILITIES } from '../../src/docker/container.js';

const log = createDebug('agent-worker:test-dind');
const hasDocker = await dockerAvailable();
const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

/** A dockerode client over TLS with the files of a DOCKER_CERT_PATH-style folder. */
function tlsClient(port: number, files: { ca: string; cert: string; key: string }): Docker {
  return new Docker({
    protocol: 'https',
    host: '127.0.0.1',
    port,
    ca: readFileSync(files.ca),
    cert: readFileSync(files.cert),
    key: readFileSync(files.key),
    timeout: 10_000,
  });
}

/** Runs `cmd` in a new container of `image` on `daemon`, removes it, and returns its exit code and output. */
async function runIn(daemon: Docker, cmd: string[], hostConfig: Docker.HostConfig = {}): Promise<{ code: number; output: string }> {
  const container = await daemon.createContainer({ Image: DIND_BASE_IMAGE, Cmd: cmd, Tty: true, HostConfig: hostConfig });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const output = ((await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer).toString('utf8');
    return { code: StatusCode, output };
  } finally {
    await container.remove({ force: true });
  }
}

describe.runIf(hasDocker)('docker-in-docker test harness', { timeout: 120_000 }, () => {
  let dind: Dind;

  beforeAll(async () => {
    dind = await startDind();
    log('timings: %o', dind.timings);
  }, 600_000);

  afterAll(async () => {
    await dind?.stop();
  });

  it('answers ping and version over TLS with the client cert', async () => {
    expect((await dind.inner.ping()).toString()).toBe('OK');
    const version = await dind.inner.version();
    expect(version.Version).toMatch(/^\d+\.\d+/);
    const info = (await dind.inner.info()) as { Driver: string; Name: string };
    // Its storage is a volume on the host's filesystem, so overlay2 stacks (on the container's own overlayfs it would not).
    expect(info.Driver).toBe('overlay2');
    // Another daemon than the outer one.
    expect(info.Name).not.toBe(((await docker.info()) as { Name: string }).Name);
    expect(dind.tls.host).toBe(`tcp://127.0.0.1:${dind.tls.port}`);
    for (const file of ['ca.pem', 'cert.pem', 'key.pem']) expect(existsSync(path.join(dind.tls.certDir, file))).toBe(true);
  });

  it('refuses a client cert from an unrelated CA, and an unrelated CA fails to verify the server', async () => {
    const right = dind.tls.certDir;
    const wrong = dind.wrongCertDir;
    // The server rejects the stranger's client cert (the client trusts the right CA).
    const strangerCert = tlsClient(dind.tls.port, { ca: path.join(right, 'ca.pem'), cert: path.join(wrong, 'cert.pem'), key: path.join(wrong, 'key.pem') });
    await expect(strangerCert.ping()).rejects.toThrow();
    // The client, trusting only the unrelated CA, rejects the server's cert.
    const strangerCa = tlsClient(dind.tls.port, { ca: path.join(wrong, 'ca.pem'), cert: path.join(wrong, 'cert.pem'), key: path.join(wrong, 'key.pem') });
    await expect(strangerCa.ping()).rejects.toThrow(/certificate/i);
    // No client cert at all.
    const anonymous = new Docker({ protocol: 'https', host: '127.0.0.1', port: dind.tls.port, ca: readFileSync(path.join(right, 'ca.pem')), timeout: 10_000 });
    await expect(anonymous.ping()).rejects.toThrow();
  });

  it('serves the server cert for the container IP too', async () => {
    const byIp = new Docker({
      protocol: 'https',
      host: dind.ip,
      port: 2376,
      ca: readFileSync(path.join(dind.tls.certDir, 'ca.pem')),
      cert: readFileSync(path.join(dind.tls.certDir, 'cert.pem')),
      key: readFileSync(path.join(dind.tls.certDir, 'key.pem')),
      timeout: 10_000,
    });
    expect((await byIp.ping()).toString()).toBe('OK');
  });

  it('serves the plain API without TLS on the container IP', async () => {
    expect(dind.ip).not.toMatch(/^127\./);
    const url = new URL(dind.plainHost);
    expect(url.hostname).toBe(dind.ip);
    const plain = new Docker({ protocol: 'http', host: url.hostname, port: Number(url.port), timeout: 10_000 });
    expect((await plain.ping()).toString()).toBe('OK');
  });

  it('answers dockerode over ssh (docker system dial-stdio)', async () => {
    const home = dind.ssh.home;
    const url = new URL(dind.ssh.url);
    expect(url.hostname).toBe('127.0.0.1');
    const overSsh = new Docker({
      protocol: 'ssh',
      host: url.hostname,
      port: Number(url.port),
      username: 'root',
      sshOptions: { privateKey: readFileSync(path.join(home, '.ssh', 'id_ed25519')) },
    });
    expect((await overSsh.ping()).toString()).toBe('OK');
    expect((await overSsh.version()).Version).toBe((await dind.inner.version()).Version);
  });

  it('writes known_hosts that OpenSSH accepts with strict host key checking', () => {
    const sshDir = path.join(dind.ssh.home, '.ssh');
    expect(readFileSync(path.join(sshDir, 'known_hosts'), 'utf8')).toBe(`${dind.ssh.hostKeyLine}\n`);
    expect(dind.ssh.hostKeyLine).toMatch(new RegExp(`^\\[127\\.0\\.0\\.1\\]:${dind.ssh.port} ssh-ed25519 \\S+$`));
    // OpenSSH takes ~ from the passwd entry, not $HOME: point it at the files explicitly.
    const output = execFileSync(
      'ssh',
      [
        '-F', '/dev/null',
        '-o', 'BatchMode=yes',
        '-o', 'StrictHostKeyChecking=yes',
        '-o', `UserKnownHostsFile=${path.join(sshDir, 'known_hosts')}`,
        '-o', 'IdentitiesOnly=yes',
        '-i', path.join(sshDir, 'id_ed25519'),
        '-p', String(dind.ssh.port),
        'root@127.0.0.1',
        'docker', 'version', '--format', '{{.Server.Version}}',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 },
    );
    expect(output.trim()).toMatch(/^\d+\.\d+/);
  });

  it('lets a nested container reach a TCP server on the outer bridge gateway through NAT', async () => {
    const gateway = await bridgeGateway();
    const token = randomBytes(8).toString('hex');
    const server = net.createServer((socket) => socket.end(`pong ${token}\n`));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, gateway, resolve);
    });
    try {
      const port = (server.address() as net.AddressInfo).port;
      // bash's /dev/tcp: the slim base image has no curl or nc. The agent container's own security
      // settings, to show the inner daemon takes them.
      const script = `hostname -I; getent hosts host.docker.internal; exec 3<>/dev/tcp/${gateway}/${port} && head -1 <&3`;
      const { code, output } = await runIn(dind.inner, ['bash', '-c', script], {
        CapDrop: ['ALL'],
        CapAdd: ENTRYPOINT_CAPABILITIES,
        SecurityOpt: ['no-new-privileges'],
        ExtraHosts: ['host.docker.internal:host-gateway'],
      });
      expect(code, output).toBe(0);
      expect(output).toContain(`pong ${token}`);
      // The nested container is on the inner bridge (--bip), not on the outer 172.17.0.0/16, and
      // host-gateway is the inner bridge's gateway (the dind container), not the outer host.
      expect(output).toMatch(/^10\.213\.0\.\d+/);
      expect(output).toMatch(/^10\.213\.0\.1\s+host\.docker\.internal/m);
    } finally {
      server.close();
    }
  });

  it('has its own filesystem: a bind of a host-only path is empty there', async () => {
    expect(existsSync(path.join(REPO_ROOT, 'package.json'))).toBe(true);
    const { code, output } = await runIn(dind.inner, ['sh', '-c', 'ls -A /probe | wc -l; test -e /probe/package.json && echo present || echo absent'], {
      Binds: [`${REPO_ROOT}:/probe:ro`],
    });
    expect(code, output).toBe(0);
    expect(output.split(/\r?\n/).map((line) => line.trim())).toEqual(['0', 'absent', '']);
  });

  it('builds a small image FROM the loaded base image, without a registry', async () => {
    const pack = tarStream.pack();
    pack.entry({ name: 'Dockerfile' }, `FROM ${DIND_BASE_IMAGE}\nRUN echo built > /built\nCOPY marker /marker\n`);
    pack.entry({ name: 'marker' }, 'marker\n');
    pack.finalize();
    const tag = `aw-dind-probe:${randomBytes(4).toString('hex')}`;
    const started = Date.now();
    const stream = await dind.inner.buildImage(pack as unknown as NodeJS.ReadableStream, { t: tag, rm: true, forcerm: true });
    const events = await new Promise<Array<{ error?: string }>>((resolve, reject) =>
      dind.inner.modem.followProgress(stream, (error: Error | null, result: Array<{ error?: string }>) => (error ? reject(error) : resolve(result))),
    );
    log('inner build of a two-step image took %d ms', Date.now() - started);
    expect(events.filter((event) => event.error)).toEqual([]);
    const image = await dind.inner.getImage(tag).inspect();
    expect(image.RepoTags).toContain(tag);
    await dind.inner.getImage(tag).remove({ force: true });
    // The image lives on the inner daemon only.
    await expect(docker.getImage(tag).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('stop() leaves no container on either daemon and can be repeated', async () => {
    expect(await dind.inner.listContainers({ all: true })).toEqual([]);
    const id = dind.container.id;
    await dind.stop();
    await dind.stop();
    expect(await docker.listContainers({ all: true, filters: { label: [`${DIND_LABEL}=${DIND_LABEL_VALUE}`] } })).toEqual([]);
    await expect(docker.getContainer(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(existsSync(dind.ssh.home)).toBe(false);
    expect(existsSync(dind.tls.certDir)).toBe(false);
  });
});

import { afterAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { modemOptions, resolveEndpoint, type DockerConnectOptions } from '../../src/docker/client.js';
import { AgentWorkerError } from '../../src/errors.js';
import { removeDir, tempDir } from '../helpers/git.js';

const home = tempDir('aw-home-');
afterAll(() => removeDir(home));

function options(overrides: Partial<DockerConnectOptions> = {}): DockerConnectOptions {
  return { tls: {}, insecure: false, env: {}, home, ...overrides };
}

function writeContext(configDir: string, name: string, host: string, tls = false): void {
  const id = createHash('sha256').update(name).digest('hex');
  mkdirSync(path.join(configDir, 'contexts', 'meta', id), { recursive: true });
  writeFileSync(path.join(configDir, 'contexts', 'meta', id, 'meta.json'), JSON.stringify({ Name: name, Endpoints: { docker: { Host: host, SkipTLSVerify: false } } }));
  if (tls) {
    const dir = path.join(configDir, 'contexts', 'tls', id, 'docker');
    mkdirSync(dir, { recursive: true });
    for (const file of ['ca.pem', 'cert.pem', 'key.pem']) writeFileSync(path.join(dir, file), `${file} of ${name}`);
  }
}

describe('resolveEndpoint', () => {
  it('uses the local socket when nothing is set', () => {
    expect(resolveEndpoint(options())).toEqual({ url: 'unix:///var/run/docker.sock', source: 'default socket' });
  });

  it('prefers --remote-docker / DOCKER_HOST over the context', () => {
    const configDir = path.join(home, 'cfg-a');
    writeContext(configDir, 'box', 'tcp://box:2376');
    writeFileSync(path.join(configDir, 'config.json'), JSON.stringify({ currentContext: 'box' }));
    const resolved = resolveEndpoint(options({ dockerHost: 'ssh://me@other', env: { DOCKER_CONFIG: configDir } }));
    expect(resolved).toEqual({ url: 'ssh://me@other', source: '--remote-docker / DOCKER_HOST' });
  });

  it('honours the current docker context with its TLS files, and DOCKER_CONTEXT over config.json', () => {
    const configDir = path.join(home, 'cfg-b');
    writeContext(configDir, 'build-box', 'tcp://build-box:2376', true);
    writeContext(configDir, 'other', 'ssh://ci@other');
    writeFileSync(path.join(configDir, 'config.json'), JSON.stringify({ currentContext: 'build-box' }));
    const fromConfig = resolveEndpoint(options({ env: { DOCKER_CONFIG: configDir } }));
    expect(fromConfig.url).toBe('tcp://build-box:2376');
    expect(fromConfig.source).toBe('docker context build-box');
    expect(fromConfig.tls?.ca?.toString()).toBe('ca.pem of build-box');
    expect(resolveEndpoint(options({ env: { DOCKER_CONFIG: configDir, DOCKER_CONTEXT: 'other' } })).url).toBe('ssh://ci@other');
    expect(resolveEndpoint(options({ env: { DOCKER_CONFIG: configDir, DOCKER_CONTEXT: 'default' } })).source).toBe('default socket');
    expect(() => resolveEndpoint(options({ env: { DOCKER_CONFIG: configDir, DOCKER_CONTEXT: 'missing' } }))).toThrow(/docker context "missing" was not found/);
  });

  it('reads DOCKER_CERT_PATH when DOCKER_TLS_VERIFY=1, and names the files when they are missing', () => {
    const certDir = path.join(home, 'certs');
    mkdirSync(certDir, { recursive: true });
    for (const file of ['ca.pem', 'cert.pem', 'key.pem']) writeFileSync(path.join(certDir, file), file);
    const resolved = resolveEndpoint(options({ dockerHost: 'tcp://box:2376', env: { DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certDir } }));
    expect(resolved.tls?.cert?.toString()).toBe('cert.pem');
    expect(() => resolveEndpoint(options({ dockerHost: 'tcp://box:2376', env: { DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: path.join(home, 'nope') } }))).toThrow(/ca\.pem/);
  });
});

describe('modemOptions', () => {
  it('refuses plain tcp to a non-loopback host unless insecure, explaining why', () => {
    const plain = { url: 'tcp://10.1.2.3:2375', source: 'x' };
    let error: unknown;
    try {
      modemOptions(plain, options());
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(AgentWorkerError);
    expect((error as AgentWorkerError).exitCode).toBe(2);
    expect((error as AgentWorkerError).message).toMatch(/root on that host for anyone who can reach it/);
    expect((error as AgentWorkerError).hint).toMatch(/--insecure-docker/);
    expect(modemOptions(plain, options({ insecure: true }))).toMatchObject({ protocol: 'http', host: '10.1.2.3', port: '2375' });
    expect(modemOptions({ url: 'tcp://127.0.0.1:2375', source: 'x' }, options())).toMatchObject({ protocol: 'http' });
  });

  it('uses https with the TLS material', () => {
    const tls = { ca: Buffer.from('ca'), cert: Buffer.from('c'), key: Buffer.from('k') };
    expect(modemOptions({ url: 'tcp://box:2376', source: 'x', tls }, options())).toMatchObject({ protocol: 'https', host: 'box', port: '2376', ca: tls.ca });
  });

  it('builds ssh options with user, port, key file and a host key verifier', () => {
    mkdirSync(path.join(home, '.ssh'), { recursive: true });
    writeFileSync(path.join(home, '.ssh', 'id_ed25519'), 'KEY');
    const ssh = modemOptions({ url: 'ssh://ci@build-box:2222', source: 'x' }, options()) as { protocol: string; username: string; port: number; sshOptions: { privateKey: Buffer; hostVerifier: (key: Buffer) => boolean } };
    expect(ssh).toMatchObject({ protocol: 'ssh', username: 'ci', port: 2222 });
    expect(ssh.sshOptions.privateKey.toString()).toBe('KEY');
    expect(ssh.sshOptions.hostVerifier(Buffer.from('unknown key'))).toBe(false);
  });
});

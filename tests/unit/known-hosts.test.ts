import { afterAll, describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkHostKey, fingerprint, knownHostName } from '../../src/docker/known-hosts.js';
import { removeDir, tempDir } from '../helpers/git.js';

const dir = tempDir();
afterAll(() => removeDir(dir));
const keyA = randomBytes(51);
const keyB = randomBytes(51);
const b64 = (key: Buffer): string => key.toString('base64');

function file(name: string, text: string): string {
  const full = path.join(dir, name);
  writeFileSync(full, text);
  return full;
}

describe('known_hosts checking', () => {
  it('accepts a listed key, for port 22 and [host]:port forms', () => {
    const known = file('plain', `# comment\nbuild-box,10.0.0.5 ssh-ed25519 ${b64(keyA)}\n[127.0.0.1]:2222 ssh-ed25519 ${b64(keyB)} me@x\n`);
    expect(checkHostKey([known], 'build-box', 22, keyA)).toEqual({ ok: true });
    expect(checkHostKey([known], '10.0.0.5', 22, keyA)).toEqual({ ok: true });
    expect(checkHostKey([known], '127.0.0.1', 2222, keyB)).toEqual({ ok: true });
  });

  it('refuses an unknown host and a changed key, with the fingerprint', () => {
    const known = file('changed', `build-box ssh-ed25519 ${b64(keyA)}\n`);
    expect(checkHostKey([known], 'other-box', 22, keyA)).toEqual({ ok: false, reason: 'unknown', fingerprint: fingerprint(keyA), hostName: 'other-box' });
    expect(checkHostKey([known], 'build-box', 22, keyB)).toMatchObject({ ok: false, reason: 'changed', fingerprint: fingerprint(keyB) });
    expect(checkHostKey([known], 'build-box', 2200, keyA)).toMatchObject({ ok: false, reason: 'unknown', hostName: '[build-box]:2200' });
    expect(checkHostKey([path.join(dir, 'missing')], 'build-box', 22, keyA)).toMatchObject({ reason: 'unknown' });
  });

  it('matches hashed entries, wildcards and negations; honours @revoked', () => {
    const salt = randomBytes(20);
    const hash = createHmac('sha1', salt).update(knownHostName('secret-box', 22)).digest('base64');
    const known = file(
      'mixed',
      [
        `|1|${salt.toString('base64')}|${hash} ssh-ed25519 ${b64(keyA)}`,
        `*.example.com,!bad.example.com ssh-ed25519 ${b64(keyB)}`,
        `@revoked * ssh-ed25519 ${b64(keyA)}`,
      ].join('\n'),
    );
    expect(checkHostKey([known], 'ci.example.com', 22, keyB)).toEqual({ ok: true });
    expect(checkHostKey([known], 'bad.example.com', 22, keyB)).toMatchObject({ ok: false, reason: 'unknown' });
    expect(checkHostKey([known], 'secret-box', 22, keyA)).toMatchObject({ ok: false, reason: 'revoked' });
  });

  it('prints fingerprints the way OpenSSH does', () => {
    expect(fingerprint(Buffer.from('abc'))).toBe('SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0');
  });
});

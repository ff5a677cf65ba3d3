/**
 * A throwaway certificate authority for tests, made with the `openssl` CLI (as tests/helpers/dind.ts does): a CA and
 * one server certificate it signed, for `localhost`, `127.0.0.1`, `::1` and any extra names. EC P-256 keys: quick to
 * make (~50 ms each).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';

/** PEM texts of a test CA and of a server certificate it signed. */
export interface TestCa {
  /** The CA's certificate (trust this one). */
  caCert: string;
  /** The server's certificate, signed by the CA. */
  serverCert: string;
  /** The server's private key (unencrypted). */
  serverKey: string;
  /** The folder holding ca.pem, ca-key.pem, server.pem and server-key.pem. */
  dir: string;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];

/**
 * Makes a CA and a server certificate in `dir` (created, mode 0700), valid for 2 days.
 * @param dir a folder the caller removes.
 * @param extraNames more subject alternative names for the server certificate: DNS names or IP addresses.
 * @throws Error when `openssl` is missing or fails (its stderr in the message).
 */
export function makeTestCa(dir: string, extraNames: string[] = []): TestCa {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = (name: string): string => path.join(dir, name);
  openssl(['req', '-x509', ...EC_KEY, '-nodes', '-days', '2', '-subj', '/CN=agent-worker test CA', '-keyout', file('ca-key.pem'), '-out', file('ca.pem')]);
  openssl(['req', '-new', ...EC_KEY, '-nodes', '-subj', '/CN=localhost', '-keyout', file('server-key.pem'), '-out', file('server.csr')]);
  const names = ['localhost', '127.0.0.1', '::1', ...extraNames];
  const san = names.map((name) => (isIP(name) ? `IP:${name}` : `DNS:${name}`)).join(',');
  writeFileSync(file('server.ext'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`);
  openssl([
    'x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca-key.pem'),
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-extfile', file('server.ext'), '-out', file('server.pem'),
  ]);
  return {
    caCert: readFileSync(file('ca.pem'), 'utf8'),
    serverCert: readFileSync(file('server.pem'), 'utf8'),
    serverKey: readFileSync(file('server-key.pem'), 'utf8'),
    dir,
  };
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: 'pipe' });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`openssl ${args[0]} failed${stderr ? `: ${stderr}` : ''}`, { cause: error });
  }
}

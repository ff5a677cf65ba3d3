/**
 * Host key checking for `ssh://` daemons against OpenSSH known_hosts files (format: sshd(8)
 * "SSH_KNOWN_HOSTS FILE FORMAT": `[marker] hostpatterns keytype base64-key [comment]`, patterns
 * comma-separated with `*`/`?` wildcards and `!` negation, `[host]:port` for ports other than 22,
 * hashed entries `|1|base64(salt)|base64(HMAC-SHA1(salt, host))`, markers `@revoked` and
 * `@cert-authority`).
 */
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** One usable line of a known_hosts file. */
interface KnownHostEntry {
  marker?: '@revoked' | '@cert-authority';
  patterns: string;
  keyType: string;
  /** The key blob, base64 as written in the file. */
  key: string;
}

/** Result of checking a presented host key. */
export type HostKeyVerdict =
  | { ok: true }
  | { ok: false; reason: 'unknown' | 'changed' | 'revoked'; fingerprint: string; hostName: string };

/** OpenSSH's SHA256 fingerprint of a key blob: `SHA256:<base64 without padding>`. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** How a host appears in known_hosts: `host` for port 22, else `[host]:port`. */
export function knownHostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') marker = fields.shift() as KnownHostEntry['marker'];
    const [patterns, keyType, key] = fields;
    if (!patterns || !keyType || !key) continue;
    entries.push({ marker, patterns, keyType, key });
  }
  return entries;
}

function globMatch(pattern: string, name: string): boolean {
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return regex.test(name);
}

function hashedMatch(pattern: string, name: string): boolean {
  const [, kind, salt, hash] = pattern.split('|');
  if (kind !== '1' || !salt || !hash) return false;
  return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
}

/** True when `name` matches the comma-separated `patterns` (a negated match wins). */
function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|')) return hashedMatch(patterns, name);
  let matched = false;
  for (const pattern of patterns.split(',')) {
    if (pattern.startsWith('!')) {
      if (globMatch(pattern.slice(1), name)) return false;
    } else if (globMatch(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

/**
 * Checks `keyBlob` (the raw public key the server presented) for `host:port` against the given
 * known_hosts files (missing files count as empty).
 */
export function checkHostKey(files: string[], host: string, port: number, keyBlob: Buffer): HostKeyVerdict {
  const hostName = knownHostName(host, port);
  const presented = keyBlob.toString('base64');
  const print = fingerprint(keyBlob);
  let sawHost = false;
  let trusted = false;
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const entry of parseKnownHosts(text)) {
      if (!patternsMatch(entry.patterns, hostName)) continue;
      if (entry.marker === '@revoked') {
        if (entry.key === presented) return { ok: false, reason: 'revoked', fingerprint: print, hostName };
        continue;
      }
      if (entry.marker === '@cert-authority') continue;
      sawHost = true;
      if (entry.key === presented) trusted = true;
    }
  }
  if (trusted) return { ok: true };
  return { ok: false, reason: sawHost ? 'changed' : 'unknown', fingerprint: print, hostName };
}

/**
 * dockerode's BuildKit session (gRPC) and docker-modem's ssh transport (ssh2) are not loaded at start-up,
 * and load, and work, on first use. Checked in a fresh node process on the built code (dist/), so no
 * other test's imports count.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/version.js';

const script = `
import { createRequire } from 'node:module';
await import(${JSON.stringify(path.join(PACKAGE_ROOT, 'dist/src/docker/client.js'))});
const require = createRequire(${JSON.stringify(path.join(PACKAGE_ROOT, 'dist/src/docker/client.js'))});
const loaded = (pattern) => Object.keys(require.cache).filter((file) => pattern.test(file)).length;
const atStart = loaded(/node_modules\\/(@grpc|protobufjs|ssh2)\\//);
const ssh = require('docker-modem/lib/ssh.js');
const first = typeof ssh({ host: '127.0.0.1', port: 1, username: 'nobody' }).createConnection;
const second = typeof ssh({ host: '127.0.0.1', port: 1, username: 'nobody' }).createConnection;
console.log(JSON.stringify({ atStart, first, second, ssh2: loaded(/node_modules\\/ssh2\\//) > 0 }));
`;

describe('deferred modules', () => {
  it('loads neither gRPC nor ssh2 with the Docker client, and the real ssh transport on first use', () => {
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as Record<string, unknown>;
    expect(out).toEqual({ atStart: 0, first: 'function', second: 'function', ssh2: true });
  });
});

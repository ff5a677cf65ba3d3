/**
 * container/handoff.sh with real bash, tar, base64 and coreutils (debian:bookworm-slim, no network): `in` unpacks a
 * hand-off (secrets owned by the hand-off's uid, which root without capabilities cannot read) root-only and joins the
 * bundle's parts; `out` writes the block the host reads with
 * OutBlockReader, and the tar in it extracts to exactly the files put in — a 2 MB random file byte for byte, a link
 * archived as a link, an agent file behind a symbolic link left out. Nothing is left behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync, lstatSync, createReadStream } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { pack as tarPack } from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { docker, dockerAvailable } from '../helpers/docker.js';
import { removeDir, tempDir } from '../helpers/git.js';
import { FrameDemuxer } from '../../src/docker/demux.js';
import { LineSplitter } from '../../src/stream/lines.js';
import { extractSafely } from '../../src/docker/archive.js';
import { newOutNonce, OutBlockReader } from '../../src/backends/swarm/out-block.js';
import { ENTRYPOINT_CAPABILITIES } from '../../src/docker/container.js';

const hasDocker = await dockerAvailable();
const IMAGE = 'debian:bookworm-slim';
const TEST_LABEL = 'dev.agent-worker.test';
const TEST_LABEL_VALUE = 'handoff';
const SCRIPT = path.resolve(import.meta.dirname, '../../container/handoff.sh');

afterAll(async () => {
  if (!hasDocker) return;
  for (const info of await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${TEST_LABEL_VALUE}`] } })) {
    await docker.getContainer(info.Id).remove({ force: true }).catch(() => undefined);
  }
});

async function tarOf(files: Record<string, Buffer | string>, mode = 0o644, owners: Record<string, number> = {}): Promise<Buffer> {
  const pack = tarPack();
  for (const [name, content] of Object.entries(files)) {
    const uid = owners[name] ?? 0;
    pack.entry({ name, mode: uid === 0 ? mode : 0o400, uid, gid: uid }, typeof content === 'string' ? Buffer.from(content) : content);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Runs `script` (bash, as root) in a fresh container holding the script and `inputs` (a tar put at /); stdout lines and stderr text come back. */
async function runInContainer(script: string, inputs: Buffer): Promise<{ exitCode: number; stdout: string[]; stderr: string; container: Docker.Container }> {
  const container = await docker.createContainer({
    Image: IMAGE,
    Cmd: ['bash', '-c', script],
    Labels: { [TEST_LABEL]: TEST_LABEL_VALUE },
    // The entrypoint's capabilities only: no DAC_OVERRIDE, so root cannot read the agent's 0700 folders.
    HostConfig: { NetworkMode: 'none', CapDrop: ['ALL'], CapAdd: ENTRYPOINT_CAPABILITIES },
  });
  await container.putArchive(await tarOf({ 'usr/local/bin/agent-worker-handoff': readFileSync(SCRIPT) }, 0o755), { path: '/' });
  await container.putArchive(inputs, { path: '/' });
  const stdout: string[] = [];
  let stderr = '';
  const lines = new LineSplitter((line) => stdout.push(line));
  const stream = (await container.attach({ stream: true, stdout: true, stderr: true, hijack: true })) as unknown as Readable;
  const demux = new FrameDemuxer({ stdout: (chunk) => lines.push(chunk), stderr: (chunk) => (stderr += chunk.toString()) });
  const ended = new Promise<void>((resolve) => stream.once('end', resolve));
  stream.on('data', (chunk: Buffer) => demux.push(chunk));
  await container.start();
  const { StatusCode } = (await container.wait()) as { StatusCode: number };
  await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 5000))]);
  lines.end();
  return { exitCode: StatusCode, stdout, stderr, container };
}

describe.runIf(hasDocker)('container/handoff.sh', () => {
  it('in: unpacks the hand-off root-only and joins the bundle\'s parts; out: the block carries the work whole', async () => {
    const nonce = newOutNonce();
    const big = randomBytes(2_000_000);
    const handoff = await tarOf({ secrets: 'KEY=placeholder\0', task: 'do the thing', 'home/.agent/settings.json': '{}', 'commit-message': 'msg', 'out-nonce': nonce });
    // As a swarm hands them in: secrets owned by the hand-off's uid (65533), mode 0400; the bundle in two parts.
    const inputs = await tarOf(
      {
      'run/secrets/agent-worker-run': handoff,
      'run/secrets/bundle-0': 'bundle ',
      'run/secrets/bundle-1': 'bytes',
      'run/agent-worker-in/repo.bundle': 'bundle bytes',
      'run/agent-worker-out/work.bundle': big,
      'run/agent-worker-out/result': 'agent_status=0\n',
      'run/agent-worker-verify/verify.result': 'exit=0\n',
      'home/agent/.agent/usage.json': '{"tokens":5}',
      'home/agent/real/usage.json': '{"secret":"no"}',
      },
      0o644,
      { 'run/secrets/agent-worker-run': 65533, 'run/secrets/bundle-0': 65533, 'run/secrets/bundle-1': 65533 },
    );
    const script = [
      'set -e',
      // As vfs storage (dind swarm nodes) leaves a container's root: 0700, so the agent's user could not run anything.
      'chmod 0700 /',
      'AW_UID=1000 AW_HANDOFF_FILE=/run/secrets/agent-worker-run AW_BUNDLE_PARTS="/run/secrets/bundle-0 /run/secrets/bundle-1" agent-worker-handoff in',
      // Root without capabilities (an agent when the user is root) cannot read the secrets.
      'setpriv --reuid=0 --regid=0 --clear-groups --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- cat /run/secrets/agent-worker-run >/dev/null 2>&1 && echo "root read it" >&2 || true',
      'test "$(cat /run/agent-worker/repo.bundle)" = "bundle bytes"',
      // What `in` left, as the host expects it: root-only files, the nonce apart, the bundle moved.
      'stat -c "%n %U %a" / /run/agent-worker /run/agent-worker/task /run/agent-worker/repo.bundle /run/agent-worker-out-nonce /run/agent-worker/home/.agent/settings.json >&2',
      'test -e /run/agent-worker-in/repo.bundle && test ! -e /run/agent-worker/out-nonce',
      'ln -s result /run/agent-worker-out/link',
      'ln -s /home/agent/real /home/agent/linked',
      // As the entrypoint leaves them: the out folder and HOME are the agent's (uid 1000), 0700.
      'chmod 0700 /run/agent-worker-out /home/agent && chown -R 1000:1000 /run/agent-worker-out /home/agent',
      'echo \'{"type":"agent line"}\'',
      'AW_UID=1000 AW_GID=1000 AW_OUTPUT_FILES=$(printf "%s\\n" /home/agent/.agent/usage.json /home/agent/linked/usage.json /home/agent/missing.json) agent-worker-handoff out',
      'echo after',
    ].join('\n');
    const ran = await runInContainer(script, inputs);
    await ran.container.remove({ force: true });
    expect(ran.stderr).toContain('/ root 755');
    expect(ran.stderr).toContain('/run/agent-worker root 700');
    expect(ran.stderr).toContain('/run/agent-worker/task root 600');
    expect(ran.stderr).toContain('/run/agent-worker/repo.bundle root 600');
    expect(ran.stderr).toContain('/run/agent-worker-out-nonce root 400');
    expect(ran.stderr).toContain('/run/agent-worker/home/.agent/settings.json root 600');
    expect(ran.stderr, ran.stderr).not.toContain('root read it');
    expect(ran.exitCode, ran.stderr).toBe(0);

    const dir = tempDir('aw-handoff-');
    try {
      const reader = new OutBlockReader(nonce, path.join(dir, 'out.tar'));
      const agentLines = ran.stdout.filter((line) => !reader.line(line));
      expect(agentLines).toEqual(['{"type":"agent line"}', 'after']);
      const block = reader.finish();
      expect(block?.bytes).toBeGreaterThan(2_000_000);
      const files = await extractSafely(createReadStream(block!.file), path.join(dir, 'x'), { maxBytes: 64 * 1024 ** 2, maxEntries: 100 });
      expect(files.sort()).toEqual(
        ['agent-files/0/usage.json', 'agent-worker-out/result', 'agent-worker-out/work.bundle', 'agent-worker-verify/verify.result'].sort(),
      );
      const work = readFileSync(path.join(dir, 'x/agent-worker-out/work.bundle'));
      expect(createHash('sha256').update(work).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
      expect(readFileSync(path.join(dir, 'x/agent-files/0/usage.json'), 'utf8')).toBe('{"tokens":5}');
      expect(lstatSync(path.join(dir, 'x/agent-worker-out/link')).isSymbolicLink()).toBe(true);
      expect(readlinkSync(path.join(dir, 'x/agent-worker-out/link'))).toBe('result');
    } finally {
      removeDir(dir);
    }
  });

  it('out without `in` first, and in without a hand-off, fail with exit 71 and a reason', async () => {
    const ran = await runInContainer('agent-worker-handoff out; echo "out=$?"; AW_HANDOFF_FILE=/nope agent-worker-handoff in; echo "in=$?"', await tarOf({}));
    await ran.container.remove({ force: true });
    expect(ran.stdout).toEqual(['out=71', 'in=71']);
    expect(ran.stderr).toContain("agent-worker: no output nonce: was 'in' run?");
    expect(ran.stderr).toContain("agent-worker: the run's hand-off /nope is missing");
  });
});

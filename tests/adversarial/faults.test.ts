/**
 * Adversarial: the machine, the daemon and the user fail — a daemon that is not there, an image build that
 * fails or never ends, an agent that errors, ignores SIGTERM or leaves git's lock behind, signals at every
 * phase of a run, `kill -9` of the tool, and runs that race each other. Each case asserts the exact
 * outcome: exit code, message, the repository's state, and what is left in Docker and on disk.
 *
 * The built CLI, the real daemon, the project's real image and the real Claude Code binary, with the
 * scripted Messages API fixture (tests/fixtures/fake-anthropic.ts) as the model API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pack } from 'tar-fs';
import { startFakeAnthropic, type FakeAnthropic, type ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { parseReport, runAgentWorker, TEST_API_KEY, waitFor, withFixture } from '../helpers/agent-run.js';
import { bridgeGateway, docker, dockerAvailable, managedContainers, projectContainers, runCli, startCli, TEST_CA_CERT, type CliResult, type LiveCli } from '../helpers/docker.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';
import { LABEL_PROJECT } from '../../src/docker/labels.js';
import type { RunReport } from '../../src/report/types.js';

const hasDocker = await dockerAvailable();

/** A local base image whose apt-get sleeps forever: the image build hangs at its first RUN. */
const HANG_BASE = 'agent-worker-test/hang-base:1';
/** Label on everything this file creates in Docker. */
const TEST_LABEL = { 'dev.agent-worker.test': 'adversarial' };

const SIGNALS = [
  { name: 'SIGINT', code: 130 },
  { name: 'SIGTERM', code: 143 },
  { name: 'SIGHUP', code: 129 },
] as const;

const cleanup: string[] = [];

afterAll(async () => {
  if (hasDocker) await removeHangBase();
  for (const dir of cleanup) removeDir(dir);
});

/** A fresh repository, state folder (XDG_STATE_HOME) and TMPDIR for one run, removed after the file. */
function setup(files?: Record<string, string>): { repo: string; stateDir: string; tmp: string; base: string } {
  const repo = makeRepo(files);
  const stateDir = tempDir('aw-state-');
  const tmp = tempDir('aw-tmp-');
  cleanup.push(repo, stateDir, tmp);
  return { repo, stateDir, tmp, base: git(repo, 'rev-parse', 'HEAD').trim() };
}

/** Run ids that have a log folder in `stateDir`. */
function runIds(stateDir: string): string[] {
  const dir = path.join(stateDir, 'agent-worker', 'runs');
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** agent-worker's scratch folders (`agent-worker-<runId>-*`) left in `tmp`. */
function scratchLeft(tmp: string): string[] {
  return readdirSync(tmp).filter((name) => name.startsWith('agent-worker-'));
}


/** Containers (any state) whose image descends from {@link HANG_BASE}: the image build's RUN containers. */
async function buildContainers(status?: string): Promise<Array<{ Id: string; State: string }>> {
  if (!(await imageExists(HANG_BASE))) return [];
  return docker.listContainers({ all: true, filters: { ancestor: [HANG_BASE], ...(status ? { status: [status] } : {}) } });
}

async function imageExists(ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch {
    return false;
  }
}

/** The repository is exactly as before the run: on main at `base`, no other branch, a clean tree. */
function expectUntouched(repo: string, base: string): void {
  expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('main');
  expect(git(repo, 'rev-parse', 'HEAD').trim()).toBe(base);
  expect(git(repo, 'for-each-ref', '--format=%(refname)').trim()).toBe('refs/heads/main');
  expect(git(repo, 'status', '--porcelain', '--untracked-files=all', '--ignored')).toBe('');
}

/** Starts the built CLI on `repo` (fixture as model API, CA bundle, --json, `extra`), with live output. */
function launch(repo: string, fixture: FakeAnthropic | undefined, extra: string[], env: Record<string, string>): LiveCli {
  const base = fixture ? ['--base-url', `http://host.docker.internal:${fixture.port}`] : [];
  return startCli(['--project', repo, ...base, '--ca-cert', TEST_CA_CERT, '--json', ...extra], {
    cwd: repo,
    env: { ANTHROPIC_API_KEY: TEST_API_KEY, ...env },
    timeoutMs: 300_000,
  });
}

/** Builds {@link HANG_BASE} from a temp build context: bookworm-slim whose apt-get sleeps forever. */
async function buildHangBase(): Promise<void> {
  if (await imageExists(HANG_BASE)) return;
  const context = tempDir('aw-hang-ctx-');
  cleanup.push(context);
  writeFileSync(
    path.join(context, 'Dockerfile'),
    [
      'FROM debian:bookworm-slim',
      `RUN printf '#!/bin/sh\\nexec sleep infinity\\n' > /usr/bin/apt-get && chmod 0755 /usr/bin/apt-get`,
      'LABEL dev.agent-worker.test=adversarial',
      '',
    ].join('\n'),
  );
  const stream = await docker.buildImage(pack(context) as unknown as NodeJS.ReadableStream, { t: HANG_BASE, labels: TEST_LABEL, rm: true, forcerm: true });
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (error: Error | null, events: Array<{ error?: string }>) => {
      const failed = events.find((event) => event.error);
      if (error || failed) reject(error ?? new Error(failed!.error));
      else resolve();
    });
  });
}

/** Removes the build containers and every image descending from {@link HANG_BASE}, then the image itself. */
async function removeHangBase(): Promise<void> {
  let root: string;
  try {
    root = (await docker.getImage(HANG_BASE).inspect()).Id;
  } catch {
    return;
  }
  for (const info of await buildContainers()) await docker.getContainer(info.Id).remove({ force: true }).catch(() => undefined);
  const children = new Map<string, string[]>();
  for (const image of await docker.listImages({ all: true })) {
    if (image.ParentId) children.set(image.ParentId, [...(children.get(image.ParentId) ?? []), image.Id]);
  }
  const order: string[] = [];
  const visit = (id: string): void => {
    for (const child of children.get(id) ?? []) visit(child);
    order.push(id);
  };
  visit(root);
  for (const id of order) await docker.getImage(id).remove({ force: true }).catch(() => undefined);
}

/** Calls `onDie` at once with the exit code of the first `die` event of a container labelled with `repo`. */
async function onContainerDie(repo: string, onDie: (exitCode: string | undefined) => void): Promise<{ stop(): void }> {
  const events = (await docker.getEvents({ filters: { type: ['container'], event: ['die'], label: [`${LABEL_PROJECT}=${repo}`] } })) as unknown as Readable;
  let fired = false;
  events.on('data', (chunk: Buffer) => {
    if (fired) return;
    fired = true;
    const first = JSON.parse(chunk.toString('utf8').split('\n')[0]!) as { Actor?: { Attributes?: Record<string, string> } };
    onDie(first.Actor?.Attributes?.exitCode);
  });
  events.on('error', () => undefined);
  return { stop: () => events.destroy() };
}

/** Records the container events (create, start, kill with its signal, die with its exit code…) of `repo`'s containers. */
async function recordContainerEvents(repo: string): Promise<{ seen: Array<{ at: number; action: string; signal?: string; exitCode?: string }>; stop(): void }> {
  const stream = (await docker.getEvents({ filters: { type: ['container'], label: [`${LABEL_PROJECT}=${repo}`] } })) as unknown as Readable;
  const seen: Array<{ at: number; action: string; signal?: string; exitCode?: string }> = [];
  let rest = '';
  stream.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines.filter(Boolean)) {
      const event = JSON.parse(line) as { Action: string; Actor?: { Attributes?: Record<string, string> } };
      seen.push({ at: Date.now(), action: event.Action, signal: event.Actor?.Attributes?.signal, exitCode: event.Actor?.Attributes?.exitCode });
    }
  });
  stream.on('error', () => undefined);
  return { seen, stop: () => stream.destroy() };
}

const writeTurn = (file: string, content: string, input = 50): ScriptedTurn => ({
  content: [{ type: 'tool_use', name: 'Write', input: { file_path: `/workspace/${file}`, content } }],
  usage: { input, output: 5 },
});
const bashTurn = (command: string, input = 50): ScriptedTurn => ({
  content: [{ type: 'tool_use', name: 'Bash', input: { command, description: 'step' } }],
  usage: { input, output: 5 },
});
const stallTurn: ScriptedTurn = { content: [{ type: 'text', text: 'stuck' }], usage: { input: 1, output: 1 }, stall: true };

describe.runIf(hasDocker)('adversarial: faults of the daemon, the machine and the user', { timeout: 600_000 }, () => {
  beforeAll(async () => {
    if (hasDocker) await buildHangBase();
  }, 300_000);

  // --- the daemon and the image -------------------------------------------------------------------------

  it('F01 daemon down before the run (--remote-docker unix:///nonexistent.sock): exit 6, the message names the daemon, repo untouched', async () => {
    const { repo, stateDir, tmp, base } = setup();
    const result = await runAgentWorker(repo, undefined, ['--branch', 'f01', '--task', 'never runs', '--remote-docker', 'unix:///nonexistent.sock'], { stateDir, env: { TMPDIR: tmp } });
    expect(result.code, result.stderr).toBe(6);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('unix:///nonexistent.sock');
    expect(result.stderr).toMatch(/daemon/i);
    expect(result.stderr).toMatch(/ENOENT|did not answer/);
    expectUntouched(repo, base);
    expect(scratchLeft(tmp)).toEqual([]);
    expect(await projectContainers(repo)).toEqual([]);
  });

  it('F02 image build fails (AGENT_WORKER_BASE_IMAGE=agent-worker-test/no-such-base:1): exit 8, the build log tail on stderr, no branch, repo untouched', async () => {
    const { repo, stateDir, tmp, base } = setup();
    const result = await runAgentWorker(repo, undefined, ['--branch', 'f02', '--task', 'never runs'], {
      stateDir,
      env: { TMPDIR: tmp, AGENT_WORKER_BASE_IMAGE: 'agent-worker-test/no-such-base:1' },
    });
    expect(result.code, result.stderr).toBe(8);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/agent-worker: Building image agent-worker:[0-9a-f]{16} failed/);
    expect(result.stderr).toContain('last lines of the build log:');
    expect(result.stderr).toMatch(/Step \d+\/\d+ : FROM/);
    expectUntouched(repo, base);
    expect(scratchLeft(tmp)).toEqual([]);
    expect(await projectContainers(repo)).toEqual([]);
  });

  it('F03 a build that never finishes is stopped by --build-timeout 10: exit 8 naming --build-timeout within ~30 s, no branch, no build container left', async () => {
    const { repo, stateDir, tmp, base } = setup();
    const result = await launch(repo, undefined, ['--branch', 'f03', '--task', 'never runs', '--build-timeout', '10'], {
      XDG_STATE_HOME: stateDir,
      TMPDIR: tmp,
      AGENT_WORKER_BASE_IMAGE: HANG_BASE,
    }).done;
    expect(result.code, result.stderr).toBe(8);
    expect(result.ms).toBeLessThan(30_000);
    expect(result.ms).toBeGreaterThanOrEqual(10_000);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('--build-timeout (10 s)');
    expect(result.stderr).toContain('last lines of the build log:');
    expectUntouched(repo, base);
    expect(scratchLeft(tmp)).toEqual([]);
    expect(await projectContainers(repo)).toEqual([]);
    // The daemon kills the build's RUN container once the build request is gone.
    await waitFor(async () => (await buildContainers()).length === 0, 'the image build container to be removed', 15_000);
  });

  // --- the agent misbehaves -------------------------------------------------------------------------------

  it('F04 agent stops at --max-turns 1 and exits non-zero (error_max_turns): status max_turns, exit 13, partial work committed', async () => {
    const { repo, stateDir, base } = setup();
    await withFixture([writeTurn('partial.txt', 'one turn only\n'), writeTurn('never.txt', 'no\n')], async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'f04', '--task', 'Two steps', '--max-turns', '1'], { stateDir });
      expect(result.code, result.stderr).toBe(13);
      const report = parseReport(result);
      expect(report.status).toBe('max_turns');
      expect(report.agent.exitCode).toBe(1);
      expect(report.baseCommit).toBe(base);
      const stream = readFileSync(path.join(report.logDir, 'agent.stream.jsonl'), 'utf8');
      expect(stream).toContain('"subtype":"error_max_turns"');
      expect(git(repo, 'show', 'f04:partial.txt')).toBe('one turn only\n');
      expect(report.changes.files).toEqual([{ path: 'partial.txt', status: 'added', added: 1, removed: 0, binary: false }]);
      expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('f04');
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('F05 agent ignores SIGTERM at the timeout (trap "" TERM; sleep 600 in a Bash turn, --timeout 15): exit 124 within ~40 s, container gone', async ({ annotate }) => {
    const { repo, stateDir } = setup();
    const script = [writeTurn('before-trap.txt', 'written\n'), bashTurn('trap "" TERM; echo trapped; sleep 600')];
    await withFixture(script, async (fixture) => {
      const started = Date.now();
      const events = await recordContainerEvents(repo);
      const result = await runAgentWorker(repo, fixture, ['--branch', 'f05', '--task', 'Ignore SIGTERM', '--timeout', '15'], { stateDir });
      const elapsed = Date.now() - started;
      events.stop();
      expect(result.code, result.stderr).toBe(124);
      expect(elapsed).toBeLessThan(40_000);
      const report = parseReport(result);
      expect(report.status).toBe('timed_out');
      expect(report.agent.exitCode).toBeNull();
      // The Bash turn was running (its request was the second), so the stop met the trap.
      expect(fixture.requests.filter((request) => request.kind === 'turn').length).toBeGreaterThanOrEqual(2);
      expect(fixture.toolResults().map((toolResult) => toolResult.name)).toEqual(['Write']);
      // What the stop did: SIGTERM to Claude Code (PID 1), which exits by itself; SIGKILL only after the 3 s grace.
      const kill = events.seen.find((event) => event.action === 'kill');
      const die = events.seen.find((event) => event.action === 'die');
      expect(kill?.signal).toBe('15');
      expect(die!.at - kill!.at).toBeLessThan(5_000);
      await annotate(`stop: ${events.seen.filter((event) => event.action === 'kill' || event.action === 'die').map((event) => `${event.action}${event.signal ? ` signal ${event.signal}` : ''}${event.exitCode ? ` exit ${event.exitCode}` : ''}`).join(', ')}; died ${die!.at - kill!.at} ms after SIGTERM; run took ${elapsed} ms`);
      expect(git(repo, 'show', 'f05:before-trap.txt')).toBe('written\n');
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('F06 agent leaves .git/index.lock behind (copy workspace): the lock is cleared before committing; the work comes back, exit 0', async () => {
    const { repo, stateDir, base } = setup();
    const script = [bashTurn('touch .git/index.lock && echo locked > locked.txt && ls .git/index.lock && echo LOCK_MADE')];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'f06', '--task', 'Leave a lock', '--workspace', 'copy'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      expect(fixture.toolResults()[0]?.content).toContain('LOCK_MADE');
      const report = parseReport(result);
      expect(report.status).toBe('success');
      expect(git(repo, 'show', 'f06:locked.txt')).toBe('locked\n');
      expect(report.changes.files).toEqual([{ path: 'locked.txt', status: 'added', added: 1, removed: 0, binary: false }]);
      expect(report.baseCommit).toBe(base);
      expect(existsSync(path.join(repo, '.git/index.lock'))).toBe(false);
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('F07 agent tries to leave .git/index.lock (mount workspace): .git is read-only, touch fails; the work is committed, exit 0', async () => {
    const { repo, stateDir } = setup();
    const script = [bashTurn('touch .git/index.lock; echo "touch-exit=$?"; echo mounted > mounted.txt')];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'f07', '--task', 'Try a lock', '--workspace', 'mount'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const output = fixture.toolResults()[0]?.content ?? '';
      expect(output).toMatch(/Read-only file system/);
      expect(output).toMatch(/touch-exit=[1-9]/);
      const report = parseReport(result);
      expect(report.status).toBe('success');
      expect(existsSync(path.join(repo, '.git/index.lock'))).toBe(false);
      expect(git(repo, 'show', 'f07:mounted.txt')).toBe('mounted\n');
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  // --- signals at each phase --------------------------------------------------------------------------------

  for (const [index, { name, code }] of SIGNALS.entries()) {
    it(`F${String(8 + index).padStart(2, '0')} ${name} right after spawn (preflight): exit ${code} (or killed by ${name} before its handler), nothing created`, async () => {
      const { repo, stateDir, tmp, base } = setup();
      const run = launch(repo, undefined, ['--branch', `f08-${name}`, '--task', 'never runs'], { XDG_STATE_HOME: stateDir, TMPDIR: tmp });
      process.kill(run.pid, name);
      const result = await run.done;
      // Before node installed its handler the default action kills it (a shell shows 128+n); after, it exits 128+n.
      expect(result.code === code || (result.code === null && result.signal === name), JSON.stringify(result)).toBe(true);
      expect(result.stdout).toBe('');
      expectUntouched(repo, base);
      expect(scratchLeft(tmp)).toEqual([]);
      expect(await projectContainers(repo)).toEqual([]);
    });
  }

  for (const [index, { name, code }] of SIGNALS.entries()) {
    it(`F${11 + index} ${name} while connecting to a daemon that never answers (preflight): exit ${code} at once, "nothing was changed", nothing created`, async () => {
      const { repo, stateDir, tmp, base } = setup();
      // A loopback "daemon" that accepts the connection and never answers: the connect phase lasts 10 s.
      const sockets = new Set<Socket>();
      const server = createServer((socket) => sockets.add(socket));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const port = (server.address() as AddressInfo).port;
        const run = launch(repo, undefined, ['--branch', `f11-${name}`, '--task', 'never runs', '--remote-docker', `tcp://127.0.0.1:${port}`], { XDG_STATE_HOME: stateDir, TMPDIR: tmp });
        await waitFor(() => sockets.size > 0, 'the connection to the silent daemon', 30_000);
        await new Promise((resolve) => setTimeout(resolve, 500));
        const signalledAt = Date.now();
        process.kill(run.pid, name);
        const result = await run.done;
        expect(result.code, result.stderr).toBe(code);
        expect(Date.now() - signalledAt).toBeLessThan(3_000);
        expect(result.stdout).toBe('');
        expect(result.stderr).toContain(`Interrupted by ${name}; nothing was changed.`);
        expectUntouched(repo, base);
        expect(scratchLeft(tmp)).toEqual([]);
        expect(runIds(stateDir)).toEqual([]);
      } finally {
        for (const socket of sockets) socket.destroy();
        server.close();
      }
    });
  }

  for (const [index, { name, code }] of SIGNALS.entries()) {
    it(`F${14 + index} ${name} at the end of preflight (once the daemon is named): exit ${code}; nothing created, or (if the agent had just started) an interrupted run with an empty branch`, async () => {
      const { repo, stateDir, tmp, base } = setup();
      const run = launch(repo, undefined, ['--branch', `f14-${name}`, '--task', 'never runs'], { XDG_STATE_HOME: stateDir, TMPDIR: tmp });
      await waitFor(() => run.stderr().includes('Docker daemon:'), 'the daemon notice', 30_000);
      process.kill(run.pid, name);
      const result = await run.done;
      expect(result.code, result.stderr).toBe(code);
      if (result.stdout === '') {
        // The signal beat the container: nothing was created.
        expect(result.stderr).toContain(`Interrupted by ${name}; nothing was changed.`);
        expectUntouched(repo, base);
      } else {
        // With the image cached the agent's container starts within a second of the notice; a signal
        // landing just after that interrupts the run proper: a report, an empty branch at the base, a clean tree.
        const report = JSON.parse(result.stdout) as { status: string; headCommit: string; changes: { filesChanged: number } };
        expect(report).toMatchObject({ status: 'interrupted', headCommit: base, changes: { filesChanged: 0 } });
        expect(git(repo, 'rev-parse', `f14-${name}`).trim()).toBe(base);
        expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      }
      expect(scratchLeft(tmp)).toEqual([]);
      expect(await projectContainers(repo)).toEqual([]);
    });
  }

  for (const [index, { name, code }] of SIGNALS.entries()) {
    it(`F${17 + index} ${name} while the image builds (hanging base image): exit ${code}, no branch, no container, no scratch folder`, async () => {
      const { repo, stateDir, tmp, base } = setup();
      const before = new Set((await buildContainers()).map((info) => info.Id));
      const run = launch(repo, undefined, ['--branch', `f17-${name}`, '--task', 'never runs', '--build-timeout', '300'], {
        XDG_STATE_HOME: stateDir,
        TMPDIR: tmp,
        AGENT_WORKER_BASE_IMAGE: HANG_BASE,
      });
      // The build's RUN step is running (and hanging in apt-get): the build phase for sure.
      await waitFor(async () => (await buildContainers('running')).some((info) => !before.has(info.Id)), 'the image build to reach its RUN step', 60_000);
      // Meanwhile the branch exists and is checked out (mount mode).
      expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe(`f17-${name}`);
      process.kill(run.pid, name);
      const result = await run.done;
      expect(result.code, result.stderr).toBe(code);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(`Interrupted by ${name}`);
      expectUntouched(repo, base);
      const [runId] = runIds(stateDir);
      expect(runId).toMatch(/^\d{8}-\d{6}-[0-9a-f]{6}$/);
      expect(scratchLeft(tmp)).toEqual([]);
      expect(await projectContainers(repo)).toEqual([]);
      expect(await managedContainers(runId)).toEqual([]);
      await waitFor(async () => (await buildContainers()).length === 0, 'the image build container to be removed', 15_000);
      expect(readFileSync(path.join(stateDir, 'agent-worker', 'runs', runId!, 'agent-worker.log'), 'utf8')).toMatch(/peak RSS \d+ MiB\n?$/);
    });
  }

  for (const [index, { name, code }] of SIGNALS.entries()) {
    it(`F${20 + index} ${name} while the agent runs (stalled turn): exit ${code}, status interrupted, partial work committed, container gone`, async () => {
      const { repo, stateDir, tmp, base } = setup();
      await withFixture([writeTurn('wip.txt', `partial ${name}\n`), stallTurn], async (fixture) => {
        const run = launch(repo, fixture, ['--branch', `f20-${name}`, '--task', 'Work until interrupted'], { XDG_STATE_HOME: stateDir, TMPDIR: tmp });
        await waitFor(() => fixture.requests.some((request) => request.turn === 1), 'the agent to send its 2nd request', 120_000);
        process.kill(run.pid, name);
        const result = await run.done;
        expect(result.code, result.stderr).toBe(code);
        const report = parseReport(result);
        expect(report.status).toBe('interrupted');
        expect(report.agent.exitCode).toBeNull();
        expect(report.baseCommit).toBe(base);
        expect(git(repo, 'show', `f20-${name}:wip.txt`)).toBe(`partial ${name}\n`);
        expect(git(repo, 'log', '-1', '--format=%B', `f20-${name}`)).toContain('(status: interrupted)');
        expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe(`f20-${name}`);
        expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
        expect(await managedContainers(report.runId)).toEqual([]);
        expect(scratchLeft(tmp)).toEqual([]);
      });
    });
  }

  for (const [index, { name, code }] of SIGNALS.entries()) {
    it(`F${23 + index} ${name} right after the container exits (collecting): exit 0 or ${code}, the repo consistent, the branch holds the work`, async ({ annotate }) => {
      const { repo, stateDir, tmp, base } = setup();
      await withFixture([writeTurn('done.txt', `complete ${name}\n`)], async (fixture) => {
        let run: LiveCli | undefined;
        let signalled = false;
        let dieExitCode: string | undefined;
        const watcher = await onContainerDie(repo, (exitCode) => {
          process.kill(run!.pid, name);
          signalled = true;
          dieExitCode = exitCode;
        });
        try {
          run = launch(repo, fixture, ['--branch', `f23-${name}`, '--task', 'Finish quickly'], { XDG_STATE_HOME: stateDir, TMPDIR: tmp });
          const result = await run.done;
          expect(signalled).toBe(true);
          // Either the run saw the signal in time (interrupted) or it was already past the wait (success);
          // a signal after the report was printed may meet the default handler (killed by it).
          const ok = result.code === 0 || result.code === code || (result.code === null && result.signal === name);
          expect(ok, `${JSON.stringify({ code: result.code, signal: result.signal })}\n${result.stderr}`).toBe(true);
          const report = parseReport(result);
          await annotate(`exit ${result.code ?? result.signal}, status ${report.status}, agent.exitCode ${report.agent.exitCode}`);
          expect(report.status).toBe(result.code === code ? 'interrupted' : 'success');
          // The container had exited by itself (code 0) before the signal: the host killed nothing, so the
          // report carries that exit code (README: null only "when the host killed it").
          expect(dieExitCode).toBe('0');
          expect(report.agent.exitCode).toBe(0);
          expect(report.baseCommit).toBe(base);
          expect(git(repo, 'show', `f23-${name}:done.txt`)).toBe(`complete ${name}\n`);
          expect(report.headCommit).toBe(git(repo, 'rev-parse', `f23-${name}`).trim());
          expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe(`f23-${name}`);
          expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
          expect(await managedContainers(report.runId)).toEqual([]);
          expect(scratchLeft(tmp)).toEqual([]);
        } finally {
          watcher.stop();
        }
      });
    });
  }

  // --- kill -9 of the tool -------------------------------------------------------------------------------------

  /**
   * Starts a run on a stalled fixture and kill -9s the tool once the agent waits on its 2nd request.
   * `destroyedAt()` is when Docker destroyed the container it left (undefined while it exists): other
   * sessions' runs sweep orphans too, so a case that finds its container swept by someone else retries.
   */
  async function killedRun(label: string): Promise<{ repo: string; runId: string; containerId: string; proxyId: string; result: CliResult; destroyedAt(): number | undefined; done(): void }> {
    const { repo, stateDir, tmp } = setup();
    const events = await recordContainerEvents(repo);
    // The fixture stays open (the agent stalled on it) until done(): the orphan keeps running meanwhile.
    const fixture = await startFakeAnthropic({ host: await bridgeGateway(), script: [writeTurn('wip.txt', 'x\n'), stallTurn] });
    try {
      const run = launch(repo, fixture, ['--branch', label, '--task', 'Killed mid-run'], { XDG_STATE_HOME: stateDir, TMPDIR: tmp });
      await waitFor(() => fixture.requests.some((request) => request.turn === 1), 'the agent to send its 2nd request', 120_000);
      process.kill(run.pid, 'SIGKILL');
      const result = await run.done;
      const [runId] = runIds(stateDir);
      const left = await managedContainers(runId);
      expect(result.signal).toBe('SIGKILL');
      // The agent's container and its egress proxy's outlive their tool, still running.
      const agent = left.filter((info) => info.Labels['dev.agent-worker.role'] === undefined);
      const proxy = left.filter((info) => info.Labels['dev.agent-worker.role'] === 'egress-proxy');
      expect(agent.map((info) => info.State)).toEqual(['running']);
      expect(proxy.map((info) => info.State)).toEqual(['running']);
      return {
        repo,
        runId: runId!,
        containerId: agent[0]!.Id,
        proxyId: proxy[0]!.Id,
        result,
        destroyedAt: () => events.seen.find((event) => event.action === 'destroy')?.at,
        done: () => {
          events.stop();
          void fixture.close();
        },
      };
    } catch (error) {
      events.stop();
      await fixture.close();
      throw error;
    }
  }

  it('F26 kill -9 of the tool while the agent runs leaves the container; `agent-worker gc --json` removes it', async () => {
    for (let attempt = 1; ; attempt += 1) {
      const killed = await killedRun(`f26-${attempt}`);
      try {
        const gc = await runCli(['gc', '--json'], { cwd: killed.repo });
        expect(gc.code, gc.stderr).toBe(0);
        const removed = (JSON.parse(gc.stdout) as { removed: Array<{ id: string; runId: string; state: string }> }).removed;
        const mine = removed.filter((entry) => entry.runId === killed.runId);
        // Gone but not reported: another session's sweep removed it (before or during this gc); try again.
        if (mine.length === 0 && killed.destroyedAt() !== undefined && attempt < 3) continue;
        // The agent's container and its egress proxy's, each once; then the run's network is gone too.
        expect(mine.sort((a, b) => a.id.localeCompare(b.id)), `gc output: ${gc.stdout}\n${gc.stderr}`).toEqual(
          [killed.containerId, killed.proxyId].map((id) => ({ id: id.slice(0, 12), runId: killed.runId, state: 'running' })).sort((a, b) => a.id.localeCompare(b.id)),
        );
        expect(await managedContainers(killed.runId)).toEqual([]);
        expect(await docker.listNetworks({ filters: { label: [`dev.agent-worker.run-id=${killed.runId}`] } })).toEqual([]);
        // Nothing committed the work after kill -9: it is still in the checkout, on the run's branch.
        expect(git(killed.repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe(`f26-${attempt}`);
        expect(git(killed.repo, 'status', '--porcelain', '--untracked-files=all')).toBe('?? wip.txt\n');
        return;
      } finally {
        killed.done();
        for (const id of [killed.containerId, killed.proxyId]) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
      }
    }
  });

  it('F27 kill -9 of the tool while the agent runs: the NEXT normal run sweeps the container it left', async () => {
    for (let attempt = 1; ; attempt += 1) {
      const killed = await killedRun(`f27-killed-${attempt}`);
      try {
        const { repo, stateDir, tmp } = setup();
        const outcome = await withFixture([writeTurn('next.txt', 'next\n')], async (fixture) => {
          const run = launch(repo, fixture, ['--branch', 'f27-next', '--task', 'Next run', '--debug'], { XDG_STATE_HOME: stateDir, TMPDIR: tmp });
          const result = await run.done;
          expect(result.code, result.stderr).toBe(0);
          // Gone but not reported: another session's sweep removed it (before or during this one); try again.
          if (!result.stderr.includes(killed.runId) && killed.destroyedAt() !== undefined && attempt < 3) return 'retry';
          const gcLines = result.stderr.split('\n').filter((line) => /Removed|agent-worker:gc/.test(line)).join('\n');
          const state = JSON.stringify((await managedContainers(killed.runId)).map((info) => info.State));
          expect(result.stderr, `sweep lines:\n${gcLines}\ncontainer now: ${state}`).toMatch(new RegExp(`Removed \\d+ container\\(s\\) left by agent-worker runs that died: .*${killed.runId}`));
          expect(await managedContainers(killed.runId)).toEqual([]);
          const report = parseReport(result);
          expect(report.status).toBe('success');
          expect(git(repo, 'show', 'f27-next:next.txt')).toBe('next\n');
          return 'done';
        });
        if (outcome === 'done') return;
      } finally {
        killed.done();
        for (const id of [killed.containerId, killed.proxyId]) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
      }
    }
  });

  it('F31 kill -9 of the tool, then three `agent-worker gc --json` at once (as when runs start together and sweep): each exits 0, the container is removed and reported once', async () => {
    const killed = await killedRun('f31');
    try {
      const results = await Promise.all([1, 2, 3].map(() => runCli(['gc', '--json'], { cwd: killed.repo })));
      for (const gc of results) expect(gc.code, gc.stderr).toBe(0);
      const reports = results.map((gc) => (JSON.parse(gc.stdout) as { removed: Array<{ id: string; runId: string }> }).removed.filter((entry) => entry.runId === killed.runId));
      // Another session may have swept them first (then none reports them); no container is reported twice.
      const ids = reports.flat().map((entry) => entry.id);
      expect(ids.length).toBeLessThanOrEqual(2);
      expect(new Set(ids).size).toBe(ids.length);
      expect(await managedContainers(killed.runId)).toEqual([]);
    } finally {
      killed.done();
      for (const id of [killed.containerId, killed.proxyId]) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
    }
  });

  // --- runs racing each other -------------------------------------------------------------------------------------

  it('F28 two runs at once on two different repos: both exit 0, each report holds its own branch, changes and tokens', async () => {
    const a = setup();
    const b = setup();
    await withFixture([writeTurn('alpha.txt', 'a\n', 1111)], (fixtureA) =>
      withFixture([writeTurn('beta.txt', 'b\nb\n', 2222)], async (fixtureB) => {
        const [resultA, resultB] = await Promise.all([
          runAgentWorker(a.repo, fixtureA, ['--branch', 'f28-a', '--task', 'Task A'], { stateDir: a.stateDir }),
          runAgentWorker(b.repo, fixtureB, ['--branch', 'f28-b', '--task', 'Task B'], { stateDir: b.stateDir }),
        ]);
        expect(resultA.code, resultA.stderr).toBe(0);
        expect(resultB.code, resultB.stderr).toBe(0);
        const reportA = parseReport(resultA);
        const reportB = parseReport(resultB);
        const expectOwn = (report: RunReport, fixture: FakeAnthropic, repo: string, branch: string, file: string, added: number): void => {
          expect(report.branch).toBe(branch);
          expect(report.status).toBe('success');
          expect(report.changes.files).toEqual([{ path: file, status: 'added', added, removed: 0, binary: false }]);
          expect(report.tokens!.input).toBe(fixture.served.input);
          expect(report.tokens!.output).toBe(fixture.served.output);
          expect(report.headCommit).toBe(git(repo, 'rev-parse', branch).trim());
          expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
        };
        expectOwn(reportA, fixtureA, a.repo, 'f28-a', 'alpha.txt', 1);
        expectOwn(reportB, fixtureB, b.repo, 'f28-b', 'beta.txt', 2);
        expect(reportA.tokens!.input).toBeGreaterThanOrEqual(1111);
        expect(reportB.tokens!.input).toBeGreaterThanOrEqual(2222);
        expect(reportA.runId).not.toBe(reportB.runId);
        expect(await managedContainers(reportA.runId)).toEqual([]);
        expect(await managedContainers(reportB.runId)).toEqual([]);
      }),
    );
  });

  /** Checks both runs on one repo: each branch holds exactly its own file, both reports match, tree clean. */
  async function expectBothOnOneRepo(repo: string, base: string, runs: Array<{ result: CliResult; fixture: FakeAnthropic; branch: string; file: string }>): Promise<RunReport[]> {
    const reports: RunReport[] = [];
    for (const { result, fixture, branch, file } of runs) {
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      reports.push(report);
      expect(report.status).toBe('success');
      expect(report.branch).toBe(branch);
      expect(report.baseCommit).toBe(base);
      expect(report.headCommit).toBe(git(repo, 'rev-parse', branch).trim());
      expect(git(repo, 'diff', '--name-only', base, branch).trim()).toBe(file);
      expect(report.changes.files).toEqual([{ path: file, status: 'added', added: 1, removed: 0, binary: false }]);
      expect(report.tokens!.input).toBe(fixture.served.input);
      expect(await managedContainers(report.runId)).toEqual([]);
    }
    expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
    expect(runs.map((run) => run.branch)).toContain(git(repo, 'symbolic-ref', '--short', 'HEAD').trim());
    return reports;
  }

  it('F29 two runs on the SAME repo, the second started while the first works: both exit 0, the second copies the workspace, each branch holds its own change', async () => {
    const { repo, stateDir, base } = setup();
    await withFixture([writeTurn('first.txt', 'first\n', 300), bashTurn('sleep 8; echo slept', 301)], (fixtureA) =>
      withFixture([writeTurn('second.txt', 'second\n', 700)], async (fixtureB) => {
        const first = runAgentWorker(repo, fixtureA, ['--branch', 'f29-first', '--task', 'First'], { stateDir });
        // The first run's agent is at work in the (mounted) checkout.
        await waitFor(() => fixtureA.requests.some((request) => request.turn === 1), 'the first agent to be at work', 120_000);
        const second = await runAgentWorker(repo, fixtureB, ['--branch', 'f29-second', '--task', 'Second'], { stateDir });
        const firstResult = await first;
        expect(second.stderr).toMatch(/The working tree is in use by run \S+; this run copies the workspace, based on [0-9a-f]{12}\./);
        expect(second.stderr).toContain(`based on ${base.slice(0, 12)}`);
        await expectBothOnOneRepo(repo, base, [
          { result: firstResult, fixture: fixtureA, branch: 'f29-first', file: 'first.txt' },
          { result: second, fixture: fixtureB, branch: 'f29-second', file: 'second.txt' },
        ]);
      }),
    );
  });

  it('F30 two runs on the SAME repo started at the same instant: both exit 0, one copies the workspace, each branch holds its own change', async () => {
    const { repo, stateDir, base } = setup();
    // Each agent works for 5 s, so the runs overlap however late one of the two processes gets going on a loaded machine.
    await withFixture([writeTurn('one.txt', 'one\n', 400), bashTurn('sleep 5; echo slept', 401)], (fixtureA) =>
      withFixture([writeTurn('two.txt', 'two\n', 900), bashTurn('sleep 5; echo slept', 901)], async (fixtureB) => {
        const [resultA, resultB] = await Promise.all([
          runAgentWorker(repo, fixtureA, ['--branch', 'f30-one', '--task', 'One'], { stateDir }),
          runAgentWorker(repo, fixtureB, ['--branch', 'f30-two', '--task', 'Two'], { stateDir }),
        ]);
        const copied = [resultA, resultB].filter((result) => /this run copies the workspace/.test(result.stderr));
        expect(copied.length, `${resultA.stderr}\n---\n${resultB.stderr}`).toBe(1);
        await expectBothOnOneRepo(repo, base, [
          { result: resultA, fixture: fixtureA, branch: 'f30-one', file: 'one.txt' },
          { result: resultB, fixture: fixtureB, branch: 'f30-two', file: 'two.txt' },
        ]);
      }),
    );
  });
});

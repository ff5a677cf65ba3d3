/**
 * The published layout: `npm pack` the repository, install the tarball globally into a temp prefix (as on
 * a clean machine) and run the installed `agent-worker`: --version, --help, a real run against the
 * scripted Messages API fixture, and `doctor`. The installed copy must find its `container/` folder
 * relative to its own code, so it hashes the same build context as the repository's dist (same image tag).
 * Also `npx` from the tarball. Needs the built dist (`npm test` builds first) and the npm registry (deps).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { parseReport, TEST_API_KEY, withFixture } from '../helpers/agent-run.js';
import { CLI, dockerAvailable, managedContainers, TEST_CA_CERT, type CliResult } from '../helpers/docker.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];

const hasDocker = await dockerAvailable();

const cleanup: string[] = [];
let work: string;
let tarball: string;
let tarballFiles: string[];
let installedBin: string;
let installedRoot: string;

/** Runs npm with `args` in `cwd` (the whole environment passes through: proxy, NODE_EXTRA_CA_CERTS). */
function npm(cwd: string, args: string[], env: Record<string, string> = {}): string {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
}

/**
 * Runs `command` (an executable file, e.g. the installed bin) with `args`, no stdin, and `env` on top of a
 * minimal environment (PATH with this node first, HOME). Resolves when it exits; SIGKILL after `timeoutMs`.
 */
function runBin(command: string, args: string[], options: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`, HOME: process.env.HOME ?? '/root', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

interface DoctorJson {
  ok: boolean;
  exitCode: number;
  checks: Array<{ id: string; status: 'ok' | 'fail' | 'skip'; detail: string; fix?: string }>;
}

/** Parses doctor's one JSON document on stdout (failing the test with stderr when there is none). */
function parseDoctor(result: CliResult): DoctorJson {
  expect(result.stdout.trim().startsWith('{'), `stdout was: ${result.stdout}\nstderr: ${result.stderr}`).toBe(true);
  return JSON.parse(result.stdout) as DoctorJson;
}

/** The image tag named in doctor's `image` check (whether cached or not yet built). */
function doctorImageTag(report: DoctorJson): string | undefined {
  return report.checks.find((check) => check.id === 'image')?.detail.match(/agent-worker:[0-9a-f]{16}/)?.[0];
}

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  work = tempDir('aw-pack-');
  cleanup.push(work);
  npm(ROOT, ['pack', '--pack-destination', work, '--loglevel=error']);
  const packed = readdirSync(work).filter((name) => name.endsWith('.tgz'));
  expect(packed).toEqual([`agent-worker-${VERSION}.tgz`]);
  tarball = path.join(work, packed[0]!);
  tarballFiles = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);

  const prefix = path.join(work, 'prefix');
  npm(work, ['install', '-g', '--prefix', prefix, ...NPM_FLAGS, tarball]);
  installedBin = path.join(prefix, 'bin', 'agent-worker');
  installedRoot = path.join(prefix, 'lib', 'node_modules', 'agent-worker');
}, 300_000);

afterAll(() => {
  for (const dir of cleanup) removeDir(dir);
});

describe('the npm package', () => {
  it('the tarball ships the built code, container/ and the README, and no sources, tests or bench', () => {
    const files = tarballFiles.map((entry) => entry.replace(/^package\//, ''));
    for (const file of ['package.json', 'README.md', 'dist/src/cli.js', 'dist/agents/index.js', 'container/Dockerfile', 'container/entrypoint.sh']) {
      expect(files, file).toContain(file);
    }
    // Every file of container/ ships: the installed copy hashes the same build context.
    for (const file of readdirSync(path.join(ROOT, 'container'))) expect(files, `container/${file}`).toContain(`container/${file}`);
    // Of agents/ only each agent's install script ships (the image's agent layer); its code is in dist/agents.
    for (const agent of readdirSync(path.join(ROOT, 'agents'), { withFileTypes: true })) {
      if (existsSync(path.join(ROOT, 'agents', agent.name, 'install.sh'))) expect(files, `agents/${agent.name}/install.sh`).toContain(`agents/${agent.name}/install.sh`);
    }
    expect(files.filter((file) => /^(tests|bench|src|node_modules|\.ci)\//.test(file) || (file.startsWith('agents/') && !/^agents\/[^/]+\/install\.sh$/.test(file)))).toEqual([]);
    expect(files.filter((file) => /\.ts$/.test(file) && !file.endsWith('.d.ts'))).toEqual([]);
  });

  it('the global install links bin/agent-worker to dist/src/cli.js; --version prints the package version; --help lists doctor', async () => {
    expect(readFileSync(installedBin, 'utf8').split('\n', 1)[0]).toBe('#!/usr/bin/env node');
    expect(existsSync(path.join(installedRoot, 'container', 'Dockerfile'))).toBe(true);

    const version = await runBin(installedBin, ['--version'], { cwd: work });
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toBe(VERSION);

    const help = await runBin(installedBin, ['--help'], { cwd: work });
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^\s+agent-worker doctor\b/m);
  });

  it('npx runs agent-worker from the tarball', async () => {
    const cwd = path.join(work, 'npx-cwd');
    mkdirSync(cwd);
    // Its own npm cache: nothing is left in the user's ~/.npm/_npx, and nothing there is reused.
    const out = npm(cwd, ['exec', '--yes', `--package=${tarball}`, ...NPM_FLAGS, '--', 'agent-worker', '--version'], {
      npm_config_cache: path.join(work, 'npx-cache'),
    });
    expect(out.trim()).toBe(VERSION);
  }, 300_000);
});

describe.runIf(hasDocker)('the installed package against Docker (real Claude Code, scripted API)', { timeout: 900_000 }, () => {
  it('a real run with the installed binary: the branch holds the file; the image tag is the repository dist\'s', async () => {
    const repo = makeRepo({ 'README.md': '# packaged\n' });
    const stateDir = tempDir('aw-state-');
    cleanup.push(repo, stateDir);
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/hello.txt', content: 'hello from the package\n' } }], usage: { input: 200, output: 20 } },
      { content: [{ type: 'text', text: 'Wrote hello.txt.' }], usage: { input: 250, output: 10 } },
    ];
    await withFixture(script, async (fixture) => {
      const baseUrl = `http://host.docker.internal:${fixture.port}`;
      const env = { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: TEST_API_KEY };
      const result = await runBin(
        installedBin,
        ['--project', repo, '--task', 'Write hello.txt', '--branch', 'pkg/hello', '--base-url', baseUrl, '--ca-cert', TEST_CA_CERT, '--json'],
        { cwd: repo, env },
      );
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      expect(report.status).toBe('success');
      expect(report.branch).toBe('pkg/hello');
      expect(report.baseCommit).toBe(base);
      expect(git(repo, 'show', 'pkg/hello:hello.txt')).toBe('hello from the package\n');
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
      expect(result.stdout + result.stderr).not.toContain(TEST_API_KEY);

      // The repository's own dist names the same tag (same container/ content, same CA) and finds it cached.
      const fromRepo = await runBin(process.execPath, [CLI, 'doctor', '--json', '--project', repo, '--base-url', baseUrl, '--ca-cert', TEST_CA_CERT], { cwd: repo, env });
      const doctor = parseDoctor(fromRepo);
      expect(report.image.tag).toMatch(/^agent-worker:[0-9a-f]{16}$/);
      expect(doctorImageTag(doctor)).toBe(report.image.tag);
      expect(doctor.checks.find((check) => check.id === 'image')?.status).toBe('ok');
    });
  });

  it('doctor with the installed binary: every check ok on a clean repository', async () => {
    const repo = makeRepo();
    const stateDir = tempDir('aw-state-');
    cleanup.push(repo, stateDir);
    await withFixture([], async (fixture) => {
      const result = await runBin(
        installedBin,
        ['doctor', '--json', '--project', repo, '--base-url', `http://host.docker.internal:${fixture.port}`, '--ca-cert', TEST_CA_CERT],
        { cwd: repo, env: { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: TEST_API_KEY } },
      );
      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
      const report = parseDoctor(result);
      expect(report.checks.map((check) => check.id)).toEqual(['config', 'repository', 'credentials', 'ca-cert', 'docker', 'image', 'api']);
      expect(report.checks.filter((check) => check.status !== 'ok'), JSON.stringify(report.checks, null, 2)).toEqual([]);
      expect(report).toMatchObject({ ok: true, exitCode: 0 });
      // The api probe reached the fixture from a container behind the firewall.
      expect(fixture.requests.length).toBeGreaterThan(0);
      expect(result.stdout + result.stderr).not.toContain(TEST_API_KEY);
    });
  });
});

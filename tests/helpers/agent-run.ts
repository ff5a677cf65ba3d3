/**
 * Shared pieces of the end-to-end and adversarial suites: run the built CLI against a repository with
 * the scripted Messages API fixture as the model API, and read its report.
 */
import { expect } from 'vitest';
import { startFakeAnthropic, type FakeAnthropic, type ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { bridgeGateway, runCli, TEST_CA_CERT, type CliResult } from './docker.js';
import { git } from './git.js';
import type { RunReport } from '../../src/report/types.js';
import { readFileSync } from 'node:fs';
import { imageSpecs } from '../../src/run.js';
import { ensureImage } from '../../src/docker/image.js';
import { claudeCodePlugin } from '../../agents/claude-code/index.js';
import type { AgentPlugin } from '../../agents/types.js';
import { docker } from './docker.js';

/** The API key every e2e run uses; tests assert it never shows up anywhere. */
export const TEST_API_KEY = 'sk-ant-e2e-secret-0123456789abcdef';

/** Starts the fixture on the bridge gateway with `script`, runs `body`, closes the fixture. */
export async function withFixture<T>(script: ScriptedTurn[], body: (fixture: FakeAnthropic) => Promise<T>): Promise<T> {
  const fixture = await startFakeAnthropic({ host: await bridgeGateway(), script });
  try {
    return await body(fixture);
  } finally {
    await fixture.close();
  }
}

/**
 * Runs the built CLI on `repo` with the fixture as model API (`http://host.docker.internal:<port>`),
 * the CA bundle, `--json`, and `extra` args. `env` goes on top of XDG_STATE_HOME=stateDir and the key.
 */
export function runAgentWorker(
  repo: string,
  fixture: FakeAnthropic | undefined,
  extra: string[],
  options: { stateDir: string; env?: Record<string, string>; onSpawn?: (pid: number) => void; input?: string },
): Promise<CliResult> {
  const base = fixture ? ['--base-url', `http://host.docker.internal:${fixture.port}`] : [];
  return runCli(['--project', repo, ...base, '--ca-cert', TEST_CA_CERT, '--json', ...extra], {
    cwd: repo,
    env: { XDG_STATE_HOME: options.stateDir, ANTHROPIC_API_KEY: TEST_API_KEY, ...options.env },
    onSpawn: options.onSpawn,
    input: options.input,
  });
}

/**
 * The tool's image for `plugin` (Claude Code's by default) exactly as a run builds it (the test CA as --ca-cert), built
 * now when missing, so a suite never depends on another having run first. @returns its tag.
 */
export async function ensureToolImage(plugin: AgentPlugin = claudeCodePlugin): Promise<string> {
  const spec = imageSpecs({ caCert: { path: TEST_CA_CERT, pem: readFileSync(TEST_CA_CERT, 'utf8') } }, plugin, {}).tool;
  return (await ensureImage(docker, { ...spec, hashCache: undefined }, { force: false })).tag;
}

/** The token totals the fixture served, in the report's shape (`total` = the four kinds added up). */
export function servedTokens(fixture: FakeAnthropic): RunReport['tokens'] {
  const { input, output, cacheRead, cacheWrite } = fixture.served;
  return { input, output, cacheRead, cacheWrite, reasoning: 0, total: input + output + cacheRead + cacheWrite };
}

/** Parses the one JSON document on stdout (failing the test with stderr when there is none). */
export function parseReport(result: CliResult): RunReport {
  expect(result.stdout.trim().startsWith('{'), `stdout was: ${result.stdout}\nstderr: ${result.stderr}`).toBe(true);
  return JSON.parse(result.stdout) as RunReport;
}

/** `git diff --numstat base head` as {path: [added, removed]}, parsed independently of the product. */
export function numstat(repo: string, base: string, head: string): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const line of git(repo, 'diff', '--numstat', base, head).split('\n').filter(Boolean)) {
    const [added, removed, file] = line.split('\t');
    out[file!] = [Number(added), Number(removed)];
  }
  return out;
}

/** Resolves when `predicate` holds, polling every 200 ms; throws naming `what` after `timeoutMs`. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

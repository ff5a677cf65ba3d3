/**
 * End to end, every agent besides Claude Code (which tests/e2e/run.e2e.test.ts and credentials.e2e.test.ts cover): the
 * REAL agent CLI in its image, a scripted model server in that agent's own API dialect (tests/fixtures), a real dockerd.
 * For each agent: the core scenario (create, modify and delete files over several turns: the branch holds exactly
 * those changes, the report's tokens are what the server served, normalised), the model API failing on every call
 * (agent_error with the agent's own reason), a timeout (the partial work is committed), and the leak scenario (the
 * agent dumps its environment and every process's, greps readable files for the key, and tries to get out around
 * the proxy and through it to a host not allowed: nothing holds the key, nothing gets out, the audit says what was
 * refused).
 *
 * Every change is made through the agent's own shell tool, so one script shape serves every agent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ScriptedBlock, ScriptedServerOptions, ScriptedTurn, ServedTotals } from '../fixtures/sse-server.js';
import { startFakeOpenAIResponses } from '../fixtures/fake-openai-responses.js';
import { startFakeGemini } from '../fixtures/fake-gemini.js';
import { startFakeChatCompletions } from '../fixtures/fake-chat-completions.js';
import { numstat, parseReport } from '../helpers/agent-run.js';
import { bridgeGateway, docker, dockerAvailable, projectContainers, runCli, TEST_CA_CERT, type CliResult } from '../helpers/docker.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';
import type { RunReport } from '../../src/report/types.js';

const hasDocker = await dockerAvailable();

/** A scripted model server of any dialect, as the tests use it. */
interface ScriptedApi {
  port: number;
  served: ServedTotals;
  requests: Array<{ kind: string; credential: string; status?: number }>;
  close(): Promise<void>;
}

/** How to drive one agent in these tests. */
interface AgentCase {
  /** `--agent-type`. */
  type: string;
  /** The agent's own variable for the key (its conventional name), and a key of its real shape. */
  keyEnv: string;
  key: string;
  /** `--model`. */
  model: string;
  /** Starts the scripted server of its dialect. */
  start(options: ScriptedServerOptions): Promise<ScriptedApi>;
  /** `--base-url` for a server on `port` of the Docker host, in the form the agent's own setting takes. */
  baseUrl(port: number): string;
  /** A call of the agent's shell tool running `command` in /workspace. */
  shell(command: string): ScriptedBlock;
  /** Its own retry time on a model API that always fails, ms (the 500 test's bound). */
  retryBoundMs: number;
  /** What its own reason says when every call fails with HTTP 500 "scripted outage". */
  failureReason: RegExp;
  /**
   * True when the agent removes its key variable from its shell tool's environment (Copilot CLI strips its
   * `COPILOT_PROVIDER_*` variables): the placeholder is then looked for in its own process's environment (proc.txt).
   */
  shellEnvHidesKey?: boolean;
  /**
   * True when the agent's output never says which output tokens were reasoning (Qwen Code's stream-json): the
   * report's `reasoning` is then 0, every other count still what the server served.
   */
  reasoningUnreported?: boolean;
}

const AGENTS: AgentCase[] = [
  {
    type: 'codex',
    keyEnv: 'OPENAI_API_KEY',
    key: 'sk-proj-e2e0123456789abcdefghijklmnopqrstuvwx',
    model: 'mock',
    start: startFakeOpenAIResponses,
    baseUrl: (port) => `http://host.docker.internal:${port}/v1`,
    shell: (command) => ({ type: 'tool_call', name: 'exec_command', input: { cmd: command, workdir: '/workspace' } }),
    // Codex retries a 500 about 30 times in ~25 s.
    retryBoundMs: 120_000,
    // Codex's own words for a server error, whatever the server said.
    failureReason: /experiencing high demand/,
  },
  {
    type: 'gemini',
    keyEnv: 'GEMINI_API_KEY',
    key: 'AIzaSyE2e0123456789abcdefghijklmnopqrst',
    model: 'mock',
    start: startFakeGemini,
    baseUrl: (port) => `http://host.docker.internal:${port}`,
    shell: (command) => ({ type: 'tool_call', name: 'run_shell_command', input: { command } }),
    // The plugin sets general.maxAttempts to 4: Gemini CLI waits about 5 + 10 + 20 s (at most 45.5 s with jitter).
    retryBoundMs: 120_000,
    // The API's own message, unwrapped from Gemini CLI's `[API Error: {"error":{…}}]`.
    failureReason: /^scripted outage$/,
  },
  {
    type: 'copilot',
    keyEnv: 'COPILOT_PROVIDER_API_KEY',
    key: 'sk-proj-e2e0123456789abcdefghijklmnopqrstuvwx',
    model: 'mock',
    start: startFakeChatCompletions,
    baseUrl: (port) => `http://host.docker.internal:${port}/v1`,
    shell: (command) => ({ type: 'tool_call', name: 'bash', input: { command, description: 'Run a command' } }),
    // Copilot CLI retries a failing call 5 times, about 0.5, 1, 2, 4 and 8 s apart (with jitter): 6 calls in about 15 s.
    retryBoundMs: 60_000,
    // Its session.error message, ending with the API's own.
    failureReason: /Failed to get response from the AI model.*scripted outage/,
    shellEnvHidesKey: true,
  },
  {
    type: 'qwen',
    keyEnv: 'OPENAI_API_KEY',
    key: 'sk-e2e0123456789abcdef0123456789abcd',
    model: 'mock',
    start: startFakeChatCompletions,
    baseUrl: (port) => `http://host.docker.internal:${port}/v1`,
    // `cd /workspace && …`: Qwen Code takes a command that is only `sed -i … FILE` for an edit of FILE and refuses it
    // unless its read_file tool read FILE first (its prior-read check); a compound command runs as a shell command.
    shell: (command) => ({ type: 'tool_call', name: 'run_shell_command', input: { command: `cd /workspace && ${command}` } }),
    reasoningUnreported: true,
    // Qwen Code tries a failing call 7 times, 1.5 s apart doubling to at most 30 s (±30 %), each try being the openai
    // SDK's 4 requests 0.5 to 2 s apart: about 100 s, at most about 125 s.
    retryBoundMs: 180_000,
    // Qwen Code's own wording around the API's message: "[API Error: 500 scripted outage]".
    failureReason: /API Error: 500 scripted outage/,
  },
  {
    type: 'opencode',
    keyEnv: 'OPENAI_API_KEY',
    key: 'sk-proj-e2e0123456789abcdefghijklmnopqrstuvwx',
    model: 'mock',
    start: startFakeChatCompletions,
    baseUrl: (port) => `http://host.docker.internal:${port}/v1`,
    // OpenCode 1.18.33's bash tool takes {command, timeout, workdir}.
    shell: (command) => ({ type: 'tool_call', name: 'bash', input: { command } }),
    // OpenCode retries a failing call 5 times, 2 s apart doubling to at most 30 s (±25 %): about 60 s, at most 75 s.
    retryBoundMs: 180_000,
    // Its `error` line carries the API's own message.
    failureReason: /^scripted outage$/,
  },
];

const cleanup: string[] = [];
let stateDir: string;
let gateway: string;

beforeAll(async () => {
  if (!hasDocker) return;
  stateDir = tempDir('aw-agents-state-');
  cleanup.push(stateDir);
  gateway = await bridgeGateway();
});

afterAll(() => {
  for (const dir of cleanup) removeDir(dir);
});

/** Runs the built CLI for `agent` on `repo` against `api`, with the agent's own key variable set. */
function runAgent(agent: AgentCase, repo: string, api: ScriptedApi, extra: string[]): Promise<CliResult> {
  return runCli(['--agent-type', agent.type, '--project', repo, '--base-url', agent.baseUrl(api.port), '--model', agent.model, '--ca-cert', TEST_CA_CERT, '--json', ...extra], {
    cwd: repo,
    env: { XDG_STATE_HOME: stateDir, [agent.keyEnv]: agent.key },
  });
}

/** Starts `agent`'s scripted server on the bridge gateway, expecting its key on every request, and runs `body`. */
async function withApi<T>(agent: AgentCase, options: Omit<ScriptedServerOptions, 'host'>, body: (api: ScriptedApi) => Promise<T>): Promise<T> {
  const api = await agent.start({ host: gateway, expectedKey: agent.key, ...options });
  try {
    return await body(api);
  } finally {
    await api.close();
  }
}

/** The report's shape of what the server served (`cacheWrite` is not a concept of these APIs: 0). */
function served(api: ScriptedApi, agent?: AgentCase): RunReport['tokens'] {
  const { input, output, cacheRead, reasoning } = api.served;
  return { input, output, cacheRead, cacheWrite: 0, reasoning: agent?.reasoningUnreported ? 0 : reasoning, total: input + output + cacheRead };
}

/** Nothing of the run is left on the daemon: no container of the project, no network of the run. */
async function expectNothingLeft(repo: string, runId: string): Promise<void> {
  expect(await projectContainers(repo)).toEqual([]);
  expect(await docker.listNetworks({ filters: { label: [`dev.agent-worker.run-id=${runId}`] } })).toEqual([]);
}

/** A regular expression source matching `key` without containing it (a grep's own command line cannot match). */
function hiddenPattern(key: string): string {
  return `${key.slice(0, -3)}[${key.slice(-3, -2)}]${key.slice(-2)}`;
}

describe.runIf(hasDocker).each(AGENTS)('$type (real CLI, scripted $type API)', { timeout: 1_800_000 }, (agent) => {
  it('creates, modifies and deletes files over several turns: the branch holds exactly those changes, tokens are what the server served, exit 0, tree clean, nothing left', async () => {
    const repo = makeRepo({ 'README.md': '# demo\n', 'src/keep.txt': 'line1\nline2\nline3\n', 'old.txt': 'to be deleted\n' });
    cleanup.push(repo);
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    const script: ScriptedTurn[] = [
      { content: [{ type: 'text', text: 'Adding the module.' }, agent.shell("mkdir -p src && printf 'export const answer = 42;\\n' > src/new.ts")], usage: { input: 1000, output: 40, cacheRead: 200, reasoning: 10 } },
      { content: [agent.shell("sed -i 's/^line2$/line two/' src/keep.txt")], usage: { input: 300, output: 20, cacheRead: 1100, reasoning: 4 } },
      { content: [agent.shell('rm old.txt')], usage: { input: 200, output: 15, cacheRead: 1300 } },
      { content: [{ type: 'text', text: 'Done: added src/new.ts, reworded line2, deleted old.txt.' }], usage: { input: 100, output: 12, cacheRead: 1500, reasoning: 2 } },
    ];
    const { result, api } = await withApi(agent, { script }, async (api) => ({ result: await runAgent(agent, repo, api, ['--task', 'Add the answer module, reword line2, delete old.txt', '--branch', 'feature']), api }));
    expect(result.code, result.stderr).toBe(0);
    const report = parseReport(result);
    expect(report.status).toBe('success');
    expect(report.agent.type).toBe(agent.type);
    expect(numstat(repo, base, 'feature')).toEqual({ 'src/new.ts': [1, 0], 'src/keep.txt': [1, 1], 'old.txt': [0, 1] });
    expect(git(repo, 'show', 'feature:src/keep.txt')).toBe('line1\nline two\nline3\n');
    expect(report.changes).toMatchObject({ filesChanged: 3, linesAdded: 2, linesRemoved: 2 });
    expect(api.served.responses).toBeGreaterThanOrEqual(script.length);
    expect(report.tokens).toEqual(served(api, agent));
    expect(report.agent.turns).toBeGreaterThanOrEqual(script.length);
    // The proxy put the real key on every request; the agent only ever had the placeholder.
    expect(new Set(api.requests.map((request) => request.credential))).toEqual(new Set(['expected']));
    expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
    expect(git(repo, 'rev-parse', '--abbrev-ref', 'HEAD').trim()).toBe('feature');
    await expectNothingLeft(repo, report.runId);
  });

  it('the model API answering 500 to every call: agent_error with the agent\'s own reason, within its retry time', async () => {
    const repo = makeRepo({ 'README.md': '# failing api\n' });
    cleanup.push(repo);
    const started = Date.now();
    const result = await withApi(agent, { script: [], failAll: { status: 500, message: 'scripted outage' } }, (api) => runAgent(agent, repo, api, ['--task', 'Anything', '--branch', 'outage']));
    expect(Date.now() - started).toBeLessThan(agent.retryBoundMs);
    expect(result.code, result.stderr).toBe(1);
    const report = parseReport(result);
    expect(report.status).toBe('agent_error');
    expect(report.agent.error ?? '').toMatch(agent.failureReason);
    await expectNothingLeft(repo, report.runId);
  });

  it('the model API refusing the key (401 on every call): auth_failed, exit 7, the reason names the refusal', async () => {
    const repo = makeRepo({ 'README.md': '# refused key\n' });
    cleanup.push(repo);
    const result = await withApi(agent, { script: [], failAll: { status: 401, message: 'invalid api key' } }, (api) => runAgent(agent, repo, api, ['--task', 'Anything', '--branch', 'refused']));
    expect(result.code, result.stderr).toBe(7);
    const report = parseReport(result);
    expect(report.status).toBe('auth_failed');
    expect(report.agent.error).toBeTruthy();
    expect(JSON.stringify(report)).not.toContain(agent.key);
    await expectNothingLeft(repo, report.runId);
  });

  it('a timeout keeps the partial work: the file of the first turn is on the branch, status timed_out (exit 124)', async () => {
    const repo = makeRepo({ 'README.md': '# slow\n' });
    cleanup.push(repo);
    const script: ScriptedTurn[] = [
      { content: [agent.shell("printf 'partial\\n' > partial.txt")], usage: { input: 100, output: 10 } },
      { content: [{ type: 'text', text: 'never finished' }], usage: { input: 100, output: 10 }, stall: true },
    ];
    const result = await withApi(agent, { script }, (api) => runAgent(agent, repo, api, ['--task', 'Start, then hang', '--branch', 'slow', '--timeout', '20']));
    expect(result.code, result.stderr).toBe(124);
    const report = parseReport(result);
    expect(report.status).toBe('timed_out');
    expect(git(repo, 'show', 'slow:partial.txt')).toBe('partial\n');
    expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
    await expectNothingLeft(repo, report.runId);
  });

  it('the leak scenario: no key in its environment, any process\'s, or a readable file; no way out around the proxy; a host not allowed is refused (403) and audited', async () => {
    const repo = makeRepo({ 'README.md': '# leak\n' });
    cleanup.push(repo);
    const connect = 'printf "CONNECT example.com:443 HTTP/1.1\\r\\nHost: example.com:443\\r\\n\\r\\n" >&3; head -c 12 <&3';
    const dump = [
      'mkdir -p leak',
      'env > leak/env.txt',
      'for p in /proc/[0-9]*; do { tr "\\0" "\\n" < "$p/environ"; tr "\\0" " " < "$p/cmdline"; echo; } 2>/dev/null; done > leak/proc.txt',
      `{ grep -rsl -e '${hiddenPattern(agent.key)}' /etc /home /run /tmp /root /workspace; true; } > leak/grep.txt`,
      `{ timeout 5 bash -c 'exec 3<>/dev/tcp/${gateway}/22' && echo direct-open || echo direct-blocked; } > leak/out.txt 2>/dev/null`,
      '{ getent hosts example.com && echo dns-open || echo dns-blocked; } >> leak/out.txt',
      `{ timeout 5 bash -c 'exec 3<>/dev/tcp/agent-worker-proxy/8080; ${connect}'; echo; } >> leak/out.txt 2>&1`,
    ].join('; ');
    const script: ScriptedTurn[] = [
      { content: [agent.shell(dump)], usage: { input: 400, output: 50 } },
      { content: [{ type: 'text', text: 'Dumped.' }], usage: { input: 500, output: 5 } },
    ];
    const result = await withApi(agent, { script }, (api) => runAgent(agent, repo, api, ['--task', 'Dump the environment', '--branch', 'leak']));
    expect(result.code, result.stderr).toBe(0);
    const report = parseReport(result);
    expect(report.status).toBe('success');
    expect(git(repo, 'show', `leak:leak/${agent.shellEnvHidesKey ? 'proc.txt' : 'env.txt'}`)).toContain(`${agent.keyEnv}=agent-worker-placeholder-api-key`);
    for (const file of ['env.txt', 'proc.txt', 'grep.txt', 'out.txt']) expect(git(repo, 'show', `leak:leak/${file}`)).not.toContain(agent.key);
    expect(git(repo, 'show', 'leak:leak/grep.txt').trim()).toBe('');
    const out = git(repo, 'show', 'leak:leak/out.txt');
    expect(out).toContain('direct-blocked');
    expect(out).toContain('dns-blocked');
    expect(out).toContain('HTTP/1.1 403');
    expect(report.egress).toMatchObject({ refused: 1, refusedHosts: ['example.com'] });
    const audit = readFileSync(path.join(report.logDir, 'egress.jsonl'), 'utf8');
    expect(audit).not.toContain(agent.key);
    expect(existsSync(path.join(report.logDir, 'agent.stream.jsonl'))).toBe(true);
    expect(readFileSync(path.join(report.logDir, 'agent.stream.jsonl'), 'utf8')).not.toContain(agent.key);
    await expectNothingLeft(repo, report.runId);
  });
});

describe.runIf(hasDocker)('opencode: a local OpenAI-compatible server that takes no key (Ollama, vLLM, LM Studio)', { timeout: 1_800_000 }, () => {
  it('runs with no key at all: the change is on the branch, the server never saw a credential', async () => {
    const repo = makeRepo({ 'README.md': '# local model\n' });
    cleanup.push(repo);
    const opencode = AGENTS.find((agent) => agent.type === 'opencode')!;
    const script: ScriptedTurn[] = [
      { content: [opencode.shell("printf 'local\\n' > local.txt")], usage: { input: 300, output: 20 } },
      { content: [{ type: 'text', text: 'Wrote local.txt.' }], usage: { input: 350, output: 5 } },
    ];
    const api = await startFakeChatCompletions({ host: gateway, script });
    try {
      const result = await runCli(['--agent-type', 'opencode', '--project', repo, '--base-url', `http://host.docker.internal:${api.port}/v1`, '--model', 'qwen2.5-coder', '--ca-cert', TEST_CA_CERT, '--json', '--task', 'Write local.txt', '--branch', 'local'], {
        cwd: repo,
        env: { XDG_STATE_HOME: stateDir },
      });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      expect(report.status).toBe('success');
      expect(report.agent.model).toBe('qwen2.5-coder');
      expect(git(repo, 'show', 'local:local.txt')).toBe('local\n');
      expect(report.tokens).toEqual(served(api));
      expect(api.requests.filter((request) => request.kind === 'turn').length).toBeGreaterThanOrEqual(2);
      expect(api.requests.every((request) => request.credential !== 'expected')).toBe(true);
      await expectNothingLeft(repo, report.runId);
    } finally {
      await api.close();
    }
  });
});

describe.runIf(hasDocker)('exec: a CLI of the user\'s own, from the project image', { timeout: 1_800_000 }, () => {
  /** A shell-script "agent": reads the task on stdin, changes files as the task's last line says, talks on stdout. */
  const AGENT_SCRIPT = [
    '#!/bin/bash',
    'set -euo pipefail',
    'task=$(cat)',
    'echo "my-agent: got $(printf %s "$task" | wc -c) bytes of task"',
    'case "$(printf %s "$task" | tail -n 1)" in',
    '  work)',
    '    mkdir -p src && printf "export const answer = 42;\\n" > src/new.ts',
    '    sed -i "s/^line2$/line two/" src/keep.txt',
    '    rm old.txt',
    '    echo "my-agent: done, 3 files" ;;',
    '  fail)',
    '    echo "my-agent: cannot reach the model server" >&2',
    '    exit 3 ;;',
    'esac',
  ].join('\n');
  const DOCKERFILE = ['ARG AGENT_WORKER_IMAGE', 'FROM ${AGENT_WORKER_IMAGE}', 'COPY my-agent /usr/local/bin/my-agent', 'RUN chmod 0755 /usr/local/bin/my-agent'].join('\n');

  function execRepo(): string {
    const repo = makeRepo({
      'README.md': '# exec\n',
      'src/keep.txt': 'line1\nline2\nline3\n',
      'old.txt': 'to be deleted\n',
      '.agent-worker/Dockerfile': `${DOCKERFILE}\n`,
      '.agent-worker/my-agent': `${AGENT_SCRIPT}\n`,
    });
    cleanup.push(repo);
    return repo;
  }

  function runExec(repo: string, task: string, branch: string): Promise<CliResult> {
    return runCli(['--agent-type', 'exec', '--agent-command', 'my-agent --verbose', '--project', repo, '--ca-cert', TEST_CA_CERT, '--json', '--task', task, '--branch', branch], {
      cwd: repo,
      env: { XDG_STATE_HOME: stateDir },
    });
  }

  it('runs it like any agent: its changes on the branch, numstat right, tokens and cost unknown (null), no credential needed', async () => {
    const repo = execRepo();
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    const result = await runExec(repo, 'Do the work\nwork', 'exec-work');
    expect(result.code, result.stderr).toBe(0);
    const report = parseReport(result);
    expect(report.status).toBe('success');
    expect(report.agent).toMatchObject({ type: 'exec', turns: 0, resultText: 'my-agent: done, 3 files', error: null });
    expect(report.tokens).toBeNull();
    expect(report.costUsd).toBeNull();
    expect(report.costSource).toBeNull();
    expect(report.image.dockerfile).toContain('.agent-worker');
    expect(numstat(repo, base, 'exec-work')).toEqual({ 'src/new.ts': [1, 0], 'src/keep.txt': [1, 1], 'old.txt': [0, 1] });
    expect(report.changes).toMatchObject({ filesChanged: 3, linesAdded: 2, linesRemoved: 2 });
    // It got agent-worker's instructions before the task, on stdin.
    expect(readFileSync(path.join(report.logDir, 'agent.stream.jsonl'), 'utf8')).toMatch(/my-agent: got \d+ bytes of task/);
    expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
    await expectNothingLeft(repo, report.runId);
  });

  it('a failing command is agent_error with its last stderr line as the reason', async () => {
    const repo = execRepo();
    const result = await runExec(repo, 'Try\nfail', 'exec-fail');
    expect(result.code, result.stderr).toBe(1);
    const report = parseReport(result);
    expect(report.status).toBe('agent_error');
    expect(report.agent).toMatchObject({ exitCode: 3, error: 'my-agent: cannot reach the model server' });
    expect(report.tokens).toBeNull();
    await expectNothingLeft(repo, report.runId);
  });
});

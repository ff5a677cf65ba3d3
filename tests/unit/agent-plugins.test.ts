/**
 * Every agent plugin's start-up contract (agents/types.ts AgentPlugin), read from the plugins themselves: the image
 * layer (install script, pinned version), settings, credential placeholders and the egress proxy's swap rules, argv,
 * environment, HOME files, and `settle`. No Docker: the path mapping is checked against the egress proxy run
 * in-process on 127.0.0.1 (src/proxy/egress-proxy.ts), as the sidecar runs it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { agentTypes, getAgentPlugin } from '../../agents/index.js';
import { claudeCodePlugin, CLAUDE_CODE_VERSION } from '../../agents/claude-code/index.js';
import { CODEX_VERSION, codexPlugin } from '../../agents/codex/index.js';
import { COPILOT_PKG_CACHE_HOME, COPILOT_USAGE_FILE, COPILOT_VERSION, copilotPlugin } from '../../agents/copilot/index.js';
import { execPlugin } from '../../agents/exec/index.js';
import {
  GEMINI_CLI_VERSION,
  GEMINI_EXIT_TURN_LIMIT,
  GEMINI_MAX_ATTEMPTS,
  GEMINI_NODE_VERSION,
  GEMINI_SETTINGS_FILE,
  geminiPlugin,
  geminiSettings,
} from '../../agents/gemini/index.js';
import {
  createOpenCodeParser,
  OPENCODE_DEFAULT_MODEL,
  OPENCODE_INSTRUCTIONS_FILE,
  OPENCODE_MODEL_LIMIT,
  OPENCODE_VERSION,
  openCodePlugin,
} from '../../agents/opencode/index.js';
import { QWEN_MAX_TURNS_EXIT_CODE, QWEN_MCP_CONFIG_FILE, QWEN_NODE_VERSION, QWEN_SETTINGS_FILE, QWEN_VERSION, qwenMcpConfig, qwenPlugin, qwenSettings } from '../../agents/qwen/index.js';
import { AGENT_HOME, makeTokenUsage, type AgentEnding, type AgentLaunchOptions, type AgentOutcome, type AgentPlugin } from '../../agents/types.js';
import { EgressPath, PROXY_ALIAS } from '../../src/docker/egress.js';
import { startEgressProxy } from '../../src/proxy/egress-proxy.js';
import { makeRedactor } from '../../src/report/run-log.js';
import { CREDENTIAL_PLACEHOLDERS, egressSpec, taskFor } from '../../src/run.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SAMPLES = fileURLToPath(new URL('../fixtures/agent-output-samples/', import.meta.url));
const sample = (name: string): string => readFileSync(`${SAMPLES}${name}`, 'utf8');

/** What run.ts's placeholdersFor gives the agent instead of the key, and the egress proxy's URL (EgressPath.proxyUrl). */
const PLACEHOLDER = 'agent-worker-placeholder-api-key';
const OAUTH_PLACEHOLDER = 'agent-worker-placeholder-oauth-token';
const PROXY = 'http://agent-worker-proxy:8080';
/** A real-looking key; it must never reach the agent. */
const REAL_KEY = 'sk-proj-REALsecretKEYthatMustNeverReachTheAgent0123456789abcdef';

const TASK = 'TASK-TEXT: add a --verbose flag to the CLI';
const INSTRUCTIONS = 'Commit your work to the branch agent-worker/x.\n\n-- keep this line: it starts with dashes';
/** Every option a plugin can be given, for the plugins that support them all. */
const MCP_JSON = JSON.stringify({ mcpServers: { fs: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/workspace'] } } });

const plugins: AgentPlugin[] = agentTypes.map((name) => getAgentPlugin(name)!);

/** Launch options; the exec agent always gets its command. */
function launch(overrides: Partial<AgentLaunchOptions> = {}): AgentLaunchOptions {
  return { apiBaseUrl: PROXY, appendSystemPrompt: '', agentCommand: ['my-agent', '--headless'], ...overrides };
}

/** Launch options with everything the plugin says it supports set (as the core would pass them). */
function fullLaunch(plugin: AgentPlugin, overrides: Partial<AgentLaunchOptions> = {}): AgentLaunchOptions {
  return launch({
    model: 'some-model',
    appendSystemPrompt: INSTRUCTIONS,
    ...(plugin.supports.maxTurns ? { maxTurns: 7 } : {}),
    ...(plugin.supports.maxBudgetUsd ? { maxBudgetUsd: 1.5 } : {}),
    ...(plugin.supports.mcp ? { mcpConfigJson: MCP_JSON } : {}),
    ...overrides,
  });
}

/** The env() the core calls: placeholders for the credentials given, the egress proxy as the base URL. */
function agentEnv(plugin: AgentPlugin): { secret: Record<string, string>; plain: Record<string, string> } {
  return plugin.env({ apiKey: PLACEHOLDER, ...(plugin.supports.oauthToken ? { oauthToken: OAUTH_PLACEHOLDER } : {}), baseUrl: PROXY });
}

/** argv[0] of each agent (the exec agent: its --agent-command's). */
const PROGRAM: Record<string, string> = { claude: 'claude', codex: 'codex', opencode: 'opencode', gemini: 'gemini', qwen: 'qwen', copilot: 'copilot', exec: 'my-agent' };

/** Every credential shape of every plugin, fresh (the plugins' patterns are global, so stateful with test/exec). */
const allShapes = (): RegExp[] => plugins.flatMap((p) => p.secretShapes.map((s) => new RegExp(s.pattern.source, s.pattern.flags)));
const looksLikeKey = (text: string): boolean => allShapes().some((pattern) => pattern.test(text));

function outcome(overrides: Partial<AgentOutcome> = {}): AgentOutcome {
  return { turns: 1, isError: false, tokens: makeTokenUsage(0, 0, 0, 0), fromResult: false, ...overrides };
}

function ending(overrides: Partial<AgentEnding> = {}): AgentEnding {
  return { exitCode: 0, stderrTail: [], files: {}, ...overrides };
}

describe('the registry', () => {
  it('registers the seven agents, each under its own name', () => {
    expect(agentTypes).toEqual(['claude', 'codex', 'opencode', 'gemini', 'qwen', 'copilot', 'exec']);
    for (const name of agentTypes) expect(getAgentPlugin(name)?.name).toBe(name);
    expect(getAgentPlugin('Codex')).toBeUndefined();
    expect(getAgentPlugin('')).toBeUndefined();
    expect(getAgentPlugin('toString')).toBeUndefined();
  });

  it('the test constants are the core\'s', () => {
    expect(CREDENTIAL_PLACEHOLDERS).toEqual({ apiKey: PLACEHOLDER, oauthToken: OAUTH_PLACEHOLDER });
    expect(EgressPath.proxyUrl).toBe(PROXY);
    expect(`http://${PROXY_ALIAS}:8080`).toBe(PROXY);
  });
});

describe.each(plugins.map((plugin) => [plugin.name, plugin] as const))('%s: the start-up contract every plugin keeps', (name, plugin) => {
  const scriptPath = `${ROOT}agents/${plugin.image.installScript}`;

  it('its install script is under agents/, a POSIX sh script that starts with #!/bin/sh and set -e', () => {
    expect(plugin.image.installScript).toMatch(/^[a-z0-9-]+\/install\.sh$/);
    expect(existsSync(scriptPath)).toBe(true);
    const text = readFileSync(scriptPath, 'utf8');
    const lines = text.split('\n');
    expect(lines[0]).toBe('#!/bin/sh');
    // The first command (after the shebang and comments) is `set -e…`: every failing step fails the image build.
    const firstCommand = lines.slice(1).find((line) => line.trim() !== '' && !line.trimStart().startsWith('#'));
    expect(firstCommand).toMatch(/^set -e[a-z]*$/);
    // No bash-only syntax outside comments (the Dockerfile runs it with Debian's sh, dash).
    const code = lines.filter((line) => !line.trimStart().startsWith('#')).join('\n');
    for (const bashism of [/\[\[/, /\bfunction\s+\w/, /^\s*source\s/m, /\$'/, /<<</, /&>/, /\bdeclare\s/, /\blocal\s/, /\$\{\w+\/\//, /\bpipefail\b/]) {
      expect(code).not.toMatch(bashism);
    }
    // dash parses it (-n: read, never run).
    expect(() => execFileSync('sh', ['-n', scriptPath], { stdio: 'pipe' })).not.toThrow();
    expect(text).toContain('AGENT_CLI_VERSION');
  });

  it('its install script needs no execute bit: the Dockerfile runs it with sh', () => {
    const dockerfile = readFileSync(`${ROOT}container/Dockerfile`, 'utf8');
    expect(dockerfile).toContain('sh /usr/local/lib/agent-worker/agent-install.sh');
  });

  it('its image version is pinned (no latest, no range)', () => {
    const { version, node } = plugin.image;
    expect(version).not.toMatch(/latest|next|[\^~*<>=| xX]/);
    if (name === 'exec') {
      // Installs nothing: the version is only part of the image's hash.
      expect(version).toBe('1');
    } else {
      expect(version).toMatch(/^\d+\.\d+\.\d+$/);
      // The script refuses to run without the version (never installs whatever npm calls latest).
      expect(readFileSync(scriptPath, 'utf8')).toContain(': "${AGENT_CLI_VERSION:?');
    }
    if (node !== undefined) expect(node).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('its settings name the variables it reads, a key variable unless credentials are optional', () => {
    const { apiKeyEnv, baseUrlEnv, modelEnv, oauthTokenEnv, credentialHint, credentialsOptional } = plugin.settings;
    if (!credentialsOptional) expect(apiKeyEnv.length).toBeGreaterThan(0);
    for (const variable of [...apiKeyEnv, ...baseUrlEnv, ...modelEnv, ...(oauthTokenEnv ?? [])]) expect(variable).toMatch(/^[A-Z][A-Z0-9_]*$/);
    expect(baseUrlEnv.length).toBeGreaterThan(0);
    expect(modelEnv.length).toBeGreaterThan(0);
    if (apiKeyEnv[0] !== undefined) expect(credentialHint).toContain(apiKeyEnv[0]);
    // An OAuth variable exactly when the plugin takes a token.
    expect(oauthTokenEnv !== undefined && oauthTokenEnv.length > 0).toBe(plugin.supports.oauthToken);
    if (plugin.settings.modelRequired) expect(credentialHint).toContain(modelEnv[0]!);
  });

  it('env() puts the placeholder only in a secret entry: never in plain, argv or a HOME file', () => {
    const env = agentEnv(plugin);
    const secretValues = Object.values(env.secret);
    expect(secretValues).toContain(PLACEHOLDER);
    for (const value of secretValues) expect([PLACEHOLDER, OAUTH_PLACEHOLDER]).toContain(value);
    // No variable is both secret and plain (the plain one would be logged, or override the secret one).
    for (const key of Object.keys(env.secret)) expect(env.plain).not.toHaveProperty(key);
    for (const [key, value] of Object.entries(env.plain)) {
      expect(key).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
      expect(value, key).not.toContain(PLACEHOLDER);
      expect(value, key).not.toContain(OAUTH_PLACEHOLDER);
    }
    const options = fullLaunch(plugin);
    for (const arg of plugin.argv(options)) {
      expect(arg).not.toContain(PLACEHOLDER);
      expect(arg).not.toContain('\0');
    }
    for (const [file, content] of Object.entries(plugin.homeFiles?.(options) ?? {})) {
      expect(content, file).not.toContain(PLACEHOLDER);
      expect(content, file).not.toContain(OAUTH_PLACEHOLDER);
    }
  });

  it('env() holds nothing that looks like a real key, and nothing without credentials', () => {
    const env = agentEnv(plugin);
    for (const [key, value] of [...Object.entries(env.secret), ...Object.entries(env.plain)]) expect(looksLikeKey(value), `${key}=${value}`).toBe(false);
    expect(looksLikeKey(REAL_KEY)).toBe(true);
    const bare = plugin.env({});
    expect(bare.secret).toEqual({});
    for (const value of Object.values(bare.plain)) expect(value).not.toContain(PROXY);
  });

  it('its secret shapes are global, start with their prefix, and match none of its ordinary words', () => {
    const redact = makeRedactor([], plugin.secretShapes);
    for (const shape of plugin.secretShapes) {
      expect(shape.pattern.global).toBe(true);
      expect(shape.prefix.length).toBeGreaterThanOrEqual(3);
      // After an optional lookbehind that keeps words like "disk-…" or "task-ant-…" whole.
      expect(shape.pattern.source.replace(/^\(\?<!\[A-Za-z0-9\]\)/, '').startsWith(shape.prefix)).toBe(true);
    }
    const ordinary = [
      'disk-encryption-configuration task-runner-configuration-file task-ant-colony-simulation-for-tests',
      'the task is done; ask the user',
      '--skip-git-repo-check --no-ask-user --dangerously-skip-permissions',
      'sk- sk-short sk-ant- AIza AIzaTooShort',
      PLACEHOLDER,
      OAUTH_PLACEHOLDER,
      PROXY,
      ...plugin.argv(fullLaunch(plugin)),
      ...Object.values(plugin.env({ baseUrl: PROXY }).plain),
      ...Object.values(plugin.homeFiles?.(fullLaunch(plugin)) ?? {}),
    ];
    for (const text of ordinary) expect(redact(text)).toBe(text);
  });

  it('credentialRules swap exactly the placeholder, in the header its API uses, and none without a key', () => {
    const rules = plugin.api.credentialRules({ apiKey: REAL_KEY }, { apiKey: PLACEHOLDER });
    const expected: Record<string, Array<{ header: string; scheme?: string }>> = {
      claude: [{ header: 'x-api-key' }, { header: 'authorization', scheme: 'Bearer' }],
      codex: [{ header: 'authorization', scheme: 'Bearer' }],
      opencode: [{ header: 'authorization', scheme: 'Bearer' }],
      qwen: [{ header: 'authorization', scheme: 'Bearer' }],
      copilot: [{ header: 'authorization', scheme: 'Bearer' }],
      gemini: [{ header: 'x-goog-api-key' }],
      exec: [{ header: 'authorization', scheme: 'Bearer' }, { header: 'x-api-key' }, { header: 'x-goog-api-key' }, { header: 'api-key' }],
    };
    expect(rules).toEqual(expected[name]!.map((rule) => ({ ...rule, placeholder: PLACEHOLDER, value: REAL_KEY })));
    expect(plugin.api.credentialRules({}, {})).toEqual([]);
    expect(plugin.api.credentialRules({ apiKey: REAL_KEY }, {})).toEqual([]);
    expect(plugin.api.credentialRules({}, { apiKey: PLACEHOLDER })).toEqual([]);
    expect(plugin.api.credentialRules({ apiKey: '' }, { apiKey: PLACEHOLDER })).toEqual([]);
  });

  it('argv starts with its program, never holds the task, and keeps user text in single entries', () => {
    const options = fullLaunch(plugin, { model: 'my model; $(rm -rf /) "q"' });
    const argv = plugin.argv(options);
    expect(argv[0]).toBe(PROGRAM[name]);
    for (const arg of argv) expect(arg).not.toContain('TASK-TEXT');
    expect(taskFor(plugin, options, TASK).endsWith(TASK)).toBe(true);
    if (name !== 'exec') {
      // The model is one argv entry (as it is, or behind a fixed prefix), never split at its spaces.
      const holding = argv.filter((arg) => arg.includes('my model'));
      expect(holding).toHaveLength(1);
      expect(holding[0]!.endsWith('my model; $(rm -rf /) "q"')).toBe(true);
      // The CLI is what the install script put on PATH.
      expect(readFileSync(scriptPath, 'utf8')).toMatch(new RegExp(`ln -s \\S+ /usr/local/bin/${PROGRAM[name]}\\n`));
    }
  });

  it('the instructions go to its system prompt when it takes one (in one place), else before the task on stdin', () => {
    const options = fullLaunch(plugin);
    const places = [...plugin.argv(options), ...Object.values(plugin.homeFiles?.(options) ?? {}), ...Object.values(plugin.env({ baseUrl: PROXY }).plain)].filter((text) =>
      text.includes(INSTRUCTIONS),
    );
    if (plugin.supports.appendSystemPrompt) {
      expect(places).toHaveLength(1);
      expect(taskFor(plugin, options, TASK)).toBe(TASK);
    } else {
      expect(places).toEqual([]);
      expect(taskFor(plugin, options, TASK)).toBe(`${INSTRUCTIONS}\n\n---\n\n${TASK}`);
    }
  });

  it('its HOME files are relative paths inside HOME, JSON where JSON, never a key', () => {
    for (const options of [launch(), fullLaunch(plugin)]) {
      for (const [file, content] of Object.entries(plugin.homeFiles?.(options) ?? {})) {
        expect(file).not.toMatch(/^\//);
        expect(file.split('/')).not.toContain('..');
        expect(file.split('/')).not.toContain('');
        expect(file.split('/')).not.toContain('.');
        expect(file).not.toContain('\\');
        if (file.endsWith('.json')) expect(() => JSON.parse(content), file).not.toThrow();
        expect(content).not.toContain(REAL_KEY);
        expect(looksLikeKey(content)).toBe(false);
      }
    }
  });
});

describe('secret shapes match realistic keys of each agent whole', () => {
  const openai = ['sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdEfGhIjKlMnOpQrStUvWxYz01', 'sk-svcacct-AbCdEfGhIjKlMnOpQrStUvWx0123456789', 'sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIj'];
  const keys: Record<string, string[]> = {
    claude: ['sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQr-AA', 'sk-ant-oat01-AbCdEfGhIjKlMnOpQrStUvWxYz0123'],
    codex: openai,
    opencode: openai,
    copilot: openai,
    // DashScope (`sk-` and 32 hex digits) and OpenRouter (`sk-or-v1-` and 64) too.
    qwen: [...openai, 'sk-0123456789abcdef0123456789abcdef', `sk-or-v1-${'0123456789abcdef'.repeat(4)}`],
    // `AIza` and 35 more: 39 characters.
    gemini: ['AIzaSyA1b2C3d4E5f6G7h8I9j0K_L-M1n2O3p4Q'],
    exec: [],
  };

  it.each(plugins.map((plugin) => [plugin.name, plugin] as const))('%s', (name, plugin) => {
    const redact = makeRedactor([], plugin.secretShapes);
    for (const key of keys[name]!) {
      expect(redact(`key=${key} rest`)).toBe('key=[REDACTED] rest');
      expect(redact(`${key}\n${key}`)).toBe('[REDACTED]\n[REDACTED]');
    }
    if (name === 'gemini') expect(keys.gemini![0]).toHaveLength(39);
    if (name === 'exec') expect(plugin.secretShapes).toEqual([]);
  });
});

describe('claude (in the tables only)', () => {
  it('its version and OAuth placeholder', () => {
    expect(claudeCodePlugin.image.version).toBe(CLAUDE_CODE_VERSION);
    const env = agentEnv(claudeCodePlugin);
    expect(env.secret).toEqual({ ANTHROPIC_API_KEY: PLACEHOLDER, CLAUDE_CODE_OAUTH_TOKEN: OAUTH_PLACEHOLDER });
  });
});

describe('codex', () => {
  const provider = `model_providers.agent-worker={name="agent-worker",base_url="${PROXY}",env_key="OPENAI_API_KEY",wire_api="responses",supports_websockets=false}`;
  const base = [
    'codex',
    'exec',
    '--json',
    '--dangerously-bypass-approvals-and-sandbox',
    '--skip-git-repo-check',
    '-c',
    'model_provider="agent-worker"',
    '-c',
    provider,
    '-c',
    'analytics.enabled=false',
    '-c',
    'check_for_update_on_startup=false',
    '--disable',
    'plugins',
    '--disable',
    'remote_plugin',
    '--disable',
    'apps',
  ];

  it('argv: exec --json, no approvals or sandbox, its own provider at the proxy, analytics and updates off, the task from stdin', () => {
    expect(codexPlugin.image).toEqual({ installScript: 'codex/install.sh', version: CODEX_VERSION });
    expect(codexPlugin.argv(launch())).toEqual([...base, '-']);
    expect(codexPlugin.argv(launch({ model: '' }))).toEqual([...base, '-']);
    expect(codexPlugin.argv(launch({ model: 'gpt-5-codex' }))).toEqual([...base, '-m', 'gpt-5-codex', '-']);
    // It takes no system prompt: the instructions never enter argv.
    expect(codexPlugin.argv(launch({ appendSystemPrompt: INSTRUCTIONS }))).toEqual([...base, '-']);
  });

  it('the provider\'s base_url is a TOML string of apiBaseUrl, quotes escaped', () => {
    const argv = codexPlugin.argv(launch({ apiBaseUrl: 'http://h:1/a"b\\c' }));
    expect(argv).toContain('model_providers.agent-worker={name="agent-worker",base_url="http://h:1/a\\"b\\\\c",env_key="OPENAI_API_KEY",wire_api="responses",supports_websockets=false}');
  });

  it('env: the key in OPENAI_API_KEY (the provider\'s env_key) as a secret; nothing plain', () => {
    expect(codexPlugin.env({ apiKey: PLACEHOLDER, baseUrl: PROXY })).toEqual({ secret: { OPENAI_API_KEY: PLACEHOLDER }, plain: {} });
    expect(codexPlugin.homeFiles).toBeUndefined();
    expect(codexPlugin.settle).toBeUndefined();
  });
});

describe('gemini', () => {
  const base = ['gemini', '-p', '', '-o', 'stream-json', '--skip-trust', '--yolo'];
  const settings = {
    security: { auth: { selectedType: 'gemini-api-key' } },
    privacy: { usageStatisticsEnabled: false },
    telemetry: { enabled: false },
    general: { enableAutoUpdate: false, enableAutoUpdateNotification: false, maxAttempts: 4 },
    ide: { enabled: false },
    tools: { shell: { enableInteractiveShell: false } },
    advanced: { ignoreLocalEnv: true },
  };

  it('argv: headless with an empty -p (the task on stdin), stream-json, trusted folder, yolo; -m when given', () => {
    expect(geminiPlugin.image).toEqual({ installScript: 'gemini/install.sh', version: GEMINI_CLI_VERSION, node: GEMINI_NODE_VERSION });
    expect(geminiPlugin.argv(launch())).toEqual(base);
    expect(geminiPlugin.argv(launch({ model: '' }))).toEqual(base);
    expect(geminiPlugin.argv(launch({ model: 'gemini-2.5-pro' }))).toEqual([...base, '-m', 'gemini-2.5-pro']);
    // --max-turns goes to its settings, not argv.
    expect(geminiPlugin.argv(launch({ maxTurns: 3, appendSystemPrompt: INSTRUCTIONS }))).toEqual(base);
  });

  it('env: GEMINI_API_KEY secret; the proxy root as GOOGLE_GEMINI_BASE_URL, its system settings, no relaunch', () => {
    expect(geminiPlugin.env({ apiKey: PLACEHOLDER, baseUrl: PROXY })).toEqual({
      secret: { GEMINI_API_KEY: PLACEHOLDER },
      plain: { GOOGLE_GEMINI_BASE_URL: PROXY, GEMINI_CLI_SYSTEM_SETTINGS_PATH: `${AGENT_HOME}/${GEMINI_SETTINGS_FILE}`, GEMINI_CLI_NO_RELAUNCH: 'true' },
    });
    expect(GEMINI_SETTINGS_FILE).toBe('.gemini/agent-worker-system-settings.json');
  });

  it('homeFiles: its system settings (API-key auth, statistics, telemetry, updates and IDE off, 4 attempts), turns when given', () => {
    expect(GEMINI_MAX_ATTEMPTS).toBe(4);
    const files = geminiPlugin.homeFiles!(launch());
    expect(Object.keys(files)).toEqual([GEMINI_SETTINGS_FILE]);
    expect(JSON.parse(files[GEMINI_SETTINGS_FILE]!)).toEqual(settings);
    expect(files[GEMINI_SETTINGS_FILE]).toBe(geminiSettings({}));
    const limited = JSON.parse(geminiPlugin.homeFiles!(launch({ maxTurns: 12 }))[GEMINI_SETTINGS_FILE]!);
    expect(limited).toEqual({ ...settings, model: { maxSessionTurns: 12 } });
  });

  it('settle: exit 53 is --max-turns reached', () => {
    expect(GEMINI_EXIT_TURN_LIMIT).toBe(53);
    const settled = geminiPlugin.settle!(outcome(), ending({ exitCode: 53, stderrTail: ['Reached max session turns for this session.'] }));
    expect(settled).toEqual(outcome({ isError: true, limitReached: 'max_turns' }));
  });

  it('settle: a failure without a result takes the API\'s message from the error document on stderr', () => {
    const stderrTail = ['Attempt 1 failed with status 500. Retrying with backoff...', ...sample('gemini-0.61.0-500.stderr-tail.json').trimEnd().split('\n')];
    const cut = geminiPlugin.createParser().outcome();
    expect(cut.resultSubtype).toBeUndefined();
    expect(geminiPlugin.settle!(cut, ending({ exitCode: 244, stderrTail }))).toEqual({ ...cut, isError: true, resultText: 'mock internal error' });
  });

  it('settle: leaves alone a success, a killed agent, an outcome with a result, and stderr without a document', () => {
    const stderrTail = sample('gemini-0.61.0-500.stderr-tail.json').split('\n');
    const plain = outcome();
    expect(geminiPlugin.settle!(plain, ending({ exitCode: 0, stderrTail }))).toBe(plain);
    expect(geminiPlugin.settle!(plain, ending({ exitCode: null, stderrTail }))).toBe(plain);
    const withResult = outcome({ resultSubtype: 'error', isError: true, resultText: 'from the stream' });
    expect(geminiPlugin.settle!(withResult, ending({ exitCode: 1, stderrTail }))).toBe(withResult);
    expect(geminiPlugin.settle!(plain, ending({ exitCode: 1, stderrTail: ['boom'] }))).toBe(plain);
  });
});

describe('opencode', () => {
  const base = ['opencode', 'run', '--print-logs', '--log-level', 'WARN', '--format', 'json', '--auto', '--title', 'agent-worker', '-m'];

  it('argv: run --format json, auto-approve, a fixed title, the model under agent-worker\'s provider (default gpt-4.1)', () => {
    expect(openCodePlugin.image).toEqual({ installScript: 'opencode/install.sh', version: OPENCODE_VERSION });
    expect(OPENCODE_DEFAULT_MODEL).toBe('gpt-4.1');
    expect(openCodePlugin.argv(launch())).toEqual([...base, 'agent-worker/gpt-4.1']);
    expect(openCodePlugin.argv(launch({ model: '' }))).toEqual([...base, 'agent-worker/gpt-4.1']);
    expect(openCodePlugin.argv(launch({ model: 'qwen3-coder:30b' }))).toEqual([...base, 'agent-worker/qwen3-coder:30b']);
    // The instructions go to a HOME file, never argv.
    expect(openCodePlugin.argv(launch({ appendSystemPrompt: INSTRUCTIONS }))).toEqual([...base, 'agent-worker/gpt-4.1']);
  });

  it('a model starting with - cannot be read as a flag: it always follows the provider', () => {
    expect(openCodePlugin.argv(launch({ model: '--dangerously-anything' })).slice(-2)).toEqual(['-m', 'agent-worker/--dangerously-anything']);
  });

  it('env: OPENAI_API_KEY secret; its config at the proxy root (no /v1), only its provider, sharing/updates/snapshots off; no network switches', () => {
    const env = openCodePlugin.env({ apiKey: PLACEHOLDER, baseUrl: PROXY });
    expect(env.secret).toEqual({ OPENAI_API_KEY: PLACEHOLDER });
    const { OPENCODE_CONFIG_CONTENT: content, ...switches } = env.plain;
    expect(switches).toEqual({
      OPENCODE_DISABLE_MODELS_FETCH: '1',
      OPENCODE_DISABLE_AUTOUPDATE: '1',
      OPENCODE_DISABLE_DEFAULT_PLUGINS: '1',
      OPENCODE_DISABLE_LSP_DOWNLOAD: '1',
      OPENCODE_DISABLE_SHARE: '1',
    });
    expect(JSON.parse(content!)).toEqual({
      $schema: 'https://opencode.ai/config.json',
      autoupdate: false,
      share: 'disabled',
      snapshot: false,
      enabled_providers: ['agent-worker'],
      permission: { edit: 'allow', bash: 'allow', external_directory: 'allow', webfetch: 'allow' },
      provider: { 'agent-worker': { npm: '@ai-sdk/openai-compatible', name: 'agent-worker', options: { baseURL: PROXY, apiKey: '{env:OPENAI_API_KEY}' } } },
    });
    // Without a base URL (never in a run: OpenCode has a default API) the provider has none.
    expect(JSON.parse(openCodePlugin.env({}).plain.OPENCODE_CONFIG_CONTENT!).provider['agent-worker'].options).toEqual({ apiKey: '{env:OPENAI_API_KEY}' });
  });

  it('homeFiles: its config (model, limits, no prices), a no-op npm folder, and the instructions when any', () => {
    const dependencies = { '@opencode-ai/plugin': OPENCODE_VERSION };
    const files = openCodePlugin.homeFiles!(launch({ model: 'qwen3-coder:30b' }));
    expect(Object.keys(files).sort()).toEqual(['.config/opencode/node_modules/.keep', '.config/opencode/opencode.json', '.config/opencode/package-lock.json', '.config/opencode/package.json']);
    expect(JSON.parse(files['.config/opencode/opencode.json']!)).toEqual({
      $schema: 'https://opencode.ai/config.json',
      model: 'agent-worker/qwen3-coder:30b',
      provider: { 'agent-worker': { models: { 'qwen3-coder:30b': { name: 'qwen3-coder:30b', limit: { context: 128_000, output: 16_384 } } } } },
    });
    expect(OPENCODE_MODEL_LIMIT).toEqual({ context: 128_000, output: 16_384 });
    expect(JSON.parse(files['.config/opencode/package.json']!)).toEqual({ dependencies });
    expect(JSON.parse(files['.config/opencode/package-lock.json']!)).toEqual({ lockfileVersion: 3, requires: true, packages: { '': { dependencies } } });
    expect(files['.config/opencode/node_modules/.keep']).toBe('');
    expect(files['.config/opencode/opencode.json']).not.toMatch(/"cost"|"price/);

    const withInstructions = openCodePlugin.homeFiles!(launch({ appendSystemPrompt: INSTRUCTIONS }));
    expect(OPENCODE_INSTRUCTIONS_FILE).toBe('.config/agent-worker/instructions.md');
    expect(withInstructions[OPENCODE_INSTRUCTIONS_FILE]).toBe(`${INSTRUCTIONS}\n`);
    expect(JSON.parse(withInstructions['.config/opencode/opencode.json']!)).toMatchObject({ model: 'agent-worker/gpt-4.1', instructions: [`${AGENT_HOME}/${OPENCODE_INSTRUCTIONS_FILE}`] });
    // Blank instructions make no file and no `instructions` entry.
    const blank = openCodePlugin.homeFiles!(launch({ appendSystemPrompt: ' \n ' }));
    expect(blank[OPENCODE_INSTRUCTIONS_FILE]).toBeUndefined();
    expect(JSON.parse(blank['.config/opencode/opencode.json']!)).not.toHaveProperty('instructions');
  });

  it('its parser reports no cost: OpenCode priced nothing, so its figures mean "unknown", not "free"', () => {
    const lines = sample('opencode-1.18.33-run.jsonl').split('\n');
    // The raw parser sums OpenCode's part.cost (this sample was recorded with prices configured)…
    const raw = createOpenCodeParser();
    const rawTurns = lines.flatMap((line) => raw.push(line)).filter((event) => event.kind === 'turn');
    expect(rawTurns.map((event) => event.costUsd)).toEqual([0.00077, 0.00077 + 0.00067]);
    expect(raw.outcome().costUsd).toBeCloseTo(0.00144, 10);
    // …the plugin's parser drops it everywhere and keeps everything else.
    const parser = openCodePlugin.createParser();
    const events = lines.flatMap((line) => parser.push(line));
    const turns = events.filter((event) => event.kind === 'turn');
    expect(turns).toEqual([
      { kind: 'turn', turn: 1, tokens: makeTokenUsage(700, 20, 300, 0, 5), costUsd: undefined },
      { kind: 'turn', turn: 2, tokens: makeTokenUsage(1200, 30, 1800, 0, 5), costUsd: undefined },
    ]);
    const result = parser.outcome();
    expect(result.costUsd).toBeUndefined();
    expect(result).toEqual({ ...raw.outcome(), costUsd: undefined });
    expect(result).toMatchObject({ turns: 2, tokens: makeTokenUsage(1200, 30, 1800, 0, 5), resultText: 'Done: I wrote hello.txt.', resultSubtype: 'success', isError: false, fromResult: true });
  });

  it('settle: the logged error replaces "Unexpected server error"; an unexplained exit takes the last stderr line', () => {
    const generic = outcome({ isError: true, resultSubtype: 'error', resultText: 'Unexpected server error. Check server logs for details.' });
    const log = 'timestamp=2026-11-30T09:42:02.935Z level=ERROR service=server error="Model not found: agent-worker/nope\\nstack" cause="x"';
    expect(openCodePlugin.settle!(generic, ending({ exitCode: 1, stderrTail: ['INFO something', log, 'trailing'] }))).toEqual({ ...generic, resultText: 'Model not found: agent-worker/nope' });
    const specific = outcome({ isError: true, resultSubtype: 'error', resultText: 'HTTP 500: boom' });
    expect(openCodePlugin.settle!(specific, ending({ exitCode: 1, stderrTail: [log] }))).toBe(specific);

    const quiet = outcome();
    expect(openCodePlugin.settle!(quiet, ending({ exitCode: 1, stderrTail: ['\u001b[91m\u001b[1mError: \u001b[0mbad config', '  '] }))).toEqual({
      ...quiet,
      isError: true,
      resultText: 'Error: bad config',
      resultSubtype: 'error',
    });
    expect(openCodePlugin.settle!(quiet, ending({ exitCode: 0, stderrTail: ['noise'] }))).toBe(quiet);
    expect(openCodePlugin.settle!(quiet, ending({ exitCode: null, stderrTail: ['noise'] }))).toBe(quiet);
    expect(openCodePlugin.settle!(quiet, ending({ exitCode: 1, stderrTail: [] }))).toBe(quiet);
    // A log line cut inside its error="…" (or ending in a backslash) is not a message.
    expect(() => openCodePlugin.settle!(generic, ending({ exitCode: 1, stderrTail: ['level=ERROR error="cut', 'level=ERROR error="x\\'] }))).not.toThrow();
  });
});

describe('qwen', () => {
  const base = ['qwen', '--yolo', '--auth-type', 'openai', '-o', 'stream-json'];
  const mcpFile = `${AGENT_HOME}/${QWEN_MCP_CONFIG_FILE}`;

  it('argv: yolo, OpenAI auth, stream-json; system prompt, model, turns and MCP when given', () => {
    expect(qwenPlugin.image).toEqual({ installScript: 'qwen/install.sh', version: QWEN_VERSION, node: QWEN_NODE_VERSION });
    expect(qwenPlugin.argv(launch())).toEqual(base);
    expect(qwenPlugin.argv(launch({ model: '' }))).toEqual(base);
    expect(qwenPlugin.argv(launch({ model: 'qwen3-coder-plus' }))).toEqual([...base, '-m', 'qwen3-coder-plus']);
    expect(qwenPlugin.argv(launch({ appendSystemPrompt: INSTRUCTIONS, model: 'qwen3-coder-plus', maxTurns: 7, mcpConfigJson: MCP_JSON }))).toEqual([
      ...base,
      `--append-system-prompt=${INSTRUCTIONS}`,
      '-m',
      'qwen3-coder-plus',
      '--max-session-turns',
      '7',
      '--mcp-config',
      mcpFile,
    ]);
    expect(qwenPlugin.argv(launch({ maxTurns: 0 }))).toEqual([...base, '--max-session-turns', '0']);
  });

  it('the system prompt is one --flag=value entry, so text starting with - is never read as a flag', () => {
    const argv = qwenPlugin.argv(launch({ appendSystemPrompt: '--yolo\n-m evil' }));
    expect(argv).toEqual([...base, '--append-system-prompt=--yolo\n-m evil']);
  });

  it('env: OPENAI_API_KEY secret; the proxy root as OPENAI_BASE_URL (no /v1), statistics off, no yolo warning, no browser', () => {
    expect(qwenPlugin.env({ apiKey: PLACEHOLDER, baseUrl: PROXY })).toEqual({
      secret: { OPENAI_API_KEY: PLACEHOLDER },
      plain: { OPENAI_BASE_URL: PROXY, QWEN_CODE_SYSTEM_SETTINGS_PATH: '/home/agent/.qwen/agent-worker-system-settings.json', QWEN_USAGE_STATISTICS_ENABLED: 'false', QWEN_CODE_SUPPRESS_YOLO_WARNING: '1', NO_BROWSER: '1' },
    });
  });

  it('homeFiles: its settings (OpenAI auth, statistics/telemetry/updates/recording/memory off), the MCP file when given', () => {
    const settings = {
      security: { auth: { selectedType: 'openai' } },
      privacy: { usageStatisticsEnabled: false },
      telemetry: { enabled: false },
      general: { enableAutoUpdate: false, chatRecording: false },
      ui: { enableUserFeedback: false },
      memory: { enableManagedAutoMemory: false, enableManagedAutoDream: false },
      experimental: { emitToolUseSummaries: false },
      tools: { shell: { enableInteractiveShell: false } },
    };
    expect(qwenSettings()).toEqual(settings);
    const files = qwenPlugin.homeFiles!(launch());
    expect(Object.keys(files)).toEqual([QWEN_SETTINGS_FILE]);
    expect(QWEN_SETTINGS_FILE).toBe('.qwen/agent-worker-system-settings.json');
    expect(JSON.parse(files[QWEN_SETTINGS_FILE]!)).toEqual(settings);
    const withMcp = qwenPlugin.homeFiles!(launch({ mcpConfigJson: MCP_JSON }));
    expect(Object.keys(withMcp)).toEqual([QWEN_SETTINGS_FILE, QWEN_MCP_CONFIG_FILE]);
    expect(JSON.parse(withMcp[QWEN_MCP_CONFIG_FILE]!)).toEqual(JSON.parse(MCP_JSON));
  });

  it('settle: exit 53 without a result is --max-turns reached, with Qwen Code\'s line', () => {
    expect(QWEN_MAX_TURNS_EXIT_CODE).toBe(53);
    const line = 'Reached max session turns for this session. Increase the number of turns by specifying maxSessionTurns in settings.json.';
    const cut = qwenPlugin.createParser().outcome();
    expect(qwenPlugin.settle!(cut, ending({ exitCode: 53, stderrTail: [`  ${line}  `, 'other'] }))).toEqual({ ...cut, limitReached: 'max_turns', isError: true, resultText: line });
    // Without the line the limit is still known.
    expect(qwenPlugin.settle!(cut, ending({ exitCode: 53 }))).toEqual({ ...cut, limitReached: 'max_turns', isError: true, resultText: cut.resultText });
  });

  it('settle: anything else keeps the parser\'s outcome', () => {
    const plain = outcome();
    const line = ['Reached max session turns for this session.'];
    expect(qwenPlugin.settle!(plain, ending({ exitCode: 1, stderrTail: line }))).toBe(plain);
    expect(qwenPlugin.settle!(plain, ending({ exitCode: null, stderrTail: line }))).toBe(plain);
    const withResult = outcome({ resultSubtype: 'success' });
    expect(qwenPlugin.settle!(withResult, ending({ exitCode: 53, stderrTail: line }))).toBe(withResult);
  });
});

describe('qwenMcpConfig: Claude Code\'s MCP configuration in Qwen Code\'s form', () => {
  it('stdio servers stay as they are; http becomes httpUrl, sse becomes url; headers and other fields kept; type dropped', () => {
    const claude = {
      mcpServers: {
        fs: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/workspace'], env: { LOG: '1' } },
        typed: { type: 'stdio', command: 'node', args: ['server.js'] },
        remote: { type: 'http', url: 'https://mcp.example.com/mcp', headers: { Authorization: 'Bearer t' }, timeout: 5000 },
        streamable: { type: 'streamable-http', url: 'https://s.example.com/mcp' },
        events: { type: 'sse', url: 'https://sse.example.com/sse', headers: { 'X-Key': 'k' } },
      },
    };
    expect(JSON.parse(qwenMcpConfig(JSON.stringify(claude)))).toEqual({
      mcpServers: {
        fs: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/workspace'], env: { LOG: '1' } },
        typed: { command: 'node', args: ['server.js'] },
        remote: { httpUrl: 'https://mcp.example.com/mcp', headers: { Authorization: 'Bearer t' }, timeout: 5000 },
        streamable: { httpUrl: 'https://s.example.com/mcp' },
        events: { url: 'https://sse.example.com/sse', headers: { 'X-Key': 'k' } },
      },
    });
  });

  it('passes through what is not such a configuration', () => {
    for (const text of ['not json', '[]', 'null', '{}', '{"mcpServers":[]}', '{"mcpServers":null}', '{"mcpServers":"x"}']) expect(qwenMcpConfig(text)).toBe(text);
    expect(JSON.parse(qwenMcpConfig('{"mcpServers":{"a":null,"b":[1],"c":"s"}}'))).toEqual({ mcpServers: { a: null, b: [1], c: 's' } });
    expect(qwenMcpConfig('{"mcpServers":{}}')).toBe('{"mcpServers":{}}');
  });
});

describe('copilot', () => {
  const base = ['copilot', '--output-format', 'json', '--yolo', '--no-ask-user', '--no-auto-update', '--disable-client-telemetry', '--disable-builtin-mcps', '--usage-output-file', COPILOT_USAGE_FILE];

  it('argv: JSON output, yolo, no questions, updates/telemetry/built-in MCP off, the usage file; --model when given', () => {
    expect(copilotPlugin.image).toEqual({ installScript: 'copilot/install.sh', version: COPILOT_VERSION });
    expect(COPILOT_USAGE_FILE).toBe('/tmp/agent-worker-copilot-usage.json');
    expect(copilotPlugin.argv(launch())).toEqual(base);
    expect(copilotPlugin.argv(launch({ model: '' }))).toEqual(base);
    expect(copilotPlugin.argv(launch({ model: 'gpt-4.1' }))).toEqual([...base, '--model', 'gpt-4.1']);
    expect(copilotPlugin.argv(launch({ appendSystemPrompt: INSTRUCTIONS }))).toEqual(base);
    expect(copilotPlugin.outputFiles).toEqual([COPILOT_USAGE_FILE]);
    expect(copilotPlugin.settings.modelRequired).toBe(true);
  });

  it('env: COPILOT_PROVIDER_API_KEY secret; the proxy root as the provider (no /v1), offline, no auto-update, the unpacked package', () => {
    expect(copilotPlugin.env({ apiKey: PLACEHOLDER, baseUrl: PROXY })).toEqual({
      secret: { COPILOT_PROVIDER_API_KEY: PLACEHOLDER },
      plain: { COPILOT_PROVIDER_BASE_URL: PROXY, COPILOT_OFFLINE: 'true', COPILOT_AUTO_UPDATE: 'false', COPILOT_PKG_CACHE_HOME: '/opt/copilot' },
    });
    expect(COPILOT_PKG_CACHE_HOME).toBe('/opt/copilot');
    expect(copilotPlugin.homeFiles).toBeUndefined();
  });

  it('settle: the tokens of the sample usage file (cache reads out of input), and its model when the stream had none', () => {
    const path = copilotPlugin.outputFiles![0]!;
    const text = sample('copilot-1.0.102-usage-output-file.json');
    const cut = copilotPlugin.createParser().outcome();
    const settled = copilotPlugin.settle!(cut, ending({ exitCode: 0, files: { [path]: text } }));
    expect(settled.tokens).toEqual({ input: 1200, cacheRead: 1800, cacheWrite: 0, output: 30, reasoning: 5, total: 3030 });
    expect(settled).toEqual({ ...cut, tokens: makeTokenUsage(1200, 30, 1800, 0, 5), model: 'mock' });
    expect(settled.costUsd).toBeUndefined();
    const named = outcome({ model: 'gpt-4.1' });
    expect(copilotPlugin.settle!(named, ending({ files: { [path]: text } })).model).toBe('gpt-4.1');
  });

  it('settle: no usage file, or one that is not a usage report, keeps the stream\'s outcome', () => {
    const plain = outcome({ tokens: makeTokenUsage(1, 2, 3, 4) });
    expect(copilotPlugin.settle!(plain, ending())).toBe(plain);
    expect(copilotPlugin.settle!(plain, ending({ files: { '/tmp/other.json': sample('copilot-1.0.102-usage-output-file.json') } }))).toBe(plain);
    for (const text of ['', 'not json', '{"modelMetrics":', 'null', '[]', '42', '"x"', '{}', '{"modelMetrics":[1,2]}', '{"modelMetrics":"x"}']) {
      expect(copilotPlugin.settle!(plain, ending({ files: { [COPILOT_USAGE_FILE]: text } })), text).toBe(plain);
    }
  });

  it('settle: a hostile usage file never throws and never makes NaN tokens; wrong types count as 0', () => {
    const hostile = [
      '{"modelMetrics":{"m":{"usage":{"inputTokens":"100","outputTokens":null,"cacheReadTokens":[1],"cacheWriteTokens":{},"reasoningTokens":true}}}}',
      '{"modelMetrics":{"m":null,"n":[],"o":{"usage":"x"},"p":{"usage":[]},"q":{"requests":{"count":"2"}}}}',
      '{"modelMetrics":{"m":{"usage":{"inputTokens":1e308,"outputTokens":1e308,"cacheReadTokens":1e308}}},"currentModel":{"x":1}}',
      '{"modelMetrics":{"__proto__":{"usage":{"inputTokens":5}}},"currentModel":7}',
      `{"modelMetrics":{${Array.from({ length: 2000 }, (_, i) => `"m${i}":{"usage":{"inputTokens":1}}`).join(',')}}}`,
    ];
    for (const text of hostile) {
      let settled: AgentOutcome | undefined;
      expect(() => (settled = copilotPlugin.settle!(outcome(), ending({ files: { [COPILOT_USAGE_FILE]: text } }))), text.slice(0, 80)).not.toThrow();
      for (const [field, value] of Object.entries(settled!.tokens)) expect(Number.isNaN(value), `${field} of ${text.slice(0, 80)}`).toBe(false);
      expect(settled!.model === undefined || typeof settled!.model === 'string').toBe(true);
    }
    const wrongTypes = copilotPlugin.settle!(outcome(), ending({ files: { [COPILOT_USAGE_FILE]: hostile[0]! } }));
    expect(wrongTypes.tokens).toEqual(makeTokenUsage(0, 0, 0, 0));
    expect(wrongTypes.model).toBe('m');
    const many = copilotPlugin.settle!(outcome(), ending({ files: { [COPILOT_USAGE_FILE]: hostile[4]! } }));
    expect(many.tokens).toEqual(makeTokenUsage(2000, 0, 0, 0));
  });
});

describe('exec', () => {
  it('argv: --agent-command as given, a copy; refused without one', () => {
    const command = ['aider', '--yes-always', '--message-file', '/dev/stdin', 'arg with spaces'];
    const argv = execPlugin.argv(launch({ agentCommand: command, model: 'm', appendSystemPrompt: INSTRUCTIONS }));
    expect(argv).toEqual(command);
    argv.push('mutated');
    expect(command).toHaveLength(5);
    expect(() => execPlugin.argv(launch({ agentCommand: undefined }))).toThrow('the exec agent needs --agent-command');
    expect(() => execPlugin.argv(launch({ agentCommand: [] }))).toThrow('the exec agent needs --agent-command');
  });

  it('env: AGENT_WORKER_API_KEY secret and AGENT_WORKER_API_BASE_URL (the proxy) when given; nothing else', () => {
    expect(execPlugin.env({ apiKey: PLACEHOLDER, baseUrl: PROXY })).toEqual({ secret: { AGENT_WORKER_API_KEY: PLACEHOLDER }, plain: { AGENT_WORKER_API_BASE_URL: PROXY } });
    expect(execPlugin.env({ apiKey: PLACEHOLDER })).toEqual({ secret: { AGENT_WORKER_API_KEY: PLACEHOLDER }, plain: {} });
    expect(execPlugin.env({})).toEqual({ secret: {}, plain: {} });
    expect(execPlugin.api.defaultBaseUrl).toBeUndefined();
    expect(execPlugin.settings.credentialsOptional).toBe(true);
    expect(execPlugin.homeFiles).toBeUndefined();
    expect(execPlugin.settle).toBeUndefined();
  });
});

/**
 * The base URL each agent is given, and the request it sends there (its API's path, its key's header), through the
 * egress proxy configured as a run configures it (run.ts egressSpec) with `--base-url` at a local upstream: the
 * upstream must see the API's own path under its base and the real key, exactly once.
 */
describe('each agent\'s base URL reaches its API\'s path through the egress proxy, with the real key', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });

  interface Seen {
    method: string;
    url: string;
    headers: http.IncomingHttpHeaders;
  }

  async function upstream(): Promise<{ port: number; seen: Seen[] }> {
    const seen: Seen[] = [];
    const sockets = new Set<net.Socket>();
    const server = http.createServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    server.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => resolve());
        }),
    );
    return { port: (server.address() as net.AddressInfo).port, seen };
  }

  function post(url: string, headers: Record<string, string>): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end('{"model":"m"}');
    });
  }

  /** The base URL the plugin gives the agent (from its env, or its argv for Codex), and the request it makes there. */
  const agents: Array<{ plugin: AgentPlugin; upstreamBase: string; baseOf: (plugin: AgentPlugin) => string | undefined; path: string; header: (key: string) => Record<string, string> }> = [
    {
      plugin: codexPlugin,
      upstreamBase: '/v1',
      baseOf: (p) => {
        const provider = p.argv(launch()).find((arg) => arg.startsWith('model_providers.agent-worker='));
        const quoted = /base_url=("(?:[^"\\]|\\.)*")/.exec(provider ?? '')?.[1];
        return quoted === undefined ? undefined : (JSON.parse(quoted) as string);
      },
      path: '/responses',
      header: (key) => ({ authorization: `Bearer ${key}` }),
    },
    {
      plugin: openCodePlugin,
      upstreamBase: '/v1',
      baseOf: (p) => (JSON.parse(p.env({ apiKey: PLACEHOLDER, baseUrl: PROXY }).plain.OPENCODE_CONFIG_CONTENT!) as { provider: Record<string, { options: { baseURL?: string } }> }).provider['agent-worker']?.options.baseURL,
      path: '/chat/completions',
      header: (key) => ({ authorization: `Bearer ${key}` }),
    },
    { plugin: qwenPlugin, upstreamBase: '/v1', baseOf: (p) => p.env({ apiKey: PLACEHOLDER, baseUrl: PROXY }).plain.OPENAI_BASE_URL, path: '/chat/completions', header: (key) => ({ authorization: `Bearer ${key}` }) },
    {
      plugin: copilotPlugin,
      upstreamBase: '/v1',
      baseOf: (p) => p.env({ apiKey: PLACEHOLDER, baseUrl: PROXY }).plain.COPILOT_PROVIDER_BASE_URL,
      path: '/chat/completions',
      header: (key) => ({ authorization: `Bearer ${key}` }),
    },
    {
      plugin: geminiPlugin,
      upstreamBase: '',
      baseOf: (p) => p.env({ apiKey: PLACEHOLDER, baseUrl: PROXY }).plain.GOOGLE_GEMINI_BASE_URL,
      path: '/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse',
      header: (key) => ({ 'x-goog-api-key': key }),
    },
    { plugin: execPlugin, upstreamBase: '/api/v1', baseOf: (p) => p.env({ apiKey: PLACEHOLDER, baseUrl: PROXY }).plain.AGENT_WORKER_API_BASE_URL, path: '/chat/completions', header: (key) => ({ 'api-key': key }) },
  ];

  it.each(agents.map((agent) => [agent.plugin.name, agent] as const))('%s', async (_name, agent) => {
    const { plugin } = agent;
    // The agent is given the proxy's root, as it is: the proxy maps <root>/<path> to <--base-url>/<path>.
    const base = agent.baseOf(plugin);
    expect(base).toBe(PROXY);
    // Its default API sits under the same path as the local upstream used here (…/v1, or the root for Gemini).
    if (plugin.api.defaultBaseUrl !== undefined) expect(new URL(plugin.api.defaultBaseUrl).pathname.replace(/\/$/, '')).toBe(agent.upstreamBase);

    const up = await upstream();
    const spec = egressSpec({ apiKey: REAL_KEY, baseUrl: `http://127.0.0.1:${up.port}${agent.upstreamBase}`, allowHosts: [] }, plugin, {
      image: 'unused',
      runId: 'test',
      project: '/nowhere',
      onAudit: () => undefined,
    });
    const proxy = await startEgressProxy({ ...spec.proxy, port: 0, host: '127.0.0.1' });
    cleanups.push(() => proxy.close());
    const local = base!.replace(PROXY, `http://127.0.0.1:${proxy.port}`);

    expect(await post(`${local}${agent.path}`, agent.header(PLACEHOLDER))).toBe(200);
    expect(up.seen).toHaveLength(1);
    expect(up.seen[0]!.method).toBe('POST');
    expect(up.seen[0]!.url).toBe(`${agent.upstreamBase}${agent.path}`);
    const sent = agent.header(REAL_KEY);
    for (const [header, value] of Object.entries(sent)) expect(up.seen[0]!.headers[header]).toBe(value);

    // Anything but the exact placeholder is left as it is: the real key never goes out for it.
    expect(await post(`${local}${agent.path}`, agent.header('some-other-key'))).toBe(200);
    for (const [header, value] of Object.entries(agent.header('some-other-key'))) expect(up.seen[1]!.headers[header]).toBe(value);
    expect(JSON.stringify(up.seen[1]!.headers)).not.toContain(REAL_KEY);
  });
});

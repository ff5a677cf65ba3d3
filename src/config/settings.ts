/**
 * Every setting of a run, each defined once in {@link SETTINGS}: its flag, environment variable, help text, help
 * group and default, as `--help` (cli.ts) and the README's options table (tests/unit/docs.test.ts) show them; and how
 * `loadConfig` (load.ts) reads it: the variables it is read from, its fallback, and the parser that turns its raw
 * string into its value or its problems. The rules between settings are load.ts's.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { isIP } from 'node:net';
import { agentTypes, getAgentPlugin } from '../../agents/index.js';
import type { AgentPlugin, AgentSettings } from '../../agents/types.js';
import type { PriceTable, RunConfig, WorkspaceMode } from './types.js';
import type { BackendName } from '../backends/types.js';
import { parseConstraint } from '../backends/swarm/placement.js';
import { parseRegistry } from '../backends/swarm/registry.js';
import { errorMessage } from '../errors.js';
import {
  cannotRead,
  checkDockerHost,
  checkHttpUrl,
  checkMcpConfig,
  invalid,
  isHostName,
  isValidTimeZone,
  mcpUrlHosts,
  ok,
  parseAgentCommand,
  parseBooleanWord,
  parseDebugWord,
  parseDurationSeconds,
  parsePositiveInt,
  parsePriceTable,
  parseSize,
  type Parsed,
} from './values.js';

/** Default memory limit of the agent's container: 8 GiB. */
export const DEFAULT_MEMORY = '8g';
/** Default process limit of the agent's container. */
export const DEFAULT_PIDS_LIMIT = 4096;
/** Where a project keeps its own Dockerfile (and its build context), relative to the project. */
export const PROJECT_DOCKERFILE = path.join('.agent-worker', 'Dockerfile');
/** Default limit on an image build, in seconds. */
export const DEFAULT_BUILD_TIMEOUT_SECONDS = 1800;

/** Help groups of the run's flags, in the order `--help` shows them. */
export const SETTING_GROUPS = ['Task', 'Agent', 'Credentials', 'Container', 'Docker daemon', 'Output'] as const;

/** One setting as `--help` and the README show it: its flag, environment variable, help text, default (as shown) and help group. */
export interface SettingSpec {
  flag: string;
  env: string;
  help: string;
  default: string | undefined;
  group: (typeof SETTING_GROUPS)[number];
}

/** What a setting's fallback and parser may depend on besides the raw value. */
export interface SettingContext {
  /** The folder relative paths are resolved against. */
  cwd: string;
  /** The project's absolute path; undefined only while the project setting itself is read. */
  project?: string;
  /** The host's time zone (Intl), if known. */
  hostTimeZone?: string;
}

/** Where a raw value came from: the flag, an environment variable (in the environment or the `.env` file), or the setting's fallback. */
export type Source = 'flag' | 'fallback' | { variable: string };

/** What a parser gets besides the raw value. */
export interface ParseContext extends SettingContext {
  from: Source;
}

/**
 * One setting, defined once: how `--help` shows it ({@link SettingSpec}), and how `loadConfig` reads it — the flag,
 * else the first of its variables set in the environment, else in the `.env` file (empty values count as unset), else
 * its fallback; then its parser.
 */
export interface SettingDefinition<T = unknown> extends SettingSpec {
  /**
   * How the flag is given: `text` (the default) takes a string; `switch` takes no value (the parser gets `true` or
   * `false`; the variable holds a word); `list` is repeatable, its variable a list separated by commas or spaces, each
   * entry parsed on its own (the value is the list of their values; `[]` when unset).
   */
  kind?: 'text' | 'switch' | 'list';
  /** The variables read for the agent chosen, first set wins (`env` is then only what the help shows: Claude Code's). Default `[env]`. */
  agentEnv?: (agent: AgentSettings) => readonly string[];
  /** Read from the flag and the environment only, never from the `.env` file (which is found through it). */
  beforeDotenv?: true;
  /** The raw value parsed when the setting is unset; none = no value. */
  fallback?: string | ((context: SettingContext) => string | undefined);
  /** Raw string → value, or its problems (the loader puts the flag before each); none = the string as it is. */
  parse?: (raw: string, context: ParseContext) => Parsed<T> | Promise<Parsed<T>>;
}

/** The value, or `problem` (the raw value quoted before it) when a check found one. */
function checked(raw: string, problem: string | undefined): Parsed<string> {
  return problem === undefined ? ok(raw) : invalid(`${JSON.stringify(raw)} ${problem}`);
}

/** The value a parser that reports through a callback returned, or every problem it reported. */
function collect<T>(parse: (problem: (text: string) => void) => T | undefined): Parsed<T> {
  const problems: string[] = [];
  const value = parse((problem) => problems.push(problem));
  return value === undefined ? invalid(...problems) : ok(value);
}

function parseAgentType(raw: string): Parsed<AgentPlugin> {
  const plugin = getAgentPlugin(raw);
  return plugin ? ok(plugin) : invalid(`unknown agent ${JSON.stringify(raw)}; known: ${agentTypes.join(', ')}.`);
}

function parseModel(raw: string): Parsed<string> {
  // An agent's own option parser would take "-…" for one of its flags (e.g. yargs: `-m --sandbox`).
  if (raw.startsWith('-') || [...raw].some((char) => char.charCodeAt(0) < 0x20 || char === '\u007f')) {
    return invalid(`${JSON.stringify(raw)} is not a model name (it starts with "-" or holds a control character).`);
  }
  return ok(raw);
}

function parseBudget(raw: string): Parsed<number> {
  const dollars = Number(raw.trim());
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !(dollars > 0)) return invalid(`${JSON.stringify(raw)} is not an amount of US dollars above 0 (e.g. 2.50).`);
  return ok(dollars);
}

function parseTimeZone(raw: string): Parsed<string> {
  return isValidTimeZone(raw) ? ok(raw) : invalid(`${JSON.stringify(raw)} is not an IANA time zone (e.g. Europe/Berlin, UTC).`);
}

function parseMemory(raw: string): Parsed<number> {
  const bytes = parseSize(raw);
  if (bytes === undefined || bytes < 64 * 1024 ** 2) return invalid(`${JSON.stringify(raw)} is not a memory size of at least 64m (e.g. 4g, 512m).`);
  return ok(bytes);
}

function parseCpus(raw: string): Parsed<number> {
  const cpus = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !(cpus >= 0.01)) return invalid(`${JSON.stringify(raw)} is not a number of CPUs (e.g. 2, 1.5).`);
  return ok(cpus);
}

/** A host name, an IP address, or a wildcard of a host name (`*.example.com`). */
function parseAllowedHost(host: string): Parsed<string> {
  const wildcard = host.startsWith('*.');
  const name = wildcard ? host.slice(2) : host;
  if (!isHostName(name) || (wildcard && isIP(name))) return invalid(`${JSON.stringify(host)} is not a host name, a wildcard (*.example.com) or an IP address.`);
  return ok(host);
}

function parseBackend(raw: string): Parsed<BackendName> {
  return raw === 'local' || raw === 'swarm' ? ok(raw) : invalid(`${JSON.stringify(raw)} is not a backend; use local or swarm.`);
}

function parseWorkspace(raw: string): Parsed<WorkspaceMode> {
  return raw === 'mount' || raw === 'copy' ? ok(raw) : invalid(`${JSON.stringify(raw)} is not a workspace mode; use mount or copy.`);
}

/** A switch: the flag's `true`/`false`, or its variable's word (the problem names the variable). */
function parseSwitch(raw: string, { from }: ParseContext): Parsed<boolean> {
  return parseBooleanWord(raw, typeof from === 'object' ? from.variable : undefined);
}

/** The absolute path of a file that can be read. */
async function findReadableFile(raw: string, { cwd }: ParseContext): Promise<Parsed<string>> {
  const file = path.resolve(cwd, raw);
  try {
    await readFile(file);
    return ok(file);
  } catch (error) {
    return invalid(cannotRead(file, error));
  }
}

/** The project's Dockerfile: the file named, or the project's own when it has one (no problem when it has none). */
async function findDockerfile(raw: string, { cwd, from }: ParseContext): Promise<Parsed<string | undefined>> {
  const file = path.resolve(cwd, raw);
  try {
    if ((await stat(file)).isFile()) return ok(file);
    return from === 'fallback' ? ok(undefined) : invalid(`${file} is not a file.`);
  } catch (error) {
    return from === 'fallback' ? ok(undefined) : invalid(cannotRead(file, error));
  }
}

/** A regular file holding a PEM certificate. */
async function readCaCert(raw: string, { cwd }: ParseContext): Promise<Parsed<NonNullable<RunConfig['caCert']>>> {
  const file = path.resolve(cwd, raw);
  try {
    const pem = (await stat(file)).isFile() ? await readFile(file, 'utf8') : undefined;
    if (pem === undefined) return invalid(`cannot read ${file}: not a regular file.`);
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) return invalid(`${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----).`);
    return ok({ path: file, pem });
  } catch (error) {
    return invalid(cannotRead(file, error));
  }
}

/** A persona file: its absolute path and its text, trimmed (an empty one is a problem). */
async function readPersona(raw: string, { cwd }: ParseContext): Promise<Parsed<{ path: string; text: string }>> {
  const file = path.resolve(cwd, raw);
  try {
    const text = (await readFile(file, 'utf8')).trim();
    return text === '' ? invalid(`${file} is empty.`) : ok({ path: file, text });
  } catch (error) {
    return invalid(cannotRead(file, error));
  }
}

/** A `--prices` file ({@link parsePriceTable}); each problem names the file. */
async function readPrices(raw: string, { cwd }: ParseContext): Promise<Parsed<PriceTable>> {
  const file = path.resolve(cwd, raw);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    return invalid(cannotRead(file, error));
  }
  return collect((problem) => parsePriceTable(text, (text) => problem(`${file}: ${text}`)));
}

/** An MCP configuration file ({@link checkMcpConfig}): its path, its JSON, and its remote servers' hosts. */
async function readMcpConfig(raw: string, { cwd }: ParseContext): Promise<Parsed<NonNullable<RunConfig['mcpConfig']>>> {
  const file = path.resolve(cwd, raw);
  let json: string;
  try {
    json = await readFile(file, 'utf8');
  } catch (error) {
    return invalid(cannotRead(file, error));
  }
  const problem = checkMcpConfig(json);
  return problem ? invalid(`${file} ${problem}`) : ok({ path: file, json, urlHosts: mcpUrlHosts(json) });
}

/** Every setting of a run: drives `--help`, the README table, and `loadConfig` (load.ts). In the order `--help` shows them. */
export const SETTINGS = {
  // The task and the task file: which one counts, and reading the file, is a rule between them (load.ts).
  task: { group: 'Task', flag: '--task <text>', env: 'AGENT_TASK', help: 'the task for the agent (required, or --task-file)', default: undefined },
  taskFile: { group: 'Task', flag: '--task-file <path>', env: 'AGENT_TASK_FILE', help: 'read the task from a file (- for stdin)', default: undefined },
  project: {
    group: 'Task', flag: '--project <path>', env: 'PROJECT_PATH', help: 'git repository to work on', default: 'current directory',
    beforeDotenv: true, fallback: '.', parse: (raw, { cwd }) => ok(path.resolve(cwd, raw)),
  },
  branch: { group: 'Task', flag: '--branch <name>', env: 'AGENT_BRANCH', help: 'branch to create for the agent\'s work', default: 'agent-task-<timestamp>' },
  verify: {
    group: 'Task', flag: '--verify <command>', env: 'AGENT_VERIFY', help: 'command run in the container after the agent (e.g. "npm test"); its result goes into the report', default: undefined,
    parse: (raw) => (raw.trim() === '' || raw.includes('\0') ? invalid('give a command to run, e.g. --verify "npm test" (no NUL bytes).') : ok(raw)),
  },
  agentType: {
    group: 'Agent', flag: '--agent-type <name>', env: 'AGENT_TYPE', help: 'the agent: claude, codex, gemini, opencode, qwen, copilot, exec', default: 'claude',
    fallback: 'claude', parse: parseAgentType,
  },
  model: {
    group: 'Agent', flag: '--model <name>', env: 'ANTHROPIC_MODEL', help: 'model for the agent (env: the agent\'s own variable)', default: 'the agent\'s default',
    agentEnv: (agent) => agent.modelEnv, parse: parseModel,
  },
  maxTurns: {
    group: 'Agent', flag: '--max-turns <n>', env: 'AGENT_MAX_TURNS', help: 'stop the agent after this many turns (status max_turns)', default: 'unlimited',
    parse: (raw) => parsePositiveInt(raw, 'turns'),
  },
  maxBudgetUsd: {
    group: 'Agent', flag: '--max-budget-usd <dollars>', env: 'AGENT_MAX_BUDGET_USD', help: 'stop the agent once it has spent this much (status budget_exceeded)', default: 'unlimited',
    parse: parseBudget,
  },
  // Joined with the --persona file's text by a rule (load.ts).
  appendSystemPrompt: { group: 'Agent', flag: '--append-system-prompt <text>', env: 'AGENT_APPEND_SYSTEM_PROMPT', help: 'text appended to the agent\'s system prompt', default: undefined },
  persona: {
    group: 'Agent', flag: '--persona <file>', env: 'AGENT_PERSONA', help: 'markdown file (role, rules, style) appended to the system prompt', default: undefined,
    parse: readPersona,
  },
  agentCommand: {
    group: 'Agent', flag: '--agent-command <command>', env: 'AGENT_COMMAND', help: 'the command line of your own agent CLI, for --agent-type exec (split like a shell would, never run by one)', default: undefined,
    parse: (raw) => collect((problem) => parseAgentCommand(raw, problem)),
  },
  prices: {
    group: 'Agent', flag: '--prices <file>', env: 'AGENT_WORKER_PRICES', help: 'JSON prices per model (USD per million input, output, cacheRead, cacheWrite tokens) for agents that report no cost', default: undefined,
    parse: readPrices,
  },
  mcpConfig: {
    group: 'Agent', flag: '--mcp-config <file>', env: 'AGENT_MCP_CONFIG', help: 'MCP servers for the agent (Claude Code JSON); allow their hosts with --allow-host', default: undefined,
    parse: readMcpConfig,
  },
  apiKey: {
    group: 'Credentials', flag: '--api-key <key>', env: 'ANTHROPIC_API_KEY', help: 'the model API\'s key (env: the agent\'s own variable; codex: OPENAI_API_KEY, gemini: GEMINI_API_KEY, …)', default: undefined,
    agentEnv: (agent) => agent.apiKeyEnv,
  },
  oauthToken: {
    group: 'Credentials', flag: '--oauth-token <token>', env: 'CLAUDE_CODE_OAUTH_TOKEN', help: 'Claude subscription OAuth token (instead of an API key)', default: undefined,
    agentEnv: (agent) => agent.oauthTokenEnv ?? [],
  },
  baseUrl: {
    group: 'Credentials', flag: '--base-url <url>', env: 'ANTHROPIC_BASE_URL', help: 'the model API, as the agent\'s own base-URL setting takes it (env: the agent\'s own variable)', default: 'the agent\'s API',
    agentEnv: (agent) => agent.baseUrlEnv, parse: (raw) => checked(raw, checkHttpUrl(raw)),
  },
  // An empty value names no file. The file (else <project>/.env, which need not exist) is read by load.ts.
  envFile: {
    group: 'Credentials', flag: '--env-file <path>', env: 'AGENT_WORKER_ENV_FILE', help: '.env file to read', default: '<project>/.env',
    beforeDotenv: true, parse: (raw, { cwd }) => ok(raw === '' ? undefined : path.resolve(cwd, raw)),
  },
  dockerfile: {
    group: 'Container', flag: '--dockerfile <path>', env: 'AGENT_WORKER_DOCKERFILE', help: 'project Dockerfile built FROM the tool\'s image (build arg AGENT_WORKER_IMAGE)', default: '.agent-worker/Dockerfile if present',
    fallback: ({ project }) => project === undefined ? undefined : path.join(project, PROJECT_DOCKERFILE), parse: findDockerfile,
  },
  timeout: {
    group: 'Container', flag: '--timeout <seconds>', env: 'AGENT_TIMEOUT', help: 'host-enforced limit on the agent\'s run (and --verify)', default: '3600',
    fallback: '3600', parse: parseDurationSeconds,
  },
  timezone: {
    group: 'Container', flag: '--timezone <tz>', env: 'TZ', help: 'time zone inside the container', default: 'host\'s, else UTC',
    fallback: ({ hostTimeZone }) => hostTimeZone ?? 'UTC', parse: parseTimeZone,
  },
  memory: {
    group: 'Container', flag: '--memory <size>', env: 'AGENT_WORKER_MEMORY', help: 'memory limit of the agent\'s container (e.g. 4g, 512m)', default: DEFAULT_MEMORY,
    fallback: DEFAULT_MEMORY, parse: parseMemory,
  },
  cpus: {
    group: 'Container', flag: '--cpus <n>', env: 'AGENT_WORKER_CPUS', help: 'CPU limit of the agent\'s container (e.g. 1.5)', default: 'no limit',
    parse: parseCpus,
  },
  pidsLimit: {
    group: 'Container', flag: '--pids-limit <n>', env: 'AGENT_WORKER_PIDS_LIMIT', help: 'most processes in the agent\'s container', default: String(DEFAULT_PIDS_LIMIT),
    fallback: String(DEFAULT_PIDS_LIMIT), parse: (raw) => parsePositiveInt(raw, 'processes'),
  },
  allowHost: {
    group: 'Container', flag: '--allow-host <host>', env: 'AGENT_ALLOW_HOSTS', help: 'extra host the agent may reach through the egress proxy, by name or wildcard (*.npmjs.org) (repeatable; env: comma-separated)', default: 'none',
    kind: 'list', parse: parseAllowedHost,
  },
  caCert: {
    group: 'Container', flag: '--ca-cert <file>', env: 'AGENT_WORKER_CA_CERT', help: 'extra CA certificates (PEM) trusted in the image and by the agent', default: undefined,
    parse: readCaCert,
  },
  buildTimeout: {
    group: 'Container', flag: '--build-timeout <seconds>', env: 'AGENT_WORKER_BUILD_TIMEOUT', help: 'longest an image build may take', default: String(DEFAULT_BUILD_TIMEOUT_SECONDS),
    fallback: String(DEFAULT_BUILD_TIMEOUT_SECONDS), parse: parseDurationSeconds,
  },
  forceRebuild: {
    group: 'Container', flag: '--force-rebuild', env: 'FORCE_REBUILD', help: 'rebuild the image even if it is cached', default: 'off',
    kind: 'switch', fallback: 'off', parse: parseSwitch,
  },
  remoteDocker: {
    group: 'Docker daemon', flag: '--remote-docker <url>', env: 'DOCKER_HOST', help: 'Docker daemon to use (unix://, tcp://, ssh://)', default: 'local socket',
    parse: (raw) => checked(raw, checkDockerHost(raw)),
  },
  workspace: {
    group: 'Docker daemon', flag: '--workspace <mode>', env: 'AGENT_WORKER_WORKSPACE', help: 'mount (bind-mount the work tree) or copy (copy the repository in, bring the commits back)', default: 'mount; copy for a remote daemon',
    parse: parseWorkspace,
  },
  backend: {
    group: 'Docker daemon', flag: '--backend <name>', env: 'AGENT_WORKER_BACKEND', help: 'where the agent runs: local (the Docker daemon\'s containers) or swarm (jobs on the Docker Swarm whose manager is the daemon; needs --registry)', default: 'local',
    fallback: 'local', parse: parseBackend,
  },
  registry: {
    group: 'Docker daemon', flag: '--registry <host:port>', env: 'AGENT_WORKER_REGISTRY', help: 'with --backend swarm: the registry the manager pushes images to and the nodes pull from (TLS, or in their insecure-registries)', default: undefined,
    parse: (raw) => {
      try {
        return ok(parseRegistry(raw));
      } catch (error) {
        return invalid(errorMessage(error) + '.');
      }
    },
  },
  placement: {
    group: 'Docker daemon', flag: '--placement <constraint>', env: 'AGENT_WORKER_PLACEMENT', help: 'with --backend swarm: a placement constraint of the run\'s jobs, e.g. node.labels.size==large (repeatable; env: comma-separated)', default: 'none',
    kind: 'list', parse: (raw) => {
      try {
        return ok(parseConstraint(raw).text.trim());
      } catch (error) {
        return invalid(errorMessage(error) + '.');
      }
    },
  },
  tlsCa: {
    group: 'Docker daemon', flag: '--tls-ca <file>', env: 'AGENT_WORKER_TLS_CA', help: 'CA certificate (PEM) that signed the tcp:// daemon\'s certificate', default: '$DOCKER_CERT_PATH/ca.pem with DOCKER_TLS_VERIFY=1',
    parse: findReadableFile,
  },
  tlsCert: {
    group: 'Docker daemon', flag: '--tls-cert <file>', env: 'AGENT_WORKER_TLS_CERT', help: 'client certificate (PEM) for the tcp:// daemon', default: '$DOCKER_CERT_PATH/cert.pem',
    parse: findReadableFile,
  },
  tlsKey: {
    group: 'Docker daemon', flag: '--tls-key <file>', env: 'AGENT_WORKER_TLS_KEY', help: 'client key (PEM) for the tcp:// daemon', default: '$DOCKER_CERT_PATH/key.pem',
    parse: findReadableFile,
  },
  sshKey: {
    group: 'Docker daemon', flag: '--ssh-key <file>', env: 'AGENT_WORKER_SSH_KEY', help: 'private key for ssh:// daemons', default: 'ssh agent, ~/.ssh/id_ed25519, id_ecdsa, id_rsa',
    parse: findReadableFile,
  },
  insecureDocker: {
    group: 'Docker daemon', flag: '--insecure-docker', env: 'AGENT_WORKER_INSECURE_DOCKER', help: 'allow plain unauthenticated tcp:// to a non-loopback daemon', default: 'off',
    kind: 'switch', fallback: 'off', parse: parseSwitch,
  },
  json: {
    group: 'Output', flag: '--json', env: 'AGENT_WORKER_JSON', help: 'print the report as one JSON document on stdout', default: 'off',
    kind: 'switch', fallback: 'off', parse: parseSwitch,
  },
  quiet: {
    group: 'Output', flag: '-q, --quiet', env: 'AGENT_WORKER_QUIET', help: 'no progress on stderr (the report and errors still print)', default: 'off',
    kind: 'switch', fallback: 'off', parse: parseSwitch,
  },
  debug: {
    group: 'Output', flag: '--debug', env: 'DEBUG', help: 'debug logging on stderr', default: 'off',
    kind: 'switch', fallback: 'off', parse: parseDebugWord,
  },
} as const satisfies Record<string, SettingDefinition>;

/** A setting's name: its flag's, camelCase (`agentType` for `--agent-type`). */
export type SettingKey = keyof typeof SETTINGS;

type FlagValue<S> = S extends { kind: 'switch' } ? boolean : S extends { kind: 'list' } ? string[] : string;

/** Flag values as commander hands them over: strings, booleans (switches), string lists (`--allow-host`); undefined when not given. */
export type RawFlags = { [K in SettingKey]?: FlagValue<(typeof SETTINGS)[K]> };

type ParsedValue<S> = S extends { parse: (...args: never[]) => infer R } ? (Awaited<R> extends infer P ? (P extends { value: infer T } ? T : never) : never) : string;

/** The value a setting's parser gives (a list of them for a list setting). */
export type SettingValue<K extends SettingKey> = (typeof SETTINGS)[K] extends { kind: 'list' } ? ParsedValue<(typeof SETTINGS)[K]>[] : ParsedValue<(typeof SETTINGS)[K]>;

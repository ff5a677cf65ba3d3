/**
 * Layered configuration: command-line flags > environment > `.env` file > defaults.
 *
 * The `.env` file is `<project>/.env`, or the file given with `--env-file`. All invalid values are
 * collected and thrown together as one {@link ConfigError}, each message naming its flag.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { isIP } from 'node:net';
import { parse as parseDotenv } from 'dotenv';
import { ConfigError } from './errors.js';
import { agentTypes, getAgentPlugin } from '../agents/index.js';
import type { AgentCapabilities } from '../agents/types.js';
import type { PriceTable, RunConfig } from './config/types.js';
import { checkDockerHost, checkHttpUrl, checkMcpConfig, isHostName, isValidTimeZone, mcpUrlHosts, parseAgentCommand, parsePriceTable, parseSize } from './config/values.js';

export type { ModelPrices, PriceTable, RunConfig, WorkspaceMode } from './config/types.js';
export { checkDockerHost, checkHttpUrl, checkMcpConfig, mcpUrlHosts, parseAgentCommand, parsePriceTable, parseSize } from './config/values.js';

/** Flag values as commander hands them over: strings, booleans, string lists; undefined when not given. */
export interface RawFlags {
  project?: string;
  branch?: string;
  task?: string;
  taskFile?: string;
  agentType?: string;
  apiKey?: string;
  oauthToken?: string;
  baseUrl?: string;
  timezone?: string;
  timeout?: string;
  remoteDocker?: string;
  forceRebuild?: boolean;
  debug?: boolean;
  json?: boolean;
  model?: string;
  maxTurns?: string;
  caCert?: string;
  allowHost?: string[];
  envFile?: string;
  workspace?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  insecureDocker?: boolean;
  sshKey?: string;
  memory?: string;
  cpus?: string;
  pidsLimit?: string;
  buildTimeout?: string;
  dockerfile?: string;
  verify?: string;
  appendSystemPrompt?: string;
  persona?: string;
  mcpConfig?: string;
  maxBudgetUsd?: string;
  prices?: string;
  agentCommand?: string;
  quiet?: boolean;
}


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

/** One setting: its flag, environment variable, help text, default (as shown) and help group. */
export interface SettingSpec {
  flag: string;
  env: string;
  help: string;
  default: string | undefined;
  group: (typeof SETTING_GROUPS)[number];
}

/** The capability each agent-specific flag needs (agents/types.ts AgentCapabilities). */
const flagCapability: Record<string, keyof AgentCapabilities> = {
  '--mcp-config': 'mcp',
  '--max-turns': 'maxTurns',
  '--max-budget-usd': 'maxBudgetUsd',
  '--oauth-token': 'oauthToken',
};

/** Where each setting is read from: flag name, environment variable, default. Drives `--help` and the README table. */
export const SETTINGS = {
  task: { group: 'Task', flag: '--task <text>', env: 'AGENT_TASK', help: 'the task for the agent (required, or --task-file)', default: undefined },
  taskFile: { group: 'Task', flag: '--task-file <path>', env: 'AGENT_TASK_FILE', help: 'read the task from a file (- for stdin)', default: undefined },
  project: { group: 'Task', flag: '--project <path>', env: 'PROJECT_PATH', help: 'git repository to work on', default: 'current directory' },
  branch: { group: 'Task', flag: '--branch <name>', env: 'AGENT_BRANCH', help: 'branch to create for the agent\'s work', default: 'agent-task-<timestamp>' },
  verify: { group: 'Task', flag: '--verify <command>', env: 'AGENT_VERIFY', help: 'command run in the container after the agent (e.g. "npm test"); its result goes into the report', default: undefined },
  agentType: { group: 'Agent', flag: '--agent-type <name>', env: 'AGENT_TYPE', help: 'the agent: claude, codex, gemini, opencode, qwen, copilot, exec', default: 'claude' },
  model: { group: 'Agent', flag: '--model <name>', env: 'ANTHROPIC_MODEL', help: 'model for the agent (env: the agent\'s own variable)', default: 'the agent\'s default' },
  maxTurns: { group: 'Agent', flag: '--max-turns <n>', env: 'AGENT_MAX_TURNS', help: 'stop the agent after this many turns (status max_turns)', default: 'unlimited' },
  maxBudgetUsd: { group: 'Agent', flag: '--max-budget-usd <dollars>', env: 'AGENT_MAX_BUDGET_USD', help: 'stop the agent once it has spent this much (status budget_exceeded)', default: 'unlimited' },
  appendSystemPrompt: { group: 'Agent', flag: '--append-system-prompt <text>', env: 'AGENT_APPEND_SYSTEM_PROMPT', help: 'text appended to the agent\'s system prompt', default: undefined },
  persona: { group: 'Agent', flag: '--persona <file>', env: 'AGENT_PERSONA', help: 'markdown file (role, rules, style) appended to the system prompt', default: undefined },
  agentCommand: { group: 'Agent', flag: '--agent-command <command>', env: 'AGENT_COMMAND', help: 'the command line of your own agent CLI, for --agent-type exec (split like a shell would, never run by one)', default: undefined },
  prices: { group: 'Agent', flag: '--prices <file>', env: 'AGENT_WORKER_PRICES', help: 'JSON prices per model (USD per million input, output, cacheRead, cacheWrite tokens) for agents that report no cost', default: undefined },
  mcpConfig: { group: 'Agent', flag: '--mcp-config <file>', env: 'AGENT_MCP_CONFIG', help: 'MCP servers for the agent (Claude Code JSON); allow their hosts with --allow-host', default: undefined },
  apiKey: { group: 'Credentials', flag: '--api-key <key>', env: 'ANTHROPIC_API_KEY', help: 'the model API\'s key (env: the agent\'s own variable; codex: OPENAI_API_KEY, gemini: GEMINI_API_KEY, …)', default: undefined },
  oauthToken: { group: 'Credentials', flag: '--oauth-token <token>', env: 'CLAUDE_CODE_OAUTH_TOKEN', help: 'Claude subscription OAuth token (instead of an API key)', default: undefined },
  baseUrl: { group: 'Credentials', flag: '--base-url <url>', env: 'ANTHROPIC_BASE_URL', help: 'the model API, as the agent\'s own base-URL setting takes it (env: the agent\'s own variable)', default: 'the agent\'s API' },
  envFile: { group: 'Credentials', flag: '--env-file <path>', env: 'AGENT_WORKER_ENV_FILE', help: '.env file to read', default: '<project>/.env' },
  dockerfile: { group: 'Container', flag: '--dockerfile <path>', env: 'AGENT_WORKER_DOCKERFILE', help: 'project Dockerfile built FROM the tool\'s image (build arg AGENT_WORKER_IMAGE)', default: '.agent-worker/Dockerfile if present' },
  timeout: { group: 'Container', flag: '--timeout <seconds>', env: 'AGENT_TIMEOUT', help: 'host-enforced limit on the agent\'s run (and --verify)', default: '3600' },
  timezone: { group: 'Container', flag: '--timezone <tz>', env: 'TZ', help: 'time zone inside the container', default: 'host\'s, else UTC' },
  memory: { group: 'Container', flag: '--memory <size>', env: 'AGENT_WORKER_MEMORY', help: 'memory limit of the agent\'s container (e.g. 4g, 512m)', default: '8g' },
  cpus: { group: 'Container', flag: '--cpus <n>', env: 'AGENT_WORKER_CPUS', help: 'CPU limit of the agent\'s container (e.g. 1.5)', default: 'no limit' },
  pidsLimit: { group: 'Container', flag: '--pids-limit <n>', env: 'AGENT_WORKER_PIDS_LIMIT', help: 'most processes in the agent\'s container', default: '4096' },
  allowHost: { group: 'Container', flag: '--allow-host <host>', env: 'AGENT_ALLOW_HOSTS', help: 'extra host the agent may reach through the egress proxy, by name or wildcard (*.npmjs.org) (repeatable; env: comma-separated)', default: 'none' },
  caCert: { group: 'Container', flag: '--ca-cert <file>', env: 'AGENT_WORKER_CA_CERT', help: 'extra CA certificates (PEM) trusted in the image and by the agent', default: undefined },
  buildTimeout: { group: 'Container', flag: '--build-timeout <seconds>', env: 'AGENT_WORKER_BUILD_TIMEOUT', help: 'longest an image build may take', default: '1800' },
  forceRebuild: { group: 'Container', flag: '--force-rebuild', env: 'FORCE_REBUILD', help: 'rebuild the image even if it is cached', default: 'off' },
  remoteDocker: { group: 'Docker daemon', flag: '--remote-docker <url>', env: 'DOCKER_HOST', help: 'Docker daemon to use (unix://, tcp://, ssh://)', default: 'local socket' },
  workspace: { group: 'Docker daemon', flag: '--workspace <mode>', env: 'AGENT_WORKER_WORKSPACE', help: 'mount (bind-mount the work tree) or copy (copy the repository in, bring the commits back)', default: 'mount; copy for a remote daemon' },
  tlsCa: { group: 'Docker daemon', flag: '--tls-ca <file>', env: 'AGENT_WORKER_TLS_CA', help: 'CA certificate (PEM) that signed the tcp:// daemon\'s certificate', default: '$DOCKER_CERT_PATH/ca.pem with DOCKER_TLS_VERIFY=1' },
  tlsCert: { group: 'Docker daemon', flag: '--tls-cert <file>', env: 'AGENT_WORKER_TLS_CERT', help: 'client certificate (PEM) for the tcp:// daemon', default: '$DOCKER_CERT_PATH/cert.pem' },
  tlsKey: { group: 'Docker daemon', flag: '--tls-key <file>', env: 'AGENT_WORKER_TLS_KEY', help: 'client key (PEM) for the tcp:// daemon', default: '$DOCKER_CERT_PATH/key.pem' },
  sshKey: { group: 'Docker daemon', flag: '--ssh-key <file>', env: 'AGENT_WORKER_SSH_KEY', help: 'private key for ssh:// daemons', default: 'ssh agent, ~/.ssh/id_ed25519, id_ecdsa, id_rsa' },
  insecureDocker: { group: 'Docker daemon', flag: '--insecure-docker', env: 'AGENT_WORKER_INSECURE_DOCKER', help: 'allow plain unauthenticated tcp:// to a non-loopback daemon', default: 'off' },
  json: { group: 'Output', flag: '--json', env: 'AGENT_WORKER_JSON', help: 'print the report as one JSON document on stdout', default: 'off' },
  quiet: { group: 'Output', flag: '-q, --quiet', env: 'AGENT_WORKER_QUIET', help: 'no progress on stderr (the report and errors still print)', default: 'off' },
  debug: { group: 'Output', flag: '--debug', env: 'DEBUG', help: 'debug logging on stderr', default: 'off' },
} as const satisfies Record<string, SettingSpec>;

/** Injected process surroundings, so loading is testable. */
export interface ConfigContext {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Reads standard input whole (for `--task-file -`). */
  readStdin: () => Promise<string>;
  /** The host's time zone (Intl), if known. */
  hostTimeZone?: string;
  /** False for commands that do not run a task (`doctor`): a missing task is then no problem. Default true. */
  requireTask?: boolean;
}

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off', '']);

/**
 * Resolves flags, environment and `.env` into a validated {@link RunConfig}.
 * @throws ConfigError listing every invalid value, each naming its flag.
 */
export async function loadConfig(flags: RawFlags, context: ConfigContext): Promise<RunConfig> {
  const problems: string[] = [];
  const env = context.env;

  const projectInput = flags.project ?? nonEmpty(env.PROJECT_PATH) ?? '.';
  const project = path.resolve(context.cwd, projectInput);

  const envFileInput = flags.envFile ?? nonEmpty(env.AGENT_WORKER_ENV_FILE);
  const envFile = envFileInput ? path.resolve(context.cwd, envFileInput) : path.join(project, '.env');
  let fileValues: Record<string, string> = {};
  let envFileRead: string | undefined;
  try {
    fileValues = parseDotenv(await readFile(envFile));
    envFileRead = envFile;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (envFileInput || (code !== 'ENOENT' && code !== 'ENOTDIR')) {
      problems.push(cannotRead('--env-file', envFile, error));
    }
  }

  /** flag > environment > .env; empty strings count as unset. */
  /** The flag, else the first of the variables that is set (environment before the .env file). */
  const pickAny = (flag: string | undefined, names: readonly string[]): string | undefined =>
    flag ?? names.map((name) => nonEmpty(env[name])).find(Boolean) ?? names.map((name) => nonEmpty(fileValues[name])).find(Boolean);
  const pick = (flag: string | undefined, name: string): string | undefined => pickAny(flag, [name]);
  const pickBool = (flag: boolean | undefined, name: string, flagName: string): boolean => {
    if (flag !== undefined) return flag;
    const raw = nonEmpty(env[name]) ?? nonEmpty(fileValues[name]);
    if (raw === undefined) return false;
    const word = raw.trim().toLowerCase();
    if (TRUE_WORDS.has(word)) return true;
    if (FALSE_WORDS.has(word)) return false;
    problems.push(`${flagName}: ${name}=${JSON.stringify(raw)} is not a boolean (use 1/0, true/false).`);
    return false;
  };

  // The task: --task or --task-file, exactly one.
  const taskText = pick(flags.task, 'AGENT_TASK');
  const taskFile = pick(flags.taskFile, 'AGENT_TASK_FILE');
  let task = '';
  if (flags.task !== undefined && flags.taskFile !== undefined) {
    problems.push('--task and --task-file: give one of them, not both.');
  } else if (flags.taskFile !== undefined || (taskText === undefined && taskFile !== undefined)) {
    const file = flags.taskFile ?? taskFile!;
    try {
      task = file === '-' ? await context.readStdin() : await readFile(path.resolve(context.cwd, file), 'utf8');
    } catch (error) {
      problems.push(cannotRead('--task-file', file, error));
    }
  } else if (taskText !== undefined) {
    task = taskText;
  }
  if (task.includes('\0')) problems.push('--task: the task contains a NUL byte, which cannot be passed to the agent; remove it.');
  else if (task.trim() === '' && context.requireTask !== false && !problems.some((p) => p.startsWith('--task'))) {
    problems.push('--task: a task is required: --task "…" or --task-file <path> (- for stdin).');
  }

  const agentType = pick(flags.agentType, 'AGENT_TYPE') ?? 'claude';
  const plugin = getAgentPlugin(agentType);
  if (!plugin) {
    problems.push(`--agent-type: unknown agent ${JSON.stringify(agentType)}; known: ${agentTypes.join(', ')}.`);
  }
  // The generic settings come from the flags, else from the agent's own variables (Claude Code's for an unknown one).
  const agentSettings = (plugin ?? getAgentPlugin('claude')!).settings;

  const baseUrl = pickAny(flags.baseUrl, agentSettings.baseUrlEnv);
  if (baseUrl !== undefined) {
    const problem = checkHttpUrl(baseUrl);
    if (problem) problems.push(`--base-url: ${JSON.stringify(baseUrl)} ${problem}`);
  }

  const timezone = pick(flags.timezone, 'TZ') ?? context.hostTimeZone ?? 'UTC';
  if (!isValidTimeZone(timezone)) {
    problems.push(`--timezone: ${JSON.stringify(timezone)} is not an IANA time zone (e.g. Europe/Berlin, UTC).`);
  }

  const timeoutSeconds = parseDurationSeconds(pick(flags.timeout, 'AGENT_TIMEOUT') ?? '3600', '--timeout', problems);
  const maxTurnsRaw = pick(flags.maxTurns, 'AGENT_MAX_TURNS');
  const maxTurns = maxTurnsRaw === undefined ? undefined : parsePositiveInt(maxTurnsRaw, '--max-turns', 'turns', problems);

  const dockerHost = pick(flags.remoteDocker, 'DOCKER_HOST');
  if (dockerHost !== undefined) {
    const problem = checkDockerHost(dockerHost);
    if (problem) problems.push(`--remote-docker: ${JSON.stringify(dockerHost)} ${problem}`);
  }

  const caCertPath = pick(flags.caCert, 'AGENT_WORKER_CA_CERT');
  let caCert: RunConfig['caCert'];
  if (caCertPath !== undefined) {
    const resolved = path.resolve(context.cwd, caCertPath);
    try {
      const pem = (await stat(resolved)).isFile() ? await readFile(resolved, 'utf8') : undefined;
      if (pem === undefined) {
        problems.push(`--ca-cert: cannot read ${resolved}: not a regular file.`);
      } else if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
        problems.push(`--ca-cert: ${resolved} holds no PEM certificate (-----BEGIN CERTIFICATE-----).`);
      } else {
        caCert = { path: resolved, pem };
      }
    } catch (error) {
      problems.push(cannotRead('--ca-cert', resolved, error));
    }
  }

  const allowHosts = flags.allowHost?.length
    ? flags.allowHost
    : splitList(nonEmpty(env.AGENT_ALLOW_HOSTS) ?? nonEmpty(fileValues.AGENT_ALLOW_HOSTS));
  for (const host of allowHosts) {
    if (!isHostName(host.startsWith('*.') ? host.slice(2) : host) || (host.startsWith('*.') && isIP(host.slice(2)))) {
      problems.push(`--allow-host: ${JSON.stringify(host)} is not a host name, a wildcard (*.example.com) or an IP address.`);
    }
  }

  const workspaceRaw = pick(flags.workspace, 'AGENT_WORKER_WORKSPACE');
  if (workspaceRaw !== undefined && workspaceRaw !== 'mount' && workspaceRaw !== 'copy') {
    problems.push(`--workspace: ${JSON.stringify(workspaceRaw)} is not a workspace mode; use mount or copy.`);
  }
  const tls: RunConfig['tls'] = {};
  for (const [key, flag, name] of [['ca', '--tls-ca', 'AGENT_WORKER_TLS_CA'], ['cert', '--tls-cert', 'AGENT_WORKER_TLS_CERT'], ['key', '--tls-key', 'AGENT_WORKER_TLS_KEY']] as const) {
    const flagValue = key === 'ca' ? flags.tlsCa : key === 'cert' ? flags.tlsCert : flags.tlsKey;
    const value = pick(flagValue, name);
    if (value === undefined) continue;
    const resolved = path.resolve(context.cwd, value);
    try {
      await readFile(resolved);
      tls[key] = resolved;
    } catch (error) {
      problems.push(cannotRead(flag, resolved, error));
    }
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) problems.push('--tls-cert and --tls-key: give both or neither.');
  const sshKeyRaw = pick(flags.sshKey, 'AGENT_WORKER_SSH_KEY');
  let sshKey: string | undefined;
  if (sshKeyRaw !== undefined) {
    sshKey = path.resolve(context.cwd, sshKeyRaw);
    try {
      await readFile(sshKey);
    } catch (error) {
      problems.push(cannotRead('--ssh-key', sshKey, error));
    }
  }

  const memoryRaw = pick(flags.memory, 'AGENT_WORKER_MEMORY') ?? DEFAULT_MEMORY;
  const memoryBytes = parseSize(memoryRaw);
  if (memoryBytes === undefined || memoryBytes < 64 * 1024 ** 2) {
    problems.push(`--memory: ${JSON.stringify(memoryRaw)} is not a memory size of at least 64m (e.g. 4g, 512m).`);
  }
  const cpusRaw = pick(flags.cpus, 'AGENT_WORKER_CPUS');
  let cpus: number | undefined;
  if (cpusRaw !== undefined) {
    cpus = Number(cpusRaw);
    if (!/^\d+(\.\d+)?$/.test(cpusRaw.trim()) || !(cpus >= 0.01)) problems.push(`--cpus: ${JSON.stringify(cpusRaw)} is not a number of CPUs (e.g. 2, 1.5).`);
  }
  const pidsLimit = parsePositiveInt(pick(flags.pidsLimit, 'AGENT_WORKER_PIDS_LIMIT') ?? String(DEFAULT_PIDS_LIMIT), '--pids-limit', 'processes', problems);
  const buildTimeoutSeconds = parseDurationSeconds(pick(flags.buildTimeout, 'AGENT_WORKER_BUILD_TIMEOUT') ?? String(DEFAULT_BUILD_TIMEOUT_SECONDS), '--build-timeout', problems);

  // The project's Dockerfile: --dockerfile, else .agent-worker/Dockerfile when the project has one.
  const dockerfileRaw = pick(flags.dockerfile, 'AGENT_WORKER_DOCKERFILE');
  let dockerfile: string | undefined;
  const defaultDockerfile = path.join(project, PROJECT_DOCKERFILE);
  const candidate = dockerfileRaw !== undefined ? path.resolve(context.cwd, dockerfileRaw) : defaultDockerfile;
  try {
    if ((await stat(candidate)).isFile()) dockerfile = candidate;
    else if (dockerfileRaw !== undefined) problems.push(`--dockerfile: ${candidate} is not a file.`);
  } catch (error) {
    if (dockerfileRaw !== undefined) problems.push(cannotRead('--dockerfile', candidate, error));
  }

  const verify = pick(flags.verify, 'AGENT_VERIFY');
  if (verify !== undefined && (verify.trim() === '' || verify.includes('\0'))) {
    problems.push('--verify: give a command to run, e.g. --verify "npm test" (no NUL bytes).');
  }

  const promptParts: string[] = [];
  const appendText = pick(flags.appendSystemPrompt, 'AGENT_APPEND_SYSTEM_PROMPT');
  if (appendText !== undefined) promptParts.push(appendText);
  const personaRaw = pick(flags.persona, 'AGENT_PERSONA');
  let persona: string | undefined;
  if (personaRaw !== undefined) {
    persona = path.resolve(context.cwd, personaRaw);
    try {
      const text = (await readFile(persona, 'utf8')).trim();
      if (text === '') problems.push(`--persona: ${persona} is empty.`);
      else promptParts.push(text);
    } catch (error) {
      problems.push(cannotRead('--persona', persona, error));
    }
  }
  const appendSystemPrompt = promptParts.length > 0 ? promptParts.join('\n\n') : undefined;

  const pricesRaw = pick(flags.prices, 'AGENT_WORKER_PRICES');
  let prices: PriceTable | undefined;
  if (pricesRaw !== undefined) {
    const file = path.resolve(context.cwd, pricesRaw);
    try {
      prices = parsePriceTable(await readFile(file, 'utf8'), (problem) => problems.push(`--prices: ${file}: ${problem}`));
    } catch (error) {
      problems.push(cannotRead('--prices', file, error));
    }
  }
  if (appendSystemPrompt?.includes('\0')) problems.push('--append-system-prompt/--persona: the text contains a NUL byte; remove it.');

  const mcpRaw = pick(flags.mcpConfig, 'AGENT_MCP_CONFIG');
  let mcpConfig: RunConfig['mcpConfig'];
  if (mcpRaw !== undefined) {
    const file = path.resolve(context.cwd, mcpRaw);
    try {
      const json = await readFile(file, 'utf8');
      const problem = checkMcpConfig(json);
      if (problem) problems.push(`--mcp-config: ${file} ${problem}`);
      else mcpConfig = { path: file, json, urlHosts: mcpUrlHosts(json) };
    } catch (error) {
      problems.push(cannotRead('--mcp-config', file, error));
    }
  }

  const budgetRaw = pick(flags.maxBudgetUsd, 'AGENT_MAX_BUDGET_USD');
  let maxBudgetUsd: number | undefined;
  if (budgetRaw !== undefined) {
    maxBudgetUsd = Number(budgetRaw.trim());
    if (!/^\d+(\.\d+)?$/.test(budgetRaw.trim()) || !(maxBudgetUsd > 0)) {
      problems.push(`--max-budget-usd: ${JSON.stringify(budgetRaw)} is not an amount of US dollars above 0 (e.g. 2.50).`);
    }
  }

  const debugEnv = nonEmpty(env.DEBUG) ?? nonEmpty(fileValues.DEBUG);
  const debug =
    flags.debug ??
    (debugEnv !== undefined && (TRUE_WORDS.has(debugEnv.toLowerCase()) || debugEnv.includes('agent-worker') || debugEnv === '*'));

  const agentCommandRaw = pick(flags.agentCommand, 'AGENT_COMMAND');
  let agentCommand: string[] | undefined;
  if (agentCommandRaw !== undefined && plugin && plugin.name !== 'exec') {
    problems.push(`--agent-command: only --agent-type exec runs a command of yours; the ${plugin.name} agent runs its own CLI.`);
  } else if (agentCommandRaw !== undefined) {
    agentCommand = parseAgentCommand(agentCommandRaw, (problem) => problems.push(`--agent-command: ${problem}`));
  } else if (plugin?.name === 'exec') {
    problems.push('--agent-command: --agent-type exec needs the command line of your agent, e.g. --agent-command "my-agent --yes" (installed by --dockerfile, or a script in the repository).');
  }

  const model = pickAny(flags.model, agentSettings.modelEnv);
  if (model !== undefined && (model.startsWith('-') || [...model].some((char) => char.charCodeAt(0) < 0x20 || char === '\u007f'))) {
    // An agent's own option parser would take "-…" for one of its flags (e.g. yargs: `-m --sandbox`).
    problems.push(`--model: ${JSON.stringify(model)} is not a model name (it starts with "-" or holds a control character).`);
  }
  if (plugin?.settings.modelRequired && model === undefined) {
    problems.push(`--model: the ${plugin.name} agent has no default model; give one with --model or ${agentSettings.modelEnv.join('/')}.`);
  }

  // A flag the agent cannot honour is refused, never dropped.
  if (plugin) {
    const cannot = (flag: string, given: boolean, supported: boolean): void => {
      if (given && !supported) problems.push(`${flag}: the ${plugin.name} agent does not support it; run without it, or with an agent that does (--agent-type ${agentTypes.filter((name) => name !== plugin.name && (getAgentPlugin(name)?.supports[flagCapability[flag]!] ?? false)).join('|') || 'claude'}).`);
    };
    cannot('--mcp-config', mcpConfig !== undefined, plugin.supports.mcp);
    cannot('--max-turns', maxTurns !== undefined, plugin.supports.maxTurns);
    cannot('--max-budget-usd', maxBudgetUsd !== undefined, plugin.supports.maxBudgetUsd);
    cannot('--oauth-token', pickAny(flags.oauthToken, agentSettings.oauthTokenEnv ?? []) !== undefined, plugin.supports.oauthToken);
  }

  const config: RunConfig = {
    project,
    branch: pick(flags.branch, 'AGENT_BRANCH'),
    task,
    agentType,
    apiKey: pickAny(flags.apiKey, agentSettings.apiKeyEnv),
    oauthToken: pickAny(flags.oauthToken, agentSettings.oauthTokenEnv ?? []),
    baseUrl,
    timezone,
    timeoutSeconds,
    dockerHost,
    forceRebuild: pickBool(flags.forceRebuild, 'FORCE_REBUILD', '--force-rebuild'),
    debug,
    json: pickBool(flags.json, 'AGENT_WORKER_JSON', '--json'),
    model,
    maxTurns,
    caCert,
    allowHosts,
    envFile: envFileRead,
    workspace: workspaceRaw === 'mount' || workspaceRaw === 'copy' ? workspaceRaw : undefined,
    tls,
    insecureDocker: pickBool(flags.insecureDocker, 'AGENT_WORKER_INSECURE_DOCKER', '--insecure-docker'),
    sshKey,
    memoryBytes: memoryBytes ?? 0,
    cpus,
    pidsLimit,
    buildTimeoutSeconds,
    dockerfile,
    verify,
    appendSystemPrompt,
    persona,
    mcpConfig,
    prices,
    agentCommand,
    maxBudgetUsd,
    quiet: pickBool(flags.quiet, 'AGENT_WORKER_QUIET', '--quiet'),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** Words for the errno codes a file a flag names most often fails with. */
const FILE_ERROR_WORDS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a folder, not a file',
  ENOTDIR: 'a part of the path is not a folder',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the path is too long',
};

/**
 * The problem for a file that `flag` names and that could not be read:
 * `<flag>: cannot read <file>: <reason> (<errno code>).`, e.g. `--ca-cert: cannot read /x.pem: no such file (ENOENT).`
 */
function cannotRead(flag: string, file: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const words = code === undefined ? String(error) : (FILE_ERROR_WORDS[code] ?? code);
  return `${flag}: cannot read ${file}: ${words}${code !== undefined && FILE_ERROR_WORDS[code] ? ` (${code})` : ''}.`;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function splitList(value: string | undefined): string[] {
  return value ? value.split(/[\s,]+/).filter(Boolean) : [];
}

/**
 * The longest duration the tool accepts, in seconds: Node's timers hold at most 2^31 − 1 ms (about 24.8 days);
 * a longer one fires at once (TimeoutOverflowWarning), so it is refused instead.
 */
export const MAX_DURATION_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/**
 * A duration in whole seconds, from 1 to {@link MAX_DURATION_SECONDS}; a problem naming `flag` (and the largest
 * value allowed) is added otherwise.
 */
function parseDurationSeconds(raw: string, flag: string, problems: string[]): number {
  const seconds = parsePositiveInt(raw, flag, 'seconds', problems);
  if (seconds > MAX_DURATION_SECONDS) {
    problems.push(`${flag}: ${JSON.stringify(raw)} seconds is too long; the largest value allowed is ${MAX_DURATION_SECONDS} (about 24 days).`);
    return 0;
  }
  return seconds;
}

function parsePositiveInt(raw: string, flag: string, unit: string, problems: string[]): number {
  const trimmed = raw.trim();
  if (!/^\d+$/.test(trimmed) || Number(trimmed) <= 0 || !Number.isSafeInteger(Number(trimmed))) {
    problems.push(`${flag}: ${JSON.stringify(raw)} is not a positive whole number of ${unit}.`);
    return 0;
  }
  return Number(trimmed);
}


/**
 * Layered configuration: command-line flags > environment > `.env` file > defaults.
 *
 * Each setting is read and parsed on its own, as {@link SETTINGS} defines it; then the rules between settings are
 * checked (the task from --task or --task-file, the TLS pair, what the agent can do, …). The `.env` file is
 * `<project>/.env`, or the file given with `--env-file`. All problems are collected and thrown together as one
 * {@link ConfigError}, each naming its flag.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { ConfigError } from '../errors.js';
import { agentTypes, getAgentPlugin } from '../../agents/index.js';
import type { AgentCapabilities, AgentPlugin, AgentSettings } from '../../agents/types.js';
import { SETTINGS, type RawFlags, type SettingContext, type SettingDefinition, type SettingKey, type SettingValue, type Source } from './settings.js';
import type { RunConfig } from './types.js';
import { cannotRead, ok, splitList } from './values.js';

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

/**
 * Resolves flags, environment and `.env` into a validated {@link RunConfig}: every setting read and parsed on its own
 * ({@link readSettings}), then the rules between them ({@link checkRules}).
 * @throws ConfigError listing every invalid value, each naming its flag.
 */
export async function loadConfig(flags: RawFlags, context: ConfigContext): Promise<RunConfig> {
  const problems = new Problems();
  const { readings, envFile, plugin } = await readSettings(flags, context, problems);
  const { task, appendSystemPrompt } = await checkRules(readings, plugin, context, problems);
  if (problems.any()) throw new ConfigError(problems.list());

  // No problem: every setting with a fallback has its value.
  const values = Object.fromEntries(Object.entries(readings).map(([key, reading]) => [key, reading.value])) as Values;
  const tls: RunConfig['tls'] = {};
  if (values.tlsCa !== undefined) tls.ca = values.tlsCa;
  if (values.tlsCert !== undefined) tls.cert = values.tlsCert;
  if (values.tlsKey !== undefined) tls.key = values.tlsKey;
  return {
    project: values.project,
    branch: values.branch,
    task,
    agentType: values.agentType.name,
    apiKey: values.apiKey,
    oauthToken: values.oauthToken,
    baseUrl: values.baseUrl,
    timezone: values.timezone,
    timeoutSeconds: values.timeout,
    dockerHost: values.remoteDocker,
    forceRebuild: values.forceRebuild,
    debug: values.debug,
    json: values.json,
    model: values.model,
    maxTurns: values.maxTurns,
    caCert: values.caCert,
    allowHosts: values.allowHost,
    envFile,
    workspace: values.workspace,
    backend: values.backend,
    registry: values.registry,
    placement: values.placement,
    tls,
    insecureDocker: values.insecureDocker,
    sshKey: values.sshKey,
    memoryBytes: values.memory,
    cpus: values.cpus,
    pidsLimit: values.pidsLimit,
    buildTimeoutSeconds: values.buildTimeout,
    dockerfile: values.dockerfile,
    verify: values.verify,
    appendSystemPrompt,
    persona: values.persona?.path,
    mcpConfig: values.mcpConfig,
    prices: values.prices,
    agentCommand: values.agentCommand,
    maxBudgetUsd: values.maxBudgetUsd,
    quiet: values.quiet,
  };
}

/** A setting as read: its value (undefined when it is unset and has no fallback, or is invalid), and where its raw value came from (undefined when unset). */
interface Reading<T> {
  value: T | undefined;
  from?: Source;
}

type Readings = { [K in SettingKey]: Reading<SettingValue<K>> };

/** The settings' values once no problem was found: a setting with a fallback (or a list) always has one. */
type Values = {
  [K in SettingKey]: (typeof SETTINGS)[K] extends { fallback: string | ((context: never) => string) } | { kind: 'list' } ? SettingValue<K> : SettingValue<K> | undefined;
};

/** Where raw values are looked up. */
interface Sources {
  flags: RawFlags;
  env: NodeJS.ProcessEnv;
  /** The `.env` file's values (empty while the settings it is found through are read). */
  dotenv: Record<string, string>;
  /** The agent whose own variables its settings are read from ({@link SettingDefinition.agentEnv}). */
  agent: AgentSettings;
}

/** Claude Code's variables: read for an unknown agent (which is refused), and before the agent is known. */
const DEFAULT_AGENT_SETTINGS = getAgentPlugin('claude')!.settings;

/**
 * Reads and parses every setting: first the project and the `.env` file's name (from flags and the environment only),
 * then the `.env` file, then the agent (whose variables some settings are read from), then the others.
 */
async function readSettings(
  flags: RawFlags,
  context: ConfigContext,
  problems: Problems,
): Promise<{ readings: Readings; envFile: string | undefined; plugin: AgentPlugin | undefined }> {
  const readings: Partial<Record<SettingKey, Reading<unknown>>> = {};
  const read = async <K extends SettingKey>(key: K, sources: Sources, settingContext: SettingContext): Promise<Readings[K]> => {
    const reading = await readSetting(key, sources, settingContext, problems);
    readings[key] = reading;
    // Its value is what the setting's parser gives: SettingValue<K>.
    return reading as Readings[K];
  };

  const early: Sources = { flags, env: context.env, dotenv: {}, agent: DEFAULT_AGENT_SETTINGS };
  const project = (await read('project', early, { cwd: context.cwd, hostTimeZone: context.hostTimeZone })).value!;
  const settingContext: SettingContext = { cwd: context.cwd, project, hostTimeZone: context.hostTimeZone };
  const { dotenv, envFile } = await readDotenv((await read('envFile', early, settingContext)).value, project, problems);

  const plugin = (await read('agentType', { ...early, dotenv }, settingContext)).value;
  // The generic settings come from the flags, else from the agent's own variables (Claude Code's for an unknown one).
  const sources: Sources = { ...early, dotenv, agent: plugin?.settings ?? DEFAULT_AGENT_SETTINGS };
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    if (!(key in readings)) await read(key, sources, settingContext);
  }
  return { readings: readings as Readings, envFile, plugin };
}

/**
 * The `.env` file's values: the file `named` by --env-file (one that cannot be read is a problem), else the project's
 * `.env`, when there is one.
 * @returns its values (none when it was not read), and its path when it was read.
 */
async function readDotenv(named: string | undefined, project: string, problems: Problems): Promise<{ dotenv: Record<string, string>; envFile?: string }> {
  const envFile = named ?? path.join(project, '.env');
  try {
    return { dotenv: parseDotenv(await readFile(envFile)), envFile };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (named !== undefined || (code !== 'ENOENT' && code !== 'ENOTDIR')) problems.add('envFile', `--env-file: ${cannotRead(envFile, error)}`);
    return { dotenv: {} };
  }
}

/** Reads one setting: its raw value (flag > environment > `.env` > fallback), parsed; its problems go to `problems`, each after the flag. */
async function readSetting(key: SettingKey, sources: Sources, context: SettingContext, problems: Problems): Promise<Reading<unknown>> {
  const setting: SettingDefinition = SETTINGS[key];
  const raw = rawValue(key, setting, sources, context);
  if (raw === undefined) return { value: setting.kind === 'list' ? [] : undefined };
  const parse = setting.parse ?? ((text: string) => ok(text));
  const answers = await Promise.all(raw.texts.map((text) => parse(text, { ...context, from: raw.from })));
  const found = answers.flatMap((answer) => ('problems' in answer ? answer.problems : []));
  if (found.length > 0) {
    const flag = /--[a-z-]+/.exec(setting.flag)![0];
    problems.add(key, ...found.map((problem) => `${flag}: ${problem}`));
    return { value: undefined, from: raw.from };
  }
  const values = answers.map((answer) => ('value' in answer ? answer.value : undefined));
  return { value: setting.kind === 'list' ? values : values[0], from: raw.from };
}

/**
 * A setting's raw value and where it came from: its flag (a switch's as `true`/`false`; a list flag given at least
 * once), else the first of its variables set (not empty) in the environment, else in the `.env` file, else its
 * fallback; undefined when it is unset. A list's raw value is its entries.
 */
function rawValue(key: SettingKey, setting: SettingDefinition, sources: Sources, context: SettingContext): { texts: string[]; from: Source } | undefined {
  const flag = sources.flags[key];
  if (Array.isArray(flag) ? flag.length > 0 : flag !== undefined) return { texts: Array.isArray(flag) ? flag : [String(flag)], from: 'flag' };
  const names = setting.agentEnv?.(sources.agent) ?? [setting.env];
  for (const variables of setting.beforeDotenv ? [sources.env] : [sources.env, sources.dotenv]) {
    for (const name of names) {
      const text = variables[name];
      if (text !== undefined && text !== '') return { texts: setting.kind === 'list' ? splitList(text) : [text], from: { variable: name } };
    }
  }
  const fallback = typeof setting.fallback === 'function' ? setting.fallback(context) : setting.fallback;
  return fallback === undefined ? undefined : { texts: [fallback], from: 'fallback' };
}

/** The capability each agent-specific flag needs (agents/types.ts AgentCapabilities). */
const flagCapability: Record<string, keyof AgentCapabilities> = {
  '--mcp-config': 'mcp',
  '--max-turns': 'maxTurns',
  '--max-budget-usd': 'maxBudgetUsd',
  '--oauth-token': 'oauthToken',
};

/**
 * The rules between settings, checked once each was read: the task (--task or --task-file, exactly one; the file
 * read), the TLS certificate and key (both or neither), the system prompt addition (--append-system-prompt, then the
 * --persona file's text), --agent-command (the exec agent's, and only its), a model for an agent without a default,
 * and the flags the agent cannot honour (refused, never dropped). Their problems go to `problems`.
 * @returns the values made of more than one setting: the task's text and the system prompt addition.
 */
async function checkRules(
  readings: Readings,
  plugin: AgentPlugin | undefined,
  context: ConfigContext,
  problems: Problems,
): Promise<{ task: string; appendSystemPrompt: string | undefined }> {
  const task = await readTask(readings, context, problems);

  const { tlsCert, tlsKey } = readings;
  if ((tlsCert.value === undefined) !== (tlsKey.value === undefined)) problems.add('tlsPair', '--tls-cert and --tls-key: give both or neither.');

  const { backend, registry, workspace, placement } = readings;
  if (backend.value === 'swarm') {
    if (registry.value === undefined && problems.of('registry').length === 0) {
      problems.add('registry', '--registry: --backend swarm needs the registry its nodes pull from, e.g. --registry registry.example.com:5000.');
    }
    if (workspace.value === 'mount') problems.add('workspace', '--workspace mount: a swarm job cannot bind-mount your work tree; use --workspace copy (the default with --backend swarm).');
  } else if (backend.value === 'local') {
    if (registry.from !== undefined) problems.add('registry', '--registry: only --backend swarm uses a registry; add --backend swarm or leave it out.');
    if (placement.from !== undefined) problems.add('placement', '--placement: only --backend swarm places runs; add --backend swarm or leave it out.');
  }

  const promptParts = [readings.appendSystemPrompt.value, readings.persona.value?.text].filter((part) => part !== undefined);
  const appendSystemPrompt = promptParts.length > 0 ? promptParts.join('\n\n') : undefined;
  if (appendSystemPrompt?.includes('\0')) problems.add('systemPrompt', '--append-system-prompt/--persona: the text contains a NUL byte; remove it.');

  const agentCommandGiven = readings.agentCommand.from !== undefined;
  if (agentCommandGiven && plugin && plugin.name !== 'exec') {
    // Refused whole: what the command says does not matter.
    problems.set('agentCommand', [`--agent-command: only --agent-type exec runs a command of yours; the ${plugin.name} agent runs its own CLI.`]);
  } else if (!agentCommandGiven && plugin?.name === 'exec') {
    problems.add('agentCommand', '--agent-command: --agent-type exec needs the command line of your agent, e.g. --agent-command "my-agent --yes" (installed by --dockerfile, or a script in the repository).');
  }

  if (plugin?.settings.modelRequired && readings.model.from === undefined) {
    problems.add('model', `--model: the ${plugin.name} agent has no default model; give one with --model or ${plugin.settings.modelEnv.join('/')}.`);
  }

  // A flag the agent cannot honour is refused, never dropped.
  if (plugin) {
    const cannot = (flag: string, given: boolean, supported: boolean): void => {
      if (given && !supported) problems.add('capabilities', `${flag}: the ${plugin.name} agent does not support it; run without it, or with an agent that does (--agent-type ${agentTypes.filter((name) => name !== plugin.name && (getAgentPlugin(name)?.supports[flagCapability[flag]!] ?? false)).join('|') || 'claude'}).`);
    };
    cannot('--mcp-config', readings.mcpConfig.value !== undefined, plugin.supports.mcp);
    cannot('--max-turns', readings.maxTurns.from !== undefined, plugin.supports.maxTurns);
    cannot('--max-budget-usd', readings.maxBudgetUsd.from !== undefined, plugin.supports.maxBudgetUsd);
    cannot('--oauth-token', readings.oauthToken.from !== undefined, plugin.supports.oauthToken);
  }
  return { task, appendSystemPrompt };
}

/**
 * The task: --task or --task-file, exactly one as flags (`-` reads standard input); else AGENT_TASK before
 * AGENT_TASK_FILE. Never contains NUL; required unless `context.requireTask` is false.
 */
async function readTask(readings: Readings, context: ConfigContext, problems: Problems): Promise<string> {
  const { task: text, taskFile: file } = readings;
  let task = '';
  if (text.from === 'flag' && file.from === 'flag') {
    problems.add('task', '--task and --task-file: give one of them, not both.');
  } else if (file.value !== undefined && (file.from === 'flag' || text.value === undefined)) {
    try {
      task = file.value === '-' ? await context.readStdin() : await readFile(path.resolve(context.cwd, file.value), 'utf8');
    } catch (error) {
      problems.add('task', `--task-file: ${cannotRead(file.value, error)}`);
    }
  } else if (text.value !== undefined) {
    task = text.value;
  }
  if (task.includes('\0')) problems.add('task', '--task: the task contains a NUL byte, which cannot be passed to the agent; remove it.');
  else if (task.trim() === '' && context.requireTask !== false && problems.of('task').length === 0) {
    problems.add('task', '--task: a task is required: --task "…" or --task-file <path> (- for stdin).');
  }
  return task;
}

/** Where a problem was found: a setting (its key), or a rule between settings. */
type ProblemSlot = SettingKey | 'tlsPair' | 'systemPrompt' | 'capabilities';

/**
 * The order problems are reported in: the order they have always been checked in. Each rule's after the settings it
 * checks; a slot not listed reports after the listed ones.
 */
const REPORT_ORDER: readonly ProblemSlot[] = [
  'envFile', 'task', 'agentType', 'baseUrl', 'timezone', 'timeout', 'maxTurns', 'remoteDocker', 'caCert', 'allowHost', 'workspace', 'backend', 'registry', 'placement',
  'tlsCa', 'tlsCert', 'tlsKey', 'tlsPair', 'sshKey', 'memory', 'cpus', 'pidsLimit', 'buildTimeout', 'dockerfile', 'verify', 'persona',
  'prices', 'systemPrompt', 'mcpConfig', 'maxBudgetUsd', 'agentCommand', 'model', 'capabilities', 'forceRebuild', 'json', 'insecureDocker', 'quiet',
];

/** The problems found so far, by where they were found; listed in {@link REPORT_ORDER}. */
class Problems {
  private readonly found = new Map<ProblemSlot, string[]>();

  add(slot: ProblemSlot, ...problems: string[]): void {
    this.found.set(slot, [...this.of(slot), ...problems]);
  }

  /** Replaces the slot's problems. */
  set(slot: ProblemSlot, problems: string[]): void {
    this.found.set(slot, problems);
  }

  of(slot: ProblemSlot): readonly string[] {
    return this.found.get(slot) ?? [];
  }

  any(): boolean {
    return [...this.found.values()].some((problems) => problems.length > 0);
  }

  list(): string[] {
    const rank = (slot: ProblemSlot): number => (REPORT_ORDER.includes(slot) ? REPORT_ORDER.indexOf(slot) : REPORT_ORDER.length);
    return [...this.found].sort(([a], [b]) => rank(a) - rank(b)).flatMap(([, problems]) => problems);
  }
}

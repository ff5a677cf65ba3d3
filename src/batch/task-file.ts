/**
 * Batch task files: reading one (`agent-worker batch <file>`) into task specs with their line numbers, and resolving
 * each task into a validated {@link RunConfig}.
 *
 * Two formats, chosen by the file's extension:
 * - `.jsonl` / `.ndjson`: JSON Lines (https://jsonlines.org): each non-blank line one JSON object, a task; a line
 *   `{"defaults": {…}}` before the first task sets values every task inherits.
 * - anything else (`.yaml`, `.yml`, `.json`, none): YAML 1.2 (so JSON too), read with the `yaml` package: either a
 *   mapping `{defaults?: {…}, tasks: […]}` or a list of tasks.
 *
 * A task's keys are the run's flags, camelCase (`agentType`) or as the flag is spelled (`agent-type`), plus `base`.
 * Every problem is collected, each as `<file>:<line>: <message>`, and thrown together as one {@link ConfigError}.
 */
import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { loadConfig, SETTINGS, type ConfigContext, type RawFlags, type RunConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import { editDistance } from '../text/edit-distance.js';
import type { TaskSpec } from './types.js';

/** A task file as read: its defaults and its tasks, each with the 1-based line it starts on. */
export interface ParsedTaskFile {
  /** The task file's path as given to {@link parseTaskFile}; relative paths are relative to the batch's cwd. */
  file: string;
  /** Values every task inherits (a task's own value wins); `{}` when the file has none. */
  defaults: TaskSpec;
  /** 1-based line of the defaults; null when the file has none. */
  defaultsLine: number | null;
  /** The tasks, in file order (at least one). Their paths are as written (relative to the task file's folder). */
  tasks: { spec: TaskSpec; line: number }[];
}

/** One task ready to run: its validated configuration and where it is in the task file. */
export interface ResolvedTask {
  /** 0-based position in the task file. */
  index: number;
  /** 1-based line of the task in its file. */
  line: number;
  /** Its configuration; `branch` is always set (`agent-task-<batchStamp>-<index+1>` when the task names none). */
  config: RunConfig;
  /** The ref the task's branch starts from, as written; undefined = the repository's HEAD when the batch started. */
  base?: string;
}

/**
 * How each task key's value is written: `string`; `number` (a number or a string: `timeout: 600`); `boolean`
 * (true/false only); `hosts` (a string of host names separated by commas or spaces, or a list of them); `strings`
 * (one string, or a list of them: `placement: ["node.labels.size==large"]`).
 * Typed as a complete record so that a new {@link RawFlags} key fails to compile until it is listed here.
 */
const KEY_KINDS: Record<keyof TaskSpec, 'string' | 'number' | 'boolean' | 'hosts' | 'strings'> = {
  project: 'string',
  branch: 'string',
  base: 'string',
  task: 'string',
  taskFile: 'string',
  agentType: 'string',
  apiKey: 'string',
  oauthToken: 'string',
  baseUrl: 'string',
  timezone: 'string',
  timeout: 'number',
  remoteDocker: 'string',
  forceRebuild: 'boolean',
  model: 'string',
  maxTurns: 'number',
  caCert: 'string',
  allowHost: 'hosts',
  workspace: 'string',
  backend: 'string',
  registry: 'string',
  placement: 'strings',
  tlsCa: 'string',
  tlsCert: 'string',
  tlsKey: 'string',
  insecureDocker: 'boolean',
  sshKey: 'string',
  memory: 'number',
  cpus: 'number',
  pidsLimit: 'number',
  buildTimeout: 'number',
  dockerfile: 'string',
  verify: 'string',
  appendSystemPrompt: 'string',
  persona: 'string',
  mcpConfig: 'string',
  maxBudgetUsd: 'number',
  prices: 'string',
  agentCommand: 'string',
};

type TaskKey = keyof TaskSpec;
/** One layer of values (command line, defaults, task): flags plus `base`. */
type Layer = RawFlags & { base?: string };
const TASK_KEYS = Object.keys(KEY_KINDS) as TaskKey[];

/** Run options that are the whole batch's, never a task's: why, and the batch flag to use instead. */
const REFUSED_KEYS: Record<string, string> = {
  json: 'the output format is the whole batch\'s: agent-worker batch --json',
  quiet: 'progress is the whole batch\'s: agent-worker batch --quiet',
  debug: 'debug logging is the whole batch\'s: agent-worker batch --debug',
  envFile: 'one .env file serves the whole batch: agent-worker batch --env-file <path>',
};

/** Keys whose value is a file or folder path; written in a task file, they are relative to the task file's folder. */
const PATH_KEYS = ['project', 'taskFile', 'caCert', 'dockerfile', 'persona', 'prices', 'mcpConfig', 'tlsCa', 'tlsCert', 'tlsKey', 'sshKey'] as const satisfies readonly TaskKey[];

/** Where a problem is: the task file's name and a 1-based line. */
type Problems = { add(line: number, message: string): void; list: string[] };

/**
 * Reads a batch task file (format by extension, see the module comment) into defaults and tasks with their lines.
 * Values are checked for their type only (strings; numbers for numeric options, made strings: `600` → `'600'`;
 * `true`/`false` for `forceRebuild`/`insecureDocker`; a host or a list of hosts for `allowHost`); their meaning is
 * checked by {@link resolveTasks}.
 * @param text the file's contents.
 * @param fileName the file's path (its extension picks the format); it prefixes every problem.
 * @throws ConfigError listing every problem, each `<fileName>:<line>: <message>`: syntax errors, unknown keys (with
 *   the closest known key), per-batch keys (`json`, `quiet`, `debug`, `envFile`), values of the wrong type, a task
 *   that is not a mapping, misplaced defaults, no tasks at all.
 */
export function parseTaskFile(text: string, fileName: string): ParsedTaskFile {
  const problems: Problems = { list: [], add: (line, message) => problems.list.push(`${fileName}:${line}: ${message}`) };
  const ext = path.extname(fileName).toLowerCase();
  const parsed = ext === '.jsonl' || ext === '.ndjson' ? parseJsonLines(text, problems) : parseYaml(text, problems);
  if (problems.list.length > 0) throw new ConfigError(problems.list);
  return { file: fileName, ...parsed };
}

/**
 * Resolves every task of a parsed task file into a validated configuration, through {@link loadConfig}.
 *
 * Precedence: the task's own value > the file's defaults > `cliFlags` (the `batch` command's flags) > environment >
 * `.env`. A layer that gives `task` or `taskFile` replaces both from the layers below. Relative paths written in the
 * file are relative to the task file's folder; those in `cliFlags` (and in the environment's path variables, e.g.
 * `PROJECT_PATH`) to `context.cwd`. `loadConfig` runs with the task file's folder as its cwd, so a task naming no
 * project works on that folder.
 * @param parsed from {@link parseTaskFile}.
 * @param cliFlags flags given to `batch` on the command line.
 * @param context the process surroundings; `batchStamp` names default branches (`agent-task-<batchStamp>-<n>`,
 *   n 1-based). Standard input is never read.
 * @returns one entry per task, in file order.
 * @throws ConfigError listing every problem of every task, each `<file>:<line>: task <n>: <problem>`: loadConfig's
 *   problems, `taskFile: -` (standard input, refused in a batch), an invalid `base`, two tasks with the same project
 *   and branch.
 */
export async function resolveTasks(
  parsed: ParsedTaskFile,
  cliFlags: RawFlags,
  context: ConfigContext & { batchStamp: string },
): Promise<ResolvedTask[]> {
  const { batchStamp, ...configContext } = context;
  const fileDir = path.dirname(path.resolve(context.cwd, parsed.file));
  const cli = absolutePaths(cliFlags, context.cwd);
  if (cliFlags.envFile !== undefined) cli.envFile = path.resolve(context.cwd, cliFlags.envFile);
  const env = { ...context.env };
  for (const key of [...PATH_KEYS, 'envFile'] as const) {
    const name = SETTINGS[key].env;
    const value = env[name];
    if (value !== undefined && value !== '' && value !== '-') env[name] = path.resolve(context.cwd, value);
  }
  const defaults = absolutePaths(parsed.defaults, fileDir);
  const refuseStdin = (): Promise<string> => Promise.reject(new Error('standard input is not read in a batch'));

  const outcomes = await Promise.all(
    parsed.tasks.map(async ({ spec, line }, index) => {
      const taskProblems: string[] = [];
      const { base, ...flags } = mergeLayers([cli, defaults, absolutePaths(spec, fileDir)]);
      if (flags.taskFile === '-') {
        taskProblems.push('taskFile: "-" (standard input) cannot be used in a batch; write the task in the file (task: …) or name a file.');
      }
      if (base !== undefined) {
        const problem = checkBase(base);
        if (problem) taskProblems.push(`base: ${problem}`);
      }
      let config: RunConfig | undefined;
      try {
        config = await loadConfig(flags, { ...configContext, cwd: fileDir, env, readStdin: refuseStdin });
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        taskProblems.push(...error.problems.filter((problem) => flags.taskFile !== '-' || !problem.startsWith('--task-file')));
      }
      if (config && config.branch === undefined) config.branch = `agent-task-${batchStamp}-${index + 1}`;
      return { index, line, config, base, problems: taskProblems };
    }),
  );

  const problems: string[] = [];
  const prefix = (index: number, line: number): string => `${parsed.file}:${line}: task ${index + 1}: `;
  const seen = new Map<string, { index: number; line: number }>();
  const tasks: ResolvedTask[] = [];
  for (const outcome of outcomes) {
    problems.push(...outcome.problems.map((problem) => prefix(outcome.index, outcome.line) + problem));
    if (!outcome.config) continue;
    const key = `${outcome.config.project}\0${outcome.config.branch}`;
    const first = seen.get(key);
    if (first) {
      problems.push(
        `${prefix(outcome.index, outcome.line)}branch ${JSON.stringify(outcome.config.branch)} of ${outcome.config.project} is also task ${first.index + 1}'s (line ${first.line}); give each task its own branch.`,
      );
    } else {
      seen.set(key, { index: outcome.index, line: outcome.line });
    }
    tasks.push({ index: outcome.index, line: outcome.line, config: outcome.config, ...(outcome.base === undefined ? {} : { base: outcome.base }) });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return tasks;
}

/** Why `base` is not a ref this tool passes on (empty, starts with `-`, holds a control character), else undefined. */
function checkBase(base: string): string | undefined {
  if (base === '') return 'is empty; give a branch, tag or commit, or leave it out for the repository\'s HEAD.';
  if (base.startsWith('-') || [...base].some((char) => char.charCodeAt(0) < 0x20 || char === '\u007f')) {
    return `${JSON.stringify(base)} is not a ref (it starts with "-" or holds a control character).`;
  }
  return undefined;
}

/** A copy of `flags` with its path values (except `taskFile: -`) made absolute against `dir`. */
function absolutePaths(flags: Layer, dir: string): Layer {
  const copy: Layer = { ...flags };
  for (const key of PATH_KEYS) {
    const value = copy[key];
    if (value !== undefined && !(key === 'taskFile' && value === '-')) copy[key] = path.resolve(dir, value);
  }
  return copy;
}

/** The layers merged, later ones winning per key; a layer giving `task` or `taskFile` replaces both. */
function mergeLayers(layers: Layer[]): Layer {
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    if (layer.task !== undefined || layer.taskFile !== undefined) {
      delete merged.task;
      delete merged.taskFile;
    }
    for (const [key, value] of Object.entries(layer)) if (value !== undefined) merged[key] = value;
  }
  return merged as Layer;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading: keys and values, shared by both formats.

/** One `key: value` of a task or of the defaults, with the lines it is on. */
interface Entry {
  key: string;
  /** 1-based line of the key. */
  line: number;
  value: unknown;
  /** 1-based line of each item when the value is a YAML list. */
  itemLines?: number[];
}

/** The spec of one task (or the defaults) from its entries; each problem goes to `problems`. */
function readSpec(entries: Entry[], problems: Problems): TaskSpec {
  const spec: Record<string, unknown> = {};
  const givenAs = new Map<TaskKey, string>();
  for (const { key, line, value, itemLines } of entries) {
    const name = canonicalKey(key);
    if (name === undefined) {
      problems.add(line, unknownKeyMessage(key));
      continue;
    }
    const earlier = givenAs.get(name);
    if (earlier !== undefined) {
      problems.add(line, `${key}: given twice (also as ${earlier}); keep one.`);
      continue;
    }
    givenAs.set(name, key);
    const read = readValue(name, key, value, line, itemLines, problems);
    if (read !== undefined) spec[name] = read;
  }
  return spec as TaskSpec;
}

/** The camelCase task key `key` stands for (itself, or its flag spelling: `agent-type`), else undefined. */
function canonicalKey(key: string): TaskKey | undefined {
  if (Object.hasOwn(KEY_KINDS, key)) return key as TaskKey;
  if (!/^[a-z]+(-[a-z]+)+$/.test(key)) return undefined;
  const camel = key.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
  return Object.hasOwn(KEY_KINDS, camel) ? (camel as TaskKey) : undefined;
}

/** The problem for a key that is no task key: a per-batch key with the reason, else the closest known key. */
function unknownKeyMessage(key: string): string {
  const refused = Object.entries(REFUSED_KEYS).find(([name]) => name === key || kebab(name) === key);
  if (refused) return `${key}: cannot be set per task; ${refused[1]}.`;
  const suggestion = closest(key, TASK_KEYS);
  return suggestion === undefined
    ? `unknown key ${JSON.stringify(key)}; task keys are the run's flags, camelCase or as spelled (agentType or agent-type), and base.`
    : `unknown key ${JSON.stringify(key)}; did you mean ${suggestion}?`;
}

/**
 * The value of task key `name` (written as `key`), normalised to its {@link RawFlags} type: numbers of numeric
 * options become strings, a host string becomes a list. Undefined (and a problem) when it has the wrong type.
 */
function readValue(name: TaskKey, key: string, value: unknown, line: number, itemLines: number[] | undefined, problems: Problems): unknown {
  const kind = KEY_KINDS[name];
  const wrong = (expected: string, at = line, what = value): undefined => {
    problems.add(at, `${key}: expected ${expected}, not ${describe(what)}.`);
    return undefined;
  };
  switch (kind) {
    case 'string':
      if (typeof value === 'string') return value;
      return wrong(typeof value === 'number' || typeof value === 'boolean' ? `a string (quote it: "${String(value)}")` : 'a string');
    case 'number':
      if (typeof value === 'string') return value;
      if (typeof value === 'number' && Number.isFinite(value)) return String(value);
      return wrong('a number or a string (e.g. 600)');
    case 'boolean':
      if (typeof value === 'boolean') return value;
      return wrong('true or false');
    case 'hosts':
      if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean);
      if (!Array.isArray(value)) return wrong('a host name or a list of host names');
      if (value.every((item): item is string => typeof item === 'string')) return value;
      value.forEach((item, index) => {
        if (typeof item !== 'string') wrong(`a host name (item ${index + 1})`, itemLines?.[index] ?? line, item);
      });
      return undefined;
    case 'strings':
      if (typeof value === 'string') return [value];
      if (!Array.isArray(value)) return wrong('a string or a list of strings');
      if (value.every((item): item is string => typeof item === 'string')) return value;
      value.forEach((item, index) => {
        if (typeof item !== 'string') wrong(`a string (item ${index + 1})`, itemLines?.[index] ?? line, item);
      });
      return undefined;
  }
}

/** A value's type in words, for problems: `a number (600)`, `a list`, `a mapping`, `null (no value)`. */
function describe(value: unknown): string {
  if (value === null || value === undefined) return 'null (no value)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `a string (${JSON.stringify(value)})`;
  if (typeof value === 'number' || typeof value === 'boolean') return `a ${typeof value} (${String(value)})`;
  return typeof value;
}

function kebab(camel: string): string {
  return camel.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/**
 * The candidate closest to `word` (ignoring case, `-` and `_`) by edit distance (a swap of two letters is one edit), when within
 * max(2, a third of its length); else undefined.
 */
function closest<T extends string>(word: string, candidates: readonly T[]): T | undefined {
  const plain = (text: string): string => text.toLowerCase().replace(/[-_]/g, '');
  const target = plain(word);
  let best: { candidate: T; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(target, plain(candidate));
    if (distance <= Math.max(2, Math.floor(candidate.length / 3)) && (best === undefined || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

type FileParts = Omit<ParsedTaskFile, 'file'>;

// ---------------------------------------------------------------------------------------------------------------
// JSON Lines.

/** Reads JSON Lines: one object per non-blank line; `{"defaults": {…}}` before the first task. */
function parseJsonLines(text: string, problems: Problems): FileParts {
  let defaults: TaskSpec = {};
  let defaultsLine: number | null = null;
  const tasks: FileParts['tasks'] = [];
  let taskLines = 0;
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((source, index) => {
    const line = index + 1;
    if (source.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(source);
    } catch (error) {
      taskLines++;
      problems.add(line, `not JSON (${error instanceof Error ? error.message : String(error)}); each line holds one task as a JSON object.`);
      return;
    }
    if (!isPlainObject(value)) {
      taskLines++;
      problems.add(line, `expected a task as a JSON object, not ${describe(value)}.`);
      return;
    }
    const keys = Object.keys(value);
    if (keys.includes('defaults')) {
      if (keys.length > 1) {
        problems.add(line, 'defaults: must be on a line of its own, {"defaults": {…}}, before the first task.');
        return;
      }
      if (defaultsLine !== null) problems.add(line, `defaults: given twice (first on line ${defaultsLine}); keep one.`);
      else if (tasks.length > 0) problems.add(line, `defaults: must come before the first task (line ${tasks[0]!.line}).`);
      if (!isPlainObject(value.defaults)) {
        problems.add(line, `defaults: expected a JSON object of task keys, not ${describe(value.defaults)}.`);
        return;
      }
      const spec = readSpec(Object.entries(value.defaults).map(([key, item]) => ({ key, line, value: item })), problems);
      if (defaultsLine === null) {
        defaults = spec;
        defaultsLine = line;
      }
      return;
    }
    taskLines++;
    tasks.push({ spec: readSpec(Object.entries(value).map(([key, item]) => ({ key, line, value: item })), problems), line });
  });
  if (taskLines === 0) problems.add(1, 'no tasks: each line holds one task as a JSON object, e.g. {"project": ".", "task": "…"}.');
  return { defaults, defaultsLine, tasks };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------------------------
// YAML.

/**
 * Reads YAML: `{defaults?: {…}, tasks: […]}` or a list of tasks. A file with syntax errors is reported by those
 * alone: what follows a syntax error cannot be read reliably.
 */
function parseYaml(text: string, problems: Problems): FileParts {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const lineOf = (node: YamlNode | null | undefined, fallback = 1): number => {
    const offset = node?.range?.[0];
    return offset === undefined ? fallback : lineCounter.linePos(offset).line;
  };
  const none: FileParts = { defaults: {}, defaultsLine: null, tasks: [] };
  if (doc.errors.length > 0) {
    for (const error of doc.errors) problems.add(lineCounter.linePos(error.pos[0]).line, `YAML syntax error: ${error.message}`);
    return none;
  }

  let defaults: TaskSpec = {};
  let defaultsLine: number | null = null;
  let taskList: YamlNode | null = null;
  let tasksLine = 1;
  let tasksReported = false;
  const contents = doc.contents;
  if (isSeq(contents)) {
    taskList = contents;
    tasksLine = lineOf(contents);
  } else if (isMap(contents)) {
    for (const pair of contents.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const line = lineOf(pair.key as YamlNode | null);
      const value = (pair.value ?? null) as YamlNode | null;
      if (key === 'defaults') {
        defaultsLine = line;
        if (isMap(value)) defaults = readSpec(mapEntries(value, doc, lineOf), problems);
        else problems.add(line, `defaults: expected a mapping of task keys, not ${describe(toJs(value, doc))}.`);
      } else if (key === 'tasks') {
        tasksLine = line;
        if (isSeq(value)) taskList = value;
        else {
          problems.add(line, `tasks: expected a list of tasks, not ${describe(toJs(value, doc))}.`);
          tasksReported = true;
        }
      } else {
        const suggestion = closest(key, ['defaults', 'tasks']);
        // `task: [...]` is a misspelt `tasks:`, `task: text` a task written at the top level.
        if (canonicalKey(key) !== undefined && !(suggestion && (isSeq(value) || isMap(value)))) {
          problems.add(line, `${key}: a task key at the top level; list tasks under tasks: (values for all of them under defaults:).`);
          continue;
        }
        problems.add(line, `unknown key ${JSON.stringify(key)}; ${suggestion ? `did you mean ${suggestion}?` : 'the top level holds defaults: and tasks:.'}`);
      }
    }
  } else if (contents !== null && !(isScalar(contents) && contents.value === null)) {
    problems.add(lineOf(contents), `expected a list of tasks, or a mapping with tasks: (and defaults:), not ${describe(toJs(contents, doc))}.`);
    return none;
  }

  const tasks: FileParts['tasks'] = [];
  if (isSeq(taskList)) {
    taskList.items.forEach((item, index) => {
      const node = item as YamlNode | null;
      const line = lineOf(node, tasksLine);
      if (isMap(node)) tasks.push({ spec: readSpec(mapEntries(node, doc, lineOf), problems), line });
      else problems.add(line, `task ${index + 1}: expected a mapping of task keys (e.g. project: …, task: …), not ${describe(toJs(node, doc))}.`);
    });
  }
  if (!tasksReported && (!isSeq(taskList) || taskList.items.length === 0)) {
    problems.add(tasksLine, 'no tasks: list them under tasks:, each a mapping such as {project: ., task: "…"}.');
  }
  return { defaults, defaultsLine, tasks };
}

/** The entries of a YAML mapping, each with its key's line (and its items' lines when the value is a list). */
function mapEntries(map: YamlNode, doc: Document, lineOf: (node: YamlNode | null | undefined, fallback?: number) => number): Entry[] {
  if (!isMap(map)) return [];
  return map.items.map((pair) => {
    const keyNode = pair.key as YamlNode | null;
    const valueNode = (pair.value ?? null) as YamlNode | null;
    const line = lineOf(keyNode);
    return {
      key: isScalar(keyNode) ? String(keyNode.value) : JSON.stringify(toJs(keyNode, doc)),
      line,
      value: toJs(valueNode, doc),
      ...(isSeq(valueNode) ? { itemLines: valueNode.items.map((item) => lineOf(item as YamlNode | null, line)) } : {}),
    };
  });
}

/** A YAML node as a plain value (aliases resolved); null for no node. */
function toJs(node: YamlNode | null | undefined, doc: Document): unknown {
  return node ? (node.toJS(doc) as unknown) : null;
}

import { describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseTaskFile, resolveTasks, type ParsedTaskFile } from '../../src/batch/task-file.js';
import type { ConfigContext, RawFlags } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();

function context(cwd: string, env: Record<string, string> = {}): ConfigContext & { batchStamp: string } {
  return {
    cwd,
    env,
    readStdin: async () => {
      throw new Error('a batch must never read standard input');
    },
    hostTimeZone: 'Europe/Berlin',
    batchStamp: '20250101-120000',
  };
}

/** The problems `fn` throws as a ConfigError (fails when it throws anything else, or nothing). */
async function problemsOf(fn: () => unknown): Promise<string[]> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

/** Writes a task file at `dir/name` and parses it with its path as the file name. */
function writeAndParse(dir: string, name: string, text: string): ParsedTaskFile {
  const file = path.join(dir, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  return parseTaskFile(text, file);
}

describe('parseTaskFile: YAML', () => {
  it('reads defaults and tasks with their lines', () => {
    const text = [
      '# nightly',
      'defaults:',
      '  agent-type: codex',
      '  timeout: 600',
      'tasks:',
      '  - project: ./repo',
      '    task: Fix the flaky test',
      '    branch: fix/flaky',
      '',
      '  - project: ./other',
      '    taskFile: tasks/readme.md',
      '    base: v1.2.0',
      '    allowHost: [registry.npmjs.org, "*.pypi.org"]',
    ].join('\n');
    expect(parseTaskFile(text, 'nightly.yaml')).toEqual({
      file: 'nightly.yaml',
      defaults: { agentType: 'codex', timeout: '600' },
      defaultsLine: 2,
      tasks: [
        { spec: { project: './repo', task: 'Fix the flaky test', branch: 'fix/flaky' }, line: 6 },
        { spec: { project: './other', taskFile: 'tasks/readme.md', base: 'v1.2.0', allowHost: ['registry.npmjs.org', '*.pypi.org'] }, line: 10 },
      ],
    });
  });

  it('reads a top-level list of tasks (and JSON, which is YAML)', () => {
    const yaml = parseTaskFile('- task: one\n  model: m1\n- task: two\n', 'list.yml');
    expect(yaml).toEqual({ file: 'list.yml', defaults: {}, defaultsLine: null, tasks: [{ spec: { task: 'one', model: 'm1' }, line: 1 }, { spec: { task: 'two' }, line: 3 }] });
    const json = parseTaskFile('{"tasks": [\n  {"task": "one"},\n  {"task": "two", "cpus": 1.5}\n]}\n', 'tasks.json');
    expect(json.tasks).toEqual([{ spec: { task: 'one' }, line: 2 }, { spec: { task: 'two', cpus: '1.5' }, line: 3 }]);
  });

  it('normalises kebab-case keys, turns numbers of numeric options into strings, and splits a host string', () => {
    const text = [
      '- task: t',
      '  agent-type: claude',
      '  task-file: x.md',
      '  max-turns: 30',
      '  max-budget-usd: 2.5',
      '  pids-limit: 512',
      '  build-timeout: 900',
      '  memory: 4g',
      '  force-rebuild: true',
      '  insecure-docker: false',
      '  allow-host: "a.example.com, b.example.com"',
      '  append-system-prompt: be brief',
      '  ssh-key: ~/.ssh/id',
    ].join('\n');
    expect(parseTaskFile(text, 'f.yaml').tasks[0]!.spec).toEqual({
      task: 't',
      agentType: 'claude',
      taskFile: 'x.md',
      maxTurns: '30',
      maxBudgetUsd: '2.5',
      pidsLimit: '512',
      buildTimeout: '900',
      memory: '4g',
      forceRebuild: true,
      insecureDocker: false,
      allowHost: ['a.example.com', 'b.example.com'],
      appendSystemPrompt: 'be brief',
      sshKey: '~/.ssh/id',
    });
  });

  it('lists every problem with its line: unknown key with suggestion, wrong types, per-batch keys, a task that is no mapping', async () => {
    const text = [
      'defaults:', //              1
      '  agnet-type: codex', //    2
      '  debug: true', //          3
      'tasks:', //                 4
      '  - task: one', //          5
      '    timeout: [1, 2]', //    6
      '    branch: 12', //         7
      '  - just a string', //      8
      '  - task: three', //        9
      '    forceRebuild: "yes"', // 10
      '    model:', //             11
      '    allowHost:', //         12
      '      - ok.example.com', // 13
      '      - 42', //             14
      '    env-file: .env.ci', //  15
      '    verify: {cmd: x}', //   16
      '    agentType: claude', //  17
      '    agent-type: codex', //  18
    ].join('\n');
    expect(await problemsOf(() => parseTaskFile(text, 'b.yaml'))).toEqual([
      'b.yaml:2: unknown key "agnet-type"; did you mean agentType?',
      'b.yaml:3: debug: cannot be set per task; debug logging is the whole batch\'s: agent-worker batch --debug.',
      'b.yaml:6: timeout: expected a number or a string (e.g. 600), not a list.',
      'b.yaml:7: branch: expected a string (quote it: "12"), not a number (12).',
      'b.yaml:8: task 2: expected a mapping of task keys (e.g. project: …, task: …), not a string ("just a string").',
      'b.yaml:10: forceRebuild: expected true or false, not a string ("yes").',
      'b.yaml:11: model: expected a string, not null (no value).',
      'b.yaml:14: allowHost: expected a host name (item 2), not a number (42).',
      'b.yaml:15: env-file: cannot be set per task; one .env file serves the whole batch: agent-worker batch --env-file <path>.',
      'b.yaml:16: verify: expected a string, not a mapping.',
      'b.yaml:18: agent-type: given twice (also as agentType); keep one.',
    ]);
  });

  it('suggests the closest key for case and separator slips, and names the top-level keys', async () => {
    expect(await problemsOf(() => parseTaskFile('task:\n  - task: x\n    agent_type: codex\n    Model: m\n    colour: red\n', 'c.yaml'))).toEqual([
      'c.yaml:1: unknown key "task"; did you mean tasks?',
      'c.yaml:1: no tasks: list them under tasks:, each a mapping such as {project: ., task: "…"}.',
    ]);
    expect(await problemsOf(() => parseTaskFile('- task: x\n  agent_type: codex\n  Model: m\n  colour: red\n', 'c.yaml'))).toEqual([
      'c.yaml:2: unknown key "agent_type"; did you mean agentType?',
      'c.yaml:3: unknown key "Model"; did you mean model?',
      'c.yaml:4: unknown key "colour"; task keys are the run\'s flags, camelCase or as spelled (agentType or agent-type), and base.',
    ]);
  });

  it('reports YAML syntax errors with their lines', async () => {
    const problems = await problemsOf(() => parseTaskFile('tasks:\n  - task: one\n  - task: two\n    task: again\n', 's.yaml'));
    expect(problems).toEqual(['s.yaml:4: YAML syntax error: Map keys must be unique']);
    const indentation = await problemsOf(() => parseTaskFile('- task: x\n  not a key\n- task: y\n', 's.yaml'));
    expect(indentation).toHaveLength(1);
    expect(indentation[0]).toMatch(/^s\.yaml:2: YAML syntax error: /);
  });

  it('refuses a file without tasks', async () => {
    expect(await problemsOf(() => parseTaskFile('', 'e.yaml'))).toEqual(['e.yaml:1: no tasks: list them under tasks:, each a mapping such as {project: ., task: "…"}.']);
    expect(await problemsOf(() => parseTaskFile('defaults:\n  model: m\ntasks: []\n', 'e.yaml'))).toEqual([
      'e.yaml:3: no tasks: list them under tasks:, each a mapping such as {project: ., task: "…"}.',
    ]);
    expect(await problemsOf(() => parseTaskFile('project: .\ntask: x\n', 'e.yaml'))).toEqual([
      'e.yaml:1: project: a task key at the top level; list tasks under tasks: (values for all of them under defaults:).',
      'e.yaml:2: task: a task key at the top level; list tasks under tasks: (values for all of them under defaults:).',
      'e.yaml:1: no tasks: list them under tasks:, each a mapping such as {project: ., task: "…"}.',
    ]);
  });
});

describe('parseTaskFile: JSON Lines', () => {
  it('reads a defaults line and one task per line, skipping blank lines', () => {
    const text = '{"defaults": {"agent-type": "codex", "timeout": 900}}\n\n{"project": "a", "task": "one"}\r\n{"project": "b", "task": "two", "forceRebuild": true}\n';
    expect(parseTaskFile(text, 'runs.jsonl')).toEqual({
      file: 'runs.jsonl',
      defaults: { agentType: 'codex', timeout: '900' },
      defaultsLine: 1,
      tasks: [
        { spec: { project: 'a', task: 'one' }, line: 3 },
        { spec: { project: 'b', task: 'two', forceRebuild: true }, line: 4 },
      ],
    });
    expect(parseTaskFile('{"task": "x"}', 'runs.NDJSON').tasks).toEqual([{ spec: { task: 'x' }, line: 1 }]);
  });

  it('lists every problem with its line', async () => {
    const text = [
      '{"task": "one", "timeout": null}',
      '{"defaults": {"model": "m"}}',
      'not json',
      '["a list"]',
      '{"task": "two", "quiet": true, "cpu": 2}',
      '{"defaults": {"model": "m"}, "task": "x"}',
    ].join('\n');
    const problems = await problemsOf(() => parseTaskFile(text, 't.jsonl'));
    expect(problems).toHaveLength(7);
    expect(problems[0]).toBe('t.jsonl:1: timeout: expected a number or a string (e.g. 600), not null (no value).');
    expect(problems[1]).toBe('t.jsonl:2: defaults: must come before the first task (line 1).');
    expect(problems[2]).toMatch(/^t\.jsonl:3: not JSON \(.+\); each line holds one task as a JSON object\.$/);
    expect(problems.slice(3)).toEqual([
      't.jsonl:4: expected a task as a JSON object, not a list.',
      't.jsonl:5: quiet: cannot be set per task; progress is the whole batch\'s: agent-worker batch --quiet.',
      't.jsonl:5: unknown key "cpu"; did you mean cpus?',
      't.jsonl:6: defaults: must be on a line of its own, {"defaults": {…}}, before the first task.',
    ]);
  });

  it('refuses a file with only defaults', async () => {
    expect(await problemsOf(() => parseTaskFile('{"defaults": {"model": "m"}}\n', 'd.jsonl'))).toEqual([
      'd.jsonl:1: no tasks: each line holds one task as a JSON object, e.g. {"project": ".", "task": "…"}.',
    ]);
  });
});

describe('resolveTasks', () => {
  it('takes a task\'s own value over the defaults, the defaults over the CLI flags, the CLI over the environment', async () => {
    const dir = track(tempDir());
    const parsed = writeAndParse(dir, 'tasks.yaml', [
      'defaults:',
      '  timeout: 300',
      '  model: defaults-model',
      'tasks:',
      '  - task: one',
      '    branch: b1',
      '    timeout: 400',
      '    model: task-model',
      '  - task: two',
      '    branch: b2',
      '    maxTurns: 7',
    ].join('\n'));
    const cli: RawFlags = { timeout: '200', model: 'cli-model', maxTurns: '5', memory: '2g' };
    const env = { AGENT_TIMEOUT: '100', ANTHROPIC_MODEL: 'env-model', AGENT_MAX_TURNS: '3', AGENT_WORKER_MEMORY: '1g', AGENT_WORKER_CPUS: '2' };
    const [one, two] = await resolveTasks(parsed, cli, context(dir, env));
    expect(one!.config).toMatchObject({ task: 'one', branch: 'b1', timeoutSeconds: 400, model: 'task-model', maxTurns: 5, memoryBytes: 2 * 1024 ** 3, cpus: 2 });
    expect(two!.config).toMatchObject({ task: 'two', branch: 'b2', timeoutSeconds: 300, model: 'defaults-model', maxTurns: 7, memoryBytes: 2 * 1024 ** 3, cpus: 2 });
    expect([one!.index, one!.line, two!.index, two!.line]).toEqual([0, 5, 1, 9]);
  });

  it('lets a task\'s task file replace the defaults\' task text (task and taskFile are one setting)', async () => {
    const dir = track(tempDir());
    writeFileSync(path.join(dir, 'brief.md'), 'from the file\n');
    const parsed = writeAndParse(dir, 'tasks.yaml', 'defaults:\n  task: default text\ntasks:\n  - branch: a\n  - branch: b\n    taskFile: brief.md\n');
    const [a, b] = await resolveTasks(parsed, {}, context(dir));
    expect(a!.config.task).toBe('default text');
    expect(b!.config.task).toBe('from the file\n');
  });

  it('resolves paths written in the file against its folder, and the CLI\'s and environment\'s against the cwd', async () => {
    const root = track(tempDir());
    const cwd = path.join(root, 'cwd');
    mkdirSync(path.join(root, 'jobs', 'prompts'), { recursive: true });
    mkdirSync(path.join(root, 'repo-a'));
    mkdirSync(path.join(cwd, 'repo-b'), { recursive: true });
    writeFileSync(path.join(root, 'jobs', 'prompts', 'fix.md'), 'fix it');
    writeFileSync(path.join(cwd, 'persona.md'), 'You are careful.');
    writeFileSync(path.join(root, 'jobs', 'persona.md'), 'You are quick.');
    const parsed = writeAndParse(root, 'jobs/batch.yaml', [
      '- project: ../repo-a',
      '  taskFile: prompts/fix.md',
      '- task: two',
      '- task: three',
      '  persona: persona.md',
    ].join('\n'));
    expect(parsed.file).toBe(path.join(root, 'jobs', 'batch.yaml'));
    // The same file named relative to the cwd.
    const relative = { ...parsed, file: path.relative(cwd, parsed.file) };
    const [a, b, c] = await resolveTasks(relative, { persona: 'persona.md' }, context(cwd, { PROJECT_PATH: 'repo-b' }));
    expect(a!.config).toMatchObject({ project: path.join(root, 'repo-a'), task: 'fix it', persona: path.join(cwd, 'persona.md') });
    expect(b!.config).toMatchObject({ project: path.join(cwd, 'repo-b'), task: 'two', appendSystemPrompt: 'You are careful.' });
    expect(c!.config).toMatchObject({ project: path.join(cwd, 'repo-b'), persona: path.join(root, 'jobs', 'persona.md'), appendSystemPrompt: 'You are quick.' });
  });

  it('works on the task file\'s folder when no project is named anywhere', async () => {
    const root = track(tempDir());
    const parsed = writeAndParse(root, 'sub/t.yaml', '- task: x\n');
    const [task] = await resolveTasks(parsed, {}, context(path.join(root, 'elsewhere')));
    expect(task!.config.project).toBe(path.join(root, 'sub'));
  });

  it('names a task\'s default branch after the batch stamp and its 1-based position', async () => {
    const dir = track(tempDir());
    const parsed = writeAndParse(dir, 't.jsonl', '{"task": "a"}\n{"task": "b", "branch": "mine"}\n{"task": "c"}\n');
    const tasks = await resolveTasks(parsed, {}, context(dir));
    expect(tasks.map((task) => task.config.branch)).toEqual(['agent-task-20250101-120000-1', 'mine', 'agent-task-20250101-120000-3']);
  });

  it('collects the problems of every task, each with its file, line and task number', async () => {
    const dir = track(tempDir());
    const parsed = writeAndParse(dir, 'p.yaml', [
      'tasks:', //               1
      '  - branch: a', //        2
      '  - branch: b', //        3
      '    task: fine', //       4
      '  - branch: c', //        5
      '    timeout: soon', //    6
      '    task: x', //          7
    ].join('\n'));
    const file = parsed.file;
    expect(await problemsOf(() => resolveTasks(parsed, {}, context(dir)))).toEqual([
      `${file}:2: task 1: --task: a task is required: --task "…" or --task-file <path> (- for stdin).`,
      `${file}:5: task 3: --timeout: "soon" is not a positive whole number of seconds.`,
    ]);
  });

  it('reports a missing task text in two tasks at once', async () => {
    const dir = track(tempDir());
    const parsed = writeAndParse(dir, 'm.jsonl', '{"defaults": {"model": "m"}}\n{"branch": "a"}\n{"branch": "b", "task": "ok"}\n{"branch": "c"}\n');
    expect(await problemsOf(() => resolveTasks(parsed, {}, context(dir)))).toEqual([
      `${parsed.file}:2: task 1: --task: a task is required: --task "…" or --task-file <path> (- for stdin).`,
      `${parsed.file}:4: task 3: --task: a task is required: --task "…" or --task-file <path> (- for stdin).`,
    ]);
  });

  it('refuses two tasks with the same project and branch, naming both lines', async () => {
    const root = track(tempDir());
    mkdirSync(path.join(root, 'repo'));
    const parsed = writeAndParse(root, 'd.yaml', [
      '- project: repo', //        1
      '  branch: fix', //          2
      '  task: one', //            3
      '- project: ./repo/', //     4
      '  branch: other', //        5
      '  task: two', //            6
      '- project: repo/../repo', // 7
      '  branch: fix', //          8
      '  task: three', //          9
      '- project: .', //           10
      '  branch: fix', //          11
      '  task: four', //           12
    ].join('\n'));
    expect(await problemsOf(() => resolveTasks(parsed, {}, context(root)))).toEqual([
      `${parsed.file}:7: task 3: branch "fix" of ${path.join(root, 'repo')} is also task 1's (line 1); give each task its own branch.`,
    ]);
  });

  it('refuses taskFile "-" (standard input) from the file or the command line, without reading it', async () => {
    const dir = track(tempDir());
    const parsed = writeAndParse(dir, 's.yaml', '- taskFile: "-"\n  branch: a\n- branch: b\n');
    const refusal = 'taskFile: "-" (standard input) cannot be used in a batch; write the task in the file (task: …) or name a file.';
    expect(await problemsOf(() => resolveTasks(parsed, {}, context(dir)))).toEqual([
      `${parsed.file}:1: task 1: ${refusal}`,
      `${parsed.file}:3: task 2: --task: a task is required: --task "…" or --task-file <path> (- for stdin).`,
    ]);
    expect(await problemsOf(() => resolveTasks(parsed, { taskFile: '-' }, context(dir)))).toEqual([
      `${parsed.file}:1: task 1: ${refusal}`,
      `${parsed.file}:3: task 2: ${refusal}`,
    ]);
  });

  it('passes base on, and refuses an empty one or one that looks like an option', async () => {
    const dir = track(tempDir());
    const good = writeAndParse(dir, 'g.yaml', 'defaults:\n  base: main\ntasks:\n  - {task: a, branch: a}\n  - {task: b, branch: b, base: v2}\n  - {task: c, branch: c}\n');
    expect((await resolveTasks(good, {}, context(dir))).map((task) => task.base)).toEqual(['main', 'v2', 'main']);
    const none = writeAndParse(dir, 'n.yaml', '- {task: a}\n');
    expect((await resolveTasks(none, {}, context(dir)))[0]).not.toHaveProperty('base');

    const bad = writeAndParse(dir, 'b.yaml', '- {task: a, branch: a, base: ""}\n- {task: b, branch: b, base: "--upload-pack=x"}\n- {task: c, branch: c, base: "ma\\tin"}\n');
    expect(await problemsOf(() => resolveTasks(bad, {}, context(dir)))).toEqual([
      `${bad.file}:1: task 1: base: is empty; give a branch, tag or commit, or leave it out for the repository's HEAD.`,
      `${bad.file}:2: task 2: base: "--upload-pack=x" is not a ref (it starts with "-" or holds a control character).`,
      `${bad.file}:3: task 3: base: "ma\\tin" is not a ref (it starts with "-" or holds a control character).`,
    ]);
  });

  it('reads a relative --env-file of the command line against the cwd', async () => {
    const root = track(tempDir());
    mkdirSync(path.join(root, 'cwd'));
    writeFileSync(path.join(root, 'cwd', 'ci.env'), 'AGENT_TIMEOUT=42\n');
    const parsed = writeAndParse(root, 'jobs/t.yaml', '- task: x\n');
    const [task] = await resolveTasks(parsed, { envFile: 'ci.env' }, context(path.join(root, 'cwd')));
    expect(task!.config).toMatchObject({ timeoutSeconds: 42, envFile: path.join(root, 'cwd', 'ci.env') });
  });
});

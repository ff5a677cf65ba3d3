/**
 * Adversarial inputs through the built CLI: hostile task text, hostile branch names, odd repositories,
 * dirty trees and invalid options. A refusal must come before anything is created (no container, no
 * image build, no branch); an accepted input must reach the model byte for byte and leave a clean tree.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FakeAnthropic, ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { parseReport, runAgentWorker, TEST_API_KEY, withFixture } from '../helpers/agent-run.js';
import { dockerAvailable, dockerEvents, managedContainers, projectContainers, removeProjectContainers, runCli, TEST_CA_CERT, type CliResult } from '../helpers/docker.js';
import { git, makeRepo, removeDir, tempDir, writeFiles } from '../helpers/git.js';
import { LABEL_PROJECT } from '../../src/docker/labels.js';

const hasDocker = await dockerAvailable();
const cleanup: string[] = [];
const projects: string[] = [];
let stateDir: string;

beforeAll(() => {
  stateDir = tempDir('aw-state-');
  cleanup.push(stateDir);
});

afterAll(async () => {
  // Nothing should be left; remove anything a defect left behind so other suites are not disturbed.
  if (hasDocker) await removeProjectContainers(projects);
  for (const dir of cleanup) removeDir(dir);
});

/** A repository from makeRepo, removed after the suite and watched for leftover containers. */
function repoWith(files?: Record<string, string | Buffer>): string {
  const repo = makeRepo(files);
  cleanup.push(repo);
  projects.push(repo);
  return repo;
}


type DockerEvent = { Type: string; Action: string; Actor?: { Attributes?: Record<string, string> } };

/**
 * Container creations for `project` (by the project label) seen between two times. Other sessions run
 * agent-worker on this daemon at the same time, so unlabelled or foreign events are not ours.
 */
async function creations(project: string, since: number, until: number): Promise<DockerEvent[]> {
  const events = (await dockerEvents(since, until, ['container'])) as DockerEvent[];
  return events.filter((event) => event.Action === 'create' && event.Actor?.Attributes?.[LABEL_PROJECT] === project);
}

/**
 * Runs the CLI (no fixture; the base URL is a dead port so nothing real is ever reached) with a fresh
 * state folder, and returns its result, the container creations Docker saw for `project` meanwhile, and
 * the run folders the CLI made (one is made right after preflight, before the image step: none means
 * the run stopped in preflight, so no image was built or pulled for it either).
 */
async function refused(
  project: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; input?: string; noKey?: boolean; noTask?: boolean } = {},
): Promise<{ result: CliResult; events: DockerEvent[]; runs: string[] }> {
  const state = tempDir('aw-state-');
  cleanup.push(state);
  const since = Date.now() / 1000;
  const result = await runCli(
    [...(options.noTask ? [] : ['--task', 'anything']), '--base-url', 'http://127.0.0.1:9', '--project', project, ...args],
    {
      cwd: options.cwd ?? project,
      env: { XDG_STATE_HOME: state, ...(options.noKey ? {} : { ANTHROPIC_API_KEY: TEST_API_KEY }), ...options.env },
      input: options.input,
    },
  );
  const until = Date.now() / 1000 + 0.5;
  const runsDir = path.join(state, 'agent-worker', 'runs');
  return { result, events: await creations(project, since, until), runs: existsSync(runsDir) ? readdirSync(runsDir) : [] };
}

async function expectNothingCreated(project: string, outcome: { result: CliResult; events: unknown[]; runs: string[] }): Promise<void> {
  expect(outcome.result.stdout).toBe('');
  expect(outcome.runs).toEqual([]);
  expect(outcome.events).toEqual([]);
  expect(await projectContainers(project)).toEqual([]);
}

/** The prompt the model got: the last text block of the first user message of the first turn request. */
function firstPrompt(fixture: FakeAnthropic): string {
  const request = fixture.requests.find((candidate) => candidate.kind === 'turn');
  expect(request, 'the fixture received a turn request').toBeDefined();
  const messages = (request!.body as { messages: Array<{ role: string; content: string | Array<{ type: string; text?: string }> }> }).messages;
  const user = messages.find((message) => message.role === 'user')!;
  const blocks = typeof user.content === 'string' ? [{ type: 'text', text: user.content }] : user.content;
  const texts = blocks.filter((block) => block.type === 'text');
  return texts[texts.length - 1]!.text!;
}

/** Every agent-worker-visible ref (branches), for "nothing created" checks. */
function branches(repo: string): string {
  return git(repo, 'for-each-ref', '--format=%(refname) %(objectname)', 'refs/heads');
}

const DONE: ScriptedTurn[] = [];

/**
 * A task holding everything a shell, a quoting layer or an argv builder could mangle: command
 * substitution, backticks, both quotes, backslashes, tabs, newlines, CR, non-ASCII, emoji (incl. ZWJ
 * sequences), an option-looking line.
 */
const HOSTILE_TASK = [
  'Fix it: $(touch /tmp/aw-pwned) `id` ${HOME} $HOME \'single\' "double" \\back\\slash \\n not-a-newline',
  '\tindented by a tab; ü ß 日本語 Ελληνικά — emoji 🚀 👩‍💻 🇩🇪 combining é',
  '--branch evil -x ; rm -rf / # | & && || > < >> 2>&1 * ? [a-z] ~ %s %n {{x}}',
  'carriage\rreturn and "unbalanced \' quotes',
  '',
  'last line',
].join('\n');

/** ~200 KiB (above Linux's 128 KiB per-argument limit) of varied text, ending with the hostile task. */
function bigTask(): string {
  const lines: string[] = ['Large task — first line', HOSTILE_TASK];
  let i = 0;
  while (lines.join('\n').length < 205 * 1024) {
    lines.push(`${String(i).padStart(6, '0')} ${'ab😀c'.repeat((i % 7) + 1)} ${'x'.repeat(i % 97)} \t"$(echo ${i})" \`${i}\``);
    i += 1;
  }
  lines.push('END OF TASK');
  return lines.join('\n');
}

describe.runIf(hasDocker)('adversarial input', { timeout: 600_000 }, () => {
  // ---- task text ----------------------------------------------------------------------------------------

  it('I01 --task with $(…), backticks, quotes, tabs, newlines, CR, non-ASCII and emoji reaches the model byte for byte', async () => {
    const repo = repoWith();
    await withFixture(DONE, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'i01', '--task', HOSTILE_TASK], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      expect(firstPrompt(fixture)).toBe(HOSTILE_TASK);
      expect(report.status).toBe('success');
      expect(existsSync('/tmp/aw-pwned')).toBe(false);
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('I02 --task-file - (stdin) with the same hostile text, 200 KiB long, reaches the model byte for byte', async () => {
    const repo = repoWith();
    const task = bigTask();
    expect(Buffer.byteLength(task)).toBeGreaterThan(200 * 1024);
    await withFixture(DONE, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'i02', '--task-file', '-'], { stateDir, input: task });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      const prompt = firstPrompt(fixture);
      expect(prompt.length).toBe(task.length);
      expect(prompt === task, 'the prompt equals the task').toBe(true);
      expect(git(repo, 'log', '-1', '--format=%s', 'i02').trim()).toBe('initial'); // nothing changed, nothing committed
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('I03 --task-file <path> with a 200 KiB hostile text (trailing newline kept) reaches the model byte for byte', async () => {
    const repo = repoWith();
    const dir = tempDir('aw-task-');
    cleanup.push(dir);
    const task = `${bigTask()}\n`;
    writeFileSync(path.join(dir, 'task.md'), task);
    await withFixture(DONE, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'i03', '--task-file', path.join(dir, 'task.md')], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      const prompt = firstPrompt(fixture);
      expect(prompt.length).toBe(task.length);
      expect(prompt === task, 'the prompt equals the task file').toBe(true);
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('I04 a NUL byte in a --task-file → exit 2 naming --task, nothing created', async () => {
    const repo = repoWith();
    const dir = tempDir('aw-task-');
    cleanup.push(dir);
    writeFileSync(path.join(dir, 'task.md'), 'do this\0and that\n');
    const before = branches(repo);
    const outcome = await refused(repo, ['--branch', 'i04', '--task-file', path.join(dir, 'task.md')], { noTask: true });
    expect(outcome.result.code, outcome.result.stderr).toBe(2);
    expect(outcome.result.stderr).toMatch(/--task: the task contains a NUL byte/);
    await expectNothingCreated(repo, outcome);
    expect(branches(repo)).toBe(before);
  });

  it('I05 a NUL byte in the task on stdin (--task-file -) → exit 2 naming --task, nothing created', async () => {
    const repo = repoWith();
    const before = branches(repo);
    const outcome = await refused(repo, ['--branch', 'i05', '--task-file', '-'], { noTask: true, input: 'first\0second' });
    expect(outcome.result.code, outcome.result.stderr).toBe(2);
    expect(outcome.result.stderr).toMatch(/--task: the task contains a NUL byte/);
    await expectNothingCreated(repo, outcome);
    expect(branches(repo)).toBe(before);
  });

  it('I06 a NUL byte in the --task value (argv cannot carry one, so AGENT_TASK in an --env-file) → exit 2, nothing created', async () => {
    const repo = repoWith();
    const dir = tempDir('aw-env-');
    cleanup.push(dir);
    // execve cannot pass a NUL inside an argument or environment string; the same option can come from .env.
    await expect(runCli(['--task', 'a\0b'], { cwd: repo })).rejects.toThrow(/null bytes/);
    writeFileSync(path.join(dir, 'task.env'), Buffer.from('AGENT_TASK="do this\0and that"\n', 'utf8'));
    const before = branches(repo);
    const outcome = await refused(repo, ['--branch', 'i06', '--env-file', path.join(dir, 'task.env')], { noTask: true });
    expect(outcome.result.code, outcome.result.stderr).toBe(2);
    expect(outcome.result.stderr).toMatch(/--task/);
    await expectNothingCreated(repo, outcome);
    expect(branches(repo)).toBe(before);
  });

  // ---- branch names ---------------------------------------------------------------------------------------

  const badBranches: Array<[string, string[]]> = [
    ['I07', ['--branch', 'a..b']],
    ['I08', ['--branch=-x']],
    ['I09', ['--branch', 'x.lock']],
    ['I10', ['--branch', '@{']],
    ['I11', ['--branch', 'HEAD']],
  ];
  for (const [id, args] of badBranches) {
    it(`${id} branch ${JSON.stringify(args.join(' '))} → exit 5, nothing created, HEAD and refs untouched`, async () => {
      const repo = repoWith();
      const before = branches(repo);
      const outcome = await refused(repo, [...args]);
      expect(outcome.result.code, outcome.result.stderr).toBe(5);
      expect(outcome.result.stderr).toMatch(/is not a valid branch name/);
      await expectNothingCreated(repo, outcome);
      expect(branches(repo)).toBe(before);
      expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('main');
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
    });
  }

  it('I12 an existing branch → exit 5, nothing created, the branch not moved', async () => {
    const repo = repoWith();
    writeFiles(repo, { 'b.txt': 'b\n' });
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'second');
    git(repo, 'branch', 'taken', 'HEAD~1');
    const before = branches(repo);
    const outcome = await refused(repo, ['--branch', 'taken']);
    expect(outcome.result.code, outcome.result.stderr).toBe(5);
    expect(outcome.result.stderr).toMatch(/Branch taken already exists/);
    await expectNothingCreated(repo, outcome);
    expect(branches(repo)).toBe(before);
    expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('main');
  });

  it('I13 a name given twice in a loop: the first run creates "loop", the second is refused (exit 5) and "loop" keeps its commit', async () => {
    const repo = repoWith();
    const script: ScriptedTurn[] = [{ content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/loop.txt', content: 'first\n' } }], usage: { input: 10, output: 2 } }];
    await withFixture(script, async (fixture) => {
      const first = await runAgentWorker(repo, fixture, ['--branch', 'loop', '--task', 'first of the loop'], { stateDir });
      expect(first.code, first.stderr).toBe(0);
      const report = parseReport(first);
      const tip = git(repo, 'rev-parse', 'loop').trim();
      expect(report.headCommit).toBe(tip);
      expect(git(repo, 'show', 'loop:loop.txt')).toBe('first\n');
      const requestsBefore = fixture.requests.length;
      const since = Date.now() / 1000;
      const second = await runAgentWorker(repo, fixture, ['--branch', 'loop', '--task', 'second of the loop'], { stateDir });
      const events = await creations(repo, since, Date.now() / 1000 + 0.5);
      expect(second.code, second.stderr).toBe(5);
      expect(second.stderr).toMatch(/Branch loop already exists/);
      expect(second.stdout).toBe('');
      expect(events).toEqual([]);
      expect(fixture.requests.length).toBe(requestsBefore);
      expect(git(repo, 'rev-parse', 'loop').trim()).toBe(tip);
      expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('loop');
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await projectContainers(repo)).toEqual([]);
    });
  });

  // ---- odd repositories -----------------------------------------------------------------------------------

  it('I14 not a repository → exit 3, nothing created', async () => {
    const dir = tempDir('aw-norepo-');
    cleanup.push(dir);
    projects.push(dir);
    writeFileSync(path.join(dir, 'file.txt'), 'x\n');
    const outcome = await refused(dir, ['--branch', 'i14']);
    expect(outcome.result.code, outcome.result.stderr).toBe(3);
    expect(outcome.result.stderr).toMatch(/is not inside a git repository/);
    await expectNothingCreated(dir, outcome);
    expect(existsSync(path.join(dir, '.git'))).toBe(false);
    expect(readdirSync(dir)).toEqual(['file.txt']);
  });

  it('I15 a bare repository → exit 3, nothing created, no branch', async () => {
    const source = repoWith();
    const bare = tempDir('aw-bare-');
    cleanup.push(bare);
    projects.push(bare);
    git(bare, 'clone', '--quiet', '--bare', source, '.');
    const before = branches(bare);
    const outcome = await refused(bare, ['--branch', 'i15']);
    expect(outcome.result.code, outcome.result.stderr).toBe(3);
    expect(outcome.result.stderr).toMatch(/not a git work tree/);
    await expectNothingCreated(bare, outcome);
    expect(branches(bare)).toBe(before);
  });

  it('I16 --project a subdirectory: runs on its repository; the agent\'s work lands at the right repo-relative paths; tree clean', async () => {
    const repo = repoWith({ 'README.md': '# r\n', 'pkg/sub/keep.txt': 'keep\n' });
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/pkg/sub/new.txt', content: 'abs\n' } }], usage: { input: 10, output: 2 } },
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: 'pwd; echo rel > rel.txt; ls pkg/sub' } }], usage: { input: 10, output: 2 } },
    ];
    await withFixture(script, async (fixture) => {
      const sub = path.join(repo, 'pkg', 'sub');
      const result = await runCli(
        ['--project', sub, '--base-url', `http://host.docker.internal:${fixture.port}`, '--ca-cert', TEST_CA_CERT, '--json', '--branch', 'i16', '--task', 'subdir task'],
        { cwd: sub, env: { XDG_STATE_HOME: stateDir, ANTHROPIC_API_KEY: TEST_API_KEY } },
      );
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      expect(report.baseCommit).toBe(base);
      expect(fixture.toolResults()[1]?.content).toMatch(/^\/workspace$/m);
      expect(fixture.toolResults()[1]?.content).toContain('keep.txt');
      expect(report.changes.files.map((file) => file.path).sort()).toEqual(['pkg/sub/new.txt', 'rel.txt']);
      expect(git(repo, 'show', 'i16:pkg/sub/new.txt')).toBe('abs\n');
      expect(git(repo, 'show', 'i16:rel.txt')).toBe('rel\n');
      expect(existsSync(path.join(sub, 'rel.txt'))).toBe(false);
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('I17 a repository with no commits → exit 3, nothing created', async () => {
    const dir = tempDir('aw-empty-');
    cleanup.push(dir);
    projects.push(dir);
    git(dir, 'init', '--quiet', '--initial-branch=main');
    const outcome = await refused(dir, ['--branch', 'i17']);
    expect(outcome.result.code, outcome.result.stderr).toBe(3);
    expect(outcome.result.stderr).toMatch(/has no commit yet/);
    await expectNothingCreated(dir, outcome);
    expect(branches(dir)).toBe('');
  });

  it('I18 detached HEAD: runs; baseCommit is that commit; the branch is created at it', async () => {
    const repo = repoWith();
    const detachedAt = git(repo, 'rev-parse', 'HEAD').trim();
    writeFiles(repo, { 'later.txt': 'later\n' });
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'later');
    git(repo, 'checkout', '--quiet', '--detach', detachedAt);
    const script: ScriptedTurn[] = [{ content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/d.txt', content: 'd\n' } }], usage: { input: 10, output: 2 } }];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'i18', '--task', 'detached task'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      expect(report.baseCommit).toBe(detachedAt);
      expect(git(repo, 'rev-parse', 'i18^').trim()).toBe(detachedAt);
      expect(report.headCommit).toBe(git(repo, 'rev-parse', 'i18').trim());
      expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('i18');
      expect(report.changes.files.map((file) => file.path)).toEqual(['d.txt']);
      expect(existsSync(path.join(repo, 'later.txt'))).toBe(false);
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('I19 .git is a file (a `git worktree add` worktree): runs in the worktree; the change lands on the branch there; git works inside, read-only', async () => {
    const repo = repoWith();
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    const parent = tempDir('aw-wt-');
    cleanup.push(parent);
    const worktree = path.join(parent, 'wt');
    projects.push(worktree);
    git(repo, 'worktree', 'add', '--quiet', '-b', 'wt-base', worktree);
    const gitFile = readFileSync(path.join(worktree, '.git'), 'utf8');
    expect(gitFile).toMatch(/^gitdir: /);
    const commonDir = path.join(repo, '.git');
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/wt.txt', content: 'from the worktree\n' } }], usage: { input: 10, output: 2 } },
      {
        content: [{ type: 'tool_use', name: 'Bash', input: { command: `git status --porcelain; echo status=$?; printf x >> .git; echo gitfile=$?; touch ${commonDir}/worktrees/wt/x ${commonDir}/hooks/post-commit; echo common=$?` } }],
        usage: { input: 10, output: 2 },
      },
    ];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(worktree, fixture, ['--branch', 'i19', '--task', 'worktree task'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      expect(report.baseCommit).toBe(base);
      expect(git(worktree, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('i19');
      expect(git(repo, 'show', 'i19:wt.txt')).toBe('from the worktree\n');
      expect(report.changes.files.map((file) => file.path)).toEqual(['wt.txt']);
      expect(git(worktree, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(readFileSync(path.join(worktree, '.git'), 'utf8')).toBe(gitFile);
      expect(existsSync(path.join(commonDir, 'worktrees', 'wt', 'x'))).toBe(false);
      expect(existsSync(path.join(commonDir, 'hooks', 'post-commit'))).toBe(false);
      // The main checkout was not touched.
      expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('main');
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
      // Inside the container: the .git file and the repository's common dir are read-only, and git works.
      const output = fixture.toolResults()[1]?.content ?? '';
      expect(output).toMatch(/gitfile=[1-9]/);
      expect(output).toMatch(/common=[1-9]/);
      expect(output, 'git inside the container finds the worktree\'s git dir').toContain('status=0');
    });
  });

  it('I20 a repository with a submodule: runs; the submodule is readable; tree clean afterwards, submodule not moved', async () => {
    const subSource = repoWith({ 'lib.txt': 'library\n' });
    const repo = repoWith();
    git(repo, '-c', 'protocol.file.allow=always', 'submodule', '--quiet', 'add', subSource, 'vendor/lib');
    git(repo, 'commit', '-qm', 'add submodule');
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    const subHead = git(path.join(repo, 'vendor/lib'), 'rev-parse', 'HEAD').trim();
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: 'cat vendor/lib/lib.txt; git -C vendor/lib rev-parse HEAD; echo top > top.txt' } }], usage: { input: 10, output: 2 } },
    ];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'i20', '--task', 'submodule task'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      expect(report.baseCommit).toBe(base);
      const output = fixture.toolResults()[0]?.content ?? '';
      expect(output).toContain('library');
      expect(output).toContain(subHead);
      expect(report.changes.files.map((file) => file.path)).toEqual(['top.txt']);
      expect(git(path.join(repo, 'vendor/lib'), 'rev-parse', 'HEAD').trim()).toBe(subHead);
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all', '--ignore-submodules=none')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('I21 LFS-style pointer files (git-lfs attributes, no git-lfs): runs; the pointers stay byte for byte; tree clean', async () => {
    const pointer = (oid: string, size: number): string => `version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${size}\n`;
    const files = {
      '.gitattributes': '*.bin filter=lfs diff=lfs merge=lfs -text\n',
      'assets/a.bin': pointer('a'.repeat(64), 123456),
      'assets/b.bin': pointer('b'.repeat(64), 42),
    };
    const repo = repoWith(files);
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: 'cat assets/a.bin; printf "version https://git-lfs.github.com/spec/v1\\noid sha256:%064d\\nsize 7\\n" 0 > assets/c.bin' } }], usage: { input: 10, output: 2 } },
    ];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'i21', '--task', 'lfs task'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      expect(fixture.toolResults()[0]?.content).toContain('oid sha256:' + 'a'.repeat(64));
      for (const [name, content] of Object.entries(files)) expect(readFileSync(path.join(repo, name), 'utf8')).toBe(content);
      expect(git(repo, 'show', 'i21:assets/c.bin')).toBe(`version https://git-lfs.github.com/spec/v1\noid sha256:${'0'.repeat(64)}\nsize 7\n`);
      expect(report.changes.files.map((file) => file.path)).toEqual(['assets/c.bin']);
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('I22 a symlink in the repo to a directory outside it: runs; the agent cannot read the outside files through it', async () => {
    const outside = tempDir('aw-outside-');
    cleanup.push(outside);
    const secret = `OUTSIDE-SECRET-${Date.now()}-do-not-leak`;
    writeFileSync(path.join(outside, 'marker.txt'), `${secret}\n`);
    const repo = repoWith();
    symlinkSync(outside, path.join(repo, 'outside'));
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'link outside');
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: `ls -la outside/ 2>&1; cat outside/marker.txt 2>&1; cat ${outside}/marker.txt 2>&1; readlink outside; echo end` } }], usage: { input: 10, output: 2 } },
      { content: [{ type: 'tool_use', name: 'Read', input: { file_path: '/workspace/outside/marker.txt' } }], usage: { input: 10, output: 2 } },
    ];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'i22', '--task', 'symlink task'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      const outputs = fixture.toolResults().map((toolResult) => toolResult.content);
      expect(outputs).toHaveLength(2);
      expect(outputs[0]).toContain('end');
      for (const output of outputs) {
        expect(output).not.toContain(secret);
        expect(output).not.toContain('do-not-leak');
      }
      expect(JSON.stringify(fixture.requests)).not.toContain(secret);
      expect(readFileSync(path.join(outside, 'marker.txt'), 'utf8')).toBe(`${secret}\n`);
      expect(report.changes.filesChanged).toBe(0);
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  // ---- dirty trees -----------------------------------------------------------------------------------------

  it('I23 only untracked files → exit 4 naming the file, nothing created, tree untouched', async () => {
    const repo = repoWith();
    writeFileSync(path.join(repo, 'new.txt'), 'untracked\n');
    const outcome = await refused(repo, ['--branch', 'i23']);
    expect(outcome.result.code, outcome.result.stderr).toBe(4);
    expect(outcome.result.stderr).toMatch(/uncommitted changes/);
    expect(outcome.result.stderr).toContain('new.txt');
    await expectNothingCreated(repo, outcome);
    expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('?? new.txt\n');
    expect(git(repo, 'branch', '--list', 'i23')).toBe('');
  });

  it('I24 only staged changes → exit 4 naming the file, nothing created, index untouched', async () => {
    const repo = repoWith({ 'README.md': '# r\n', 'tracked.txt': 'one\n' });
    writeFileSync(path.join(repo, 'tracked.txt'), 'two\n');
    git(repo, 'add', 'tracked.txt');
    const outcome = await refused(repo, ['--branch', 'i24']);
    expect(outcome.result.code, outcome.result.stderr).toBe(4);
    expect(outcome.result.stderr).toContain('tracked.txt');
    await expectNothingCreated(repo, outcome);
    expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('M  tracked.txt\n');
    expect(git(repo, 'branch', '--list', 'i24')).toBe('');
  });

  it('I25 only an ignored file: allowed; runs, exit 0; the ignored file untouched and not committed', async () => {
    const repo = repoWith({ 'README.md': '# r\n', '.gitignore': '*.log\n' });
    writeFileSync(path.join(repo, 'debug.log'), 'ignored content\n');
    const script: ScriptedTurn[] = [{ content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/work.txt', content: 'w\n' } }], usage: { input: 10, output: 2 } }];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'i25', '--task', 'ignored task'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      expect(report.changes.files.map((file) => file.path)).toEqual(['work.txt']);
      expect(readFileSync(path.join(repo, 'debug.log'), 'utf8')).toBe('ignored content\n');
      expect(git(repo, 'ls-files', 'debug.log')).toBe('');
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all', '--ignored')).toBe('!! debug.log\n');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  // ---- invalid options ---------------------------------------------------------------------------------------

  it('I26 no credentials → exit 7, naming --api-key and --oauth-token, nothing created', async () => {
    const repo = repoWith();
    const outcome = await refused(repo, ['--branch', 'i26'], { noKey: true });
    expect(outcome.result.code, outcome.result.stderr).toBe(7);
    expect(outcome.result.stderr).toContain('--api-key');
    expect(outcome.result.stderr).toContain('--oauth-token');
    await expectNothingCreated(repo, outcome);
    expect(git(repo, 'branch', '--list', 'i26')).toBe('');
  });

  const badOptions: Array<[string, string, string[], RegExp]> = [
    ['I27', 'a malformed base URL', ['--base-url', 'ht!tp://exa mple'], /--base-url: "ht!tp:\/\/exa mple" is not a URL/],
    ['I28', 'a base URL that is not http(s)', ['--base-url', 'file:///etc/passwd'], /--base-url: "file:\/\/\/etc\/passwd" has protocol file:/],
    ['I29', 'an unknown --agent-type', ['--agent-type', 'evil; rm -rf /'], /--agent-type: unknown agent "evil; rm -rf \/"/],
    ['I30', 'a non-numeric timeout', ['--timeout', '10s'], /--timeout: "10s" is not a positive whole number of seconds/],
  ];
  for (const [id, what, args, message] of badOptions) {
    it(`${id} ${what} → exit 2 naming the flag, nothing created`, async () => {
      const repo = repoWith();
      const outcome = await refused(repo, ['--branch', 'bad-option', ...args]);
      expect(outcome.result.code, outcome.result.stderr).toBe(2);
      expect(outcome.result.stderr).toMatch(message);
      await expectNothingCreated(repo, outcome);
      expect(git(repo, 'branch', '--list', 'bad-option')).toBe('');
    });
  }

  it('I31 an unreadable --ca-cert (missing, a directory, mode 000 for a non-root user) → exit 2 naming --ca-cert, nothing created', async () => {
    const repo = repoWith();
    chmodSync(repo, 0o755);
    const dir = tempDir('aw-ca-');
    cleanup.push(dir);
    chmodSync(dir, 0o755);
    const locked = path.join(dir, 'locked.pem');
    writeFileSync(locked, readFileSync(TEST_CA_CERT));
    chmodSync(locked, 0o000);
    mkdirSync(path.join(dir, 'folder.pem'));
    for (const file of [path.join(dir, 'missing.pem'), path.join(dir, 'folder.pem')]) {
      const outcome = await refused(repo, ['--branch', 'i30', '--ca-cert', file]);
      expect(outcome.result.code, outcome.result.stderr).toBe(2);
      expect(outcome.result.stderr).toMatch(new RegExp(`--ca-cert: cannot read ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      await expectNothingCreated(repo, outcome);
    }
    // Mode 000: unreadable for anyone but root; when the suite runs as root, run the CLI as nobody.
    const asOther = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;
    const { spawnSync } = await import('node:child_process');
    const { CLI } = await import('../helpers/docker.js');
    const child = spawnSync(process.execPath, [CLI, '--project', repo, '--task', 'x', '--branch', 'i30', '--ca-cert', locked], {
      cwd: '/',
      env: { PATH: process.env.PATH ?? '', HOME: dir, XDG_STATE_HOME: dir, ANTHROPIC_API_KEY: TEST_API_KEY, ANTHROPIC_BASE_URL: 'http://127.0.0.1:9' },
      encoding: 'utf8',
      ...asOther,
    });
    expect(child.status, child.stderr).toBe(2);
    expect(child.stderr).toContain(`--ca-cert: cannot read ${locked}: permission denied (EACCES)`);
    expect(git(repo, 'branch', '--list', 'i30')).toBe('');
    expect(await projectContainers(repo)).toEqual([]);
  });

  it('I32 the agent edits a file inside a submodule (its git dir is read-only): the edit is not lost, and the user is told it is not on the branch', async () => {
    const subSource = repoWith({ 'lib.txt': 'library\n' });
    const repo = repoWith();
    git(repo, '-c', 'protocol.file.allow=always', 'submodule', '--quiet', 'add', subSource, 'vendor/lib');
    git(repo, 'commit', '-qm', 'add submodule');
    const subHead = git(path.join(repo, 'vendor/lib'), 'rev-parse', 'HEAD').trim();
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: 'echo changed >> vendor/lib/lib.txt; git -C vendor/lib commit -qam sub 2>&1; echo subcommit=$?; echo top > top.txt' } }], usage: { input: 10, output: 2 } },
    ];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'i32', '--task', 'edit the submodule'], { stateDir });
      expect(fixture.toolResults()[0]?.content).toMatch(/subcommit=[1-9]/); // its git dir is under the read-only .git
      const report = parseReport(result);
      expect(git(repo, 'show', 'i32:top.txt')).toBe('top\n');
      // The submodule was not moved and the edit is still there (never discarded) ...
      expect(git(path.join(repo, 'vendor/lib'), 'rev-parse', 'HEAD').trim()).toBe(subHead);
      expect(readFileSync(path.join(repo, 'vendor/lib/lib.txt'), 'utf8')).toBe('library\nchanged\n');
      // ... but it is not on the branch, so the user must be told (the README promises a clean tree).
      expect(result.stderr, 'stderr names the submodule whose changes were left outside the branch').toContain('vendor/lib');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });
});

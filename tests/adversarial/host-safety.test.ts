/**
 * Host safety: an agent that tries to make the HOST run its code through git (hooks, fsmonitor, filter
 * drivers, a planted nested repository) gets nothing executed on the host — in mount mode because .git
 * is read-only and host git runs with hooks and fsmonitor off, in copy mode because nothing of .git
 * comes back. And the files the agent creates on the host belong to the invoking user.
 *
 * Every attack writes its marker into a host folder that is not mounted into the container, so a
 * marker there can only come from a process on the host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ScriptedTurn } from '../fixtures/fake-anthropic.js';
import { parseReport, runAgentWorker, TEST_API_KEY, withFixture } from '../helpers/agent-run.js';
import { dockerAvailable, managedContainers, removeProjectContainers, runCli, TEST_CA_CERT } from '../helpers/docker.js';
import { git, makeRepo, removeDir, tempDir } from '../helpers/git.js';

const hasDocker = await dockerAvailable();
const cleanup: string[] = [];
const projects: string[] = [];
let stateDir: string;

beforeAll(() => {
  stateDir = tempDir('aw-state-');
  cleanup.push(stateDir);
});

afterAll(async () => {
  if (hasDocker) await removeProjectContainers(projects);
  for (const dir of cleanup) removeDir(dir);
});

function repoWith(files?: Record<string, string>): string {
  const repo = makeRepo(files);
  cleanup.push(repo);
  projects.push(repo);
  return repo;
}

/** A host folder for markers; the container never sees it (nothing mounts it). */
function markerDir(): string {
  const dir = tempDir('aw-marks-');
  cleanup.push(dir);
  return dir;
}

const HOOKS = ['post-commit', 'pre-commit', 'post-checkout', 'commit-msg', 'prepare-commit-msg', 'reference-transaction'];

/**
 * One Bash command that tries every way to get code run by host git, printing `<attempt>=<status>`
 * for each. `marks` is the host marker folder; each payload does `mkdir -p marks && touch marks/<name>`.
 */
function attackCommand(marks: string, hostRepo: string): string {
  const payload = (name: string): string => `mkdir -p ${marks} && touch ${marks}/${name}`;
  const lines: string[] = [];
  for (const hook of HOOKS) {
    lines.push(`printf '#!/bin/sh\\n${payload(hook)}\\nexit 0\\n' > .git/hooks/${hook} && chmod +x .git/hooks/${hook}; echo hook-${hook}=$?`);
  }
  // fsmonitor: a hook script in the work tree, named by its host path (the agent may guess it) and by /workspace.
  lines.push(`printf '#!/bin/sh\\n${payload('fsmonitor')}\\nexit 1\\n' > fsmonitor.sh && chmod +x fsmonitor.sh; echo fsmonitor-script=$?`);
  lines.push(`git config core.fsmonitor ${hostRepo}/fsmonitor.sh; echo config-fsmonitor=$?`);
  // A filter driver: .gitattributes in the work tree (allowed), its commands in .git/config (must not be).
  lines.push(`printf '* filter=evil\\n' > .gitattributes; echo gitattributes=$?`);
  lines.push(`git config filter.evil.clean "sh -c '${payload('filter-clean')}; cat'"; echo config-clean=$?`);
  lines.push(`git config filter.evil.smudge "sh -c '${payload('filter-smudge')}; cat'"; echo config-smudge=$?`);
  // The same by writing the files directly.
  lines.push(`printf '[diff "evil"]\\n\\ttextconv = sh -c "${payload('textconv')}; cat"\\n' >> .git/config; echo append-config=$?`);
  lines.push(`printf '* filter=evil\\n' >> .git/info/attributes; echo info-attributes=$?`);
  lines.push(`mkdir -p .githooks && printf '#!/bin/sh\\n${payload('githooks-post-commit')}\\n' > .githooks/post-commit && chmod +x .githooks/post-commit; echo githooks=$?`);
  lines.push('echo attack-done');
  return lines.join('\n');
}

const ATTEMPTS_ON_GIT_DIR = ['hook-post-commit', 'hook-pre-commit', 'hook-post-checkout', 'hook-commit-msg', 'hook-prepare-commit-msg', 'hook-reference-transaction', 'config-fsmonitor', 'config-clean', 'config-smudge', 'append-config', 'info-attributes'];
const ATTEMPTS_ON_WORK_TREE = ['fsmonitor-script', 'gitattributes', 'githooks'];

/** `name=<status>` pairs printed by {@link attackCommand}. */
function statuses(output: string): Record<string, number> {
  return Object.fromEntries([...output.matchAll(/^([a-z-]+)=(\d+)$/gm)].map((match) => [match[1]!, Number(match[2])]));
}

/** The host repository's git config and hooks, to compare before and after. */
function gitDirState(repo: string): { config: string; hooks: string[]; info: string[] } {
  const infoDir = path.join(repo, '.git', 'info');
  return {
    config: readFileSync(path.join(repo, '.git', 'config'), 'utf8'),
    hooks: readdirSync(path.join(repo, '.git', 'hooks')).filter((name) => !name.endsWith('.sample')).sort(),
    info: existsSync(infoDir) ? readdirSync(infoDir).map((name) => `${name}:${readFileSync(path.join(infoDir, name), 'utf8')}`).sort() : [],
  };
}

describe.runIf(hasDocker)('adversarial host safety', { timeout: 600_000 }, () => {
  it('H01 mount mode: hooks, core.fsmonitor and a filter driver cannot be planted (.git is read-only); nothing runs on the host', async () => {
    const repo = repoWith({ 'README.md': '# r\n', 'src/a.txt': 'a\n' });
    const marks = markerDir();
    const before = gitDirState(repo);
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: attackCommand(marks, repo) } }], usage: { input: 10, output: 2 } },
      // A change the host must commit (pre-commit / post-commit / commit-msg would fire here) through the filter.
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/src/b.txt', content: 'b\n' } }], usage: { input: 10, output: 2 } },
    ];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'h01', '--task', 'Plant hooks'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      const output = fixture.toolResults()[0]?.content ?? '';
      expect(output).toContain('attack-done');
      const status = statuses(output);
      for (const attempt of ATTEMPTS_ON_GIT_DIR) expect(status[attempt], `${attempt} must fail in mount mode\n${output}`).toBeGreaterThan(0);
      for (const attempt of ATTEMPTS_ON_WORK_TREE) expect(status[attempt], `${attempt} (the work tree is writable)\n${output}`).toBe(0);

      // Nothing ran on the host, and .git is as it was.
      expect(readdirSync(marks)).toEqual([]);
      expect(gitDirState(repo)).toEqual(before);
      // The agent's work tree files are its work: committed on the branch like any other change.
      expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('h01');
      expect(git(repo, 'show', 'h01:src/b.txt')).toBe('b\n');
      expect(git(repo, 'show', 'h01:.gitattributes')).toBe('* filter=evil\n');
      expect(report.headCommit).toBe(git(repo, 'rev-parse', 'h01').trim());
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      // What the user does next with plain git (checkout back and forth) runs nothing either.
      git(repo, 'checkout', '--quiet', 'main');
      git(repo, 'checkout', '--quiet', 'h01');
      expect(readdirSync(marks)).toEqual([]);
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('H02 copy mode: the same attack succeeds inside the container (and fires there), but nothing runs on the host and the branch comes back', async () => {
    const repo = repoWith({ 'README.md': '# r\n', 'src/a.txt': 'a\n' });
    const marks = markerDir();
    const before = gitDirState(repo);
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: attackCommand(marks, repo) } }], usage: { input: 10, output: 2 } },
      // The agent commits in the container: its own hooks and filter run there, as they may.
      {
        content: [{ type: 'tool_use', name: 'Bash', input: { command: `git config core.fsmonitor false; echo b > src/b.txt && git add -A && git commit -qm "agent commit"; echo commit=$?; git checkout -q -b scratch && git checkout -q -; ls ${marks}` } }],
        usage: { input: 10, output: 2 },
      },
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/src/c.txt', content: 'c\n' } }], usage: { input: 10, output: 2 } },
    ];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'h02', '--workspace', 'copy', '--task', 'Plant hooks (copy)'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      const [attack, commit] = fixture.toolResults().map((toolResult) => toolResult.content);
      expect(attack).toContain('attack-done');
      const status = statuses(attack ?? '');
      for (const attempt of [...ATTEMPTS_ON_GIT_DIR, ...ATTEMPTS_ON_WORK_TREE]) expect(status[attempt], `${attempt} succeeds in the container's own .git\n${attack}`).toBe(0);
      // Inside the container the planted hooks and the filter did fire (so the attack was live) ...
      expect(commit).toContain('commit=0');
      expect(commit).toContain('pre-commit');
      expect(commit).toContain('post-commit');
      expect(commit).toContain('filter-clean');
      // ... and on the host nothing ran; the host's .git is as it was.
      expect(readdirSync(marks)).toEqual([]);
      expect(gitDirState(repo)).toEqual(before);
      // The branch came back with the agent's commit and the rest, checked out, tree clean.
      expect(git(repo, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('h02');
      expect(git(repo, 'log', '--format=%s', 'main..h02').trim().split('\n')).toEqual(['Plant hooks (copy)', 'agent commit']);
      expect(git(repo, 'show', 'h02:src/b.txt')).toBe('b\n');
      expect(git(repo, 'show', 'h02:src/c.txt')).toBe('c\n');
      expect(git(repo, 'show', 'h02:.gitattributes')).toBe('* filter=evil\n');
      expect(git(repo, 'branch', '--list', 'scratch')).toBe('');
      expect(report.headCommit).toBe(git(repo, 'rev-parse', 'h02').trim());
      expect(git(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
      git(repo, 'checkout', '--quiet', 'main');
      git(repo, 'checkout', '--quiet', 'h02');
      expect(readdirSync(marks)).toEqual([]);
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('H03 mount mode: a nested repository the agent plants (its own config with a filter driver) runs nothing on the host — not while the run collects, not at the next run\'s clean check', async () => {
    const repo = repoWith();
    const marks = markerDir();
    // The filter's script records where it ran: host name and the chain of processes that ran it.
    const evil = `mkdir -p ${marks}\np=$PPID; { hostname; for i in 1 2 3 4; do tr '\\0' ' ' < /proc/$p/cmdline; echo; p=$(awk '/^PPid/ {print $2}' /proc/$p/status); done; } > ${marks}/nested-filter-$$\ncat\n`;
    const command = [
      'mkdir nested && cd nested && git init -q && echo hi > f && git add f && git -c user.name=a -c user.email=b commit -qm x',
      `printf '%s' '${evil.replace(/'/g, "'\\''")}' > .evil.sh`,
      "git config filter.evil.clean 'sh .evil.sh'",
      "git config core.fsmonitor 'sh .evil.sh'",
      "printf '* filter=evil\\n' > .gitattributes",
      'sleep 1; touch f; echo nested-done',
    ].join(' && ');
    const script: ScriptedTurn[] = [{ content: [{ type: 'tool_use', name: 'Bash', input: { command } }], usage: { input: 10, output: 2 } }];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'h03', '--task', 'Plant a nested repository'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      expect(fixture.toolResults()[0]?.content).toContain('nested-done');
      const ran = (): string[] => readdirSync(marks).map((name) => `${name}: ${readFileSync(path.join(marks, name), 'utf8')}`);
      expect(ran(), 'the run itself executed the nested filter on the host').toEqual([]);
      // The next agent-worker run checks the tree first (git status, which looks into nested repositories).
      const next = await runAgentWorker(repo, undefined, ['--branch', 'h03', '--task', 'next run'], { stateDir });
      expect(next.code, next.stderr).toBe(5); // refused on the branch name, after the clean check ran
      expect(ran(), 'the next run\'s clean check executed the agent\'s filter driver on the host').toEqual([]);
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('H04 files and folders the agent creates on the host belong to the invoking user (uid/gid of the test process)', async () => {
    const repo = repoWith({ 'README.md': '# r\n', 'old.txt': 'old\n' });
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/deep/er/written.txt', content: 'w\n' } }], usage: { input: 10, output: 2 } },
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: 'mkdir -p made/by/bash && echo x > made/by/bash/f.txt && ln -s f.txt made/by/bash/link && echo y > old.txt.new && mv old.txt.new old.txt && id -u && id -g' } }], usage: { input: 10, output: 2 } },
    ];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'h04', '--task', 'Create files'], { stateDir });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      const uid = process.getuid!();
      const gid = process.getgid!();
      expect(fixture.toolResults()[1]?.content.trim().split('\n')).toEqual([String(uid), String(gid)]);
      for (const name of ['deep', 'deep/er', 'deep/er/written.txt', 'made', 'made/by', 'made/by/bash', 'made/by/bash/f.txt', 'made/by/bash/link', 'old.txt']) {
        const info = lstatSync(path.join(repo, name));
        expect({ name, uid: info.uid, gid: info.gid }).toEqual({ name, uid, gid });
      }
      expect(report.changes.files.map((file) => file.path).sort()).toEqual(['deep/er/written.txt', 'made/by/bash/f.txt', 'made/by/bash/link', 'old.txt']);
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it.runIf(process.getuid?.() === 0)('H05 run by a non-root user (uid 4242): the agent\'s files on the host are 4242:<its gid>, never root\'s', async () => {
    const uid = 4242;
    const gid = statSync('/var/run/docker.sock').gid; // the one group that may use the daemon
    const repo = repoWith({ 'README.md': '# r\n' });
    const home = tempDir('aw-home-');
    cleanup.push(home);
    const state = path.join(home, 'state');
    mkdirSync(state);
    for (const dir of [repo, home, state]) chownRecursive(dir, uid, gid);
    chmodSync(home, 0o700);
    const script: ScriptedTurn[] = [
      { content: [{ type: 'tool_use', name: 'Write', input: { file_path: '/workspace/sub/w.txt', content: 'w\n' } }], usage: { input: 10, output: 2 } },
      { content: [{ type: 'tool_use', name: 'Bash', input: { command: 'mkdir -p bashdir && echo b > bashdir/b.txt && id -u && id -g && touch /workspace/.git/x 2>&1; echo gitwrite=$?' } }], usage: { input: 10, output: 2 } },
    ];
    await withFixture(script, async (fixture) => {
      const result = await runCli(['--project', repo, '--base-url', `http://host.docker.internal:${fixture.port}`, '--ca-cert', TEST_CA_CERT, '--json', '--branch', 'h05', '--task', 'Create files as 4242'], {
        cwd: repo,
        env: { HOME: home, XDG_STATE_HOME: state, ANTHROPIC_API_KEY: TEST_API_KEY },
        uid,
        gid,
        timeoutMs: 300_000,
      });
      expect(result.code, result.stderr).toBe(0);
      const report = parseReport(result);
      const output = fixture.toolResults()[1]?.content ?? '';
      expect(output.split('\n').slice(0, 2)).toEqual([String(uid), String(gid)]);
      expect(output).toMatch(/gitwrite=[1-9]/);
      for (const name of ['sub', 'sub/w.txt', 'bashdir', 'bashdir/b.txt']) {
        const info = lstatSync(path.join(repo, name));
        expect({ name, uid: info.uid, gid: info.gid }).toEqual({ name, uid, gid });
      }
      // agent-worker's own writes into .git (the commit) are the user's too.
      const objects = path.join(repo, '.git', 'objects');
      for (const dir of readdirSync(objects)) expect(statSync(path.join(objects, dir)).uid, `.git/objects/${dir}`).toBe(uid);
      expect(statSync(path.join(repo, '.git', 'index')).uid).toBe(uid);
      expect(git(repo, '-c', `safe.directory=${repo}`, 'show', 'h05:sub/w.txt')).toBe('w\n');
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });

  it('H06 mount mode: the agent replaces a registered submodule\'s .git file by a git dir with a filter driver; nothing runs on the host', async () => {
    const subSource = repoWith({ 'lib.txt': 'library\n' });
    const repo = repoWith();
    git(repo, '-c', 'protocol.file.allow=always', 'submodule', '--quiet', 'add', subSource, 'vendor/lib');
    git(repo, 'commit', '-qm', 'add submodule');
    const marks = markerDir();
    const evil = `mkdir -p ${marks}\np=$PPID; { hostname; for i in 1 2 3 4; do tr '\\0' ' ' < /proc/$p/cmdline; echo; p=$(awk '/^PPid/ {print $2}' /proc/$p/status); done; } > ${marks}/submodule-filter-$$\ncat\n`;
    // A fresh repository at the submodule's commit, moved over the submodule's .git file.
    const command = [
      'cd vendor/lib && head=$(git rev-parse HEAD) && rm .git && git init -q && git fetch -q /workspace/.git/modules/vendor/lib && git reset -q --hard $head',
      `printf '%s' '${evil.replace(/'/g, "'\\''")}' > /tmp/evil.sh && cp /tmp/evil.sh .git/evil.sh`,
      // Filters run at the top of their work tree: a relative path works on the host too.
      "git config filter.evil.clean 'sh .git/evil.sh'",
      "printf '* filter=evil\\n' > .git/info/attributes",
      'sleep 1; touch lib.txt; echo replaced-done',
    ].join(' && ');
    const script: ScriptedTurn[] = [{ content: [{ type: 'tool_use', name: 'Bash', input: { command } }], usage: { input: 10, output: 2 } }];
    await withFixture(script, async (fixture) => {
      const result = await runAgentWorker(repo, fixture, ['--branch', 'h06', '--task', 'Replace the submodule git file'], { stateDir });
      const report = parseReport(result);
      expect(fixture.toolResults()[0]?.content).toContain('replaced-done');
      // The planted git dir was moved aside into the run's quarantine and the submodule's .git file put back.
      expect(lstatSync(path.join(repo, 'vendor/lib/.git')).isFile()).toBe(true);
      expect(readFileSync(path.join(repo, 'vendor/lib/.git'), 'utf8')).toMatch(/^gitdir: /);
      expect(lstatSync(path.join(report.logDir, 'quarantine', 'vendor/lib/.git')).isDirectory()).toBe(true);
      expect(report.warnings.join('\n')).toMatch(/vendor\/lib\/\.git/);
      expect(result.stderr).toMatch(/warning: moved 1 \.git entry/);
      const ran = (): string[] => readdirSync(marks).map((name) => `${name}: ${readFileSync(path.join(marks, name), 'utf8')}`);
      expect(ran(), 'the run itself executed the planted filter on the host').toEqual([]);
      const next = await runAgentWorker(repo, undefined, ['--branch', 'h06', '--task', 'next run'], { stateDir });
      expect([4, 5], next.stderr).toContain(next.code);
      expect(ran(), 'the next run\'s clean check executed the planted filter on the host').toEqual([]);
      expect(await managedContainers(report.runId)).toEqual([]);
    });
  });
});

function chownRecursive(dir: string, uid: number, gid: number): void {
  chownSync(dir, uid, gid);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) chownRecursive(full, uid, gid);
    else chownSync(full, uid, gid);
  }
}


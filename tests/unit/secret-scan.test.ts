/**
 * Defence in depth on the branch (src/git/secret-scan.ts), on real files and real temp git repositories: the
 * credential's forms are found wherever they sit in a file, mount mode moves the files holding one to the
 * quarantine (a tracked file goes back to its base version), and copy mode rewrites the agent's commits so no
 * object of the new history holds it, keeping everything else.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  credentialWarning,
  fileContainsSecret,
  quarantineSecretFiles,
  scrubCommits,
  secretPatterns,
} from '../../src/git/secret-scan.js';
import { commitAll, openRepo } from '../../src/git/repo.js';
import { git, makeRepo, tempDir, writeFiles } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();

/** A credential shaped like an Anthropic key, with characters that URL encoding changes. */
const SECRET = 'sk-ant-api03-Zq9+x/Yw7=Kd_3Lm-8Pv';
const patterns = secretPatterns([SECRET]);

/** Writes `content` to a new file in a temp folder and says whether it holds the secret. */
async function scan(content: string | Buffer, chunkBytes?: number): Promise<boolean> {
  const file = path.join(track(tempDir()), 'file');
  writeFileSync(file, content);
  return fileContainsSecret(file, patterns, chunkBytes);
}

/** git with a given identity and dates (the test helper's is fixed). */
function gitAs(cwd: string, who: { name: string; email: string; date: string }, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: who.name,
      GIT_AUTHOR_EMAIL: who.email,
      GIT_AUTHOR_DATE: who.date,
      GIT_COMMITTER_NAME: `${who.name} (committer)`,
      GIT_COMMITTER_EMAIL: `c-${who.email}`,
      GIT_COMMITTER_DATE: who.date,
    },
  });
}

/** The contents of every object in `range`, from `git rev-list --objects` and `git cat-file --batch`. */
function objectsOf(dir: string, range: string): Buffer {
  const ids = execFileSync('git', ['rev-list', '--objects', '--no-object-names', range], { cwd: dir });
  return execFileSync('git', ['cat-file', '--batch'], { cwd: dir, input: ids, maxBuffer: 64 * 1024 * 1024 });
}

describe('secretPatterns and fileContainsSecret', () => {
  it('finds the secret as it is, URL-encoded, in base64 at every byte offset and in base64url', async () => {
    expect(await scan(`ANTHROPIC_API_KEY=${SECRET}\n`)).toBe(true);
    expect(encodeURIComponent(SECRET)).not.toBe(SECRET);
    expect(await scan(`https://example.com/?key=${encodeURIComponent(SECRET)}&x=1`)).toBe(true);
    for (const offset of [0, 1, 2, 3, 4, 5]) {
      for (const tail of ['', 'x', 'yz', '...and more']) {
        const plain = Buffer.from(`${'p'.repeat(offset)}${SECRET}${tail}`);
        expect(await scan(`auth: ${plain.toString('base64')}\n`), `base64, offset ${offset}, tail ${JSON.stringify(tail)}`).toBe(true);
        expect(await scan(`token=${plain.toString('base64url')}`), `base64url, offset ${offset}, tail ${JSON.stringify(tail)}`).toBe(true);
      }
    }
  });

  it('finds it inside a large binary file and across every chunk boundary', async () => {
    const noise = randomBytes(3 * 1024 * 1024 + 17);
    expect(await scan(noise)).toBe(false);
    expect(await scan(Buffer.concat([noise, Buffer.from(SECRET), noise]))).toBe(true);
    // 16-byte chunks: the secret (34 bytes) starts at every position inside a chunk and spans two or three of them.
    for (let at = 0; at < 40; at += 1) {
      const content = Buffer.concat([randomBytes(at), Buffer.from(SECRET), randomBytes(20)]);
      expect(await scan(content, 16), `at byte ${at}`).toBe(true);
    }
  });

  it('does not match near misses, and ignores secrets shorter than 8 characters', async () => {
    expect(await scan(SECRET.slice(0, -1))).toBe(false);
    expect(await scan(`${SECRET.slice(0, 10)}X${SECRET.slice(11)}`)).toBe(false);
    expect(await scan(SECRET.toUpperCase())).toBe(false);
    expect(await scan(Buffer.from(SECRET.slice(0, -2)).toString('base64'))).toBe(false);
    expect(secretPatterns(['short', ''])).toEqual([]);
    expect(await fileContainsSecret(path.join(track(tempDir()), 'none'), []).catch(() => 'threw')).toBe(false);
  });

  it('reads a symlink as its target text and does not follow it', async () => {
    const dir = track(tempDir());
    writeFileSync(path.join(dir, 'real'), SECRET);
    symlinkSync('real', path.join(dir, 'clean-link'));
    symlinkSync(`/tmp/${SECRET}`, path.join(dir, 'leaking-link'));
    expect(await fileContainsSecret(path.join(dir, 'clean-link'), patterns)).toBe(false);
    expect(await fileContainsSecret(path.join(dir, 'leaking-link'), patterns)).toBe(true);
  });
});

describe('mount mode: quarantineSecretFiles', () => {
  it('moves the files holding the secret, restores a tracked one to its base version, and leaves the rest', async () => {
    const dir = track(makeRepo({ 'tracked.txt': 'base\n', 'clean.txt': 'clean\n', '.gitignore': 'ignored.log\n' }));
    const quarantine = path.join(track(tempDir()), 'quarantine');
    writeFiles(dir, {
      'tracked.txt': `base\nkey = ${SECRET}\n`,
      'clean.txt': 'clean, edited\n',
      'new/leak.env': `TOKEN=${Buffer.from(`user:${SECRET}`).toString('base64')}\n`,
      'new/fine.txt': 'nothing to see\n',
      'ignored.log': SECRET,
    });
    symlinkSync(`../${SECRET}`, path.join(dir, 'new', 'link'));
    writeFiles(dir, { [`named-${SECRET}.txt`]: 'harmless content\n' });
    const repo = await openRepo(dir);

    const moved = await quarantineSecretFiles(repo, patterns, quarantine);

    expect([...moved].sort()).toEqual(['named-[REDACTED].txt', 'new/leak.env', 'new/link', 'tracked.txt']);
    expect(readFileSync(path.join(dir, 'tracked.txt'), 'utf8')).toBe('base\n');
    expect(existsSync(path.join(dir, 'new/leak.env'))).toBe(false);
    expect(readFileSync(path.join(dir, 'clean.txt'), 'utf8')).toBe('clean, edited\n');
    expect(readFileSync(path.join(dir, 'new/fine.txt'), 'utf8')).toBe('nothing to see\n');
    expect(readFileSync(path.join(dir, 'ignored.log'), 'utf8')).toBe(SECRET);
    expect(readFileSync(path.join(quarantine, 'tracked.txt'), 'utf8')).toContain(SECRET);
    expect(readFileSync(path.join(quarantine, 'new/leak.env'), 'utf8')).toContain('TOKEN=');
    expect(statSync(quarantine).mode & 0o777).toBe(0o700);
    // The commit holds the other changes and nothing with the secret; tracked.txt is not in it at all.
    await commitAll(repo, 'agent work');
    expect(git(dir, 'diff', '--name-only', 'HEAD~1', 'HEAD').trim().split('\n').sort()).toEqual(['clean.txt', 'new/fine.txt']);
    expect(objectsOf(dir, 'HEAD~1..HEAD').includes(SECRET)).toBe(false);
  });

  it('the warnings name the files, never the secret', async () => {
    const dir = track(makeRepo());
    const quarantine = path.join(track(tempDir()), 'quarantine');
    writeFiles(dir, { [`${SECRET}/key.txt`]: SECRET, 'config.json': `{"key": "${SECRET}"}` });
    const moved = await quarantineSecretFiles(await openRepo(dir), patterns, quarantine);
    expect(moved).toHaveLength(2);
    const warnings = moved.map((file) => credentialWarning(file, quarantine, 'mount'));
    expect(warnings.some((text) => text.includes('config.json'))).toBe(true);
    for (const text of warnings) {
      for (const pattern of patterns) expect(text).not.toContain(pattern.toString('utf8'));
      expect(text).toContain('it contains a credential given to agent-worker');
    }
  });

  it('finds a file whose name is not UTF-8', async () => {
    const dir = track(makeRepo());
    const quarantine = path.join(track(tempDir()), 'quarantine');
    writeFileSync(Buffer.concat([Buffer.from(`${dir}/odd-`), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]), SECRET);
    const moved = await quarantineSecretFiles(await openRepo(dir), patterns, quarantine);
    expect(moved).toEqual(['odd-\uFFFD\uFFFD.txt']);
    expect(git(dir, 'status', '--porcelain')).toBe('');
  });

  it('does nothing when no file holds the secret', async () => {
    const dir = track(makeRepo({ 'a.txt': 'a\n' }));
    const quarantine = path.join(track(tempDir()), 'quarantine');
    writeFiles(dir, { 'a.txt': 'changed\n', 'b.txt': 'new\n' });
    expect(await quarantineSecretFiles(await openRepo(dir), patterns, quarantine)).toEqual([]);
    expect(existsSync(quarantine)).toBe(false);
  });
});

describe('copy mode: scrubCommits', () => {
  const ada = { name: 'Ada', email: 'ada@example.com', date: '2001-02-03T04:05:06+01:00' };
  const bob = { name: 'Bob', email: 'bob@example.com', date: '2002-03-04T05:06:07-05:00' };
  const cyd = { name: 'Cyd', email: 'cyd@example.com', date: '2003-04-05T06:07:08+09:30' };

  /** base → 1 (edits a.txt) → 2 (adds secret.env, puts the secret into b.txt) → 3 (edits c.txt) on branch agent. */
  function history(): { dir: string; base: string; head: string; commits: string[] } {
    const dir = track(makeRepo({ 'a.txt': 'a\n', 'b.txt': 'b\n', 'c.txt': 'c\n' }));
    const base = git(dir, 'rev-parse', 'HEAD').trim();
    git(dir, 'checkout', '--quiet', '-b', 'agent');
    writeFiles(dir, { 'a.txt': 'a, edited\n' });
    gitAs(dir, ada, 'commit', '--quiet', '-am', 'first: edit a');
    writeFiles(dir, { 'conf/secret.env': `KEY=${SECRET}\n`, 'b.txt': `b\n${Buffer.from(`xx${SECRET}`).toString('base64')}\n` });
    git(dir, 'add', '-A');
    gitAs(dir, bob, 'commit', '--quiet', '-m', 'second: add config\n\nWith a body.');
    writeFiles(dir, { 'c.txt': 'c, edited\n' });
    gitAs(dir, cyd, 'commit', '--quiet', '-am', 'third: edit c');
    git(dir, 'checkout', '--quiet', 'main');
    const commits = git(dir, 'rev-list', '--reverse', `${base}..agent`).trim().split('\n');
    return { dir, base, head: commits[2]!, commits };
  }

  const metadata = (dir: string, range: string): string => git(dir, 'log', '--format=%an|%ae|%ad|%cn|%ce|%cd|%B', '--date=raw', range);

  it('rewrites the history without any object holding the secret, keeping the other changes, messages, authors and dates', async () => {
    const { dir, base, head, commits } = history();
    const quarantine = path.join(track(tempDir()), 'quarantine');
    const result = await scrubCommits(await openRepo(dir), base, head, patterns, quarantine);

    expect(result.head).not.toBe(head);
    expect([...result.quarantined].sort()).toEqual(['b.txt', 'conf/secret.env']);
    expect(result.redactedCommits).toBe(0);
    const objects = objectsOf(dir, `${base}..${result.head}`);
    for (const pattern of patterns) expect(objects.includes(pattern), pattern.toString()).toBe(false);
    // The first commit needed no change: it keeps its id.
    const rewritten = git(dir, 'rev-list', '--reverse', `${base}..${result.head}`).trim().split('\n');
    expect(rewritten).toHaveLength(3);
    expect(rewritten[0]).toBe(commits[0]);
    expect(metadata(dir, `${base}..${result.head}`)).toBe(metadata(dir, `${base}..${head}`));
    expect(git(dir, 'show', `${result.head}:a.txt`)).toBe('a, edited\n');
    expect(git(dir, 'show', `${result.head}:b.txt`)).toBe('b\n');
    expect(git(dir, 'show', `${result.head}:c.txt`)).toBe('c, edited\n');
    expect(git(dir, 'ls-tree', '-r', '--name-only', result.head).trim().split('\n')).toEqual(['a.txt', 'b.txt', 'c.txt']);
    expect(git(dir, 'diff', `${rewritten[1]}`, `${rewritten[2]}`)).toBe(git(dir, 'diff', `${commits[1]}`, `${commits[2]}`));
    expect(readFileSync(path.join(quarantine, 'conf/secret.env'), 'utf8')).toBe(`KEY=${SECRET}\n`);
    expect(readFileSync(path.join(quarantine, 'b.txt'), 'utf8')).toContain(Buffer.from(`xx${SECRET}`).toString('base64'));
    expect(statSync(quarantine).mode & 0o777).toBe(0o700);
    // The original history is untouched.
    expect(git(dir, 'rev-parse', 'agent').trim()).toBe(head);
  });

  it('redacts the secret from a commit message, and changes nothing when nothing holds it', async () => {
    const { dir, base, head } = history();
    const repo = await openRepo(dir);
    const quarantine = path.join(track(tempDir()), 'quarantine');
    const clean = git(dir, 'rev-list', '--reverse', `${base}..${head}`).trim().split('\n')[0]!;
    expect(await scrubCommits(repo, base, clean, patterns, quarantine)).toEqual({ head: clean, quarantined: [], redactedCommits: 0 });
    expect(existsSync(quarantine)).toBe(false);

    git(dir, 'checkout', '--quiet', '-b', 'talky', clean);
    writeFiles(dir, { 'd.txt': 'd\n' });
    git(dir, 'add', 'd.txt');
    gitAs(dir, ada, 'commit', '--quiet', '-m', `add d\n\nused key ${SECRET} here`);
    const talky = git(dir, 'rev-parse', 'HEAD').trim();
    const result = await scrubCommits(repo, base, talky, patterns, quarantine);
    expect(result.quarantined).toEqual([]);
    expect(result.redactedCommits).toBe(1);
    expect(git(dir, 'log', '-1', '--format=%B', result.head)).toBe('add d\n\nused key [REDACTED] here\n\n');
    expect(git(dir, 'log', '-1', '--format=%an|%ad', '--date=raw', result.head)).toBe(git(dir, 'log', '-1', '--format=%an|%ad', '--date=raw', talky));
    expect(git(dir, 'rev-parse', `${result.head}^`).trim()).toBe(clean);
  });
});

describe('the run status of a leak', () => {
  it('credential_leak replaces success and verify_failed only, and exits 15', async () => {
    const { exitCodeFor, withCredentialLeak } = await import('../../src/run.js');
    const { STATUS_WORDS } = await import('../../src/report/render.js');
    expect(withCredentialLeak('success')).toBe('credential_leak');
    expect(withCredentialLeak('verify_failed')).toBe('credential_leak');
    for (const status of ['timed_out', 'agent_error', 'interrupted', 'out_of_memory', 'max_turns', 'budget_exceeded'] as const) {
      expect(withCredentialLeak(status)).toBe(status);
    }
    expect(exitCodeFor('credential_leak', new AbortController().signal)).toBe(15);
    expect(STATUS_WORDS.credential_leak).toBe('credential removed: work incomplete');
  });
});

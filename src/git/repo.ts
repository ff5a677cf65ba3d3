/**
 * The host-side git operations of a run, through simple-git. Every command runs with hooks
 * disabled (`core.hooksPath=/dev/null`) and without fsmonitor, so nothing the agent could have
 * written into the work tree makes git execute code on the host.
 */
import { simpleGit, type SimpleGit } from 'simple-git';
import createDebug from 'debug';
import { ExitCode, PreflightError, AgentWorkerError, errorMessage } from '../errors.js';
import { parseRawNumstatZ, summarizeChanges } from './numstat.js';
import type { ChangeSummary } from '../report/types.js';

const log = createDebug('agent-worker:git');

/** Config given to every host git command (`-c` pairs), also to the git processes src/git/secret-scan.ts spawns itself. */
export const SAFE_CONFIG = ['core.hooksPath=/dev/null', 'core.fsmonitor=false', 'commit.gpgSign=false'];

// Latency: simple-git waits 50 ms more after a git command that printed nothing (its completion detection,
// src/lib/plugins/completion-detection.plugin.ts), so commands on a run's path are given a form that
// prints (no --quiet, status with its --branch header, add --verbose, bundle create --progress, fetch
// --verbose): five silent commands were a quarter of a second of every run (`npm run bench`, warm-run
// overhead). update-ref has no form that prints.

/** Identity used for the commit only when the user's git config has none. */
const FALLBACK_IDENTITY = { name: 'agent-worker', email: 'agent-worker@localhost' };

/** A checked git work tree. */
export interface Repo {
  /** Absolute path of the work tree's top level. */
  root: string;
  git: SimpleGit;
  /** HEAD when the repository was opened. */
  head: HeadState;
}

/** Where HEAD was before the run, to return to if the run is abandoned before the agent starts. */
export interface HeadState {
  /** Full commit id of HEAD: the run's base commit. */
  commit: string;
  /** Branch HEAD pointed at, or undefined when detached. */
  branch?: string;
}

function gitAt(dir: string): SimpleGit {
  return simpleGit({ baseDir: dir, config: SAFE_CONFIG, trimmed: false, unsafe: { allowUnsafeHooksPath: true, allowUnsafeFsMonitor: true } as never });
}

/**
 * Opens `dir` as a git work tree with at least one commit, and reads its HEAD (one git process; two more
 * to tell the failures apart).
 * @returns the repo at the work tree's top level (a subdirectory resolves to its repository).
 * @throws PreflightError (exit {@link ExitCode.notARepo}) when `dir` is missing, not in a work tree, bare, or has no commit.
 */
export async function openRepo(dir: string): Promise<Repo> {
  let git: SimpleGit;
  try {
    git = gitAt(dir);
  } catch (error) {
    throw new PreflightError(`${dir} does not exist or is not a directory.`, ExitCode.notARepo, 'Pass the repository with --project <path>.', { cause: error });
  }
  // The usual case in one git process: a work tree with a commit.
  try {
    const [inside, top, commit, branch] = (await git.raw(['rev-parse', '--is-inside-work-tree', '--show-toplevel', 'HEAD^{commit}', '--abbrev-ref', 'HEAD'])).split('\n');
    if (inside === 'true' && top && commit && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit)) {
      return { root: top, git: gitAt(top), head: { commit, branch: branch && branch !== 'HEAD' ? branch : undefined } };
    }
  } catch {
    // Told apart below.
  }
  let root: string;
  try {
    // Inside a repository but not in a work tree (bare, or in .git), git prints "false" and fails on --show-toplevel.
    const [inside, top] = (await git.raw(['rev-parse', '--is-inside-work-tree', '--show-toplevel'])).split('\n');
    if (inside !== 'true' || !top) throw new Error(`not in a work tree: ${inside}`);
    root = top;
  } catch (error) {
    if (/must be run in a work tree|not in a work tree/.test(errorMessage(error))) {
      throw new PreflightError(`${dir} is not a git work tree (a bare repository or a .git folder).`, ExitCode.notARepo, 'Point --project at a checkout with a working tree.', { cause: error });
    }
    throw new PreflightError(`${dir} is not inside a git repository.`, ExitCode.notARepo, `Run agent-worker in a git work tree, pass one with --project <path>, or make this folder one: \`git init && ${FIRST_COMMIT}\`.`, { cause: error });
  }
  const rootGit = gitAt(root);
  let head: HeadState;
  try {
    // The commit, then the branch's short name ("HEAD" when detached; no branch can be named HEAD).
    const [commit, branch] = (await rootGit.raw(['rev-parse', 'HEAD^{commit}', '--abbrev-ref', 'HEAD'])).split('\n');
    if (!commit || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit)) throw new Error(`unexpected rev-parse output: ${commit}`);
    head = { commit, branch: branch && branch !== 'HEAD' ? branch : undefined };
  } catch (error) {
    throw new PreflightError(`${root} has no commit yet.`, ExitCode.notARepo, `Make a first commit (\`${FIRST_COMMIT}\`), then run again.`, { cause: error });
  }
  return { root, git: rootGit, head };
}

/**
 * Shell commands that make a repository's first commit, whatever the folder holds (nothing at all included):
 * the hint of a run in a folder without a repository or without a commit.
 */
export const FIRST_COMMIT = 'git add -A && git commit --allow-empty -m "Initial commit"';

/**
 * Fails unless the work tree is clean: no staged, unstaged or untracked changes (ignored files do not count).
 * @throws PreflightError (exit {@link ExitCode.dirtyTree}) listing up to 10 paths.
 */
export async function assertClean(repo: Repo): Promise<void> {
  const entries = await statusEntries(repo, ['--ignore-submodules=none']);
  if (entries.length === 0) return;
  const shown = entries.slice(0, 10).map((entry) => `  ${entry}`);
  if (entries.length > 10) shown.push(`  … and ${entries.length - 10} more`);
  throw new PreflightError(
    `The working tree of ${repo.root} has uncommitted changes:\n${shown.join('\n')}`,
    ExitCode.dirtyTree,
    'Commit or stash them first (`git stash --include-untracked`), so the agent\'s branch holds only its own work.',
  );
}

/**
 * `git status --porcelain=v1 -z --untracked-files=all` as entries (`XY path`); ignored files are not
 * listed. Only call this once nested repositories are defused ({@link ./guard.ts}): status runs inside them.
 */
export async function statusEntries(repo: Repo, extra: string[] = []): Promise<string[]> {
  // --branch: the `## <branch>` header, which the filter drops, makes it print (see the latency note above).
  const status = await repo.git.raw(['status', '--porcelain=v1', '--branch', '-z', '--untracked-files=all', ...extra]);
  return status.split('\0').filter((entry) => /^[ MADRCUT?!]{2} /.test(entry));
}

/**
 * Fails unless `branch` is a valid new branch name (`git check-ref-format --branch`) that does not exist yet.
 * @throws PreflightError (exit {@link ExitCode.badBranch}).
 */
export async function assertNewBranch(repo: Repo, branch: string): Promise<void> {
  const invalid = (): PreflightError =>
    new PreflightError(`${JSON.stringify(branch)} is not a valid branch name.`, ExitCode.badBranch, 'Pass another name with --branch (see `git check-ref-format --help`).');
  if (branch.startsWith('-') || branch === 'HEAD' || branch.startsWith('@')) throw invalid();
  // Both at once: whether a name that is not valid "exists" does not matter.
  const [normalized, exists] = await Promise.all([
    repo.git.raw(['check-ref-format', '--branch', branch]).then(
      (output) => output.trim(),
      () => undefined,
    ),
    branchExists(repo, branch),
  ]);
  if (normalized !== branch) throw invalid();
  if (exists) {
    throw new PreflightError(`Branch ${branch} already exists in ${repo.root}.`, ExitCode.badBranch, 'Pass a new name with --branch, or delete the old branch (`git branch -D ' + branch + '`).');
  }
}

/** True when `refs/heads/<branch>` exists. */
export async function branchExists(repo: Repo, branch: string): Promise<boolean> {
  try {
    // Not --quiet: simple-git only rejects when git also wrote to stderr.
    await repo.git.raw(['rev-parse', '--verify', `refs/heads/${branch}`]);
    return true;
  } catch {
    return false;
  }
}

/** Creates `branch` at `base` and checks it out. */
export async function createBranch(repo: Repo, branch: string, base: string): Promise<void> {
  log('create branch %s at %s', branch, base);
  await repo.git.raw(['checkout', '-b', branch, base]);
}

/**
 * Undoes {@link createBranch} for a run abandoned before the agent started: checks out the
 * previous HEAD again and deletes `branch` if it still points at its base commit (so nothing is lost).
 * @param base the commit the branch was created at (default: the previous HEAD's).
 */
export async function abandonBranch(repo: Repo, branch: string, previous: HeadState, base = previous.commit): Promise<void> {
  log('abandon branch %s, back to %s', branch, previous.branch ?? previous.commit);
  await repo.git.raw(['checkout', previous.branch ?? previous.commit]);
  const tip = (await repo.git.raw(['rev-parse', '--verify', `refs/heads/${branch}`])).trim();
  if (tip === base) await repo.git.raw(['branch', '-D', branch]);
}

/**
 * Commits everything in the work tree (new files included, `.gitignore` respected) onto the
 * checked-out branch. Does nothing when there is nothing to commit.
 * @param message full commit message.
 * @param onCommitted called once HEAD holds the commit, before its id is read (work that reads HEAD can start).
 * @returns the commit id of HEAD afterwards.
 * @throws AgentWorkerError (exit {@link ExitCode.collect}) when git fails.
 */
export async function commitAll(repo: Repo, message: string, onCommitted?: () => void): Promise<string> {
  try {
    // A stale index.lock can only come from a git process that died; the agent cannot write .git.
    const [identity] = await Promise.all([missingIdentityEnv(repo), repo.git.raw(['add', '--all', '--verbose', '--', '.'])]);
    const staged = await repo.git.raw(['diff', '--cached', '--name-only', '-z']);
    if (staged.length > 0) {
      const git = identity ? repo.git.env({ ...process.env, ...identity }) : repo.git;
      await git.raw(['commit', '--no-verify', '--no-gpg-sign', '-m', message]);
      log('committed %d path(s)', staged.split('\0').filter(Boolean).length);
    }
    onCommitted?.();
    return (await repo.git.raw(['rev-parse', '--verify', 'HEAD^{commit}'])).trim();
  } catch (error) {
    throw new AgentWorkerError(`Committing the agent's work failed: ${errorMessage(error)}`, ExitCode.collect, `The changes are still in the working tree of ${repo.root}; commit them by hand.`, { cause: error });
  }
}

async function missingIdentityEnv(repo: Repo): Promise<Record<string, string> | undefined> {
  const { name, email } = await configuredIdentity(repo);
  if (name && email) return undefined;
  return {
    GIT_AUTHOR_NAME: name || FALLBACK_IDENTITY.name,
    GIT_AUTHOR_EMAIL: email || FALLBACK_IDENTITY.email,
    GIT_COMMITTER_NAME: name || FALLBACK_IDENTITY.name,
    GIT_COMMITTER_EMAIL: email || FALLBACK_IDENTITY.email,
  };
}

/**
 * The changes between two commits, from one `git diff --raw --numstat -z -M` (so the agent's own commits,
 * renames and binary files all count): the status letters and the line counts come from the same git process.
 */
export async function diffChanges(repo: Repo, base: string, head: string): Promise<ChangeSummary> {
  const output = await repo.git.raw(['diff', '--raw', '--numstat', '-z', '-M', '--no-ext-diff', '--no-textconv', base, head, '--']);
  return summarizeChanges(parseRawNumstatZ(output));
}

/** True when the work tree has no staged, unstaged or untracked changes. */
export async function isClean(repo: Repo): Promise<boolean> {
  return (await statusEntries(repo)).length === 0;
}

/**
 * Writes a git bundle of `commit` with its whole history to `file` (copy mode's workspace), under the
 * ref name `ref` (a transient ref made for the bundle and deleted again). Streams to disk: nothing is
 * held in memory. Objects already packed are reused as they are (deltas included); no new delta search
 * and no recompression of loose objects, which for a bundle that is unpacked again at once cost far
 * more CPU time than the bytes they save (measured: 36 s → 2 s for 200 MB of binaries).
 */
export async function createBundle(repo: Repo, file: string, commit: string, ref: string): Promise<void> {
  log('bundle %s as %s into %s', commit, ref, file);
  await repo.git.raw(['update-ref', ref, commit]);
  try {
    // --progress: it prints (see Latency above).
    await repo.git.raw(['-c', 'pack.window=0', '-c', 'pack.compression=0', 'bundle', 'create', '--progress', file, ref]);
  } finally {
    await repo.git.raw(['update-ref', '-d', ref]);
  }
}

/**
 * Fetches the `HEAD` of a bundle made in the container (base..HEAD) into `refs/heads/<branch>`, with
 * object checking on and hooks disabled. The branch must not exist yet.
 * @returns the branch's new head commit.
 * @throws AgentWorkerError (exit {@link ExitCode.collect}) when the bundle is invalid or fails the checks.
 */
export async function fetchBundle(repo: Repo, file: string, branch: string): Promise<string> {
  return fetchBundleInto(repo, file, `refs/heads/${branch}`);
}

/**
 * {@link fetchBundle} into any full ref name (e.g. a transient `refs/agent-worker/incoming/<run id>`, so the
 * commits can be checked before a branch points at them). The ref must not exist yet.
 * @returns the ref's new commit.
 * @throws AgentWorkerError (exit {@link ExitCode.collect}) when the bundle is invalid or fails the checks.
 */
export async function fetchBundleInto(repo: Repo, file: string, ref: string): Promise<string> {
  try {
    // Not --quiet: they print (see Latency above).
    await repo.git.raw(['bundle', 'verify', file]);
    await repo.git.raw(['-c', 'transfer.fsckObjects=true', '-c', 'fetch.fsckObjects=true', 'fetch', '--verbose', '--no-tags', '--no-write-fetch-head', file, `HEAD:${ref}`]);
    return (await repo.git.raw(['rev-parse', '--verify', `${ref}^{commit}`])).trim();
  } catch (error) {
    throw new AgentWorkerError(`The agent's commits could not be fetched from the container's bundle: ${errorMessage(error)}`, ExitCode.collect, `The bundle is kept at ${file} for inspection.`, { cause: error });
  }
}

/** Creates `branch` at `commit` without checking it out. */
export async function createBranchAt(repo: Repo, branch: string, commit: string): Promise<void> {
  await repo.git.raw(['branch', '--no-track', branch, commit]);
}

/** Checks out an existing branch (hooks disabled). */
export async function checkoutBranch(repo: Repo, branch: string): Promise<void> {
  await repo.git.raw(['checkout', branch]);
}

/** The committer identity git would use here (config, else agent-worker's fallback). */
export async function gitIdentity(repo: Repo): Promise<{ name: string; email: string }> {
  const { name, email } = await configuredIdentity(repo);
  return { name: name || FALLBACK_IDENTITY.name, email: email || FALLBACK_IDENTITY.email };
}

/** `user.name` and `user.email` from the user's git config, each '' when unset. */
async function configuredIdentity(repo: Repo): Promise<{ name: string; email: string }> {
  const get = async (key: string): Promise<string> => {
    try {
      return (await repo.git.raw(['config', '--get', key])).trim();
    } catch {
      return '';
    }
  };
  const [name, email] = await Promise.all([get('user.name'), get('user.email')]);
  return { name, email };
}

/**
 * Mount mode: the checkout's work tree is bind-mounted into the container read-write and its `.git` read-only. The
 * branch is created and checked out in the work tree before the agent starts; afterwards agent-worker commits
 * whatever the agent left there (its planted `.git` entries and files holding a credential moved aside first).
 */
import path from 'node:path';
import { stat } from 'node:fs/promises';
import createDebug from 'debug';
import { errorMessage } from '../errors.js';
import { DaemonLostError, type WorkspaceSpec } from '../docker/container.js';
import { abandonBranch, branchExists, commitAll, createBranch, diffChanges, statusEntries, type Repo } from '../git/repo.js';
import { defuseGitEntries, snapshotGitEntries, type GitEntry } from '../git/guard.js';
import { credentialWarning, quarantineSecretFiles } from '../git/secret-scan.js';
import type { ChangeSummary, RunStatus } from '../report/types.js';
import type { KeptWork, Workspace, WorkspaceContext } from './types.js';

// The run's namespace: these lines were the pipeline's before the workspace had a module of its own.
const log = createDebug('agent-worker:run');

/** The mount-mode {@link Workspace}. */
export class MountWorkspace implements Workspace {
  readonly mode = 'mount';
  readonly startingPhase = 'Starting the container';
  readonly removeBeforeKeep = true;
  readonly #run: WorkspaceContext;
  /** The `.git` entries of the work tree before the agent ran, being recorded. */
  #gitEntriesBefore: Promise<Map<string, GitEntry>> | undefined;
  /** The branch created and checked out and the `.git` entries recorded. */
  #branchReady: Promise<void> | undefined;
  #branchCreated = false;

  /** @param run the run's repository, branch, base commit (its HEAD: checking it out changes no `.git` entry) and log. */
  constructor(run: WorkspaceContext) {
    this.#run = run;
  }

  /**
   * Starts recording the work tree's `.git` entries and creating and checking out the branch: the branch only has
   * to be there when the container starts, so it is created while the container is. Resolves at once.
   */
  prepare(): Promise<void> {
    const { repo, branch, base, runLog } = this.#run;
    this.#gitEntriesBefore = snapshotGitEntries(repo.root);
    this.#branchReady = Promise.all([
      this.#gitEntriesBefore,
      createBranch(repo, branch, base).then(() => {
        this.#branchCreated = true;
        runLog.note(`base commit ${base}; created and checked out ${branch}`);
      }),
    ]).then(() => undefined);
    // Awaited by ready(), or by undo() after a failure.
    this.#branchReady.catch(() => undefined);
    return Promise.resolve();
  }

  /** @inheritDoc */
  async ready(): Promise<void> {
    await this.#branchReady;
  }

  /** The work tree read-write, its `.git` (and a linked worktree's common git dir) read-only. */
  async containerSpec(): Promise<WorkspaceSpec> {
    const { repo } = this.#run;
    return { mode: 'mount', workTree: repo.root, gitDir: path.join(repo.root, '.git'), extraReadOnly: await linkedGitDirs(repo) };
  }

  /**
   * Commits the work tree onto the branch and returns its head commit and the changes base..head, already being
   * read. Before that, `.git` entries the agent created or changed are moved aside (nested repositories could make
   * host git run their config) and files holding a credential are quarantined. Submodule changes left uncommitted
   * are warned about.
   */
  async keepWork(status: RunStatus): Promise<KeptWork> {
    const { repo, base, quarantineDir, credentialPatterns, warn } = this.#run;
    // Before any host git command looks at the tree: nested repositories the agent planted could make it run their config.
    const moved = await defuseGitEntries(repo.root, (await this.#gitEntriesBefore) ?? new Map(), quarantineDir);
    if (moved.length > 0) {
      warn(`moved ${moved.length} .git entr${moved.length === 1 ? 'y' : 'ies'} the agent created or changed in the work tree to ${quarantineDir} (nested repositories are not committed): ${moved.join(', ')}`);
    }
    // No file holding a credential given to agent-worker is committed.
    const leaked = await quarantineSecretFiles(repo, credentialPatterns, quarantineDir);
    for (const file of leaked) warn(credentialWarning(file, quarantineDir, 'mount'));
    // Once committed, the report's diff and the tree's status are read while HEAD's id is.
    let afterCommit: { changes: Promise<ChangeSummary>; status: Promise<string[]> } | undefined;
    const headCommit = await commitAll(repo, this.#run.commitMessage(status, leaked.length > 0), () => {
      afterCommit = { changes: diffChanges(repo, base, 'HEAD'), status: statusEntries(repo, ['--ignore-submodules=none']) };
      // Awaited below, or dropped when reading HEAD fails.
      afterCommit.changes.catch(() => undefined);
      afterCommit.status.catch(() => undefined);
    });
    // commitAll calls onCommitted before it returns.
    const { changes, status: treeStatus } = afterCommit!;
    const leftOver = (await treeStatus).map((entry) => entry.slice(3));
    if (leftOver.length > 0) {
      warn(`changes inside ${leftOver.join(', ')} are in the working tree but not on the branch (a submodule's changes must be committed in the submodule)`);
    }
    return { headCommit, changes, credentialLeak: leaked.length > 0 };
  }

  /** Nothing: the branch is checked out already. */
  finish(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Waits for the branch's creation to end (the branch is not switched or deleted under a git command still
   * running), then, if it was created, checks the previous HEAD out again and deletes the branch while it still
   * points at its base commit. Failures are only logged (debug).
   */
  async undo(): Promise<void> {
    const { repo, branch, head, base } = this.#run;
    await this.#branchReady?.catch(() => undefined);
    if (this.#branchCreated) await abandonBranch(repo, branch, head, base).catch((undoError: unknown) => log('abandon branch: %s', errorMessage(undoError)));
  }

  /** Commits what the agent left in the work tree, unless the daemon was lost and the branch is gone. */
  async keepAfterFailure(error: unknown): Promise<void> {
    if (!(await branchExists(this.#run.repo, this.#run.branch)) && error instanceof DaemonLostError) return;
    await this.keepWork('agent_error').catch((keepError: unknown) => this.#run.runLog.note(`keeping the work failed: ${errorMessage(keepError)}`));
  }
}

/**
 * For a linked worktree (or a submodule checkout) whose `.git` is a file, the repository's common git
 * dir, which lives outside the work tree; nothing for a plain checkout.
 */
export async function linkedGitDirs(repo: Repo): Promise<string[]> {
  if ((await stat(path.join(repo.root, '.git'))).isDirectory()) return [];
  const common = path.resolve(repo.root, (await repo.git.raw(['rev-parse', '--git-common-dir'])).trim());
  return [common];
}

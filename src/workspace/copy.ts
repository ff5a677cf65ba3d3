/**
 * Copy mode: the base commit goes into the container as a git bundle and the agent works on its own clone; its
 * commits (and what it left uncommitted, committed in the container) come back as a bundle fetched from the
 * stopped container, checked for credentials, and become the branch. The user's work tree is not touched until
 * the end, when the branch is checked out if the tree is free and clean.
 */
import path from 'node:path';
import { mkdir, stat } from 'node:fs/promises';
import { AgentWorkerError, ExitCode, errorMessage } from '../errors.js';
import { DaemonLostError, type WorkspaceSpec } from '../docker/container.js';
import type { AgentBox } from '../backends/types.js';
import { branchExists, checkoutBranch, createBranchAt, createBundle, fetchBundleInto, gitIdentity, isClean, type Repo } from '../git/repo.js';
import { credentialWarning, scrubCommits, type ScrubResult } from '../git/secret-scan.js';
import type { RunLog } from '../report/run-log.js';
import type { RunStatus } from '../report/types.js';
import { acquireRepoLock } from '../run-lock.js';
import type { KeptWork, Workspace, WorkspaceContext } from './types.js';

/** The copy-mode {@link Workspace}. */
export class CopyWorkspace implements Workspace {
  readonly mode = 'copy';
  readonly startingPhase = 'Starting the container (copying the repository in)';
  readonly removeBeforeKeep = false;
  readonly #run: WorkspaceContext;
  /** The container's workspace, once the bundle is written. */
  #spec: WorkspaceSpec | undefined;

  /** @param run the run's repository, branch, base commit, scratch folder (the bundles) and log. */
  constructor(run: WorkspaceContext) {
    this.#run = run;
  }

  /**
   * Bundles the base commit into the scratch folder under `refs/agent-worker/runs/<run id>` and reads the git
   * identity the container commits with (the user's, else agent-worker's).
   * @throws when git cannot bundle the base commit.
   */
  async prepare(): Promise<void> {
    const { repo, base, branch, runId, runLog, scratch } = this.#run;
    const bundleFile = path.join(scratch, 'repo.bundle');
    const bundleRef = `refs/agent-worker/runs/${runId}`;
    const [, identity] = await Promise.all([createBundle(repo, bundleFile, base, bundleRef), gitIdentity(repo)]);
    runLog.note(`base commit ${base}; bundled for copy-in (${(await stat(bundleFile)).size} bytes)`);
    const commitMessage = this.#run.commitMessage('success', false);
    this.#spec = { mode: 'copy', bundleFile, bundleRef, baseCommit: base, branch, commitMessage, gitName: identity.name, gitEmail: identity.email };
  }

  /** Nothing to wait for: {@link prepare} did it all. */
  ready(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * The bundle, its ref, the branch to clone onto, and the message and identity for what the agent leaves
   * uncommitted.
   * @throws AgentWorkerError (internal) before {@link prepare} resolved.
   */
  containerSpec(): Promise<WorkspaceSpec> {
    if (!this.#spec) return Promise.reject(new AgentWorkerError('The copy workspace was not prepared.', ExitCode.internal));
    return Promise.resolve(this.#spec);
  }

  /**
   * Fetches the agent's commits from the stopped container and creates the branch at them, files holding a
   * credential taken out of them (each warned about) and a credential in a commit's message or author replaced.
   */
  async keepWork(_status: RunStatus, container: AgentBox | undefined): Promise<KeptWork> {
    const { repo, scratch, branch, base, runLog, runId, credentialPatterns, quarantineDir, warn } = this.#run;
    const { head: copied, quarantined, redactedCommits } = await bringBackCopy(repo, container, scratch, branch, base, runLog, { runId, patterns: credentialPatterns, quarantineDir });
    for (const file of quarantined) warn(credentialWarning(file, quarantineDir, 'copy'));
    if (redactedCommits > 0) warn(`the message or author of ${redactedCommits} of the agent's commits held a credential given to agent-worker: it was replaced with [REDACTED]`);
    return { headCommit: copied, credentialLeak: quarantined.length > 0 || redactedCommits > 0 };
  }

  /** Checks the branch out, as mount mode leaves it, when no other run holds the work tree and it is still clean. */
  finish(): Promise<void> {
    const { repo, branch, runLog, stateRoot, runId, base } = this.#run;
    return checkoutIfFree(repo, branch, runLog, stateRoot, runId, base);
  }

  /** Nothing: the repository was not changed before the agent started (the bundle's ref is gone already). */
  undo(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Unless the branch exists already: fetches the agent's work from the container (not from a lost daemon), and
   * when that did not make the branch either, creates it at the base commit.
   */
  async keepAfterFailure(error: unknown, container: AgentBox | undefined): Promise<void> {
    const { repo, branch, base, runLog } = this.#run;
    if (await branchExists(repo, branch)) return;
    // The agent ran: keep whatever can be kept on the branch (nothing can come from a lost daemon).
    if (!(error instanceof DaemonLostError)) {
      await this.keepWork('agent_error', container).catch((keepError: unknown) => runLog.note(`keeping the work failed: ${errorMessage(keepError)}`));
    }
    if (!(await branchExists(repo, branch))) await createBranchAt(repo, branch, base).catch(() => undefined);
  }
}

/**
 * Fetches the container's output folder and the agent's commits (a bundle of base..HEAD) into
 * `refs/agent-worker/incoming/<run id>`, takes every file holding a credential out of them ({@link scrubCommits}),
 * and creates `branch` at the result (the transient ref is deleted then; it stays, named in the error, when the
 * check fails). With no bundle (nothing changed) the branch is made at the base commit.
 * @returns the branch's head commit and what was taken out.
 * @throws AgentWorkerError (exit 10, collect) without a container, when the container did not finish collecting
 *   (no result file), or when the commits could not be checked.
 */
export async function bringBackCopy(
  repo: Repo,
  container: AgentBox | undefined,
  scratch: string,
  branch: string,
  base: string,
  runLog: RunLog,
  scrub: { runId: string; patterns: Buffer[]; quarantineDir: string },
): Promise<ScrubResult> {
  if (!container) throw new AgentWorkerError('No container to collect the work from.', ExitCode.collect);
  const outDir = path.join(scratch, 'out');
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  const files = await container.fetchCopyOutput(outDir);
  runLog.note(`fetched from the container: ${files.join(', ') || 'nothing'}`);
  const bundle = files.find((file) => path.basename(file) === 'work.bundle');
  const result = files.find((file) => path.basename(file) === 'result');
  if (!result) {
    throw new AgentWorkerError("The container did not finish collecting the agent's work (no result file).", ExitCode.collect, 'See agent.stderr.log in the run\'s log folder.');
  }
  if (!bundle) {
    await createBranchAt(repo, branch, base);
    return { head: base, quarantined: [], redactedCommits: 0 };
  }
  const incoming = `refs/agent-worker/incoming/${scrub.runId}`;
  const fetched = await fetchBundleInto(repo, path.join(outDir, bundle), incoming);
  let scrubbed: ScrubResult;
  try {
    scrubbed = await scrubCommits(repo, base, fetched, scrub.patterns, scrub.quarantineDir);
  } catch (error) {
    throw new AgentWorkerError(
      `The agent's commits could not be checked for credentials: ${errorMessage(error)}`,
      ExitCode.collect,
      `They are kept unchecked under ${incoming} in ${repo.root}; inspect them before you branch from it, and delete it with \`git update-ref -d ${incoming}\`.`,
      { cause: error },
    );
  }
  if (scrubbed.head !== fetched) runLog.note(`agent's commits rewritten without credentials: ${fetched} → ${scrubbed.head}`);
  await createBranchAt(repo, branch, scrubbed.head);
  await repo.git.raw(['update-ref', '-d', incoming]);
  return scrubbed;
}

/**
 * Checks the branch out at the end, as mount mode leaves it — only when no other run holds the working tree (its
 * lock, taken for the checkout and released after) and the user's tree is still clean.
 * @param stateRoot agent-worker's state folder, where the checkouts' locks live.
 */
export async function checkoutIfFree(repo: Repo, branch: string, runLog: RunLog, stateRoot: string, runId: string, base: string): Promise<void> {
  const { lock } = await acquireRepoLock(stateRoot, repo.root, { runId, baseCommit: base });
  if (!lock) {
    runLog.note(`another run holds the working tree; ${branch} was created but not checked out`);
    return;
  }
  try {
    if (await isClean(repo)) await checkoutBranch(repo, branch);
    else runLog.note(`working tree changed during the run; ${branch} was created but not checked out`);
  } finally {
    await lock.release();
  }
}

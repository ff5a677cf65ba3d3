/**
 * The workspace of a run: how the repository reaches the agent's container and how the agent's work comes back to
 * the branch. Two modes implement one interface, so the pipeline (src/run.ts) reads the same for both:
 * - `mount` (mount.ts): the checkout's work tree is bind-mounted read-write (its `.git` read-only); the branch is
 *   created and checked out in it, and agent-worker commits whatever the agent left in the tree.
 * - `copy` (copy.ts): the base commit goes into the container as a git bundle; the agent's commits come back as
 *   one, fetched from the stopped container onto the new branch. The user's tree is left alone until the end.
 */
import type { WorkspaceMode } from '../config.js';
import type { WorkspaceSpec } from '../docker/container.js';
import type { AgentBox } from '../backends/types.js';
import type { HeadState, Repo } from '../git/repo.js';
import type { RunLog } from '../report/run-log.js';
import type { ChangeSummary, RunStatus } from '../report/types.js';

/** What a workspace works with, from the run: its repository, branch and base commit, and where it notes and warns. */
export interface WorkspaceContext {
  repo: Repo;
  /** The branch the agent's work goes on; the workspace creates it. */
  branch: string;
  /** Full id of the commit the branch starts from. */
  base: string;
  /** The checkout's HEAD when the run began (mount mode goes back to it when the run is abandoned). */
  head: HeadState;
  runId: string;
  /** The run's log: what the workspace did is noted there. */
  runLog: RunLog;
  /** The run's private temporary folder, removed when the run ends (copy mode: the bundles going in and out). */
  scratch: string;
  /** agent-worker's state folder, where the checkouts' locks live (src/run-lock.ts). */
  stateRoot: string;
  /** Byte patterns of the credentials no file on the branch may hold (secretPatterns of src/git/secret-scan.ts). */
  credentialPatterns: Buffer[];
  /** Where files kept off the branch because they hold a credential (or planted `.git` entries) are moved. */
  quarantineDir: string;
  /**
   * The full commit message for the agent's work, given the run's status and whether files holding a credential
   * were kept off the branch.
   */
  commitMessage: (status: RunStatus, credentialLeak: boolean) => string;
  /** Records a warning: in the report's `warnings`, the run log and on the user's stderr. */
  warn: (text: string) => void;
}

/** The agent's work once it is on the branch ({@link Workspace.keepWork}). */
export interface KeptWork {
  /** Full id of the branch's head commit (the base commit when nothing changed). */
  headCommit: string;
  /** The changes base..head when already being read for the report (mount mode); undefined: the report reads them. */
  changes?: Promise<ChangeSummary>;
  /** Whether files (or, copy mode, commit messages or authors) holding a credential given to agent-worker were kept off the branch. */
  credentialLeak: boolean;
}

/**
 * One run's workspace, used in this order: {@link prepare} before the container is created, {@link containerSpec}
 * while it is, {@link ready} before it starts; after the agent, {@link keepWork} (the container removed at the
 * same time when {@link removeBeforeKeep}, else after it) and {@link finish}. When the run fails, {@link undo}
 * (the agent never started) or {@link keepAfterFailure} (it did).
 */
export interface Workspace {
  readonly mode: WorkspaceMode;
  /** The progress phase shown while the container is created and started. */
  readonly startingPhase: string;
  /**
   * Starts what must be ready before the container starts. Mount: starts recording the work tree's `.git` entries
   * and creating and checking out the branch, and resolves at once ({@link ready} waits for them). Copy: bundles
   * the base commit, and resolves once the bundle is written.
   * @throws (copy) when git cannot bundle the base commit.
   */
  prepare(): Promise<void>;
  /**
   * Resolves once what {@link prepare} started is done (mount: the branch is checked out and the `.git` entries
   * recorded).
   * @throws what it failed with (mount: git's error creating the branch).
   */
  ready(): Promise<void>;
  /** How the container gets the repository (src/docker/container.ts). Called after {@link prepare} resolved. */
  containerSpec(): Promise<WorkspaceSpec>;
  /**
   * Whether the container can be removed while the work is kept: mount mode needs nothing more from it; copy mode
   * fetches the work from it, so it is removed after.
   */
  readonly removeBeforeKeep: boolean;
  /**
   * Puts the agent's work on the branch: mount mode commits the work tree (planted `.git` entries moved aside
   * first), copy mode fetches the agent's commits from the stopped container. Files holding a credential given to
   * agent-worker are kept off the branch, each one warned about.
   * @param status how the run ended, for the commit message (mount mode).
   * @param container the agent's stopped container (copy mode fetches the work from it).
   * @throws AgentWorkerError (exit 10, collect) when the work cannot be brought back or checked.
   */
  keepWork(status: RunStatus, container: AgentBox | undefined): Promise<KeptWork>;
  /** After the work is kept and the container removed: copy mode checks the branch out when the work tree is free and clean. */
  finish(): Promise<void>;
  /**
   * A failure before the agent started: leaves the repository as it was (mount: back on the previous HEAD, the
   * branch deleted while it still points at its base). Never throws.
   */
  undo(): Promise<void>;
  /**
   * A failure after the agent started: keeps what can be kept on the branch (nothing comes from a lost daemon in
   * copy mode; there the branch is made at the base commit when nothing else could be). Failures to keep the work
   * are noted in the run log, not thrown.
   * @param error what ended the run.
   * @param container the agent's container, when it was created.
   * @throws only when git cannot tell whether the branch exists.
   */
  keepAfterFailure(error: unknown, container: AgentBox | undefined): Promise<void>;
}

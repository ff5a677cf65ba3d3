import type { TokenUsage } from '../../agents/types.js';

/** How a run ended. */
export type RunStatus =
  | 'success'
  | 'agent_error'
  /** The agent failed and the model API's last answer refused the credential (HTTP 401/403). */
  | 'auth_failed'
  | 'timed_out'
  | 'interrupted'
  | 'out_of_memory'
  /** The agent stopped at --max-turns (Claude Code result subtype `error_max_turns`). */
  | 'max_turns'
  /** The agent stopped at --max-budget-usd (Claude Code result subtype `error_max_budget_usd`). */
  | 'budget_exceeded'
  /** The agent succeeded but the --verify command exited non-zero. */
  | 'verify_failed'
  /**
   * The agent's work held a credential given to agent-worker: those files were kept off the branch (moved to the
   * run's `quarantine/` folder, named in `warnings`), so the work is incomplete. Replaces `success` and
   * `verify_failed` only.
   */
  | 'credential_leak';

/** The --verify command's outcome, run in the agent's container (same firewall) after the agent ended. */
export interface VerifyResult {
  /** The command as given (run with `bash -c` in /workspace, as the agent's user). */
  command: string;
  /** Its exit status; 128 + signal number when it was killed; null when it did not run to the end. */
  exitCode: number | null;
  /** Its wall time, in milliseconds. */
  durationMs: number;
  /** The last lines of its combined stdout and stderr (at most 20 lines; the whole output is `verify.log` in the log folder). */
  outputTail: string[];
}

/** Status of one changed file, from `git diff --name-status` letters A/M/D/R (C, T map to modified). */
export type FileChangeStatus = 'added' | 'modified' | 'deleted' | 'renamed';

/** One changed file between the base commit and the branch head. Binary files have added = removed = 0 and binary = true. */
export interface FileChange {
  path: string;
  /** For renames, the path at the base commit. */
  oldPath?: string;
  status: FileChangeStatus;
  /** Lines added, from `git diff --numstat`. */
  added: number;
  /** Lines removed, from `git diff --numstat`. */
  removed: number;
  binary: boolean;
}

/** Totals over `files`. */
export interface ChangeSummary {
  filesChanged: number;
  linesAdded: number;
  linesRemoved: number;
  files: FileChange[];
}

/**
 * The run report. This is the `--json` document; its shape is documented in the README.
 * Fields may be added; none may be renamed.
 */
export interface RunReport {
  runId: string;
  status: RunStatus;
  branch: string;
  baseCommit: string;
  /** Branch head after the agent's work was committed. */
  headCommit: string;
  /** Wall time of the whole run, in milliseconds. */
  durationMs: number;
  agent: {
    type: string;
    version: string | null;
    model: string | null;
    /** Exit code of the agent's process; null when it was killed (timeout, interrupt). */
    exitCode: number | null;
    /**
     * Wall time of the agent's process in the container, from its start to its exit, in milliseconds;
     * `durationMs − agent.wallMs` is agent-worker's own time. Null when unknown (it never started).
     */
    wallMs: number | null;
    sessionId: string | null;
    turns: number;
    resultText: string | null;
    /**
     * The agent's own reason for failing, on one line (at most 200 characters): its error result, else the last line
     * it wrote to stderr. Null when it did not fail by its own account (success, a timeout, an interrupt). Reports of
     * earlier versions lack it.
     */
    error?: string | null;
  };
  /**
   * Tokens of every model call, with one meaning for every agent (agents/types.ts TokenUsage): `input` excludes cache
   * reads, `output` includes `reasoning`. Null when the agent does not report them (`--agent-type exec`). `reasoning`
   * is missing from reports of earlier versions.
   */
  tokens: TokenUsage | null;
  /** In US dollars; null when neither the agent nor a `--prices` table gave one. */
  costUsd: number | null;
  /**
   * Where `costUsd` comes from: `agent` (the agent computed it: Claude Code, OpenCode), `prices` (the tokens times the
   * `--prices` table's prices for the model), null (no cost). Missing from reports of earlier versions.
   */
  costSource?: 'agent' | 'prices' | null;
  changes: ChangeSummary;
  /**
   * The image the agent ran in: its tag, whether this run built it (false: reused from cache), the time
   * spent deciding and building (ms), and the project Dockerfile it was built from (null: the tool's image).
   */
  image: { tag: string; built: boolean; buildMs: number; dockerfile: string | null };
  /**
   * Things the user must know about the result, e.g. nested repositories the agent planted that were
   * moved aside, files holding a credential kept off the branch, or changes inside submodules that are not on the
   * branch. Empty when there are none.
   */
  warnings: string[];
  /**
   * What the egress proxy let through and refused during the run (the whole audit is `egress.jsonl` in the log
   * folder). Reports of earlier versions lack it.
   */
  egress?: EgressSummary;
  /** The --verify command's outcome; null when no --verify was given or it could not run (the agent was stopped). */
  verify: VerifyResult | null;
  /**
   * What the agent's container used, read from its cgroup through the Docker stats API while it ran and at its end.
   * Each value is null where the engine cannot say. Missing from reports of earlier versions.
   */
  resources?: ContainerResources;
  /** Folder holding this run's logs and report.json. */
  logDir: string;
}

/** Counts of the run's egress attempts through the proxy: model API requests and tunnels to allowed hosts, and refusals. */
export interface EgressSummary {
  allowed: number;
  refused: number;
  /** Host names refused (at most 20, each once, first seen first). */
  refusedHosts: string[];
}

/** What a container used: its cgroup's figures, read through the Docker Engine API's `GET /containers/{id}/stats`. */
export interface ContainerResources {
  /** The most memory it held at once (cgroup v1 `max_usage`, else the largest `usage` sampled, page cache excluded), in bytes. */
  peakMemoryBytes: number | null;
  /** CPU time it used (`cpu_stats.cpu_usage.total_usage`), in seconds. */
  cpuSeconds: number | null;
}

/**
 * Typed errors. Every failure the user can act on is an {@link AgentWorkerError} carrying the
 * process exit code and a hint that names the fix (a flag, a command). Only `src/cli.ts` turns
 * them into output and an exit status.
 */

/** Process exit codes. Documented in the README ("Exit codes"); never renumber one. */
export const ExitCode = {
  success: 0,
  /** The agent ran and reported an error or exited non-zero. */
  agentError: 1,
  /** Invalid command-line option, environment variable or .env value. */
  usage: 2,
  /** The project is not a git work tree, or it has no commit. */
  notARepo: 3,
  /** The working tree has uncommitted changes or untracked files. */
  dirtyTree: 4,
  /** The branch name is not a valid ref, or the branch exists already. */
  badBranch: 5,
  /** The Docker daemon did not answer, or cannot see the project. */
  docker: 6,
  /** Neither an API key nor an OAuth token was given. */
  credentials: 7,
  /** Building the image failed. */
  imageBuild: 8,
  /** The container could not be set up (firewall, start) — the agent never ran. */
  container: 9,
  /** Committing the agent's work or reading the changes failed. */
  collect: 10,
  /** The agent's container ran out of memory (--memory) and was killed; partial work committed. */
  outOfMemory: 11,
  /** The agent finished, but the --verify command failed (non-zero exit); the work is on the branch. */
  verifyFailed: 12,
  /** The agent stopped at --max-turns before finishing; partial work committed. */
  maxTurns: 13,
  /** The agent stopped at --max-budget-usd before finishing; partial work committed. */
  budgetExceeded: 14,
  /**
   * The agent's work held a credential given to agent-worker (API key, OAuth token): those files were moved to the
   * run's quarantine folder instead of the branch, so the work there is incomplete.
   */
  credentialLeak: 15,
  /** `batch`: at least one task did not succeed (each task's own status is in the batch's report). */
  batchFailed: 16,
  /** The run reached --timeout and the container was killed. */
  timedOut: 124,
  /** Unexpected internal error. */
  internal: 70,
  /** Interrupted by SIGHUP / SIGINT / SIGTERM: 128 + signal number. */
  sighup: 129,
  sigint: 130,
  sigterm: 143,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** 128 + signal number for SIGHUP, SIGINT, SIGTERM (anything else counts as SIGINT). */
export function interruptExitCode(signalName: unknown): (typeof ExitCode)['sighup' | 'sigint' | 'sigterm'] {
  if (signalName === 'SIGHUP') return ExitCode.sighup;
  if (signalName === 'SIGTERM') return ExitCode.sigterm;
  return ExitCode.sigint;
}

/** Base class: a failure with an exit code and a hint naming the fix. */
export class AgentWorkerError extends Error {
  override name = 'AgentWorkerError';
  /**
   * @param message what went wrong, one sentence.
   * @param exitCode the process exit code ({@link ExitCode}).
   * @param hint how to fix it; names the flag or command.
   * @param options.cause the underlying error, kept for `--debug`.
   */
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** One or more invalid configuration values; each problem names its flag. */
export class ConfigError extends AgentWorkerError {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(problems.join('\n'), ExitCode.usage, 'Run `agent-worker --help` for the accepted values.');
  }
}

/** A preflight check failed before anything was created. */
export class PreflightError extends AgentWorkerError {
  override name = 'PreflightError';
}

/** The Docker daemon failed (unreachable, build, container). */
export class DockerError extends AgentWorkerError {
  override name = 'DockerError';
}

/** Building the image failed; `logTail` holds the last lines of the build output. */
export class ImageBuildError extends AgentWorkerError {
  override name = 'ImageBuildError';
  constructor(
    message: string,
    readonly logTail: string[],
    options?: { cause?: unknown },
  ) {
    super(message, ExitCode.imageBuild, buildHint(logTail), options);
  }
}

/** The hint for a failed build: names --ca-cert when the log shows a TLS trust failure. */
function buildHint(logTail: string[]): string {
  const text = logTail.join('\n');
  if (/SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|certificate verify failed|CERT_/.test(text)) {
    return 'The build could not verify a TLS certificate: behind a TLS-intercepting proxy, pass its CA bundle with --ca-cert <file> (e.g. /etc/ssl/certs/ca-certificates.crt).';
  }
  return 'Fix the error above; `--debug` shows the whole build log, `--force-rebuild` rebuilds without the layer cache.';
}

/** Returns a readable message for any thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The pipeline of one run, top to bottom:
 * preflight → branch → image → container → collect → report.
 *
 * Nothing here prints: progress goes through {@link Progress}, the result is returned, and
 * failures are thrown as typed errors for `cli.ts` to show.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { stat } from 'node:fs/promises';
import createDebug from 'debug';
import type { RunConfig } from './config.js';
import { AgentWorkerError, DockerError, ExitCode, PreflightError, errorMessage } from './errors.js';
import { getAgentPlugin } from '../agents/index.js';
import type { AgentEvent, AgentOutcome, AgentPlugin } from '../agents/types.js';
import { abandonBranch, assertClean, assertNewBranch, commitAll, createBranch, diffChanges, isClean, openRepo, readHead, type Repo } from './git/repo.js';
import { connectDocker, type DockerConnection } from './docker/client.js';
import { ensureImage } from './docker/image.js';
import { AgentContainer, FIREWALL_EXIT_CODE, WORKSPACE_DIR, type ContainerExit } from './docker/container.js';
import { LineSplitter } from './stream/lines.js';
import { RunLog, runsRoot } from './report/run-log.js';
import type { RunReport, RunStatus } from './report/types.js';
import type { Progress } from './ui/progress.js';
import { PACKAGE_ROOT, VERSION } from './version.js';

const log = createDebug('agent-worker:run');

/** The base image the Dockerfile builds on, unless AGENT_WORKER_BASE_IMAGE names another. */
export const DEFAULT_BASE_IMAGE = 'debian:bookworm-slim';
/** Default model API host when no --base-url is given. */
const DEFAULT_API_HOST = 'api.anthropic.com';
/** How many lines of the container's stderr are kept for error messages. */
const STDERR_TAIL_LINES = 20;

/** Surroundings of a run, injected so the pipeline is testable. */
export interface RunContext {
  progress: Progress;
  /** Aborted (with the signal's name as reason, e.g. "SIGINT") when the user interrupts. */
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  /** The agent runs as this uid:gid (the invoking user's). */
  uid: number;
  gid: number;
}

/** A finished run: its report and the exit code it maps to. */
export interface RunResult {
  report: RunReport;
  exitCode: number;
}

/** Thrown when the user interrupts before the agent started; exit code 128 + signal number. */
export class InterruptedError extends AgentWorkerError {
  override name = 'InterruptedError';
  constructor(signalName: string) {
    super(`Interrupted by ${signalName}; nothing was changed.`, interruptExitCode(signalName));
  }
}

/** 128 + signal number for SIGHUP, SIGINT, SIGTERM. */
export function interruptExitCode(signalName: unknown): (typeof ExitCode)['sighup' | 'sigint' | 'sigterm'] {
  if (signalName === 'SIGHUP') return ExitCode.sighup;
  if (signalName === 'SIGTERM') return ExitCode.sigterm;
  return ExitCode.sigint;
}

/** The text appended to the agent's system prompt. */
export function systemPromptAddition(branch: string): string {
  return [
    'You are running unattended inside agent-worker, in a container with the repository at /workspace.',
    `agent-worker commits all your changes to the branch "${branch}" when you finish, so do not run`,
    'git commit, git add, git checkout or other commands that write to .git: .git is read-only here.',
    'Network access is limited to the model API and explicitly allowed hosts.',
  ].join(' ');
}

/** `agent-task-YYYYMMDD-HHMMSS` in UTC. */
export function defaultBranchName(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `agent-task-${stamp}`;
}

/** A new run id: `YYYYMMDD-HHMMSS-<6 hex>` (UTC), unique per run, safe in file and container names. */
export function newRunId(now: Date): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}-${randomBytes(3).toString('hex')}`;
}

/**
 * Checks everything that can be checked before anything is created: repository, clean tree,
 * branch name, agent, credentials, Docker daemon.
 * @throws PreflightError / DockerError with their own exit codes.
 */
export async function preflight(
  config: RunConfig,
  context: RunContext,
): Promise<{ repo: Repo; branch: string; plugin: AgentPlugin; docker: DockerConnection }> {
  context.progress.phase('Checking the repository');
  const repo = await openRepo(config.project);
  await assertClean(repo);
  const branch = config.branch ?? defaultBranchName(new Date());
  await assertNewBranch(repo, branch);
  const plugin = getAgentPlugin(config.agentType);
  if (!plugin) throw new PreflightError(`Unknown agent ${config.agentType}.`, ExitCode.usage, 'Use --agent-type claude.');
  if (!config.apiKey && !config.oauthToken) {
    throw new PreflightError(
      'No credentials: neither an API key nor an OAuth token was given.',
      ExitCode.credentials,
      'Set ANTHROPIC_API_KEY (or pass --api-key), or for a Claude subscription set CLAUDE_CODE_OAUTH_TOKEN (--oauth-token; create one with `claude setup-token`). A .env file in the project works too.',
    );
  }
  throwIfAborted(context.signal);
  context.progress.phase('Connecting to Docker');
  const docker = await connectDocker(config.dockerHost);
  if (!docker.info.seesHostPaths) {
    throw new DockerError(
      `The Docker daemon at ${docker.info.endpoint} (${docker.info.name}) runs on another machine and cannot see ${repo.root}.`,
      ExitCode.docker,
      'Copying the workspace to a remote daemon is not supported yet; run against a local daemon (drop --remote-docker / DOCKER_HOST).',
    );
  }
  context.progress.succeed(`Docker ${docker.info.version} (${docker.info.platform}) at ${docker.info.endpoint}`);
  return { repo, branch, plugin, docker };
}

/**
 * Runs one task end to end and returns its report. The container is removed and the agent's work
 * committed in every case once the branch exists; a failure before the agent starts puts the
 * repository back as it was.
 * @throws AgentWorkerError subclasses for failures before the agent ran (preflight, image, container setup).
 */
export async function runTask(config: RunConfig, context: RunContext): Promise<RunResult> {
  const started = Date.now();
  const { repo, branch, plugin, docker } = await preflight(config, context);
  throwIfAborted(context.signal);

  const runId = newRunId(new Date());
  const credentials = { apiKey: config.apiKey, oauthToken: config.oauthToken, baseUrl: config.baseUrl };
  const agentEnv = plugin.env(credentials);
  const runLog = await RunLog.open(runsRoot(context.env), runId, Object.values(agentEnv.secret));
  runLog.note(`run ${runId}: agent-worker ${VERSION}, project ${repo.root}, branch ${branch}, daemon ${docker.info.endpoint}`);

  const head = await readHead(repo);
  await createBranch(repo, branch, head.commit);
  runLog.note(`base commit ${head.commit}; created and checked out ${branch}`);

  let container: AgentContainer | undefined;
  let agentStarted = false;
  try {
    context.progress.phase('Building the image');
    const image = await ensureImage(
      docker.docker,
      {
        contextDir: path.join(PACKAGE_ROOT, 'container'),
        buildArgs: { BASE_IMAGE: context.env.AGENT_WORKER_BASE_IMAGE || DEFAULT_BASE_IMAGE, ...plugin.buildArgs },
        caPem: config.caCert?.pem ?? '',
        toolVersion: VERSION,
      },
      { force: config.forceRebuild, signal: context.signal, onProgress: (line) => context.progress.detail(line) },
    );
    runLog.note(`image ${image.tag} ${image.built ? 'built' : 'reused'} in ${image.durationMs} ms`);
    context.progress.succeed(`Image ${image.tag} ${image.built ? 'built' : 'cached'}`);
    throwIfAborted(context.signal);

    context.progress.phase('Starting the container');
    const apiHost = config.baseUrl ? new URL(config.baseUrl).hostname : DEFAULT_API_HOST;
    const plainEnv: Record<string, string> = { ...agentEnv.plain };
    if (config.caCert) plainEnv.NODE_EXTRA_CA_CERTS = '/etc/ssl/certs/ca-certificates.crt';
    if (config.debug) plainEnv.AW_DEBUG = '1';
    container = await AgentContainer.create(docker.docker, {
      image: image.tag,
      runId,
      toolVersion: VERSION,
      workTree: repo.root,
      gitDir: await gitDirOf(repo),
      uid: context.uid,
      gid: context.gid,
      command: plugin.argv({ model: config.model, maxTurns: config.maxTurns, appendSystemPrompt: systemPromptAddition(branch) }),
      env: plainEnv,
      secrets: agentEnv.secret,
      task: config.task,
      allowHosts: [...new Set([apiHost.replace(/^\[|\]$/g, ''), ...config.allowHosts])],
      timezone: config.timezone,
    });
    runLog.note(`container ${container.shortId} created`);
    throwIfAborted(context.signal);

    context.progress.phase('Agent running');
    agentStarted = true;
    const { exit, outcome, stderrTail } = await runAgent(container, plugin, runLog, config, context);
    if (exit.reason === 'exited' && exit.exitCode === FIREWALL_EXIT_CODE && stderrTail.some((line) => line.includes('firewall'))) {
      agentStarted = false;
      throw new DockerError(
        `The container's firewall could not be set up, so the agent was not started:\n${stderrTail.join('\n')}`,
        ExitCode.container,
        'Check that every --allow-host and the --base-url host resolve from the Docker host; run with --debug for details.',
      );
    }
    await container.remove();
    context.progress.succeed(`Agent ${describeExit(exit)}`);

    context.progress.phase('Collecting changes');
    const status = runStatus(exit, outcome);
    const report = await collect({
      ...{ repo, runId, branch, base: head.commit, status, exit, outcome, config, started, plugin },
      image: { tag: image.tag, built: image.built, buildMs: image.durationMs },
      logDir: runLog.dir,
    });
    runLog.note(`status ${status}; head ${report.headCommit}; ${report.changes.filesChanged} file(s) changed`);
    await runLog.writeReport(report);
    context.progress.succeed(`Changes committed to ${branch}`);
    return { report, exitCode: exitCodeFor(status, context.signal) };
  } catch (error) {
    context.progress.fail();
    runLog.note(`failed: ${errorMessage(error)}`);
    if (container) await container.remove().catch((removeError: unknown) => log('remove: %s', errorMessage(removeError)));
    if (!agentStarted) {
      await abandonBranch(repo, branch, head).catch((undoError: unknown) => log('abandon branch: %s', errorMessage(undoError)));
    } else {
      // The agent ran: keep whatever it did on the branch.
      await commitAll(repo, commitMessage(config.task, runId, 'agent_error')).catch(() => undefined);
    }
    if (context.signal.aborted) throw new InterruptedError(String(context.signal.reason));
    throw error;
  } finally {
    await runLog.close();
  }
}

/** Runs the container and reads its output into the parser and the run log as it arrives. */
async function runAgent(
  container: AgentContainer,
  plugin: AgentPlugin,
  runLog: RunLog,
  config: RunConfig,
  context: RunContext,
): Promise<{ exit: ContainerExit; outcome: AgentOutcome; stderrTail: string[] }> {
  const parser = plugin.createParser();
  const live = { turn: 0, tokens: 0, tool: '', costUsd: undefined as number | undefined };
  const show = (): void => {
    const cost = live.costUsd === undefined ? '' : ` · $${live.costUsd.toFixed(4)}`;
    context.progress.detail(`turn ${live.turn}${live.tool ? ` · ${live.tool}` : ''} · ${live.tokens.toLocaleString('en-US')} tokens${cost}`);
  };
  const onEvent = (event: AgentEvent): void => {
    if (event.kind === 'turn') {
      live.turn = event.turn;
      live.tokens = event.tokens.total;
      if (event.costUsd !== undefined) live.costUsd = event.costUsd;
    } else if (event.kind === 'tool') {
      live.tool = event.summary;
    } else if (event.kind === 'init') {
      log('agent init: %o', event);
    } else {
      return;
    }
    show();
  };
  let waitingForDrain = false;
  const splitter = new LineSplitter((line, truncated) => {
    const flushed = runLog.agentLine(line);
    if (!truncated) for (const event of parser.push(line)) onEvent(event);
    if (!flushed && !waitingForDrain) {
      waitingForDrain = true;
      pendingFlow?.pause();
      void runLog.waitDrain().then(() => {
        waitingForDrain = false;
        pendingFlow?.resume();
      });
    }
  });
  let pendingFlow: { pause(): void; resume(): void } | undefined;
  const stderrLines = new LineSplitter((line) => {
    stderrTail.push(line);
    if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
  }, 64 * 1024);
  const stderrTail: string[] = [];

  const exit = await container.run({
    timeoutMs: config.timeoutSeconds * 1000,
    signal: context.signal,
    sinks: {
      stdout: (chunk, flow) => {
        pendingFlow = flow;
        splitter.push(chunk);
      },
      stderr: (chunk) => {
        runLog.stderr(chunk.toString('utf8'));
        stderrLines.push(chunk);
      },
    },
  });
  splitter.end();
  stderrLines.end();
  return { exit, outcome: parser.outcome(), stderrTail };
}

/** Commits the agent's work and reads the changes into the report. */
async function collect(input: {
  repo: Repo;
  runId: string;
  branch: string;
  base: string;
  status: RunStatus;
  exit: ContainerExit;
  outcome: AgentOutcome;
  config: RunConfig;
  started: number;
  logDir: string;
  plugin: AgentPlugin;
  image: RunReport['image'];
}): Promise<RunReport> {
  const { repo, outcome } = input;
  const headCommit = await commitAll(repo, commitMessage(input.config.task, input.runId, input.status));
  const changes = await diffChanges(repo, input.base, headCommit);
  if (!(await isClean(repo))) log('work tree not clean after commit (submodule or ignored-file edge case)');
  return {
    runId: input.runId,
    status: input.status,
    branch: input.branch,
    baseCommit: input.base,
    headCommit,
    durationMs: Date.now() - input.started,
    agent: {
      type: input.plugin.name,
      version: outcome.version ?? null,
      model: outcome.model ?? input.config.model ?? null,
      exitCode: input.exit.exitCode,
      sessionId: outcome.sessionId ?? null,
      turns: outcome.turns,
      resultText: outcome.resultText ?? null,
    },
    tokens: outcome.tokens,
    costUsd: outcome.costUsd ?? null,
    changes,
    image: input.image,
    logDir: input.logDir,
  };
}

/** The commit message: the task's first line (cut at 72 characters), then the run's facts. */
export function commitMessage(task: string, runId: string, status: RunStatus): string {
  const firstLine = task.trim().split('\n', 1)[0]!.trim();
  const subject = firstLine.length > 72 ? `${firstLine.slice(0, 71)}…` : firstLine;
  return `${subject}\n\nCommitted by agent-worker for run ${runId} (status: ${status}).\n`;
}

function runStatus(exit: ContainerExit, outcome: AgentOutcome): RunStatus {
  if (exit.reason === 'timed_out') return 'timed_out';
  if (exit.reason === 'interrupted') return 'interrupted';
  return exit.exitCode === 0 && !outcome.isError ? 'success' : 'agent_error';
}

function exitCodeFor(status: RunStatus, signal: AbortSignal): number {
  switch (status) {
    case 'success':
      return ExitCode.success;
    case 'agent_error':
      return ExitCode.agentError;
    case 'timed_out':
      return ExitCode.timedOut;
    case 'interrupted':
      return interruptExitCode(signal.reason);
  }
}

function describeExit(exit: ContainerExit): string {
  if (exit.reason === 'timed_out') return 'timed out';
  if (exit.reason === 'interrupted') return 'interrupted';
  return `exited with code ${exit.exitCode}${exit.oomKilled ? ' (out of memory)' : ''}`;
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new InterruptedError(String(signal.reason));
}

/** The repository's `.git` path on the host (a folder, or a file for worktrees). */
async function gitDirOf(repo: Repo): Promise<string> {
  const gitPath = path.join(repo.root, '.git');
  await stat(gitPath);
  return gitPath;
}

export { WORKSPACE_DIR };

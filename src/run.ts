/**
 * The pipeline of one run, top to bottom:
 * preflight → workspace → image → container → agent → keep the work → report.
 * What differs between the mount and copy workspaces lives in src/workspace/.
 *
 * Nothing here prints: progress goes through {@link Progress}, the result is returned, and
 * failures are thrown as typed errors for `cli.ts` to show.
 */
import { randomBytes } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import createDebug from 'debug';
import type { PriceTable, RunConfig, WorkspaceMode } from './config.js';
import { AgentWorkerError, DockerError, ExitCode, ImageBuildError, PreflightError, errorMessage, interruptExitCode } from './errors.js';
import { getAgentPlugin } from '../agents/index.js';
import type { AgentEvent, AgentLaunchOptions, AgentOutcome, AgentPlugin } from '../agents/types.js';
import { assertClean, assertNewBranch, diffChanges, openRepo, type HeadState, type Repo } from './git/repo.js';
import type { DockerConnection } from './docker/client.js';
import { Runner } from './runner.js';
import { PROJECT_BASE_ARG, PROJECT_IMAGE_REPOSITORY, type EnsuredImage, type ImageSpec } from './docker/image.js';
import { EgressPath, EgressProxyLostError, PROXY_ALIAS, PROXY_PORT, type EgressSpec } from './docker/egress.js';
import { hostAllowed, UNRESOLVED, type UpstreamCheck } from './proxy/egress-proxy.js';
import { EGRESS_LOG, EgressAudit } from './report/egress-audit.js';
import { agentProcessMark, API_UNREACHABLE_EXIT_CODE, DaemonLostError, FIREWALL_EXIT_CODE, removeTimeoutMs, type ContainerExit } from './docker/container.js';
import { ByteLineSplitter, LineSplitter } from './stream/lines.js';
import type { ResourceWatch } from './docker/stats.js';
import type { AgentBox, Backend, EgressBox } from './backends/types.js';
import { LocalBackend } from './backends/local.js';
import { secretPatterns } from './git/secret-scan.js';
import { RunLog, runsRoot } from './report/run-log.js';
import { acquireRepoLock, lockHolder, type RepoLock, type RepoLockInfo } from './run-lock.js';
import type { ChangeSummary, ContainerResources, EgressSummary, RunReport, RunStatus, VerifyResult } from './report/types.js';
import type { Progress } from './ui/progress.js';
import { createWorkspace, type Workspace } from './workspace/index.js';
import { PACKAGE_ROOT, VERSION } from './version.js';

const log = createDebug('agent-worker:run');

/** The base image the Dockerfile builds on, unless AGENT_WORKER_BASE_IMAGE names another. */
export const DEFAULT_BASE_IMAGE = 'debian:bookworm-slim';
/** How long the agent may take to exit after its final result before it is stopped, in ms. */
export const AFTER_RESULT_GRACE_MS = 30_000;
/** How long removing the container may take once the daemon was lost mid-run, in ms (it is most likely gone with it). */
const LOST_DAEMON_REMOVE_MS = 10_000;
/** How long the agent's entrypoint waits for the egress proxy's name to resolve (its container starting), in seconds. */
const PROXY_WAIT_SECONDS = 10;
/** How many lines of the container's stderr are kept for error messages. */
const STDERR_TAIL_LINES = 60;

/** Surroundings of a run, injected so the pipeline is testable. */
export interface RunContext {
  progress: Progress;
  /** Aborted (with the signal's name as reason, e.g. "SIGINT") when the user interrupts. */
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  /**
   * Messages for the user on stderr: `info` (e.g. which Docker daemon is used; hidden by --quiet) and
   * `warning` (always shown).
   */
  notice: (text: string, kind?: 'info' | 'warning') => void;
  /** The agent runs as this uid:gid (the invoking user's). */
  uid: number;
  gid: number;
  /** When the run began, in ms since the epoch (the CLI: its process start); default: when runTask is called. */
  startedAt?: number;
  /**
   * Called once the agent's container has started: work the caller needs only after the run (e.g. loading
   * the report's modules) is done then, while the tool waits, instead of before the agent starts or after it ends.
   */
  whileAgentRuns?: () => void;
  /**
   * The process's runner (daemon connections, images, the leftover sweep, shared between runs); default: one made
   * for this run.
   */
  runner?: Runner;
  /** Called whenever the agent's live figures change (a turn ended, a tool was called), after `progress.detail`. */
  onAgentProgress?: (live: AgentLive) => void;
}

/** The agent's live figures while it runs, from its stream. */
export interface AgentLive {
  turn: number;
  /** Tokens so far, all kinds. */
  tokens: number;
  /** The last tool call, on one line ('' before the first). */
  tool: string;
  /** Cost so far in US dollars, when the agent reports it. */
  costUsd: number | undefined;
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

/** The text appended to the agent's system prompt. */
export function systemPromptAddition(branch: string, workspace: WorkspaceMode = 'mount'): string {
  const git =
    workspace === 'mount'
      ? [
          `agent-worker commits all your changes to the branch "${branch}" when you finish, so do not run`,
          'git commit, git add, git checkout or other commands that write to .git: .git is read-only here.',
        ]
      : [
          `You are on the branch "${branch}"; you may commit your work there. agent-worker commits whatever`,
          'is left uncommitted when you finish and brings the branch back to the user.',
        ];
  return [
    'You are running unattended inside agent-worker, in a container with the repository at /workspace.',
    ...git,
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

/** What preflight established. */
export interface Preflight {
  repo: Repo;
  branch: string;
  plugin: AgentPlugin;
  docker: DockerConnection;
  workspace: WorkspaceMode;
  runId: string;
  /** Mount mode: this run's hold on the checkout's working tree, to be released when the run ends. */
  lock?: RepoLock;
  /** Another live run holding the checkout, if any (this run then copies the workspace). */
  busy?: RepoLockInfo;
  /** The runner the run borrows its daemon connection, image and sweep from. */
  runner: Runner;
  /** Where the run's egress path and agent box are made. */
  backend: Backend;
}

/**
 * Checks everything that can be checked before anything is created: repository, clean tree,
 * branch name, agent, credentials, Docker daemon and the workspace mode it allows. Unless the run copies
 * the workspace, the checkout's lock is taken before its tree is checked, so two runs started at once
 * cannot both use it; a lock already held makes this run copy the workspace instead.
 * @throws PreflightError / DockerError with their own exit codes (the lock is released then).
 */
export async function preflight(config: RunConfig, context: RunContext): Promise<Preflight> {
  context.progress.phase('Checking the repository');
  // The daemon connection is made while git checks the repository; its failure is reported after theirs.
  const runner = context.runner ?? new Runner(context.env);
  const connecting = runner.connect(config, context.signal);
  connecting.catch(() => undefined);
  const repo = await openRepo(config.project);
  const runId = newRunId(new Date());
  // A run holding this checkout (mount mode) owns its working tree: this one copies instead, from the
  // commit that run started at, and leaves the tree alone.
  // (--workspace copy takes no lock, but still starts from a holder's base commit.)
  const baseCommit = config.baseCommit ?? repo.head.commit;
  // A swarm job always copies the workspace (its node cannot see this machine's files).
  const copyOnly = config.workspace === 'copy' || config.backend === 'swarm';
  const taken = copyOnly ? undefined : await acquireRepoLock(stateRoot(context.env), repo.root, { runId, baseCommit });
  let lock = taken?.lock;
  const busy = taken ? taken.holder : await lockHolder(stateRoot(context.env), repo.root);
  try {
    if (busy && config.workspace === 'mount') {
      throw new PreflightError(
        `The working tree of ${repo.root} is in use by agent-worker run ${busy.runId} (pid ${busy.pid}).`,
        ExitCode.dirtyTree,
        'Use --workspace copy to run alongside it, or wait for it to finish.',
      );
    }
    const branch = config.branch ?? defaultBranchName(new Date());
    // Both checks run at once; a dirty tree is reported before a bad branch name.
    const [clean, newBranch] = await Promise.allSettled([busy ? Promise.resolve() : assertClean(repo), assertNewBranch(repo, branch)]);
    if (clean.status === 'rejected') throw clean.reason;
    if (newBranch.status === 'rejected') throw newBranch.reason;
    const plugin = getAgentPlugin(config.agentType);
    if (!plugin) throw new PreflightError(`Unknown agent ${config.agentType}.`, ExitCode.usage, 'Use --agent-type claude.');
    if (!config.apiKey && !config.oauthToken && !plugin.settings.credentialsOptional) {
      throw new PreflightError(
        plugin.supports.oauthToken ? 'No credentials: neither an API key nor an OAuth token was given.' : 'No credentials: no API key was given.',
        ExitCode.credentials,
        plugin.settings.credentialHint,
      );
    }
    throwIfAborted(context.signal);
    context.progress.phase('Connecting to Docker');
    const docker = await connecting.catch((error: unknown) => {
      throwIfAborted(context.signal);
      throw error;
    });
    const info = docker.info;
    context.notice(`Docker daemon: ${info.endpoint} (${info.source}) · ${info.name} · engine ${info.version} · ${info.platform}`);
    if (!info.seesHostPaths && config.workspace === 'mount') {
      throw new DockerError(
        `The Docker daemon at ${info.endpoint} (${info.name}) runs on another machine and cannot see ${repo.root}, so it cannot bind-mount it.`,
        ExitCode.docker,
        'Use --workspace copy (the default for remote daemons): the repository is copied in and the agent\'s commits come back.',
      );
    }
    const workspace: WorkspaceMode = lock && info.seesHostPaths && config.backend !== 'swarm' ? 'mount' : 'copy';
    if (lock && workspace === 'copy') {
      await lock.release();
      lock = undefined;
    }
    if (busy) context.notice(`The working tree is in use by run ${busy.runId}; this run copies the workspace, based on ${busy.baseCommit.slice(0, 12)}.`);
    const backend = await openBackend(config, docker, context);
    context.progress.succeed(`Connected to Docker · ${backend.name === 'swarm' ? 'swarm · ' : ''}workspace: ${workspace}`);
    return { repo, branch, plugin, docker, workspace, runId, lock, busy, runner, backend };
  } catch (error) {
    await lock?.release();
    throw error;
  }
}

/**
 * The run's backend: the daemon's own containers, or jobs on the swarm it manages (checked: a manager, a node that
 * satisfies the placement with room for the run).
 * @throws DockerError when the daemon is not a swarm manager; PreflightError when the swarm cannot place the run.
 */
async function openBackend(config: RunConfig, docker: DockerConnection, context: RunContext): Promise<Backend> {
  if (config.backend !== 'swarm') return new LocalBackend(docker.docker);
  context.progress.phase('Checking the swarm');
  const { SwarmBackend } = await import('./backends/swarm/index.js');
  return SwarmBackend.open(docker.docker, { registry: config.registry!, placement: config.placement }, { memoryBytes: config.memoryBytes, cpus: config.cpus });
}

/**
 * Runs one task end to end and returns its report. Once the agent has started, its work ends up on
 * the branch in every case (success, failure, timeout, interrupt) and the container is removed; a
 * failure before the agent starts leaves the repository as it was.
 * @throws AgentWorkerError subclasses for failures before the agent ran (preflight, image, container
 *   setup), and for losing the daemon or the work mid-run (after keeping what could be kept).
 */
export async function runTask(config: RunConfig, context: RunContext): Promise<RunResult> {
  const started = context.startedAt ?? Date.now();
  const checked = await preflight(config, context);
  const { repo, plugin, docker, runner } = checked;
  // The image is checked (or built) and containers whose agent-worker died (kill -9) are removed while
  // the run is set up; a failure is raised where it is awaited, inside the try below.
  const imageReady = prepareImage(runner, docker, plugin, config, context);
  imageReady.catch(() => undefined);
  const sweeping = runner.sweep(docker).then(
    (swept) => {
      if (swept.length > 0) context.notice(`Removed ${swept.length} container(s) left by agent-worker runs that died: ${swept.map((c) => c.runId).join(', ')}`);
    },
    (error: unknown) => log('gc: %s', errorMessage(error)),
  );
  const head = repo.head;
  const base = config.baseCommit ?? checked.busy?.baseCommit ?? head.commit;
  // The agent gets placeholders and the egress proxy as its API; only the proxy holds the real credentials.
  // Without a model API (the exec agent without --base-url) the proxy only tunnels to allowed hosts.
  const modelApi = modelApiUrl(config, plugin);
  const agentEnv = plugin.env({ ...placeholdersFor(config), baseUrl: modelApi === undefined ? undefined : EgressPath.proxyUrl });
  const run = await openRun(config, context, checked, { started, head, base });
  try {
    const image = await imageReady;
    const agentContainer = await startContainer(run, image, { modelApi, agentEnv, sweeping });
    const ran = await superviseAgent(run, agentContainer);
    return await keepAndReport(run, image, agentContainer.container, ran);
  } catch (error) {
    return await failRun(run, error);
  } finally {
    await closeRun(run);
  }
}

/** One run from its log's opening to its end: what the steps of {@link runTask} share. */
interface ActiveRun {
  config: RunConfig;
  context: RunContext;
  /** What preflight established. */
  checked: Preflight;
  /** When the run began, in ms since the epoch. */
  started: number;
  /** Full id of the commit the branch starts from. */
  base: string;
  runLog: RunLog;
  /** The run's private temporary folder, removed when it ends. */
  scratch: string;
  /** How the repository reaches the container and the work comes back (mount or copy). */
  workspace: Workspace;
  /** What the egress proxy let through and refused, recorded as it reports it. */
  audit: EgressAudit;
  /** The report's warnings so far. */
  warnings: string[];
  /** Adds a warning to the report and the run log, and shows it on stderr. */
  warn: (text: string) => void;
  /** The agent's container, once created. */
  container?: AgentBox;
  /** What the container uses, read while it runs, once it was created. */
  resourceWatch?: ResourceWatch;
  /** The run's network and egress proxy, once created. */
  egress?: EgressBox;
  /** Whether the agent was started (its work is then kept whatever happens); false again when it never was after all. */
  agentStarted: boolean;
}

/**
 * Opens the run's log and scratch folder (the checkout's lock is released when that fails), then prepares its
 * workspace: mount mode starts creating the branch (it only has to be there when the container starts, so it is
 * created while the container is) and recording the work tree's .git entries before the agent runs (checking out
 * the base commit, which is HEAD in mount mode, changes none); copy mode bundles the base commit.
 */
async function openRun(config: RunConfig, context: RunContext, checked: Preflight, at: { started: number; head: HeadState; base: string }): Promise<ActiveRun> {
  const { repo, branch, plugin, docker, workspace: mode, runId, lock } = checked;
  // What no file on the branch may hold: each credential, as it is and encoded.
  const credentialPatterns = secretPatterns(credentialValues(config));
  let runLog: RunLog;
  let scratch: string;
  try {
    throwIfAborted(context.signal);
    runLog = await RunLog.open(runsRoot(context.env), runId, credentialValues(config), plugin.secretShapes);
    runLog.note(`run ${runId}: agent-worker ${VERSION}, project ${repo.root}, branch ${branch}, daemon ${docker.info.endpoint}, workspace ${mode}`);
    [scratch] = await Promise.all([
      mkdtemp(path.join(os.tmpdir(), `agent-worker-${runId}-`)),
      runLog.writeInfo({ runId, project: repo.root, branch, agentType: plugin.name, pid: process.pid, host: os.hostname(), startedAt: new Date(at.started).toISOString(), toolVersion: VERSION, workspace: mode }),
    ]);
  } catch (error) {
    await lock?.release();
    throw error;
  }
  const warnings: string[] = [];
  const warn = (text: string): void => {
    warnings.push(text);
    runLog.note(`warning: ${text}`);
    context.notice(`agent-worker: warning: ${text}`, 'warning');
  };
  const workspace = createWorkspace(mode, {
    ...{ repo, branch, base: at.base, head: at.head, runId, runLog, scratch, credentialPatterns, warn },
    stateRoot: stateRoot(context.env),
    quarantineDir: path.join(runLog.dir, 'quarantine'),
    commitMessage: (status, credentialLeak) => commitMessage(config.task, runId, credentialLeak ? withCredentialLeak(status) : status),
  });
  await workspace.prepare();
  const audit = await EgressAudit.open(path.join(runLog.dir, EGRESS_LOG));
  return { config, context, checked, started: at.started, base: at.base, runLog, scratch, workspace, audit, warnings, warn, agentStarted: false };
}

/** The agent's container as {@link startContainer} leaves it: created, its egress proxy starting. */
interface StartingContainer {
  container: AgentBox;
  egress: EgressBox;
  /** Settles once the proxy tried the model API (EgressPath.start's `ready`). */
  egressReady: Promise<UpstreamCheck[]>;
  /** The model API's URL; undefined without one (the exec agent without --base-url). */
  apiUrl: URL | undefined;
  resourceWatch: ResourceWatch;
}

/**
 * Creates the run's network and egress proxy, starts the proxy, and creates the agent's container behind it (once
 * the leftover sweep is done), with the workspace's spec; waits for the workspace to be ready.
 * @throws DockerError and other AgentWorkerErrors when something cannot be created; InterruptedError.
 */
async function startContainer(
  run: ActiveRun,
  image: RunReport['image'],
  agent: { modelApi: string | undefined; agentEnv: { secret: Record<string, string>; plain: Record<string, string> }; sweeping: Promise<void> },
): Promise<StartingContainer> {
  const { config, context, checked, runLog, workspace, audit, warn } = run;
  const { repo, branch, plugin, runId, backend } = checked;
  runLog.note(`image ${image.tag} ${image.built ? 'built' : 'reused'} in ${image.buildMs} ms${image.dockerfile ? ` (project Dockerfile ${image.dockerfile})` : ''}`);
  throwIfAborted(context.signal);

  context.progress.phase(workspace.startingPhase);
  const apiUrl = agent.modelApi === undefined ? undefined : new URL(agent.modelApi);
  const blockedMcp = config.mcpConfig?.urlHosts.filter((host) => !hostAllowed(host, config.allowHosts)) ?? [];
  if (blockedMcp.length > 0) {
    warn(`the egress proxy refuses the MCP server host(s) ${blockedMcp.join(', ')} from --mcp-config; allow them with ${blockedMcp.map((host) => `--allow-host ${host}`).join(' ')}`);
  }
  // The run's network and its egress proxy come first: the agent's container joins that network.
  const egress = await backend.createEgress(egressSpec(config, plugin, { image: image.tag, runId, project: repo.root, onAudit: (record) => audit.record(record) }));
  run.egress = egress;
  // The sidecar starts while the agent's container is created and started: the agent's entrypoint waits for the
  // proxy's name to resolve and for the proxy to listen.
  const egressStarted = egress.start(context.signal);
  const egressReady = egressStarted.then((started) => started.ready);
  egressReady.catch(() => undefined);
  const plainEnv: Record<string, string> = { ...agent.agentEnv.plain, ...proxyEnv() };
  if (config.caCert) plainEnv.NODE_EXTRA_CA_CERTS = '/etc/ssl/certs/ca-certificates.crt';
  if (config.debug) plainEnv.AW_DEBUG = '1';
  const launch: AgentLaunchOptions = {
    apiBaseUrl: EgressPath.proxyUrl,
    model: config.model,
    maxTurns: config.maxTurns,
    maxBudgetUsd: config.maxBudgetUsd,
    appendSystemPrompt: [systemPromptAddition(branch, workspace.mode), config.appendSystemPrompt].filter(Boolean).join('\n\n'),
    mcpConfigJson: config.mcpConfig?.json,
    agentCommand: config.agentCommand,
  };
  await agent.sweeping;
  const container = await backend.createAgent(
    {
      image: image.tag,
      runId,
      toolVersion: VERSION,
      workspace: await workspace.containerSpec(),
      project: repo.root,
      uid: context.uid,
      gid: context.gid,
      command: plugin.argv(launch),
      env: plainEnv,
      secrets: agent.agentEnv.secret,
      task: taskFor(plugin, launch, config.task),
      verify: config.verify,
      homeFiles: plugin.homeFiles?.(launch),
      outputFiles: plugin.outputFiles,
      // Behind its firewall the agent reaches the proxy and nothing else; the proxy must answer before it starts.
      allowHosts: [PROXY_ALIAS],
      resolveWaitSeconds: PROXY_WAIT_SECONDS,
      apiCheck: { host: PROXY_ALIAS, port: PROXY_PORT },
      timezone: config.timezone,
      limits: { memoryBytes: config.memoryBytes, cpus: config.cpus, pidsLimit: config.pidsLimit },
    },
    egress,
  );
  run.container = container;
  runLog.note(`container ${container.shortId} created`);
  // What the container uses is read from its cgroup while it runs (Docker stats API, a frame a second).
  const resourceWatch = container.watchResources();
  run.resourceWatch = resourceWatch;
  await workspace.ready();
  throwIfAborted(context.signal);
  return { container, egress, egressReady, apiUrl, resourceWatch };
}

/** How the agent ran, as {@link superviseAgent} found it. */
interface AgentRan {
  exit: ContainerExit;
  /** The agent's outcome, completed by its plugin (settleOutcome). */
  outcome: AgentOutcome;
  agentWallMs: number | null;
  /** The agent's own reason for failing (agentFailureReason), or the model API's refusal of the credential. */
  agentReason: string | undefined;
  /** What the container used; settles once the last reading is in. */
  resources: Promise<ContainerResources>;
  /** The egress path's removal, under way; settles with what was left for `gc`. */
  egressRemoval: Promise<string[]>;
  /** How long removing a container may take, in ms (removeTimeoutMs). */
  removeMs: number;
}

/**
 * Runs the agent in its container and reads how it ended; a proxy that stops by itself, or never gets the model
 * API, stops the agent. Starts removing the egress path once the agent is done with it.
 * @throws the proxy's failure or the container's setup failure when the agent never started (the run is then
 *   undone), EgressProxyLostError when the proxy stopped while it ran, DaemonLostError.
 */
async function superviseAgent(run: ActiveRun, started: StartingContainer): Promise<AgentRan> {
  const { config, context, checked, runLog, audit, scratch, warn } = run;
  const { container, egress, egressReady, apiUrl, resourceWatch } = started;
  // The phase stays "Starting the container" while the entrypoint sets up the firewall and checks the model
  // API; runAgent shows "Agent running" once the agent's process has started.
  run.agentStarted = true;
  // A proxy that stops by itself while the agent runs leaves the agent without its API: the agent is stopped.
  let agentRunning = true;
  void egress.stopped.then(() => {
    if (agentRunning && egress.exited) container.requestStop('interrupted');
  });
  // The proxy listens only once the model API answered it; until then the entrypoint waits, so when the API does
  // not answer (or the proxy does not start) the agent never starts: its container is stopped and the run fails.
  let egressProblem: unknown;
  void egressReady.then(
    (checks) => {
      egressProblem = apiUrl && upstreamFailure(checks, apiUrl, config.baseUrl);
      if (egressProblem) container.requestStop('interrupted');
      else runLog.note(`egress proxy ready (network ${egress.networkName})`);
    },
    (error: unknown) => {
      egressProblem = error;
      container.requestStop('interrupted');
    },
  );
  const ran = await runAgent(container, checked.plugin, runLog, config, context);
  const resources = resourceWatch.stop();
  const { exit, stderrTail, agentWallMs } = ran;
  const outcome = await settleOutcome(checked.plugin, container, ran, scratch).catch((error: unknown) => {
    runLog.note(`reading the agent's ending failed: ${errorMessage(error)}`);
    return ran.outcome;
  });
  agentRunning = false;
  if (egressProblem && agentWallMs === null) {
    run.agentStarted = false;
    throw egressProblem;
  }
  const removeMs = removeTimeoutMs(context.env);
  if (egress.exited) {
    throw new EgressProxyLostError(
      `The egress proxy stopped while the agent ran (exit code ${egress.exited.exitCode ?? 'unknown'}), so the agent lost its way to the model API and was stopped.`,
      ExitCode.container,
      "The agent's partial work is on the branch; run again, with --debug to see the proxy's side.",
    );
  }
  // The agent (and --verify, in its container) needs the egress path no more: it goes while the work is collected.
  const egressRemoval = egress.remove(removeMs);
  for (const failure of runLog.writeFailures()) warn(failure);
  const setupFailure = containerSetupFailure(exit, stderrTail);
  if (setupFailure) {
    run.agentStarted = false;
    throw setupFailure;
  }
  const refusal = agentSucceeded(exit, outcome) ? undefined : audit.credentialRefusal();
  const agentReason = agentFailureReason(exit, outcome, stderrTail) ?? (refusal === undefined ? undefined : `the model API refused the credential (HTTP ${refusal})`);
  if (agentSucceeded(exit, outcome)) context.progress.succeed(`Agent ${describeExit(exit)}`);
  else context.progress.fail(`Agent ${describeExit(exit)}${agentReason ? `: ${agentReason}` : ''}`);
  return { exit, outcome, agentWallMs, agentReason, resources, egressRemoval, removeMs };
}

/**
 * Reads the --verify command's outcome, maps how the run ended to its status, keeps the agent's work on the branch
 * through the workspace (removing the container while or after it does), and writes the report.
 * @throws AgentWorkerError (exit 10, collect) when the work cannot be kept.
 */
async function keepAndReport(run: ActiveRun, image: RunReport['image'], container: AgentBox, ran: AgentRan): Promise<RunResult> {
  const { config, context, checked, runLog, workspace, audit, scratch, warn } = run;
  const { repo, runId, branch, plugin } = checked;
  const { exit, outcome, agentWallMs, removeMs } = ran;
  let verify: VerifyResult | null = null;
  if (config.verify !== undefined) {
    verify = await readVerifyResult(container, config.verify, scratch, runLog.dir);
    if (verify === null) warn('the --verify command did not run: the agent was stopped before it ended by itself');
    else context.progress.log(`Verify: \`${config.verify}\` ${verify.exitCode === 0 ? 'passed' : `failed (exit ${verify.exitCode})`} in ${(verify.durationMs / 1000).toFixed(1)} s`);
  }
  context.progress.phase('Collecting changes');
  let status = runStatus(exit, outcome, config.verify === undefined ? undefined : verify, audit.credentialRefusal());
  // Mount mode needs nothing more from the container: it is removed while the work is committed (copy mode
  // fetches the work from it first). Removal is cleanup after the work is safe: a slow daemon is a warning,
  // never the run's outcome.
  const removing = workspace.removeBeforeKeep ? container.removeAfterWork(removeMs) : undefined;
  const { headCommit, changes, credentialLeak } = await workspace.keepWork(status, container);
  if (credentialLeak) status = withCredentialLeak(status);
  const leftBehind = await (removing ?? container.removeAfterWork(removeMs));
  if (leftBehind) warn(leftBehind);
  for (const left of await ran.egressRemoval) warn(left);
  await workspace.finish();
  const report = await buildReport({
    ...{ repo, runId, branch, base: run.base, headCommit, status, exit, outcome, config, started: run.started, plugin, agentWallMs },
    agentError: ran.agentReason,
    egress: audit.summary(),
    changes,
    image,
    logDir: runLog.dir,
    warnings: run.warnings,
    verify,
    resources: await ran.resources,
  });
  runLog.note(`status ${status}; head ${report.headCommit}; ${report.changes.filesChanged} file(s) changed`);
  await runLog.writeReport(report);
  context.progress.succeed(`Changes committed to ${branch}`);
  return { report, exitCode: exitCodeFor(status, context.signal) };
}

/**
 * After a failure: before the agent started, the workspace is undone (the repository as it was); after, what can
 * be kept is kept on the branch. Then the container and the egress path are removed (what is left is warned about).
 * @throws always: InterruptedError when the user interrupted before the agent started, else `error`.
 */
async function failRun(run: ActiveRun, error: unknown): Promise<never> {
  const { context, runLog, workspace, warnings, warn } = run;
  context.progress.fail();
  runLog.note(`failed: ${errorMessage(error)}`);
  if (!run.agentStarted) await workspace.undo();
  else await workspace.keepAfterFailure(error, run.container);
  // Never throws: the error that ended the run is the one reported. A lost daemon gets a short try.
  void run.resourceWatch?.stop();
  const leftBehind = await run.container?.removeAfterWork(error instanceof DaemonLostError ? LOST_DAEMON_REMOVE_MS : removeTimeoutMs(context.env));
  if (leftBehind && !warnings.includes(leftBehind)) warn(leftBehind);
  for (const left of (await run.egress?.remove(removeTimeoutMs(context.env))) ?? []) if (!warnings.includes(left)) warn(left);
  if (context.signal.aborted && !run.agentStarted) throw new InterruptedError(String(context.signal.reason));
  throw error;
}

/** The run's end, whatever happened: the checkout's lock released, the logs closed, the scratch folder removed. */
async function closeRun(run: ActiveRun): Promise<void> {
  await run.checked.lock?.release();
  run.runLog.note(`peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`);
  await run.audit.close();
  await run.runLog.close();
  await rm(run.scratch, { recursive: true, force: true });
}

/**
 * The text the agent gets on its standard input: the task, after the instructions when the agent cannot take them
 * in its system prompt.
 */
export function taskFor(plugin: AgentPlugin, launch: AgentLaunchOptions, task: string): string {
  if (plugin.supports.appendSystemPrompt || launch.appendSystemPrompt === '') return task;
  return `${launch.appendSystemPrompt}\n\n---\n\n${task}`;
}

/** Lines of the --verify command's output kept in the report. */
const VERIFY_TAIL_LINES = 20;

/** Name of the agent plugin's install script in the tool image's build context (container/Dockerfile runs it). */
export const AGENT_INSTALL_FILE = 'agent-install.sh';

/**
 * The text of `plugin`'s install script (AgentImageLayer.installScript, under the package's `agents/`).
 * @throws AgentWorkerError (exit {@link ExitCode.internal}) when the package lacks it.
 */
function agentInstallScript(plugin: AgentPlugin): string {
  const file = path.join(PACKAGE_ROOT, 'agents', plugin.image.installScript);
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new AgentWorkerError(`The ${plugin.name} agent's install script ${file} cannot be read (${errorMessage(error)}).`, ExitCode.internal, 'Reinstall agent-worker.', { cause: error });
  }
}

/**
 * The images a run uses: the tool's (from `container/`, with the agent plugin's install script), and, with a project Dockerfile, the project's
 * (its folder is the build context; built FROM the tool's image, passed as build arg AGENT_WORKER_IMAGE).
 */
export function imageSpecs(config: Pick<RunConfig, 'caCert' | 'dockerfile'>, plugin: AgentPlugin, env: NodeJS.ProcessEnv): { tool: ImageSpec; project?: (toolTag: string) => ImageSpec } {
  const hashCache = path.join(stateRoot(env), 'image-hash-cache.json');
  const tool: ImageSpec = {
    contextDir: path.join(PACKAGE_ROOT, 'container'),
    buildArgs: {
      BASE_IMAGE: env.AGENT_WORKER_BASE_IMAGE || DEFAULT_BASE_IMAGE,
      AGENT_CLI_VERSION: plugin.image.version,
      AGENT_NODE_VERSION: plugin.image.node ?? '',
    },
    extraFiles: { [AGENT_INSTALL_FILE]: agentInstallScript(plugin) },
    caPem: config.caCert?.pem ?? '',
    toolVersion: VERSION,
    hashCache,
  };
  const dockerfile = config.dockerfile;
  if (!dockerfile) return { tool };
  return {
    tool,
    project: (toolTag) => ({
      contextDir: path.dirname(dockerfile),
      dockerfile: path.basename(dockerfile),
      buildArgs: { [PROJECT_BASE_ARG]: toolTag },
      toolVersion: VERSION,
      repository: PROJECT_IMAGE_REPOSITORY,
      hashCache,
    }),
  };
}

/**
 * Makes sure the run's image exists: the tool's, then the project's on top when there is a project
 * Dockerfile. Each is reused when its content-hash tag exists.
 * @throws ImageBuildError (also when --build-timeout runs out).
 */
async function prepareImage(runner: Runner, docker: DockerConnection, plugin: AgentPlugin, config: RunConfig, context: RunContext): Promise<RunReport['image']> {
  const specs = imageSpecs(config, plugin, context.env);
  const buildTimeout = AbortSignal.timeout(config.buildTimeoutSeconds * 1000);
  const options = { force: config.forceRebuild, signal: AbortSignal.any([context.signal, buildTimeout]), onProgress: (line: string) => context.progress.detail(line) };
  const ensure = (spec: ImageSpec): Promise<EnsuredImage> =>
    runner.ensureImage(docker, spec, options).catch((error: unknown) => {
      if (buildTimeout.aborted && !context.signal.aborted && error instanceof ImageBuildError) {
        throw new ImageBuildError(`Building the image took longer than --build-timeout (${config.buildTimeoutSeconds} s) and was stopped.`, error.logTail, { cause: error });
      }
      throw error;
    });
  context.progress.phase('Building the image');
  const tool = await ensure(specs.tool);
  context.progress.succeed(`Image ${tool.tag} ${tool.built ? 'built' : 'cached'}`);
  if (!specs.project) return { tag: tool.tag, built: tool.built, buildMs: tool.durationMs, dockerfile: null };
  context.progress.phase(`Building the project image (${path.relative(config.project, config.dockerfile!) || config.dockerfile})`);
  const project = await ensure(specs.project(tool.tag)).catch((error: unknown) => {
    if (error instanceof ImageBuildError && !context.signal.aborted) {
      throw new ImageBuildError(`Building the project image from ${config.dockerfile} failed: ${error.message}`, error.logTail, { cause: error });
    }
    throw error;
  });
  context.progress.succeed(`Project image ${project.tag} ${project.built ? 'built' : 'cached'}`);
  return { tag: project.tag, built: tool.built || project.built, buildMs: tool.durationMs + project.durationMs, dockerfile: config.dockerfile ?? null };
}

/**
 * Reads the --verify command's outcome from the stopped container and copies its whole output to
 * `<logDir>/verify.log`. Null when it did not run (the agent was stopped).
 */
async function readVerifyResult(container: AgentBox, command: string, scratch: string, logDir: string): Promise<VerifyResult | null> {
  const dir = path.join(scratch, 'verify');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = await container.fetchVerifyOutput(dir);
  const resultFile = files.find((file) => path.basename(file) === 'verify.result');
  const logFile = files.find((file) => path.basename(file) === 'verify.log');
  if (!resultFile) return null;
  const fields = Object.fromEntries(
    (await readFile(path.join(dir, resultFile), 'utf8')).split('\n').filter(Boolean).map((line) => line.split('=', 2) as [string, string]),
  );
  let outputTail: string[] = [];
  if (logFile) {
    await copyFile(path.join(dir, logFile), path.join(logDir, 'verify.log'));
    outputTail = await lastLines(path.join(logDir, 'verify.log'), VERIFY_TAIL_LINES);
  }
  const exitCode = Number(fields.exit);
  return { command, exitCode: Number.isInteger(exitCode) ? exitCode : null, durationMs: Number(fields.duration_ms) || 0, outputTail };
}

/** The last `count` lines of a text file (reads at most its last 64 KiB). */
async function lastLines(file: string, count: number): Promise<string[]> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, 64 * 1024);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').replace(/\n$/, '').split('\n');
    if (length < size) lines.shift();
    return lines.slice(-count);
  } finally {
    await handle.close();
  }
}

/** agent-worker's state folder: `$XDG_STATE_HOME/agent-worker` (else `~/.local/state/agent-worker`). */
function stateRoot(env: NodeJS.ProcessEnv): string {
  return path.dirname(runsRoot(env));
}

/**
 * Runs the container and reads its output into the parser and the run log as it arrives. Stops the
 * container `afterResultGraceMs` after the agent's final result if it has not exited by then, and at
 * `config.timeoutSeconds`.
 */
export async function runAgent(
  container: AgentBox,
  plugin: AgentPlugin,
  runLog: RunLog,
  config: Pick<RunConfig, 'timeoutSeconds'>,
  context: Pick<RunContext, 'progress' | 'signal' | 'whileAgentRuns' | 'onAgentProgress'>,
  afterResultGraceMs = AFTER_RESULT_GRACE_MS,
): Promise<{ exit: ContainerExit; outcome: AgentOutcome; stderrTail: string[]; agentWallMs: number | null }> {
  const parser = plugin.createParser();
  const live = { turn: 0, tokens: 0, tool: '', costUsd: undefined as number | undefined };
  const show = (): void => {
    const cost = live.costUsd === undefined ? '' : ` · $${live.costUsd.toFixed(4)}`;
    context.progress.detail(`turn ${live.turn}${live.tool ? ` · ${live.tool}` : ''} · ${live.tokens.toLocaleString('en-US')} tokens${cost}`);
    context.onAgentProgress?.({ ...live });
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
    } else if (event.kind === 'result') {
      // The agent said it is done; if it does not exit, it is stopped after a grace period.
      setTimeout(() => container.requestStop('after_result'), afterResultGraceMs).unref();
      return;
    } else {
      return;
    }
    show();
  };
  let longLineDecoder = new StringDecoder('utf8');
  // Every byte reaches the run log, written before the next chunk is read; lines longer than the splitter's
  // cap are written piece by piece as they arrive (and not parsed), so memory stays bounded by the cap
  // whatever the agent prints. Lines are bytes until the parser needs their text.
  const splitter = new ByteLineSplitter(
    (line, truncated) => {
      if (truncated) return;
      runLog.agentLine(line);
      for (const event of parser.push(line.toString('utf8'))) onEvent(event);
    },
    undefined,
    {
      start: (head) => {
        longLineDecoder = new StringDecoder('utf8');
        runLog.agentPiece(longLineDecoder.write(head));
      },
      chunk: (piece) => runLog.agentPiece(longLineDecoder.write(piece)),
      end: () => runLog.agentPiece(longLineDecoder.end(), true),
    },
  );
  const marks: { started?: number; ended?: number } = {};
  const stderrLines = new LineSplitter((line) => {
    const mark = agentProcessMark(line);
    if (mark) marks[mark.mark] = mark.atMs;
    // The firewall is up and the model API answered: the agent's process starts now.
    if (mark?.mark === 'started') context.progress.phase('Agent running');
    stderrTail.push(line);
    if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
  }, 64 * 1024);
  const stderrTail: string[] = [];
  // A character split between two chunks is decoded whole.
  const stderrDecoder = new StringDecoder('utf8');

  const exit = await container.run({
    timeoutMs: config.timeoutSeconds * 1000,
    signal: context.signal,
    onStarted: context.whileAgentRuns,
    sinks: {
      stdout: (chunk) => splitter.push(chunk),
      stderr: (chunk) => {
        runLog.stderr(stderrDecoder.write(chunk));
        stderrLines.push(chunk);
      },
    },
  });
  splitter.end();
  runLog.stderr(stderrDecoder.end());
  stderrLines.end();
  // The agent's process ends with the container unless the entrypoint supervised it (then it says when).
  const ended = marks.ended ?? exit.finishedAt;
  const agentWallMs = marks.started !== undefined && ended !== undefined && ended >= marks.started ? Math.round(ended - marks.started) : null;
  return { exit, outcome: parser.outcome(), stderrTail, agentWallMs };
}

/** Most bytes of each of the agent's output files read back (AgentPlugin.outputFiles). */
const AGENT_FILE_MAX_BYTES = 1024 ** 2;

/**
 * The agent's outcome as its plugin completes it from its exit code, its own stderr lines and the output files it
 * names (fetched from the stopped container): AgentPlugin.settle. The parser's outcome when the plugin has no
 * `settle`.
 */
async function settleOutcome(plugin: AgentPlugin, container: AgentBox, ran: { exit: ContainerExit; outcome: AgentOutcome; stderrTail: string[] }, scratch: string): Promise<AgentOutcome> {
  if (!plugin.settle) return ran.outcome;
  const files: Record<string, string> = {};
  for (const [index, file] of (plugin.outputFiles ?? []).entries()) {
    const dir = path.join(scratch, `agent-file-${index}`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const written = await container.fetchAgentFile(file, dir, AGENT_FILE_MAX_BYTES);
    if (written.includes(path.posix.basename(file))) files[file] = await readFile(path.join(dir, path.posix.basename(file)), 'utf8');
  }
  const stderrTail = ran.stderrTail.filter((line) => !line.startsWith('agent-worker: '));
  return plugin.settle(ran.outcome, { exitCode: ran.exit.exitCode, stderrTail, files });
}

/** Reads the changes base..head into the report. */
async function buildReport(input: {
  repo: Repo;
  runId: string;
  branch: string;
  base: string;
  headCommit: string;
  status: RunStatus;
  exit: ContainerExit;
  outcome: AgentOutcome;
  config: RunConfig;
  started: number;
  logDir: string;
  plugin: AgentPlugin;
  image: RunReport['image'];
  warnings: string[];
  verify: VerifyResult | null;
  /** What the agent's container used (Docker stats API). */
  resources: ContainerResources;
  agentWallMs: number | null;
  /** The agent's own reason for failing, shortened ({@link agentFailureReason}); undefined when it did not fail. */
  agentError?: string;
  /** What the egress proxy let through and refused. */
  egress: EgressSummary;
  /** The changes base..headCommit when already being read; default: read here. */
  changes?: Promise<ChangeSummary>;
}): Promise<RunReport> {
  const { repo, outcome, headCommit } = input;
  const changes = await (input.changes ?? diffChanges(repo, input.base, headCommit));
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
      wallMs: input.agentWallMs,
      sessionId: outcome.sessionId ?? null,
      turns: outcome.turns,
      resultText: outcome.resultText ?? null,
      error: input.agentError ?? null,
    },
    egress: input.egress,
    tokens: outcome.tokensUnknown ? null : outcome.tokens,
    ...runCost(outcome, outcome.model ?? input.config.model, input.config.prices),
    changes,
    image: input.image,
    warnings: input.warnings,
    verify: input.verify,
    resources: input.resources,
    logDir: input.logDir,
  };
}

/**
 * The run's cost and where it comes from: the agent's own figure when it reported one, else its tokens priced by the
 * `--prices` table for its model (USD per million tokens of each kind), else none.
 */
export function runCost(outcome: AgentOutcome, model: string | undefined, prices: PriceTable | undefined): { costUsd: number | null; costSource: 'agent' | 'prices' | null } {
  if (outcome.costUsd !== undefined) return { costUsd: outcome.costUsd, costSource: 'agent' };
  const price = model === undefined || outcome.tokensUnknown ? undefined : prices?.[model];
  if (!price) return { costUsd: null, costSource: null };
  const { input, output, cacheRead, cacheWrite } = outcome.tokens;
  const usd = (input * price.input + output * price.output + cacheRead * (price.cacheRead ?? price.input) + cacheWrite * (price.cacheWrite ?? price.input)) / 1_000_000;
  return { costUsd: Math.round(usd * 1e6) / 1e6, costSource: 'prices' };
}

/** The commit message: the task's first line (cut at 72 characters), then the run's facts. */
export function commitMessage(task: string, runId: string, status: RunStatus): string {
  const firstLine = task.trim().split('\n', 1)[0]!.trim();
  const subject = firstLine.length > 72 ? `${firstLine.slice(0, 71)}…` : firstLine;
  return `${subject}\n\nCommitted by agent-worker for run ${runId} (status: ${status}).\n`;
}

/**
 * How the run ended. `verify` is undefined without --verify, null when the command did not run; a
 * run that would be a success is `verify_failed` unless the command ran and exited 0.
 */
export function runStatus(exit: ContainerExit, outcome: AgentOutcome, verify?: VerifyResult | null, credentialRefusal?: number): RunStatus {
  if (exit.oomKilled) return 'out_of_memory';
  if (exit.reason === 'timed_out') return 'timed_out';
  if (exit.reason === 'interrupted') return 'interrupted';
  if (outcome.limitReached === 'max_turns') return 'max_turns';
  if (outcome.limitReached === 'max_budget') return 'budget_exceeded';
  if (!agentSucceeded(exit, outcome)) return credentialRefusal === undefined ? 'agent_error' : 'auth_failed';
  if (verify !== undefined && verify?.exitCode !== 0) return 'verify_failed';
  return 'success';
}

/**
 * The status of a run whose work held a credential given to agent-worker (those files were kept off the branch):
 * `credential_leak` instead of `success` or `verify_failed`; any other ending stays as it is (its warning says it).
 */
export function withCredentialLeak(status: RunStatus): RunStatus {
  return status === 'success' || status === 'verify_failed' ? 'credential_leak' : status;
}

/**
 * Whether the agent finished its task by its own account: it exited 0 without reporting an error, or (stopped after
 * it reported its result) its result was not an error; never after a timeout, an interrupt, running out of memory or
 * a limit.
 */
function agentSucceeded(exit: ContainerExit, outcome: AgentOutcome): boolean {
  if (exit.oomKilled || exit.reason === 'timed_out' || exit.reason === 'interrupted' || outcome.limitReached) return false;
  // Stopped after it reported its result: the result decides.
  if (exit.reason === 'after_result') return outcome.resultSubtype !== undefined && !outcome.isError;
  return exit.exitCode === 0 && !outcome.isError;
}

/** Longest agent reason shown, in characters ("a line or two"). */
const AGENT_REASON_CHARS = 200;

/**
 * The agent's own reason for failing, on one line and at most {@link AGENT_REASON_CHARS} characters: its final result
 * text when that reports an error (Claude Code `result` with `is_error`, e.g. "API Error: Connection refused"), else,
 * when it exited non-zero without a result, the last line it wrote to stderr. Undefined when it did not fail by its
 * own account (a timeout or an interrupt has no reason of the agent's) or said nothing.
 */
export function agentFailureReason(exit: ContainerExit, outcome: AgentOutcome, stderrTail: string[]): string | undefined {
  if (exit.reason === 'timed_out' || exit.reason === 'interrupted') return undefined;
  let text: string | undefined;
  if (outcome.isError && outcome.resultText?.trim()) text = outcome.resultText;
  else if (exit.reason === 'exited' && exit.exitCode !== 0 && outcome.resultSubtype === undefined) {
    // The entrypoint's own lines ("agent-worker: …", timing marks) are not the agent's.
    text = [...stderrTail].reverse().find((line) => line.trim() !== '' && !line.startsWith('agent-worker: '));
  }
  if (!text) return undefined;
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > AGENT_REASON_CHARS ? `${line.slice(0, AGENT_REASON_CHARS - 1)}…` : line;
}

/**
 * The error for a container whose entrypoint stopped before the agent started: its firewall could not be set up
 * ({@link FIREWALL_EXIT_CODE}), or the egress proxy did not accept a connection from behind it
 * ({@link API_UNREACHABLE_EXIT_CODE}). Undefined for any other exit.
 * @param stderrTail the container's last stderr lines, where the entrypoint says why (`agent-worker: …`).
 */
export function containerSetupFailure(exit: ContainerExit, stderrTail: string[]): AgentWorkerError | undefined {
  if (exit.reason !== 'exited') return undefined;
  const said = (prefix: string): string | undefined => {
    const line = [...stderrTail].reverse().find((text) => text.startsWith(`agent-worker: ${prefix}`));
    return line?.slice(`agent-worker: ${prefix}`.length).trim();
  };
  if (exit.exitCode === API_UNREACHABLE_EXIT_CODE) {
    const why = said('model API check failed:');
    if (why === undefined) return undefined;
    return new AgentWorkerError(
      `The egress proxy did not accept a connection from the agent's container (${why}), so the agent was not started.`,
      ExitCode.container,
      'Run with --debug for the container\'s and the proxy\'s diagnostics.',
    );
  }
  if (exit.exitCode !== FIREWALL_EXIT_CODE) return undefined;
  const why = said('firewall setup failed:');
  if (why === undefined) return undefined;
  return new AgentWorkerError(`The container's firewall could not be set up (${why}), so the agent was not started.`, ExitCode.container, "Run with --debug for the firewall's diagnostics.");
}

/**
 * What the agent is given instead of each credential: the egress proxy swaps exactly these for the real ones in
 * requests bound for the model API. They are not secrets.
 */
export const CREDENTIAL_PLACEHOLDERS = { apiKey: 'agent-worker-placeholder-api-key', oauthToken: 'agent-worker-placeholder-oauth-token' } as const;

/** The placeholders for the credentials `config` holds (none for a credential not given). */
function placeholdersFor(config: Pick<RunConfig, 'apiKey' | 'oauthToken'>): { apiKey?: string; oauthToken?: string } {
  return {
    apiKey: config.apiKey ? CREDENTIAL_PLACEHOLDERS.apiKey : undefined,
    oauthToken: config.oauthToken ? CREDENTIAL_PLACEHOLDERS.oauthToken : undefined,
  };
}

/** Every credential value the run was given (API key, OAuth token): redacted from logs, never on the branch. */
export function credentialValues(config: Pick<RunConfig, 'apiKey' | 'oauthToken'>): string[] {
  return [config.apiKey, config.oauthToken].filter((value): value is string => typeof value === 'string' && value !== '');
}

/**
 * The model API a run's proxy forwards to: `--base-url`, else the plugin's default; undefined for an agent with no API
 * of its own (`exec`) without `--base-url`.
 */
export function modelApiUrl(config: Pick<RunConfig, 'baseUrl'>, plugin: AgentPlugin): string | undefined {
  return config.baseUrl ?? plugin.api.defaultBaseUrl;
}

/**
 * The egress proxy of a run (or of doctor's probe): one route to the model API (`--base-url`, else the plugin's
 * default) that swaps the placeholders for the real credentials, and `--allow-host` names as the allowlist for
 * everything else.
 */
export function egressSpec(
  config: Pick<RunConfig, 'apiKey' | 'oauthToken' | 'baseUrl' | 'allowHosts' | 'caCert'>,
  plugin: AgentPlugin,
  run: { image: string; runId: string; project: string; onAudit: EgressSpec['onAudit'] },
): EgressSpec {
  const real = { apiKey: config.apiKey, oauthToken: config.oauthToken };
  const upstream = modelApiUrl(config, plugin);
  return {
    ...run,
    toolVersion: VERSION,
    proxy: {
      routes: upstream === undefined ? [] : [{ prefix: '/', upstream, credentials: plugin.api.credentialRules(real, placeholdersFor(config)) }],
      allowHosts: config.allowHosts,
      caPem: config.caCert?.pem,
      blockedHint: 'allow it with --allow-host HOST',
    },
  };
}

/**
 * The agent's environment for the proxy: every HTTP(S) client that honours the usual variables goes through it;
 * the proxy itself is reached directly.
 */
export function proxyEnv(): Record<string, string> {
  const url = EgressPath.proxyUrl;
  const direct = [PROXY_ALIAS, 'localhost', '127.0.0.1', '::1'].join(',');
  return { HTTPS_PROXY: url, https_proxy: url, HTTP_PROXY: url, http_proxy: url, NO_PROXY: direct, no_proxy: direct };
}

/**
 * The error for a model API the egress proxy could not reach when it started (a TCP connection from the sidecar):
 * the URL and what happened (`connection refused`, `the host name does not resolve`, `no answer within 10 s`).
 * Undefined when every upstream answered.
 */
export function upstreamFailure(checks: UpstreamCheck[], apiUrl: URL, baseUrl?: string): AgentWorkerError | undefined {
  const failed = checks.find((check) => !check.ok);
  if (!failed) return undefined;
  const flag = baseUrl ? `--base-url ${baseUrl}` : 'the default model API';
  if (failed.error === UNRESOLVED) {
    return new AgentWorkerError(
      `The host ${apiUrl.hostname} (from ${flag}) does not resolve to an address, so the agent was not started.`,
      ExitCode.container,
      `Check the host name in ${baseUrl ? '--base-url' : 'your network\'s DNS'}; it must resolve from the Docker host's network.`,
    );
  }
  return new AgentWorkerError(
    `The model API at ${apiUrl.href} did not accept a connection from the egress proxy (${failed.error ?? 'unknown error'}), so the agent was not started.`,
    ExitCode.container,
    `Check ${baseUrl ? '--base-url' : 'the network to the model API'} and that the API server is up; \`agent-worker doctor\` checks the same path.`,
  );
}

/** The process exit code of a run that ended with `status`. */
export function exitCodeFor(status: RunStatus, signal: AbortSignal): number {
  switch (status) {
    case 'success':
      return ExitCode.success;
    case 'agent_error':
      return ExitCode.agentError;
    case 'auth_failed':
      return ExitCode.credentials;
    case 'timed_out':
      return ExitCode.timedOut;
    case 'out_of_memory':
      return ExitCode.outOfMemory;
    case 'verify_failed':
      return ExitCode.verifyFailed;
    case 'max_turns':
      return ExitCode.maxTurns;
    case 'budget_exceeded':
      return ExitCode.budgetExceeded;
    case 'credential_leak':
      return ExitCode.credentialLeak;
    case 'interrupted':
      return interruptExitCode(signal.reason);
  }
}

function describeExit(exit: ContainerExit): string {
  if (exit.oomKilled) return 'killed: out of memory';
  if (exit.reason === 'after_result') return 'stopped (it reported its result but did not exit)';
  if (exit.reason === 'timed_out') return 'timed out';
  if (exit.reason === 'interrupted') return 'interrupted';
  return `exited with code ${exit.exitCode}${exit.oomKilled ? ' (out of memory)' : ''}`;
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new InterruptedError(String(signal.reason));
}


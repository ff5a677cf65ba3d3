/**
 * `agent-worker doctor`: checks, one by one, what a run needs — configuration, the repository, the
 * credentials, the --ca-cert file, the Docker daemon, the image, and whether the model API can be
 * reached from a container through the egress firewall. Nothing here prints; the caller renders.
 */
import createDebug from 'debug';
import type { RunConfig } from './config.js';
import { AgentWorkerError, ConfigError, ExitCode, errorMessage } from './errors.js';
import { getAgentPlugin } from '../agents/index.js';
import type { AgentPlugin } from '../agents/types.js';
import { isClean, openRepo, statusEntries } from './git/repo.js';
import { connectDocker, connectOptionsFor, type DockerConnection } from './docker/client.js';
import { imageContentHash, imageExists, imageTag, type ImageSpec } from './docker/image.js';
import { AgentContainer } from './docker/container.js';
import { EgressPath, PROXY_ALIAS, PROXY_PORT } from './docker/egress.js';
import { egressSpec, imageSpecs, modelApiUrl, upstreamFailure } from './run.js';
import { VERSION } from './version.js';

const log = createDebug('agent-worker:doctor');

/** How long the reachability probe's container may take, in ms (firewall setup included). */
const PROBE_TIMEOUT_MS = 60_000;

/** One check's outcome: `ok`, `fail` (a run would not start), or `skip` (could not be checked, or not needed). */
export interface DoctorCheck {
  /** Stable id: `config`, `repository`, `credentials`, `ca-cert`, `docker`, `image`, `api`. */
  id: string;
  status: 'ok' | 'fail' | 'skip';
  /** What was found, one line. Never holds a secret. */
  detail: string;
  /** How to fix a failure (names the flag or command). */
  fix?: string;
}

/** The whole diagnosis: `ok` is true only when a run would start; `exitCode` is the code that run would fail with. */
export interface DoctorReport {
  ok: boolean;
  exitCode: number;
  checks: DoctorCheck[];
}

/**
 * Runs every check it can. Configuration problems are checks too: loading stops there, as nothing
 * further can be checked without a valid configuration.
 * @param load loads the configuration (without requiring a task); throws ConfigError.
 */
export async function runDoctor(load: () => Promise<RunConfig>, context: { env: NodeJS.ProcessEnv; uid: number; gid: number; signal?: AbortSignal }): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const failCodes: number[] = [];
  const fail = (check: Omit<DoctorCheck, 'status'>, exitCode: number): void => {
    checks.push({ id: check.id, status: 'fail', detail: check.detail, ...(check.fix ? { fix: check.fix } : {}) });
    failCodes.push(exitCode);
  };
  const result = (): DoctorReport => ({ ok: failCodes.length === 0, exitCode: failCodes[0] ?? ExitCode.success, checks });

  let config: RunConfig;
  try {
    config = await load();
    checks.push({ id: 'config', status: 'ok', detail: `agent-worker ${VERSION}; flags, environment and ${config.envFile ?? 'no .env file'} are valid` });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) fail({ id: 'config', detail: problem, fix: error.hint }, ExitCode.usage);
    return result();
  }

  try {
    const repo = await openRepo(config.project);
    if (await isClean(repo)) checks.push({ id: 'repository', status: 'ok', detail: `${repo.root} is a git repository with a clean working tree` });
    else {
      const dirty = await statusEntries(repo);
      fail(
        { id: 'repository', detail: `${repo.root} has ${dirty.length} uncommitted change(s): ${dirty.slice(0, 3).map((entry) => entry.slice(3)).join(', ')}${dirty.length > 3 ? ', …' : ''}`, fix: 'Commit or stash them (git stash -u) first; agent-worker never touches uncommitted work.' },
        ExitCode.dirtyTree,
      );
    }
  } catch (error) {
    fail({ id: 'repository', detail: errorMessage(error), fix: error instanceof AgentWorkerError ? error.hint : undefined }, error instanceof AgentWorkerError ? error.exitCode : ExitCode.notARepo);
  }

  const settings = getAgentPlugin(config.agentType)!.settings;
  const source = (flagValue: string | undefined, envNames: readonly string[]): string => {
    const envName = envNames.find((name) => context.env[name]);
    return envName ? `$${envName}` : flagValue ? 'a flag or the .env file' : '';
  };
  if (config.apiKey) checks.push({ id: 'credentials', status: 'ok', detail: `API key present (from ${source(config.apiKey, settings.apiKeyEnv)}; not shown)` });
  else if (config.oauthToken) checks.push({ id: 'credentials', status: 'ok', detail: `OAuth token present (from ${source(config.oauthToken, settings.oauthTokenEnv ?? [])}; not shown)` });
  else if (settings.credentialsOptional) checks.push({ id: 'credentials', status: 'skip', detail: `no API key (the ${config.agentType} agent may need none)` });
  else fail({ id: 'credentials', detail: settings.oauthTokenEnv ? 'no API key and no OAuth token' : 'no API key', fix: settings.credentialHint }, ExitCode.credentials);

  if (config.caCert) {
    const count = config.caCert.pem.split('-----BEGIN CERTIFICATE-----').length - 1;
    checks.push({ id: 'ca-cert', status: 'ok', detail: `${config.caCert.path} is readable: ${count} certificate(s)` });
  } else {
    checks.push({ id: 'ca-cert', status: 'skip', detail: 'no --ca-cert given (needed only behind a TLS-intercepting proxy)' });
  }

  let docker: DockerConnection | undefined;
  try {
    docker = await connectDocker(connectOptionsFor(config, context.env, context.signal));
    const info = docker.info;
    checks.push({ id: 'docker', status: 'ok', detail: `${info.endpoint} (${info.source}) · ${info.name} · engine ${info.version} · ${info.platform}` });
  } catch (error) {
    fail({ id: 'docker', detail: errorMessage(error), fix: error instanceof AgentWorkerError ? error.hint : undefined }, ExitCode.docker);
  }

  const plugin = getAgentPlugin(config.agentType)!;
  const specs = imageSpecs(config, plugin, context.env);
  const tagOf = async (spec: ImageSpec): Promise<string> => imageTag(await imageContentHash(spec), spec.repository);
  const toolTag = await tagOf(specs.tool);
  const projectTag = specs.project ? await tagOf(specs.project(toolTag)) : undefined;
  const runTag = projectTag ?? toolTag;
  let cached = false;
  if (!docker) {
    checks.push({ id: 'image', status: 'skip', detail: `${runTag}: not checked, no Docker daemon` });
  } else {
    const missing: string[] = [];
    for (const tag of [toolTag, projectTag].filter((t): t is string => t !== undefined)) {
      if (!(await imageExists(docker.docker, tag))) missing.push(tag);
    }
    cached = missing.length === 0;
    checks.push(
      cached
        ? { id: 'image', status: 'ok', detail: `${runTag} is cached${projectTag ? ` (project Dockerfile ${config.dockerfile})` : ''}` }
        : { id: 'image', status: 'skip', detail: `${missing.join(' and ')} not built yet: the next run builds it (a few minutes, once)` },
    );
  }

  const baseUrl = modelApiUrl(config, plugin);
  if (baseUrl === undefined) {
    checks.push({ id: 'api', status: 'skip', detail: `the ${plugin.name} agent has no model API of its own and no --base-url was given` });
  } else if (!docker || !cached) {
    checks.push({ id: 'api', status: 'skip', detail: `${baseUrl}: not checked from a container (${docker ? 'the image is not built yet' : 'no Docker daemon'})` });
  } else {
    const probe = await probeApi(docker, runTag, baseUrl, plugin, config, context).catch((error: unknown) => ({ ok: false, text: errorMessage(error) }));
    if (probe.ok) checks.push({ id: 'api', status: 'ok', detail: `${baseUrl} answered through the egress proxy, from a container behind the firewall (HTTP ${probe.text})` });
    else {
      fail(
        { id: 'api', detail: `${baseUrl} is not reachable through the egress proxy: ${probe.text}`, fix: 'Check --base-url and the Docker host\'s network; behind a TLS-intercepting proxy pass its CA with --ca-cert.' },
        ExitCode.container,
      );
    }
  }
  return result();
}

/**
 * Sets up a run's egress path (internal network, egress proxy with the credentials): the proxy first checks that
 * `baseUrl` accepts a connection. Then a container from the run's image on that network, behind the run's firewall,
 * sends `HEAD <proxy>/` (no credential), which the proxy forwards to `baseUrl`. Any HTTP answer counts as reachable.
 */
async function probeApi(
  docker: DockerConnection,
  image: string,
  baseUrl: string,
  plugin: AgentPlugin,
  config: RunConfig,
  context: { uid: number; gid: number; signal?: AbortSignal },
): Promise<{ ok: boolean; text: string }> {
  const runId = `doctor-${Date.now().toString(36)}-${process.pid}`;
  const egress = await EgressPath.create(docker.docker, egressSpec(config, plugin, { image, runId, project: config.project, onAudit: () => undefined }));
  try {
    const failure = upstreamFailure(await (await egress.start(context.signal)).ready, new URL(baseUrl), config.baseUrl);
    if (failure) return { ok: false, text: failure.message };
    return await probeThroughProxy(docker, image, runId, egress, config, context);
  } finally {
    await egress.remove(PROBE_TIMEOUT_MS);
  }
}

/** The probe container of {@link probeApi}: `HEAD` to the proxy from behind the firewall. */
async function probeThroughProxy(
  docker: DockerConnection,
  image: string,
  runId: string,
  egress: EgressPath,
  config: RunConfig,
  context: { uid: number; gid: number; signal?: AbortSignal },
): Promise<{ ok: boolean; text: string }> {
  const script =
    'fetch(process.argv[1],{method:"HEAD",signal:AbortSignal.timeout(15000)})' +
    '.then(r=>{console.log(r.status)},e=>{console.log("error: "+((e.cause&&(e.cause.code||e.cause.message))||e.message));process.exitCode=1})';
  const container = await AgentContainer.create(docker.docker, {
    image,
    runId,
    toolVersion: VERSION,
    workspace: { mode: 'none' },
    project: config.project,
    uid: context.uid,
    gid: context.gid,
    command: ['node', '-e', script, `${EgressPath.proxyUrl}/`],
    env: {},
    secrets: {},
    task: '',
    allowHosts: [PROXY_ALIAS],
    apiCheck: { host: PROXY_ALIAS, port: PROXY_PORT },
    networkMode: egress.networkName,
    timezone: 'UTC',
  });
  try {
    let stdout = '';
    let stderr = '';
    const exit = await container.run({
      timeoutMs: PROBE_TIMEOUT_MS,
      signal: context.signal,
      sinks: { stdout: (chunk) => void (stdout += chunk.toString('utf8')), stderr: (chunk) => void (stderr += chunk.toString('utf8')) },
    });
    log('probe exit %o stdout %s stderr %s', exit, stdout, stderr);
    const answer = stdout.trim().split('\n').pop() ?? '';
    if (exit.exitCode === 0 && /^\d{3}$/.test(answer)) return { ok: true, text: answer };
    const why = answer || stderr.trim().split('\n').pop() || `the probe exited with ${exit.exitCode ?? exit.reason}`;
    return { ok: false, text: why };
  } finally {
    await container.remove().catch(() => undefined);
  }
}

/** Renders the checks as lines: `✓`/`✗`/`–`, the detail, and the fix under a failure. Plain text, no escape codes unless `color`. */
export function renderDoctor(report: DoctorReport, color: boolean): string {
  const paint = (code: number, text: string): string => (color ? `\u001b[${code}m${text}\u001b[39m` : text);
  const mark = { ok: paint(32, '✓'), fail: paint(31, '✗'), skip: paint(33, '–') };
  const lines = report.checks.map((check) => `${mark[check.status]} ${check.id.padEnd(11)} ${check.detail}${check.fix && check.status === 'fail' ? `\n  ${''.padEnd(11)} fix: ${check.fix}` : ''}`);
  lines.push(report.ok ? 'A run would start.' : `A run would not start (exit code ${report.exitCode}).`);
  return `${lines.join('\n')}\n`;
}

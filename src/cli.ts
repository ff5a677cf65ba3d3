#!/usr/bin/env node
/**
 * The command line: parses flags with commander, runs the pipeline, prints the report on stdout
 * (a table, or exactly one JSON document with --json) and everything else on stderr. The only
 * place that calls process.exit; maps typed errors to exit codes.
 */
import { Command, Option } from 'commander';
import { VERSION } from './version.js';
import { SETTINGS, loadConfig, type RawFlags } from './config.js';
import { AgentWorkerError, ConfigError, ExitCode, ImageBuildError, errorMessage, interruptExitCode } from './errors.js';

const HANDLED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function buildProgram(): Command {
  const program = new Command('agent-worker')
    .description('Run an autonomous coding agent in a Docker container against a git repository; get back a branch and a report.')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run agent-worker --help for usage)')
    .configureOutput({ writeOut: (text) => process.stdout.write(text), writeErr: (text) => process.stderr.write(text) });
  const add = (key: keyof typeof SETTINGS, repeatable = false): void => {
    const setting = SETTINGS[key];
    const defaultText = setting.default ? `; default: ${setting.default}` : '';
    const option = new Option(setting.flag, `${setting.help} (env ${setting.env}${defaultText})`);
    if (repeatable) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    program.addOption(option);
  };
  for (const key of ['task', 'taskFile', 'project', 'branch'] as const) add(key);
  for (const key of ['agentType', 'model', 'maxTurns', 'apiKey', 'oauthToken', 'baseUrl'] as const) add(key);
  for (const key of ['timeout', 'timezone', 'memory', 'cpus', 'pidsLimit', 'buildTimeout', 'caCert'] as const) add(key);
  add('allowHost', true);
  for (const key of ['remoteDocker', 'workspace', 'tlsCa', 'tlsCert', 'tlsKey', 'sshKey', 'insecureDocker', 'forceRebuild', 'envFile', 'json', 'debug'] as const) add(key);
  program.addHelpText(
    'after',
    `
Exit codes: 0 success, 1 agent error, 2 bad option, 3 not a git repository, 4 uncommitted changes,
5 bad or existing branch, 6 Docker unreachable, 7 no credentials, 8 image build failed,
9 container setup failed, 10 collecting changes failed, 11 out of memory, 124 timed out,
129/130/143 interrupted.

Commands:
  agent-worker gc [--all]   remove containers left by runs that died (kill -9, crash)

Example:
  agent-worker --task "Fix the flaky login test" --branch fix/login`,
  );
  return program;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function printError(error: unknown, debug: boolean): number {
  if (error instanceof AgentWorkerError) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`agent-worker: ${problem}\n`);
    } else {
      process.stderr.write(`agent-worker: ${error.message}\n`);
    }
    if (error instanceof ImageBuildError && error.logTail.length > 0) {
      process.stderr.write(`  last lines of the build log:\n${error.logTail.map((line) => `    ${line}`).join('\n')}\n`);
    }
    if (error.hint) process.stderr.write(`  ${error.hint}\n`);
    if (debug && error.cause) process.stderr.write(`  cause: ${error.cause instanceof Error ? (error.cause.stack ?? error.cause.message) : String(error.cause)}\n`);
    return error.exitCode;
  }
  process.stderr.write(`agent-worker: unexpected error: ${debug && error instanceof Error ? (error.stack ?? error.message) : errorMessage(error)}\n`);
  process.stderr.write('  Please run again with --debug and report this.\n');
  return ExitCode.internal;
}

/** `agent-worker gc [--all] [--remote-docker <url>] [--json]`: removes containers left by runs that died. */
async function gc(argv: string[]): Promise<number> {
  const command = new Command('agent-worker gc')
    .description('Remove containers left behind by agent-worker runs whose process is gone (e.g. after kill -9).')
    .option('--all', 'also remove containers of other hosts and of runs still alive')
    .option('--remote-docker <url>', 'Docker daemon to clean (env DOCKER_HOST)')
    .option('--json', 'print what was removed as JSON')
    .option('--debug', 'debug logging on stderr')
    .exitOverride();
  try {
    command.parse(argv, { from: 'user' });
  } catch (error) {
    return (error as { exitCode?: number }).exitCode === 0 ? 0 : ExitCode.usage;
  }
  const options = command.opts<{ all?: boolean; remoteDocker?: string; json?: boolean; debug?: boolean }>();
  try {
    const { default: createDebug } = await import('debug');
    if (options.debug) createDebug.enable('agent-worker:*');
    const [{ connectDocker }, { collectGarbage }] = await Promise.all([import('./docker/client.js'), import('./gc.js')]);
    const { docker, info } = await connectDocker({
      dockerHost: options.remoteDocker ?? (process.env.DOCKER_HOST || undefined),
      tls: {},
      insecure: false,
      env: process.env,
      home: process.env.HOME || (await import('node:os')).homedir(),
    });
    process.stderr.write(`Docker daemon: ${info.endpoint} (${info.source}) · ${info.name}\n`);
    const removed = await collectGarbage(docker, { all: Boolean(options.all) });
    if (options.json) process.stdout.write(`${JSON.stringify({ removed }, null, 2)}\n`);
    else if (removed.length === 0) process.stdout.write('Nothing to remove.\n');
    else for (const container of removed) process.stdout.write(`removed ${container.id} (run ${container.runId}, ${container.state})\n`);
    return ExitCode.success;
  } catch (error) {
    return printError(error, Boolean(options.debug));
  }
}

async function main(argv: string[]): Promise<number> {
  if (argv[2] === 'gc') return gc(argv.slice(3));
  const program = buildProgram();
  program.exitOverride();
  try {
    program.parse(argv);
  } catch (error) {
    const code = (error as { exitCode?: number; code?: string }).exitCode;
    const kind = (error as { code?: string }).code;
    if (kind === 'commander.helpDisplayed' || kind === 'commander.version' || kind === 'commander.help') return 0;
    return code === 0 ? 0 : ExitCode.usage;
  }
  if (program.args.length > 0) {
    process.stderr.write(`agent-worker: unexpected argument ${JSON.stringify(program.args[0])}; put the task in --task "…".\n`);
    return ExitCode.usage;
  }
  const flags = program.opts<RawFlags>();
  const controller = new AbortController();
  let debug = Boolean(flags.debug);
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      process.stderr.write(`agent-worker: ${signal} again, exiting now; containers labelled dev.agent-worker.managed may be left behind.\n`);
      process.exit(interruptExitCode(signal));
    }
    process.stderr.write(`\nagent-worker: ${signal} received, stopping (a running agent is stopped and its work committed)…\n`);
    controller.abort(signal);
  };
  for (const signal of HANDLED_SIGNALS) process.on(signal, onSignal);

  try {
    const config = await loadConfig(flags, {
      cwd: process.cwd(),
      env: process.env,
      readStdin,
      hostTimeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    });
    debug = config.debug;
    const { default: createDebug } = await import('debug');
    if (config.debug) createDebug.enable('agent-worker:*');
    const [{ runTask }, { createProgress }, render] = await Promise.all([
      import('./run.js'),
      import('./ui/progress.js'),
      import('./report/render.js'),
    ]);
    const progress = await createProgress({ enabled: !config.json && !config.debug, stream: process.stderr });
    const result = await runTask(config, {
      progress,
      notice: (text) => progress.log(text),
      signal: controller.signal,
      env: process.env,
      uid: process.getuid?.() ?? 1000,
      gid: process.getgid?.() ?? 1000,
    });
    progress.stop();
    const color = !config.json && process.stdout.isTTY === true && !process.env.NO_COLOR;
    process.stdout.write(config.json ? render.renderReportJson(result.report) : render.renderReportTable(result.report, { color }));
    return result.exitCode;
  } catch (error) {
    return printError(error, debug);
  } finally {
    for (const signal of HANDLED_SIGNALS) process.off(signal, onSignal);
  }
}

/**
 * Exits once stdout and stderr have flushed. Exiting explicitly matters: a daemon that hangs (or a
 * keep-alive socket) must not keep the process alive after the result is known.
 */
function exitWhenFlushed(code: number): void {
  let pending = 2;
  const done = (): void => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

main(process.argv).then(exitWhenFlushed, (error: unknown) => {
  process.stderr.write(`agent-worker: ${errorMessage(error)}\n`);
  exitWhenFlushed(ExitCode.internal);
});

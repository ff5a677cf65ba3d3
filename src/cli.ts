#!/usr/bin/env node
/**
 * The command line: parses flags with commander, runs the pipeline, prints the report on stdout
 * (a table, or exactly one JSON document with --json) and everything else on stderr. The only
 * place that calls process.exit; maps typed errors to exit codes.
 */
import type { Command } from 'commander';
import { VERSION } from './version.js';
import { editDistance } from './text/edit-distance.js';
import type { RawFlags, RunConfig } from './config.js';
import { AgentWorkerError, ConfigError, ExitCode, ImageBuildError, errorMessage, interruptExitCode } from './errors.js';

const HANDLED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** The subcommands {@link main} dispatches on. */
const COMMANDS = ['batch', 'doctor', 'runs', 'logs', 'gc'] as const;
/** Most edits (optimal string alignment distance) between a mistyped command and the command it suggests. */
const COMMAND_TYPO_EDITS = 2;

/** The subcommands, as `--help` lists them. */
const COMMANDS_HELP = `
Commands:
  agent-worker [options]            run a task (the default; see the options above)
  agent-worker batch <file> [options] [--parallel N] [--retries N] [--resume ID]
                                    run the tasks of a YAML or JSON Lines file in parallel; one rollup
  agent-worker doctor [options]     check that a run would start (takes the run's options; --json)
  agent-worker runs [--limit N] [--project P] [--json]
                                    list recent runs: id, project, branch, status, cost, duration
  agent-worker logs [runId] [-f] [--stream] [--json]
                                    a run's report (latest by default); -f follows a running one
  agent-worker gc [--all] [--json]  remove containers left by runs that died (kill -9, crash)`;

const EXIT_CODES_HELP = `
Exit codes:
  0 success            1 agent error         2 bad option          3 not a git repository
  4 uncommitted changes 5 bad/existing branch 6 Docker unreachable  7 no credentials
  8 image build failed 9 container setup     10 collecting failed  11 out of memory
  12 verify failed     13 max turns reached  14 budget exceeded    124 timed out
  15 credential leak   16 batch: a task did not succeed
  70 internal error    129/130/143 interrupted (SIGHUP/SIGINT/SIGTERM)`;

const EXAMPLES_HELP = `
Examples:
  agent-worker --task "Fix the flaky login test" --branch fix/login
  agent-worker --task-file task.md --verify "npm test" --max-budget-usd 5 --json
  agent-worker --remote-docker ssh://me@build-box --task "Update the docs"

Every option can also be set by its environment variable (shown in brackets) or in <project>/.env;
a flag beats the environment, which beats .env.`;

/** Settings `doctor` leaves out of its options: they describe a task, and doctor runs none. */
const DOCTOR_IGNORES = new Set(['task', 'taskFile', 'branch', 'verify']);

const BATCH_HELP = `
The run options above are defaults for every task; the file's defaults beat them, a task's own value beats both.
Task file (YAML; JSON Lines with .jsonl, one task per line, an optional {"defaults": {…}} first):
  defaults: { agentType: codex, timeout: 900, verify: npm test }
  tasks:
    - { project: ../api, task: Fix the flaky login test, branch: fix/login }
    - { project: ../web, taskFile: tasks/docs.md, base: release-2, workspace: copy }
Exit code: 0 when every task succeeded, 16 when one did not (each task's status is in the report), 2 for an
invalid file (every problem listed with its line; nothing ran), 130 when interrupted (the rollup still prints).
Example: agent-worker batch tasks.yaml --parallel 4 --retries 2 --json`;

const DOCTOR_HELP = `
Each check prints ✓ (ok), ✗ (a run would not start; the fix follows) or – (not checked, or not needed).
Exit code: 0 when a run would start, else the code that run would fail with (see agent-worker --help).
Example: agent-worker doctor --remote-docker ssh://me@build-box --json`;

/**
 * The run's command-line program: every setting of {@link SETTINGS} as an option, grouped, with its
 * environment variable and default in the help.
 */
async function buildProgram(name: string, description: string, options: { doctor?: boolean; batch?: boolean } = {}): Promise<Command> {
  const [{ Command: CommandClass, Option }, { SETTINGS }] = await Promise.all([import('commander'), import('./config.js')]);
  const program = new CommandClass(name)
    .description(description)
    .version(VERSION, '-V, --version')
    .helpOption('-h, --help', 'show this help')
    .showHelpAfterError('(run agent-worker --help for usage)')
    .configureOutput({ writeOut: (text) => process.stdout.write(text), writeErr: (text) => process.stderr.write(text) });
  for (const [key, setting] of Object.entries(SETTINGS)) {
    // doctor takes the run's options but not the task's own: it runs none.
    if (options.doctor && DOCTOR_IGNORES.has(key)) continue;
    const defaultText = setting.default ? `; default: ${setting.default}` : '';
    const option = new Option(setting.flag, `${setting.help} [${setting.env}${defaultText}]`).helpGroup(`${setting.group} options:`);
    if (key === 'allowHost') option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    program.addOption(option);
  }
  if (options.batch) {
    program
      .argument('<file>', 'the task file: YAML, or JSON Lines (.jsonl)')
      .option('--parallel <n>', 'most tasks running at once [default: what the daemon\'s CPUs and memory allow for --cpus/--memory]')
      .option('--retries <n>', 'run a task again this often when it failed for an infrastructure reason (daemon, image build network, container start) [default: 0]')
      .option('--resume <batchId>', 'resume that batch: its successful tasks are skipped, the others run again');
  }
  program.addHelpText('after', options.doctor ? DOCTOR_HELP : options.batch ? BATCH_HELP : `${COMMANDS_HELP}\n${EXIT_CODES_HELP}\n${EXAMPLES_HELP}`);
  // A run's stray word is reported by parseFlags: a mistyped command gets a suggestion.
  if (!options.doctor && !options.batch) program.allowExcessArguments();
  program.exitOverride();
  return program;
}

/** Parses `argv` (after the command name); returns the flags, or the exit code when parsing ended the command (help, version, error). */
function parseFlags(program: Command, argv: string[], options: { positional?: number } = {}): RawFlags | number {
  try {
    program.parse(argv, { from: 'user' });
  } catch (error) {
    const code = (error as { exitCode?: number }).exitCode;
    const kind = (error as { code?: string }).code;
    if (kind === 'commander.helpDisplayed' || kind === 'commander.version' || kind === 'commander.help') return 0;
    return code === 0 ? 0 : ExitCode.usage;
  }
  if (program.args.length > (options.positional ?? 0)) {
    const word = program.args[0]!;
    const suggestions = similarCommands(word);
    if (suggestions.length > 0) process.stderr.write(`agent-worker: unknown command ${JSON.stringify(word)}. Did you mean ${suggestions.join(' or ')}?\n`);
    else process.stderr.write(`agent-worker: unexpected argument ${JSON.stringify(word)}; put the task in --task "…" (commands: ${COMMANDS.join(', ')}).\n`);
    return ExitCode.usage;
  }
  return program.opts<RawFlags>();
}

/**
 * The commands `word` is likely a typo of: those it starts (two letters or more), else the nearest within
 * {@link COMMAND_TYPO_EDITS} edits that keep over 40% of the longer word (commander's rule for option
 * typos; its suggestSimilar is not exported, and its unknown-command check needs registered subcommands,
 * which would take the default command's bare run away). Empty when none is close.
 */
function similarCommands(word: string): string[] {
  const typed = word.toLowerCase();
  const prefixed = typed.length >= 2 ? COMMANDS.filter((command) => command.startsWith(typed)) : [];
  if (prefixed.length > 0) return prefixed;
  let best: string[] = [];
  let bestEdits = COMMAND_TYPO_EDITS + 1;
  for (const command of COMMANDS) {
    const edits = editDistance(typed, command);
    const length = Math.max(typed.length, command.length);
    if ((length - edits) / length <= 0.4 || edits > bestEdits) continue;
    if (edits < bestEdits) best = [];
    bestEdits = edits;
    best.push(command);
  }
  return best;
}

/** Loads the configuration for this process (flags > environment > .env > defaults). */
async function loadProcessConfig(flags: RawFlags, requireTask: boolean): Promise<RunConfig> {
  const { loadConfig } = await import('./config.js');
  return loadConfig(flags, {
    cwd: process.cwd(),
    env: process.env,
    readStdin,
    hostTimeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    requireTask,
  });
}

/** Colour on stdout: a terminal, no NO_COLOR, no --json. */
function stdoutColor(json: boolean): boolean {
  return !json && process.stdout.isTTY === true && !process.env.NO_COLOR;
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
  const { Command: CommandClass } = await import('commander');
  const command = new CommandClass('agent-worker gc')
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

/** `agent-worker doctor [run options] [--json]`: checks that a run would start; exit 0 only then. */
async function doctor(argv: string[]): Promise<number> {
  const program = await buildProgram('agent-worker doctor', 'Check that a run would start: configuration, repository, credentials, --ca-cert, Docker daemon, image, and the model API through the firewall.', { doctor: true });
  const flags = parseFlags(program, argv);
  if (typeof flags === 'number') return flags;
  const { default: createDebug } = await import('debug');
  if (flags.debug) createDebug.enable('agent-worker:*');
  try {
    const { runDoctor, renderDoctor } = await import('./doctor.js');
    const report = await runDoctor(() => loadProcessConfig(flags, false), {
      env: process.env,
      uid: process.getuid?.() ?? 1000,
      gid: process.getgid?.() ?? 1000,
    });
    process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : renderDoctor(report, stdoutColor(false)));
    return report.exitCode;
  } catch (error) {
    return printError(error, Boolean(flags.debug));
  }
}

/** `agent-worker batch <file> [run options] [--parallel N] [--retries N] [--resume ID]` (src/commands/batch.ts). */
async function batch(argv: string[]): Promise<number> {
  const modules = Promise.all([import('debug'), import('./commands/batch.js')]);
  modules.catch(() => undefined);
  const program = await buildProgram('agent-worker batch', 'Run the tasks of a task file, in parallel, and print one rollup.', { batch: true });
  const flags = parseFlags(program, argv, { positional: 1 });
  if (typeof flags === 'number') return flags;
  const { parallel, retries, resume, ...runFlags } = flags as RawFlags & { parallel?: string; retries?: string; resume?: string };
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      process.stderr.write(`agent-worker: ${signal} again, exiting now; containers labelled dev.agent-worker.managed may be left behind.\n`);
      process.exit(interruptExitCode(signal));
    }
    process.stderr.write(`\nagent-worker: ${signal} received, stopping every task (running agents are stopped and their work committed)…\n`);
    controller.abort(signal);
  };
  for (const signal of HANDLED_SIGNALS) process.on(signal, onSignal);
  try {
    const [{ default: createDebug }, { batchCommand }] = await modules;
    if (runFlags.debug) createDebug.enable('agent-worker:*');
    return await batchCommand(program.args[0]!, runFlags, { parallel, retries, resume }, {
      cwd: process.cwd(),
      env: process.env,
      stdout: process.stdout,
      stderr: process.stderr,
      color: stdoutColor(Boolean(runFlags.json)),
      signal: controller.signal,
      uid: process.getuid?.() ?? 1000,
      gid: process.getgid?.() ?? 1000,
      readStdin,
      hostTimeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    });
  } catch (error) {
    return printError(error, Boolean(runFlags.debug));
  } finally {
    for (const signal of HANDLED_SIGNALS) process.off(signal, onSignal);
  }
}

/** `agent-worker runs …` and `agent-worker logs …` (src/commands/history.ts). */
async function history(command: 'runs' | 'logs', argv: string[]): Promise<number> {
  const { runsCommand, logsCommand } = await import('./commands/history.js');
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => controller.abort(signal);
  for (const signal of HANDLED_SIGNALS) process.on(signal, onSignal);
  try {
    const io = { stdout: process.stdout, stderr: process.stderr, env: process.env, color: stdoutColor(argv.includes('--json')), signal: controller.signal, cwd: process.cwd() };
    return await (command === 'runs' ? runsCommand(argv, io) : logsCommand(argv, io));
  } catch (error) {
    return printError(error, false);
  } finally {
    for (const signal of HANDLED_SIGNALS) process.off(signal, onSignal);
  }
}

async function main(argv: string[]): Promise<number> {
  const first = argv[2];
  // The version needs nothing else loaded: start-up stays close to node's own.
  if (argv.length === 3 && (first === '--version' || first === '-V')) {
    process.stdout.write(`${VERSION}\n`);
    return ExitCode.success;
  }
  if (first === 'gc') return gc(argv.slice(3));
  if (first === 'doctor') return doctor(argv.slice(3));
  if (first === 'batch') return batch(argv.slice(3));
  if (first === 'runs' || first === 'logs') return history(first, argv.slice(3));
  return run(argv.slice(2));
}

/** `agent-worker [options]`: runs one task and prints its report. */
async function run(argv: string[]): Promise<number> {
  // The pipeline's modules load while the flags are parsed and the configuration is read; the report's,
  // while the agent runs.
  const modules = Promise.all([import('debug'), import('./run.js'), import('./ui/progress.js')]);
  modules.catch(() => undefined);
  const program = await buildProgram('agent-worker', 'Run an autonomous coding agent in a Docker container against a git repository; get back a branch and a report.');
  const flags = parseFlags(program, argv);
  if (typeof flags === 'number') return flags;
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

  const heldWarnings: string[] = [];
  let renderModule: Promise<typeof import('./report/render.js')> | undefined;
  const loadRender = (): Promise<typeof import('./report/render.js')> => (renderModule ??= import('./report/render.js'));
  try {
    const config = await loadProcessConfig(flags, true);
    debug = config.debug;
    const [{ default: createDebug }, { runTask }, { createProgress, progressMode }] = await modules;
    if (config.debug) createDebug.enable('agent-worker:*');
    const noColor = Boolean(process.env.NO_COLOR);
    const progress = await createProgress({
      mode: progressMode({ enabled: !config.json && !config.debug && !config.quiet, stream: process.stderr }),
      stream: process.stderr,
      color: !noColor,
    });
    const result = await runTask(config, {
      progress,
      notice: (text, kind) => {
        // A warning is shown once: in the report's table at the end (kept here in case the run fails before
        // it), or at once on stderr when stdout carries JSON.
        if (kind === 'warning' && !config.json) heldWarnings.push(text);
        else if (!config.quiet || kind === 'warning') progress.log(text);
      },
      signal: controller.signal,
      env: process.env,
      uid: process.getuid?.() ?? 1000,
      gid: process.getgid?.() ?? 1000,
      // The report's duration is the whole command's, node's own start included.
      startedAt: Math.round(performance.timeOrigin),
      whileAgentRuns: () => void loadRender().catch(() => undefined),
    });
    progress.stop();
    const render = await loadRender();
    process.stdout.write(config.json ? render.renderReportJson(result.report) : render.renderReportTable(result.report, { color: stdoutColor(config.json) }));
    return result.exitCode;
  } catch (error) {
    // No report will list them: the warnings held for it come before the error.
    for (const text of heldWarnings) process.stderr.write(`${text}\n`);
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

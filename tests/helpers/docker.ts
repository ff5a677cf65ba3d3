import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { LABEL_MANAGED, LABEL_PROJECT, LABEL_RUN_ID } from '../../src/docker/labels.js';

export const docker = new Docker();

/**
 * Whether a Docker daemon answers. With CI=true a missing daemon is an error, never a skip:
 * Docker-backed suites call this at load time and `describe.runIf` on the result.
 */
export async function dockerAvailable(): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch (error) {
    if (process.env.CI === 'true') {
      throw new Error(`CI=true but no Docker daemon answers (${String(error)}); run .ci/setup-docker.sh`);
    }
    return false;
  }
}

/** IPv4 address of the default bridge's gateway (the host as containers see it). */
export async function bridgeGateway(): Promise<string> {
  const network = (await docker.getNetwork('bridge').inspect()) as { IPAM?: { Config?: Array<{ Gateway?: string; Subnet?: string }> } };
  const ipv4 = network.IPAM?.Config?.find((config) => config.Subnet?.includes('.'));
  if (ipv4?.Gateway) return ipv4.Gateway;
  // Older engines leave Gateway out of the default bridge's IPAM; Docker gives the bridge the subnet's first address.
  const match = ipv4?.Subnet?.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)\/\d+$/);
  if (!match) throw new Error('the bridge network has neither a gateway nor an IPv4 subnet');
  return `${match[1]}.${match[2]}.${match[3]}.${Number(match[4]) + 1}`;
}

/** Containers labelled as agent-worker's (running or not), optionally of one run. */
export async function managedContainers(runId?: string): Promise<Docker.ContainerInfo[]> {
  const label = [`${LABEL_MANAGED}=true`];
  if (runId) label.push(`${LABEL_RUN_ID}=${runId}`);
  return docker.listContainers({ all: true, filters: { label } });
}

/** Containers (any state) labelled with `project` as their project, as `<short id> <state>` strings. */
export async function projectContainers(project: string): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL_PROJECT}=${project}`] } });
  return list.map((info) => `${info.Id.slice(0, 12)} ${info.State}`);
}

/** Force-removes every container of these projects: a suite's afterAll, for what a defect left behind. */
export async function removeProjectContainers(projects: string[]): Promise<void> {
  for (const project of projects) {
    for (const info of await docker.listContainers({ all: true, filters: { label: [`${LABEL_PROJECT}=${project}`] } })) {
      await docker.getContainer(info.Id).remove({ force: true }).catch(() => undefined);
    }
  }
}

/** Docker events between two times (seconds since the epoch, fractions allowed), of the given types. */
export async function dockerEvents(since: number, until: number, types: string[]): Promise<Array<{ Type: string; Action: string }>> {
  const stream = await docker.getEvents({ since: since.toFixed(3) as unknown as number, until: until.toFixed(3) as unknown as number, filters: { type: types as Array<"container" | "image"> } });
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { Type: string; Action: string });
}

/** Result of running the built CLI. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
/** The node flags of the CLI's shebang (`#!/usr/bin/env -S node <flags>`), so tests run it as the installed command runs. */
export const CLI_NODE_FLAGS = /^#!.*\bnode((?: -[^\s]+)*)\s*$/m.exec(readFileSync(path.resolve(import.meta.dirname, '../../src/cli.ts'), 'utf8').split('\n', 1)[0]!)?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];

/** CA bundle the image build and the agent need on our machines (TLS-intercepting proxy). */
export const TEST_CA_CERT = process.env.AGENT_WORKER_TEST_CA_CERT ?? '/etc/ssl/certs/ca-certificates.crt';

/** Options of {@link startCli} and {@link runCli}. */
export interface CliOptions {
  cwd: string;
  /** On top of a minimal environment (PATH, HOME). */
  env?: Record<string, string>;
  /** Standard input; none (closed at once) when undefined. */
  input?: string;
  /** The CLI is killed with SIGKILL after this long, in ms (default 600 s). */
  timeoutMs?: number;
  /** Run as this user and group (the test process must be root). */
  uid?: number;
  gid?: number;
}

/** A started CLI: its pid, its output so far, and its end (`ms`: wall time from the start). */
export interface LiveCli {
  pid: number;
  stdout(): string;
  stderr(): string;
  done: Promise<CliResult & { ms: number }>;
}

/**
 * Starts the built CLI (`dist/src/cli.js`, with its shebang's node flags) with `args`; its output can be
 * read while it runs.
 */
export function startCli(args: string[], options: CliOptions): LiveCli {
  const started = Date.now();
  const child = spawn(process.execPath, [...CLI_NODE_FLAGS, CLI, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
    ...(options.gid !== undefined ? { gid: options.gid } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  if (options.input !== undefined) child.stdin.end(options.input);
  else child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
  const done = new Promise<CliResult & { ms: number }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return { pid: child.pid!, stdout: () => stdout, stderr: () => stderr, done };
}

/**
 * Runs the built CLI with `args` (see {@link startCli}); resolves when it exits, and rejects when it
 * cannot be started (e.g. a NUL byte in an argument, which execve cannot carry).
 */
export function runCli(args: string[], options: CliOptions & { onSpawn?: (pid: number) => void }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const live = startCli(args, options);
    options.onSpawn?.(live.pid);
    live.done.then(resolve, reject);
  });
}

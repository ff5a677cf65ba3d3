/**
 * Benchmark (not a test): copy-in + copy-out of a generated ~200 MB repository through agent-worker's
 * copy workspace, next to `docker cp` of the same tree, in the same run, as a ratio.
 *
 * ours:     git bundle of HEAD → archive API into the agent's container → the entrypoint makes
 *           /workspace from it → a 1 MB change is committed inside → bundle of base..HEAD →
 *           archive API out → safe extract → git fetch into a branch.
 * baseline: a container from the same image; `docker cp` of the work tree (with .git) in, the same
 *           change inside, `docker cp` of /workspace out.
 *
 * Run: npm run bench:copy  (env BENCH_REPO_MB, BENCH_RUNS; AGENT_WORKER_TEST_CA_CERT for the image build)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { connectDocker } from '../src/docker/client.js';
import { ensureImage } from '../src/docker/image.js';
import { AgentContainer } from '../src/docker/container.js';
import { createBundle, fetchBundle, openRepo } from '../src/git/repo.js';
import { claudeCodePlugin } from '../agents/claude-code/index.js';
import { imageSpecs } from '../src/run.js';
import { VERSION } from '../src/version.js';
import { readFileSync, existsSync } from 'node:fs';

const REPO_MB = Number(process.env.BENCH_REPO_MB ?? 200);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CHANGE = 'head -c 1048576 /dev/urandom > change.bin';
const caFile = process.env.AGENT_WORKER_TEST_CA_CERT ?? '/etc/ssl/certs/ca-certificates.crt';

function sh(cwd: string, ...argv: string[]): string {
  return execFileSync(argv[0]!, argv.slice(1), { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function makeRepo(root: string): void {
  const fileMb = 0.5;
  const files = Math.round(REPO_MB / fileMb);
  sh(root, 'git', 'init', '-q', '-b', 'main');
  for (let i = 0; i < files; i += 1) {
    const dir = path.join(root, `d${Math.floor(i / 50)}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `f${i}.bin`), randomBytes(fileMb * 1024 * 1024));
  }
  sh(root, 'git', 'add', '-A');
  sh(root, 'git', '-c', 'user.name=bench', '-c', 'user.email=bench@localhost', 'commit', '-qm', 'generated');
}

async function main(): Promise<void> {
  const { docker, info } = await connectDocker({ tls: {}, insecure: false, env: process.env, home: os.homedir() });
  const image = await ensureImage(
    docker,
    { ...imageSpecs({ caCert: existsSync(caFile) ? { path: caFile, pem: readFileSync(caFile, 'utf8') } : undefined }, claudeCodePlugin, process.env).tool, hashCache: undefined },
    { force: false },
  );
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'aw-bench-copy-'));
  try {
    const source = path.join(scratch, 'repo');
    mkdirSync(source);
    makeRepo(source);
    const size = Number(sh(scratch, 'du', '-sm', source).split('\t')[0]);
    process.stderr.write(`repository: ${size} MB on disk (work tree + .git), daemon ${info.endpoint} ${info.version}\n`);
    const ours: number[] = [];
    const baseline: number[] = [];
    for (let run = 0; run < RUNS; run += 1) {
      // ours
      const clone = path.join(scratch, `ours-${run}`);
      sh(scratch, 'git', 'clone', '-q', source, clone);
      const repo = await openRepo(clone);
      const head = repo.head;
      let started = performance.now();
      const bundleFile = path.join(scratch, `in-${run}.bundle`);
      await createBundle(repo, bundleFile, head.commit, `refs/agent-worker/bench-${run}`);
      const container = await AgentContainer.create(docker, {
        image: image.tag,
        runId: `bench-${process.pid}-${run}`,
        toolVersion: VERSION,
        workspace: { mode: 'copy', bundleFile, bundleRef: `refs/agent-worker/bench-${run}`, baseCommit: head.commit, branch: 'bench', commitMessage: 'bench change', gitName: 'bench', gitEmail: 'bench@localhost' },
        project: clone,
        uid: process.getuid?.() ?? 1000,
        gid: process.getgid?.() ?? 1000,
        command: ['bash', '-c', CHANGE],
        env: {},
        secrets: {},
        task: '',
        allowHosts: [],
        timezone: 'UTC',
      });
      try {
        const exit = await container.run({ timeoutMs: 600_000, sinks: { stdout: () => undefined, stderr: (chunk) => void process.stderr.write(chunk) } });
        if (exit.exitCode !== 0) throw new Error(`bench container exited ${exit.exitCode}`);
        const outDir = path.join(scratch, `out-${run}`);
        mkdirSync(outDir);
        const files = await container.fetchCopyOutput(outDir);
        const bundle = files.find((file) => file.endsWith('work.bundle'));
        if (!bundle) throw new Error('no work bundle came back');
        await fetchBundle(repo, path.join(outDir, bundle), 'bench');
      } finally {
        await container.remove();
      }
      ours.push(performance.now() - started);

      // baseline: docker cp in and out of a container from the same image
      started = performance.now();
      const plain = await docker.createContainer({ Image: image.tag, Entrypoint: ['sleep', 'infinity'], Labels: { 'dev.agent-worker.bench': 'true' } });
      try {
        await plain.start();
        sh(scratch, 'docker', 'cp', `${clone}/.`, `${plain.id}:/workspace`);
        sh(scratch, 'docker', 'exec', '-w', '/workspace', plain.id, 'bash', '-c', CHANGE);
        sh(scratch, 'docker', 'cp', `${plain.id}:/workspace`, path.join(scratch, `cp-out-${run}`));
      } finally {
        await plain.remove({ force: true });
      }
      baseline.push(performance.now() - started);
      rmSync(clone, { recursive: true, force: true });
      rmSync(path.join(scratch, `cp-out-${run}`), { recursive: true, force: true });
      process.stderr.write(`run ${run + 1}/${RUNS}: ours ${(ours[run]! / 1000).toFixed(2)} s, docker cp ${(baseline[run]! / 1000).toFixed(2)} s\n`);
    }
    const oursMs = median(ours);
    const baseMs = median(baseline);
    const rows = [
      ['figure', 'median', 'runs'],
      ['copy-in + copy-out (agent-worker)', `${(oursMs / 1000).toFixed(2)} s`, ours.map((ms) => (ms / 1000).toFixed(2)).join(' ')],
      ['docker cp in + out (baseline)', `${(baseMs / 1000).toFixed(2)} s`, baseline.map((ms) => (ms / 1000).toFixed(2)).join(' ')],
      ['ratio agent-worker / docker cp', (oursMs / baseMs).toFixed(2), ''],
    ];
    for (const row of rows) process.stdout.write(`${row[0]!.padEnd(36)} ${row[1]!.padEnd(10)} ${row[2]}\n`);
    process.stdout.write(`machine: ${os.cpus().length} cores, ${Math.round(os.totalmem() / 1024 ** 3)} GiB; repository ${size} MB\n`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});

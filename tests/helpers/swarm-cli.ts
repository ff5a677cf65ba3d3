/**
 * Starts or removes a test swarm (tests/helpers/swarm.ts) from the command line, so one swarm can serve
 * several test runs (e.g. CI starts one for all suites):
 *
 *   npx vite-node tests/helpers/swarm-cli.ts up [--workers N] [--load IMAGE]... > swarm.json
 *   npx vite-node tests/helpers/swarm-cli.ts down swarm.json
 *
 * `up` prints exactly one JSON line ({@link SwarmDescription}) on stdout and exits, leaving the containers
 * running; progress and errors go to stderr. `down` removes the containers named in that file, by id, and
 * the dind temp folders (client certs, ssh keys) it names; it is safe to repeat.
 * Exit codes: 0 done, 1 failed, 2 usage.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { removeDir } from './git.js';
import { removeContainersById, startSwarm, type Swarm, type SwarmNode, type SwarmTimings } from './swarm.js';

/** What `up` prints: every endpoint and container id of the swarm. */
export interface SwarmDescription {
  manager: { containerId: string; ip: string; tls: { host: string; certDir: string }; plainHost: string };
  workers: Array<{ containerId: string; ip: string; workerIndex: number; tls: { host: string; certDir: string }; plainHost: string }>;
  registry: { containerId: string; address: string };
  nodes: SwarmNode[];
  /** Temp folders of the dind nodes (certs, ssh keys), removed by `down`. */
  dirs: string[];
  timings: SwarmTimings;
}

/** The JSON document `up` prints for `swarm`. */
export function describeSwarm(swarm: Swarm): SwarmDescription {
  return {
    manager: { containerId: swarm.manager.container.id, ip: swarm.manager.ip, tls: swarm.managerTls, plainHost: swarm.manager.plainHost },
    workers: swarm.workers.map((worker, index) => ({
      containerId: worker.container.id,
      ip: worker.ip,
      workerIndex: index + 1,
      tls: { host: worker.tls.host, certDir: worker.tls.certDir },
      plainHost: worker.plainHost,
    })),
    registry: { containerId: swarm.registry.container.id, address: swarm.registry.address },
    nodes: swarm.nodes,
    dirs: [swarm.manager, ...swarm.workers].map((dind) => path.dirname(dind.tls.certDir)),
    timings: swarm.timings,
  };
}

const USAGE = 'usage: swarm-cli up [--workers N] [--load IMAGE]... | swarm-cli down <json-file>';

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'up') {
    let workers: number | undefined;
    const loadImages: string[] = [];
    for (let i = 0; i < rest.length; i += 2) {
      const [flag, value] = [rest[i], rest[i + 1]];
      if (flag === '--workers' && value && /^\d+$/.test(value)) workers = Number(value);
      else if (flag === '--load' && value) loadImages.push(value);
      else {
        console.error(USAGE);
        return 2;
      }
    }
    const swarm = await startSwarm({ ...(workers !== undefined ? { workers } : {}), ...(loadImages.length ? { loadImages } : {}) });
    process.stdout.write(`${JSON.stringify(describeSwarm(swarm))}\n`);
    console.error(`swarm up in ${swarm.timings.totalMs} ms: manager ${swarm.manager.ip}, registry ${swarm.registry.address}`);
    return 0;
  }
  if (command === 'down' && rest.length === 1) {
    const description = JSON.parse(readFileSync(rest[0]!, 'utf8')) as SwarmDescription;
    const ids = [description.registry.containerId, description.manager.containerId, ...description.workers.map((worker) => worker.containerId)];
    const removed = await removeContainersById(ids);
    // Only the dind harness's own temp folders: a hand-edited file must not point this at anything else.
    for (const dir of description.dirs) {
      if (path.dirname(dir) === os.tmpdir() && path.basename(dir).startsWith('aw-dind-')) removeDir(dir);
      else console.error(`not removing ${dir}: not a dind temp folder`);
    }
    console.error(`removed ${removed} of ${ids.length} containers`);
    return 0;
  }
  console.error(USAGE);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);

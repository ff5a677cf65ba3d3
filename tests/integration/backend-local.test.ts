/**
 * The backend contract (tests/helpers/backend-contract.ts) on the local daemon: LocalBackend's containers, bridge
 * network and archive hand-off.
 */
import { ensureToolImage } from '../helpers/agent-run.js';
import { backendContract } from '../helpers/backend-contract.js';
import { bridgeGateway, docker, dockerAvailable } from '../helpers/docker.js';
import { LocalBackend } from '../../src/backends/local.js';

const hasDocker = await dockerAvailable();

backendContract('local', hasDocker, async () => ({
  backend: new LocalBackend(docker),
  image: await ensureToolImage(),
  gateway: await bridgeGateway(),
  leftovers: async (runId) => {
    const label = [`dev.agent-worker.run-id=${runId}`];
    const containers = await docker.listContainers({ all: true, filters: { label } });
    const networks = await docker.listNetworks({ filters: { label } });
    return [...containers.map((c) => `container ${c.Names.join(',')}`), ...networks.map((n) => `network ${n.Name}`)];
  },
}));

/**
 * `agent-worker gc`: removes containers agent-worker left behind (after `kill -9` of the tool, a crash
 * or a lost connection), and on a swarm manager its services, secrets and configs. Every container it creates carries the owner's host name and process id as
 * labels; a container whose owner ran on this host and is gone is garbage. `all` also removes the ones
 * owned by other hosts (whose liveness cannot be checked from here).
 */
import os from 'node:os';
import type Docker from 'dockerode';
import createDebug from 'debug';
import { LABEL_HOST, LABEL_MANAGED, LABEL_PID, LABEL_RUN_ID } from './docker/labels.js';
import { processAlive } from './run-lock.js';
import { removeQuietly } from './backends/swarm/objects.js';

const log = createDebug('agent-worker:gc');

/**
 * How long gc keeps trying to remove one secret, config or network still in use, in ms: a swarm service it just removed
 * holds them until its task's container is gone on its node (seconds).
 */
const IN_USE_WAIT_MS = 30_000;

/** One container gc removed. */
export interface RemovedContainer {
  id: string;
  runId: string;
  state: string;
}

/**
 * Removes the leftover containers on `docker` (agents' and their egress proxies'), then the leftover run networks.
 * @param options.all also remove containers of other hosts, and of live processes on this host.
 * @returns what was removed.
 */
export async function collectGarbage(docker: Docker, options: { all: boolean }): Promise<RemovedContainer[]> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${LABEL_MANAGED}=true`] } });
  const removed: RemovedContainer[] = [];
  for (const info of containers) {
    const labels = info.Labels ?? {};
    if (!isOrphan(labels) && !options.all) continue;
    try {
      await docker.getContainer(info.Id).remove({ force: true, v: true });
      removed.push({ id: info.Id.slice(0, 12), runId: labels[LABEL_RUN_ID] ?? '?', state: info.State });
      log('removed %s (run %s, %s)', info.Id.slice(0, 12), labels[LABEL_RUN_ID], info.State);
    } catch (error) {
      // 404: already gone; 409: another gc is removing it right now. Either way not ours to report;
      // any other failure is logged and the sweep goes on with the next container.
      const code = (error as { statusCode?: number }).statusCode;
      if (code !== 404 && code !== 409) log('could not remove %s: %s', info.Id.slice(0, 12), String(error));
    }
  }
  removed.push(...(await removeSwarmObjects(docker, options)));
  await removeNetworks(docker, options);
  return removed;
}

/**
 * On a swarm manager (`--backend swarm`): the services of runs that died (their tasks' containers go with them), then
 * their secrets and configs, found by the same labels. Nothing on a daemon that is not a swarm manager.
 * @returns the services removed (as containers are: id, run, and `service` as their state).
 */
async function removeSwarmObjects(docker: Docker, options: { all: boolean }): Promise<RemovedContainer[]> {
  const filters = { label: [`${LABEL_MANAGED}=true`] };
  const services = await docker.listServices({ filters }).catch(() => undefined);
  if (!services) return [];
  const removed: RemovedContainer[] = [];
  for (const info of services) {
    const labels = info.Spec?.Labels ?? {};
    if (!isOrphan(labels) && !options.all) continue;
    try {
      await docker.getService(info.ID!).remove();
      removed.push({ id: info.ID!.slice(0, 12), runId: labels[LABEL_RUN_ID] ?? '?', state: 'service' });
      log('removed service %s (run %s)', info.Spec?.Name, labels[LABEL_RUN_ID]);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) log('could not remove service %s: %s', info.Spec?.Name, String(error));
    }
  }
  const secrets = (await docker.listSecrets({ filters }).catch(() => [])) as Array<{ ID: string; Spec?: { Name?: string; Labels?: Record<string, string> } }>;
  const configs = (await docker.listConfigs({ filters }).catch(() => [])) as Array<{ ID: string; Spec?: { Name?: string; Labels?: Record<string, string> } }>;
  for (const [kind, list, remove] of [
    ['secret', secrets, (id: string) => docker.getSecret(id).remove()],
    ['config', configs, (id: string) => docker.getConfig(id).remove()],
  ] as const) {
    for (const info of list) {
      if (!isOrphan(info.Spec?.Labels ?? {}) && !options.all) continue;
      // One still used by a service just removed is tried again until its task is gone (bounded).
      const left = await removeQuietly(`${kind} ${info.Spec?.Name}`, () => remove(info.ID), IN_USE_WAIT_MS);
      if (left) log(left);
    }
  }
  return removed;
}

/**
 * Removes the runs' internal networks (src/docker/egress.ts, src/backends/swarm/egress.ts) left by runs that died,
 * found by the same labels as their containers; one still in use is tried again for up to {@link IN_USE_WAIT_MS},
 * then left for the next gc.
 */
async function removeNetworks(docker: Docker, options: { all: boolean }): Promise<void> {
  const networks = await docker.listNetworks({ filters: { label: [`${LABEL_MANAGED}=true`] } });
  for (const info of networks) {
    const labels = info.Labels ?? {};
    if (!isOrphan(labels) && !options.all) continue;
    // A swarm overlay is in use until the tasks of the services removed above are gone: tried again (bounded).
    const left = await removeQuietly(`network ${info.Name}`, () => docker.getNetwork(info.Id).remove(), IN_USE_WAIT_MS);
    if (left) log(left);
  }
}

/** Whether what carries `labels` belongs to an agent-worker process of this host that is gone. */
function isOrphan(labels: Record<string, string>): boolean {
  const pid = Number(labels[LABEL_PID]);
  return labels[LABEL_HOST] === os.hostname() && !(Number.isInteger(pid) && pid > 0 && processAlive(pid));
}

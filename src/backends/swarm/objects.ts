/**
 * The swarm objects a run creates besides its services — secrets, configs, overlay networks — with the run's labels,
 * and their removal as cleanup: bounded, safe to repeat, never thrown (what is left becomes a warning for `gc`).
 */
import type Docker from 'dockerode';
import createDebug from 'debug';
import { TimeoutError, withTimeout } from '../../docker/client.js';
import { LABEL_MANAGED } from '../../docker/labels.js';
import { DockerError, ExitCode, errorMessage } from '../../errors.js';

const log = createDebug('agent-worker:swarm');

/** Largest swarm secret the manager accepts, in bytes (it refuses 512,000 and more; measured on Engine 20.10). */
export const SECRET_MAX_BYTES = 500 * 1024;

/**
 * Creates a swarm secret holding `data`.
 * @returns its id.
 * @throws DockerError (exit {@link ExitCode.container}) naming `what` when the manager refuses it.
 */
export async function createSecret(docker: Docker, name: string, data: Buffer, labels: Record<string, string>, what: string): Promise<string> {
  if (data.length > SECRET_MAX_BYTES) {
    throw new DockerError(`${what} is ${data.length} bytes; a swarm secret holds at most ${SECRET_MAX_BYTES}.`, ExitCode.container, 'Shorten the task text or the agent\'s settings.');
  }
  try {
    const created = (await docker.createSecret({ Name: name, Labels: labels, Data: data.toString('base64') })) as { id?: string; ID?: string };
    const id = created.id ?? created.ID ?? '';
    log('created secret %s (%s)', name, id.slice(0, 12));
    return id;
  } catch (error) {
    throw new DockerError(`Creating the swarm secret for ${what} failed: ${errorMessage(error)}`, ExitCode.container, 'Run with --debug for details.', { cause: error });
  }
}

/**
 * Creates a swarm config holding `data` (not secret: `docker config inspect` shows it).
 * @returns its id.
 * @throws DockerError (exit {@link ExitCode.container}).
 */
export async function createConfig(docker: Docker, name: string, data: Buffer, labels: Record<string, string>, what: string): Promise<string> {
  try {
    const created = (await docker.createConfig({ Name: name, Labels: labels, Data: data.toString('base64') })) as { id?: string; ID?: string };
    const id = created.id ?? created.ID ?? '';
    log('created config %s (%s)', name, id.slice(0, 12));
    return id;
  } catch (error) {
    throw new DockerError(`Creating the swarm config for ${what} failed: ${errorMessage(error)}`, ExitCode.container, 'Run with --debug for details.', { cause: error });
  }
}

/**
 * Creates an overlay network; `internal` ones have no way out (no gateway bridge on the nodes).
 * @returns its id.
 * @throws DockerError (exit {@link ExitCode.container}).
 */
export async function createOverlay(docker: Docker, name: string, internal: boolean, labels: Record<string, string>): Promise<string> {
  try {
    const network = await docker.createNetwork({ Name: name, Driver: 'overlay', Internal: internal, Attachable: false, CheckDuplicate: true, Labels: labels });
    log('created overlay network %s (internal: %s)', name, internal);
    return network.id;
  } catch (error) {
    throw new DockerError(`Creating the swarm network ${name} failed: ${errorMessage(error)}`, ExitCode.container, 'Run with --debug for details.', { cause: error });
  }
}

/** How often removing a network whose tasks are still going away is tried again, in ms. */
const NETWORK_RETRY_MS = 500;

/**
 * Removes one swarm object, as cleanup: gone already (404) counts as removed; a network still in use (its tasks'
 * containers are going away) is tried again until `timeoutMs` runs out.
 * @returns undefined when it is gone, else a warning for the report naming it and `agent-worker gc`.
 */
export async function removeQuietly(what: string, remove: () => Promise<unknown>, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await withTimeout(remove(), Math.max(1, deadline - Date.now()), `the removal of ${what}`);
      log('removed %s', what);
      return undefined;
    } catch (error) {
      const code = (error as { statusCode?: number }).statusCode;
      if (code === 404) return undefined;
      const inUse = /in use|active endpoints/i.test(errorMessage(error));
      if (inUse && Date.now() + NETWORK_RETRY_MS < deadline) {
        await new Promise((resolve) => setTimeout(resolve, NETWORK_RETRY_MS));
        continue;
      }
      log('remove %s: %s', what, errorMessage(error));
      const bound = timeoutMs % 1000 === 0 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`;
      const why = error instanceof TimeoutError || inUse ? `was not removed within ${bound}` : `could not be removed (${errorMessage(error)})`;
      return `${what} ${why}; it is labelled ${LABEL_MANAGED} and \`agent-worker gc\` removes it`;
    }
  }
}

/**
 * Every label agent-worker puts on what it creates in Docker. Cleanup (`agent-worker gc`, and the
 * start of each run) finds leftovers by these labels.
 */
import { hostname } from 'node:os';

/** Marks any container or image made by agent-worker. Value: "true". */
export const LABEL_MANAGED = 'dev.agent-worker.managed';
/** The run's id (containers). */
export const LABEL_RUN_ID = 'dev.agent-worker.run-id';
/** agent-worker's version that created it. */
export const LABEL_VERSION = 'dev.agent-worker.version';
/** The image's content hash (images). */
export const LABEL_CONTENT_HASH = 'dev.agent-worker.content-hash';
/** The host process id of the agent-worker that owns a container. */
export const LABEL_PID = 'dev.agent-worker.pid';
/** The project path a container works on (containers). */
export const LABEL_PROJECT = 'dev.agent-worker.project';
/** The host name of the machine whose agent-worker owns a container (with {@link LABEL_PID}). */
export const LABEL_HOST = 'dev.agent-worker.host';
/** What a container is for: `egress-proxy` on a run's proxy sidecar; absent on the agent's container. */
export const LABEL_ROLE = 'dev.agent-worker.role';

/**
 * The labels of everything a run creates (its containers and its network): managed, the run's id, the tool's
 * version, the owner's pid and host name (so `gc` can tell an orphan), and the project's path.
 */
export function runLabels(run: { runId: string; toolVersion: string; project: string }): Record<string, string> {
  return {
    [LABEL_MANAGED]: 'true',
    [LABEL_RUN_ID]: run.runId,
    [LABEL_VERSION]: run.toolVersion,
    [LABEL_PID]: String(process.pid),
    [LABEL_HOST]: hostname(),
    [LABEL_PROJECT]: run.project,
  };
}

/**
 * The local backend: one Docker daemon (this machine's or a remote one): the agent in a container, the egress proxy
 * in a sidecar container, a per-run internal bridge network between them, files in and out through the archive API.
 */
import type Docker from 'dockerode';
import { AgentContainer } from '../docker/container.js';
import { EgressPath, type EgressSpec } from '../docker/egress.js';
import { AgentWorkerError, ExitCode } from '../errors.js';
import type { AgentBox, AgentBoxSpec, Backend, EgressBox } from './types.js';

/** Containers on one Docker daemon. */
export class LocalBackend implements Backend {
  readonly name = 'local' as const;

  /** @param docker the daemon's client. */
  constructor(private readonly docker: Docker) {}

  /** The run's internal network and the proxy's sidecar on it (see EgressPath). */
  createEgress(spec: EgressSpec): Promise<EgressBox> {
    return EgressPath.create(this.docker, spec);
  }

  /** The agent's container, alone on the egress path's network. */
  createAgent(spec: AgentBoxSpec, egress: EgressBox): Promise<AgentBox> {
    if (!(egress instanceof EgressPath)) {
      throw new AgentWorkerError('The local backend was given an egress path it did not create.', ExitCode.internal);
    }
    return AgentContainer.create(this.docker, { ...spec, networkMode: egress.networkName });
  }
}

/**
 * The swarm backend: runs go to a Docker Swarm through its manager's API alone (no node's daemon, no bind mount, no
 * shared volume): images through a registry the nodes pull from, each run's egress proxy and agent as jobs on a
 * per-run internal overlay network, inputs as a swarm secret and an image layer, the work back on the output stream.
 */
import type Docker from 'dockerode';
import createDebug from 'debug';
import { DockerError, ExitCode, PreflightError, errorMessage } from '../../errors.js';
import type { EgressSpec } from '../../docker/egress.js';
import { withTimeout } from '../../docker/client.js';
import type { AgentBox, AgentBoxSpec, Backend, EgressBox } from '../types.js';
import { SwarmAgentJob } from './agent-job.js';
import { SwarmEgress } from './egress.js';
import { nodeFacts, parseConstraint, swarmCapacity, unplaceable, type EngineNode, type SwarmNodeFacts } from './placement.js';
import { publishImage } from './registry.js';

const log = createDebug('agent-worker:swarm');

/** How long the manager may take to describe a node, in ms. */
const NODE_ANSWER_MS = 10_000;

/** How a swarm backend is set up. */
export interface SwarmBackendOptions {
  /** `host:port` of the registry the nodes pull from (the manager pushes there). */
  registry: string;
  /** Placement constraints of this run's jobs (`node.labels.size==large`). */
  placement: string[];
}

/** Runs on a swarm, through its manager. */
export class SwarmBackend implements Backend {
  readonly name = 'swarm' as const;
  /** Registry references of the images pushed by this backend, by local tag (each pushed once). */
  private readonly published = new Map<string, Promise<string>>();

  private constructor(
    private readonly docker: Docker,
    private readonly options: SwarmBackendOptions,
  ) {}

  /**
   * Checks that `docker` is a swarm manager and that some node can take the run's jobs.
   * @param reservations what each job reserves: memory in bytes, CPUs.
   * @throws DockerError (exit {@link ExitCode.docker}) when the daemon is not a swarm manager; PreflightError (exit
   *   {@link ExitCode.usage}) when a placement constraint is malformed or no node satisfies it with room for the job.
   */
  static async open(docker: Docker, options: SwarmBackendOptions, reservations: { memoryBytes: number; cpus?: number }): Promise<SwarmBackend> {
    const constraints = options.placement.map((text) => {
      try {
        return parseConstraint(text);
      } catch (error) {
        throw new PreflightError(`Bad --placement: ${errorMessage(error)}.`, ExitCode.usage, 'Write it as node.labels.KEY==VALUE (or !=), as docker service create --constraint takes it.');
      }
    });
    const nodes = await swarmNodes(docker);
    const why = unplaceable(nodes, constraints, reservations);
    if (why) {
      throw new PreflightError(`The swarm cannot run this task: ${why}.`, ExitCode.usage, 'Change the task\'s placement, --memory or --cpus, or label a node (docker node update --label-add KEY=VALUE NODE).');
    }
    return new SwarmBackend(docker, options);
  }

  /**
   * The image's registry reference the nodes pull (pushed by the manager once per tag; the tag is a content hash).
   * @throws DockerError when the push fails.
   */
  imageReference(tag: string, signal?: AbortSignal): Promise<string> {
    let reference = this.published.get(tag);
    if (!reference) {
      reference = publishImage(this.docker, tag, this.options.registry, { signal });
      reference.catch(() => this.published.delete(tag));
      this.published.set(tag, reference);
    }
    return reference;
  }

  /** A node's facts, from the manager (bounded: a manager whose host died sends no reset). */
  private async node(id: string): Promise<SwarmNodeFacts> {
    return nodeFacts((await withTimeout(this.docker.getNode(id).inspect(), NODE_ANSWER_MS, 'the swarm manager to describe a node')) as EngineNode);
  }

  async createEgress(spec: EgressSpec): Promise<EgressBox> {
    return SwarmEgress.create(this.docker, { ...spec, image: await this.imageReference(spec.image) });
  }

  async createAgent(spec: AgentBoxSpec, egress: EgressBox): Promise<AgentBox> {
    if (!(egress instanceof SwarmEgress)) throw new DockerError('The swarm backend was given an egress path it did not create.', ExitCode.internal, 'This is a bug in agent-worker.');
    const image = await this.imageReference(spec.image);
    return SwarmAgentJob.create(
      {
        docker: this.docker,
        registry: this.options.registry,
        placement: this.options.placement,
        nodeName: async (id) => (await this.node(id)).hostname,
        nodeDown: async (id) => (await this.node(id)).state === 'down',
      },
      { ...spec, image },
      egress,
    );
  }
}

/**
 * The swarm's nodes, through the manager.
 * @throws DockerError (exit {@link ExitCode.docker}) when the daemon is not a swarm manager.
 */
export async function swarmNodes(docker: Docker): Promise<SwarmNodeFacts[]> {
  try {
    return ((await docker.listNodes()) as EngineNode[]).map(nodeFacts);
  } catch (error) {
    log('list nodes: %s', errorMessage(error));
    throw new DockerError(
      `The Docker daemon is not a swarm manager (${errorMessage(error)}).`,
      ExitCode.docker,
      'Point --remote-docker (or DOCKER_HOST / the Docker context) at a manager of the swarm, or use --backend local.',
      { cause: error },
    );
  }
}

/**
 * How many jobs with these reservations the swarm runs at once: the batch's default --parallel on a swarm.
 * @throws DockerError when the daemon is not a swarm manager.
 */
export async function swarmParallelism(docker: Docker, placement: string[], reservations: { memoryBytes: number; cpus?: number }): Promise<number> {
  return swarmCapacity(await swarmNodes(docker), placement.map(parseConstraint), reservations);
}

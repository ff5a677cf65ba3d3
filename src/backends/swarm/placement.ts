/**
 * Swarm placement constraints (`node.labels.size==large`), checked against the swarm's nodes before a job is
 * created: a constraint no ready node satisfies is the user's error, said at once, where the swarm itself would
 * leave the task `pending` forever. Syntax and keys as Docker's `--constraint`
 * (https://docs.docker.com/engine/reference/commandline/service_create/#constraint).
 */

/** One parsed constraint: `key==value` or `key!=value`. */
export interface PlacementConstraint {
  key: string;
  equal: boolean;
  value: string;
  /** As the user wrote it. */
  text: string;
}

/** What a constraint is matched against: a node as `GET /nodes` describes it. */
export interface SwarmNodeFacts {
  id: string;
  hostname: string;
  role: 'worker' | 'manager';
  /** `ready`, `down`, `unknown`, `disconnected`. */
  state: string;
  /** `active`, `pause`, `drain`: only active nodes take new tasks. */
  availability: string;
  os: string;
  arch: string;
  labels: Record<string, string>;
  engineLabels: Record<string, string>;
  /** The node's CPUs (NanoCPUs / 1e9) and memory in bytes. */
  cpus: number;
  memoryBytes: number;
}

/** `key==value` or `key!=value`, spaces allowed around the operator. */
const CONSTRAINT = /^\s*([A-Za-z0-9_.-]+)\s*(==|!=)\s*(\S.*?)\s*$/;

/**
 * Parses one constraint.
 * @throws Error naming the form it must have when `text` is not `key==value` or `key!=value` with a `node.` or
 *   `engine.` key.
 */
export function parseConstraint(text: string): PlacementConstraint {
  const match = CONSTRAINT.exec(text);
  if (!match || !/^(node|engine)\./.test(match[1]!)) {
    throw new Error(`placement constraint "${text}" is not of the form node.KEY==VALUE or node.KEY!=VALUE (e.g. node.labels.size==large)`);
  }
  return { key: match[1]!, equal: match[2] === '==', value: match[3]!, text };
}

/** The node's value for `key`, or undefined when this module does not know the key (the swarm then decides). */
function nodeValue(node: SwarmNodeFacts, key: string): string | null | undefined {
  if (key === 'node.id') return node.id;
  if (key === 'node.hostname') return node.hostname;
  if (key === 'node.role') return node.role;
  if (key === 'node.platform.os') return node.os;
  if (key === 'node.platform.arch') return node.arch;
  if (key.startsWith('node.labels.')) return node.labels[key.slice('node.labels.'.length)] ?? null;
  if (key.startsWith('engine.labels.')) return node.engineLabels[key.slice('engine.labels.'.length)] ?? null;
  return undefined;
}

/** Whether `node` satisfies `constraint` (an unknown key counts as satisfied; the swarm has the last word). */
export function satisfies(node: SwarmNodeFacts, constraint: PlacementConstraint): boolean {
  const value = nodeValue(node, constraint.key);
  if (value === undefined) return true;
  // Docker compares case-insensitively; a missing label equals nothing and differs from everything.
  const same = value !== null && value.toLowerCase() === constraint.value.toLowerCase();
  return constraint.equal ? same : !same;
}

/** Nodes that take new tasks: ready and active. */
export function schedulableNodes(nodes: SwarmNodeFacts[]): SwarmNodeFacts[] {
  return nodes.filter((node) => node.state === 'ready' && node.availability === 'active');
}

/**
 * Why no node could ever run a job with these constraints and reservations, or undefined when one could.
 * @param reservations the job's memory in bytes and CPUs.
 */
export function unplaceable(nodes: SwarmNodeFacts[], constraints: PlacementConstraint[], reservations: { memoryBytes: number; cpus?: number }): string | undefined {
  const usable = schedulableNodes(nodes);
  if (usable.length === 0) return `the swarm has no ready, active node (of ${nodes.length})`;
  const placed = usable.filter((node) => constraints.every((constraint) => satisfies(node, constraint)));
  if (placed.length === 0) {
    return `no ready, active node satisfies the placement ${constraints.map((c) => `"${c.text}"`).join(' and ')} (${usable.length} node(s): ${usable.map(describeNode).join('; ')})`;
  }
  const big = placed.filter((node) => node.memoryBytes >= reservations.memoryBytes && (reservations.cpus === undefined || node.cpus >= reservations.cpus));
  if (big.length === 0) {
    const cpus = reservations.cpus === undefined ? '' : ` and ${reservations.cpus} CPU(s)`;
    return `no node that satisfies the placement has ${formatGiB(reservations.memoryBytes)} of memory${cpus} (largest: ${placed.map(describeNode).join('; ')})`;
  }
  return undefined;
}

/**
 * How many jobs with these reservations the swarm's placeable nodes hold at once (each node: the lesser of its
 * memory ÷ the job's memory and its CPUs ÷ the job's CPUs), at least 1.
 */
export function swarmCapacity(nodes: SwarmNodeFacts[], constraints: PlacementConstraint[], reservations: { memoryBytes: number; cpus?: number }): number {
  let slots = 0;
  for (const node of schedulableNodes(nodes)) {
    if (!constraints.every((constraint) => satisfies(node, constraint))) continue;
    const byMemory = Math.floor(node.memoryBytes / reservations.memoryBytes);
    const byCpu = reservations.cpus ? Math.floor(node.cpus / reservations.cpus) : byMemory;
    slots += Math.min(byMemory, byCpu);
  }
  return Math.max(1, slots);
}

function describeNode(node: SwarmNodeFacts): string {
  const labels = Object.entries(node.labels).map(([key, value]) => `${key}=${value}`);
  return `${node.hostname} (${node.role}, ${formatGiB(node.memoryBytes)}, ${node.cpus} CPU(s)${labels.length > 0 ? `, labels ${labels.join(',')}` : ''})`;
}

function formatGiB(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

/** A node as the Engine API's `GET /nodes` gives it (the fields read here). */
export interface EngineNode {
  ID?: string;
  Description?: {
    Hostname?: string;
    Platform?: { OS?: string; Architecture?: string };
    Resources?: { NanoCPUs?: number; MemoryBytes?: number };
    Engine?: { Labels?: Record<string, string> };
  };
  Spec?: { Role?: string; Availability?: string; Labels?: Record<string, string> };
  Status?: { State?: string; Addr?: string };
}

/** The facts of a node from `GET /nodes` (Docker Engine API 1.41, `Node`). */
export function nodeFacts(node: EngineNode): SwarmNodeFacts {
  return {
    id: node.ID ?? '',
    hostname: node.Description?.Hostname ?? '',
    role: node.Spec?.Role === 'manager' ? 'manager' : 'worker',
    state: node.Status?.State ?? 'unknown',
    availability: node.Spec?.Availability ?? 'active',
    os: node.Description?.Platform?.OS ?? '',
    arch: node.Description?.Platform?.Architecture ?? '',
    labels: node.Spec?.Labels ?? {},
    engineLabels: node.Description?.Engine?.Labels ?? {},
    cpus: (node.Description?.Resources?.NanoCPUs ?? 0) / 1e9,
    memoryBytes: node.Description?.Resources?.MemoryBytes ?? 0,
  };
}

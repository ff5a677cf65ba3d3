import { describe, expect, it } from 'vitest';
import { nodeFacts, parseConstraint, satisfies, swarmCapacity, unplaceable, type SwarmNodeFacts } from '../../src/backends/swarm/placement.js';

const GiB = 1024 ** 3;

function node(over: Partial<SwarmNodeFacts>): SwarmNodeFacts {
  return { id: 'n1', hostname: 'w1', role: 'worker', state: 'ready', availability: 'active', os: 'linux', arch: 'x86_64', labels: {}, engineLabels: {}, cpus: 2, memoryBytes: 8 * GiB, ...over };
}

describe('placement constraints', () => {
  it('parses == and != with the spaces Docker allows', () => {
    expect(parseConstraint('node.labels.size==large')).toMatchObject({ key: 'node.labels.size', equal: true, value: 'large' });
    expect(parseConstraint(' node.role != manager ')).toMatchObject({ key: 'node.role', equal: false, value: 'manager' });
  });

  it('refuses what is not a constraint, naming the form', () => {
    for (const text of ['size=large', 'node.labels.size', 'labels.size==large', '==x', 'node.labels.size==']) {
      expect(() => parseConstraint(text)).toThrow(/is not of the form node\.KEY==VALUE/);
    }
  });

  it('matches labels, hostname, role, platform; a missing label differs from every value; case is ignored', () => {
    const n = node({ hostname: 'Build-1', labels: { size: 'large' }, engineLabels: { gpu: 'yes' } });
    expect(satisfies(n, parseConstraint('node.labels.size==LARGE'))).toBe(true);
    expect(satisfies(n, parseConstraint('node.labels.size!=large'))).toBe(false);
    expect(satisfies(n, parseConstraint('node.labels.zone==eu'))).toBe(false);
    expect(satisfies(n, parseConstraint('node.labels.zone!=eu'))).toBe(true);
    expect(satisfies(n, parseConstraint('node.hostname==build-1'))).toBe(true);
    expect(satisfies(n, parseConstraint('node.role==manager'))).toBe(false);
    expect(satisfies(n, parseConstraint('node.platform.os==linux'))).toBe(true);
    expect(satisfies(n, parseConstraint('engine.labels.gpu==yes'))).toBe(true);
    // A key this module does not know is left to the swarm.
    expect(satisfies(n, parseConstraint('node.something.new==1'))).toBe(true);
  });

  it('says why a job cannot be placed: no usable node, no node matching, no node big enough', () => {
    const drained = node({ id: 'm', hostname: 'mgr', role: 'manager', availability: 'drain' });
    const w1 = node({ id: 'a', hostname: 'w1', labels: { 'worker-index': '1' } });
    const w2 = node({ id: 'b', hostname: 'w2', labels: { 'worker-index': '2' }, state: 'down' });
    expect(unplaceable([drained], [], { memoryBytes: GiB })).toBe('the swarm has no ready, active node (of 1)');
    expect(unplaceable([drained, w1, w2], [parseConstraint('node.labels.worker-index==2')], { memoryBytes: GiB })).toBe(
      'no ready, active node satisfies the placement "node.labels.worker-index==2" (1 node(s): w1 (worker, 8.0 GiB, 2 CPU(s), labels worker-index=1))',
    );
    expect(unplaceable([w1], [], { memoryBytes: 16 * GiB })).toMatch(/^no node that satisfies the placement has 16\.0 GiB of memory \(largest: w1/);
    expect(unplaceable([w1], [], { memoryBytes: GiB, cpus: 4 })).toMatch(/has 1\.0 GiB of memory and 4 CPU\(s\)/);
    expect(unplaceable([drained, w1, w2], [parseConstraint('node.labels.worker-index==1')], { memoryBytes: GiB, cpus: 1 })).toBeUndefined();
  });

  it('counts the jobs the placeable nodes hold at once (memory and CPUs), at least 1', () => {
    const nodes = [node({ id: 'a', cpus: 2, memoryBytes: 8 * GiB }), node({ id: 'b', cpus: 4, memoryBytes: 3 * GiB }), node({ id: 'm', availability: 'drain' })];
    expect(swarmCapacity(nodes, [], { memoryBytes: GiB, cpus: 1 })).toBe(2 + 3);
    expect(swarmCapacity(nodes, [], { memoryBytes: 4 * GiB })).toBe(2);
    expect(swarmCapacity(nodes, [parseConstraint('node.hostname==nowhere')], { memoryBytes: GiB })).toBe(1);
  });

  it('reads a node from the Engine API', () => {
    expect(
      nodeFacts({
        ID: 'x1',
        Description: { Hostname: 'h', Platform: { OS: 'linux', Architecture: 'aarch64' }, Resources: { NanoCPUs: 2e9, MemoryBytes: 1000 }, Engine: { Labels: { a: 'b' } } },
        Spec: { Role: 'manager', Availability: 'drain', Labels: { size: 'large' } },
        Status: { State: 'ready' },
      }),
    ).toEqual({ id: 'x1', hostname: 'h', role: 'manager', state: 'ready', availability: 'drain', os: 'linux', arch: 'aarch64', labels: { size: 'large' }, engineLabels: { a: 'b' }, cpus: 2, memoryBytes: 1000 });
  });
});

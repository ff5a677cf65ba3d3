import { describe, expect, it } from 'vitest';
import { jobServiceSpec, jobTask } from '../../src/backends/swarm/job.js';

/** The parts of the service spec read here. */
interface SpecShape {
  Mode: unknown;
  EndpointSpec: unknown;
  TaskTemplate: {
    RestartPolicy: unknown;
    Resources: unknown;
    Placement: unknown;
    Networks: unknown;
    ContainerSpec: { CapabilityDrop: unknown; CapabilityAdd: unknown; Secrets: unknown; Configs: unknown; Env: unknown; Args: unknown; Command: unknown; StopGracePeriod: unknown };
  };
}

describe('jobServiceSpec', () => {
  const spec = jobServiceSpec({
    name: 'agent-worker-run1',
    image: 'reg:5000/agent-worker:abc@sha256:00',
    labels: { 'dev.agent-worker.managed': 'true' },
    args: ['claude', '-p'],
    env: { A: '1', B: 'x=y' },
    workingDir: '/workspace',
    capabilities: ['NET_ADMIN', 'SETUID'],
    secrets: [{ id: 's1', name: 'agent-worker-run1-handoff', target: 'agent-worker-handoff', uid: 65533 }],
    configs: [{ id: 'c1', name: 'prog', target: '/usr/local/lib/p.mjs' }],
    networks: [{ id: 'n1', aliases: ['agent-worker-proxy'] }, { id: 'n2' }],
    resources: { memoryBytes: 512 * 1024 ** 2, cpus: 0.5, pidsLimit: 100 },
    placement: ['node.labels.size==large'],
    stopGracePeriodMs: 60_000,
  }) as unknown as SpecShape;

  it('is one replica never restarted, found by DNS round robin (no VIP: no IPVS needed)', () => {
    expect(spec.Mode).toEqual({ Replicated: { Replicas: 1 } });
    expect(spec.TaskTemplate.RestartPolicy).toEqual({ Condition: 'none', MaxAttempts: 0 });
    expect(spec.EndpointSpec).toEqual({ Mode: 'dnsrr' });
  });

  it('reserves what it limits (memory, CPUs in nano-CPUs) and limits processes', () => {
    expect(spec.TaskTemplate.Resources).toEqual({
      Limits: { MemoryBytes: 536870912, NanoCPUs: 500_000_000, Pids: 100 },
      Reservations: { MemoryBytes: 536870912, NanoCPUs: 500_000_000 },
    });
  });

  it('drops every capability and adds back the named ones; secrets and configs are 0400 files of their owner', () => {
    const container = spec.TaskTemplate.ContainerSpec;
    expect(container.CapabilityDrop).toEqual(['ALL']);
    expect(container.CapabilityAdd).toEqual(['CAP_NET_ADMIN', 'CAP_SETUID']);
    expect(container.Secrets).toEqual([{ SecretID: 's1', SecretName: 'agent-worker-run1-handoff', File: { Name: 'agent-worker-handoff', UID: '65533', GID: '65533', Mode: 0o400 } }]);
    expect(container.Configs).toEqual([{ ConfigID: 'c1', ConfigName: 'prog', File: { Name: '/usr/local/lib/p.mjs', UID: '0', GID: '0', Mode: 0o400 } }]);
    expect(container.Env).toEqual(['A=1', 'B=x=y']);
    expect(container.Args).toEqual(['claude', '-p']);
    expect(container.Command).toBeUndefined();
    expect(container.StopGracePeriod).toBe(60e9);
  });

  it('places by the constraints and joins the networks with their aliases', () => {
    expect(spec.TaskTemplate.Placement).toEqual({ Constraints: ['node.labels.size==large'] });
    expect(spec.TaskTemplate.Networks).toEqual([{ Target: 'n1', Aliases: ['agent-worker-proxy'] }, { Target: 'n2' }]);
  });
});

describe('jobTask', () => {
  it('reads a task from the Engine API (a failed one: its exit code and error)', () => {
    expect(jobTask({ ID: 't', NodeID: 'n', DesiredState: 'shutdown', Status: { State: 'failed', Err: 'task: non-zero exit (7)', ContainerStatus: { ExitCode: 7 } } })).toEqual({
      id: 't',
      state: 'failed',
      desiredState: 'shutdown',
      err: 'task: non-zero exit (7)',
      nodeId: 'n',
      exitCode: 7,
    });
    expect(jobTask({ Status: { State: 'pending', Err: '' } })).toMatchObject({ state: 'pending', err: undefined, nodeId: undefined, exitCode: undefined });
  });
});

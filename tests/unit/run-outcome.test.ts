import { describe, expect, it } from 'vitest';
import { agentFailureReason, containerSetupFailure } from '../../src/run.js';
import { ExitCode } from '../../src/errors.js';
import { API_UNREACHABLE_EXIT_CODE, FIREWALL_EXIT_CODE, type ContainerExit } from '../../src/docker/container.js';
import { makeTokenUsage, type AgentOutcome } from '../../agents/types.js';

const exited = (exitCode: number): ContainerExit => ({ exitCode, reason: 'exited', oomKilled: false });

function outcome(overrides: Partial<AgentOutcome> = {}): AgentOutcome {
  return { turns: 1, isError: false, tokens: makeTokenUsage(0, 0, 0, 0), fromResult: true, ...overrides };
}

describe('agentFailureReason', () => {
  it("is the agent's error result, on one line", () => {
    const result = outcome({ isError: true, resultSubtype: 'success', resultText: 'API Error: Connection refused\n  (ECONNREFUSED http://host.docker.internal:9)' });
    expect(agentFailureReason(exited(1), result, [])).toBe('API Error: Connection refused (ECONNREFUSED http://host.docker.internal:9)');
  });

  it("is the agent's last stderr line when it exited non-zero without a result, not the entrypoint's lines", () => {
    const tail = ['agent-worker: agent process started at 1.2', 'Error: invalid API key format', '', 'agent-worker: agent process ended at 3.4'];
    expect(agentFailureReason(exited(2), outcome({ resultSubtype: undefined }), tail)).toBe('Error: invalid API key format');
  });

  it('is cut to 200 characters', () => {
    const reason = agentFailureReason(exited(1), outcome({ isError: true, resultText: 'x'.repeat(5000) }), []);
    expect(reason).toHaveLength(200);
    expect(reason!.endsWith('…')).toBe(true);
  });

  it('is undefined for a success, a timeout and an interrupt', () => {
    expect(agentFailureReason(exited(0), outcome({ resultText: 'Done.' }), ['noise'])).toBeUndefined();
    expect(agentFailureReason({ exitCode: null, reason: 'timed_out', oomKilled: false }, outcome(), ['Killed'])).toBeUndefined();
    expect(agentFailureReason({ exitCode: null, reason: 'interrupted', oomKilled: false }, outcome(), ['Killed'])).toBeUndefined();
  });
});

describe('containerSetupFailure', () => {
  const origin = {
    apiUrl: new URL('http://api.nowhere.invalid:8080'),
    baseUrl: 'http://api.nowhere.invalid:8080',
    allowHosts: ['registry.npmjs.org', 'mcp.nowhere.invalid'],
    mcpHosts: ['mcp.nowhere.invalid'],
  };

  it('names --base-url for an API host that does not resolve, without internal variable names or a doubled prefix', () => {
    const tail = ["agent-worker: firewall setup failed: cannot resolve host 'api.nowhere.invalid' (no IPv4 or IPv6 address)"];
    const error = containerSetupFailure(exited(FIREWALL_EXIT_CODE), tail, origin)!;
    expect(error.exitCode).toBe(ExitCode.container);
    expect(error.message).toBe(
      'The host api.nowhere.invalid (from --base-url http://api.nowhere.invalid:8080) does not resolve to an address, so the container\'s firewall cannot allow it and the agent was not started.',
    );
    expect(`${error.message} ${error.hint}`).not.toMatch(/AW_|agent-worker:/);
  });

  it('names --allow-host, and the MCP server a host is for', () => {
    const npm = containerSetupFailure(exited(FIREWALL_EXIT_CODE), ["agent-worker: firewall setup failed: cannot resolve host 'registry.npmjs.org' (no IPv4 or IPv6 address)"], origin)!;
    expect(npm.message).toContain('(from --allow-host registry.npmjs.org)');
    const mcp = containerSetupFailure(exited(FIREWALL_EXIT_CODE), ["agent-worker: firewall setup failed: cannot resolve host 'mcp.nowhere.invalid' (no IPv4 or IPv6 address)"], origin)!;
    expect(mcp.message).toContain("(from --allow-host mcp.nowhere.invalid (an MCP server's host in --mcp-config))");
  });

  it('says what the model API check found, with the URL', () => {
    const tail = ['agent-worker: model API check failed: api.nowhere.invalid:8080: connection refused'];
    const error = containerSetupFailure(exited(API_UNREACHABLE_EXIT_CODE), tail, origin)!;
    expect(error.exitCode).toBe(ExitCode.container);
    expect(error.message).toBe(
      "The model API at http://api.nowhere.invalid:8080/ did not accept a connection from the agent's container (api.nowhere.invalid:8080: connection refused), so the agent was not started.",
    );
    expect(error.hint).toMatch(/--base-url/);
  });

  it("is undefined for the agent's own exits, even with the same codes", () => {
    expect(containerSetupFailure(exited(FIREWALL_EXIT_CODE), ['some agent output'], origin)).toBeUndefined();
    expect(containerSetupFailure(exited(API_UNREACHABLE_EXIT_CODE), [], origin)).toBeUndefined();
    expect(containerSetupFailure(exited(1), ['agent-worker: firewall setup failed: x'], origin)).toBeUndefined();
  });
});

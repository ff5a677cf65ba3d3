import { describe, expect, it } from 'vitest';
import { agentFailureReason, containerSetupFailure, exitCodeFor, runStatus, upstreamFailure } from '../../src/run.js';
import { EgressAudit } from '../../src/report/egress-audit.js';
import { UNRESOLVED } from '../../src/proxy/egress-proxy.js';
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
  it("quotes the firewall's reason without the entrypoint's prefix", () => {
    const error = containerSetupFailure(exited(FIREWALL_EXIT_CODE), ['agent-worker: firewall setup failed: no usable iptables backend (iptables-nft: x)'])!;
    expect(error.exitCode).toBe(ExitCode.container);
    expect(error.message).toBe("The container's firewall could not be set up (no usable iptables backend (iptables-nft: x)), so the agent was not started.");
    expect(error.message).not.toContain('agent-worker:');
  });

  it('says the egress proxy did not answer the container', () => {
    const error = containerSetupFailure(exited(API_UNREACHABLE_EXIT_CODE), ['agent-worker: model API check failed: agent-worker-proxy:8080: connection refused'])!;
    expect(error.exitCode).toBe(ExitCode.container);
    expect(error.message).toContain('(agent-worker-proxy:8080: connection refused)');
  });

  it("is undefined for the agent's own exits, even with the same codes", () => {
    expect(containerSetupFailure(exited(FIREWALL_EXIT_CODE), ['some agent output'])).toBeUndefined();
    expect(containerSetupFailure(exited(API_UNREACHABLE_EXIT_CODE), [])).toBeUndefined();
    expect(containerSetupFailure(exited(1), ['agent-worker: firewall setup failed: x'])).toBeUndefined();
  });
});

describe('upstreamFailure', () => {
  const apiUrl = new URL('http://api.nowhere.invalid:8080');

  it('names --base-url for a host that does not resolve, without internal names', () => {
    const error = upstreamFailure([{ url: apiUrl.href, ok: false, error: UNRESOLVED }], apiUrl, 'http://api.nowhere.invalid:8080')!;
    expect(error.exitCode).toBe(ExitCode.container);
    expect(error.message).toBe('The host api.nowhere.invalid (from --base-url http://api.nowhere.invalid:8080) does not resolve to an address, so the agent was not started.');
    expect(`${error.message} ${error.hint}`).not.toMatch(/AW_|agent-worker:/);
  });

  it('says what the connection found, with the URL', () => {
    const error = upstreamFailure([{ url: apiUrl.href, ok: false, error: 'connection refused' }], apiUrl, 'http://api.nowhere.invalid:8080')!;
    expect(error.message).toBe('The model API at http://api.nowhere.invalid:8080/ did not accept a connection from the egress proxy (connection refused), so the agent was not started.');
    expect(error.hint).toMatch(/--base-url/);
  });

  it('is undefined when every upstream answered', () => {
    expect(upstreamFailure([{ url: apiUrl.href, ok: true }], apiUrl)).toBeUndefined();
    expect(upstreamFailure([], apiUrl)).toBeUndefined();
  });
});

describe('a credential the model API refused', () => {
  const api = (status: number) => ({ time: '2026-11-30T00:00:00.000Z', kind: 'api' as const, host: 'api.example.com', port: 443, method: 'POST', allowed: true, status, bytesUp: 10, bytesDown: 10, durationMs: 1 });

  it('is the audit\'s last model API answer when it was 401 or 403', async () => {
    const audit = await EgressAudit.open('/nonexistent-dir/egress.jsonl');
    expect(audit.credentialRefusal()).toBeUndefined();
    audit.record(api(401));
    expect(audit.credentialRefusal()).toBe(401);
    audit.record(api(200));
    expect(audit.credentialRefusal()).toBeUndefined();
    audit.record(api(403));
    expect(audit.credentialRefusal()).toBe(403);
    audit.record(api(500));
    expect(audit.credentialRefusal()).toBeUndefined();
  });

  it('makes a failed agent auth_failed (exit 7), never a successful one, a timeout or a limit', () => {
    const signal = new AbortController().signal;
    expect(runStatus(exited(1), outcome({ isError: true }), undefined, 401)).toBe('auth_failed');
    expect(exitCodeFor('auth_failed', signal)).toBe(ExitCode.credentials);
    expect(runStatus(exited(1), outcome({ isError: true }), undefined, undefined)).toBe('agent_error');
    expect(runStatus(exited(0), outcome(), undefined, 401)).toBe('success');
    expect(runStatus({ exitCode: null, reason: 'timed_out', oomKilled: false }, outcome(), undefined, 401)).toBe('timed_out');
    expect(runStatus(exited(1), outcome({ limitReached: 'max_turns' }), undefined, 403)).toBe('max_turns');
  });
});

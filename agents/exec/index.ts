/**
 * The `exec` agent: any CLI the user installs in a project image (or keeps in the repository), run like every other
 * agent — firewall, egress proxy, timeout, branch, report — from `--agent-command "<argv>"`. agent-worker cannot read
 * its output, so tokens are reported as unknown (null) and cost as none.
 *
 * What the command gets: the task (after agent-worker's instructions: where its work goes) on standard input; when
 * `--base-url` is given, `AGENT_WORKER_API_BASE_URL` (the egress proxy, which forwards to `--base-url`) and, with
 * `--api-key`, `AGENT_WORKER_API_KEY` holding a placeholder the proxy swaps for the real key in an `Authorization:
 * Bearer`, `x-api-key`, `x-goog-api-key` or `api-key` header; and
 * `HTTPS_PROXY`/`HTTP_PROXY` for every other host (`--allow-host`).
 */
import type { AgentCredentials, AgentEvent, AgentLaunchOptions, AgentOutcome, AgentPlugin, AgentStreamParser, CredentialRule } from '../types.js';
import { makeTokenUsage } from '../types.js';
import { oneLine, TEXT_EVENT_MAX_CHARS } from '../shared/json.js';

/** Longest final line kept as the outcome's `resultText`, in characters. */
const RESULT_TEXT_MAX_CHARS = 2000;

/**
 * A parser for a CLI agent-worker knows nothing about: each non-empty line of its standard output is a `text` event
 * (one line, at most {@link TEXT_EVENT_MAX_CHARS} characters); the outcome has no turns, unknown tokens, no cost, and
 * its last non-empty line as `resultText`. Its exit code alone says whether it succeeded. Never throws.
 */
export function createExecParser(): AgentStreamParser {
  let last: string | undefined;
  return {
    push(line: string): AgentEvent[] {
      if (line.trim() === '') return [];
      last = line.length > RESULT_TEXT_MAX_CHARS ? `${line.slice(0, RESULT_TEXT_MAX_CHARS - 1)}…` : line;
      return [{ kind: 'text', text: oneLine(line, TEXT_EVENT_MAX_CHARS) }];
    },
    outcome(): AgentOutcome {
      return { turns: 0, isError: false, resultText: last, tokens: makeTokenUsage(0, 0, 0, 0), tokensUnknown: true, fromResult: false };
    },
  };
}

/** Placeholder header rules: whichever header the user's CLI sends the key in, only the exact placeholder is swapped. */
const KEY_HEADERS: Array<{ header: string; scheme?: string }> = [{ header: 'authorization', scheme: 'Bearer' }, { header: 'x-api-key' }, { header: 'x-goog-api-key' }, { header: 'api-key' }];

/** The exec plugin, used with `--agent-type exec --agent-command "<argv>"`. */
export const execPlugin: AgentPlugin = {
  name: 'exec',

  image: { installScript: 'exec/install.sh', version: '1' },

  settings: {
    apiKeyEnv: ['AGENT_API_KEY'],
    baseUrlEnv: ['AGENT_BASE_URL'],
    modelEnv: ['AGENT_MODEL'],
    baseUrlForm: 'whatever the command calls (its API root)',
    credentialHint: 'The exec agent needs no credential; give --api-key (AGENT_API_KEY) and --base-url when the command calls a model API.',
    credentialsOptional: true,
  },

  supports: { appendSystemPrompt: false, mcp: false, maxTurns: false, maxBudgetUsd: false, oauthToken: false },

  secretShapes: [],

  api: {
    defaultBaseUrl: undefined,
    credentialRules(real: AgentCredentials, placeholders: AgentCredentials): CredentialRule[] {
      if (!real.apiKey || !placeholders.apiKey) return [];
      const [key, placeholder] = [real.apiKey, placeholders.apiKey];
      return KEY_HEADERS.map((rule) => ({ ...rule, placeholder, value: key }));
    },
  },

  /** `--agent-command`, as given (split like a shell would, but never run by one). */
  argv(options: AgentLaunchOptions): string[] {
    if (!options.agentCommand || options.agentCommand.length === 0) throw new Error('the exec agent needs --agent-command');
    return [...options.agentCommand];
  },

  /** Secret: `AGENT_WORKER_API_KEY` when a key was given. Plain: `AGENT_WORKER_API_BASE_URL` (the proxy). */
  env(credentials: AgentCredentials): { secret: Record<string, string>; plain: Record<string, string> } {
    const secret: Record<string, string> = {};
    if (credentials.apiKey) secret.AGENT_WORKER_API_KEY = credentials.apiKey;
    const plain: Record<string, string> = {};
    if (credentials.baseUrl) plain.AGENT_WORKER_API_BASE_URL = credentials.baseUrl;
    return { secret, plain };
  },

  createParser(): AgentStreamParser {
    return createExecParser();
  },
};

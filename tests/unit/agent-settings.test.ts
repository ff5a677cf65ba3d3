/**
 * The settings every agent shares, read for the agent chosen: its own variables for the key, base URL and model; flags
 * it cannot honour refused up front; --agent-command for the exec agent; --prices and where a run's cost comes from.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, parseAgentCommand, parsePriceTable, type ConfigContext, type RawFlags } from '../../src/config.js';
import { runCost, taskFor } from '../../src/run.js';
import { ConfigError } from '../../src/errors.js';
import { getAgentPlugin } from '../../agents/index.js';
import { makeTokenUsage, MAX_TOKENS, type AgentOutcome } from '../../agents/types.js';
import { createExecParser } from '../../agents/exec/index.js';
import { codexPlugin } from '../../agents/codex/index.js';
import { tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();

function context(env: Record<string, string> = {}): ConfigContext {
  const cwd = track(tempDir());
  return { cwd, env, readStdin: async () => '', hostTimeZone: 'UTC' };
}

async function problemsOf(flags: RawFlags, ctx: ConfigContext): Promise<string[]> {
  try {
    await loadConfig(flags, ctx);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('each agent reads the key, base URL and model from its own variables', () => {
  it('codex: OPENAI_API_KEY, OPENAI_BASE_URL, CODEX_MODEL; Anthropic\'s are not read', async () => {
    const config = await loadConfig(
      { task: 't', agentType: 'codex' },
      context({ OPENAI_API_KEY: 'sk-openai', OPENAI_BASE_URL: 'http://llm:8000/v1', CODEX_MODEL: 'gpt-test', ANTHROPIC_API_KEY: 'sk-ant-no', ANTHROPIC_MODEL: 'claude-no' }),
    );
    expect(config).toMatchObject({ agentType: 'codex', apiKey: 'sk-openai', baseUrl: 'http://llm:8000/v1', model: 'gpt-test' });
    expect(config.oauthToken).toBeUndefined();
  });

  it('claude: ANTHROPIC_* as before; OPENAI_API_KEY is not read', async () => {
    const config = await loadConfig({ task: 't' }, context({ ANTHROPIC_API_KEY: 'sk-ant-yes', OPENAI_API_KEY: 'sk-openai' }));
    expect(config.apiKey).toBe('sk-ant-yes');
  });

  it('the flags beat every variable', async () => {
    const config = await loadConfig({ task: 't', agentType: 'codex', apiKey: 'from-flag', model: 'm' }, context({ OPENAI_API_KEY: 'from-env' }));
    expect(config).toMatchObject({ apiKey: 'from-flag', model: 'm' });
  });
});

describe('a flag the agent cannot honour is refused, never dropped', () => {
  it.each([
    ['--max-turns', { maxTurns: '5' }],
    ['--max-budget-usd', { maxBudgetUsd: '2' }],
    ['--oauth-token', { oauthToken: 'tok' }],
  ] as Array<[string, RawFlags]>)('codex refuses %s, naming the agents that take it', async (flag, flags) => {
    const problems = await problemsOf({ task: 't', agentType: 'codex', ...flags }, context());
    expect(problems).toEqual([expect.stringMatching(new RegExp(`^${flag}: the codex agent does not support it; .*--agent-type [a-z|]*claude`))]);
  });

  it('an agent without a default model (copilot) refuses to start without --model', async () => {
    expect(await problemsOf({ task: 't', agentType: 'copilot' }, context({ COPILOT_PROVIDER_API_KEY: 'k' }))).toEqual([
      expect.stringContaining('--model: the copilot agent has no default model; give one with --model or COPILOT_MODEL'),
    ]);
    expect((await loadConfig({ task: 't', agentType: 'copilot' }, context({ COPILOT_PROVIDER_API_KEY: 'k', COPILOT_MODEL: 'gpt-x' }))).model).toBe('gpt-x');
  });

  it.each(['--sandbox', '-sfoo', 'gpt\nx'])('refuses a model an agent would take for a flag (or that holds a control character): %j', async (model) => {
    expect(await problemsOf({ task: 't', agentType: 'gemini', model }, context({ GEMINI_API_KEY: 'k' }))).toEqual([expect.stringContaining('is not a model name')]);
    expect(await problemsOf({ task: 't', agentType: 'qwen' }, context({ OPENAI_API_KEY: 'k', OPENAI_MODEL: model }))).toEqual([expect.stringContaining('is not a model name')]);
  });

  it('codex refuses --mcp-config', async () => {
    const ctx = context();
    writeFileSync(path.join(ctx.cwd, 'mcp.json'), JSON.stringify({ mcpServers: { docs: { type: 'http', url: 'https://mcp.example.com/x' } } }));
    const problems = await problemsOf({ task: 't', agentType: 'codex', mcpConfig: 'mcp.json' }, ctx);
    expect(problems).toEqual([expect.stringContaining('--mcp-config: the codex agent does not support it')]);
  });

  it('an agent without a system-prompt flag gets the instructions before the task on stdin', () => {
    const launch = { apiBaseUrl: 'http://p:8080', appendSystemPrompt: 'Commit nothing yourself.' };
    expect(taskFor(codexPlugin, launch, 'Fix it')).toBe('Commit nothing yourself.\n\n---\n\nFix it');
    expect(taskFor(getAgentPlugin('claude')!, launch, 'Fix it')).toBe('Fix it');
  });
});

describe('--agent-command (the exec agent)', () => {
  it('is split like a shell would, with $VAR kept literal and never expanded', () => {
    const problems: string[] = [];
    expect(parseAgentCommand(`my-agent --say "two words" 'it''s' $HOME a\\ b`, (p) => problems.push(p))).toEqual(['my-agent', '--say', 'two words', 'its', '$HOME', 'a b']);
    expect(problems).toEqual([]);
  });

  it.each(['a | b', 'a && b', 'a > out', 'a; b'])('refuses shell syntax: %s', (command) => {
    const problems: string[] = [];
    expect(parseAgentCommand(command, (p) => problems.push(p))).toBeUndefined();
    expect(problems).toEqual([expect.stringContaining("put it in a script, or use bash -c '…'")]);
  });

  it('is required by exec and refused by every other agent', async () => {
    expect(await problemsOf({ task: 't', agentType: 'exec' }, context())).toEqual([expect.stringContaining('--agent-command: --agent-type exec needs the command line of your agent')]);
    expect(await problemsOf({ task: 't', agentType: 'codex', agentCommand: 'x' }, context({ OPENAI_API_KEY: 'k' }))).toEqual([
      expect.stringContaining('--agent-command: only --agent-type exec runs a command of yours'),
    ]);
    const config = await loadConfig({ task: 't', agentType: 'exec', agentCommand: 'bash ./agent.sh --fast' }, context());
    expect(config.agentCommand).toEqual(['bash', './agent.sh', '--fast']);
  });

  it('its parser reports every output line as text, unknown tokens, the last line as the result', () => {
    const parser = createExecParser();
    expect(parser.push('working on it')).toEqual([{ kind: 'text', text: 'working on it' }]);
    expect(parser.push('   ')).toEqual([]);
    parser.push('done: 3 files');
    expect(parser.outcome()).toMatchObject({ turns: 0, tokensUnknown: true, resultText: 'done: 3 files', isError: false });
  });
});

describe('--prices and where a run\'s cost comes from', () => {
  const outcome = (costUsd?: number): AgentOutcome => ({ turns: 1, isError: false, fromResult: true, tokens: makeTokenUsage(1_000_000, 200_000, 2_000_000, 0, 50_000), costUsd });
  const prices = { 'gpt-test': { input: 1.25, output: 10, cacheRead: 0.125 } };

  it('the agent\'s own cost wins; else the tokens priced per million; else none', () => {
    expect(runCost(outcome(0.5), 'gpt-test', prices)).toEqual({ costUsd: 0.5, costSource: 'agent' });
    // 1M input × 1.25 + 0.2M output × 10 + 2M cache reads × 0.125 = 1.25 + 2 + 0.25
    expect(runCost(outcome(), 'gpt-test', prices)).toEqual({ costUsd: 3.5, costSource: 'prices' });
    expect(runCost(outcome(), 'other-model', prices)).toEqual({ costUsd: null, costSource: null });
    expect(runCost(outcome(), 'gpt-test', undefined)).toEqual({ costUsd: null, costSource: null });
    expect(runCost({ ...outcome(), tokensUnknown: true }, 'gpt-test', prices)).toEqual({ costUsd: null, costSource: null });
  });

  it('cache prices default to the input price', () => {
    expect(runCost(outcome(), 'm', { m: { input: 1, output: 0 } }).costUsd).toBe(3);
  });

  it('refuses a bad table with every problem named', () => {
    const problems: string[] = [];
    expect(parsePriceTable('{"a": {"input": -1, "output": 2}, "b": {"input": 1}, "c": {"input": 1, "output": 1, "cached": 0}, "d": 5}', (p) => problems.push(p))).toBeUndefined();
    expect(problems).toEqual([
      expect.stringContaining('"a".input must be a number'),
      expect.stringContaining('"b".output must be a number'),
      expect.stringContaining('"c" has unknown field(s) cached'),
      expect.stringContaining('"d" must be an object'),
    ]);
    expect(parsePriceTable('not json', (p) => problems.push(p))).toBeUndefined();
    expect(problems.at(-1)).toContain('is not JSON');
  });

  it('is read by --prices, its problems naming the file', async () => {
    const ctx = context();
    writeFileSync(path.join(ctx.cwd, 'prices.json'), JSON.stringify(prices));
    expect((await loadConfig({ task: 't', prices: 'prices.json' }, ctx)).prices).toEqual(prices);
    writeFileSync(path.join(ctx.cwd, 'bad.json'), '[]');
    expect(await problemsOf({ task: 't', prices: 'bad.json' }, ctx)).toEqual([expect.stringMatching(/^--prices: .*bad\.json: must be a JSON object of models/)]);
  });
});

describe('token counts from an agent\'s output are not trusted', () => {
  it('each count is a whole number from 0 to MAX_TOKENS, reasoning at most output, total exact', () => {
    expect(makeTokenUsage(-5, 3.7, Number.NaN, Number.POSITIVE_INFINITY, 10)).toEqual({ input: 0, output: 3, cacheRead: 0, cacheWrite: MAX_TOKENS, reasoning: 3, total: 3 + MAX_TOKENS });
    expect(Number.isSafeInteger(makeTokenUsage(1e308, 1e308, 1e308, 1e308).total)).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, MAX_DURATION_SECONDS, type ConfigContext, type RawFlags } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();

function project(dotenv?: string): string {
  const dir = track(tempDir());
  if (dotenv !== undefined) writeFileSync(path.join(dir, '.env'), dotenv);
  return dir;
}

function context(cwd: string, env: Record<string, string> = {}, stdin = ''): ConfigContext {
  return { cwd, env, readStdin: async () => stdin, hostTimeZone: 'Europe/Berlin' };
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

describe('loadConfig precedence: flags > environment > .env > defaults', () => {
  it('uses defaults when nothing is set', async () => {
    const dir = project();
    const config = await loadConfig({ task: 'do it' }, context(dir));
    expect(config).toMatchObject({
      project: dir,
      task: 'do it',
      agentType: 'claude',
      timezone: 'Europe/Berlin',
      timeoutSeconds: 3600,
      forceRebuild: false,
      debug: false,
      json: false,
      allowHosts: [],
    });
    expect(config.branch).toBeUndefined();
    expect(config.baseUrl).toBeUndefined();
  });

  it('falls back to UTC when the host time zone is unknown', async () => {
    const dir = project();
    const config = await loadConfig({ task: 't' }, { ...context(dir), hostTimeZone: undefined });
    expect(config.timezone).toBe('UTC');
  });

  it('.env beats defaults, environment beats .env, flags beat environment', async () => {
    const dir = project('AGENT_TIMEOUT=100\nANTHROPIC_API_KEY=from-dotenv\nANTHROPIC_MODEL=dotenv-model\nTZ=Asia/Tokyo\n');
    const fromFile = await loadConfig({ task: 't' }, context(dir));
    expect(fromFile).toMatchObject({ timeoutSeconds: 100, apiKey: 'from-dotenv', model: 'dotenv-model', timezone: 'Asia/Tokyo' });

    const fromEnv = await loadConfig({ task: 't' }, context(dir, { AGENT_TIMEOUT: '200', ANTHROPIC_API_KEY: 'from-env' }));
    expect(fromEnv).toMatchObject({ timeoutSeconds: 200, apiKey: 'from-env', model: 'dotenv-model' });

    const fromFlags = await loadConfig(
      { task: 't', timeout: '300', apiKey: 'from-flag', model: 'flag-model' },
      context(dir, { AGENT_TIMEOUT: '200', ANTHROPIC_API_KEY: 'from-env' }),
    );
    expect(fromFlags).toMatchObject({ timeoutSeconds: 300, apiKey: 'from-flag', model: 'flag-model' });
  });

  it('reads every documented variable', async () => {
    const dir = project();
    const other = project();
    const config = await loadConfig(
      {},
      context(dir, {
        PROJECT_PATH: other,
        AGENT_BRANCH: 'feature/x',
        AGENT_TASK: 'env task',
        AGENT_TYPE: 'claude',
        ANTHROPIC_API_KEY: 'k',
        CLAUDE_CODE_OAUTH_TOKEN: 'o',
        ANTHROPIC_BASE_URL: 'http://host.docker.internal:8080',
        TZ: 'UTC',
        AGENT_TIMEOUT: '60',
        DOCKER_HOST: 'unix:///var/run/docker.sock',
        FORCE_REBUILD: 'true',
        DEBUG: '1',
        AGENT_WORKER_JSON: 'yes',
        ANTHROPIC_MODEL: 'm',
        AGENT_MAX_TURNS: '7',
        AGENT_ALLOW_HOSTS: 'registry.npmjs.org, pypi.org',
      }),
    );
    expect(config).toMatchObject({
      project: other,
      branch: 'feature/x',
      task: 'env task',
      apiKey: 'k',
      oauthToken: 'o',
      baseUrl: 'http://host.docker.internal:8080',
      timezone: 'UTC',
      timeoutSeconds: 60,
      dockerHost: 'unix:///var/run/docker.sock',
      forceRebuild: true,
      debug: true,
      json: true,
      model: 'm',
      maxTurns: 7,
      allowHosts: ['registry.npmjs.org', 'pypi.org'],
    });
  });

  it('reads the .env of --project, or the --env-file given', async () => {
    const dir = project('ANTHROPIC_API_KEY=project-file\n');
    const cwd = project();
    expect((await loadConfig({ task: 't', project: dir }, context(cwd))).apiKey).toBe('project-file');
    const envFile = path.join(cwd, 'custom.env');
    writeFileSync(envFile, 'ANTHROPIC_API_KEY=custom-file\n');
    const config = await loadConfig({ task: 't', project: dir, envFile: 'custom.env' }, context(cwd));
    expect(config.apiKey).toBe('custom-file');
    expect(config.envFile).toBe(envFile);
  });

  it('takes wildcard hosts (*.example.com) in --allow-host, and refuses a wildcard of an address or a bare *', async () => {
    const dir = project();
    expect((await loadConfig({ task: 't', allowHost: ['*.npmjs.org', 'pypi.org'] }, context(dir))).allowHosts).toEqual(['*.npmjs.org', 'pypi.org']);
    for (const bad of ['*', '*.10.0.0.1', 'a.*.org', '*example.com']) {
      expect(await problemsOf({ task: 't', allowHost: [bad] }, context(dir))).toEqual([expect.stringMatching(/^--allow-host: .* is not a host name, a wildcard/)]);
    }
  });

  it('repeats --allow-host and prefers it to the variable', async () => {
    const dir = project();
    const config = await loadConfig({ task: 't', allowHost: ['a.example', '10.0.0.1'] }, context(dir, { AGENT_ALLOW_HOSTS: 'b.example' }));
    expect(config.allowHosts).toEqual(['a.example', '10.0.0.1']);
  });
});

describe('loadConfig task input', () => {
  it('reads --task-file, and - from stdin', async () => {
    const dir = project();
    writeFileSync(path.join(dir, 'task.md'), 'from a file\nsecond line');
    expect((await loadConfig({ taskFile: 'task.md' }, context(dir))).task).toBe('from a file\nsecond line');
    expect((await loadConfig({ taskFile: '-' }, context(dir, {}, 'from stdin $(x) `y`'))).task).toBe('from stdin $(x) `y`');
  });

  it('keeps quotes, $(…), backticks, newlines and non-ASCII byte for byte', async () => {
    const dir = project();
    const task = `He said "hi" and 'bye' $(rm -rf /) \`id\` \n\tnäïve 日本語 🚀`;
    expect((await loadConfig({ task }, context(dir))).task).toBe(task);
  });

  it('rejects NUL, a missing task, both sources and an unreadable file', async () => {
    const dir = project();
    expect(await problemsOf({ task: 'a\0b' }, context(dir))).toEqual([expect.stringMatching(/^--task: .*NUL/)]);
    expect(await problemsOf({}, context(dir))).toEqual([expect.stringMatching(/^--task: a task is required/)]);
    expect(await problemsOf({ task: '   ' }, context(dir))).toEqual([expect.stringMatching(/^--task: a task is required/)]);
    expect(await problemsOf({ task: 'a', taskFile: 'b' }, context(dir))).toEqual([expect.stringMatching(/^--task and --task-file/)]);
    expect(await problemsOf({ taskFile: 'missing.md' }, context(dir))).toEqual([expect.stringMatching(/^--task-file: cannot read .*ENOENT/)]);
  });
});

describe('loadConfig validation names the flag', () => {
  it('collects every problem together', async () => {
    const dir = project();
    const problems = await problemsOf(
      {
        task: 't',
        timeout: 'soon',
        maxTurns: '0',
        baseUrl: 'not a url',
        agentType: 'gpt',
        timezone: 'Mars/Olympus',
        remoteDocker: 'ftp://x',
        caCert: 'missing.pem',
        allowHost: ['bad host!'],
        envFile: 'nope.env',
      },
      context(dir),
    );
    const flags = problems.map((problem) => problem.split(':')[0]);
    expect(flags.sort()).toEqual(
      ['--agent-type', '--allow-host', '--base-url', '--ca-cert', '--env-file', '--max-turns', '--remote-docker', '--timeout', '--timezone'].sort(),
    );
  });

  it('rejects a non-numeric timeout from the environment, naming the flag', async () => {
    const dir = project();
    expect(await problemsOf({ task: 't' }, context(dir, { AGENT_TIMEOUT: '10m' }))).toEqual([
      '--timeout: "10m" is not a positive whole number of seconds.',
    ]);
  });

  it('refuses durations a timer cannot hold (over 2^31 − 1 ms), naming the flag and the largest value', async () => {
    const dir = project();
    expect(await problemsOf({ task: 't', timeout: '2147484' }, context(dir))).toEqual([
      '--timeout: "2147484" seconds is too long; the largest value allowed is 2147483 (about 24 days).',
    ]);
    expect(await problemsOf({ task: 't' }, context(dir, { AGENT_WORKER_BUILD_TIMEOUT: '99999999999' }))).toEqual([
      '--build-timeout: "99999999999" seconds is too long; the largest value allowed is 2147483 (about 24 days).',
    ]);
    const longest = await loadConfig({ task: 't', timeout: '2147483', buildTimeout: '2147483' }, context(dir));
    expect([longest.timeoutSeconds, longest.buildTimeoutSeconds]).toEqual([MAX_DURATION_SECONDS, MAX_DURATION_SECONDS]);
    // The largest value is one a timer holds: it does not fire at once.
    expect(MAX_DURATION_SECONDS * 1000).toBeLessThanOrEqual(2 ** 31 - 1);
  });

  it('rejects a base URL without http(s)', async () => {
    const dir = project();
    expect(await problemsOf({ task: 't', baseUrl: 'ftp://api.example' }, context(dir))).toEqual([expect.stringMatching(/^--base-url: .*http/)]);
  });

  it('reads a PEM --ca-cert and rejects a file that is not one', async () => {
    const dir = project();
    writeFileSync(path.join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    writeFileSync(path.join(dir, 'junk.pem'), 'hello');
    expect((await loadConfig({ task: 't', caCert: 'ca.pem' }, context(dir))).caCert?.pem).toContain('BEGIN CERTIFICATE');
    expect(await problemsOf({ task: 't', caCert: 'junk.pem' }, context(dir))).toEqual([expect.stringMatching(/^--ca-cert: .*no PEM/)]);
    expect(await problemsOf({ task: 't', caCert: '.' }, context(dir))).toEqual([expect.stringMatching(/^--ca-cert: cannot read .*: not a regular file\.$/)]);
    // A missing file is said in words, not as a bare errno code.
    expect(await problemsOf({ task: 't', caCert: 'missing.pem' }, context(dir))).toEqual([`--ca-cert: cannot read ${path.join(dir, 'missing.pem')}: no such file (ENOENT).`]);
  });

  it('rejects a boolean variable that is not one', async () => {
    const dir = project();
    expect(await problemsOf({ task: 't' }, context(dir, { FORCE_REBUILD: 'maybe' }))).toEqual([expect.stringMatching(/^--force-rebuild: FORCE_REBUILD/)]);
  });
});

describe('everyday options: --dockerfile, --verify, --persona, --append-system-prompt, --mcp-config, --max-budget-usd, --quiet', () => {
  it('finds .agent-worker/Dockerfile in the project; --dockerfile points elsewhere; a missing one is a problem', async () => {
    const dir = project();
    expect((await loadConfig({ task: 't' }, context(dir))).dockerfile).toBeUndefined();
    mkdirSync(path.join(dir, '.agent-worker'));
    writeFileSync(path.join(dir, '.agent-worker', 'Dockerfile'), 'FROM x\n');
    expect((await loadConfig({ task: 't' }, context(dir))).dockerfile).toBe(path.join(dir, '.agent-worker', 'Dockerfile'));
    writeFileSync(path.join(dir, 'Other.Dockerfile'), 'FROM y\n');
    expect((await loadConfig({ task: 't', dockerfile: 'Other.Dockerfile' }, context(dir))).dockerfile).toBe(path.join(dir, 'Other.Dockerfile'));
    expect((await loadConfig({ task: 't' }, context(dir, { AGENT_WORKER_DOCKERFILE: 'Other.Dockerfile' }))).dockerfile).toBe(path.join(dir, 'Other.Dockerfile'));
    expect(await problemsOf({ task: 't', dockerfile: 'nope/Dockerfile' }, context(dir))).toEqual([expect.stringMatching(/^--dockerfile: cannot read .*nope\/Dockerfile: no such file \(ENOENT\)/)]);
  });

  it('joins --append-system-prompt and the --persona file, in that order; an empty or missing persona is a problem', async () => {
    const dir = project();
    writeFileSync(path.join(dir, 'persona.md'), '\n# Role\nYou review code.\n\n');
    const config = await loadConfig({ task: 't', appendSystemPrompt: 'Be brief.', persona: 'persona.md' }, context(dir));
    expect(config.appendSystemPrompt).toBe('Be brief.\n\n# Role\nYou review code.');
    expect(config.persona).toBe(path.join(dir, 'persona.md'));
    expect((await loadConfig({ task: 't' }, context(dir, { AGENT_PERSONA: 'persona.md' }))).appendSystemPrompt).toBe('# Role\nYou review code.');
    writeFileSync(path.join(dir, 'empty.md'), '  \n');
    expect(await problemsOf({ task: 't', persona: 'empty.md' }, context(dir))).toEqual([expect.stringMatching(/^--persona: .*empty\.md is empty\.$/)]);
    expect(await problemsOf({ task: 't', persona: 'missing.md' }, context(dir))).toEqual([expect.stringMatching(/^--persona: cannot read .*missing\.md: no such file \(ENOENT\)/)]);
  });

  it('reads --mcp-config, lists its remote servers\' hosts, and rejects what is not an MCP configuration', async () => {
    const dir = project();
    writeFileSync(
      path.join(dir, 'mcp.json'),
      JSON.stringify({ mcpServers: { a: { command: 'npx', args: ['x'] }, b: { type: 'http', url: 'https://mcp.example.com/mcp' }, c: { type: 'sse', url: 'http://[::1]:9000/sse' } } }),
    );
    const config = await loadConfig({ task: 't', mcpConfig: 'mcp.json' }, context(dir));
    expect(config.mcpConfig).toMatchObject({ path: path.join(dir, 'mcp.json'), urlHosts: ['mcp.example.com', '::1'] });
    writeFileSync(path.join(dir, 'bad.json'), '{"servers": {}}');
    writeFileSync(path.join(dir, 'broken.json'), '{');
    expect(await problemsOf({ task: 't', mcpConfig: 'bad.json' }, context(dir))).toEqual([expect.stringContaining('has no "mcpServers" object')]);
    expect(await problemsOf({ task: 't', mcpConfig: 'broken.json' }, context(dir))).toEqual([expect.stringContaining('is not JSON')]);
  });

  it('takes --max-budget-usd as dollars above 0, --verify as a non-empty command, --quiet from the environment', async () => {
    const dir = project();
    const config = await loadConfig({ task: 't', maxBudgetUsd: '2.50', verify: 'npm test' }, context(dir, { AGENT_WORKER_QUIET: '1' }));
    expect(config).toMatchObject({ maxBudgetUsd: 2.5, verify: 'npm test', quiet: true });
    expect(await problemsOf({ task: 't', maxBudgetUsd: '0', verify: '  ' }, context(dir))).toEqual([
      '--verify: give a command to run, e.g. --verify "npm test" (no NUL bytes).',
      '--max-budget-usd: "0" is not an amount of US dollars above 0 (e.g. 2.50).',
    ]);
    expect(await problemsOf({ task: 't', maxBudgetUsd: '$5' }, context(dir))).toEqual([expect.stringContaining('--max-budget-usd: "$5"')]);
  });

  it('does not require a task when the command runs none (doctor)', async () => {
    const dir = project();
    expect((await loadConfig({}, { ...context(dir), requireTask: false })).task).toBe('');
  });
});

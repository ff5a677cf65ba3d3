/**
 * A mistyped command through the built CLI (issue #11, defect 7): a word close to doctor, runs, logs or gc
 * gets "Did you mean …?" and exit 2; any other stray word keeps the hint to put the task in --task. No
 * Docker is needed: the command line is refused before anything starts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/docker.js';
import { removeDir, tempDir } from '../helpers/git.js';

const cwd = tempDir('aw-typo-');
afterAll(() => removeDir(cwd));

describe('a mistyped command', () => {
  it.each([
    ['doctr', 'doctor'],
    ['log', 'logs'],
    ['rnus', 'runs'],
    ['gcc', 'gc'],
  ])('%s → "Did you mean %s?", exit 2', async (typed, command) => {
    const result = await runCli([typed], { cwd, env: { XDG_STATE_HOME: cwd }, timeoutMs: 20_000 });
    expect(result.stderr).toContain(`agent-worker: unknown command "${typed}". Did you mean ${command}?`);
    expect(result.stderr).not.toMatch(/too many arguments/);
    expect(result.stdout).toBe('');
    expect(result.code).toBe(2);
  });

  it('is also caught after options', async () => {
    const result = await runCli(['--task', 'anything', 'doctr'], { cwd, env: { XDG_STATE_HOME: cwd }, timeoutMs: 20_000 });
    expect(result.stderr).toContain('Did you mean doctor?');
    expect(result.code).toBe(2);
  });

  it('a word that is no command keeps the hint to put the task in --task', async () => {
    const result = await runCli(['fix the login test'], { cwd, env: { XDG_STATE_HOME: cwd }, timeoutMs: 20_000 });
    expect(result.stderr).toContain('agent-worker: unexpected argument "fix the login test"; put the task in --task "…" (commands: batch, doctor, runs, logs, gc).');
    expect(result.stderr).not.toMatch(/Did you mean/);
    expect(result.code).toBe(2);
  });
});

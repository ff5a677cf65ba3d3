/**
 * The documentation stays true to the code: every setting's flag and environment variable is in the
 * README's options table and in .env.example, and every exit code is in the README's exit code table.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SETTINGS } from '../../src/config.js';
import { ExitCode } from '../../src/errors.js';
import { PACKAGE_ROOT } from '../../src/version.js';

const readme = readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8');
const envExample = readFileSync(path.join(PACKAGE_ROOT, '.env.example'), 'utf8');

describe('README and .env.example', () => {
  it.each(Object.entries(SETTINGS))('%s: the flag and its environment variable are in the README table and .env.example', (_key, setting) => {
    const longFlag = /--[a-z-]+/.exec(setting.flag)![0];
    const row = readme.split('\n').find((line) => line.split('|')[1]?.includes(`\`${longFlag}`));
    expect(row, `README options table row for ${longFlag}`).toBeDefined();
    expect(row).toContain(`\`${setting.env}\``);
    // The .env file cannot name itself.
    if (setting.env !== 'AGENT_WORKER_ENV_FILE') expect(envExample).toMatch(new RegExp(`^${setting.env}=`, 'm'));
  });

  it('lists every exit code in the README', () => {
    const table = readme.slice(readme.indexOf('## Exit codes'), readme.indexOf('## The report'));
    for (const code of new Set(Object.values(ExitCode))) expect(table, `exit code ${code}`).toMatch(new RegExp(`^\\| (\\d+, )*${code}(, \\d+)* \\|`, 'm'));
  });
});

import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../src/stream/lines.js';
import { makeRedactor } from '../../src/report/run-log.js';
import { ImageBuildError, interruptExitCode } from '../../src/errors.js';
import { commitMessage, defaultBranchName, newRunId } from '../../src/run.js';

function split(chunks: Array<string | Buffer>, max?: number): Array<[string, boolean]> {
  const lines: Array<[string, boolean]> = [];
  const splitter = new LineSplitter((line, truncated) => lines.push([line, truncated]), max);
  for (const chunk of chunks) splitter.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  splitter.end();
  return lines;
}

describe('LineSplitter', () => {
  it('splits across chunk boundaries, drops \\r, flushes a last line without newline', () => {
    expect(split(['ab', 'c\nde', 'f\r\n\n', 'tail'])).toEqual([
      ['abc', false],
      ['def', false],
      ['', false],
      ['tail', false],
    ]);
  });

  it('keeps multi-byte characters split between chunks', () => {
    const bytes = Buffer.from('näïve 日本\n');
    expect(split([bytes.subarray(0, 2), bytes.subarray(2, 9), bytes.subarray(9)])).toEqual([['näïve 日本', false]]);
  });

  it('cuts a line longer than the cap and drops the rest of it, then goes on', () => {
    expect(split(['0123456789', 'abc\nnext\n'], 4)).toEqual([
      ['0123', true],
      ['next', false],
    ]);
  });


  it('hands every byte of an over-long line to the long-line sink, in order', () => {
    const pieces: string[] = [];
    const lines: Array<[string, boolean]> = [];
    const splitter = new LineSplitter((line, truncated) => lines.push([line, truncated]), 4, {
      start: (head) => pieces.push(`[${head.toString()}`),
      chunk: (piece) => pieces.push(piece.toString()),
      end: () => pieces.push(']'),
    });
    for (const chunk of ['0123', '45', '67\nok\n', 'abcdefg']) splitter.push(Buffer.from(chunk));
    splitter.end();
    expect(pieces.join('')).toBe('[01234567][abcdefg]');
    expect(lines).toEqual([
      ['0123', true],
      ['ok', false],
      ['abcd', true],
    ]);
  });
});

describe('makeRedactor', () => {
  it('replaces the secret values and anything shaped like an Anthropic key', () => {
    const redact = makeRedactor(['oauth-token-value-123', 'short']);
    expect(redact('token=oauth-token-value-123 and sk-ant-api03-abcdefghijkl and short')).toBe('token=[REDACTED] and [REDACTED] and short');
  });
});

describe('ImageBuildError hint', () => {
  it('names --ca-cert when the build failed on TLS trust', () => {
    expect(new ImageBuildError('x', ['npm error code SELF_SIGNED_CERT_IN_CHAIN']).hint).toMatch(/--ca-cert/);
    expect(new ImageBuildError('x', ['E: Unable to locate package foo']).hint).toMatch(/--force-rebuild/);
  });
});

describe('run naming', () => {
  it('makes branch names and run ids from the UTC time', () => {
    const now = new Date('2026-11-22T10:15:30.123Z');
    expect(defaultBranchName(now)).toBe('agent-task-20261122-101530');
    expect(newRunId(now)).toMatch(/^20261122-101530-[0-9a-f]{6}$/);
    expect(newRunId(now)).not.toBe(newRunId(now));
  });

  it('puts the task\'s first line in the commit subject, cut at 72 characters', () => {
    expect(commitMessage('  Fix the login test\nmore detail', 'r1', 'success')).toBe(
      'Fix the login test\n\nCommitted by agent-worker for run r1 (status: success).\n',
    );
    const long = 'x'.repeat(100);
    expect(commitMessage(long, 'r1', 'timed_out').split('\n')[0]).toHaveLength(72);
  });

  it('maps signals to 128 + their number', () => {
    expect([interruptExitCode('SIGHUP'), interruptExitCode('SIGINT'), interruptExitCode('SIGTERM')]).toEqual([129, 130, 143]);
  });
});

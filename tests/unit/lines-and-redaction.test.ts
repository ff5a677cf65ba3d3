import { claudeCodePlugin } from '../../agents/claude-code/index.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ByteLineSplitter, LineSplitter } from '../../src/stream/lines.js';
import { makeByteRedactor, makeRedactor, RunLog } from '../../src/report/run-log.js';
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
    const redact = makeRedactor(['oauth-token-value-123', 'short'], claudeCodePlugin.secretShapes);
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

describe('ByteLineSplitter', () => {
  function splitBytes(chunks: Buffer[], max?: number): Array<{ line: string; truncated: boolean }> {
    const lines: Array<{ line: string; truncated: boolean }> = [];
    const splitter = new ByteLineSplitter((line, truncated) => lines.push({ line: line.toString(), truncated }), max);
    for (const chunk of chunks) splitter.push(chunk);
    splitter.end();
    return lines;
  }

  it('hands on the same lines as the string splitter', () => {
    const chunks = ['ab', 'c\nde', 'f\r', '\n\n', 'x\r\ny', '\r', '\n', 'näïve 日本\n', 'tail'].map((c) => Buffer.from(c));
    expect(splitBytes(chunks).map(({ line, truncated }) => [line, truncated])).toEqual(split(chunks));
  });

  it('hands on a line within one chunk as a view of it, and keeps no chunk once push returns', () => {
    const chunk = Buffer.from('one\ntw');
    const seen: Array<{ text: string; view: boolean }> = [];
    const splitter = new ByteLineSplitter((line) => seen.push({ text: line.toString(), view: line.buffer === chunk.buffer }));
    splitter.push(chunk);
    // The caller may reuse its chunk: "tw" was copied when it arrived.
    chunk.fill(0x21);
    splitter.push(Buffer.from('o\n'));
    expect(seen).toEqual([
      { text: 'one', view: true },
      { text: 'two', view: false },
    ]);
  });

  it('joins a 3 MiB line that arrives in 512 KiB pieces', () => {
    const whole = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < whole.length; i += 1) whole[i] = 0x61 + (i % 26);
    let joined: Buffer | undefined;
    const splitter = new ByteLineSplitter((line) => (joined = Buffer.from(line)));
    for (let at = 0; at < whole.length; at += 512 * 1024) splitter.push(Buffer.from(whole.subarray(at, at + 512 * 1024)));
    splitter.push(Buffer.from('\n'));
    expect(joined?.equals(whole)).toBe(true);
  });

  it('joins lines split between chunks in one reused buffer, and cuts long lines as before', () => {
    const seen: Buffer[] = [];
    const splitter = new ByteLineSplitter((line) => seen.push(line));
    splitter.push(Buffer.from('abc'));
    splitter.push(Buffer.from('def\nghi'));
    splitter.push(Buffer.from('jkl\n'));
    expect(seen[1]!.toString()).toBe('ghijkl');
    expect(seen[0]!.buffer).toBe(seen[1]!.buffer);
    const pieces: string[] = [];
    const cut = splitBytes([Buffer.from('0123456789'), Buffer.from('abc\nnext\n')], 4);
    expect(cut.map(({ line, truncated }) => [line, truncated])).toEqual([
      ['0123', true],
      ['next', false],
    ]);
    const long = new ByteLineSplitter(() => undefined, 4, { start: (h) => pieces.push(`[${h}`), chunk: (p) => pieces.push(`${p}`), end: () => pieces.push(']') });
    for (const chunk of ['0123', '45', '67\nok\n', 'abcdefg']) long.push(Buffer.from(chunk));
    long.end();
    expect(pieces.join('')).toBe('[01234567][abcdefg]');
  });
});

describe('LineSplitter with a reused read buffer', () => {
  it('copies what it keeps', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line));
    const buffer = Buffer.alloc(4);
    for (const text of ['ab\nc', 'de\nf', 'ghi\n']) {
      buffer.write(text);
      splitter.push(buffer.subarray(0, text.length));
    }
    expect(lines).toEqual(['ab', 'cde', 'fghi']);
  });
});

describe('makeByteRedactor', () => {
  const secrets = ['oauth-token-value-123', 'short', 'sëcret-välue-ü'];
  const redact = makeRedactor(secrets, claudeCodePlugin.secretShapes);
  const redactBytes = makeByteRedactor(secrets, claudeCodePlugin.secretShapes);

  it('returns the bytes themselves when there is nothing to redact', () => {
    const clean = Buffer.from('{"type":"assistant","text":"short sk-ant oauth-token näïve"}');
    expect(redactBytes(clean)).toBe(clean);
  });

  it('gives exactly the bytes of the redacted text', () => {
    const samples = [
      'token=oauth-token-value-123 and sk-ant-api03-abcdefghijkl and short',
      'sëcret-välue-ü at the start, sk-ant-xx (too short to be a key)',
      'sk-ant-abcdefgh',
      'oauth-token-value-123oauth-token-value-123',
    ].map((s) => Buffer.from(s));
    // Not valid UTF-8: the text path turns the bad bytes into U+FFFD, as it always did.
    samples.push(Buffer.from([0x61, 0xff, 0x62, 0xe6, 0x97]), Buffer.concat([Buffer.from('日本'), Buffer.from('日').subarray(0, 2)]));
    for (const bytes of samples) expect(redactBytes(bytes).equals(Buffer.from(redact(bytes.toString('utf8'))))).toBe(true);
  });

  it('agrees with the text redactor on random lines', () => {
    const alphabet = ['a', 'Z', '-', '_', ' ', 'sk-ant-', 'oauth-token-value-123', 'oauth-token', 'ë', '日', '\u{1f600}', '"', '\\', 'short'];
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 2000; i += 1) {
      const text = Array.from({ length: random(30) }, () => alphabet[random(alphabet.length)]).join('');
      const bytes = Buffer.from(text);
      if (random(4) === 0) bytes[random(bytes.length || 1)] = 0x80 + random(0x80);
      expect(redactBytes(bytes).equals(Buffer.from(redact(bytes.toString('utf8'))))).toBe(true);
    }
  });
});

describe('RunLog.agentLine', () => {
  it('writes each line and its newline exactly as the text path did, secrets redacted', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'aw-runlog-'));
    try {
      const secrets = ['oauth-token-value-123'];
      const runLog = await RunLog.open(root, 'run', secrets, claudeCodePlugin.secretShapes);
      const lines = [
        Buffer.from('{"type":"assistant","text":"plain"}'),
        Buffer.from(''),
        Buffer.from('key sk-ant-api03-abcdefghijkl and oauth-token-value-123'),
        Buffer.from([0x7b, 0xff, 0x7d]),
        Buffer.from('x'.repeat(100_000)),
      ];
      for (const line of lines) runLog.agentLine(line);
      runLog.agentLine('text sk-ant-api03-abcdefghijkl');
      await runLog.close();
      const redact = makeRedactor(secrets, claudeCodePlugin.secretShapes);
      const expected = [...lines.map((l) => l.toString('utf8')), 'text sk-ant-api03-abcdefghijkl'].map((l) => `${redact(l)}\n`).join('');
      expect(readFileSync(path.join(root, 'run', 'agent.stream.jsonl')).equals(Buffer.from(expected))).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('goes on when the disk is full, and says what is missing', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'aw-runlog-'));
    try {
      mkdirSync(path.join(root, 'run'));
      // Every write to /dev/full fails with ENOSPC.
      symlinkSync('/dev/full', path.join(root, 'run', 'agent.stream.jsonl'));
      const runLog = await RunLog.open(root, 'run', []);
      expect(() => runLog.agentLine(Buffer.from('{"type":"assistant"}'))).not.toThrow();
      runLog.agentLine('second line');
      runLog.stderr('stderr is written');
      expect(runLog.writeFailures()).toEqual([expect.stringMatching(/could not write .*agent\.stream\.jsonl \(ENOSPC.*\); the rest of it is missing/)]);
      await runLog.close();
      expect(readFileSync(path.join(root, 'run', 'agent.stderr.log'), 'utf8')).toBe('stderr is written');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

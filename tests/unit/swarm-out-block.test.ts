import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { newOutNonce, OutBlockError, OutBlockReader } from '../../src/backends/swarm/out-block.js';
import { removeDir, tempDir } from '../helpers/git.js';

/** The lines container/handoff.sh `out` writes for `payload` (base64 at 76 characters a line, as `base64 -w 76`). */
function blockLines(nonce: string, payload: Buffer, declared?: { bytes?: number; sha256?: string }): string[] {
  const encoded = payload.toString('base64');
  const lines = [`agent-worker-out:${nonce}:begin`];
  for (let at = 0; at < encoded.length; at += 76) lines.push(encoded.slice(at, at + 76));
  const sum = declared?.sha256 ?? createHash('sha256').update(payload).digest('hex');
  lines.push(`agent-worker-out:${nonce}:end:${declared?.bytes ?? payload.length}:${sum}`);
  return lines;
}

describe('OutBlockReader', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach(removeDir));
  const target = (): string => {
    const dir = tempDir('aw-outblock-');
    dirs.push(dir);
    return path.join(dir, 'out.tar');
  };

  it('writes the block byte for byte and passes the agent\'s lines on', () => {
    const nonce = newOutNonce();
    const file = target();
    const payload = randomBytes(3 * 1024 * 1024 + 7); // several write chunks, a ragged end
    const reader = new OutBlockReader(nonce, file);
    const agentLines = ['{"type":"result"}', 'plain text', ''];
    const fed = [agentLines[0]!, ...blockLines(nonce, payload), agentLines[1]!, agentLines[2]!];
    const passed = fed.filter((line) => !reader.line(line));
    expect(passed).toEqual(agentLines);
    const block = reader.finish();
    expect(block).toEqual({ file, bytes: payload.length });
    expect(readFileSync(file).equals(payload)).toBe(true);
  });

  it('takes lines ending in \\r as the same lines', () => {
    const nonce = newOutNonce();
    const file = target();
    const payload = Buffer.from('hello, work');
    const reader = new OutBlockReader(nonce, file);
    for (const line of blockLines(nonce, payload)) expect(reader.line(`${line}\r`)).toBe(true);
    expect(readFileSync(reader.finish()!.file, 'utf8')).toBe('hello, work');
  });

  it('treats a block with another nonce as the agent\'s output (a forgery is not the work)', () => {
    const reader = new OutBlockReader(newOutNonce(), target());
    const forged = blockLines(newOutNonce(), Buffer.from('forged'));
    expect(forged.filter((line) => !reader.line(line))).toEqual(forged);
    expect(reader.finish()).toBeUndefined();
  });

  it('returns undefined when no block came (the job ended before collecting)', () => {
    const reader = new OutBlockReader(newOutNonce(), target());
    reader.line('agent output');
    expect(reader.finish()).toBeUndefined();
  });

  it('refuses a block cut off before its end line', () => {
    const nonce = newOutNonce();
    const reader = new OutBlockReader(nonce, target());
    blockLines(nonce, randomBytes(1000)).slice(0, -1).forEach((line) => reader.line(line));
    expect(() => reader.finish()).toThrow(OutBlockError);
    expect(() => reader.finish()).toThrow(/cut off after 1000 bytes/);
  });

  it('refuses a block whose size or checksum does not match', () => {
    const nonce = newOutNonce();
    const payload = randomBytes(500);
    for (const declared of [{ bytes: 501 }, { sha256: 'a'.repeat(64) }]) {
      const reader = new OutBlockReader(nonce, target());
      blockLines(nonce, payload, declared).forEach((line) => reader.line(line));
      expect(() => reader.finish()).toThrow(/arrived damaged/);
    }
  });

  it('refuses a block interrupted by a line that is not base64', () => {
    const nonce = newOutNonce();
    const reader = new OutBlockReader(nonce, target());
    const lines = blockLines(nonce, randomBytes(500));
    lines.splice(2, 0, 'agent-worker: something else');
    lines.forEach((line) => reader.line(line));
    expect(() => reader.finish()).toThrow(/interrupted by other output/);
  });

  it('keeps the last block when two arrive', () => {
    const nonce = newOutNonce();
    const reader = new OutBlockReader(nonce, target());
    [...blockLines(nonce, Buffer.from('first')), ...blockLines(nonce, Buffer.from('second'))].forEach((line) => reader.line(line));
    expect(readFileSync(reader.finish()!.file, 'utf8')).toBe('second');
  });

  it('says a block has ended only once its end line came (asking mid-block leaves it intact)', () => {
    const nonce = newOutNonce();
    const reader = new OutBlockReader(nonce, target());
    const lines = blockLines(nonce, Buffer.from('whole work'));
    expect(reader.ended).toBe(false);
    lines.slice(0, -1).forEach((line) => reader.line(line));
    expect(reader.ended).toBe(false);
    reader.line(lines[lines.length - 1]!);
    expect(reader.ended).toBe(true);
    expect(readFileSync(reader.finish()!.file, 'utf8')).toBe('whole work');
  });

  it('refuses a malformed nonce', () => {
    expect(() => new OutBlockReader('xyz', target())).toThrow(/32 lower-case hex/);
  });
});

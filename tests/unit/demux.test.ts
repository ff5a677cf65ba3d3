/**
 * The attach stream demultiplexer: frames (8-byte header, payload) split at every possible chunk
 * boundary come out as the same stdout and stderr bytes, in order, without copies.
 */
import { describe, expect, it } from 'vitest';
import { FrameDemuxer } from '../../src/docker/demux.js';

function frame(type: number, payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

function demux(chunks: Buffer[]): { stdout: string; stderr: string; order: string[]; partial: boolean } {
  const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], order: [] as string[] };
  const demuxer = new FrameDemuxer({
    stdout: (piece) => (out.stdout.push(piece), out.order.push(`o:${piece.toString()}`)),
    stderr: (piece) => (out.stderr.push(piece), out.order.push(`e:${piece.toString()}`)),
  });
  for (const chunk of chunks) demuxer.push(chunk);
  return { stdout: Buffer.concat(out.stdout).toString(), stderr: Buffer.concat(out.stderr).toString(), order: out.order, partial: demuxer.partial };
}

describe('FrameDemuxer', () => {
  const stream = Buffer.concat([frame(1, 'hello '), frame(2, 'warn\n'), frame(1, ''), frame(1, 'world\n'), frame(0, '!'), frame(2, 'é€\n')]);

  it('splits stdout and stderr frames, in order; an empty frame is nothing', () => {
    const result = demux([stream]);
    expect(result).toEqual({ stdout: 'hello world\n!', stderr: 'warn\né€\n', order: ['o:hello ', 'e:warn\n', 'o:world\n', 'o:!', 'e:é€\n'], partial: false });
  });

  it('gives the same bytes for every split of the stream into two and into single bytes', () => {
    for (let cut = 0; cut <= stream.length; cut += 1) {
      const result = demux([stream.subarray(0, cut), stream.subarray(cut)]);
      expect([result.stdout, result.stderr, result.partial], `cut at ${cut}`).toEqual(['hello world\n!', 'warn\né€\n', false]);
    }
    const bytes = [...stream].map((byte) => Buffer.from([byte]));
    expect(demux(bytes)).toMatchObject({ stdout: 'hello world\n!', stderr: 'warn\né€\n', partial: false });
  });

  it('hands out views of the chunks, not copies, and says when the stream ends inside a frame', () => {
    const big = frame(1, Buffer.alloc(100_000, 0x61));
    const pieces: Buffer[] = [];
    const demuxer = new FrameDemuxer({ stdout: (piece) => pieces.push(piece), stderr: () => undefined });
    demuxer.push(big.subarray(0, 60_000));
    expect(demuxer.partial).toBe(true);
    demuxer.push(big.subarray(60_000));
    expect(pieces.map((piece) => piece.length)).toEqual([59_992, 40_008]);
    expect(pieces.every((piece) => piece.buffer === big.buffer)).toBe(true);
    expect(demuxer.partial).toBe(false);
  });
});

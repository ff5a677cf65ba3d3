/**
 * What an image build shows while it runs (issue #11, defect 6): the classic builder's JSON stream read
 * into `step N/M · INSTRUCTION · <latest output line>`, without the builder's own lines, escape codes or
 * `\r` redraws. The daemon is dockerode with its build and image calls replaced; the stream is read by
 * dockerode's own followProgress.
 */
import { Readable } from 'node:stream';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { buildStepReader, ensureImage } from '../../src/docker/image.js';
import { tempDir } from '../helpers/git.js';
import { removedAfterEach } from '../helpers/temp-dirs.js';

const track = removedAfterEach();

/** A classic-builder build stream (the daemon's `POST /build` answer), as newline-delimited JSON. */
const BUILD_STREAM = [
  { stream: 'Step 1/3 : FROM debian:bookworm-slim' },
  { stream: '\n' },
  { status: 'Pulling from library/debian', id: 'bookworm-slim' },
  { status: 'Downloading', progressDetail: { current: 1, total: 29 }, progress: '[=>      ]  1.2MB/29.1MB', id: '2d429b9e73a6' },
  { stream: ' ---> 1a2b3c4d5e6f\n' },
  { stream: 'Step 2/3 : RUN set -eux;     apt-get update -qq;     apt-get install -y -qq git' },
  { stream: '\n' },
  { stream: ' ---> Running in 0f1e2d3c4b5a\n' },
  { stream: '\u001B[91m+ apt-get update -qq\n\u001B[0m' },
  { stream: 'Reading package lists... 50%\rReading package lists... Done\r\n' },
  { stream: 'Removing intermediate container 0f1e2d3c4b5a\n' },
  { stream: ' ---> 6f5e4d3c2b1a\n' },
  { stream: 'Step 3/3 : WORKDIR /workspace\n' },
  { stream: ' ---> Using cache\n' },
  { aux: { ID: 'sha256:6f5e4d3c2b1a' } },
  { stream: 'Successfully built 6f5e4d3c2b1a\n' },
  { stream: 'Successfully tagged agent-worker:0123456789abcdef\n' },
];

describe('buildStepReader', () => {
  it('reads Step lines into `step N/M · INSTRUCTION`, then the step’s latest output line', () => {
    const read = buildStepReader();
    expect(read('Step 4/9 : RUN apt-get install -y git')).toBe('step 4/9 · RUN apt-get install -y git');
    expect(read(' ---> Running in 0f1e2d3c4b5a')).toBeUndefined();
    expect(read('\u001B[91m+ apt-get install -y git')).toBe('step 4/9 · RUN apt-get install -y git · + apt-get install -y git');
    expect(read('\u001B[0m')).toBeUndefined();
    expect(read('   ')).toBeUndefined();
    expect(read('Unpacking git (1:2.39.5-0+deb12u2) ...\r')).toBe('step 4/9 · RUN apt-get install -y git · Unpacking git (1:2.39.5-0+deb12u2) ...');
    expect(read(' 10%\r 60%\r100%')).toBe('step 4/9 · RUN apt-get install -y git · 100%');
    expect(read('Removing intermediate container 0f1e2d3c4b5a')).toBeUndefined();
    expect(read('Step 5/9 : COPY entrypoint.sh /usr/local/bin/agent-worker-entrypoint')).toBe('step 5/9 · COPY entrypoint.sh /usr/local/b…');
  });

  it('shows output lines before the first step on their own', () => {
    expect(buildStepReader()('Sending build context to Docker daemon  10.24kB')).toBe('Sending build context to Docker daemon 10.24kB');
  });
});

describe('ensureImage progress', () => {
  it('sends onProgress the step and its latest output line, never a raw builder line', async () => {
    const dir = track(tempDir('aw-ctx-'));
    writeFileSync(path.join(dir, 'Dockerfile'), 'FROM debian:bookworm-slim\n');
    const docker = new Docker({ socketPath: path.join(dir, 'no-daemon.sock') });
    let built = false;
    Object.assign(docker, {
      getImage: () => ({
        inspect: () => (built ? Promise.resolve({}) : Promise.reject(Object.assign(new Error('no such image'), { statusCode: 404 }))),
      }),
      buildImage: (context: NodeJS.ReadableStream) => {
        (context as unknown as Readable).destroy?.();
        built = true;
        return Promise.resolve(Readable.from(BUILD_STREAM.map((entry) => `${JSON.stringify(entry)}\r\n`)));
      },
    });
    const details: string[] = [];
    const image = await ensureImage(docker, { contextDir: dir, buildArgs: {}, toolVersion: 'test' }, { force: false, onProgress: (detail) => details.push(detail) });
    expect(image.built).toBe(true);
    expect(details).toEqual([
      'step 1/3 · FROM debian:bookworm-slim',
      'step 1/3 · FROM debian:bookworm-slim · Pulling from library/debian',
      'step 1/3 · FROM debian:bookworm-slim · Downloading [=> ] 1.2MB/29.1MB',
      'step 2/3 · RUN set -eux; apt-get update -q…',
      'step 2/3 · RUN set -eux; apt-get update -q… · + apt-get update -qq',
      'step 2/3 · RUN set -eux; apt-get update -q… · Reading package lists... Done',
      'step 3/3 · WORKDIR /workspace',
    ]);
  });
});

/**
 * Safe extraction of tar archives that come from a container (Docker's archive API), whose contents
 * the agent controlled: absolute paths, `..` segments, links pointing outside the destination, and
 * anything but regular files, folders and inside-pointing symlinks are refused.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { extract as tarExtract, type Header } from 'tar-stream';

/** Thrown for an archive entry that could write outside the destination or is of a refused type. */
export class UnsafeArchiveError extends Error {
  override name = 'UnsafeArchiveError';
}

/** Limits for {@link extractSafely}. */
export interface ExtractLimits {
  /** Largest total of file bytes accepted, in bytes. */
  maxBytes: number;
  /** Most entries accepted. */
  maxEntries: number;
}

/**
 * Where an entry named `name` lands inside `destDir`, or an error when it would land outside.
 * Leading `./` is fine; absolute names and any `..` segment are refused.
 */
export function safeEntryPath(destDir: string, name: string): string {
  const normalized = name.replace(/\\/g, '/');
  if (normalized.startsWith('/') || /^[a-zA-Z]:/.test(normalized)) throw new UnsafeArchiveError(`absolute path in archive: ${JSON.stringify(name)}`);
  const segments = normalized.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw new UnsafeArchiveError(`".." in archive path: ${JSON.stringify(name)}`);
  const target = path.resolve(destDir, ...segments);
  if (target !== destDir && !target.startsWith(destDir + path.sep)) throw new UnsafeArchiveError(`path escapes the destination: ${JSON.stringify(name)}`);
  return target;
}

/**
 * Extracts the tar `archive` into the existing folder `destDir` (absolute). Files are created
 * exclusively (an entry never overwrites another), with mode 0600/0700.
 * @returns the relative paths of the regular files written.
 * @throws UnsafeArchiveError for a refused entry or when a limit is exceeded; what was written so far stays.
 */
export async function extractSafely(archive: Readable, destDir: string, limits: ExtractLimits = { maxBytes: 8 * 1024 ** 3, maxEntries: 10_000 }): Promise<string[]> {
  const root = path.resolve(destDir);
  const written: string[] = [];
  let bytes = 0;
  let entries = 0;
  const extractor = tarExtract();
  extractor.on('entry', (header: Header, entryStream, next) => {
    const stream = entryStream as unknown as Readable;
    // The extractor destroys the entry's stream with the error it is given; that is reported once, by pipeline.
    stream.on('error', () => undefined);
    const fail = (error: Error): void => {
      stream.resume();
      next(error);
    };
    entries += 1;
    if (entries > limits.maxEntries) return fail(new UnsafeArchiveError(`archive has more than ${limits.maxEntries} entries`));
    let target: string;
    try {
      target = safeEntryPath(root, header.name);
    } catch (error) {
      return fail(error as Error);
    }
    const done = (promise: Promise<unknown>): void => {
      promise.then(() => next(), (error: unknown) => fail(error as Error));
    };
    switch (header.type) {
      case 'directory':
        stream.resume();
        return done(mkdir(target, { recursive: true, mode: 0o700 }));
      case 'file':
      case 'contiguous-file': {
        bytes += header.size ?? 0;
        if (bytes > limits.maxBytes) return fail(new UnsafeArchiveError(`archive holds more than ${limits.maxBytes} bytes`));
        written.push(path.relative(root, target));
        return done(
          mkdir(path.dirname(target), { recursive: true, mode: 0o700 }).then(() =>
            pipeline(stream, createWriteStream(target, { flags: 'wx', mode: header.mode && header.mode & 0o100 ? 0o700 : 0o600 })),
          ),
        );
      }
      case 'symlink': {
        stream.resume();
        const linkTarget = header.linkname ?? '';
        if (path.isAbsolute(linkTarget)) return fail(new UnsafeArchiveError(`symlink to an absolute path: ${header.name} -> ${linkTarget}`));
        const resolved = path.resolve(path.dirname(target), linkTarget);
        if (resolved !== root && !resolved.startsWith(root + path.sep)) {
          return fail(new UnsafeArchiveError(`symlink points outside the destination: ${header.name} -> ${linkTarget}`));
        }
        return done(mkdir(path.dirname(target), { recursive: true, mode: 0o700 }).then(() => symlink(linkTarget, target)));
      }
      default:
        return fail(new UnsafeArchiveError(`refused archive entry of type ${header.type}: ${JSON.stringify(header.name)}`));
    }
  });
  // pipeline reports the first error; a source that errors again while being torn down must not crash.
  archive.on('error', () => undefined);
  await pipeline(archive, extractor as unknown as NodeJS.WritableStream);
  return written;
}

/** Temporary folders of unit tests, removed after each test (vitest's afterEach; not for the bench). */
import { afterEach } from 'vitest';
import { removeDir } from './git.js';

/**
 * For a test file (call it at the top level): returns `track`, which registers a folder to be removed after
 * each test and returns it, e.g. `const dir = track(tempDir())`.
 */
export function removedAfterEach(): (dir: string) => string {
  const dirs: string[] = [];
  afterEach(() => {
    while (dirs.length) removeDir(dirs.pop()!);
  });
  return (dir) => {
    dirs.push(dir);
    return dir;
  };
}

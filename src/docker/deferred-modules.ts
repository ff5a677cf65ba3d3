/**
 * Start-up time: dockerode and docker-modem load, at their own start, two things most runs never use —
 * dockerode's BuildKit session (`lib/session.js`: gRPC and protobuf, used only for BuildKit builds, which
 * agent-worker does not request) and docker-modem's ssh transport (`lib/ssh.js`: ssh2, used only for
 * ssh:// daemons). Together about 100 ms of every start (measured: importing dockerode 200 ms → 95 ms).
 *
 * This module must be imported before dockerode. It puts a stand-in for each of the two files into
 * require's cache: a function that loads the real module on its first call and hands the call on. Both
 * files export exactly one function (dockerode 4.0.x `module.exports = withSession`, docker-modem 5.0.x
 * `module.exports = function (opt)`), which is all the stand-in replaces. A file that is not found (another
 * layout) is left alone: it then loads as usual.
 */
import { createRequire, Module } from 'node:module';

const require = createRequire(import.meta.url);

function defer(request: string): void {
  let file: string;
  try {
    file = require.resolve(request);
  } catch {
    return;
  }
  if (require.cache[file]) return;
  const standIn = new Module(file);
  standIn.filename = file;
  standIn.loaded = true;
  let real: ((...realArgs: unknown[]) => unknown) | undefined;
  standIn.exports = function deferred(this: unknown, ...args: unknown[]): unknown {
    if (!real) {
      delete require.cache[file];
      real = require(file) as (...realArgs: unknown[]) => unknown;
    }
    return real.apply(this, args);
  };
  require.cache[file] = standIn;
}

defer('dockerode/lib/session.js');
defer('docker-modem/lib/ssh.js');

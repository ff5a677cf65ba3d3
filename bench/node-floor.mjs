/**
 * The floor of the warm-run overhead for any Node.js process (`npm run bench` runs it next to the baseline):
 * the baseline's own work, done by node with no library: create a container from IMAGE running `true`, start
 * it, wait for it, remove it (raw Docker Engine API over /var/run/docker.sock), then `git branch` in REPO.
 *
 * Usage: node bench/node-floor.mjs IMAGE REPO BRANCH
 */
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import process from 'node:process';

const [image, repo, branch] = process.argv.slice(2);

/** One Docker Engine API call; resolves with the parsed JSON body (null when empty), rejects on a status ≥ 300. */
function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const request = http.request({ socketPath: '/var/run/docker.sock', method, path, headers: body ? { 'Content-Type': 'application/json' } : {} }, (response) => {
      let data = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (data += chunk));
      response.on('end', () => ((response.statusCode ?? 500) < 300 ? resolve(data ? JSON.parse(data) : null) : reject(new Error(`${method} ${path}: ${response.statusCode} ${data}`))));
    });
    request.on('error', reject);
    request.end(body ? JSON.stringify(body) : undefined);
  });
}

const { Id: id } = await call('POST', '/containers/create', { Image: image, Entrypoint: ['true'] });
const waiting = call('POST', `/containers/${id}/wait?condition=next-exit`);
await call('POST', `/containers/${id}/start`);
await waiting;
await call('DELETE', `/containers/${id}`);
execFileSync('git', ['branch', branch], { cwd: repo, stdio: 'ignore' });

#!/bin/sh
# Installs GitHub Copilot CLI (npm @github/copilot) at $AGENT_CLI_VERSION in the agent-worker image (container/Dockerfile
# runs it as root, with npm's cache in /tmp/npm-cache and the system CA bundle trusted).
#
# @github/copilot is only a Node launcher (npm-loader.js) that spawns a native binary from a per-platform optional
# dependency, @github/copilot-<platform>-<arch> at the same version: a Node single-executable application (~200 MB)
# that carries its JavaScript package as an embedded tarball. Debian's npm 9 would fetch all eight platforms'
# binaries for the launcher; instead only this platform's glibc package is installed, under /opt/copilot, and
# /usr/local/bin/copilot links to its binary directly (no Node launcher: one process fewer, and the agent itself
# gets the container's signals).
#
# On every start the binary looks for its unpacked package in <cache>/pkg/linux-<arch>/<version> and unpacks it there
# when missing (~235 MB, seconds to ~20 s on a loaded machine; <cache> is $COPILOT_PKG_CACHE_HOME, else
# ~/.cache/copilot). `copilot --version` does that too (then prints the version; no network, no model API), so it is
# unpacked here, once, into /opt/copilot/pkg: root's, world-readable, outside the agent's HOME (which the entrypoint
# chowns recursively on every start: 235 MB more would cost ~1-2 s and a 245 MB copy-up per container). The plugin sets
# COPILOT_PKG_CACHE_HOME=/opt/copilot for the agent, so it finds the package complete and writes nothing there. The
# build fails when the binary does not run, the version differs or the package is incomplete.
set -eux
: "${AGENT_CLI_VERSION:?the Copilot CLI version to install}"
arch=$(node -p process.arch)
platform="@github/copilot-linux-${arch}"
npm install --prefix /opt/copilot --no-save --no-package-lock "${platform}@${AGENT_CLI_VERSION}"
ln -s "/opt/copilot/node_modules/${platform}/copilot" /usr/local/bin/copilot
COPILOT_PKG_CACHE_HOME=/opt/copilot copilot --version | grep -F "CLI ${AGENT_CLI_VERSION}"
test -f "/opt/copilot/pkg/linux-${arch}/${AGENT_CLI_VERSION}/.extraction-complete"
chmod -R a+rX /opt/copilot/pkg
rm -rf /opt/copilot/package.json /root/.cache/copilot /root/.copilot

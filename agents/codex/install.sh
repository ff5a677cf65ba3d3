#!/bin/sh
# Installs OpenAI Codex CLI (npm @openai/codex) at $AGENT_CLI_VERSION in the agent-worker image (container/Dockerfile
# runs it as root, with npm's cache in /tmp/npm-cache and the system CA bundle trusted).
#
# @openai/codex is a small Node launcher (bin/codex.js) that runs a native musl binary from a per-platform optional
# dependency, an alias of the same package at version <version>-linux-<arch>. Debian's npm 9 would fetch every
# platform's binary for a global install; instead a local install under /opt/codex of the launcher (optional
# dependencies omitted) plus this platform's package under its alias. `codex --version` fails the build when the
# binary did not land.
set -eux
: "${AGENT_CLI_VERSION:?the Codex version to install}"
arch=$(node -p process.arch)
npm install --prefix /opt/codex --no-save --no-package-lock --omit=optional \
  "@openai/codex@${AGENT_CLI_VERSION}" \
  "@openai/codex-linux-${arch}@npm:@openai/codex@${AGENT_CLI_VERSION}-linux-${arch}"
ln -s /opt/codex/node_modules/.bin/codex /usr/local/bin/codex
codex --version
rm -f /opt/codex/package.json

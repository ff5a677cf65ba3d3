#!/bin/sh
# Installs Claude Code (npm @anthropic-ai/claude-code) at $AGENT_CLI_VERSION in the agent-worker image
# (container/Dockerfile runs it as root, with npm's cache in /tmp/npm-cache and the system CA bundle trusted).
#
# Claude Code's npm package is a stub whose postinstall links in the native binary from a per-platform optional
# dependency; Debian's npm 9 cannot tell glibc from musl (and ignores --omit for -g installs), so a global install
# would download both ~170 MB linux-<arch> packages. Instead: a local install under /opt/claude-code of the stub
# (optional deps omitted) plus the one glibc platform package, at the same version. Versions without platform
# packages (all-JS releases) install as usual. `claude --version` fails the build when the native binary did not
# land (the package's postinstall only warns).
set -eux
: "${AGENT_CLI_VERSION:?the Claude Code version to install}"
pkg="@anthropic-ai/claude-code@${AGENT_CLI_VERSION}"
native="@anthropic-ai/claude-code-linux-$(node -p process.arch)"
if npm view "$pkg" optionalDependencies --json | grep -qF "\"$native\""; then
  set -- --omit=optional "$pkg" "$native@${AGENT_CLI_VERSION}"
else
  set -- "$pkg"
fi
npm install --prefix /opt/claude-code --no-save --no-package-lock "$@"
ln -s /opt/claude-code/node_modules/.bin/claude /usr/local/bin/claude
claude --version
rm -f /opt/claude-code/package.json

#!/bin/sh
# Installs OpenCode (npm opencode-ai) at $AGENT_CLI_VERSION in the agent-worker image (container/Dockerfile runs it as
# root, with npm's cache in /tmp/npm-cache and the system CA bundle trusted).
#
# opencode-ai is a stub whose postinstall copies a native Bun binary out of one of twelve per-platform optional
# dependencies (opencode-<os>-<arch>[-baseline][-musl]); Debian's npm 9 would fetch them all. Instead this installs the
# one platform package this machine needs, at the same version, under /opt/opencode, and links its binary: it needs no
# Node at run time. On x64 the `-baseline` build is taken when the CPU lacks AVX2, as the stub's postinstall does.
# `opencode --version` fails the build when the binary did not land or is another version. The arm64 package lags
# behind (none for 1.18.33, whose stub lists it: npm answers 404), so an arm64 build fails at the npm install.
#
# Also Debian's ripgrep: OpenCode's grep and glob tools run `rg` from PATH and would otherwise download it from GitHub
# on first use, which the egress proxy refuses.
set -eux
: "${AGENT_CLI_VERSION:?the OpenCode version to install}"
arch=$(node -p process.arch)
case "$arch" in
  x64)
    if grep -qw avx2 /proc/cpuinfo; then pkg=opencode-linux-x64; else pkg=opencode-linux-x64-baseline; fi
    ;;
  arm64) pkg=opencode-linux-arm64 ;;
  *)
    echo "OpenCode publishes no Linux build for $arch" >&2
    exit 1
    ;;
esac
npm install --prefix /opt/opencode --no-save --no-package-lock --ignore-scripts "${pkg}@${AGENT_CLI_VERSION}"
ln -s "/opt/opencode/node_modules/${pkg}/bin/opencode" /usr/local/bin/opencode
rm -f /opt/opencode/package.json

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-unsafe-io ripgrep >/dev/null
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

# The check runs in a throwaway HOME: OpenCode creates its folders there on any start.
version=$(HOME=/tmp/opencode-version-check opencode --version)
rm -rf /tmp/opencode-version-check
test "$version" = "$AGENT_CLI_VERSION"
rg --version

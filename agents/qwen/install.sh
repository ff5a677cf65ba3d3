#!/bin/sh
# Installs Qwen Code (npm @qwen-code/qwen-code) at $AGENT_CLI_VERSION in the agent-worker image (container/Dockerfile
# runs it as root, with npm's cache in /tmp/npm-cache, the system CA bundle trusted, and Node >= 22 installed first:
# the plugin's image.node; Qwen Code needs `fs.openAsBlob`, missing from Debian's Node 18).
#
# The package is one JavaScript bundle with no dependencies. Its optional dependencies are all for interactive use
# (node-pty for an interactive shell, clipboard and audio capture for the TUI, sharp for images) and come for every
# platform, so they are omitted: the plugin's settings run shell commands without a pseudo-terminal. The tarball itself carries ripgrep
# for five platforms without its execute bit; this platform's is made executable and the others are removed.
# `qwen --version` fails the build when the CLI cannot start on this Node.
set -eux
: "${AGENT_CLI_VERSION:?the Qwen Code version to install}"
npm install --prefix /opt/qwen-code --no-save --no-package-lock --omit=optional "@qwen-code/qwen-code@${AGENT_CLI_VERSION}"
pkg=/opt/qwen-code/node_modules/@qwen-code/qwen-code
rg_dir="$(node -p process.arch)-linux"
for dir in "$pkg"/vendor/ripgrep/*/; do
  [ "$(basename "$dir")" = "$rg_dir" ] || rm -rf "$dir"
done
if [ -f "$pkg/vendor/ripgrep/$rg_dir/rg" ]; then
  chmod 755 "$pkg/vendor/ripgrep/$rg_dir/rg"
  "$pkg/vendor/ripgrep/$rg_dir/rg" --version
fi
# npm leaves the omitted packages' scope folders behind, empty.
find /opt/qwen-code/node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete
ln -s /opt/qwen-code/node_modules/.bin/qwen /usr/local/bin/qwen
qwen --version
rm -f /opt/qwen-code/package.json

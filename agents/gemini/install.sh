#!/bin/sh
# Installs Gemini CLI (npm @google/gemini-cli) at $AGENT_CLI_VERSION in the agent-worker image (container/Dockerfile
# runs it as root, with npm's cache in /tmp/npm-cache and the system CA bundle trusted, after it installed the Node
# the plugin asks for: Gemini CLI needs Node >= 20, Debian bookworm has 18).
#
# @google/gemini-cli is one self-contained JavaScript bundle (bundle/gemini.js, no dependencies). Its optional
# dependencies are native add-ons only: node-pty for every platform (an interactive pseudo-terminal for shell
# commands; without it Gemini CLI runs them with child_process, which is what a headless run wants, and the plugin
# turns the interactive shell off anyway) and @github/keytar (the desktop keychain, for OAuth tokens; it falls back to
# a file). Leaving them out avoids downloading other platforms' binaries and building add-ons from source (npm still
# leaves their empty scope folders: removed). A local install under /opt/gemini-cli, linked into /usr/local/bin;
# `gemini --version` fails the build when it cannot start, run with a throw-away HOME since it writes ~/.gemini.
set -eux
: "${AGENT_CLI_VERSION:?the Gemini CLI version to install}"
npm install --prefix /opt/gemini-cli --no-save --no-package-lock --omit=optional "@google/gemini-cli@${AGENT_CLI_VERSION}"
find /opt/gemini-cli/node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete
ln -s /opt/gemini-cli/node_modules/.bin/gemini /usr/local/bin/gemini
check_home=$(mktemp -d)
HOME=$check_home GEMINI_CLI_NO_RELAUNCH=true gemini --version
rm -rf "$check_home" /opt/gemini-cli/package.json

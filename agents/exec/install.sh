#!/bin/sh
# The exec agent installs nothing: the user's own CLI comes from the project's image (--dockerfile, built FROM the
# tool's image) or from the repository itself, and --agent-command names it.
set -eu
echo "exec agent: nothing to install (version ${AGENT_CLI_VERSION:-})"

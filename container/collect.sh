#!/usr/bin/env bash
# agent-worker, copy mode: collects the agent's work in /workspace once the agent has ended. Runs as the
# agent's user, with no capabilities, after every process the agent left has been killed.
#
# Inputs (env): AW_BASE_COMMIT (the commit the workspace was made at), AW_COMMIT_MESSAGE (message for the
# uncommitted work), AW_AGENT_STATUS (the agent's exit status), AW_OUT_DIR (folder the host fetches).
# Output in AW_OUT_DIR: `result` (lines `agent_status=N`, `head=<commit>`, `commits=N`) and, when HEAD
# moved past the base commit, `work.bundle`: a git bundle of base..HEAD whose ref is HEAD.
# Diagnostics on stderr; non-zero exit when the work could not be collected.
set -euo pipefail

cd /workspace
git() {
  command git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c commit.gpgSign=false \
    -c safe.directory=/workspace "$@"
}
# A git process killed mid-write leaves its lock behind; nothing else can hold it now.
rm -f .git/index.lock
git add --all -- .
if ! git diff --cached --quiet; then
  git commit --quiet --no-verify -m "$AW_COMMIT_MESSAGE"
fi
head=$(git rev-parse --verify HEAD)
commits=$(git rev-list --count "$AW_BASE_COMMIT..HEAD")
if [[ $head != "$AW_BASE_COMMIT" ]]; then
  git bundle create --quiet "$AW_OUT_DIR/work.bundle" HEAD "^$AW_BASE_COMMIT"
fi
printf 'agent_status=%s\nhead=%s\ncommits=%s\n' "$AW_AGENT_STATUS" "$head" "$commits" >"$AW_OUT_DIR/result"

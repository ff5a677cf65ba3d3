#!/usr/bin/env bash
# Captures a real agent-worker run in a 110x50 terminal (tmux) for the README: one frame while the agent
# works (the spinner line: phase, elapsed, turn, tool, tokens) and the final screen with the report.
# The model API is the scripted fixture (bench/capture-fixture.ts: Bash ls, Write, Edit, final text);
# everything else is real: the built CLI, Docker, the image, Claude Code, git.
#
# Usage: bench/capture-terminal.sh [output file]     (default: docs/terminal-capture.txt)
# Needs: dist/ built (npm run build), a Docker daemon, tmux (installed with apt-get when root and missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/docs/terminal-capture.txt}
CA_CERT=${AGENT_WORKER_TEST_CA_CERT:-/etc/ssl/certs/ca-certificates.crt}
WIDTH=110
HEIGHT=50
RUN_TIMEOUT_S=${CAPTURE_TIMEOUT_S:-1800}

die() { echo "capture-terminal: $*" >&2; exit 1; }

[[ -f $ROOT/dist/src/cli.js ]] || die "dist/src/cli.js is missing: run npm run build first"
if ! command -v tmux >/dev/null; then
  [[ $(id -u) == 0 ]] || die "tmux is not installed (apt-get install -y tmux)"
  apt-get install -y -qq tmux >/dev/null || { apt-get update -qq && apt-get install -y -qq tmux >/dev/null; }
fi

TMP=$(mktemp -d /tmp/aw-capture-XXXXXX)
SOCKET=aw-capture-$$
FIXTURE_PID=
cleanup() {
  tmux -L "$SOCKET" kill-server 2>/dev/null || true
  if [[ -n $FIXTURE_PID ]]; then kill -TERM -- "-$FIXTURE_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# A tiny project in a fresh repository.
PROJECT=$TMP/greeter
mkdir -p "$PROJECT/src"
cat >"$PROJECT/package.json" <<'EOF'
{
  "name": "greeter",
  "version": "1.0.0",
  "type": "module",
  "main": "src/index.js"
}
EOF
cat >"$PROJECT/src/index.js" <<'EOF'
export const name = 'greeter';
EOF
printf '# greeter\n\nA tiny demo project.\n' >"$PROJECT/README.md"
git -C "$PROJECT" init --quiet --initial-branch=main
git -C "$PROJECT" config user.name 'Demo User'
git -C "$PROJECT" config user.email 'demo@example.com'
git -C "$PROJECT" add -A
git -C "$PROJECT" commit --quiet -m 'Initial commit'

# The scripted model API, in its own process group so it can be stopped with everything it started.
setsid "$ROOT/node_modules/.bin/vite-node" "$ROOT/bench/capture-fixture.ts" >"$TMP/fixture.out" 2>"$TMP/fixture.err" &
FIXTURE_PID=$!
PORT=
for _ in $(seq 1 300); do
  PORT=$(sed -n 's/^port=\([0-9]*\)$/\1/p' "$TMP/fixture.out")
  [[ -n $PORT ]] && break
  kill -0 "$FIXTURE_PID" 2>/dev/null || die "the fixture exited: $(cat "$TMP/fixture.err")"
  sleep 0.2
done
[[ -n $PORT ]] || die "timed out after 60 s waiting for the fixture to print its port"

# An interactive shell as a user would have it: `agent-worker` on the PATH (here: the built dist), the key,
# and the base URL and CA bundle set through their environment variables (same as --base-url/--ca-cert).
# PROMPT_COMMAND records each command's exit code, which is how we learn that the run ended.
mkdir -p "$TMP/bin" "$TMP/state"
printf '#!/bin/sh\nexec node %q "$@"\n' "$ROOT/dist/src/cli.js" >"$TMP/bin/agent-worker"
chmod +x "$TMP/bin/agent-worker"
cat >"$TMP/rc" <<EOF
export PATH=$(printf %q "$TMP/bin:$PATH")
export ANTHROPIC_API_KEY=sk-ant-demo-not-a-real-key-000
export ANTHROPIC_BASE_URL=http://host.docker.internal:$PORT
export AGENT_WORKER_CA_CERT=$(printf %q "$CA_CERT")
export XDG_STATE_HOME=$(printf %q "$TMP/state")
export HISTFILE=/dev/null
unset NO_COLOR DEBUG AGENT_WORKER_JSON
cd $(printf %q "$PROJECT")
PS1='\$ '
PROMPT_COMMAND='echo \$? > $(printf %q "$TMP/exit")'
EOF

tmux -L "$SOCKET" -f /dev/null new-session -d -x "$WIDTH" -y "$HEIGHT" -s capture "bash --noprofile --rcfile $(printf %q "$TMP/rc") -i"
tmux -L "$SOCKET" set-option -t capture history-limit 5000 >/dev/null
for _ in $(seq 1 100); do [[ -f $TMP/exit ]] && break; sleep 0.1; done
[[ -f $TMP/exit ]] || die "the shell in tmux did not show its prompt"
rm -f "$TMP/exit"
tmux -L "$SOCKET" send-keys -t capture 'agent-worker --task "Add a greeting module" --branch demo/greeting' Enter

# Poll the screen: keep the first frame that shows a tool in the spinner line, until the command ends.
pane() { tmux -L "$SOCKET" capture-pane -p -t capture "$@" | sed -e 's/[[:space:]]*$//' | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'; }
MID=
deadline=$((SECONDS + RUN_TIMEOUT_S))
while [[ ! -f $TMP/exit ]]; do
  ((SECONDS < deadline)) || die "the run did not end within $RUN_TIMEOUT_S s"
  if [[ -z $MID ]]; then
    frame=$(pane)
    if grep -Eq 'turn [0-9]+ · (Bash|Write|Edit|Read)' <<<"$frame"; then MID=$frame; fi
  fi
  sleep 0.1
done
EXIT_CODE=$(cat "$TMP/exit")
sleep 0.3 # let the prompt draw
FINAL=$(pane -S - -E -)

[[ -n $MID ]] || echo "capture-terminal: warning: no mid-run frame showed a tool (the run was too quick?)" >&2
mkdir -p "$(dirname "$OUT")"
{
  echo "agent-worker: a real run, captured from a ${WIDTH}x${HEIGHT} terminal (tmux) by bench/capture-terminal.sh."
  echo "The model API is the scripted test fixture (ANTHROPIC_BASE_URL=http://host.docker.internal:<port>);"
  echo "Docker, the image, Claude Code and git are real. Exit code: $EXIT_CODE."
  echo
  echo "=== While the agent works (mid-run frame) ==="
  echo
  printf '%s\n' "${MID:-(no frame caught)}"
  echo
  echo "=== When the run has ended (final screen) ==="
  echo
  printf '%s\n' "$FINAL"
} >"$OUT"
echo "capture-terminal: wrote $OUT (agent-worker exited $EXIT_CODE)" >&2

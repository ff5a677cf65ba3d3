#!/usr/bin/env bash
# Makes Debian's chromium available for the browser test of the batch HTML report
# (tests/e2e/batch-html.e2e.test.ts, which launches it through playwright-core).
# Idempotent: installs the `chromium` package only when /usr/bin/chromium is missing; prints its version.
set -euo pipefail

log() { printf '[setup-chromium] %s\n' "$*" >&2; }

if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium"
  start=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
  log "installed in $(( $(date +%s) - start )) s"
fi
log "$(/usr/bin/chromium --version 2>/dev/null) ready"

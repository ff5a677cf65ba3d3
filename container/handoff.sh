#!/usr/bin/env bash
# agent-worker: the run's inputs and outputs where the host has no archive API into the container (a Docker Swarm
# job: the manager cannot reach a task's container). Run as root by the entrypoint when AW_HANDOFF=stream.
#
#   agent-worker-handoff in
#     Opens / (0755) when the storage driver left it root-only, and unpacks the run's hand-off (the tar the host hands
#     in as a swarm secret: `secrets`, `task`, `home/…`,
#     `commit-message`, `out-nonce`) from AW_HANDOFF_FILE into /run/agent-worker, root-only, and moves the
#     repository bundle beside them: the files named in AW_BUNDLE_PARTS (space-separated; swarm secrets, joined in
#     order), else the one the run's image carries (/run/agent-worker-in/repo.bundle). A secret's own file cannot be
#     deleted (a read-only tmpfs mount): the host gives them to uid HANDOFF_UID (65533) with mode 0400, read here as
#     that user, out of the reach of the agent's user even when that is root (with no capabilities).
#
#   agent-worker-handoff out
#     Writes, on stdout, one block the host reads out of the job's output stream:
#       agent-worker-out:<nonce>:begin
#       <the tar, base64, 76 characters a line>
#       agent-worker-out:<nonce>:end:<bytes>:<sha256 of the tar>
#     <nonce> is the hand-off's `out-nonce` (only root can read it: the agent cannot forge the block). The tar holds
#     agent-worker-out/ (collect.sh's result and work.bundle), agent-worker-verify/ (the --verify command's output)
#     and agent-files/<N>/<name>: each regular file named on line N (from 0) of AW_OUTPUT_FILES (absolute paths the
#     agent's plugin reads after the run) that is no symbolic link anywhere on its path and at most 1 MiB.
#     Symbolic links inside the folders are archived as links (never followed); the host extracts safely.
#
# Exit status: 0, or 71 (EX_OSERR) when a step failed (the reason on stderr, prefixed "agent-worker:").
set -euo pipefail

readonly RUN_DIR=/run/agent-worker
readonly IN_DIR=/run/agent-worker-in
readonly OUT_DIR=/run/agent-worker-out
readonly VERIFY_DIR=/run/agent-worker-verify
readonly NONCE_FILE=/run/agent-worker-out-nonce
readonly AGENT_FILE_MAX_BYTES=$((1024 * 1024))
# Owner of the hand-off's files (mode 0400): neither root nor the agent's user, so not even an agent running as root
# can read them (they cannot be deleted); read here as that user (CAP_SETUID, CAP_SETGID).
readonly HANDOFF_UID=65533

# COMMAND... as the agent's user (AW_UID:AW_GID) when known: the entrypoint holds no DAC_OVERRIDE, so root cannot read
# the agent's 0700 folders (its work's out folder, its HOME) itself.
as_agent() {
  if [[ -n ${AW_UID:-} ]]; then
    setpriv --reuid="$AW_UID" --regid="${AW_GID:-$AW_UID}" --clear-groups -- "$@"
  else
    "$@"
  fi
}

# cat FILE... as the hand-off's owner.
as_handoff_owner() {
  setpriv --reuid="$HANDOFF_UID" --regid="$HANDOFF_UID" --clear-groups -- "$@"
}

die() {
  printf 'agent-worker: %s\n' "$*" >&2
  exit 71
}

# read_handoff FILE...: the files' bytes, in order: as their owner when HANDOFF_UID owns them (a swarm's secrets),
# else as root.
read_handoff() {
  if [[ $(stat -c %u -- "$1") == "$HANDOFF_UID" ]]; then as_handoff_owner cat -- "$@"; else cat -- "$@"; fi
}

hand_in() {
  local source=${AW_HANDOFF_FILE:-}
  [[ ${AW_UID:-} != "$HANDOFF_UID" ]] || die "AW_UID $HANDOFF_UID is reserved for the hand-off's files; run as another user"
  # Some storage drivers (vfs in docker-in-docker nodes) leave the container's / at 0700: nobody but root could even
  # load libc. It is root's own folder, so root may open it without any capability.
  if [[ $(stat -c %a /) != 755 ]]; then chmod 0755 / || die "cannot open / (mode $(stat -c %a /)) to the agent's user"; fi
  [[ -n $source && -e $source ]] || die "the run's hand-off ${source:-(AW_HANDOFF_FILE unset)} is missing"
  install -d -m 0700 -o root -g root -- "$RUN_DIR" || die "cannot create $RUN_DIR"
  read_handoff "$source" | tar -x --no-same-owner --no-same-permissions -f - -C "$RUN_DIR" ||
    die "cannot unpack the run's hand-off"
  chown -R root:root -- "$RUN_DIR" && chmod -R go-rwx -- "$RUN_DIR" || die "cannot make $RUN_DIR root-only"
  if [[ -e $RUN_DIR/out-nonce ]]; then
    mv -f -- "$RUN_DIR/out-nonce" "$NONCE_FILE" && chmod 0400 -- "$NONCE_FILE" || die "cannot keep the output nonce"
  fi
  if [[ -n ${AW_BUNDLE_PARTS:-} ]]; then
    # A small bundle comes as secrets, in order: joined into one file, root-only.
    local part parts
    read -r -a parts <<<"$AW_BUNDLE_PARTS"
    for part in "${parts[@]}"; do
      [[ -e $part ]] || die "a part of the repository bundle ($part) is missing"
    done
    (umask 077 && read_handoff "${parts[@]}" >"$RUN_DIR/repo.bundle") || die "cannot join the repository bundle"
  elif [[ -e $IN_DIR/repo.bundle ]]; then
    mv -f -- "$IN_DIR/repo.bundle" "$RUN_DIR/repo.bundle" && chmod 0400 -- "$RUN_DIR/repo.bundle" ||
      die "cannot move the repository bundle into place"
  fi
}

hand_out() {
  [[ -r $NONCE_FILE ]] || die "no output nonce: was 'in' run?"
  local nonce staging tarball bytes sum index=0 file
  nonce=$(<"$NONCE_FILE")
  [[ $nonce =~ ^[0-9a-f]{32}$ ]] || die "the output nonce is malformed"
  staging=$(mktemp -d /run/agent-worker-stage.XXXXXX) || die "cannot create a staging folder"
  tarball=$(mktemp /run/agent-worker-out.XXXXXX) || die "cannot create the output archive"
  mkdir -p -- "$staging/agent-files"
  if [[ -n ${AW_OUTPUT_FILES:-} ]]; then
    # Checked and read as the agent's user (its HOME is 0700), never following a link.
    while IFS= read -r file; do
      if [[ $file == /* ]] && as_agent test -f "$file" && [[ $(as_agent realpath -e -- "$file" 2>/dev/null) == "$file" ]] &&
        (($(as_agent stat -c %s -- "$file") <= AGENT_FILE_MAX_BYTES)); then
        mkdir -p -- "$staging/agent-files/$index"
        as_agent cat -- "$file" >"$staging/agent-files/$index/${file##*/}" || die "cannot copy $file"
      fi
      index=$((index + 1))
    done <<<"$AW_OUTPUT_FILES"
  fi
  tar -c --numeric-owner -f "$tarball" -C "$staging" agent-files || die "cannot archive the agent's files"
  if [[ -d $OUT_DIR ]]; then
    # The work's folder is the agent's (0700): archived as the agent (links stored as links), appended here.
    local part
    part=$(mktemp /run/agent-worker-part.XXXXXX) || die "cannot create the work's archive"
    as_agent tar -c --numeric-owner -C "${OUT_DIR%/*}" "${OUT_DIR##*/}" >"$part" || die "cannot archive the work"
    tar -A -f "$tarball" "$part" || die "cannot add the work to the archive"
    rm -f -- "$part"
  fi
  if [[ -d $VERIFY_DIR ]]; then
    tar -r --numeric-owner -f "$tarball" -C "${VERIFY_DIR%/*}" "${VERIFY_DIR##*/}" || die "cannot archive the verify output"
  fi
  bytes=$(stat -c %s -- "$tarball")
  read -r sum _ < <(sha256sum -- "$tarball")
  printf 'agent-worker-out:%s:begin\n' "$nonce"
  base64 -w 76 -- "$tarball"
  printf 'agent-worker-out:%s:end:%s:%s\n' "$nonce" "$bytes" "$sum"
  rm -rf -- "$staging" "$tarball"
}

case ${1:-} in
  in) hand_in ;;
  out) hand_out ;;
  *) die "usage: agent-worker-handoff in|out" ;;
esac

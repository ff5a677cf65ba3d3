#!/usr/bin/env bash
# agent-worker container entrypoint. Runs as root (with the few capabilities the host grants), sets the
# container up, then replaces itself with the agent — as AW_UID:AW_GID, with every capability set empty
# and no_new_privs set. Its arguments ("$@") are the agent's command line, run as given (never by a shell).
#
# Capabilities it needs (everything else can be dropped): CHOWN, SETUID, SETGID, SETPCAP for itself;
# NET_ADMIN, NET_RAW for firewall.sh. Works under Docker's --security-opt no-new-privileges.
#
# Inputs (the host side's contract; nothing else is read):
#   env AW_UID, AW_GID    numeric ids the agent runs as (the host user's); 0 is allowed
#   env AW_ALLOW_HOSTS    space-separated host names / IP addresses the agent may reach (see firewall.sh)
#   env AW_DEBUG=1        diagnostics on stderr
#   env TZ and the agent's own environment (its base URL, settings, ...) are passed through unchanged
#   /run/agent-worker/secrets  optional; NUL-separated KEY=value entries (a value may hold any byte but
#                         NUL). Read into the agent's environment only, and deleted before anything runs.
#   /run/agent-worker/task     optional; the task text. Deleted, and handed to the agent as its stdin
#                         (stdin is /dev/null without it).
#   env AW_WORKSPACE      `mount` (default): /workspace is the host's bind-mounted work tree; this script
#                         execs the agent and the host commits. `copy`: /workspace is made here from
#                         /run/agent-worker/repo.bundle (a git bundle whose ref AW_BUNDLE_REF, default HEAD,
#                         is AW_BASE_COMMIT), on a
#                         new branch AW_BRANCH; the agent runs as a child; when it ends (or SIGTERM/SIGINT/
#                         SIGHUP asks it to), every process it left is killed and collect.sh, as the agent's
#                         user, commits what is uncommitted (message: /run/agent-worker/commit-message) and
#                         bundles base..HEAD into /run/agent-worker-out/ for the host to fetch.
#                         `none`: /workspace is the image's empty folder (`agent-worker doctor`'s probes).
#   env AW_GIT_NAME, AW_GIT_EMAIL  copy mode: the identity of commits made in the container
#   env AW_VERIFY         optional; a command run with `bash -c` in /workspace, as the agent's user and
#                         behind the same firewall, once the agent has ended by itself (not when the host
#                         stopped it) and every process it left was killed. In copy mode it runs before the
#                         work is collected. Its stdout+stderr go to /run/agent-worker-verify/verify.log and
#                         `exit=N` / `duration_ms=N` to /run/agent-worker-verify/verify.result (root's folder:
#                         neither the agent nor the command can write there). With AW_VERIFY set, this script
#                         stays PID 1 and supervises in mount mode too.
#   /run/agent-worker/home/    optional; files the agent needs in its HOME (its settings, an MCP configuration):
#                         the tree is moved into $HOME, owned by the agent, folders 0700 and files 0600
#   env AW_API_CHECK      optional; "HOST PORT" of the model API (or the egress proxy in front of it): once the
#                         firewall is up, a TCP connection to it is tried every 50 ms and must succeed within 10 s,
#                         or the agent is not started (exit 69)
#   env AW_HANDOFF=stream where the host has no archive API into the container (a swarm job): the inputs above come
#                         from the tar AW_HANDOFF_FILE (a swarm secret) and the image's /run/agent-worker-in/repo.bundle
#                         (`agent-worker-handoff in`, before anything else), and once the work is collected the
#                         outputs above are written on stdout as one block (`agent-worker-handoff out`; see handoff.sh)
#   env AW_OUTPUT_FILES   with AW_HANDOFF=stream: absolute paths, one a line, of files the agent's plugin reads after
#                         the run; they travel in the output block
#   env AW_STOP_AFTER_SECONDS  optional, supervised modes: the agent is stopped (as by SIGTERM) after this many
#                         seconds, with "agent-worker: time limit reached, stopping the agent" on stderr (where the
#                         host cannot stop the container itself in time)
#
# Output: stdout belongs to the agent; this script writes to stderr only, every line prefixed
# "agent-worker:", and never writes a secret value. Two lines time the agent's process, in seconds since
# the epoch with microseconds (bash's EPOCHREALTIME): "agent-worker: agent process started at S.U" right
# before its exec, and, when this script supervises, "agent-worker: agent process ended at S.U".
#
# Exit status: the agent's own, or, when the agent never started:
#   64  (EX_USAGE)  the host broke the contract: AW_UID/AW_GID missing or not numeric, no agent command,
#                   a malformed secrets entry
#   71  (EX_OSERR)  the container could not be prepared: a capability named above is missing, the
#                   secrets or task file is unreadable, HOME or /etc/passwd could not be set up, or the
#                   agent's privileges were found not dropped
#   78  (EX_CONFIG) the egress firewall could not be set up
#   69  (EX_UNAVAILABLE) AW_API_CHECK's host and port did not accept a connection; the reason is on stderr as
#                   "agent-worker: model API check failed: HOST:PORT: connection refused" (or "the host name does not
#                   resolve", "no answer within 10 s", …)
#   75  (EX_TEMPFAIL) copy mode: the agent ran, but collecting its work failed (see stderr)
set -euo pipefail

readonly RUN_DIR=/run/agent-worker
readonly SECRETS_FILE="$RUN_DIR/secrets"
readonly TASK_FILE="$RUN_DIR/task"
readonly FIREWALL=/usr/local/bin/agent-worker-firewall
readonly AGENT_HOME=/home/agent
readonly WORKSPACE=/workspace
readonly OUT_DIR=/run/agent-worker-out
readonly COLLECT=/usr/local/bin/agent-worker-collect
readonly VERIFY_DIR=/run/agent-worker-verify
readonly HOME_FILES="$RUN_DIR/home"
readonly MODE=${AW_WORKSPACE:-mount}

# Run by bash -c as the agent, right before its exec: a fixed script, its inputs are AW_UID/AW_GID in
# the environment and the agent's argv. Exits 71 unless every capability set is empty, no_new_privs is
# set, all four uids/gids are AW_UID/AW_GID and there are no supplementary groups.
# shellcheck disable=SC2016 # expanded by that bash, not this one
readonly VERIFY_DROPPED='
problems=()
while read -r key a b c d; do
  case $key in
    Cap???:) [[ $a =~ ^0+$ ]] || problems+=("$key$a") ;;
    NoNewPrivs:) [[ $a == 1 ]] || problems+=("$key$a") ;;
    Uid:) [[ "$a $b $c $d" == "$AW_UID $AW_UID $AW_UID $AW_UID" ]] || problems+=("$key$a,$b,$c,$d") ;;
    Gid:) [[ "$a $b $c $d" == "$AW_GID $AW_GID $AW_GID $AW_GID" ]] || problems+=("$key$a,$b,$c,$d") ;;
    Groups:) [[ -z $a ]] || problems+=("$key$a...") ;;
  esac
done </proc/self/status
if ((${#problems[@]} > 0)); then
  printf "agent-worker: privileges not dropped, not starting the agent: %s\n" "${problems[*]}" >&2
  exit 71
fi
printf "agent-worker: agent process started at %s\n" "$EPOCHREALTIME" >&2
exec -- "$@"
'

log() { printf 'agent-worker: %s\n' "$*" >&2; }
debug() { if [[ ${AW_DEBUG:-} == 1 ]]; then log "$@"; fi; }
die() {
  local status=$1
  shift
  log "$@"
  exit "$status"
}

# --- 0. where the host cannot hand files in, they come from the run's hand-off ---------------------------
readonly HANDOFF=/usr/local/bin/agent-worker-handoff
if [[ ${AW_HANDOFF:-} == stream ]]; then
  "$HANDOFF" in || exit 71
fi

# --- 1. secrets and task: take them off the file system first ---------------------------------------
# fd 3 holds the task (or /dev/null) until it becomes the agent's stdin.
# Each file is opened, then deleted, then read, so it is gone even when reading fails. The secrets stay
# in unexported shell arrays (the firewall script and other children never see them) until the exec.
secret_names=()
secret_values=()
if [[ -e $SECRETS_FILE ]]; then
  open_ok=yes
  { exec {secrets_fd}<"$SECRETS_FILE"; } 2>/dev/null || open_ok=no
  rm -f -- "$SECRETS_FILE" || die 71 "cannot delete $SECRETS_FILE"
  [[ $open_ok == yes ]] ||
    die 71 "cannot read $SECRETS_FILE (deleted); it must be owned by uid 0 with mode 0400 or 0600"
  entry_number=0
  while IFS= read -r -d '' entry <&"$secrets_fd" || [[ -n $entry ]]; do
    entry_number=$((entry_number + 1))
    [[ -z $entry ]] && continue
    name=${entry%%=*}
    # The name is checked without ever printing the entry: a malformed one may be a value.
    if [[ $entry != *=* || ! $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
      die 64 "secrets entry $entry_number is not NAME=value with NAME a valid environment variable name"
    fi
    secret_names+=("$name")
    secret_values+=("${entry#*=}")
  done
  exec {secrets_fd}<&-
  unset entry name entry_number secrets_fd open_ok
  debug "read ${#secret_names[@]} secret(s): ${secret_names[*]}"
fi

if [[ -e $TASK_FILE ]]; then
  open_ok=yes
  { exec 3<"$TASK_FILE"; } 2>/dev/null || open_ok=no
  rm -f -- "$TASK_FILE" || die 71 "cannot delete $TASK_FILE"
  [[ $open_ok == yes ]] ||
    die 71 "cannot read $TASK_FILE (deleted); it must be owned by uid 0 with mode 0400 or 0600"
  debug "task: $TASK_FILE is the agent's stdin"
else
  exec 3</dev/null
  debug "task: none; the agent's stdin is /dev/null"
fi

# --- contract checks ----------------------------------------------------------------------------------
# Decimal, no leading zeros (so setpriv cannot read it as anything else), below 2^32-1 (which is -1).
is_id() { [[ $1 =~ ^(0|[1-9][0-9]{0,9})$ ]] && (($1 < 4294967295)); }
[[ -n ${AW_UID:-} ]] || die 64 "AW_UID is not set (the numeric user id the agent runs as)"
[[ -n ${AW_GID:-} ]] || die 64 "AW_GID is not set (the numeric group id the agent runs as)"
is_id "$AW_UID" || die 64 "AW_UID must be a numeric user id, got '$AW_UID'"
is_id "$AW_GID" || die 64 "AW_GID must be a numeric group id, got '$AW_GID'"
(($# > 0)) || die 64 "no agent command given (the container's arguments are the agent's command line)"
case $MODE in
  mount) ;;
  copy)
    [[ ${AW_BRANCH:-} =~ ^[^[:space:]]+$ ]] || die 64 "AW_BRANCH must name the branch to work on"
    [[ ${AW_BASE_COMMIT:-} =~ ^[0-9a-f]{40}([0-9a-f]{24})?$ ]] || die 64 "AW_BASE_COMMIT must be a full commit id"
    [[ -r $RUN_DIR/repo.bundle ]] || die 71 "copy mode: $RUN_DIR/repo.bundle is missing"
    ;;
  none) ;;
  *) die 64 "AW_WORKSPACE must be mount, copy or none, got '$MODE'" ;;
esac

# The capabilities this script needs for step 4 (bit numbers from linux/capability.h). Checked up front
# because setpriv does not fail without CAP_SETPCAP: it silently leaves the bounding set, and uid 0 then
# regains the container's capabilities on exec. (The firewall checks its own: NET_ADMIN, NET_RAW.)
missing=()
read -r cap_eff < <(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
for cap in CHOWN=0 SETGID=6 SETUID=7 SETPCAP=8; do
  (((16#$cap_eff >> ${cap#*=}) & 1)) || missing+=("${cap%=*}")
done
((${#missing[@]} == 0)) || die 71 "the container lacks capabilities ${missing[*]} (give them with --cap-add)"
unset missing cap_eff cap

# --- 2. egress firewall: the agent never starts without it ---------------------------------------------
# firewall.sh writes its diagnostics to stderr, the reason for a failure on its last line.
fw_status=0
fw_output=$("$FIREWALL" 2>&1 </dev/null 3<&-) || fw_status=$?
if ((fw_status != 0)); then
  why=${fw_output##*$'\n'}
  [[ -n $why ]] || why="$FIREWALL exited with status $fw_status"
  if [[ $fw_output == *$'\n'* ]]; then printf '%s\n' "${fw_output%$'\n'*}" >&2; fi
  log "firewall setup failed: $why"
  exit 78
fi
if [[ -n $fw_output ]]; then printf '%s\n' "$fw_output" >&2; fi

# --- 2b. the model API accepts a connection: behind the firewall, so it costs milliseconds, not minutes of
# the agent's own retries. A TCP connect (bash's /dev/tcp: getaddrinfo, so the names the firewall pinned in
# /etc/hosts resolve), bounded by API_CHECK_SECONDS.
readonly API_CHECK_SECONDS=10
if [[ -n ${AW_API_CHECK:-} ]]; then
  read -r api_host api_port _ <<<"$AW_API_CHECK"
  [[ -n $api_host && $api_port =~ ^[0-9]{1,5}$ ]] || die 64 "AW_API_CHECK must be 'HOST PORT', got '$AW_API_CHECK'"
  api_status=0
  # Tried every 50 ms until it connects (the proxy may still be starting), each failure's message printed; the
  # last one says why it never connected.
  # shellcheck disable=SC2016 # expanded by that bash, not this one
  api_output=$(timeout "$API_CHECK_SECONDS" bash -c '
    while :; do
      if failure=$({ exec 3<>"/dev/tcp/$0/$1"; } 2>&1); then exit 0; fi
      printf "%s\n" "$failure"
      sleep 0.05
    done' "$api_host" "$api_port" 2>&1 </dev/null 3<&-) || api_status=$?
  if ((api_status != 0)); then
    api_output=${api_output%$'\n'}
    api_output=${api_output##*$'\n'}
    case $api_output in
      *refused*) api_why="connection refused" ;;
      *"not known"* | *"resolve"* | *"No address"* | *"Temporary failure in name resolution"*) api_why="the host name does not resolve" ;;
      *unreachable*) api_why="network unreachable" ;;
      *)
        if ((api_status == 124)); then
          api_why="no answer within $API_CHECK_SECONDS s"
        else
          api_why=${api_output##*: }
          api_why=${api_why:-"connect failed with status $api_status"}
        fi
        ;;
    esac
    log "model API check failed: $api_host:$api_port: $api_why"
    exit 69
  fi
  debug "model API $api_host:$api_port accepts connections"
  unset api_host api_port api_status api_output api_why
fi

# --- 3. the agent's user and HOME -----------------------------------------------------------------------
# Tools look the uid up (git, ssh, os.userInfo()); give it a passwd entry when the image has none.
# /etc/passwd and /etc/group are root's, so root appends to them without DAC_OVERRIDE.
if ! getent group "$AW_GID" >/dev/null; then
  group_name=agent
  getent group "$group_name" >/dev/null && group_name="agent-$AW_GID"
  printf '%s:x:%s:\n' "$group_name" "$AW_GID" >>/etc/group || die 71 "cannot add group $AW_GID to /etc/group"
fi
if ! getent passwd "$AW_UID" >/dev/null; then
  user_name=agent
  getent passwd "$user_name" >/dev/null && user_name="agent-$AW_UID"
  printf '%s:x:%s:%s:agent-worker agent:%s:/bin/bash\n' "$user_name" "$AW_UID" "$AW_GID" "$AGENT_HOME" \
    >>/etc/passwd || die 71 "cannot add user $AW_UID to /etc/passwd"
fi
# chmod while root still owns it (chmod of another user's file would need CAP_FOWNER), then chown
# (CAP_CHOWN). The image ships it empty and every container starts from the image, so the recursive chown only
# meets the agent's files installed here.
mkdir -p -- "$AGENT_HOME" || die 71 "cannot create $AGENT_HOME"
chmod 0700 -- "$AGENT_HOME" || die 71 "cannot chmod $AGENT_HOME"
if [[ -d $HOME_FILES ]]; then
  # Root-owned and root-only as handed in (the archive API); copied while root still owns both folders.
  {
    find "$HOME_FILES" -type d -exec chmod 0700 {} + &&
      find "$HOME_FILES" -type f -exec chmod 0600 {} + &&
      cp -a -- "$HOME_FILES/." "$AGENT_HOME/" &&
      rm -rf -- "$HOME_FILES"
  } || die 71 "cannot install the agent's files in $AGENT_HOME"
fi
chown -R -- "$AW_UID:$AW_GID" "$AGENT_HOME" || die 71 "cannot chown $AGENT_HOME to $AW_UID:$AW_GID"
export HOME=$AGENT_HOME
export SHELL=${SHELL:-/bin/bash}
debug "agent runs as $AW_UID:$AW_GID with HOME=$HOME: $*"

# --- 4. become the agent ----------------------------------------------------------------------------------
# setpriv: real/effective/saved uid and gid, no supplementary groups, and no capabilities — inheritable,
# ambient and bounding sets emptied, so permitted/effective are empty after the exec even for uid 0.
# no_new_privs: setuid/file-capability binaries grant nothing.
as_agent_user() {
  /usr/bin/setpriv \
    --reuid="$AW_UID" --regid="$AW_GID" --clear-groups \
    --inh-caps=-all --ambient-caps=-all --bounding-set=-all \
    --no-new-privs \
    -- "$@"
}
# git as the agent's user, with nothing from the repository's config able to run code.
git_as_agent() {
  as_agent_user git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c commit.gpgSign=false \
    -c safe.directory="$WORKSPACE" -C "$WORKSPACE" "$@"
}

if [[ $MODE == copy ]]; then
  # The bundle moves out of the root-only folder so the agent's user can read it; the work tree is
  # made by that user, so every file in it is the user's.
  bundle=/tmp/agent-worker-repo.bundle
  mv -f -- "$RUN_DIR/repo.bundle" "$bundle" && chmod 0444 -- "$bundle" || die 71 "cannot prepare the repository bundle"
  commit_message="agent-worker: work of the agent"
  if [[ -r $RUN_DIR/commit-message ]]; then
    commit_message=$(<"$RUN_DIR/commit-message")
    rm -f -- "$RUN_DIR/commit-message"
  fi
  chown -- "$AW_UID:$AW_GID" "$WORKSPACE" || die 71 "cannot chown $WORKSPACE"
  {
    git_as_agent init --quiet --initial-branch="$AW_BRANCH" &&
      git_as_agent fetch --quiet --no-tags "$bundle" "${AW_BUNDLE_REF:-HEAD}" &&
      [[ $(git_as_agent rev-parse FETCH_HEAD) == "$AW_BASE_COMMIT" ]] &&
      git_as_agent reset --quiet --hard FETCH_HEAD &&
      git_as_agent config user.name "${AW_GIT_NAME:-agent-worker}" &&
      git_as_agent config user.email "${AW_GIT_EMAIL:-agent-worker@localhost}"
  } >&2 || die 71 "cannot make the workspace from the repository bundle"
  rm -f -- "$bundle"
  install -d -m 0700 -o "$AW_UID" -g "$AW_GID" -- "$OUT_DIR" || die 71 "cannot create $OUT_DIR"
  debug "workspace copied in at $AW_BASE_COMMIT on branch $AW_BRANCH"
fi

# Secrets enter the environment only now, for the agent.
for i in "${!secret_names[@]}"; do
  export -- "${secret_names[i]}=${secret_values[i]}" || die 64 "cannot set secret ${secret_names[i]}"
done
unset secret_names secret_values i

if [[ -n ${AW_VERIFY:-} ]]; then
  install -d -m 0755 -o root -g root -- "$VERIFY_DIR" || die 71 "cannot create $VERIFY_DIR"
fi

if [[ $MODE != copy && -z ${AW_VERIFY:-} ]]; then
  # VERIFY_DROPPED, running as the agent, checks the dropped privileges in /proc/self/status before it
  # execs the agent's argv. stdin is the task (fd 3), which is then closed.
  exec /usr/bin/setpriv \
    --reuid="$AW_UID" --regid="$AW_GID" --clear-groups \
    --inh-caps=-all --ambient-caps=-all --bounding-set=-all \
    --no-new-privs \
    -- /bin/bash -c "$VERIFY_DROPPED" agent-worker "$@" <&3 3<&-
fi

# Copy mode, or a --verify command: this script stays PID 1 and supervises. A stop request (the host's
# `docker stop` at a timeout or interrupt) is passed on to the running child, which gets
# STOP_GRACE_TENTHS to end.
readonly STOP_GRACE_TENTHS=20
stop_requested=0
child_pid=
on_stop() {
  stop_requested=1
  if [[ -n $child_pid ]]; then kill -TERM "$child_pid" 2>/dev/null || true; fi
}
trap on_stop TERM INT HUP
# supervise PID: waits for the child PID to end (SIGKILL once a stop request's grace has run out);
# sets child_status to its exit status.
supervise() {
  child_pid=$1
  ((stop_requested)) && on_stop
  while :; do
    if wait "$child_pid"; then child_status=0; else child_status=$?; fi
    kill -0 "$child_pid" 2>/dev/null || break
    if ((stop_requested)); then
      for ((tenth = 0; tenth < STOP_GRACE_TENTHS; tenth++)); do
        kill -0 "$child_pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$child_pid" 2>/dev/null || true
    fi
  done
  child_pid=
}
# Nothing the agent (or the verify command) started may run on: kill every process but this one.
kill_the_rest() {
  local proc pid
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    ((pid == $$)) || kill -KILL "$pid" 2>/dev/null || true
  done
}
if [[ -n ${AW_STOP_AFTER_SECONDS:-} ]]; then
  [[ $AW_STOP_AFTER_SECONDS =~ ^[1-9][0-9]{0,8}$ ]] || die 64 "AW_STOP_AFTER_SECONDS must be a whole number of seconds"
  # Root's own timer: the agent's user cannot signal it; it goes with the rest once the agent has ended.
  (
    sleep "$AW_STOP_AFTER_SECONDS"
    log "time limit reached, stopping the agent"
    kill -TERM $$
  ) </dev/null 3<&- &
fi
as_agent_user /bin/bash -c "$VERIFY_DROPPED" agent-worker "$@" <&3 3<&- &
exec 3<&-
supervise $!
agent_status=$child_status
log "agent process ended at $EPOCHREALTIME"
kill_the_rest
debug "agent ended with status $agent_status (stop requested: $stop_requested)"

if [[ -n ${AW_VERIFY:-} ]]; then
  if ((stop_requested)); then
    log "verify: not run, the agent was stopped"
  else
    debug "verify: $AW_VERIFY"
    verify_started=$(date +%s%3N)
    # The log is opened by root in root's folder; the command only holds the open descriptor. Its
    # working directory is this script's: /workspace (the container's WorkingDir).
    (exec /usr/bin/setpriv \
      --reuid="$AW_UID" --regid="$AW_GID" --clear-groups \
      --inh-caps=-all --ambient-caps=-all --bounding-set=-all \
      --no-new-privs \
      -- /bin/bash -c "$AW_VERIFY") </dev/null >"$VERIFY_DIR/verify.log" 2>&1 &
    supervise $!
    verify_status=$child_status
    verify_ended=$(date +%s%3N)
    kill_the_rest
    printf 'exit=%s\nduration_ms=%s\n' "$verify_status" "$((verify_ended - verify_started))" >"$VERIFY_DIR/verify.result"
    debug "verify ended with status $verify_status"
  fi
fi
trap '' TERM INT HUP

# Where the host cannot fetch the outputs, they leave on stdout (whatever collecting did).
hand_out() {
  if [[ ${AW_HANDOFF:-} == stream ]]; then "$HANDOFF" out || log "writing the work to the output stream failed"; fi
}
if [[ $MODE == copy ]]; then
  if ! AW_AGENT_STATUS=$agent_status AW_COMMIT_MESSAGE=$commit_message AW_OUT_DIR=$OUT_DIR \
    as_agent_user "$COLLECT" >&2; then
    log "collecting the agent's work failed"
    hand_out
    exit 75
  fi
fi
hand_out
exit "$agent_status"

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
#   env TZ and the agent's own environment (ANTHROPIC_BASE_URL, ...) are passed through unchanged
#   /run/agent-worker/secrets  optional; NUL-separated KEY=value entries (a value may hold any byte but
#                         NUL). Read into the agent's environment only, and deleted before anything runs.
#   /run/agent-worker/task     optional; the task text. Deleted, and handed to the agent as its stdin
#                         (stdin is /dev/null without it).
#
# Output: stdout belongs to the agent; this script writes to stderr only, every line prefixed
# "agent-worker:", and never writes a secret value.
#
# Exit status: the agent's own, or, when the agent never started:
#   64  (EX_USAGE)  the host broke the contract: AW_UID/AW_GID missing or not numeric, no agent command,
#                   a malformed secrets entry
#   71  (EX_OSERR)  the container could not be prepared: a capability named above is missing, the
#                   secrets or task file is unreadable, HOME or /etc/passwd could not be set up, or the
#                   agent's privileges were found not dropped
#   78  (EX_CONFIG) the egress firewall could not be set up
set -euo pipefail

readonly RUN_DIR=/run/agent-worker
readonly SECRETS_FILE="$RUN_DIR/secrets"
readonly TASK_FILE="$RUN_DIR/task"
readonly FIREWALL=/usr/local/bin/agent-worker-firewall
readonly AGENT_HOME=/home/agent

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
# (CAP_CHOWN). Not recursive: the image ships it empty and every container starts from the image.
mkdir -p -- "$AGENT_HOME" || die 71 "cannot create $AGENT_HOME"
chmod 0700 -- "$AGENT_HOME" || die 71 "cannot chmod $AGENT_HOME"
chown -- "$AW_UID:$AW_GID" "$AGENT_HOME" || die 71 "cannot chown $AGENT_HOME to $AW_UID:$AW_GID"
export HOME=$AGENT_HOME
export SHELL=${SHELL:-/bin/bash}
if ((AW_UID == 0)); then
  # Claude Code refuses --dangerously-skip-permissions as root unless told it is sandboxed. uid 0 here
  # holds no capabilities at all (see below).
  export IS_SANDBOX=1
fi
debug "agent runs as $AW_UID:$AW_GID with HOME=$HOME: $*"

# --- 4. become the agent ----------------------------------------------------------------------------------
# Secrets enter the environment only now, for the exec.
for i in "${!secret_names[@]}"; do
  export -- "${secret_names[i]}=${secret_values[i]}" || die 64 "cannot set secret ${secret_names[i]}"
done
unset secret_names secret_values i

# setpriv: real/effective/saved uid and gid, no supplementary groups, and no capabilities — inheritable,
# ambient and bounding sets emptied, so permitted/effective are empty after the exec even for uid 0.
# no_new_privs: setuid/file-capability binaries grant nothing. Then VERIFY_DROPPED, running as the
# agent, checks all of that in /proc/self/status before it execs the agent's argv. stdin is the task
# (fd 3), which is then closed.
exec /usr/bin/setpriv \
  --reuid="$AW_UID" --regid="$AW_GID" --clear-groups \
  --inh-caps=-all --ambient-caps=-all --bounding-set=-all \
  --no-new-privs \
  -- /bin/bash -c "$VERIFY_DROPPED" agent-worker "$@" <&3 3<&-

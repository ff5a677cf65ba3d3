#!/usr/bin/env bash
# agent-worker egress firewall: default-deny OUTPUT for IPv4 and IPv6. Run by the entrypoint, as root
# with CAP_NET_ADMIN and CAP_NET_RAW, before the agent starts. Only the filter table's OUTPUT chain is
# touched (Docker's embedded-DNS rules live in the nat table).
#
# Allowed out: loopback (but no DNS); replies (ESTABLISHED,RELATED); IPv6 neighbour discovery; and any
# port on the addresses of the hosts in AW_ALLOW_HOSTS. Those names are resolved here, once, and pinned
# in /etc/hosts; after setup no DNS query leaves the container (port 53 is closed to every address,
# Docker's embedded resolver 127.0.0.11 included), so other names simply do not resolve. Everything else
# is REJECTed (TCP with a reset, so connects fail at once instead of hanging), behind a DROP policy.
# IPv6 rules are made when any interface but loopback has IPv6 on (and must work then); with IPv6 off
# no IPv6 packet can leave, so none are made.
#
# Inputs (env only):
#   AW_ALLOW_HOSTS  space-separated host names or literal IP addresses. Names are resolved once, here,
#                   with getent ahosts (getaddrinfo: so /etc/hosts, e.g. host.docker.internal, applies);
#                   a name with no address is an error ("cannot resolve host 'NAME' …"). The addresses go into ipsets aw-allow-v4/-v6
#                   (aw-allow-v6 only with IPv6 on).
#   AW_RESOLVE_WAIT_SECONDS  optional; how long names that do not resolve yet are looked up again (every 50 ms)
#                   before that is an error; default 0
#   AW_DEBUG=1      what was resolved and which iptables backend is used, on stderr
#
# Output: stderr only. On failure the last line is the reason (the entrypoint quotes it) and the exit
# status is non-zero. Rules may be half applied then; the entrypoint does not start the agent.
#
# Speed: this runs before every agent, so it forks little: one getent for all names, one `ipset
# restore` for both sets, one `iptables-restore` per family (an atomic transaction of the whole OUTPUT
# chain, which is also what proves the backend usable) and one `iptables -S` per family to verify.
set -euo pipefail

readonly SET_V4=aw-allow-v4
readonly SET_V6=aw-allow-v6

debug() { if [[ ${AW_DEBUG:-} == 1 ]]; then printf 'agent-worker: firewall: %s\n' "$*" >&2; fi; }
die() {
  printf '%s\n' "$*" >&2
  exit 1
}
# one_line TEXT: TEXT with its lines joined by "; " (a command's error output, for a die message).
one_line() {
  local text=${1%$'\n'}
  printf '%s' "${text//$'\n'/; }"
}

is_ipv4() { [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; }
is_ipv6() { [[ $1 == *:* && $1 =~ ^[0-9A-Fa-f:.]+$ ]]; }

# IPv6 is off when no interface but loopback has it on. conf/all/disable_ipv6 is not enough: Docker
# sets it to 1 in every container and then turns IPv6 back on for eth0 on an IPv6-enabled network.
ipv6_disabled() {
  local flag name value
  for flag in /proc/sys/net/ipv6/conf/*/disable_ipv6; do
    [[ -r $flag ]] || continue # no IPv6 in this kernel: the glob matched nothing
    name=${flag%/disable_ipv6}
    name=${name##*/}
    if [[ $name == all || $name == default || $name == lo ]]; then continue; fi
    read -r value <"$flag" || return 1
    if [[ $value != 1 ]]; then return 1; fi
  done
  return 0
}

# CAP_NET_ADMIN for ipset and iptables; CAP_NET_RAW because iptables' set match (libxt_set) asks the
# kernel for a set's index over a raw socket, with either backend, and iptables-legacy uses one anyway.
cap_eff=0
while read -r key value _; do
  if [[ $key == CapEff: ]]; then
    cap_eff=$value
    break
  fi
done </proc/self/status
for cap in NET_ADMIN=12 NET_RAW=13; do
  (((16#$cap_eff >> ${cap#*=}) & 1)) || die "missing capability ${cap%=*} (give it with --cap-add ${cap%=*})"
done

# --- resolve: before any rule exists, so DNS still works ---------------------------------------------
allow_v4=()
allow_v6=()
names=()
read -r -a hosts <<<"${AW_ALLOW_HOSTS:-}"
for host in "${hosts[@]}"; do
  if is_ipv4 "$host"; then
    allow_v4+=("$host")
    debug "allow $host"
  elif is_ipv6 "$host"; then
    allow_v6+=("$host")
    debug "allow $host"
  elif [[ $host =~ ^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$ ]]; then
    names+=("$host")
  else
    die "AW_ALLOW_HOSTS: '$host' is not a host name or IP address"
  fi
done

# getent ahosts NAME... prints, for each name it resolves, that name's addresses one per line
# ("ADDRESS SOCKTYPE [CANONICAL-NAME]"); only the first line of each name carries the canonical name, so
# that is where the next name's addresses begin. A name that does not resolve prints nothing (exit 2),
# so one call for all names is only read when every name resolved and the groups add up; otherwise each
# name is looked up alone, which also tells which one failed. getaddrinfo asks for A and AAAA at once
# (AI_ADDRCONFIG: AAAA only when the container has IPv6).
# A name that does not resolve yet (the egress proxy's, while its container is still starting) is looked up again
# every 50 ms for up to AW_RESOLVE_WAIT_SECONDS (default 0: once).
if ((${#names[@]} > 0)) && [[ ${AW_RESOLVE_WAIT_SECONDS:-0} =~ ^[1-9][0-9]{0,2}$ ]]; then
  now_ms() { local now=${EPOCHREALTIME/[.,]/}; printf '%s' "${now:0:-3}"; }
  deadline=$(($(now_ms) + AW_RESOLVE_WAIT_SECONDS * 1000))
  until getent ahosts "${names[@]}" >/dev/null || (($(now_ms) >= deadline)); do sleep 0.05; done
fi

resolved=() # per name: its addresses, space-separated
lookup_all() {
  local output address canonical
  output=$(getent ahosts "${names[@]}") || return 1
  resolved=()
  while read -r address _ canonical; do
    [[ -n $address ]] || continue
    if [[ -n $canonical ]]; then
      resolved+=("")
    elif ((${#resolved[@]} == 0)); then
      return 1
    fi
    resolved[-1]+=" $address"
  done <<<"$output"
  ((${#resolved[@]} == ${#names[@]}))
}
if ((${#names[@]} > 0)) && ! lookup_all; then
  resolved=()
  for host in "${names[@]}"; do
    output=$(getent ahosts "$host") || output= # exit 2: no address
    list=
    while read -r address _; do list+=" $address"; done <<<"$output"
    resolved+=("$list")
  done
fi

# Per name: its IPv4 and IPv6 addresses, each once. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are IPv4
# traffic, covered by the IPv4 set, so they are left out.
declare -A seen=()
pinned=()
pinned_addresses=()
for i in "${!names[@]}"; do
  host=${names[i]}
  found_v4=()
  found_v6=()
  read -r -a addresses <<<"${resolved[i]}"
  for address in "${addresses[@]}"; do
    [[ -z ${seen["$i $address"]:-} ]] || continue
    seen["$i $address"]=1
    if is_ipv4 "$address"; then
      allow_v4+=("$address") found_v4+=("$address")
    elif is_ipv6 "$address" && [[ ${address,,} != ::ffff:* ]]; then
      allow_v6+=("$address") found_v6+=("$address")
    fi
  done
  found=("${found_v4[@]}" "${found_v6[@]}")
  ((${#found[@]} > 0)) || die "cannot resolve host '$host' (no IPv4 or IPv6 address)"
  debug "allow $host: ${found[*]}"
  pinned+=("$host")
  pinned_addresses+=("${found[*]}")
done

# --- pin the allowed names: once the rules are in, DNS is closed ---------------------------------------
# A name /etc/hosts already lists (after a line's first field) stays as it is.
declare -A listed=()
if [[ -r /etc/hosts ]]; then
  while read -r -a fields; do
    for name in "${fields[@]:1}"; do listed[$name]=1; done
  done </etc/hosts
fi
hosts_lines=()
for i in "${!pinned[@]}"; do
  [[ -z ${listed[${pinned[i]}]:-} ]] || continue
  listed[${pinned[i]}]=1
  read -r -a addresses <<<"${pinned_addresses[i]}"
  for address in "${addresses[@]}"; do hosts_lines+=("$address"$'\t'"${pinned[i]}"); done
done
if ((${#hosts_lines[@]} > 0)); then
  printf '%s\n' "${hosts_lines[@]}" >>/etc/hosts || die "cannot pin ${pinned[*]} in /etc/hosts"
fi

nameservers=()
if [[ ${AW_DEBUG:-} == 1 && -r /etc/resolv.conf ]]; then
  while read -r keyword address _; do
    if [[ $keyword == nameserver ]]; then nameservers+=("${address%%%*}"); fi
  done </etc/resolv.conf
  debug "nameservers: ${nameservers[*]}"
fi

# --- ipsets -------------------------------------------------------------------------------------------
# IPv6 off in this container (see ipv6_disabled): no IPv6 packet can leave it — the kernel drops them on
# an interface with disable_ipv6 set, and the agent can neither change that setting nor add an interface
# (both need CAP_NET_ADMIN) — so there is no IPv6 egress to deny, and no IPv6 set or rules are made.
ipv6=on
if ipv6_disabled; then ipv6=off; fi

# set_commands SET FAMILY ADDRESS...: `ipset restore` input that makes SET hold exactly ADDRESS..., in
# $commands (built in this shell: a command substitution would fork).
set_commands() {
  local set=$1 family=$2 address
  shift 2
  commands="create $set hash:ip family $family"$'\n'"flush $set"$'\n'
  for address in "$@"; do commands+="add $set $address"$'\n'; done
}
set_commands "$SET_V4" inet "${allow_v4[@]}"
v4_set_commands=$commands
v6_set_commands=
if [[ $ipv6 == on ]]; then
  set_commands "$SET_V6" inet6 "${allow_v6[@]}"
  v6_set_commands=$commands
fi
# One restore for both sets; it stops at the first line that fails, so on failure each set is made
# alone to tell which one.
if ! ipset -exist restore <<<"$v4_set_commands$v6_set_commands" 2>/dev/null; then
  error=$(ipset -exist restore 2>&1 <<<"$v4_set_commands") ||
    die "ipset restore ($SET_V4) failed: $(one_line "$error")"
  if [[ $ipv6 == on ]]; then
    error=$(ipset -exist restore 2>&1 <<<"$v6_set_commands") ||
      die "ipset restore ($SET_V6) failed: $(one_line "$error")"
  fi
fi

# --- rules ----------------------------------------------------------------------------------------------
# chain_rules SET REJECT_WITH FAMILY: in $rules, `iptables-restore --noflush` input for the filter
# table's OUTPUT chain, replaced whole (policy, flush, rules) in one transaction; the table's other
# chains are untouched.
chain_rules() {
  local set=$1 reject=$2 family=$3 type
  rules='*filter'$'\n'':OUTPUT DROP [0:0]'$'\n''-F OUTPUT'$'\n'
  # No DNS after setup, to any server (loopback included: Docker's embedded resolver 127.0.0.11 is
  # DNATed to another port on lo, so it is matched by address too). Allowed names were pinned in
  # /etc/hosts above; any other name gets no answer, so nothing leaks out through lookups.
  rules+="-A OUTPUT -p udp --dport 53 -j REJECT --reject-with $reject"$'\n'
  rules+='-A OUTPUT -p tcp --dport 53 -j REJECT --reject-with tcp-reset'$'\n'
  if [[ $family == 4 ]]; then rules+="-A OUTPUT -d 127.0.0.11 -j REJECT --reject-with $reject"$'\n'; fi
  rules+='-A OUTPUT -o lo -j ACCEPT'$'\n'
  rules+='-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'$'\n'
  if [[ $family == 6 ]]; then
    # Neighbour discovery: without it no IPv6 packet, allowed or not, leaves the link.
    for type in router-solicitation neighbour-solicitation neighbour-advertisement; do
      rules+="-A OUTPUT -p ipv6-icmp --icmpv6-type $type -j ACCEPT"$'\n'
    done
  fi
  rules+="-A OUTPUT -m set --match-set $set dst -j ACCEPT"$'\n'
  # A TCP reset fails connect() at once (ECONNREFUSED); an ICMP error for a local connect() that is
  # still in progress only counts as a soft error and surfaces after the first SYN retransmit (~1 s).
  rules+='-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset'$'\n'
  rules+="-A OUTPUT -j REJECT --reject-with $reject"$'\n''COMMIT'$'\n'
}
chain_rules "$SET_V4" icmp-admin-prohibited 4
v4_rules=$rules
v6_rules=
if [[ $ipv6 == on ]]; then
  chain_rules "$SET_V6" icmp6-adm-prohibited 6
  v6_rules=$rules
fi

# --- backend: nft (Debian's default) or legacy, the same for both families -----------------------------
# No probe: applying the rules is the test (every match and target they use must load). When nft takes
# the IPv4 rules but not the IPv6 ones, legacy then takes both; the nft IPv4 chain left behind holds the
# same rules, so it changes nothing.
iptables=
ip6tables=
errors=()
for backend in nft legacy; do
  if ! command -v "iptables-$backend-restore" >/dev/null; then
    errors+=("iptables-$backend: not installed")
    continue
  fi
  if ! error=$("iptables-$backend-restore" -w --noflush 2>&1 <<<"$v4_rules"); then
    errors+=("iptables-$backend: $(one_line "$error")")
    continue
  fi
  if [[ $ipv6 == on ]] && ! error=$("ip6tables-$backend-restore" -w --noflush 2>&1 <<<"$v6_rules"); then
    errors+=("ip6tables-$backend: $(one_line "$error")")
    continue
  fi
  iptables=iptables-$backend
  ip6tables=ip6tables-$backend
  break
done
if [[ -z $iptables ]]; then
  error=$(printf '%s; ' "${errors[@]}")
  die "no usable iptables backend (${error%; })"
fi
if [[ $ipv6 == on ]]; then
  debug "backend: $iptables and $ip6tables"
else
  debug "backend: $iptables (IPv6 disabled: no IPv6 rules)"
fi

# verify IPTABLES SET: read back, the policy is DROP, the set is matched and the last rule REJECTs.
verify() {
  local ipt=$1 set=$2 rules
  # stdout only: iptables-nft warns on stderr ("# Warning: iptables-legacy tables present") when the daemon set up
  # its embedded DNS (on a user-defined network) with iptables-legacy in this namespace. Run again for the reason.
  rules=$("$ipt" -w -S OUTPUT 2>/dev/null) || die "$ipt -S OUTPUT failed: $(one_line "$("$ipt" -w -S OUTPUT 2>&1)")"
  [[ ${rules%%$'\n'*} == '-P OUTPUT DROP' ]] || die "$ipt: OUTPUT policy is not DROP after setup"
  [[ $rules == *$'\n'"-A OUTPUT -m set --match-set $set dst -j ACCEPT"$'\n'* ]] ||
    die "$ipt: OUTPUT does not match set $set after setup"
  [[ ${rules##*$'\n'} == '-A OUTPUT -j REJECT --reject-with '* ]] ||
    die "$ipt: OUTPUT does not end in REJECT after setup"
}
verify "$iptables" "$SET_V4"
if [[ $ipv6 == on ]]; then verify "$ip6tables" "$SET_V6"; fi
debug "egress limited to ${#allow_v4[@]} IPv4 and ${#allow_v6[@]} IPv6 address(es)"

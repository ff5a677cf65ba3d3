#!/usr/bin/env bash
# agent-worker egress firewall: default-deny OUTPUT for IPv4 and IPv6. Run by the entrypoint, as root
# with CAP_NET_ADMIN and CAP_NET_RAW, before the agent starts. Only the filter table's OUTPUT chain is
# touched (Docker's embedded-DNS rules live in the nat table).
#
# Allowed out: loopback (but no DNS); replies (ESTABLISHED,RELATED); IPv6 neighbour discovery; and any
# port on the addresses of the hosts in AW_ALLOW_HOSTS. Those names are resolved here, once, and pinned
# in /etc/hosts; after setup no DNS query leaves the container (port 53 is closed to every address,
# Docker's embedded resolver 127.0.0.11 included), so other names simply do not resolve. Everything else is REJECTed (TCP with a reset, so connects fail at once instead of
# hanging), behind a DROP policy.
#
# Inputs (env only):
#   AW_ALLOW_HOSTS  space-separated host names or literal IP addresses. Names are resolved once, here,
#                   with getent ahostsv4/ahostsv6 (so /etc/hosts, e.g. host.docker.internal, applies);
#                   a name with no address is an error. The addresses go into ipsets aw-allow-v4/-v6.
#   AW_DEBUG=1      what was resolved and which iptables backend is used, on stderr
#
# Output: stderr only. On failure the last line is the reason (the entrypoint quotes it) and the exit
# status is non-zero. Rules may be half applied then; the entrypoint does not start the agent.
set -euo pipefail

readonly SET_V4=aw-allow-v4
readonly SET_V6=aw-allow-v6

debug() { if [[ ${AW_DEBUG:-} == 1 ]]; then printf 'agent-worker: firewall: %s\n' "$*" >&2; fi; }
die() {
  printf '%s\n' "$*" >&2
  exit 1
}

# Runs argv; on failure dies with the command and its own error message (one line).
run() {
  local out
  if ! out=$("$@" 2>&1); then
    out=${out//$'\n'/; }
    die "$* failed${out:+: $out}"
  fi
}

is_ipv4() { [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; }
is_ipv6() { [[ $1 == *:* && $1 =~ ^[0-9A-Fa-f:.]+$ ]]; }

# IPv6 is off when no interface but loopback has it on. conf/all/disable_ipv6 is not enough: Docker
# sets it to 1 in every container and then turns IPv6 back on for eth0 on an IPv6-enabled network.
ipv6_disabled() {
  local flag name
  for flag in /proc/sys/net/ipv6/conf/*/disable_ipv6; do
    [[ -r $flag ]] || continue # no IPv6 in this kernel: the glob matched nothing
    name=${flag%/disable_ipv6}
    name=${name##*/}
    if [[ $name == all || $name == default || $name == lo ]]; then continue; fi
    if [[ $(<"$flag") != 1 ]]; then return 1; fi
  done
  return 0
}

# CAP_NET_ADMIN for ipset and iptables; CAP_NET_RAW because iptables' set match (libxt_set) asks the
# kernel for a set's index over a raw socket, with either backend, and iptables-legacy uses one anyway.
read -r cap_eff < <(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
for cap in NET_ADMIN=12 NET_RAW=13; do
  (((16#$cap_eff >> ${cap#*=}) & 1)) || die "missing capability ${cap%=*} (give it with --cap-add ${cap%=*})"
done

# --- resolve: before any rule exists, so DNS still works ---------------------------------------------
allow_v4=()
allow_v6=()
pinned=()
pinned_addresses=()
read -r -a hosts <<<"${AW_ALLOW_HOSTS:-}"
for host in "${hosts[@]}"; do
  if is_ipv4 "$host"; then
    allow_v4+=("$host")
    debug "allow $host"
    continue
  fi
  if is_ipv6 "$host"; then
    allow_v6+=("$host")
    debug "allow $host"
    continue
  fi
  [[ $host =~ ^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$ ]] ||
    die "AW_ALLOW_HOSTS: '$host' is not a host name or IP address"
  found=()
  # getent exits 2 when the name has no address of a family; only no address at all is an error.
  # ahostsv6 also lists IPv4-mapped addresses (::ffff:a.b.c.d) for IPv4-only names: those are IPv4
  # traffic, covered by the IPv4 set, so they are left out.
  mapfile -t v4 < <(getent ahostsv4 "$host" | awk '{ print $1 }' | sort -u || true)
  mapfile -t v6 < <(getent ahostsv6 "$host" | awk 'tolower($1) !~ /^::ffff:/ { print $1 }' | sort -u || true)
  for address in "${v4[@]}"; do
    if is_ipv4 "$address"; then allow_v4+=("$address") found+=("$address"); fi
  done
  for address in "${v6[@]}"; do
    if is_ipv6 "$address"; then allow_v6+=("$address") found+=("$address"); fi
  done
  ((${#found[@]} > 0)) || die "AW_ALLOW_HOSTS: cannot resolve '$host' (no IPv4 or IPv6 address)"
  debug "allow $host: ${found[*]}"
  pinned+=("$host")
  pinned_addresses+=("${found[*]}")
done

# --- pin the allowed names: once the rules are in, DNS is closed ---------------------------------------
for i in "${!pinned[@]}"; do
  if ! grep -qE "[[:space:]]${pinned[i]//./\\.}([[:space:]]|\$)" /etc/hosts 2>/dev/null; then
    for address in ${pinned_addresses[i]}; do
      printf '%s\t%s\n' "$address" "${pinned[i]}" >>/etc/hosts || die "cannot pin ${pinned[i]} in /etc/hosts"
    done
  fi
done

nameservers_v4=()
nameservers_v6=()
if [[ -r /etc/resolv.conf ]]; then
  while read -r keyword address _; do
    [[ $keyword == nameserver ]] || continue
    address=${address%%%*} # a link-local nameserver's zone (fe80::1%eth0)
    if is_ipv4 "$address"; then
      nameservers_v4+=("$address")
    elif is_ipv6 "$address"; then
      nameservers_v6+=("$address")
    fi
  done </etc/resolv.conf
fi
debug "nameservers: ${nameservers_v4[*]}${nameservers_v6[*]:+ ${nameservers_v6[*]}}"

# --- ipsets -------------------------------------------------------------------------------------------
run ipset create -exist "$SET_V4" hash:ip family inet
run ipset flush "$SET_V4"
for address in "${allow_v4[@]}"; do run ipset add -exist "$SET_V4" "$address"; done
v6_set=no
if ipset create -exist "$SET_V6" hash:ip family inet6 2>/dev/null; then
  v6_set=yes
  run ipset flush "$SET_V6"
  for address in "${allow_v6[@]}"; do run ipset add -exist "$SET_V6" "$address"; done
fi

# --- backend: nft (Debian's default) or legacy, the same for both families -----------------------------
# A probe chain exercises every match and target the rules use; listing alone can succeed where
# adding rules does not.
probe() {
  local ipt=$1 set=$2 reject=$3
  "$ipt" -w -N AW-PROBE &&
    "$ipt" -w -A AW-PROBE -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN &&
    "$ipt" -w -A AW-PROBE -m set --match-set "$set" dst -j RETURN &&
    "$ipt" -w -A AW-PROBE -p tcp -j REJECT --reject-with tcp-reset &&
    "$ipt" -w -A AW-PROBE -j REJECT --reject-with "$reject"
  local status=$?
  "$ipt" -w -F AW-PROBE 2>/dev/null || true
  "$ipt" -w -X AW-PROBE 2>/dev/null || true
  return "$status"
}

iptables=
ip6tables=
v6_rules=no
probe_errors=()
for backend in nft legacy; do
  if ! command -v "iptables-$backend" >/dev/null; then
    probe_errors+=("iptables-$backend: not installed")
    continue
  fi
  if ! error=$(probe "iptables-$backend" "$SET_V4" icmp-admin-prohibited 2>&1); then
    probe_errors+=("iptables-$backend: ${error//$'\n'/; }")
    continue
  fi
  if [[ $v6_set != yes ]]; then
    error="ipset cannot create a family inet6 set"
  elif error=$(probe "ip6tables-$backend" "$SET_V6" icmp6-adm-prohibited 2>&1); then
    v6_rules=yes
  fi
  if [[ $v6_rules == no ]]; then
    if ! ipv6_disabled; then
      probe_errors+=("ip6tables-$backend: ${error//$'\n'/; }")
      continue
    fi
    # IPv6 is off in this container: no IPv6 egress is possible, so none needs blocking.
    debug "ip6tables-$backend unusable (${error//$'\n'/; }), IPv6 disabled: no IPv6 rules"
  fi
  iptables=iptables-$backend
  ip6tables=ip6tables-$backend
  break
done
if [[ -z $iptables ]]; then
  die "no usable iptables backend ($(IFS=';' && printf '%s' "${probe_errors[*]}" | sed 's/;/; /g'))"
fi
if [[ $v6_rules == yes ]]; then
  debug "backend: $iptables and $ip6tables"
else
  debug "backend: $iptables (no IPv6 rules)"
fi

# --- rules ----------------------------------------------------------------------------------------------
# family_rules IPTABLES SET REJECT_WITH NAMESERVER...
family_rules() {
  local ipt=$1 set=$2 reject=$3
  shift 3
  run "$ipt" -w -P OUTPUT DROP
  run "$ipt" -w -F OUTPUT
  run "$ipt" -w -A OUTPUT -o lo -j ACCEPT
  run "$ipt" -w -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  # No DNS after setup, to any server (loopback included: Docker's embedded resolver 127.0.0.11 is
  # DNATed to another port on lo, so it is matched by address too). Allowed names were pinned in
  # /etc/hosts above; any other name gets no answer, so nothing leaks out through lookups.
  : "$@"
  run "$ipt" -w -I OUTPUT 1 -p udp --dport 53 -j REJECT --reject-with "$reject"
  run "$ipt" -w -I OUTPUT 2 -p tcp --dport 53 -j REJECT --reject-with tcp-reset
  if [[ $ipt == iptables-* ]]; then
    run "$ipt" -w -I OUTPUT 3 -d 127.0.0.11 -j REJECT --reject-with "$reject"
  fi
  if [[ $ipt == ip6tables-* ]]; then
    # Neighbour discovery: without it no IPv6 packet, allowed or not, leaves the link.
    local type
    for type in router-solicitation neighbour-solicitation neighbour-advertisement; do
      run "$ipt" -w -A OUTPUT -p ipv6-icmp --icmpv6-type "$type" -j ACCEPT
    done
  fi
  run "$ipt" -w -A OUTPUT -m set --match-set "$set" dst -j ACCEPT
  # A TCP reset fails connect() at once (ECONNREFUSED); an ICMP error for a local connect() that is
  # still in progress only counts as a soft error and surfaces after the first SYN retransmit (~1 s).
  run "$ipt" -w -A OUTPUT -p tcp -j REJECT --reject-with tcp-reset
  run "$ipt" -w -A OUTPUT -j REJECT --reject-with "$reject"
}

# verify IPTABLES SET: read back, the policy is DROP, the set is matched and the last rule REJECTs.
verify() {
  local ipt=$1 set=$2 rules
  rules=$("$ipt" -w -S OUTPUT 2>&1) || die "$ipt -S OUTPUT failed: ${rules//$'\n'/; }"
  [[ ${rules%%$'\n'*} == '-P OUTPUT DROP' ]] || die "$ipt: OUTPUT policy is not DROP after setup"
  [[ $rules == *$'\n'"-A OUTPUT -m set --match-set $set dst -j ACCEPT"$'\n'* ]] ||
    die "$ipt: OUTPUT does not match set $set after setup"
  [[ ${rules##*$'\n'} == '-A OUTPUT -j REJECT --reject-with '* ]] ||
    die "$ipt: OUTPUT does not end in REJECT after setup"
}

family_rules "$iptables" "$SET_V4" icmp-admin-prohibited "${nameservers_v4[@]}"
if [[ $v6_rules == yes ]]; then
  family_rules "$ip6tables" "$SET_V6" icmp6-adm-prohibited "${nameservers_v6[@]}"
fi
verify "$iptables" "$SET_V4"
if [[ $v6_rules == yes ]]; then verify "$ip6tables" "$SET_V6"; fi
debug "egress limited to ${#allow_v4[@]} IPv4 and ${#allow_v6[@]} IPv6 address(es)"

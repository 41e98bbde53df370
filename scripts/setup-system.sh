#!/usr/bin/env bash
# Installs the system tools the network-namespace tests and benchmarks need (Debian/Ubuntu).
# Idempotent: only packages whose command is missing are installed, and `apt-get update` runs
# only when there are no package lists yet or an install could not find a package.
set -euo pipefail

# command -> package
declare -A PKG=(
  [ip]=iproute2
  [iptables]=iptables
  [iptables-legacy]=iptables
  [dig]=dnsutils
  [curl]=curl
  [socat]=socat
  [nc]=netcat-openbsd
  [iperf3]=iperf3
  [wrk]=wrk
  [openssl]=openssl
  [conntrack]=conntrack
  [dnsperf]=dnsperf
  [dnsmasq]=dnsmasq-base
  [promtool]=prometheus
  [ping]=iputils-ping
  [nginx]=nginx # the reference reverse proxy of bench/gateway-bench.ts
  [haproxy]=haproxy # an in-run L4 reference proxy of bench/macro/suite.ts (full mode)
)

missing=()
for cmd in "${!PKG[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG[$cmd]}")
done
# Not commands: the tunnel's native crypto (bun:ffi) loads libsodium and libcrypto.
ldconfig -p 2>/dev/null | grep -q 'libsodium\.so\.23' || missing+=(libsodium23)
ldconfig -p 2>/dev/null | grep -q 'libcrypto\.so\.3' || missing+=(libssl3)
# nginx's stream module (the other L4 reference of bench/macro/suite.ts) is its own package.
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-system: all tools present"
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: missing ${missing[*]}; run as root to install" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# These are tools for tests and benchmarks, not services: packages that ship a daemon (nginx,
# haproxy, prometheus) must not start it and hold ports (nginx would take port 80). policy-rc.d exiting
# 101 forbids invoke-rc.d and deb-systemd-invoke to start anything during the install; an
# existing policy (containers often have one) is left alone.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
  apt-get update -q
fi
echo "setup-system: installing ${missing[*]}"
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

#!/usr/bin/env bash
# Sets up everything wgslice needs on a Debian 12 machine, as root: system packages
# (iproute2, wireguard-go, ...) and a virtualenv at .venv with wgslice installed.
# Idempotent and quick when nothing changed. Used by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip            || need_apt+=(iproute2)
have wg            || need_apt+=(wireguard-tools)
have wireguard-go  || need_apt+=(wireguard-go)
have iperf3        || need_apt+=(iperf3)
have openvpn       || need_apt+=(openvpn)
have iptables      || need_apt+=(iptables)
have ps            || need_apt+=(procps)
have git           || need_apt+=(git)
have tcpdump       || need_apt+=(tcpdump)     # e2e/nodeagent captures on slice devices
# scapy compiles capture filters with libpcap (the mission e2e captures packets in pods)
ldconfig -p 2>/dev/null | grep -q 'libpcap\.so' || need_apt+=(libpcap0.8)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ "${WGSLICE_BROWSER:-1}" = 1 ]; then have chromium || need_apt+=(chromium); fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "wgslice setup: missing ${need_apt[*]}; run as root (or: sudo $0)" >&2
    exit 1
  fi
  say "installing system packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: the wireguard metapackage would otherwise pull a kernel image.
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Every lab cluster runs a dozen programs that each hold inotify instances (the Kubernetes
# components' file watches, CoreDNS, wireguard-go's control socket); Debian's default of 128
# per user is reached by three labs at once, and a wireguard-go that gets none exits at start
# (seen in CI). Raised, never lowered, and kept across reboots.
if [ "$(id -u)" = 0 ] && [ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 1024 ]; then
  say "raising fs.inotify.max_user_instances to 1024 (/etc/sysctl.d/60-wgslice-lab.conf)"
  echo "fs.inotify.max_user_instances = 1024" > /etc/sysctl.d/60-wgslice-lab.conf
  sysctl -q -w fs.inotify.max_user_instances=1024
fi

# The upstream programs the lab and the gateway stand on, built from their Go modules at the
# versions in scripts/upstream.env, once per machine into /var/cache/wgslice/upstream:
# kube-apiserver, kube-controller-manager, kube-scheduler and etcd (the lab's control plane;
# ~10 min on two cores the first time) and wireguard-go (the gateway's, with vectorized I/O
# and TUN/UDP GSO/GRO). Nothing is rebuilt until a pinned version changes. Debian's 2022
# wireguard-go installed above stays only as the benchmarks' baseline (docs/gateway.md).
if [ "$(id -u)" = 0 ] || [ -w "${WGSLICE_UPSTREAM:-/var/cache/wgslice/upstream}" ]; then
  bash scripts/build-upstream.sh
fi

venv=${WGSLICE_VENV:-$root/.venv}
stamp="$venv/.wgslice-stamp"
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -x "$venv/bin/python" ]; then
  say "creating virtualenv $venv"
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing wgslice and its test tools into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/pip" install -q --disable-pip-version-check -e ".[test]"
  echo "$want" >"$stamp"
fi

#!/usr/bin/env bash
# Container engine for the docker (and k8s) plugin tests: podman with its Docker-compatible API,
# buildah, runc, mmdebstrap (offline base image) and Debian's docker-registry (a local registry).
# Also writes podman's configuration: runc runtime, ulimits, no systemd, remote registries blocked,
# the loopback registry ports marked insecure. Idempotent, quiet when everything is in place, and
# safe to run concurrently (one flock). Needs root (or sudo) when something is missing.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
LOCK=/var/lock/headwater-containers.lock
exec 9>>"$LOCK" 2>/dev/null || { $SUDO touch "$LOCK"; $SUDO chmod 666 "$LOCK"; exec 9>>"$LOCK"; }
flock 9

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
# podman's networking helpers (host/none networks need none of them, but podman probes for them)
dpkg -s uidmap >/dev/null 2>&1 || need+=(uidmap)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
  # policy-rc.d: never let a package start a service (docker-registry ships one) on this machine
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    --no-install-recommends "${need[@]}"
fi

# Write a file only when its content differs (idempotent, no needless rewrites under a running service).
put() {
  local path="$1" content="$2"
  if [ ! -f "$path" ] || [ "$(cat "$path")" != "$content" ]; then
    $SUDO mkdir -p "$(dirname "$path")"
    printf '%s\n' "$content" | $SUDO tee "$path.tmp.$$" >/dev/null
    $SUDO mv -f "$path.tmp.$$" "$path"
  fi
}

put /etc/containers/containers.conf '[containers]
default_ulimits = ["nofile=16384:16384", "nproc=20000:20000"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'

# Remote registries are unreachable here: block them so a typo fails at once instead of timing out.
# Loopback registries (ports 5000-5019 on 127.0.0.1 and localhost) are plain HTTP: mark them insecure.
reg='unqualified-search-registries = []
'
for r in docker.io registry-1.docker.io quay.io ghcr.io gcr.io registry.k8s.io; do
  reg+="
[[registry]]
location = \"$r\"
blocked = true
"
done
for port in $(seq 5000 5019); do
  for host in 127.0.0.1 localhost; do
    reg+="
[[registry]]
location = \"$host:$port\"
insecure = true
"
  done
done
put /etc/containers/registries.conf.d/50-headwater-local.conf "$reg"
exit 0

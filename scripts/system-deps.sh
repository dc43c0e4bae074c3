#!/usr/bin/env bash
# Debian packages the test suite needs (PostgreSQL 15 for the SQL store and server tests).
# Idempotent and quiet when everything is present; needs root (or sudo) when something is missing.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# Plugins' own system needs (podman, a registry, chromium...): scripts/system-deps.d/*.sh, each idempotent.
for part in "$(dirname "$0")"/system-deps.d/*.sh; do
  [ -e "$part" ] || continue
  bash "$part"
done

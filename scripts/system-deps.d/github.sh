#!/usr/bin/env bash
# headwater-github tests: the git CLI (Git storage itself, git daemon, git http-backend for smart HTTP).
# Idempotent and quiet when git is there; needs root (or sudo) when it is missing.
set -euo pipefail
if command -v git >/dev/null 2>&1 && git --exec-path >/dev/null 2>&1 && [ -x "$(git --exec-path)/git-http-backend" ]; then
    exit 0
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends git >/dev/null

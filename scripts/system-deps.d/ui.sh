#!/usr/bin/env bash
# Debian's Chromium for the web UI's browser tests (tests/ui, Playwright drives /usr/bin/chromium;
# `playwright install` is never used). Idempotent and quiet when Chromium is already there.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "installing Debian package: chromium (web UI browser tests)"
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
  chromium fonts-dejavu-core >/dev/null

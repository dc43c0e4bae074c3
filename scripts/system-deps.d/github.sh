#!/usr/bin/env bash
# headwater-github tests: the git CLI (Git storage itself, git daemon, git http-backend for smart HTTP),
# and OpenSSH's server for git over ssh, with a `git` account whose login shell is git-shell (as on
# a real git server). Idempotent and quiet when everything is there; needs root (or sudo) otherwise.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
have_git() { command -v git >/dev/null 2>&1 && git --exec-path >/dev/null 2>&1 && [ -x "$(git --exec-path)/git-http-backend" ]; }
if ! have_git || [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null 2>&1; then
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends git openssh-server openssh-client >/dev/null
fi
if ! getent passwd git >/dev/null 2>&1; then
    # password '*': no password login, but not locked (sshd refuses locked accounts even with a key)
    $SUDO useradd --system --create-home --home-dir /var/lib/headwater-git --shell "$(command -v git-shell)" -p '*' git
fi

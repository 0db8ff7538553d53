#!/usr/bin/env bash
# Install the servers the tests start (PostgreSQL 15, Dovecot) and the browser they drive
# (Chromium). The tests start and stop their own throwaway instances; this only makes sure the
# programs are on the machine.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v dovecot >/dev/null 2>&1 || need+=(dovecot-imapd)
# The dashboard's browser tests drive a headless Chromium through chromedriver.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root" >&2
    exit 1
  fi
  echo "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

#!/usr/bin/env bash
# The system services `npm test` needs, on Debian/Ubuntu: PostgreSQL (the ledger's real-server tests), Redis (state
# shared by several gateways) and Chromium (the dashboard and chat pages, headless). Installs what is missing and
# starts it; safe to run again. Needs root (or sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}…" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "starting PostgreSQL…" >&2
$SUDO service postgresql start >/dev/null
for _ in $(seq 1 30); do
  if $SUDO su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
$SUDO su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null

echo "starting Redis…" >&2
if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --port 6379 --save '' --appendonly no --dir /tmp >/dev/null
  for _ in $(seq 1 30); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

echo "services ready: postgres://postgres:postgres@127.0.0.1:5432/postgres, redis://127.0.0.1:6379, /usr/bin/chromium" >&2

#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on 127.0.0.1 and prints its SQLAlchemy URL (last line).
# Usage: scripts/pg-start.sh DATADIR [PORT]
#
# Used by the test suite (tests/conftest.py) when CRMKIT_POSTGRES_URL is not set, and handy
# by hand:  url=$(scripts/pg-start.sh /tmp/crm-pg | tail -n 1); ...; scripts/pg-stop.sh /tmp/crm-pg
#
# Installs Debian's postgresql with apt-get when no server binaries are found (needs root, as
# in CI). Works as root (the server then runs as the postgres user, since initdb refuses root)
# and as an ordinary user. The database uses the C.UTF-8 locale; PG_ICU_LOCALE=en-US makes
# its default collation ICU's instead (like most production databases), which crmkit must
# not depend on: its text columns are COLLATE "C".
set -euo pipefail
dir=${1:?usage: pg-start.sh DATADIR [PORT]}
port=${2:-}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "pg-start.sh: PostgreSQL is not installed and installing it needs root" >&2
    exit 1
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
if [ -z "$port" ]; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
run=()
if [ "$(id -u)" = 0 ]; then
  chown -R postgres "$dir"
  run=(runuser -u postgres --)
fi
locale_args=(--locale=C.UTF-8)
if [ -n "${PG_ICU_LOCALE:-}" ]; then
  locale_args=(--locale=C.UTF-8 --locale-provider=icu "--icu-locale=$PG_ICU_LOCALE")
fi
"${run[@]}" "$bin/initdb" -D "$dir/data" -U crm --auth=trust -E UTF8 "${locale_args[@]}" >"$dir/initdb.log" 2>&1
# fsync/synchronous_commit off: a throwaway test server, speed over durability
"${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
"${run[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U crm crm
echo "$port" >"$dir/port"
echo "postgresql+psycopg://crm@127.0.0.1:$port/crm"

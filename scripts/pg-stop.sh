#!/usr/bin/env bash
# Stops a server started by scripts/pg-start.sh. Usage: scripts/pg-stop.sh DATADIR
set -euo pipefail
dir=${1:?usage: pg-stop.sh DATADIR}
[ -d "$dir/data" ] || exit 0
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
run=()
[ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
"${run[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null

#!/usr/bin/env bash
# Stops a server started by scripts/imap-start.sh. Usage: scripts/imap-stop.sh DIR
set -euo pipefail
dir=${1:?usage: imap-stop.sh DIR}
[ -f "$dir/dovecot.conf" ] || exit 0
dovecot=$(command -v dovecot || echo /usr/sbin/dovecot)
"$dovecot" -c "$dir/dovecot.conf" stop >/dev/null 2>&1 || true
# wait for the master process to exit (its pid file goes away)
for _ in $(seq 50); do
  [ -f "$dir/run/master.pid" ] || exit 0
  kill -0 "$(cat "$dir/run/master.pid")" 2>/dev/null || exit 0
  sleep 0.1
done
exit 0

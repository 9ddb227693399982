#!/usr/bin/env bash
# Start the Docker engine when it is not running (no systemd on our machines), and wait for it.
# Usage: tests/deploy/engine.sh [SECONDS]   (default 60). Exits non-zero when it cannot.
set -euo pipefail

timeout=${1:-60}
docker=/usr/bin/docker          # the Debian client: BuildKit builds need no buildx plugin

if "$docker" info >/dev/null 2>&1; then
    exit 0
fi
command -v dockerd >/dev/null || { echo "dockerd not installed (apt-get install docker.io)" >&2; exit 1; }

# A previous dockerd that was killed leaves its pid file behind, and a new one refuses to start.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
fi
# --ip=127.0.0.1: a published port without an address binds to loopback, never to every interface.
log=/var/log/monoceros-dockerd.log
nohup dockerd --storage-driver=overlay2 --ip=127.0.0.1 >"$log" 2>&1 &

for _ in $(seq "$((timeout * 2))"); do
    if "$docker" info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 0.5
done
echo "dockerd did not answer within ${timeout}s; last lines of $log:" >&2
tail -n 20 "$log" >&2
exit 1

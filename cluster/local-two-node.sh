#!/usr/bin/env bash
# Try the multi-node path on one machine: a head and a worker node as separate `ray start`
# processes. The dashboard and Jobs API listen on 127.0.0.1 only and Ray's token
# authentication stays on (the token is generated once into ~/.ray/auth_token).
#
#   cluster/local-two-node.sh start     # prints the Jobs API address
#   swarmcast submit pipeline.yaml --address http://127.0.0.1:8265 --wait
#   cluster/local-two-node.sh stop
set -euo pipefail

HEAD_PORT="${HEAD_PORT:-6379}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8265}"
export RAY_AUTH_MODE=token
export RAY_USAGE_STATS_ENABLED=0

case "${1:-start}" in
  start)
    [ -s "$HOME/.ray/auth_token" ] || ray get-auth-token --generate >/dev/null
    ray start --head --port="$HEAD_PORT" --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" \
      --num-cpus="${HEAD_CPUS:-1}" --disable-usage-stats
    ray start --address="127.0.0.1:$HEAD_PORT" --num-cpus="${WORKER_CPUS:-2}"
    echo "Jobs API: http://127.0.0.1:$DASHBOARD_PORT (token in ~/.ray/auth_token; keep RAY_AUTH_MODE=token)"
    echo "Pipelines on this cluster list their folders under shared_storage (both nodes see this disk)."
    ;;
  stop)
    ray stop
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

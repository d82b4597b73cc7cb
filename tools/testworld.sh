#!/usr/bin/env bash
# Start or stop the test world: the simulated OpenStack cloud and the Kubernetes API,
# linked so that Magnum clusters report the Kubernetes test world as their API address
# and their servers register in it as nodes (hardware from the kube scenario's profiles,
# one per flavor).
#
#   tools/testworld.sh start NAME [OPENSTACK_SCENARIO] [KUBE_SCENARIO]
#   tools/testworld.sh stop NAME
#
# `start` leaves .testworld/NAME/env, a file of `export` lines (OS_CLIENT_CONFIG_FILE,
# OS_CLOUD, K8S_AUTH_KUBECONFIG, HPCOPS_SIM_URL, HPCOPS_KUBE_URL, HPCOPS_TESTWORLD_DIR) to source.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

action=${1:?usage: tools/testworld.sh start|stop NAME [OPENSTACK_SCENARIO] [KUBE_SCENARIO]}
name=${2:?usage: tools/testworld.sh start|stop NAME}
state=.testworld/$name
py=.venv/bin/python

stop() {
    local pidfile
    for pidfile in "$state"/*.pid; do
        [ -e "$pidfile" ] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
}

# Starts `python -m MODULE serve ...` in the background and waits for its JSON ready line.
serve() { # label module args...
    local label=$1 module=$2
    shift 2
    PYTHONPATH="$repo" "$py" -m "$module" serve --state-dir "$state/$label" --pidfile "$state/$label.pid" "$@" \
        >"$state/$label.ready" 2>"$state/$label.log" &
    local waited=0
    until [ -s "$state/$label.ready" ]; do
        if ! kill -0 $! 2>/dev/null; then
            echo "testworld: $label failed to start; its log follows" >&2
            cat "$state/$label.log" >&2
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
        [ "$waited" -lt 600 ] || { echo "testworld: $label did not start within 60 s" >&2; return 1; }
    done
    head -n 1 "$state/$label.ready"
}

field() { "$py" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

case "$action" in
    start)
        openstack_scenario=${3:-testworld/scenarios/default.yml}
        kube_scenario=${4:-testworld/scenarios/kube-demo.yml}
        stop
        rm -rf "$state"
        mkdir -p "$state"
        chmod 0700 "$state"
        kube=$(serve kube testworld.kubernetes --scenario "$kube_scenario")
        kube_url=$(field "$kube" url)
        # the cloud's Magnum hands out the kube world's CA and signs client certificates with it
        kube_ca=$("$py" -c 'import json, os, sys; w = json.loads(sys.argv[1]); print(json.dumps({"cert": os.path.realpath(w["ca"]), "key": os.path.realpath(w["ca_key"])}))' "$kube")
        cloud=$(serve openstack testworld.openstack --scenario "$openstack_scenario" --kube-api-url "$kube_url" \
            --set "kube_ca=$kube_ca")
        {
            echo "export OS_CLIENT_CONFIG_FILE=$repo/$state/openstack/clouds.yaml"
            echo "export OS_CLOUD=$(field "$cloud" cloud)"
            echo "export HPCOPS_SIM_URL=$(field "$cloud" url)"
            echo "export HPCOPS_KUBE_URL=$kube_url"
            echo "export HPCOPS_TESTWORLD_DIR=$repo/$state"
            echo "export K8S_AUTH_KUBECONFIG=$(realpath "$(field "$kube" kubeconfig)")"
        } >"$state/env"
        echo "$state/env"
        ;;
    stop)
        stop
        ;;
    *)
        echo "usage: tools/testworld.sh start|stop NAME [OPENSTACK_SCENARIO] [KUBE_SCENARIO]" >&2
        exit 2
        ;;
esac

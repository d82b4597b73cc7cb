#!/usr/bin/env bash
# `make demo`: the main job end to end on the embedded default. Starts the simulated
# OpenStack cloud and Kubernetes API, runs playbooks/site.yml against them with the
# demo inventory, runs it a second time (which must change nothing), then prints what
# was built, read back through the APIs.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash tools/bootstrap.sh

export PATH="$repo/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$repo/.cache/collections"
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}

env_file=$(bash tools/testworld.sh start demo)
trap 'bash tools/testworld.sh stop demo' EXIT
# shellcheck disable=SC1090  # written by tools/testworld.sh
. "$env_file"
echo "demo: simulated cloud at $HPCOPS_SIM_URL, Kubernetes API at $HPCOPS_KUBE_URL"

inventory=playbooks/inventory/demo
log=.testworld/demo/site
start=$(date +%s)
ansible-playbook -i "$inventory" playbooks/site.yml | tee "$log-1.log"
first=$(( $(date +%s) - start ))

echo "demo: second run (must report changed=0)"
start=$(date +%s)
ansible-playbook -i "$inventory" playbooks/site.yml >"$log-2.log"
second=$(( $(date +%s) - start ))
recap=$(sed -n '/PLAY RECAP/,$p' "$log-2.log")
echo "$recap"

ansible-playbook -i "$inventory" playbooks/report.yml -e "report_path=$repo/$log-report.txt" >"$log-report.log"
cat "$log-report.txt"

echo "demo: first run ${first}s, second run ${second}s"
if echo "$recap" | grep -E 'changed=[1-9]|failed=[1-9]|unreachable=[1-9]' >/dev/null; then
    echo "demo: the second run was not idempotent; see $log-2.log" >&2
    exit 1
fi

#!/usr/bin/env bash
# The test command. `tools/test.sh all` runs every suite; `quick` the fast ones;
# any suite name runs just that suite. Two lanes run side by side (the machine has
# two cores): ansible-test (sanity, units) and lint in one, the test-world suites
# and Molecule in the other. Every suite writes JUnit XML; the closing line sums them.
# The suite_* functions are called by name from lane(), which shellcheck cannot see.
# shellcheck disable=SC2329
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 2
bash tools/bootstrap.sh || exit $?

export PATH="$repo/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$repo/.cache/collections"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export ANSIBLE_NOCOLOR=1 PY_COLORS=0

results=.cache/test-results
logs=.cache/test-logs
rm -rf "$results" "$logs"
mkdir -p "$results" "$logs"

# ansible-test insists on running from ansible_collections/<ns>/<name>/. A symlink is
# resolved back to this tree by os.getcwd(), so it works on a copy of the files git
# would take (tracked plus untracked-but-not-ignored).
ansible_test_tree() {
    local root=.cache/ansible-test/ansible_collections
    rm -rf "$root/hpcops"
    mkdir -p "$root/hpcops/coe" "$root/openstack" "$root/kubernetes"
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf - | tar -xf - -C "$root/hpcops/coe"
    # The copy sits inside this repository's ignored .cache, where ansible-test would ask
    # the outer git for its file list and find nothing: give the copy a git of its own.
    (cd "$root/hpcops/coe" && git init -q && git add -A)
    ln -sfn "$repo/.cache/collections/ansible_collections/openstack/cloud" "$root/openstack/cloud"
    ln -sfn "$repo/.cache/collections/ansible_collections/kubernetes/core" "$root/kubernetes/core"
    echo "$root/hpcops/coe"
}

suite_sanity() {
    local tree
    tree=$(ansible_test_tree)
    (cd "$tree" && ansible-test sanity --venv --python 3.12 --color no --skip-test ansible-doc --junit)
    local rc=$?
    # ansible-doc sanity is replaced by rendering every module below (same check, no extra venv).
    if [ "$rc" -eq 0 ]; then
        for m in plugins/modules/*.py; do
            [ -e "$m" ] || continue
            name=$(basename "$m" .py)
            ansible-doc -t module "hpcops.coe.$name" >/dev/null || { echo "ansible-doc failed for hpcops.coe.$name"; rc=1; }
        done
        for p in plugins/inventory/*.py; do
            [ -e "$p" ] || continue
            ansible-doc -t inventory "hpcops.coe.$(basename "$p" .py)" >/dev/null || { echo "ansible-doc failed for $p"; rc=1; }
        done
    fi
    cp "$tree"/tests/output/junit/*.xml "$results/" 2>/dev/null
    return "$rc"
}

suite_units() {
    local tree
    tree=$(ansible_test_tree)
    (cd "$tree" && ansible-test units --venv --python 3.12 --color no --requirements)
    local rc=$?
    for f in "$tree"/tests/output/junit/*.xml; do
        [ -e "$f" ] && cp "$f" "$results/units-$(basename "$f")"
    done
    return "$rc"
}

run_pytest() { # name, dir, pytest options...
    local name=$1 dir=$2
    shift 2
    if ! compgen -G "$dir/test_*.py" >/dev/null; then
        echo "$name: no tests in $dir"
        return 0
    fi
    pytest -p testworld.pytest_plugin -q -ra --durations=25 --junitxml="$results/$name.xml" "$@" "$dir"
}

# test_realservices*.py belong to the real-services suites (they need their installation).
suite_testworld() {
    run_pytest testworld tests/testworld -n 2 --ignore-glob 'tests/testworld/test_realservices*.py'
}
# The integration tests mostly wait on simulated clouds, so more workers than cores pay off.
suite_integration() { bash tests/integration/setup-glusterfs.sh; run_pytest integration tests/integration -n 4; }
# --dist loadfile: the expensive module-scoped fixtures (fault scenarios, races, check-mode runs)
# run once, on the worker that has their file, rather than once per worker.
suite_reliability() { bash tools/parsers.sh; run_pytest reliability tests/reliability -n 2 --dist loadfile; }

# The second tier: a real Keystone and a real Heat (installed by their setup script, cached
# in .cache/realservices) behind the simulated Nova, Neutron, Glance and Magnum. The tests
# marked realservices are those whose behaviour depends on Keystone and Heat: the Magnum
# lifecycle, kubeconfigs, discovery through Heat stacks and the inventory plugin.
suite_realservices() {
    bash testworld/realservices/setup.sh || return 1
    local rc=0
    # The fidelity tests of the tier itself and the differential check (simulator vs real, one
    # tier for both), then the marked integration tests on it. Every pytest worker starts a tier
    # of its own (Keystone, Heat, RabbitMQ on free ports, ~1 GB): two workers halve the wait on
    # real Heat's stacks.
    pytest -p testworld.pytest_plugin -q -ra --durations=5 --junitxml="$results/realservices-fidelity.xml" \
        tests/testworld/test_realservices.py tests/testworld/test_realservices_differential.py || rc=1
    run_pytest realservices tests/integration -n 2 -p testworld.realservices.pytest_plugin -m realservices || rc=1
    return "$rc"
}
# The full real tier (Placement, Nova, Neutron and Magnum besides Keystone and Heat; about 1.5 GB
# and a minute and a half to start): on demand only (`tools/test.sh realservices-full`), not in `all`.
suite_realservices_full() {
    bash testworld/realservices/setup.sh full || return 1
    pytest -p testworld.pytest_plugin -q -ra --durations=10 --junitxml="$results/realservices-full.xml" \
        tests/testworld/test_realservices_full.py
}
suite_packaging() { run_pytest packaging tests/packaging; }

# The whole repository, as .ansible-lint and .yamllint scope it: roles, playbooks, tests and
# their playbooks, Molecule scenarios, examples, test-world scenarios, galaxy.yml.
suite_lint() {
    local rc=0
    ansible-lint --profile production --offline
    record lint ansible-lint-production $? || rc=1
    yamllint --strict .
    record lint yamllint $? || rc=1
    return "$rc"
}

# A check that is not a pytest run counts as one test case in the closing line.
record() { # suite case status
    JUNIT_DIR="$results" python3 tools/junit_summary.py --record "$1" "$2" "$3"
    return "$3"
}

# The scenarios share one test world, started once: each one's cleanup tears down what it made.
suite_molecule() {
    local scenarios=()
    for d in molecule/*/molecule.yml; do
        [ -e "$d" ] && scenarios+=("$(basename "$(dirname "$d")")")
    done
    if [ ${#scenarios[@]} -eq 0 ]; then
        echo "molecule: no scenarios yet"
        return 0
    fi
    local env_file rc=0 s
    env_file=$(bash tools/testworld.sh start molecule testworld/scenarios/default.yml testworld/scenarios/kube-demo.yml) || return 1
    (
        # shellcheck disable=SC1090  # written by tools/testworld.sh
        . "$env_file"
        for s in "${scenarios[@]}"; do
            # Molecule keeps a scenario's state (e.g. "prepared") outside the repository: an
            # interrupted earlier run must not make this one skip its prepare step.
            molecule reset -s "$s" >/dev/null 2>&1 || true
            molecule test -s "$s"
            record molecule "$s" $? || rc=1
        done
        exit "$rc"
    )
    rc=$?
    bash tools/testworld.sh stop molecule
    return "$rc"
}

suite_changelog() {
    antsibull-changelog lint
    record changelog antsibull-changelog-lint $?
}

# Runs suites one after another, each into its own log; records each exit status.
lane() {
    local s rc
    for s in "$@"; do
        start=$(date +%s)
        "suite_${s//-/_}" >"$logs/$s.log" 2>&1
        rc=$?
        echo "$rc $(( $(date +%s) - start ))" >"$logs/$s.status"
    done
}

suites="sanity units changelog lint testworld integration realservices realservices-full reliability packaging molecule"
case "${1:-all}" in
    all)   lanes=("sanity units changelog lint reliability molecule" "testworld integration realservices packaging") ;;
    quick) lanes=("units" "testworld integration") ;;
    *)
        if [[ " $suites " == *" $1 "* ]]; then
            lanes=("$1")
        else
            echo "usage: tools/test.sh all|quick|${suites// /|}" >&2
            exit 2
        fi
        ;;
esac

pids=()
for l in "${lanes[@]}"; do
    read -ra suites <<<"$l"
    lane "${suites[@]}" &
    pids+=($!)
done
wait "${pids[@]}"

failed=0
for l in "${lanes[@]}"; do
    read -ra suites <<<"$l"
    for s in "${suites[@]}"; do
        read -r rc secs <"$logs/$s.status"
        echo "================ $s (exit $rc, ${secs}s) ================"
        # The closing lines of each runner are what matter; the whole log is kept in .cache/test-logs.
        if [ "$rc" -eq 0 ]; then tail -n 15 "$logs/$s.log"; else tail -n 150 "$logs/$s.log"; failed=1; fi
    done
done

python3 tools/junit_summary.py "$results" || failed=1
exit $failed

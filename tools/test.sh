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

run_pytest() { # name, dirs...
    local name=$1
    shift
    local present=()
    for d in "$@"; do
        compgen -G "$d/test_*.py" >/dev/null && present+=("$d")
    done
    if [ ${#present[@]} -eq 0 ]; then
        echo "$name: no tests in $*"
        return 0
    fi
    local plugin=()
    [ -f testworld/pytest_plugin.py ] && plugin=(-p testworld.pytest_plugin)
    pytest "${plugin[@]}" -q -ra --junitxml="$results/$name.xml" "${present[@]}"
}

suite_testworld() { run_pytest testworld tests/testworld; }
suite_integration() { run_pytest integration tests/integration; }
suite_packaging() { run_pytest packaging tests/packaging; }

suite_lint() {
    local targets=()
    [ -n "$(ls roles 2>/dev/null)" ] && targets+=(roles)
    [ -n "$(ls playbooks 2>/dev/null)" ] && targets+=(playbooks)
    if [ ${#targets[@]} -eq 0 ]; then
        echo "lint: no roles or playbooks yet"
        return 0
    fi
    ansible-lint --profile production --offline "${targets[@]}"
}

suite_molecule() {
    local scenarios=()
    for d in molecule/*/molecule.yml; do
        [ -e "$d" ] && scenarios+=("$(basename "$(dirname "$d")")")
    done
    if [ ${#scenarios[@]} -eq 0 ]; then
        echo "molecule: no scenarios yet"
        return 0
    fi
    local rc=0 s
    for s in "${scenarios[@]}"; do
        molecule test -s "$s" || rc=1
    done
    return "$rc"
}

suite_changelog() { antsibull-changelog lint; }

# Runs suites one after another, each into its own log; records each exit status.
lane() {
    local s rc
    for s in "$@"; do
        start=$(date +%s)
        "suite_$s" >"$logs/$s.log" 2>&1
        rc=$?
        echo "$rc $(( $(date +%s) - start ))" >"$logs/$s.status"
    done
}

case "${1:-all}" in
    all)   lanes=("sanity units changelog lint" "testworld integration packaging molecule") ;;
    quick) lanes=("units" "testworld integration") ;;
    sanity|units|testworld|integration|packaging|lint|molecule|changelog) lanes=("$1") ;;
    *) echo "usage: tools/test.sh all|quick|sanity|units|testworld|integration|packaging|lint|molecule|changelog" >&2; exit 2 ;;
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

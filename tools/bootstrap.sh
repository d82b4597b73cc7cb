#!/usr/bin/env bash
# Sets up everything the demo and the tests need, from nothing but a Python 3.12
# interpreter and the package registries:
#   .venv/                               Python 3.12 virtualenv with requirements/test.txt
#   .cache/collections/ansible_collections/
#       openstack/cloud, kubernetes/core  taken from PyPI's `ansible` wheel (Galaxy is not needed)
#       hpcops/coe -> the repository      so playbooks resolve hpcops.coe.* to this tree
#   ~/.ansible/test/cache/get_pip_*.py   offline pip bootstrap for `ansible-test --venv`
# Re-running is cheap: each step is skipped while its inputs are unchanged.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# The `ansible` release whose bundled openstack.cloud and kubernetes.core we test against.
ANSIBLE_BUNDLE_VERSION=14.5.0

log() { printf 'bootstrap: %s\n' "$*" >&2; }

find_python312() {
    local candidate
    if [ -n "${PYTHON312:-}" ]; then
        echo "$PYTHON312"
        return 0
    fi
    for candidate in python3.12 "$(command -v pyenv >/dev/null 2>&1 && pyenv root)"/versions/3.12*/bin/python3.12 \
        "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do
        # pyenv shims exist for every installed version but fail unless it is selected,
        # so ask the interpreter itself rather than trusting `command -v`.
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
            command -v "$candidate" 2>/dev/null || echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! PY=$(find_python312); then
    cat >&2 <<'EOF'
bootstrap: Python 3.12 was not found.
  ansible-core 2.20 and later need Python 3.12 (pip on 3.11 silently installs ansible-core 2.19).
  Install it (for example `pyenv install 3.12`) or point PYTHON312 at the interpreter:
      PYTHON312=/path/to/python3.12 make test
EOF
    exit 3
fi

mkdir -p .cache
req_hash=$(cat requirements/*.txt | sha256sum | cut -c1-16)
stamp=.cache/venv.$req_hash
if [ ! -f "$stamp" ] || [ ! -x .venv/bin/python ]; then
    # A changed requirements file is installed over the existing venv (other shells may
    # be using it); only a missing or wrong-version venv is made anew.
    if ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
        log "creating .venv with $PY"
        rm -rf .venv
        "$PY" -m venv .venv
    fi
    log "installing requirements/test.txt into .venv"
    rm -f .cache/venv.*
    .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -m pip install --quiet -r requirements/test.txt 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -c 'import ansible, openstack, magnumclient, heatclient, kubernetes, kmock, molecule' \
        || { log "the virtualenv is incomplete: pip install -r requirements/test.txt failed"; exit 4; }
    touch "$stamp"
fi

collections=.cache/collections/ansible_collections
coll_stamp=.cache/collections.$ANSIBLE_BUNDLE_VERSION
if [ ! -f "$coll_stamp" ]; then
    log "extracting openstack.cloud and kubernetes.core from ansible==$ANSIBLE_BUNDLE_VERSION"
    rm -rf .cache/collections .cache/collections.* .cache/wheel
    .venv/bin/python -m pip download --quiet --no-deps "ansible==$ANSIBLE_BUNDLE_VERSION" -d .cache/wheel 2>&1 \
        | grep -v '^WARNING: Location' || true
    .venv/bin/python - "$collections/.." .cache/wheel/ansible-"$ANSIBLE_BUNDLE_VERSION"-py3-none-any.whl <<'EOF'
import sys
import zipfile

dest, wheel = sys.argv[1], sys.argv[2]
wanted = ("ansible_collections/openstack/cloud/", "ansible_collections/kubernetes/core/")
with zipfile.ZipFile(wheel) as archive:
    archive.extractall(dest, [n for n in archive.namelist() if n.startswith(wanted)])
EOF
    rm -rf .cache/wheel
    touch "$coll_stamp"
fi
mkdir -p "$collections/hpcops"
ln -sfn ../../../.. "$collections/hpcops/coe"

# ansible-test --venv downloads a get-pip script it cannot reach here; give it one
# that bootstraps pip from the interpreter's own ensurepip and then installs with it.
pip_version=$(.venv/bin/python -c 'from ansible_test._internal.python_requirements import get_venv_packages as g; print(g(type("P", (), {"version": "3.12"})())["pip"])')
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -f "$get_pip" ] || ! cmp -s tools/get_pip_offline.py "$get_pip"; then
    mkdir -p "$(dirname "$get_pip")"
    cp tools/get_pip_offline.py "$get_pip"
fi

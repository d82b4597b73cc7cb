#!/usr/bin/env bash
# Installs the real-services tier of the test world; does nothing when already done.
#   testworld/realservices/setup.sh [full]
#   rabbitmq-server (Debian)       only when missing; needs root (or sudo) to install
#   .cache/realservices/venv/      Python 3.12 virtualenv with requirements.txt + constraints.txt
#   .cache/realservices/venv.<h>   stamp: the hash of those files and the interpreter
# With `full`, also requirements-full.txt (Magnum, Nova, Placement, Neutron) with
# constraints-full.txt, and the tier's own drivers (testdrivers/, editable) into the same
# virtualenv; its stamp is <venv>/testworld-full.installed (the hash of those files).
# HPCOPS_REALSERVICES_VENV moves the virtualenv; PYTHON312 names the interpreter.
set -euo pipefail
tier=${1:-basic}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

cache=.cache/realservices
venv=${HPCOPS_REALSERVICES_VENV:-$cache/venv}

log() { printf 'realservices setup: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root to run: $*"
        return 1
    fi
}

apt_install() {
    log "installing $* from Debian"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The services run their own broker (own node name, ports, directories and epmd); Debian's
# package is only the software. Where the package's own service could start, it is left alone.
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || ! command -v epmd >/dev/null 2>&1; then
    apt_install rabbitmq-server
fi
# uWSGI is built from source by pip.
if ! command -v cc >/dev/null 2>&1; then
    apt_install gcc libc6-dev
fi

find_python312() {
    local candidate
    if [ -n "${PYTHON312:-}" ]; then
        echo "$PYTHON312"
        return 0
    fi
    for candidate in python3.12 "$(command -v pyenv >/dev/null 2>&1 && pyenv root)"/versions/3.12*/bin/python3.12 \
        "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do
        # pyenv shims exist for every version but fail unless it is selected: ask the interpreter.
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
            command -v "$candidate" 2>/dev/null || echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! PY=$(find_python312); then
    log "Python 3.12 was not found (set PYTHON312=/path/to/python3.12)"
    exit 3
fi

mkdir -p "$cache"
hash=$( (cat "$here/requirements.txt" "$here/constraints.txt"; "$PY" -c 'import sys; print(sys.version)'; echo "$venv") \
    | sha256sum | cut -c1-16)
stamp=$cache/venv.$hash
install_full() {
    local full_hash full_stamp=$venv/testworld-full.installed
    full_hash=$(cat "$here/requirements-full.txt" "$here/constraints-full.txt" "$here/testdrivers/pyproject.toml" \
        | sha256sum | cut -c1-16)
    if [ -f "$full_stamp" ] && [ "$(cat "$full_stamp")" = "$full_hash" ]; then
        return 0
    fi
    log "adding magnum, nova, openstack-placement and neutron to $venv (about 2 minutes)"
    rm -f "$full_stamp"
    "$venv/bin/python" -m pip install --quiet -r "$here/requirements-full.txt" -c "$here/constraints.txt" \
        -c "$here/constraints-full.txt" 2>&1 | grep -v '^WARNING: Location' || true
    # Editable: the drivers' code is read from this tree; only their entry points are installed.
    "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$here/testdrivers" 2>&1 \
        | grep -v '^WARNING: Location' || true
    for module in nova.cmd.compute placement.wsgi neutron.plugins.ml2.plugin magnum.cmd.conductor \
        hpcops_testdrivers.ml2 hpcops_testdrivers.magnum_capi; do
        "$venv/bin/python" -c "import $module" >/dev/null 2>&1 \
            || { log "the full tier is incomplete: cannot import $module (see pip's output above)"; exit 4; }
    done
    echo "$full_hash" >"$full_stamp"
    log "full tier installed"
}

if [ -f "$stamp" ] && [ -x "$venv/bin/uwsgi" ] && [ -x "$venv/bin/heat-engine" ] && [ -x "$venv/bin/keystone-manage" ]; then
    if [ "$tier" = full ]; then install_full; fi
    exit 0
fi

log "creating $venv with $PY (keystone, openstack-heat, uwsgi: about a minute)"
rm -rf "$venv" "$cache"/venv.*
"$PY" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt" -c "$here/constraints.txt" 2>&1 \
    | grep -v '^WARNING: Location' || true
# One import per process: Keystone and Heat select different oslo.service backends.
for module in keystone.cmd.manage heat.api.openstack.wsgi heat.cmd.engine; do
    "$venv/bin/python" -c "import $module" >/dev/null 2>&1 \
        || { log "the services virtualenv is incomplete: cannot import $module (see pip's output above)"; exit 4; }
done
[ -x "$venv/bin/uwsgi" ] || { log "uwsgi did not build (needs a C compiler and Python headers)"; exit 4; }
touch "$stamp"
log "done"
if [ "$tier" = full ]; then install_full; fi

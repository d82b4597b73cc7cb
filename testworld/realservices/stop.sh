#!/usr/bin/env bash
# Stops every process of the real services started with that state directory and removes it.
#   testworld/realservices/stop.sh --state-dir DIR [--keep]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
# The controller needs only the standard library: any Python 3 will do.
py=${HPCOPS_REALSERVICES_VENV:-$repo/.cache/realservices/venv}/bin/python
[ -x "$py" ] || py=python3
PYTHONPATH="$repo" exec "$py" -m testworld.realservices stop "$@"

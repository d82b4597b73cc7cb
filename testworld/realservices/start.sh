#!/usr/bin/env bash
# Installs (when needed) and starts the real services; prints one JSON line.
#   testworld/realservices/start.sh --state-dir DIR [--scenario NAME] [--sim-url URL] [--tier basic|full]
# Starting again with the same state directory returns the running set.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
case " $* " in
    *" --tier full "* | *" --tier=full "*) bash "$here/setup.sh" full ;;
    *) bash "$here/setup.sh" ;;
esac
venv=${HPCOPS_REALSERVICES_VENV:-$repo/.cache/realservices/venv}
cd "$repo"
PYTHONPATH="$repo" exec "$venv/bin/python" -m testworld.realservices start "$@"

#!/usr/bin/env bash
# Real parsers the reliability suite lets judge generated files, when the machine can have them:
# NetworkManager's nmcli reads keyfiles offline (`nmcli --offline`). Debian/Ubuntu only; elsewhere,
# or without root, the tests that need it say so and skip.
set -uo pipefail
if command -v nmcli >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
    echo "parsers: no apt-get or not root; tests judged by nmcli will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy network-manager 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq >/dev/null 2>&1 || true
fi
apt-get install -y -qq --no-install-recommends network-manager >/dev/null 2>&1 \
    || echo "parsers: installing network-manager failed; tests judged by nmcli will skip" >&2
exit 0

#!/usr/bin/env bash
# Copy the collection to BUILD_ROOT/ansible_collections/smartos/imgadm, where ansible-test wants it.
# Prints the staged path. Only files that belong to the collection are copied.
# The copy lives outside the git work tree (ansible-test would otherwise only see
# the files git tracks): $IMGADM_BUILD_ROOT, default /var/tmp/smartos-imgadm-build.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
dest="${IMGADM_BUILD_ROOT:-/var/tmp/smartos-imgadm-build}/ansible_collections/smartos/imgadm"
mkdir -p "$dest"
rsync -a --delete \
    --exclude '/.git' --exclude '/.venv*' --exclude '/build' --exclude '/demo/.state' \
    --exclude '__pycache__' --exclude '*.pyc' --exclude '/tests/output' --exclude '.pytest_cache' \
    "$top/" "$dest/"
echo "$dest"

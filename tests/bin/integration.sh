#!/usr/bin/env bash
# Integration tests: bring up the test world (pool, fakes, image server), stage the
# collection, hand the world's settings to every target through
# tests/integration/integration_config.yml, and run ansible-test integration on this host.
# Extra arguments go to ansible-test (e.g. a target name).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
export IMGADM_BUILD_ROOT=${IMGADM_BUILD_ROOT:-/var/tmp/smartos-imgadm-build}
export PATH="$IMGADM_BUILD_ROOT/bin:$PATH"
bash "$top/tests/world/world.sh" up
world=${IMGADM_WORLD_DIR:-/var/tmp/smartos-imgadm-world}
coll=$(bash "$top/tests/bin/stage.sh")
cp "$world/world.yml" "$coll/tests/integration/integration_config.yml"
cd "$coll"
"$top/.venv/bin/ansible-test" integration --local --python 3.11 --color no --allow-destructive --allow-root -v "$@"

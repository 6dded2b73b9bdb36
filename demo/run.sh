#!/usr/bin/env bash
# `make demo`: a local zfs-fuse pool and our local image server (tests/world), seeded
# with a few real images built on that pool, and a real playbook (demo/site.yml)
# run against this host with the collection staged for Ansible.
# Deadlines: seeding and the playbook get IMGADM_DEMO_TIMEOUT seconds each (900); the world's
# setup has its own (tests/world/zpool.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export IMGADM_BUILD_ROOT=${IMGADM_BUILD_ROOT:-/var/tmp/smartos-imgadm-build}
export IMGADM_WORLD_DIR=${IMGADM_WORLD_DIR:-/var/tmp/smartos-imgadm-world}
limit=${IMGADM_DEMO_TIMEOUT:-900}
bash "$top/tests/world/world.sh" up
# shellcheck disable=SC1091
. "$IMGADM_WORLD_DIR/world.env"
: "${IMGADM_BUILD_POOL:?}" "${IMGADM_SERVER_DATA:?}" "${IMGADM_TEST_URL:?}" "${IMGADM_FAKES_BIN:?}" "${SMARTOS_FAKE_STATE:?}"
# IMGADM_DEMO_COLLECTIONS_PATH: run the playbook against an installed collection (for example an
# artefact put there with `ansible-galaxy collection install`) instead of this work tree's copy
if [ -n "${IMGADM_DEMO_COLLECTIONS_PATH:-}" ]; then
    [ -d "$IMGADM_DEMO_COLLECTIONS_PATH/ansible_collections/smartos/imgadm" ] || {
        echo "demo: no smartos.imgadm under IMGADM_DEMO_COLLECTIONS_PATH=$IMGADM_DEMO_COLLECTIONS_PATH" >&2; exit 2; }
    collections_path=$IMGADM_DEMO_COLLECTIONS_PATH
else
    bash "$top/tests/bin/stage.sh" >/dev/null
    collections_path=$IMGADM_BUILD_ROOT
fi

timeout --kill-after=30 "$limit" "$top/.venv/bin/python" "$top/tests/world/seed_demo.py" --pool "$IMGADM_BUILD_POOL" --server-data "$IMGADM_SERVER_DATA"

state="$top/demo/.state"
mkdir -p "$state"
# the second simulated host has a pool of its own
pool2=${IMGADM_DEMO_POOL2:-demohost2}
bash "$top/tests/world/zpool.sh" up "$pool2" 2G >/dev/null
# The hosts' databases, locks and image files live beside the pools, in the world's directory
# (world.sh down removes them with the pools): a database that outlived its pool, or a pool its
# database, would leave images without records, which the demo cannot build on.
hosts_dir="$IMGADM_WORLD_DIR/demo"
if [ ! -d "$hosts_dir" ]; then
    # new pools: the demo-app images an earlier demo published are gone from the server too, so that
    # the image this run makes is the only demo-app there (the server keeps its data across pools)
    timeout --kill-after=10 60 "$top/.venv/bin/python" - "$IMGADM_TEST_URL" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
with urllib.request.urlopen(url + '/images?name=demo-app&state=all', timeout=30) as r:
    images = json.load(r)
for image in images:
    urllib.request.urlopen(urllib.request.Request(url + '/images/' + image['uuid'], method='DELETE'), timeout=30).close()
    print('demo: removed demo-app %s (%s) published by an earlier demo' % (image['version'], image['uuid']))
PY
fi
mkdir -p "$hosts_dir/host1/locks" "$hosts_dir/host2/locks" "$hosts_dir/host1/images"
cat > "$state/inventory.ini" <<INV
[smartos]
demo-host demo_imgadm_dir=$hosts_dir/host1/var-imgadm demo_lock_dir=$hosts_dir/host1/locks demo_pool=$IMGADM_TEST_POOL
demo-host-2 demo_imgadm_dir=$hosts_dir/host2/var-imgadm demo_lock_dir=$hosts_dir/host2/locks demo_pool=$pool2

[smartos:vars]
ansible_connection=local
ansible_python_interpreter=$top/.venv/bin/python
demo_image_server=$IMGADM_TEST_URL
demo_fakes_bin=$IMGADM_FAKES_BIN
demo_fake_state=$SMARTOS_FAKE_STATE
demo_world_python=$top/.venv/bin/python
demo_world_tools=$top/tests/world
demo_output_dir=$hosts_dir/host1/images
INV
export ANSIBLE_COLLECTIONS_PATH="$collections_path"
echo "demo: smartos.imgadm from $collections_path"
export ANSIBLE_STDOUT_CALLBACK=default
export ANSIBLE_NOCOLOR=1
# --foreground: the playbook keeps the terminal (Ctrl-C reaches it); at the deadline it gets TERM, then KILL
timeout --foreground --kill-after=30 "$limit" "$top/.venv/bin/ansible-playbook" -i "$state/inventory.ini" "$top/demo/site.yml" "$@"
echo
echo "demo: imgadm.conf written by the playbook ($hosts_dir/host1/var-imgadm/imgadm.conf):"
cat "$hosts_dir/host1/var-imgadm/imgadm.conf"; echo

#!/usr/bin/env bash
# Install everything the demo and the tests need on a fresh Debian machine (as root):
# Debian packages (zfs-fuse, compressors, rsync) and pinned virtualenvs.
#   .venv       ansible-core 2.19 on Python 3.11
#   .venv-2.21  ansible-core 2.21 on Python 3.12+ (skipped, with a message, when no such Python exists)
#   .venv-docs  antsibull-docs and Sphinx (make docs)
#   .venv-tools ansible-lint and galaxy-importer (the packaging checks)
# Network steps have deadlines (IMGADM_BOOTSTRAP_TIMEOUT, 600 s each: apt-get, pip); a step
# over it is killed with its process group and the bootstrap fails, naming it.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
limit=${IMGADM_BOOTSTRAP_TIMEOUT:-600}
DEADLINE_PROG=bootstrap DEADLINE_HINT=IMGADM_BOOTSTRAP_TIMEOUT
# shellcheck source=tests/bin/deadline.sh
. "$top/tests/bin/deadline.sh"

need_pkgs=()
command -v zfs >/dev/null 2>&1 || need_pkgs+=(zfs-fuse)
command -v rsync >/dev/null 2>&1 || need_pkgs+=(rsync)
command -v xz >/dev/null 2>&1 || need_pkgs+=(xz-utils)
command -v bzip2 >/dev/null 2>&1 || need_pkgs+=(bzip2)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v shellcheck >/dev/null 2>&1 || need_pkgs+=(shellcheck)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    deadline "$limit" "apt-get update" apt-get -o Acquire::Retries=3 -o Acquire::http::Timeout=30 update -qq
    deadline "$limit" "apt-get install" apt-get -o Acquire::Retries=3 -o Acquire::http::Timeout=30 \
        install -y -qq "${need_pkgs[@]}" >/dev/null
fi

find_python() {
    # first argument: minor versions to try, best first
    local v p
    for v in "$@"; do
        for p in "/root/.pyenv/versions/$v"*/bin/python"$v" "$(command -v "python$v" 2>/dev/null || true)" "/usr/bin/python$v"; do
            if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import venv' >/dev/null 2>&1; then
                echo "$p"
                return 0
            fi
        done
    done
    return 1
}

make_venv() {
    local dir=$1 py=$2 req=$3
    local stamp="$dir/.stamp"
    local want
    want="$(sha256sum "$req" | cut -d' ' -f1) $py"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "bootstrap: creating $dir with $py from $req"
    rm -rf "$dir"
    "$py" -m venv "$dir"
    deadline "$limit" "pip install -r $req" "$dir/bin/pip" install -q --disable-pip-version-check --timeout 30 --retries 3 -r "$req"
    echo "$want" > "$stamp"
}

py311=$(find_python 3.11) || { echo "bootstrap: no Python 3.11 found" >&2; exit 1; }
make_venv .venv "$py311" tests/requirements-2.19.txt
# the documentation site (antsibull-docs, Sphinx) and the packaging checks (ansible-lint,
# galaxy-importer) pin versions of their own that do not fit the test venvs
make_venv .venv-docs "$py311" tests/requirements-docs.txt
make_venv .venv-tools "$py311" tests/requirements-tools.txt

if py312=$(find_python 3.12 3.13); then
    make_venv .venv-2.21 "$py312" tests/requirements-2.21.txt
else
    echo "bootstrap: no Python 3.12+ here: ansible-core 2.21 checks will be skipped"
fi


# ansible-test --venv downloads a get-pip.py script from a host this workplace cannot
# reach; give it a stand-in that installs pip from a wheel fetched from PyPI.
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
for venv in .venv .venv-2.21; do
    [ -x "$venv/bin/python" ] || continue
    pipver=$("$venv/bin/python" - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
    shim="$cache/get_pip_${pipver//./_}.py"
    if [ ! -f "$shim" ] || ! ls "$cache"/pip-"$pipver"-*.whl >/dev/null 2>&1; then
        deadline "$limit" "pip download pip==$pipver" "$venv/bin/pip" download -q --disable-pip-version-check --timeout 30 \
            --retries 3 --no-deps -d "$cache" "pip==$pipver"
        cp tests/bin/get_pip_shim.py "$shim"
    fi
done
echo "bootstrap: ansible-test pip bootstrap ready"

# ansible-test looks for python3.N on PATH; pyenv's shims answer for versions that are not
# activated with exit 127, so link the real interpreters into one directory that the
# Makefile puts first on PATH.
pybin="${IMGADM_BUILD_ROOT:-/var/tmp/smartos-imgadm-build}/bin"
mkdir -p "$pybin"
for v in 3.9 3.10 3.11 3.12 3.13 3.14; do
    for p in /root/.pyenv/versions/"$v".*/bin/python"$v" /usr/bin/python"$v"; do
        if [ -x "$p" ] && "$p" -c 'import sys' >/dev/null 2>&1; then
            ln -sfn "$p" "$pybin/python$v"
            break
        fi
    done
done
echo "bootstrap: interpreters for ansible-test in $pybin:" "$pybin"/python3.*
echo "bootstrap: ok"

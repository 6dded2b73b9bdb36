#!/usr/bin/env bash
# Build the documentation site of smartos.imgadm as docs.ansible.com renders collections, and
# check the documentation on the way (make docs). Steps, each under a deadline:
#   1. .venv-docs from tests/requirements-docs.txt (only when missing or out of date; the
#      same stamp as tests/bin/bootstrap.sh)
#   2. stage the collection (tests/bin/stage.sh) under $IMGADM_BUILD_ROOT
#   3. ansible-doc renders every module, the lookup and every role without a warning
#   4. antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs=all
#   5. tests/bin/docs_examples.py: every module's and the lookup's EXAMPLES as a play, and the
#      guides' YAML code blocks: ansible-playbook --syntax-check, options checked against the
#      documentation
#   6. antsibull-docs sphinx-init --use-current, then its build.sh: antsibull-docs collection
#      and sphinx-build -W (a Sphinx warning fails the build)
#   7. every module, lookup, role and guide has its page
# Offline except PyPI (step 1): intersphinx gets a local inventory (the two labels of the
# Ansible documentation that generated pages refer to), never a download.
# Output: $IMGADM_BUILD_ROOT/docs-site/build/html (IMGADM_DOCS_DIR changes docs-site).
# Deadlines: IMGADM_DOCS_TIMEOUT seconds per step (default 300; pip 600).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
build_root=${IMGADM_BUILD_ROOT:-/var/tmp/smartos-imgadm-build}
site=${IMGADM_DOCS_DIR:-$build_root/docs-site}
limit=${IMGADM_DOCS_TIMEOUT:-300}
venv="$top/.venv-docs"
req="$top/tests/requirements-docs.txt"
coll="$build_root/ansible_collections/smartos/imgadm"

DEADLINE_PROG=docs DEADLINE_HINT=IMGADM_DOCS_TIMEOUT
# shellcheck source=tests/bin/deadline.sh
. "$top/tests/bin/deadline.sh"
fail() { echo "docs: FAILED: $*" >&2; exit 1; }
t0=$SECONDS
step() { echo "docs: [$((SECONDS - t0)) s] $*"; }

# 1. the virtualenv
py=""
for p in /root/.pyenv/versions/3.11*/bin/python3.11 "$(command -v python3.11 2>/dev/null || true)" /usr/bin/python3.11; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import venv' >/dev/null 2>&1; then py=$p; break; fi
done
want="$(sha256sum "$req" | cut -d' ' -f1) $py"
if [ ! -x "$venv/bin/antsibull-docs" ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ]; then
    [ -n "$py" ] || fail "no Python 3.11 found to create $venv"
    step "creating $venv with $py from $req"
    rm -rf "$venv"
    deadline "$limit" "python -m venv" "$py" -m venv "$venv"
    deadline "${IMGADM_DOCS_PIP_TIMEOUT:-600}" "pip install -r $req" \
        "$venv/bin/pip" install -q --disable-pip-version-check --timeout 30 --retries 3 -r "$req"
    echo "$want" > "$venv/.stamp"
fi
export PATH="$venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$build_root"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_LOCAL_TEMP="$build_root/docs-ansible-tmp"

# 2. stage
step "staging the collection into $coll"
IMGADM_BUILD_ROOT="$build_root" deadline "$limit" "stage.sh" bash "$top/tests/bin/stage.sh" >/dev/null

modules=()
for f in "$coll"/plugins/modules/*.py; do
    n=$(basename "$f" .py); [ "${n#_}" = "$n" ] && modules+=("$n")
done
lookups=()
for f in "$coll"/plugins/lookup/*.py; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .py); [ "${n#_}" = "$n" ] && lookups+=("$n")
done
roles=()
for f in "$coll"/roles/*/meta/argument_specs.yml; do
    [ -e "$f" ] || continue
    roles+=("$(basename "$(dirname "$(dirname "$f")")")")
done
guides=()
for f in "$coll"/docs/docsite/rst/*.rst; do
    [ -e "$f" ] || continue
    guides+=("$(basename "$f" .rst)")
done
echo "docs: modules: ${modules[*]}; lookups: ${lookups[*]:-none}; roles: ${roles[*]:-none}; guides: ${guides[*]:-none}"

# 3. ansible-doc
step "ansible-doc of every plugin and role"
adoc_fail=0
adoc() {
    local kind=$1 name=$2 out err
    out=$(mktemp) err=$(mktemp)
    if ! deadline "$limit" "ansible-doc -t $kind $name" ansible-doc -t "$kind" "smartos.imgadm.$name" >"$out" 2>"$err"; then
        echo "docs: ansible-doc -t $kind smartos.imgadm.$name failed:" >&2; cat "$err" >&2; adoc_fail=1
    elif grep -q -E 'WARNING|ERROR' "$err"; then
        echo "docs: ansible-doc -t $kind smartos.imgadm.$name warned:" >&2; cat "$err" >&2; adoc_fail=1
    elif [ ! -s "$out" ]; then
        echo "docs: ansible-doc -t $kind smartos.imgadm.$name printed nothing" >&2; adoc_fail=1
    fi
    rm -f "$out" "$err"
}
for n in "${modules[@]}"; do adoc module "$n"; done
for n in "${lookups[@]}"; do adoc lookup "$n"; done
for n in "${roles[@]}"; do adoc role "$n"; done
[ "$adoc_fail" = 0 ] || fail "ansible-doc"

# 4. antsibull-docs lint
step "antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs=all"
(cd "$coll" && deadline "$limit" "lint-collection-docs" antsibull-docs lint-collection-docs --plugin-docs \
    --validate-collection-refs=all .) || fail "antsibull-docs lint-collection-docs (see above)"

# 5. EXAMPLES
step "EXAMPLES and the guides' YAML: ansible-playbook --syntax-check, option names (tests/bin/docs_examples.py)"
deadline "$limit" "docs_examples.py" python "$top/tests/bin/docs_examples.py" "$coll" \
    --workdir "$build_root/docs-examples" --rst "$coll/docs/docsite/rst" || fail "EXAMPLES (see above)"

# 6. the site
step "antsibull-docs sphinx-init into $site"
rm -rf "$site"
mkdir -p "$site"
deadline "$limit" "antsibull-docs sphinx-init" antsibull-docs sphinx-init --use-current --squash-hierarchy \
    --fail-on-error --dest-dir "$site" --project smartos.imgadm --copyright 'smartos.imgadm developers' \
    --title 'smartos.imgadm Documentation' --html-short-title 'smartos.imgadm' smartos.imgadm >/dev/null
# offline: no intersphinx download; the labels generated pages take from the Ansible docs
# resolve through a local inventory to the same docs.ansible.com pages
python - "$site/ansible_devel.inv" <<'PY'
import sys, zlib
entries = [
    ('ansible_configuration_settings', 'reference_appendices/config.html#ansible-configuration-settings',
     'Ansible Configuration Settings'),
    ('common_return_values', 'reference_appendices/common_return_values.html#common-return-values',
     'Return Values'),
]
head = (b'# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n'
        b'# The remainder of this file is compressed using zlib.\n')
body = ''.join('%s std:label -1 %s %s\n' % e for e in entries).encode()
with open(sys.argv[1], 'wb') as f:
    f.write(head + zlib.compress(body))
PY
cat >> "$site/conf.py" <<EOF

# make docs (tests/bin/docs.sh): no download; a local inventory for the Ansible docs' labels
intersphinx_mapping = {
    'ansible_devel': ('https://docs.ansible.com/projects/ansible/devel/', '$site/ansible_devel.inv'),
}
intersphinx_timeout = 1
EOF
step "build.sh (antsibull-docs collection, sphinx-build -W)"
deadline "$limit" "build.sh" bash "$site/build.sh" >"$site/build.log" 2>&1 || {
    grep -E 'WARNING|ERROR|Error|error' "$site/build.log" >&2 || tail -40 "$site/build.log" >&2
    fail "the site build (full log: $site/build.log)"
}
if grep -E '(WARNING|ERROR):' "$site/build.log" >&2; then
    fail "warnings in the site build (full log: $site/build.log)"
fi

# 7. every page
html="$site/build/html"
missing=()
for n in "${modules[@]}"; do [ -f "$html/${n}_module.html" ] || missing+=("${n}_module.html"); done
for n in "${lookups[@]}"; do [ -f "$html/${n}_lookup.html" ] || missing+=("${n}_lookup.html"); done
for n in "${roles[@]}"; do [ -f "$html/${n}_role.html" ] || missing+=("${n}_role.html"); done
for n in "${guides[@]}"; do [ -f "$html/docsite/${n}.html" ] || missing+=("docsite/${n}.html"); done
[ -f "$html/index.html" ] || missing+=(index.html)
[ "${#missing[@]}" = 0 ] || fail "pages missing from the site: ${missing[*]}"
for n in "${guides[@]}"; do
    grep -q "docsite/${n}.html" "$html/index.html" || fail "guide $n is not linked from index.html"
done

step "done: ${#modules[@]} modules, ${#lookups[@]} lookup(s), ${#roles[@]} roles, ${#guides[@]} guides, lint clean"
echo "docs: site: $html/index.html"

#!/usr/bin/env bash
# `make package`: build the collection artefact as Galaxy gets it, and check it.
#   0. changelog  antsibull-changelog lint, and CHANGELOG.rst regenerated in a copy is the same
#   1. build      ansible-galaxy collection build (galaxy.yml build_ignore decides what goes in)
#   2. contents   fails on any test, benchmark, demo, virtualenv, cache or developer file inside,
#                 and on any file of plugins/, roles/, meta/, docs/, playbooks/ left out
#   3. importer   galaxy-importer (what Galaxy runs on an upload: metadata, docs, ansible-lint),
#                 without ansible-test (no container); fails on any warning or error it logs
#   4. install    ansible-galaxy collection install into a fresh empty directory, offline, no
#                 dependencies (galaxy.yml has none), then verify it against its manifest
#   5. demo       demo/run.sh against the installed artefact (IMGADM_DEMO_COLLECTIONS_PATH)
#   6. lint       ansible-lint (.ansible-lint: profile production, offline) on roles/,
#                 demo/site.yml and playbooks/, smartos.imgadm resolved from the installed artefact
# Uses .venv-tools (ansible-galaxy, galaxy-importer, ansible-lint: tests/requirements-tools.txt)
# and .venv (the demo), both made by tests/bin/bootstrap.sh. Needs no network.
# Everything goes to $IMGADM_BUILD_ROOT/package (default /var/tmp/smartos-imgadm-build/package).
# The demo uses the zfs-fuse pool of tests/world: do not run two of these (or a demo or the
# integration tests) on one machine at the same time.
# Deadlines, in seconds, each step: IMGADM_PACKAGE_TIMEOUT (300) for each step but the demo,
# IMGADM_PACKAGE_DEMO_TIMEOUT (1200) for the whole demo (demo/run.sh has deadlines of its own inside).
# IMGADM_PACKAGE_DEMO=0 leaves the demo out (the summary says so).
# A failed build, contents check or install stops the run; after a failed importer, demo or lint
# the next steps still run, and the run fails at the end naming every failure.
# Prints the artefact's path, file list summary and size, and the time of each step.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
export IMGADM_BUILD_ROOT=${IMGADM_BUILD_ROOT:-/var/tmp/smartos-imgadm-build}
limit=${IMGADM_PACKAGE_TIMEOUT:-300}
demo_limit=${IMGADM_PACKAGE_DEMO_TIMEOUT:-1200}
run_demo=${IMGADM_PACKAGE_DEMO:-1}
tools="$top/.venv-tools/bin"
work="$IMGADM_BUILD_ROOT/package"

# die: a failure the next steps cannot go on from; failed: one they can (summed up at the end)
die() { echo "package: FAILED: $*" >&2; exit 1; }
failures=()
failed() { echo "package: FAILED: $*" >&2; failures+=("$*"); }
for t in ansible-galaxy ansible-lint python; do
    [ -x "$tools/$t" ] || die "$tools/$t missing: run tests/bin/bootstrap.sh (make bootstrap) first"
done
[ -x "$top/.venv/bin/ansible-playbook" ] || die "$top/.venv missing: run tests/bin/bootstrap.sh (make bootstrap) first"

# The tools of .venv-tools first (galaxy-importer calls ansible-doc and ansible-lint by name); no
# Ansible configuration or collections of this machine's user.
export PATH="$tools:$PATH"
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS ANSIBLE_ROLES_PATH
export ANSIBLE_NOCOLOR=1 NO_COLOR=1

DEADLINE_PROG=package
# shellcheck source=tests/bin/deadline.sh
. "$top/tests/bin/deadline.sh"
# the time of each step, for the summary
timings=()
step_start=0
run_start=$(date +%s%N)
begin() { step_start=$(date +%s%N); echo; echo "== package: $1"; }
elapsed() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }
done_step() { timings+=("$(printf '%-9s %s' "$1" "$(elapsed "$step_start")")"); }

deadline 60 "clean $work" rm -rf "$work"
mkdir -p "$work/dist" "$work/collections" "$work/importer"

# -- 0. changelog: the fragments lint clean, and CHANGELOG.rst is what antsibull-changelog makes of
# changelogs/changelog.yaml (regenerated in a copy and compared)
begin changelog
(cd "$top" && PATH="$top/.venv/bin:$PATH" deadline "$limit" "antsibull-changelog lint" "$top/.venv/bin/antsibull-changelog" lint) \
    || failed "antsibull-changelog lint"
mkdir -p "$work/changelog-check"
deadline 60 "copy for the changelog" rsync -a --exclude '__pycache__' --exclude '.plugin-cache.yaml' \
    "$top/galaxy.yml" "$top/CHANGELOG.rst" "$top/changelogs" "$top/plugins" "$top/meta" "$top/roles" "$top/playbooks" \
    "$work/changelog-check/" || die "copy for the changelog"
(cd "$work/changelog-check" && PATH="$top/.venv/bin:$PATH" deadline "$limit" "antsibull-changelog generate" \
    "$top/.venv/bin/antsibull-changelog" generate) || failed "antsibull-changelog generate"
diff -u "$top/CHANGELOG.rst" "$work/changelog-check/CHANGELOG.rst" \
    || failed "CHANGELOG.rst is not what antsibull-changelog generates from changelogs/changelog.yaml (diff above)"
done_step changelog

# -- 1. build -----------------------------------------------------------------------------
begin build
deadline "$limit" "ansible-galaxy collection build" \
    "$tools/ansible-galaxy" collection build --output-path "$work/dist" "$top" || die "ansible-galaxy collection build"
artefacts=("$work"/dist/*.tar.gz)
if [ "${#artefacts[@]}" != 1 ] || [ ! -f "${artefacts[0]}" ]; then
    die "expected one artefact in $work/dist, found: ${artefacts[*]}"
fi
artefact=${artefacts[0]}
done_step build

# -- 2. contents ----------------------------------------------------------------------------
begin contents
deadline 60 "tar -tzf" tar -tzf "$artefact" > "$work/entries.txt" || die "tar -tzf $artefact"
sed -e 's|^\./||' -e 's|/$||' "$work/entries.txt" | sort > "$work/files.txt"
# what must never be in it: tests, benchmarks, CI, the demo, virtualenvs, caches, build output,
# developer files, changelog fragments and antsibull-changelog's cache
bad='^(tests|bench|demo|\.ci|build|htmlcov)(/|$)'
bad+='|(^|/)\.venv[^/]*(/|$)|(^|/)__pycache__(/|$)|\.py[co]$|(^|/)\.(pytest_cache|mypy_cache|ruff_cache|tox|nox|cache|ansible)(/|$)'
bad+='|(^|/)\.git(/|$)|(^|/)\.(gitignore|gitattributes|ansible-lint|yamllint|pre-commit-config\.yaml|editorconfig|coverage)$'
bad+='|^Makefile$|^changelogs/fragments(/|$)|^changelogs/\.plugin-cache\.yaml$|(^|/)\.state(/|$)'
bad+='|\.(tar\.gz|retry|orig|rej|sw[op])$|~$|\.egg-info(/|$)'
if grep -E "$bad" "$work/files.txt" > "$work/bad.txt"; then
    sed 's/^/  /' "$work/bad.txt" >&2
    die "the artefact holds test or development files (above): fix build_ignore in galaxy.yml"
fi
# what must be in it: the metadata, the documents, and every file of the collection's content
# (a build_ignore pattern that is too wide would leave some out)
want=(MANIFEST.json FILES.json README.md COPYING meta/runtime.yml changelogs/changelog.yaml)
[ -f CHANGELOG.rst ] && want+=(CHANGELOG.rst)
[ -f CHANGELOG.md ] && want+=(CHANGELOG.md)
for d in plugins roles meta docs playbooks; do
    [ -d "$d" ] || continue
    while IFS= read -r f; do want+=("$f"); done < <(find "$d" \( -name __pycache__ -o -name '.*' \) -prune -o \
        -type f ! -name '*.pyc' ! -name '*~' ! -name '*.sw[op]' -print | sort)
done
missing=()
for f in "${want[@]}"; do grep -qxF -- "$f" "$work/files.txt" || missing+=("$f"); done
[ "${#missing[@]}" = 0 ] || { printf '  %s\n' "${missing[@]}" >&2; die "the artefact lacks files of the collection (above)"; }
nfiles=$(grep -cv '/$' "$work/entries.txt" || true)
size=$(stat -c %s "$artefact")
echo "package: $artefact: $nfiles files, $size bytes ($(du -h "$artefact" | cut -f1)); files per top-level entry:"
grep -v '/$' "$work/entries.txt" | sed 's|^\./||' | cut -d/ -f1 | sort | uniq -c | sed 's/^/  /'
done_step contents

# -- 3. galaxy-importer ---------------------------------------------------------------------------
begin importer
cat > "$work/galaxy-importer.cfg" <<'CFG'
[galaxy-importer]
log_level_main = INFO
run_ansible_test = False
run_ansible_doc = True
run_ansible_lint = True
offline_ansible_lint = True
check_changelog = True
CFG
imported=$artefact
if ! deadline 60 "read MANIFEST.json" "$tools/python" -c 'import json, sys, tarfile
m = json.load(tarfile.open(sys.argv[1]).extractfile("MANIFEST.json"))
sys.exit(0 if m["collection_info"].get("repository") else 1)' "$artefact"; then
    # Galaxy requires a repository URL; this project has none, and galaxy.yml does not invent one.
    # The importer checks a copy that names a placeholder (RFC 2606 .invalid), all else the same.
    echo "package: NOTE: galaxy.yml names no repository (the project has none) and Galaxy requires one:"
    echo "package: the importer checks a copy of the artefact whose MANIFEST.json names https://example.invalid/no-repository"
    mkdir -p "$work/importer/copy"
    imported="$work/importer/copy/$(basename "$artefact")"
    # shellcheck disable=SC2016  # Python, not shell
    placeholder='import io, json, sys, tarfile
src, dst = sys.argv[1:3]
with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
    for member in tin.getmembers():
        data = tin.extractfile(member).read() if member.isfile() else None
        if member.name in ("MANIFEST.json", "./MANIFEST.json"):
            manifest = json.loads(data)
            manifest["collection_info"]["repository"] = "https://example.invalid/no-repository"
            data = json.dumps(manifest, indent=4).encode()
            member.size = len(data)
        tout.addfile(member, io.BytesIO(data) if data is not None else None)'
    deadline 60 "placeholder copy" "$tools/python" -c "$placeholder" "$artefact" "$imported" || die "placeholder copy of the artefact"
    [ -s "$imported" ] || die "placeholder copy of the artefact: $imported not written"
fi
rc=0
cd "$work/importer"     # it writes importer_result.json here
GALAXY_IMPORTER_CONFIG="$work/galaxy-importer.cfg" deadline "$limit" "galaxy-importer" \
    "$tools/python" -m galaxy_importer.main "$imported" > "$work/importer.log" 2>&1 || rc=$?
cd "$top"
sed 's/^/  /' "$work/importer.log"
if [ "$rc" != 0 ]; then
    failed "galaxy-importer exited $rc (log: $work/importer.log)"
elif ! grep -q '^Importer processing completed successfully' "$work/importer.log"; then
    failed "galaxy-importer did not complete (log: $work/importer.log)"
elif grep -E '^(WARNING|ERROR|CRITICAL)|Traceback' "$work/importer.log" >/dev/null; then
    failed "galaxy-importer reported warnings or errors (above; log: $work/importer.log)"
fi
done_step importer

# -- 4. install ---------------------------------------------------------------------------------
begin install
ANSIBLE_COLLECTIONS_PATH="$work/collections" deadline "$limit" "ansible-galaxy collection install" \
    "$tools/ansible-galaxy" collection install --offline --no-deps -p "$work/collections" "$artefact" \
    || die "ansible-galaxy collection install"
installed="$work/collections/ansible_collections/smartos/imgadm"
[ -f "$installed/MANIFEST.json" ] || die "nothing installed at $installed"
ANSIBLE_COLLECTIONS_PATH="$work/collections" deadline "$limit" "ansible-galaxy collection verify" \
    "$tools/ansible-galaxy" collection verify --offline -p "$work/collections" smartos.imgadm \
    || die "ansible-galaxy collection verify (the installed files differ from the artefact's manifest)"
done_step install

# -- 5. demo ------------------------------------------------------------------------------------
if [ "$run_demo" = 0 ]; then
    timings+=("demo      not run (IMGADM_PACKAGE_DEMO=0)")
else
    begin demo
    IMGADM_DEMO_COLLECTIONS_PATH="$work/collections" \
        deadline "$demo_limit" "the demo" bash "$top/demo/run.sh" </dev/null \
        || failed "the demo against the installed artefact"
    done_step demo
fi

# -- 6. ansible-lint --------------------------------------------------------------------------
begin lint
targets=(roles/)
[ -f demo/site.yml ] && targets+=(demo/site.yml)
[ -d playbooks ] && targets+=(playbooks/)
echo "package: ansible-lint ${targets[*]}"
ANSIBLE_COLLECTIONS_PATH="$work/collections" deadline "$limit" "ansible-lint" \
    "$tools/ansible-lint" --nocolor "${targets[@]}" || failed "ansible-lint ${targets[*]}"
done_step lint

echo
printf 'package: %s\n' "${timings[@]}" "$(printf '%-9s %s' total "$(elapsed "$run_start")")"
if [ "${#failures[@]}" -gt 0 ]; then
    printf 'package: FAILED: %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "package: ok: $artefact ($nfiles files, $size bytes)"

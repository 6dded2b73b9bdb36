# smartos.imgadm: the two commands a new user needs (see README.md), and their parts.
#   make demo   local ZFS pool + local image server + a real playbook against them
#   make test   everything CI runs: sanity (2 ansible-core versions), units, world, integration
SHELL := /bin/bash
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(TOP)/.venv
VENV221 := $(TOP)/.venv-2.21
BUILD_ROOT ?= /var/tmp/smartos-imgadm-build
COLL := $(BUILD_ROOT)/ansible_collections/smartos/imgadm
export IMGADM_BUILD_ROOT := $(BUILD_ROOT)
export PATH := $(BUILD_ROOT)/bin:$(PATH)

.PHONY: demo test bootstrap stage sanity sanity-2.19 sanity-2.21 units world-tests integration world-up world-down clean test-openzfs package docs fleet

demo: bootstrap
	bash $(TOP)/demo/run.sh

# run-all.sh bootstraps first itself, under a deadline like every step (IMGADM_TIMEOUT_* there)
test:
	bash $(TOP)/tests/bin/run-all.sh

bootstrap:
	bash $(TOP)/tests/bin/bootstrap.sh

stage:
	bash $(TOP)/tests/bin/stage.sh >/dev/null

sanity: sanity-2.19 sanity-2.21

sanity-2.19: bootstrap stage
	cd $(COLL) && $(VENV)/bin/ansible-test sanity --venv --color no

sanity-2.21: bootstrap stage
	@if [ -x $(VENV221)/bin/ansible-test ]; then \
	    cd $(COLL) && $(VENV221)/bin/ansible-test sanity --venv --color no; \
	else echo "sanity-2.21: no Python 3.12+ here, skipped"; fi

units: bootstrap stage
	cd $(COLL) && $(VENV)/bin/ansible-test units --venv --color no --python 3.11

world-tests: bootstrap
	cd $(TOP) && $(VENV)/bin/python -m pytest -q tests/world/tests

integration: bootstrap stage
	bash $(TOP)/tests/bin/integration.sh

# the real-host tier: integration targets against a Debian 12 + OpenZFS guest under QEMU, over
# SSH (tests/openzfs/; builds the guest on first use, ~6.5 min, then cached)
test-openzfs:
	bash $(TOP)/tests/openzfs/run.sh

# the fleet scenario: playbooks/fleet.yml on 10 simulated hosts (a pool, database and lock
# directory each, one image server), run twice; state checked with zfs, the records, the server's log
fleet: bootstrap
	bash $(TOP)/tests/fleet/run.sh

# the Galaxy artefact, checked: no test or dev files in it, galaxy-importer, installed into an empty
# directory and the demo run from there, ansible-lint (production profile) on the roles and playbooks
package: bootstrap
	bash $(TOP)/tests/bin/package.sh

# the documentation site as docs.ansible.com renders collections (antsibull-docs, Sphinx; warnings
# fail), after ansible-doc, antsibull-docs lint and a syntax check of every EXAMPLES; the site is
# under $(BUILD_ROOT)/docs-site/build/html (.venv-docs is made from tests/requirements-docs.txt)
docs:
	bash $(TOP)/tests/bin/docs.sh

world-up: bootstrap
	bash $(TOP)/tests/world/world.sh up

world-down:
	bash $(TOP)/tests/world/world.sh down

clean:
	rm -rf $(BUILD_ROOT) $(TOP)/demo/.state

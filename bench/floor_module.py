"""The least an Ansible module process that streams over HTTP costs: the floor.

Starts the interpreter, imports what every import through imgadm_image needs
whatever the image (AnsibleModule, requests, a thread pool), parses its
arguments and exits with a result, doing nothing else. import_bench.py times
it next to each module run: the module's wall time minus this floor is what
the module itself could still save.

    python floor_module.py ARGS.json
"""

from __future__ import absolute_import, division, print_function

import concurrent.futures  # noqa: F401  pylint: disable=unused-import

import requests  # noqa: F401  pylint: disable=unused-import

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(uuid=dict(type='str')), supports_check_mode=True)
    module.exit_json(changed=False)


if __name__ == '__main__':
    main()

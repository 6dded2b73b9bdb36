"""Run an Ansible module file as __main__ in this process and report its peak RSS.

    python module_rss.py MODULE.py ARGS.json

The module runs exactly as `python MODULE.py ARGS.json` would (same
interpreter, argv[1] = the args file, run as __main__); at interpreter exit
(AnsibleModule.exit_json/fail_json call sys.exit) this process's own
getrusage(RUSAGE_SELF).ru_maxrss -- the module process alone, all its
threads, not its children (decompressor, zfs receive) -- is written in KiB
to the file named by $BENCH_RSS_FILE, followed by the process's user and
system CPU seconds: "MAXRSS_KIB UTIME STIME".
"""

import atexit
import os
import resource
import runpy
import sys

_out = os.environ.pop("BENCH_RSS_FILE", None)


def _report():
    if _out:
        with open(_out, "w") as f:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            f.write("%d %.3f %.3f\n" % (ru.ru_maxrss, ru.ru_utime, ru.ru_stime))


atexit.register(_report)
module = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(module))
runpy.run_path(module, run_name="__main__")

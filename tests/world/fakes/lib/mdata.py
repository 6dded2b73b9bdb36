"""Fake SmartOS guest tools `mdata-get` and `mdata-put` for the test world.

They act on the VM record $SMARTOS_FAKE_STATE/vms/$FAKE_VM_UUID.json of the
fake `vmadm` (see vmadm.py), which sets FAKE_VM_UUID for the
operator-script it runs; tests can set it themselves.

    mdata-get KEY           prints customer_metadata[KEY] and a newline
                            (a non-string value as JSON); exit 0.
                            sdc:uuid, sdc:hostname, sdc:alias,
                            sdc:owner_uuid, sdc:server_uuid,
                            sdc:datacenter_name come from the record's
                            fields, sdc:nics, sdc:resolvers, sdc:routes,
                            sdc:tags as JSON, sdc:operator-script is
                            internal_metadata["operator-script"].
                            Missing: "No metadata for 'KEY'", exit 1.
    mdata-put KEY VALUE     sets customer_metadata[KEY] = VALUE (under the
    mdata-put KEY           VM's lock, atomically); without VALUE it is
                            read from stdin verbatim. sdc: keys cannot be
                            written (exit 2). Silent, exit 0.

Usage errors exit 2; so does a missing or unknown FAKE_VM_UUID (as
mdata-get fails outside a VM: no metadata service). Each call is appended
to STATE/calls.log as {cmd, argv, time, vm}.
"""

import json
import os
import sys

import vmadm as vm

SDC_FIELDS = ("uuid", "hostname", "alias", "owner_uuid", "server_uuid",
              "datacenter_name")
SDC_JSON = ("nics", "resolvers", "routes", "tags")


def sdc_value(rec, name):
    if name == "operator-script":
        return (rec.get("internal_metadata") or {}).get("operator-script")
    if name in SDC_FIELDS:
        return rec.get(name)
    if name in SDC_JSON and name in rec:
        return json.dumps(rec[name])
    return None


def main(prog, argv):
    u = os.environ.get("FAKE_VM_UUID", "")
    vm.log_call(prog, argv, vm=u or None)
    if prog == "mdata-get":
        if len(argv) != 1:
            sys.stderr.write("Usage: mdata-get <keyname>\n")
            return 2
    elif not 1 <= len(argv) <= 2:
        sys.stderr.write("Usage: mdata-put <keyname> [ <value> ]\n")
        return 2
    key = argv[0]
    if not u:
        sys.stderr.write("%s: FAKE_VM_UUID is not set: no metadata service "
                         "(not inside a fake VM)\n" % prog)
        return 2
    if not os.path.exists(vm.vm_file(u, ".json")):
        sys.stderr.write("%s: no such VM %s (FAKE_VM_UUID)\n" % (prog, u))
        return 2
    try:
        if prog == "mdata-get":
            rec = vm.load_vm(u)
            if key.startswith("sdc:"):
                val = sdc_value(rec, key[4:])
            else:
                val = (rec.get("customer_metadata") or {}).get(key)
            if val is None:
                sys.stderr.write("No metadata for '%s'\n" % key)
                return 1
            if not isinstance(val, str):
                val = json.dumps(val)
            sys.stdout.write(val + "\n")
            return 0
        if key.startswith("sdc:"):
            sys.stderr.write("Error putting metadata for key '%s': the sdc: "
                             "namespace is read-only\n" % key)
            return 2
        if len(argv) == 2:
            val = argv[1]
        else:
            val = sys.stdin.buffer.read().decode("utf-8", "replace")
        with vm.locked(u):
            rec = vm.load_vm(u)
            md = rec.get("customer_metadata")
            if not isinstance(md, dict):
                md = rec["customer_metadata"] = {}
            md[key] = val
            vm.save_vm(rec)
        return 0
    except vm.Exit as e:
        sys.stderr.write("%s: %s\n" % (prog, e.msg))
        return 2


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("mdata-get", "mdata-put"):
        sys.stderr.write("usage: mdata.py mdata-get|mdata-put ARGS\n")
        sys.exit(2)
    try:
        rc = main(sys.argv[1], sys.argv[2:])
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        rc = 0
    sys.exit(rc)

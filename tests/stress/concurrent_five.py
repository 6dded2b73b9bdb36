#!/usr/bin/env python
"""Stress: import five images in one task (concurrency 3), delete them, N times in a row.

    tests/stress/concurrent_five.py [--rounds 300] [--deadline 180] [--size-mib 6]
                                    [--concurrency 3] [--no-stage] [--keep-going-after-hang]

Each round runs the module smartos.imgadm.imgadm_image directly (python -m, an args file
{"ANSIBLE_MODULE_ARGS": ...}, no ansible-playbook) against the test world: one task that
imports five images -- gzip, xz, bzip2, none and one incremental (on the gzip one) -- with
`concurrency`, then one task that deletes them. After each task `zfs list` and the database
directory must show all five installed (the incremental a clone of its origin's @final),
then none, and no -partial. A round that does not finish within `--deadline` seconds is a
hang: the processes in state D are printed (`ps -eo pid,stat,wchan:30,args`), the module's
process group is killed, and (unless --keep-going-after-hang) the run stops there.

The images are built once (random data, `--size-mib` MiB each, the incremental a third of
that) in the world's build pool and published through the server's data directory; the
run removes them, its datasets and its work directory at the end. Needs root, the test
world (brought up with tests/world/world.sh up when it is not) and .venv (make bootstrap).

Prints one line per round and, at the end, `rounds: N ok, M failed, K hung`; exits 0 only
if every round was ok. Not part of `make test`.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORLD_TOOLS = os.path.join(TOP, 'tests', 'world')
FAKES_BIN = os.path.join(WORLD_TOOLS, 'fakes', 'bin')
PYTHON = os.path.join(TOP, '.venv', 'bin', 'python')
MODULE = 'ansible_collections.smartos.imgadm.plugins.modules.imgadm_image'


def log(msg):
    sys.stdout.write(msg + '\n')
    sys.stdout.flush()


def sh(argv, check=True, timeout=None):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                       timeout=timeout, universal_newlines=True)
    if check and p.returncode != 0:
        raise RuntimeError('%s: exit %d: %s' % (' '.join(argv), p.returncode, p.stderr.strip()))
    return p


def read_world_env():
    env = {}
    path = os.environ.get('IMGADM_WORLD_DIR', '/var/tmp/smartos-imgadm-world') + '/world.env'
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if '=' in line:
                    k, v = line.strip().split('=', 1)
                    env[k] = v
    return env


def world_is_up(env):
    import urllib.request  # pylint: disable=import-outside-toplevel
    if not env.get('IMGADM_TEST_URL') or not env.get('IMGADM_TEST_POOL'):
        return False
    if sh(['zpool', 'list', '-H', '-o', 'name', env['IMGADM_TEST_POOL']], check=False).returncode != 0:
        return False
    try:
        with urllib.request.urlopen(env['IMGADM_TEST_URL'] + '/ping', timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def world_env():
    """The world's settings; `world.sh up` only when it is not up (it rewrites world.env)."""
    env = read_world_env()
    if not world_is_up(env):
        sh(['bash', os.path.join(WORLD_TOOLS, 'world.sh'), 'up'])
        env = read_world_env()
    return env


def d_state_processes():
    p = sh(['ps', '-eo', 'pid,stat,wchan:30,args'], check=False)
    lines = p.stdout.splitlines()
    return [lines[0]] + [ln for ln in lines[1:] if ln.split(None, 2)[1].startswith('D')] if lines else []


class Hang(Exception):
    pass


def run_module(args, env, deadline, workdir, tag):
    """Run the module once; its result dict. Hang if `deadline` (time.time()) passes."""
    path = os.path.join(workdir, 'args-%s.json' % tag)
    with open(path, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
    proc = subprocess.Popen([PYTHON, '-m', MODULE, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=workdir, start_new_session=True, universal_newlines=True)
    try:
        out, err = proc.communicate(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        dstate = d_state_processes()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        raise Hang('%s: no result within the deadline; processes in state D:\n  %s' % (tag, '\n  '.join(dstate)))
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return dict(failed=True, msg='no JSON result (exit %s): %s %s' % (proc.returncode, out[-2000:], err[-2000:]))


def pool_names(pool):
    return set(sh(['zfs', 'list', '-H', '-o', 'name', '-t', 'all', '-r', pool], timeout=60).stdout.split())


def origin_of(ds):
    return sh(['zfs', 'get', '-H', '-o', 'value', 'origin', ds], timeout=60).stdout.strip()


def destroy(ds):
    if sh(['zfs', 'list', '-H', '-o', 'name', ds], check=False, timeout=60).returncode == 0:
        sh(['zfs', 'unmount', ds], check=False, timeout=60)  # zfs-fuse cannot destroy a mounted fs
        sh(['zfs', 'destroy', '-r', ds], timeout=120)


def clean_pool(pool, db, uuids):
    """Destroy the datasets and records of `uuids`; RuntimeError listing what could not be."""
    errors = []
    for u in reversed(uuids):  # the incremental (last) before its origin
        for ds in ('%s/%s-partial' % (pool, u), '%s/imgadm-partial/%s' % (pool, u), '%s/%s' % (pool, u)):
            try:
                destroy(ds)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                errors.append('%s: %s' % (ds, e))
        rec = os.path.join(db, 'images', '%s-%s.json' % (pool, u))
        if os.path.exists(rec):
            os.unlink(rec)
    if errors:
        raise RuntimeError('; '.join(errors))


def build_images(env, out_dir, size_mib, state_file):
    sys.path.insert(0, WORLD_TOOLS)
    import build_image  # pylint: disable=import-error,import-outside-toplevel
    import uuid as uuidlib  # pylint: disable=import-outside-toplevel
    stamp = time.strftime('%Y%m%d%H%M%S')
    specs = [('gzip', None, size_mib), ('xz', None, size_mib), ('bzip2', None, size_mib),
             ('none', None, size_mib), ('gzip', 0, max(0.25, size_mib / 3.0))]
    built = []
    for i, (compression, origin, size) in enumerate(specs):
        u = str(uuidlib.uuid4())
        built.append(u)
        with open(state_file, 'w') as f:
            json.dump(built, f)
        name = 'stress5-%s-%d-%s' % (stamp, i, 'inc' if origin is not None else compression)
        build_image.build_image(env['IMGADM_BUILD_POOL'], os.path.join(out_dir, str(i)), name, '1.0',
                                compression=compression, size_mib=size, uuid=u,
                                origin=built[origin] if origin is not None else None,
                                server_data_dir=env['IMGADM_SERVER_DATA'])
    return built


def remove_images(env, uuids):
    import urllib.request  # pylint: disable=import-outside-toplevel
    import urllib.error  # pylint: disable=import-outside-toplevel
    for u in reversed(uuids):
        destroy('%s/imgbuild/%s' % (env['IMGADM_BUILD_POOL'], u))
        req = urllib.request.Request('%s/images/%s?force_all_channels=true' % (env['IMGADM_TEST_URL'], u),
                                     method='DELETE')
        try:
            with urllib.request.urlopen(req, timeout=30):
                pass
        except (urllib.error.URLError, OSError):
            pass


def check_installed(pool, db, uuids):
    names = pool_names(pool)
    problems = []
    for u in uuids:
        if '%s/%s@final' % (pool, u) not in names:
            problems.append('%s/%s@final missing' % (pool, u))
        if not os.path.exists(os.path.join(db, 'images', '%s-%s.json' % (pool, u))):
            problems.append('record of %s missing' % u)
    if not problems and origin_of('%s/%s' % (pool, uuids[4])) != '%s/%s@final' % (pool, uuids[0]):
        problems.append('the incremental is not a clone of %s/%s@final' % (pool, uuids[0]))
    # a partial image: POOL/UUID-partial, or POOL/imgadm-partial/UUID where zfs receive has no -u
    # (the never-mounted parent POOL/imgadm-partial itself stays)
    problems += ['left: %s' % n for n in names if n.endswith('-partial') and n != '%s/imgadm-partial' % pool]
    problems += ['left: %s' % n for n in names if n.startswith('%s/imgadm-partial/' % pool)]
    return problems


def check_deleted(pool, db, uuids):
    names = pool_names(pool)
    problems = ['left: %s' % n for n in sorted(names) if any(u in n for u in uuids)]
    problems += ['record left: %s' % f for f in os.listdir(os.path.join(db, 'images'))
                 if any(u in f for u in uuids)] if os.path.isdir(os.path.join(db, 'images')) else []
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--rounds', type=int, default=int(os.environ.get('STRESS_ROUNDS', '300')))
    ap.add_argument('--deadline', type=float, default=180.0, help='seconds per round (import + delete)')
    ap.add_argument('--size-mib', type=float, default=6.0)
    ap.add_argument('--concurrency', type=int, default=3)
    ap.add_argument('--no-stage', action='store_true', help='use the collection already staged')
    ap.add_argument('--keep-going-after-hang', action='store_true')
    ap.add_argument('--workdir', default='/var/tmp/smartos-imgadm-stress')
    a = ap.parse_args()

    env_w = world_env()
    pool = env_w['IMGADM_TEST_POOL']
    build_root = os.environ.get('IMGADM_BUILD_ROOT', '/var/tmp/smartos-imgadm-build')
    if not a.no_stage:
        sh(['bash', os.path.join(TOP, 'tests', 'bin', 'stage.sh')])
    if not os.path.isdir(os.path.join(build_root, 'ansible_collections', 'smartos', 'imgadm')):
        sys.exit('no staged collection under %s' % build_root)

    work = a.workdir
    state_file = os.path.join(os.path.dirname(work.rstrip('/')), os.path.basename(work.rstrip('/')) + '.uuids.json')
    if os.path.exists(state_file):  # what an interrupted earlier run left
        with open(state_file) as f:
            old = json.load(f)
        try:
            clean_pool(pool, os.path.join(work, 'db'), old)
        except RuntimeError as e:
            sys.exit('cannot remove what an earlier run left: %s' % e)
        remove_images(env_w, old)
        os.unlink(state_file)
    shutil.rmtree(work, ignore_errors=True)
    db, locks = os.path.join(work, 'db'), os.path.join(work, 'locks')
    for d in (db, locks):
        os.makedirs(d)

    env = dict(os.environ, PYTHONPATH=build_root, SMARTOS_FAKE_STATE=env_w['SMARTOS_FAKE_STATE'],
               PATH=FAKES_BIN + ':' + os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin'))
    common = dict(pool=pool, sources=[env_w['IMGADM_TEST_URL']], imgadm_dir=db, lock_dir=locks,
                  sysinfo_path=os.path.join(FAKES_BIN, 'sysinfo'), zoneadm_path=os.path.join(FAKES_BIN, 'zoneadm'))

    t = time.time()
    uuids = build_images(env_w, os.path.join(work, 'out'), a.size_mib, state_file)
    log('built 5 images (%.1f s): %s' % (time.time() - t, ' '.join(uuids)))

    ok = failed = hung = 0
    try:
        for n in range(1, a.rounds + 1):
            start = time.time()
            deadline = start + a.deadline
            problems = []
            try:
                r = run_module(dict(common, uuids=uuids, concurrency=a.concurrency), env, deadline, work, 'import')
                t_import = time.time() - start
                if r.get('failed'):
                    problems.append('import failed: %s' % r.get('msg'))
                else:
                    problems += check_installed(pool, db, uuids)
                    if sorted(i['uuid'] for i in r.get('imported', [])) != sorted(uuids):
                        problems.append('imported: %s' % [i.get('uuid') for i in r.get('imported', [])])
                t = time.time()
                r = run_module(dict(common, uuids=uuids, state='absent'), env, deadline, work, 'delete')
                t_delete = time.time() - t
                if r.get('failed'):
                    problems.append('delete failed: %s' % r.get('msg'))
                else:
                    problems += check_deleted(pool, db, uuids)
            except Hang as e:
                hung += 1
                log('round %d/%d: HUNG after %.1f s: %s' % (n, a.rounds, time.time() - start, e))
                try:
                    clean_pool(pool, db, uuids)
                except RuntimeError as e2:
                    log('  cannot clean up after the hang (%s); stopping' % e2)
                    break
                if not a.keep_going_after_hang:
                    log('  stopping (--keep-going-after-hang to go on)')
                    break
                continue
            if problems:
                failed += 1
                log('round %d/%d: FAILED (%.1f s): %s' % (n, a.rounds, time.time() - start, '; '.join(problems)))
                clean_pool(pool, db, uuids)
            else:
                ok += 1
                log('round %d/%d: ok %.1f s (import %.1f s, delete %.1f s)'
                    % (n, a.rounds, time.time() - start, t_import, t_delete))
    except KeyboardInterrupt:
        log('interrupted')
    finally:
        try:
            clean_pool(pool, db, uuids)
            remove_images(env_w, uuids)
            os.unlink(state_file)
            shutil.rmtree(work, ignore_errors=True)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            log('cleanup incomplete (%s); %s keeps the uuids for the next run' % (e, state_file))
    log('rounds: %d ok, %d failed, %d hung' % (ok, failed, hung))
    return 0 if ok == a.rounds and not failed and not hung else 1


if __name__ == '__main__':
    sys.exit(main())

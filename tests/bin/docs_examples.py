#!/usr/bin/env python
"""Check that the EXAMPLES of every module and lookup of the staged collection are runnable plays.

    tests/bin/docs_examples.py COLLECTION_DIR [--workdir DIR] [--timeout S] [--rst DIR]

COLLECTION_DIR is the staged collection (.../ansible_collections/smartos/imgadm); its
ansible_collections root must be on ANSIBLE_COLLECTIONS_PATH, and ansible-playbook and
ansible-doc on PATH (tests/bin/docs.sh sets both). For each plugin:

1. EXAMPLES is read from the file (the literal string, without importing the plugin) and
   must be YAML holding a list of tasks (mappings).
2. The tasks are written as one play (hosts: localhost, gather_facts: false) to
   WORKDIR/examples-<plugin>.yml and `ansible-playbook --syntax-check` must accept it.
3. Every task that calls a module of this collection is checked against that module's
   documented options (ansible-doc --json, which the sanity test validate-modules keeps
   equal to the argument spec): no unknown option (aliases count), and a literal value of
   an option with choices is one of them. Templated values ("{{ ... }}") are not checked.

With --rst DIR, the YAML code blocks (``.. code-block:: yaml`` or ``yaml+jinja``) of the
guides there (docs/docsite/rst) get the same checks: a block that holds a list of plays is
checked as it is, a list of tasks as one play; a mapping (variables, an inventory) only
has to be YAML. Tasks of other collections' modules (the "before" side of the migration
guide, also in module_defaults) are left out of the syntax check, which cannot resolve
them.

Every failure names the plugin or guide (and the task); the exit status is 1 if any failed, 0 if
none. Every command runs under a deadline (--timeout, default 120 s).
"""
import argparse
import ast
import json
import os
import subprocess
import sys

import yaml

NAMESPACE = 'smartos.imgadm'
TASK_KEYWORDS = {
    'name', 'register', 'check_mode', 'diff', 'when', 'loop', 'loop_control', 'with_items', 'vars',
    'environment', 'delegate_to', 'run_once', 'become', 'become_user', 'tags', 'notify', 'changed_when',
    'failed_when', 'ignore_errors', 'no_log', 'until', 'retries', 'delay', 'module_defaults', 'args',
    'async', 'poll', 'throttle', 'timeout', 'any_errors_fatal', 'collections', 'debugger', 'listen',
}


def read_examples(path):
    """The EXAMPLES string of a plugin file, or None."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == 'EXAMPLES' for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    return None


def run(cmd, timeout, env=None):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return 124, '', 'timed out after %s s: %s' % (timeout, ' '.join(cmd))
    return p.returncode, p.stdout, p.stderr


def templated(value):
    return isinstance(value, str) and ('{{' in value or '{%' in value)


def check_task_options(task, docs):
    """Problems of one task calling a module of this collection, as strings."""
    problems = []
    for key, args in task.items():
        fqcn = key if key.startswith(NAMESPACE + '.') else None
        if fqcn is None or fqcn not in docs:
            continue
        if args is None:
            args = {}
        if not isinstance(args, dict):
            problems.append('%s: arguments are not a mapping' % fqcn)
            continue
        options = docs[fqcn]
        names = {}
        for opt, spec in options.items():
            names[opt] = opt
            for alias in spec.get('aliases') or []:
                names[alias] = opt
        for arg, value in args.items():
            if arg not in names:
                problems.append('%s: unknown option %r' % (fqcn, arg))
                continue
            spec = options[names[arg]]
            choices = spec.get('choices')
            if choices and value is not None and not templated(value):
                values = value if isinstance(value, list) else [value]
                bad = [v for v in values if not templated(v) and v not in choices]
                if bad:
                    problems.append('%s: option %r: %r is not one of %s' % (fqcn, arg, bad, choices))
    return problems


def rst_yaml_blocks(path):
    """(line number, text) of each YAML code block of an RST file."""
    lines = open(path, encoding='utf-8').read().split('\n')
    blocks = []
    i = 0
    while i < len(lines):
        head = lines[i].strip()
        if head in ('.. code-block:: yaml', '.. code-block:: yaml+jinja'):
            start = i + 1
            j = start
            while j < len(lines) and (lines[j].startswith(' ') and lines[j].lstrip().startswith(':')):
                j += 1  # directive options
            body = []
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith(' ')):
                body.append(lines[j])
                j += 1
            while body and not body[-1].strip():
                body.pop()
            indent = min((len(x) - len(x.lstrip()) for x in body if x.strip()), default=0)
            blocks.append((start + 1, '\n'.join(x[indent:] for x in body) + '\n'))
            i = j
        else:
            i += 1
    return blocks


def own_tasks_only(tasks):
    """The tasks without those that call another collection's module (not resolvable here)."""
    keep = []
    for t in tasks:
        if any(isinstance(k, str) and k.startswith('community.') for k in t):
            continue
        keep.append(t)
    return keep


def check_rst(rst_dir, docs, workdir, timeout):
    """Failures (strings) of the YAML code blocks of the guides."""
    failed = []
    for fn in sorted(os.listdir(rst_dir)):
        if not fn.endswith('.rst'):
            continue
        path = os.path.join(rst_dir, fn)
        for n, (line, text) in enumerate(rst_yaml_blocks(path), 1):
            label = 'guide %s, code block at line %d' % (fn, line)
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                failed.append('%s: not valid YAML: %s' % (label, e))
                continue
            if not isinstance(data, list):
                continue  # variables, an inventory
            if not all(isinstance(t, dict) for t in data):
                failed.append('%s: a list of something else than tasks or plays' % label)
                continue
            if any('hosts' in t for t in data):
                plays = data
                for play in plays:
                    if isinstance(play.get('module_defaults'), dict):
                        play['module_defaults'] = {k: v for k, v in play['module_defaults'].items()
                                                   if not k.startswith('community.')}
                    for section in ('pre_tasks', 'tasks', 'post_tasks'):
                        if play.get(section):
                            play[section] = own_tasks_only(play[section])
            else:
                tasks = own_tasks_only(data)
                if not tasks:
                    continue
                plays = [{'name': label, 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]
            problems = []
            for play in plays:
                for section in ('pre_tasks', 'tasks', 'post_tasks'):
                    for task in play.get(section) or []:
                        problems.extend(check_task_options(task, docs))
            pb = os.path.join(workdir, 'guide-%s-%d.yml' % (fn[:-4], n))
            with open(pb, 'w', encoding='utf-8') as f:
                f.write('---\n')
                yaml.safe_dump(plays, f, sort_keys=False, default_flow_style=False, width=1000)
            rc, out, err = run(['ansible-playbook', '--syntax-check', '-i', 'localhost,', pb], timeout)
            if rc != 0:
                problems.append('ansible-playbook --syntax-check %s failed (rc %d): %s' % (pb, rc, (err or out).strip()))
            if problems:
                failed.extend('%s: %s' % (label, p) for p in problems)
                print('docs_examples: FAIL %s' % label)
            else:
                print('docs_examples: ok   %s (%s)' % (label, pb))
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('collection')
    ap.add_argument('--workdir', default=None)
    ap.add_argument('--timeout', type=float, default=120)
    ap.add_argument('--rst', default=None, help='also check the YAML code blocks of the guides in this directory')
    args = ap.parse_args()

    coll = os.path.abspath(args.collection)
    workdir = args.workdir or os.path.join(os.path.dirname(coll), '..', '..', 'docs-examples')
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)

    plugins = []  # (kind, name, path)
    for kind, sub in (('module', 'modules'), ('lookup', 'lookup')):
        d = os.path.join(coll, 'plugins', sub)
        if not os.path.isdir(d):
            continue
        for fn in sorted(os.listdir(d)):
            if fn.endswith('.py') and not fn.startswith('_'):
                plugins.append((kind, fn[:-3], os.path.join(d, fn)))
    if not plugins:
        print('docs_examples: no plugins under %s' % coll, file=sys.stderr)
        return 1

    modules = ['%s.%s' % (NAMESPACE, p[1]) for p in plugins if p[0] == 'module']
    rc, out, err = run(['ansible-doc', '--json', '-t', 'module'] + modules, args.timeout)
    if rc != 0:
        print('docs_examples: ansible-doc failed (rc %d): %s' % (rc, err.strip()), file=sys.stderr)
        return 1
    docs = {m: (v.get('doc') or {}).get('options') or {} for m, v in json.loads(out).items()}

    failed = []
    for kind, name, path in plugins:
        label = '%s %s.%s' % (kind, NAMESPACE, name)
        text = read_examples(path)
        if not text or not text.strip():
            failed.append('%s: no EXAMPLES' % label)
            continue
        try:
            tasks = yaml.safe_load(text)
        except yaml.YAMLError as e:
            failed.append('%s: EXAMPLES is not valid YAML: %s' % (label, e))
            continue
        if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
            failed.append('%s: EXAMPLES is not a list of tasks' % label)
            continue
        problems = []
        for i, task in enumerate(tasks, 1):
            for p in check_task_options(task, docs):
                problems.append('task %d (%s): %s' % (i, task.get('name', 'unnamed'), p))
        play = [{'name': 'EXAMPLES of %s' % label, 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]
        pb = os.path.join(workdir, 'examples-%s-%s.yml' % (kind, name))
        with open(pb, 'w', encoding='utf-8') as f:
            f.write('---\n')
            yaml.safe_dump(play, f, sort_keys=False, default_flow_style=False, width=1000)
        rc, out, err = run(['ansible-playbook', '--syntax-check', '-i', 'localhost,', pb], args.timeout)
        if rc != 0:
            problems.append('ansible-playbook --syntax-check %s failed (rc %d): %s' % (pb, rc, (err or out).strip()))
        elif '[WARNING]' in err or '[DEPRECATION WARNING]' in err:
            problems.append('ansible-playbook --syntax-check %s warned: %s' % (pb, err.strip()))
        if problems:
            failed.extend('%s: %s' % (label, p) for p in problems)
            print('docs_examples: FAIL %s (%d tasks)' % (label, len(tasks)))
        else:
            print('docs_examples: ok   %s (%d tasks, %s)' % (label, len(tasks), pb))
    if args.rst:
        failed.extend(check_rst(args.rst, docs, workdir, args.timeout))
    for f in failed:
        print('docs_examples: %s' % f, file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

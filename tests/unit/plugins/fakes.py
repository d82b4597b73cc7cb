# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the unit tests stand on instead of Ansible, an API server or a cloud.

run_module() runs a module's main() as Ansible would and returns how it ended;
run_kube_module() and run_openstack_module() do so with FakeKube or an
in-memory connection in place of the real client. FakeKube is Kube's interface
over dicts; Clock is a clock whose sleeps only move it on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import copy
import json
from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpcops.coe.plugins.module_utils import kube, kube_module


class ModuleExit(Exception):
    """How a module run ended: its result and whether it failed."""

    def __init__(self, result, failed):
        super(ModuleExit, self).__init__(json.dumps(result, default=str)[:2000])
        self.result = result
        self.failed = failed


def exit_json(self, **kwargs):
    raise ModuleExit(kwargs, False)


def fail_json(self, msg=None, **kwargs):
    kwargs['msg'] = msg
    raise ModuleExit(kwargs, True)


def run_module(main, args, check=False, diff=False, patches=()):
    """Run main() with `args` as the task's arguments (in check or diff mode when asked), with the
    mock.patch context managers `patches` applied; returns the ModuleExit it ended in."""
    if check:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    with contextlib.ExitStack() as stack:
        stack.enter_context(patch_module_args(args))
        stack.enter_context(mock.patch.object(basic.AnsibleModule, 'exit_json', exit_json))
        stack.enter_context(mock.patch.object(basic.AnsibleModule, 'fail_json', fail_json))
        for patch in patches:
            stack.enter_context(patch)
        with pytest.raises(ModuleExit) as exited:
            main()
    return exited.value


def run_kube_module(main, fake, args, check=False, diff=False):
    """run_module() for a module over CoeKubeModule, with `fake` (a FakeKube) as its client."""
    def factory(module):
        fake.module, fake.params, fake.check_mode = module, module.params, module.check_mode
        return fake

    return run_module(main, args, check=check, diff=diff, patches=[mock.patch.object(kube_module, 'Kube', factory)])


def run_openstack_module(main, conn, args, check=False, diff=False):
    """run_module() for a module over openstack.cloud's OpenStackModule, with `conn` in place of
    openstacksdk's connection."""
    from ansible_collections.openstack.cloud.plugins.module_utils.openstack import OpenStackModule

    args.setdefault('cloud', 'sim')
    return run_module(main, args, check=check, diff=diff, patches=[mock.patch.object(
        OpenStackModule, 'openstack_cloud_from_module', return_value=(mock.MagicMock(), conn))])


class Clock(object):
    """A clock to call for the time, whose sleep() is recorded and moves it on."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


class FakeKube(object):
    """Kube's interface over dicts: objects keyed by (apiVersion, kind, namespace, name)."""

    served_kinds = None  # None: everything is served

    def __init__(self, module=None, nodes=None, objects=None, check_mode=False, on_apply=None):
        self.module = module
        self.params = module.params if module else {}
        self.check_mode = module.check_mode if module else check_mode
        self.nodes_list = nodes or []
        self.objects = objects if objects is not None else {}
        self.applied = []
        self.deleted = []
        self.deleted_collections = []
        self.created = []
        self.warnings = []
        self.on_apply = on_apply
        self.wait_calls = []
        self.logs = {}
        self.log_reads = []

    def served(self, api_version, kind):
        return self.served_kinds is None or (api_version, kind) in self.served_kinds

    def get(self, api_version, kind, name, namespace=None):
        obj = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(obj)

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        out = []
        for (av, k, ns, _name), obj in sorted(self.objects.items(), key=lambda kv: str(kv[0])):
            if (av, k) == (api_version, kind) and (namespace is None or ns == namespace):
                labels = obj.get('metadata', {}).get('labels') or {}
                if label_selector:
                    key, value = label_selector.partition('=')[::2]
                    if labels.get(key) != value:
                        continue
                out.append(copy.deepcopy(obj))
        return out

    def nodes(self):
        return copy.deepcopy(self.nodes_list)

    def apply(self, definition, force=None):
        meta = definition['metadata']
        key = (definition['apiVersion'], definition['kind'], meta.get('namespace'), meta['name'])
        before = self.objects.get(key)
        after = copy.deepcopy(definition)
        if before and 'status' in before:
            after['status'] = copy.deepcopy(before['status'])
        self.applied.append(copy.deepcopy(definition))
        if not self.check_mode:
            self.objects[key] = after
            if self.on_apply:
                self.on_apply(self, after)
        left, right = kube.strip_server_fields(before), kube.strip_server_fields(after)
        return {'changed': left != right, 'before': before, 'after': after, 'diff': {'before': left, 'after': right}}

    def delete(self, api_version, kind, name, namespace=None):
        key = (api_version, kind, namespace, name)
        if key not in self.objects:
            return False
        self.deleted.append(key)
        if not self.check_mode:
            del self.objects[key]
        return True

    def delete_collection(self, api_version, kind, namespace, label_selector):
        self.deleted_collections.append((api_version, kind, namespace, label_selector))
        if self.check_mode:
            return False
        for obj in self.list(api_version, kind, namespace, label_selector=label_selector):
            del self.objects[(api_version, kind, namespace, obj['metadata']['name'])]
        return True

    def create(self, definition):
        meta = definition['metadata']
        self.created.append(copy.deepcopy(definition))
        obj = copy.deepcopy(definition)
        obj['metadata']['uid'] = 'uid-%d' % len(self.created)
        self.objects[(definition['apiVersion'], definition['kind'], meta.get('namespace'), meta['name'])] = obj
        if self.on_apply:
            self.on_apply(self, obj)
        return obj

    def wait(self, what, fetch, is_done, timeout=None, sleep=None, is_failed=None):
        self.wait_calls.append(what)
        value = fetch()
        if is_done(value):
            return True, value, 0.0
        return False, value, float(timeout if timeout is not None else self.params.get('wait_timeout', 0))

    def pod_log(self, namespace, name, tail_lines=20):
        self.log_reads.append((namespace, name))
        return self.logs.get((namespace, name), '')

    def events_for(self, obj):
        return []

    def fail(self, msg, **kwargs):
        if self.warnings:
            kwargs.setdefault('warnings', []).extend(self.warnings)
        self.module.fail_json(msg=msg, **kwargs)

    def exit(self, **kwargs):
        self.module.exit_json(**kwargs)


def node(name, kernel='5.14.0-427.13.1.el9_4.x86_64', labels=None, allocatable=None, taints=None,
         annotations=None):
    return {'apiVersion': 'v1', 'kind': 'Node',
            'metadata': {'name': name, 'labels': dict(labels or {}), 'annotations': dict(annotations or {})},
            'spec': {'taints': taints} if taints else {},
            'status': {'nodeInfo': {'kernelVersion': kernel}, 'allocatable': dict(allocatable or {})}}

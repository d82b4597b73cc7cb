# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared Kubernetes helpers, and FakeKube: an in-memory stand-in for Kube
used by the module tests (no API server, no kubeconfig)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

import pytest

from ansible_collections.hpcops.coe.plugins.module_utils import kube


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


@pytest.mark.parametrize('key, ok', [
    ('pci-10de.present', True),
    ('feature.node.kubernetes.io/pci-10de.present', True),
    ('example.org/gpu', True),
    ('Example.org/gpu', False),
    ('', False),
    ('a/' + 'x' * 64, False),
    ('bad key', False),
])
def test_label_key_problem(key, ok):
    assert (kube.label_key_problem(key) is None) == ok


@pytest.mark.parametrize('value, ok', [('true', True), ('', True), (True, False), ('x' * 64, False),
                                       ('-bad', False)])
def test_label_value_problem(value, ok):
    assert (kube.label_value_problem(value) is None) == ok


def test_name_problem_distinguishes_labels_and_subdomains():
    assert kube.name_problem('a.b') is None
    assert 'namespace' in kube.name_problem('a.b', 'namespace', label=True)
    assert kube.name_problem('UPPER') is not None


def test_strip_server_fields_ignores_what_the_server_writes():
    obj = {'apiVersion': 'v1', 'kind': 'ConfigMap',
           'metadata': {'name': 'x', 'uid': 'u', 'resourceVersion': '7', 'generation': 2, 'managedFields': [{}],
                        'creationTimestamp': 't',
                        'annotations': {'kubectl.kubernetes.io/last-applied-configuration': '{}'}},
           'data': {'a': '1'}, 'status': {'x': 1}}
    assert kube.strip_server_fields(obj) == {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'x'},
                                             'data': {'a': '1'}}
    assert kube.strip_server_fields(None) == {}
    assert kube.strip_server_fields(obj, keep_status=True)['status'] == {'x': 1}


def test_selector_matches_needs_every_label():
    assert kube.selector_matches({'a': '1', 'b': '2'}, {'a': '1'})
    assert not kube.selector_matches({'a': '1'}, {'a': '1', 'b': '2'})
    assert kube.selector_matches(None, {})


@pytest.mark.parametrize('status, expected', [
    ({'phase': 'Pending', 'conditions': [
        {'type': 'PodScheduled', 'status': 'False',
         'message': '0/3 nodes are available: 3 Insufficient nvidia.com/gpu.'}]},
     'not scheduled: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.'),
    ({'phase': 'Pending', 'containerStatuses': [{'name': 'c', 'state': {'waiting': {
        'reason': 'ImagePullBackOff', 'message': 'Back-off pulling image "x"'}}}]},
     'ImagePullBackOff: Back-off pulling image "x"'),
    ({'phase': 'Failed', 'containerStatuses': [{'name': 'c', 'state': {'terminated': {
        'exitCode': 1, 'reason': 'Error', 'message': 'boom'}}}]},
     'container c exited with 1 (Error): boom'),
    ({'phase': 'Running', 'containerStatuses': [{'name': 'c', 'state': {'running': {}}}]}, None),
])
def test_container_problem(status, expected):
    assert kube.container_problem({'status': status}) == expected


class _ApiError(Exception):
    def __init__(self, status, body, reason=None):
        super(_ApiError, self).__init__('HTTP %s' % status)
        self.status = status
        self.body = body
        self.reason = reason


def test_explain_forbidden_names_the_action_and_rbac():
    body = json.dumps({'kind': 'Status', 'message': 'daemonsets.apps "x" is forbidden: User "u" cannot patch',
                       'reason': 'Forbidden', 'code': 403})
    err = kube.Kube.explain(_ApiError(403, body), 'Applying DaemonSet ns/x')
    assert str(err).startswith('Applying DaemonSet ns/x failed: daemonsets.apps "x" is forbidden')
    assert 'RBAC permission' in str(err) and err.status == 403 and err.reason == 'Forbidden'


def test_explain_apply_conflict_suggests_force():
    body = json.dumps({'kind': 'Status', 'message': 'Apply failed with 1 conflict: conflict with "kubectl"',
                       'reason': 'Conflict', 'code': 409})
    err = kube.Kube.explain(_ApiError(409, body), 'Applying Module ns/m')
    assert 'force_conflicts=true' in str(err)


def test_explain_without_body():
    err = kube.Kube.explain(_ApiError(500, None, reason='Internal'), 'Listing Node')
    assert 'Listing Node failed' in str(err) and 'HTTP 500' in str(err)


def test_argument_spec_merges_auth_and_common_options():
    spec = kube.argument_spec(name=dict(type='str', required=True))
    assert spec['name']['required'] and spec['field_manager']['default'] == 'hpcops.coe'
    assert 'kubeconfig' in spec and spec['wait_sleep']['type'] == 'float'


def test_wait_ends_without_raising_when_is_failed_holds():
    client = object.__new__(kube.Kube)  # no API client needed: wait() only polls the callables it is given
    client.params = {'wait_timeout': 30, 'wait_sleep': 0.01}
    values = iter(['starting', 'broken', 'never read'])
    done, last, waited = client.wait('the thing', lambda: next(values), lambda v: v == 'ready',
                                     is_failed=lambda v: v == 'broken')
    assert (done, last) == (False, 'broken') and waited < 30

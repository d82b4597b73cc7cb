# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared Kubernetes helpers of module_utils/kube.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.hpcops.coe.plugins.module_utils import kube


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

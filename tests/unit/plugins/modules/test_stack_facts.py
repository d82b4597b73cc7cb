# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.stack_facts as Ansible runs it, on the in-memory cloud of the node discovery tests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hpcops.coe.plugins.modules import stack_facts
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import (
    FakeCloud,
    module_failed,
    module_ok,
)


# Reads retry transient errors with real sleeps; the errors these tests inject need no waiting.
pytestmark = pytest.mark.usefixtures('no_retry_waits')


def ok(conn, **args):
    return module_ok(stack_facts.main, conn, **args)


def failed(conn, **args):
    return module_failed(stack_facts.main, conn, **args)


@pytest.fixture
def cloud():
    conn = FakeCloud()
    conn.heat = conn.add_heat_cluster('heat-a', 'heat-a-abcdefghijkl', masters=1, workers=2, extra_ngs={'gpu': 1})
    conn.capi = conn.add_capi_cluster('capi-b', 'kube-b1c2d')
    return conn


def test_stack_of_a_cluster_with_nested_servers(cloud):
    result = ok(cloud, cluster='heat-a', nested_depth=2, resource_types=['OS::Nova::Server'])
    assert result['stack']['id'] == cloud.heat['stack_id']
    assert result['stack']['outputs'] == {'api_address': '10.0.0.2'}
    assert result['cluster']['driver'] == 'heat'
    assert sorted(r['name'] for r in result['resources']) == ['kube-master', 'kube-minion', 'kube-minion']
    assert all(r['physical_id'] for r in result['resources'])
    assert result['ansible_facts']['coe_stack']['resources'] == result['resources']
    resources_call = [c for c in cloud.calls if c[1].endswith('/resources')][0]
    assert resources_call[2]['nested_depth'] == 2


def test_any_stack_by_name_without_nesting_filtered_by_name(cloud):
    name = cloud.stacks[cloud.heat['stack_id']]['stack_name']
    result = ok(cloud, stack=name, resource_names=['kube_masters'])
    assert [r['name'] for r in result['resources']] == ['kube_masters']
    assert 'cluster' not in result
    assert not any(c[0] == 'container-infra' for c in cloud.calls)


def test_nodegroup_stack(cloud):
    result = ok(cloud, cluster='heat-a', nodegroup='gpu', nested_depth=2, resource_types=['OS::Nova::Server'])
    assert result['stack']['name'].startswith('heat-a-gpu-')
    assert [r['name'] for r in result['resources']] == ['kube-minion']


def test_unknown_nodegroup_names_the_valid_ones(cloud):
    result = failed(cloud, cluster='heat-a', nodegroup='nope')
    assert "nodegroup 'nope'" in result['msg']
    assert 'default-master, default-worker, gpu' in result['msg']


def test_capi_cluster_has_no_stack(cloud):
    result = ok(cloud, cluster='capi-b')
    assert result['stack'] is None and result['resources'] == []
    assert result['cluster']['driver'] == 'capi' and result['cluster']['stack_id'] == 'kube-b1c2d'
    assert not any(c[0] == 'orchestration' for c in cloud.calls)


def test_missing_stack_is_null(cloud):
    result = ok(cloud, stack='no-such-stack')
    assert result['stack'] is None and result['ansible_facts'] == {'coe_stack': None}


def test_without_resources_or_outputs(cloud):
    result = ok(cloud, cluster='heat-a', resources=False, resolve_outputs=False)
    assert result['resources'] == [] and result['stack']['outputs'] == {}
    assert result['stack']['output_errors'] == {}
    # Heat is asked not to resolve the outputs (they can be slow), and its answer then has none.
    show = [c for c in cloud.calls if c[0] == 'orchestration' and c[1].count('/') == 2]
    assert [c[2].get('resolve_outputs') for c in show] == ['false']
    assert not any(c[1].endswith('/resources') for c in cloud.calls)


def test_unknown_cluster_lists_the_existing_ones(cloud):
    result = failed(cloud, cluster='nope')
    assert "cluster 'nope' does not exist" in result['msg']
    assert 'capi-b, heat-a' in result['msg']


def test_negative_depth_is_refused(cloud):
    assert 'nested_depth must be 0 or more' in failed(cloud, stack='x', nested_depth=-1)['msg']


def test_stack_and_cluster_are_exclusive(cloud):
    assert 'mutually exclusive' in failed(cloud, stack='x', cluster='heat-a')['msg']
    assert 'one of the following is required' in failed(cloud)['msg']


def test_api_error_is_reported_with_what_was_done(cloud):
    cloud.faults[('orchestration', '/stacks/boom')] = (500, {'error': {'message': 'engine down'}})
    msg = failed(cloud, stack='boom')['msg']
    assert "read stack 'boom'" in msg and 'engine down' in msg and '500' in msg


def test_check_mode_reads_all_the_same(cloud):
    result = ok(cloud, cluster='heat-a', _ansible_check_mode=True)
    assert result['stack']['id'] == cloud.heat['stack_id']

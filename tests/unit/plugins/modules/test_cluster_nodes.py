# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.cluster_nodes as Ansible runs it, on the in-memory cloud of the node discovery tests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hpcops.coe.plugins.modules import cluster_nodes
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import (
    FakeCloud,
    module_failed,
    module_ok,
)


# Reads retry transient errors with real sleeps; the errors these tests inject need no waiting.
pytestmark = pytest.mark.usefixtures('no_retry_waits')


def ok(conn, **args):
    return module_ok(cluster_nodes.main, conn, **args)


def failed(conn, **args):
    return module_failed(cluster_nodes.main, conn, **args)


@pytest.fixture
def cloud():
    conn = FakeCloud()
    conn.heat = conn.add_heat_cluster('heat-a', 'heat-a-abcdefghijkl', masters=1, workers=2, extra_ngs={'gpu': 1})
    conn.capi = conn.add_capi_cluster('capi-b', 'kube-b1c2d', workers={'default-worker': 2, 'gpu-a100': 1})
    conn.add_server('kube-b1c2dd-default-worker-aaaaa-bbbbb')
    return conn


def test_heat_cluster_nodes(cloud):
    result = ok(cloud, cluster='heat-a')
    assert result['cluster']['driver'] == 'heat' and result['cluster']['id'] == cloud.heat['uuid']
    assert result['nodegroups'] == ['default-master', 'default-worker', 'gpu']
    assert [(n['role'], n['nodegroup']) for n in result['nodes']] == [
        ('master', 'default-master'), ('worker', 'default-worker'), ('worker', 'default-worker'), ('worker', 'gpu')]
    node = result['nodes'][1]
    assert node['addresses']['cluster-net']['fixed'] and node['addresses']['cluster-net']['floating']
    assert set(node) >= {'name', 'id', 'role', 'nodegroup', 'status', 'addresses', 'flavor', 'driver'}


def test_capi_cluster_by_uuid_filtered_by_role_and_nodegroup(cloud):
    result = ok(cloud, cluster=cloud.capi['uuid'], roles=['worker'], nodegroups=['gpu-a100'])
    assert [(n['role'], n['nodegroup'], n['driver']) for n in result['nodes']] == [('worker', 'gpu-a100', 'capi')]
    assert all(not n['name'].startswith('kube-b1c2dd') for n in ok(cloud, cluster='capi-b')['nodes'])


def test_masters_only(cloud):
    result = ok(cloud, cluster='capi-b', roles=['master'])
    assert [n['name'] for n in result['nodes']] == ['kube-b1c2d-control-plane-00000-x0']


def test_unknown_nodegroup_names_the_valid_ones(cloud):
    msg = failed(cloud, cluster='capi-b', nodegroups=['gpu', 'gpu-a100'])['msg']
    assert 'nodegroups gpu do not exist' in msg and 'default-master, default-worker, gpu-a100' in msg


def test_unknown_role_is_refused_with_the_choices(cloud):
    msg = failed(cloud, cluster='capi-b', roles=['boss'])['msg']
    assert 'roles' in msg and 'master' in msg and 'worker' in msg


def test_unknown_cluster_lists_the_existing_ones(cloud):
    msg = failed(cloud, cluster='nope')['msg']
    assert "cluster 'nope' does not exist" in msg and 'capi-b, heat-a' in msg


def test_cluster_in_progress_gives_what_exists(cloud):
    cloud.add_heat_cluster('new', 'new-aaaaaaaaaaaa', workers=1, unbuilt_workers=1, status='CREATE_IN_PROGRESS')
    result = ok(cloud, cluster='new')
    assert result['cluster']['status'] == 'CREATE_IN_PROGRESS'
    assert len(result['nodes']) == 2


def test_servers_are_listed_in_one_request(cloud):
    ok(cloud, cluster='capi-b')
    assert cloud.count('compute') == 1


def test_api_error_is_reported_with_the_cluster(cloud):
    cloud.faults[('compute', '/servers/detail')] = (503, {'computeFault': {'message': 'nova down'}})
    msg = failed(cloud, cluster='capi-b')['msg']
    assert "cluster 'capi-b'" in msg and 'nova down' in msg

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

import pytest

from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils import discovery
from ansible_collections.hpcops.coe.plugins.module_utils.rest import ApiError
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import FakeCloud, make_server


# Reads retry transient errors with real sleeps; the errors these tests inject need no waiting.
pytestmark = pytest.mark.usefixtures('no_retry_waits')


def names(found):
    return sorted(n['name'] for n in found)


# ---------------------------------------------------------------------------
# Name regexes


def test_prefix_regex_is_anchored_by_the_dash():
    regex = discovery.name_prefix_regex(['kube-abcde'])
    assert re.search(regex, 'kube-abcde-control-plane-x-y')
    assert not re.search(regex, 'kube-abcdef-control-plane-x-y')
    assert not re.search(regex, 'kube-abcde')
    assert not re.search(regex, 'old-kube-abcde-node')


def test_prefix_regex_escapes_metacharacters_but_not_dashes():
    assert discovery.regex_escape('k8s.hpc-1(x)') == 'k8s\\.hpc-1\\(x\\)'
    regex = discovery.name_prefix_regex(['k8s.hpc'])
    assert re.search(regex, 'k8s.hpc-node-0')
    assert not re.search(regex, 'k8sXhpc-node-0')


def test_prefix_regex_alternation_and_chunks():
    regex = discovery.name_prefix_regex(['b-1', 'a-2'])
    assert regex == '^(a-2|b-1)-'
    assert re.search(regex, 'b-1-x') and re.search(regex, 'a-2-x') and not re.search(regex, 'c-3-x')
    chunks = discovery.prefix_regexes(['p%02d' % i for i in range(10)], max_length=20)
    assert len(chunks) > 1
    covered = [n for n in ('p%02d-x' % i for i in range(10)) if any(re.search(c, n) for c in chunks)]
    assert len(covered) == 10
    assert all(len(c) <= 30 for c in chunks)
    with pytest.raises(ValueError):
        discovery.name_prefix_regex([])


def test_owning_prefix_prefers_the_longest():
    prefixes = sorted(['app', 'app-gpu'], key=len, reverse=True)
    assert discovery.owning_prefix('app-gpu-default-worker-a-b', prefixes) == 'app-gpu'
    assert discovery.owning_prefix('app-default-worker-a-b', prefixes) == 'app'
    assert discovery.owning_prefix('apple-x', prefixes) is None


# ---------------------------------------------------------------------------
# CAPI names


MATCHERS = sorted([('control-plane', 'master', 'default-master'), ('default-worker', 'worker', 'default-worker'),
                   ('gpu', 'worker', 'gpu'), ('gpu-a100', 'worker', 'gpu-a100')], key=lambda m: -len(m[0]))


@pytest.mark.parametrize('name,expected', [
    ('kube-ab12c-control-plane-7xk2p-zq9v', ('master', 'default-master')),
    ('kube-ab12c-default-worker-5d8f9-abcde', ('worker', 'default-worker')),
    ('kube-ab12c-gpu-a100-5d8f9-abcde', ('worker', 'gpu-a100')),
    ('kube-ab12c-gpu-5d8f9-abcde', ('worker', 'gpu')),
    # Magnum's nodegroups are known (MATCHERS) and ib-fast is not one of them: a look-alike, not a worker.
    # Before, any <prefix>-<x>-<a>-<b> was a worker of nodegroup x; that is kept for unknown nodegroups only.
    ('kube-ab12c-ib-fast-5d8f9-abcde', None),
    ('kube-ab12c-bastion-aaaaa-bbbbb', None),
    # The nodegroup part must be a known name, not merely start with one.
    ('kube-ab12c-gpu-spare-5d8f9-abcde', None),
    ('kube-ab12c-default-worker-5d8f9', None),
    ('kube-ab12c-bastion', None),
    ('kube-ab12c-bastion-x', None),
    ('kube-ab12cd-default-worker-5d8f9-abcde', None),
    ('kube-ab12c', None),
])
def test_capi_role(name, expected):
    assert discovery.capi_role(name, 'kube-ab12c', MATCHERS) == expected


def test_capi_unknown_nodegroups_fall_back_to_the_name_less_its_suffixes():
    # Magnum before API 1.9 lists no nodegroups: the name is all there is to go by.
    control_plane_only = [('control-plane', 'master', 'default-master')]
    assert discovery.capi_role('kube-ab12c-ib-fast-5d8f9-abcde', 'kube-ab12c', control_plane_only,
                               nodegroups_known=False) == ('worker', 'ib-fast')
    assert discovery.capi_role('kube-ab12c-control-plane-7xk2p-zq9v', 'kube-ab12c', control_plane_only,
                               nodegroups_known=False) == ('master', 'default-master')
    assert discovery.capi_role('kube-ab12c-bastion-x', 'kube-ab12c', control_plane_only, nodegroups_known=False) is None


def test_capi_look_alikes_are_no_workers_when_magnum_lists_the_nodegroups():
    cloud = FakeCloud()
    cluster = cloud.add_capi_cluster('c', 'kube-ccccc', workers={'default-worker': 1, 'gpu': 1})
    for name in ('kube-ccccc-bastion-aaaaa-bbbbb', 'kube-ccccc-gpu-spare-aaaaa-bbbbb', 'kube-ccccc-ib-fast-aaaaa-bbbbb'):
        cloud.add_server(name)
    found = discovery.discover_cluster_nodes(cloud, cluster)
    assert sorted((n['role'], n['nodegroup']) for n in found) == [
        ('master', 'default-master'), ('worker', 'default-worker'), ('worker', 'gpu')]
    # Without the nodegroup API the same names can only be taken at their word.
    cloud.nodegroup_api = False
    found = discovery.discover_cluster_nodes(cloud, cluster)
    assert 'kube-ccccc-bastion-aaaaa-bbbbb' in names(found)


def test_capi_control_plane_like_nodegroup_names_go_longest_first():
    matchers = sorted([('control-plane', 'master', 'default-master'), ('control', 'worker', 'control'),
                       ('control-plane-gpu', 'worker', 'control-plane-gpu')], key=lambda m: -len(m[0]))
    assert discovery.capi_role('k-control-plane-a-b', 'k', matchers) == ('master', 'default-master')
    assert discovery.capi_role('k-control-a-b', 'k', matchers) == ('worker', 'control')
    assert discovery.capi_role('k-control-plane-gpu-a-b', 'k', matchers) == ('worker', 'control-plane-gpu')


# ---------------------------------------------------------------------------
# Heat resources


def test_heat_roles_from_resource_names_and_owning_groups():
    cloud = FakeCloud()
    # Servers named neither kube-master nor kube-minion: only the owning group tells the role,
    # and the member names ("0") repeat in both groups.
    cluster = cloud.add_heat_cluster('odd', 'odd-aaaaaaaaaaaa', masters=1, workers=2,
                                     server_resources=('server', 'server'))
    stack = cloud.stacks[cluster['stack_id']]
    roles, unknown = discovery.heat_server_roles(cloud.resources[stack['id']])
    assert unknown == 0
    by_name = dict((s['name'], roles[s['id']]) for s in cloud.servers)
    assert by_name == {'odd-aaaaaaaaaaaa-master-0': 'master', 'odd-aaaaaaaaaaaa-node-0': 'worker',
                       'odd-aaaaaaaaaaaa-node-1': 'worker'}


def test_stack_server_roles_reads_the_whole_tree_only_when_names_do_not_tell():
    cloud = FakeCloud()
    plain = cloud.add_heat_cluster('plain', 'plain-aaaaaaaaaaaa')
    odd = cloud.add_heat_cluster('odd', 'odd-aaaaaaaaaaaa', server_resources=('server', 'server'))
    cloud.calls = []
    assert len(discovery.stack_server_roles(cloud, cloud.stacks[plain['stack_id']])) == 3
    assert cloud.count('orchestration') == 1
    assert cloud.calls[0][2]['type'] == ['OS::Nova::Server'] and cloud.calls[0][2]['nested_depth'] == 2
    cloud.calls = []
    assert len(discovery.stack_server_roles(cloud, cloud.stacks[odd['stack_id']])) == 3
    assert cloud.count('orchestration') == 2


# ---------------------------------------------------------------------------
# Servers


def test_server_addresses_split_fixed_and_floating_per_network():
    server = make_server('n', 'id-1', addresses={
        'cluster-net': [('10.0.0.5', 'fixed'), ('172.24.4.9', 'floating')],
        'ib-net': [('192.168.100.5', 'fixed'), ('fd00::5', 'fixed')]})
    assert discovery.server_addresses(server) == {
        'cluster-net': {'fixed': ['10.0.0.5'], 'floating': ['172.24.4.9'], 'mac': 'fa:16:3e:id-1'},
        'ib-net': {'fixed': ['192.168.100.5', 'fd00::5'], 'floating': [], 'mac': 'fa:16:3e:id-1'},
    }
    assert discovery.server_addresses({'addresses': None}) == {}


def test_list_servers_follows_pages_and_sends_the_filter_once():
    cloud = FakeCloud(nova_page=3)
    for i in range(8):
        cloud.add_server('kube-aaaaa-default-worker-%d-x' % i)
    cloud.add_server('other-node')
    found = discovery.list_servers(cloud, name_regex='^kube-aaaaa-')
    assert len(found) == 8
    assert cloud.count('compute', '^/servers/detail$') == 3
    assert all(c[2].get('name') == '^kube-aaaaa-' for c in cloud.calls)


def test_list_servers_falls_back_below_microversion_2_47_and_names_flavors_once():
    cloud = FakeCloud(max_nova_microversion=(2, 40))
    cluster = cloud.add_capi_cluster('c', 'kube-aaaaa', workers={'default-worker': 3})
    found = discovery.discover_cluster_nodes(cloud, cluster)
    assert set(n['flavor'] for n in found) == {'bm.large'}
    assert cloud.count('compute', '^/flavors/') == 1


# ---------------------------------------------------------------------------
# Whole clusters


def mixed_cloud(**kwargs):
    """Heat and CAPI clusters side by side, with look-alike servers that belong to none."""
    cloud = FakeCloud(**kwargs)
    heat = cloud.add_heat_cluster('heat-a', 'heat-a-abcdefghijkl', masters=1, workers=2, extra_ngs={'gpu': 2})
    capi = cloud.add_capi_cluster('capi-b', 'kube-b1c2d', masters=1,
                                  workers={'default-worker': 2, 'gpu-a100': 2, 'gpu': 1}, extra_ngs=['empty'])
    helm = cloud.add_capi_cluster('helm', 'helm-0123456789ab', masters=1, workers={'default-worker': 1})
    # Look-alikes: a longer CAPI name, a name without the dash, a stack-named server outside the stack,
    # a personal server, and a cluster named after another's CAPI name plus a suffix.
    cloud.add_server('kube-b1c2de-default-worker-aaaaa-bbbbb')
    cloud.add_server('kube-b1c2d')
    cloud.add_server('heat-a-abcdefghijkl-node-99')
    cloud.add_server('my-jupyter')
    other = cloud.add_capi_cluster('helm-0123456789ab-x', 'helm-0123456789ab-x-ba9876543210',
                                   workers={'default-worker': 1})
    return cloud, heat, capi, helm, other


def test_discover_nodes_mixed_drivers_and_look_alikes():
    cloud, heat, capi, helm, other = mixed_cloud()
    cloud.calls = []
    results = discovery.discover_nodes(cloud, [heat, capi, helm], all_clusters=cloud.clusters)
    by_name = dict((r['cluster']['name'], r) for r in results)
    assert [r['error'] for r in results] == [None, None, None]

    heat_nodes = by_name['heat-a']['nodes']
    assert [(n['name'], n['role'], n['nodegroup']) for n in heat_nodes[:3]] == [
        ('heat-a-abcdefghijkl-master-0', 'master', 'default-master'),
        ('heat-a-abcdefghijkl-node-0', 'worker', 'default-worker'),
        ('heat-a-abcdefghijkl-node-1', 'worker', 'default-worker'),
    ]
    assert len(heat_nodes) == 5
    assert [n['nodegroup'] for n in heat_nodes[3:]] == ['gpu', 'gpu']
    assert all(n['name'].startswith('heat-a-gpu-') for n in heat_nodes[3:])
    assert set(n['driver'] for n in heat_nodes) == {'heat'}

    capi_nodes = by_name['capi-b']['nodes']
    assert sorted((n['role'], n['nodegroup']) for n in capi_nodes) == [
        ('master', 'default-master'), ('worker', 'default-worker'), ('worker', 'default-worker'),
        ('worker', 'gpu'), ('worker', 'gpu-a100'), ('worker', 'gpu-a100')]
    assert by_name['capi-b']['nodegroups'] == ['default-master', 'default-worker', 'gpu-a100', 'gpu', 'empty']
    assert set(n['driver'] for n in capi_nodes) == {'capi'}

    # The other cluster's servers start with 'helm-0123456789ab-' too, yet stay out.
    assert names(by_name['helm']['nodes']) == [
        'helm-0123456789ab-control-plane-00000-x0', 'helm-0123456789ab-default-worker-r0000-q0']

    everything = [n['name'] for r in results for n in r['nodes']]
    for stranger in ('kube-b1c2de-default-worker-aaaaa-bbbbb', 'kube-b1c2d', 'heat-a-abcdefghijkl-node-99',
                     'my-jupyter'):
        assert stranger not in everything

    node = capi_nodes[-1]
    assert node['addresses']['cluster-net']['floating'] and node['flavor'] == 'bm.large'
    assert node['cluster_id'] == capi['uuid'] and node['cluster_name'] == 'capi-b'

    # One server listing for everything, no per-node call.
    assert cloud.count('compute', '^/servers/detail$') == 1
    assert cloud.count('compute') == 1
    # Per cluster: nodegroups; per Heat cluster: one stack listing, one resource listing per stack.
    assert cloud.count('container-infra') == 3
    assert cloud.count('orchestration') == 3


def test_request_count_does_not_grow_with_nodes():
    counts = []
    for workers in (2, 40):
        cloud = FakeCloud()
        clusters = [cloud.add_heat_cluster('h', 'h-aaaaaaaaaaaa', workers=workers),
                    cloud.add_capi_cluster('c', 'kube-ccccc', workers={'default-worker': workers, 'gpu': workers})]
        cloud.calls = []
        results = discovery.discover_nodes(cloud, clusters, all_clusters=cloud.clusters)
        assert sum(len(r['nodes']) for r in results) == 2 + 3 * workers
        counts.append(len(cloud.calls))
    assert counts[0] == counts[1]


def test_only_some_clusters_still_excludes_others_servers():
    cloud, heat, capi, helm, other = mixed_cloud()
    found = discovery.discover_cluster_nodes(cloud, 'helm')
    assert len(found) == 2 and all(n['cluster_name'] == 'helm' for n in found)


def test_heat_cluster_in_progress_yields_the_servers_that_exist():
    cloud = FakeCloud()
    cluster = cloud.add_heat_cluster('new', 'new-aaaaaaaaaaaa', workers=1, unbuilt_workers=2,
                                     status='CREATE_IN_PROGRESS')
    found = discovery.discover_cluster_nodes(cloud, cluster)
    assert names(found) == ['new-aaaaaaaaaaaa-master-0', 'new-aaaaaaaaaaaa-node-0']


def test_cluster_without_stack_id_has_no_nodes_and_costs_no_request():
    cloud = FakeCloud()
    cluster = {'uuid': 'u-1', 'name': 'fresh', 'status': 'CREATE_IN_PROGRESS', 'stack_id': None}
    assert discovery.discover_cluster_nodes(cloud, cluster) == []
    assert cloud.calls == []


def test_renamed_heat_server_is_fetched_by_id():
    cloud = FakeCloud()
    cluster = cloud.add_heat_cluster('h', 'h-aaaaaaaaaaaa', workers=2)
    cloud.servers[1]['name'] = 'renamed-by-someone'
    found = discovery.discover_cluster_nodes(cloud, cluster)
    assert 'renamed-by-someone' in names(found)
    assert cloud.count('compute', '^/servers/[^/]+$') == 2  # the listing, then the one by ID


def test_magnum_without_nodegroup_api_uses_default_nodegroup_names():
    cloud = FakeCloud(nodegroup_api=False)
    heat = cloud.add_heat_cluster('h', 'h-aaaaaaaaaaaa', workers=1)
    capi = cloud.add_capi_cluster('c', 'kube-ccccc', workers={'default-worker': 1, 'ib-fast': 1})
    results = discovery.discover_nodes(cloud, [heat, capi])
    assert sorted(n['nodegroup'] for r in results for n in r['nodes']) == [
        'default-master', 'default-master', 'default-worker', 'default-worker', 'ib-fast']
    assert [r['nodegroups'] for r in results] == [[], []]


def test_a_failing_cluster_is_reported_and_the_others_still_discovered():
    cloud = FakeCloud()
    heat = cloud.add_heat_cluster('h', 'h-aaaaaaaaaaaa')
    capi = cloud.add_capi_cluster('c', 'kube-ccccc')
    cloud.faults[('orchestration', '/stacks')] = (503, {'error': {'message': 'heat-engine unavailable'}})
    results = discovery.discover_nodes(cloud, [heat, capi])
    assert 'heat-engine unavailable' in results[0]['error'] and results[0]['nodes'] == []
    assert results[1]['error'] is None and len(results[1]['nodes']) == 3
    with pytest.raises(ApiError) as err:
        discovery.discover_cluster_nodes(cloud, heat)
    assert err.value.status_code == 503


def test_server_listing_errors_are_raised():
    cloud = FakeCloud()
    capi = cloud.add_capi_cluster('c', 'kube-ccccc')
    cloud.faults[('compute', '/servers/detail')] = (500, {'computeFault': {'message': 'boom'}})
    with pytest.raises(ApiError, match='boom'):
        discovery.discover_nodes(cloud, [capi])


def test_discover_with_an_executor_gives_the_same_result():
    from concurrent.futures import ThreadPoolExecutor
    cloud, heat, capi, helm, other = mixed_cloud()
    serial = discovery.discover_nodes(cloud, [heat, capi, helm], all_clusters=cloud.clusters)
    with ThreadPoolExecutor(4) as pool:
        parallel = discovery.discover_nodes(cloud, [heat, capi, helm], all_clusters=cloud.clusters, executor=pool)
    assert serial == parallel


def test_find_cluster_names_the_choices_and_refuses_ambiguity():
    clusters = [{'uuid': 'u1', 'name': 'a', 'status': 'CREATE_COMPLETE'},
                {'uuid': 'u2', 'name': 'b', 'status': 'CREATE_COMPLETE'},
                {'uuid': 'u3', 'name': 'b', 'status': 'CREATE_COMPLETE'},
                {'uuid': 'u4', 'name': 'a', 'status': 'DELETE_IN_PROGRESS'}]
    assert discovery.find_cluster(clusters, 'u2')['uuid'] == 'u2'
    assert discovery.find_cluster(clusters, 'a')['uuid'] == 'u1'
    with pytest.raises(mg.MagnumInputError, match="Existing clusters: a, b"):
        discovery.find_cluster(clusters, 'zzz')
    with pytest.raises(mg.MagnumInputError, match='u2.*u3'):
        discovery.find_cluster(clusters, 'b')


def test_cluster_driver_and_stack_id_spellings():
    assert discovery.cluster_driver({'stack_id': '5b4d5c2e-3f0e-4b68-9a55-0e3b2c1d7f10'}) == 'heat'
    assert discovery.cluster_driver({'stack_id': 'kube-ab12c'}) == 'capi'
    assert discovery.cluster_driver({'uuid': 'x', 'cluster_id': 'kube-ab12c'}) == 'capi'
    assert discovery.cluster_driver({'stack_id': None, 'status': 'CREATE_IN_PROGRESS'}) is None

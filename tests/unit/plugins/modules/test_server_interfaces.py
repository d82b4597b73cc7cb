# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.server_interfaces as Ansible runs it, on the in-memory cloud of the
module_utils tests in place of openstacksdk's Connection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from unittest import mock

import pytest


from ansible_collections.hpcops.coe.plugins.modules import server_interfaces
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import cloud_with_networks, run_openstack_module


@pytest.fixture
def cloud():
    return cloud_with_networks()


def run(conn, check=False, diff=False, **args):
    args.setdefault('cloud', 'sim')
    args.setdefault('retry_delay', 0.001)
    return run_openstack_module(server_interfaces.main, conn, args, check=check, diff=diff)


def ok(conn, **args):
    out = run(conn, **args)
    assert not out.failed, out.result.get('msg')
    return out.result


def failed(conn, **args):
    out = run(conn, **args)
    assert out.failed, out.result
    return out.result


def nodes(conn, n, **kwargs):
    return [conn.add_server('node-%d' % i, conn.private, **kwargs) for i in range(n)]


def extra_nets(conn, server):
    return sorted(conn.networks[p['network_id']]['name'] for p in conn.server_ports(server['id']))


TWO = [{'network': 'eth-25g'}, {'network': 'ib-100g'}]


def test_attach_to_many_servers_then_converged(cloud):
    servers = nodes(cloud, 6)
    res = ok(cloud, servers=[s['name'] for s in servers], interfaces=TWO, concurrency=3)
    assert res['changed'] is True
    pace = res['concurrency']
    assert res['summary'] == {'servers': 6, 'changed': 6, 'failed': 0, 'attached': 12, 'detached': 0,
                              'retries': 0, 'waited_for_other_runs': 0}
    # concurrency=3 is the ceiling, and the start since it is below 10
    assert pace['start'] == 3 and pace['ceiling'] == 3 and pace['highest'] == 3 and pace['throttled'] == 0
    first = res['servers'][0]
    assert [i['network'] for i in first['interfaces']] == ['private', 'eth-25g', 'ib-100g']
    assert first['interfaces'][0]['primary'] is True
    assert set(first['addresses']) == {'private', 'eth-25g', 'ib-100g'}
    assert first['interfaces'][1]['mac_address'].startswith('fa:16:3e')
    assert first['interfaces'][1]['ip_addresses'][0]['prefix_length'] == 24
    for s in servers:
        assert extra_nets(cloud, s) == ['eth-25g', 'ib-100g', 'private']

    cloud.calls[:] = []
    res = ok(cloud, servers=[s['name'] for s in servers], interfaces=TWO)
    assert res['changed'] is False
    assert all(not s['changed'] for s in res['servers'])
    # a converged run lists once per resource type, whatever the number of servers
    assert sorted(c[0] for c in cloud.calls) == ['list_networks', 'list_ports', 'list_servers', 'list_subnets']
    assert [i['network'] for i in res['servers'][0]['interfaces']] == ['private', 'eth-25g', 'ib-100g']


def test_check_mode_predicts_the_real_run(cloud):
    servers = nodes(cloud, 3)
    s0 = servers[0]
    cloud._new_port(cloud.eth['id'], s0['id'], owner='nova')
    names = [s['name'] for s in servers]
    entries = [{'network': 'ib-100g'}, {'network': 'eth-25g', 'fixed_ips': {'node-2': '10.25.0.200'}}]
    predicted = ok(cloud, check=True, diff=True, servers=names, interfaces=entries, state='exact')
    assert cloud.mutations() == []
    real = ok(cloud, diff=True, servers=names, interfaces=entries, state='exact')

    def summary(res):
        return [(s['name'], s['changed'], sorted(a['network'] for a in s['attached']),
                 sorted(d['network'] for d in s['detached'])) for s in res['servers']]

    assert summary(predicted) == summary(real)
    assert predicted['changed'] is True and real['changed'] is True
    assert predicted['summary'] == real['summary']
    assert predicted['diff']['before'] == real['diff']['before']
    # a fixed address is known beforehand, a Neutron-chosen one only afterwards
    assert 'eth-25g 10.25.0.200' in predicted['diff']['after']['node-2']
    assert 'eth-25g 10.25.0.200' in real['diff']['after']['node-2']
    assert 'ib-100g (new port)' in predicted['diff']['after']['node-1']
    assert len(predicted['diff']['after']['node-1']) == len(real['diff']['after']['node-1']) == 3
    again = ok(cloud, check=True, servers=names, interfaces=entries, state='exact')
    assert again['changed'] is False


def test_absent_detaches_and_keeps_primary(cloud):
    s = nodes(cloud, 1)[0]
    ok(cloud, servers=['node-0'], interfaces=TWO)
    res = ok(cloud, servers=['node-0'], interfaces=[{'network': 'eth-25g'}, {'network': 'private'}],
             state='absent')
    assert [d['network'] for d in res['servers'][0]['detached']] == ['eth-25g']
    assert extra_nets(cloud, s) == ['ib-100g', 'private']
    assert res['servers'][0]['addresses'].keys() == {'private', 'ib-100g'}


def test_exact_with_empty_list_leaves_only_the_primary(cloud):
    s = nodes(cloud, 1)[0]
    ok(cloud, servers=[s['id']], interfaces=TWO)
    res = ok(cloud, servers=[s['id']], interfaces=[], state='exact')
    assert res['summary']['detached'] == 2
    assert extra_nets(cloud, s) == ['private']


def test_fixed_ip_and_precreated_port(cloud):
    nodes(cloud, 1)
    spare = cloud.add_port(cloud.ib, name='node-0-ib')
    res = ok(cloud, servers=['node-0'],
             interfaces=[{'network': 'eth-25g', 'fixed_ip': '10.25.0.42'}, {'port': 'node-0-ib'}])
    addrs = res['servers'][0]['addresses']
    assert addrs['eth-25g'] == ['10.25.0.42']
    assert addrs['ib-100g'] == [spare['fixed_ips'][0]['ip_address']]
    assert cloud.ports[spare['id']]['device_id'] == res['servers'][0]['id']
    attach_calls = [c for c in cloud.calls if c[0] == 'attach']
    assert sorted(c[2] for c in attach_calls) == sorted([cloud.eth['id'], spare['id']])


def test_unknown_network_fails_before_any_change(cloud):
    nodes(cloud, 2)
    res = failed(cloud, servers=['node-0', 'node-1'], interfaces=[{'network': 'eth-25g'}, {'network': 'ib-200g'}])
    assert "Network 'ib-200g' (interfaces[1]) not found" in res['msg']
    assert 'Available networks: eth-25g, ib-100g, private' in res['msg']
    assert 'Nothing was changed' in res['msg']
    assert cloud.mutations() == []


def test_unknown_server_fails_before_any_change(cloud):
    nodes(cloud, 1)
    res = failed(cloud, servers=['node-0', 'node-7'], interfaces=TWO)
    assert 'Server(s) not found: node-7' in res['msg'] and 'node-0' in res['msg']
    assert cloud.mutations() == []


def test_invalid_input_fails_before_any_api_call(cloud):
    res = failed(cloud, servers=['node-0'], interfaces=[{'subnet': 'x'}, {'port': 'p', 'fixed_ip': '10.0.0.1'}],
                 concurrency=0)
    assert 'interfaces[0] needs network, port or ports' in res['msg']
    assert 'drop fixed_ip' in res['msg']
    assert 'concurrency must be 1 or more' in res['msg']
    assert cloud.calls == []


def test_nic_shortfall_is_explained_up_front(cloud):
    nodes(cloud, 3, flavor='bm.gpu', nics={'eth25': 1, 'ib': 1})
    cloud.add_server('node-big', cloud.private, flavor='bm.big', nics={'eth25': 2, 'ib': 1})
    entries = [{'network': 'eth-25g'}, {'network': 'eth-25g'}, {'network': 'ib-100g'}]
    physical_nics = [{'physical_network': 'eth25', 'count': 1, 'flavor': 'bm.gpu'},
                     {'physical_network': 'ib', 'count': 1, 'flavor': 'bm.gpu'},
                     {'physical_network': 'eth25', 'count': 2}, {'physical_network': 'ib', 'count': 1}]
    names = ['node-0', 'node-1', 'node-2', 'node-big']
    res = failed(cloud, servers=names, interfaces=entries, physical_nics=physical_nics)
    assert cloud.mutations() == []
    assert len(res['problems']) == 3
    assert ("not enough free physical NICs on node-0 (flavor bm.gpu; attached besides the primary network: "
            "nothing): physical network 'eth25' has 1 NIC(s) for attachments, 0 in use, 2 more requested") \
        in res['msg']
    # the same check from the flavor's extra specs, as a non-admin sees them: embedded in
    # the server listing (compute 2.47+), else from one flavor listing
    specs = {'hpcops:physical_nics:eth25': '1', 'hpcops:physical_nics:ib': '1'}
    for s in cloud.servers.values():
        if s['flavor']['original_name'] == 'bm.gpu':
            s['flavor']['extra_specs'] = dict(specs)
    res = failed(cloud, servers=names[:3], interfaces=entries)
    assert len(res['problems']) == 3 and cloud.mutations() == []
    assert not [c for c in cloud.calls if c[0] == 'list_flavors']
    for s in cloud.servers.values():
        s['flavor']['extra_specs'] = {}
    cloud.flavor_specs['bm.gpu'] = dict(specs)
    cloud.calls[:] = []
    res = failed(cloud, check=True, servers=names[:3], interfaces=entries)
    assert len(res['problems']) == 3
    assert [c[0] for c in cloud.calls].count('list_flavors') == 1
    ok(cloud, servers=['node-big'], interfaces=entries, physical_nics=physical_nics)


def test_nova_500_without_known_nics_is_explained_and_leaves_no_port(cloud):
    nodes(cloud, 2, nics={'ib': 0})
    before = set(cloud.ports)
    res = failed(cloud, servers=['node-0', 'node-1'], interfaces=[{'network': 'ib-100g', 'port_name': '{server}-ib'}])
    assert res['failed_servers'] == ['node-0', 'node-1']
    assert "no free physical NIC on physical network 'ib'" in res['msg']
    assert set(cloud.ports) == before


def test_partial_failure_reports_failed_servers_and_finishes_the_others(cloud):
    servers = nodes(cloud, 4)
    cloud.fail_attach[servers[1]['id']] = (500, 'Failed to attach network adapter device')
    cloud.vanish_on_attach.add(servers[2]['id'])
    before = set(cloud.ports)
    res = failed(cloud, servers=[s['name'] for s in servers],
                 interfaces=[{'network': 'eth-25g', 'port_security_enabled': False}])
    assert res['failed_servers'] == ['node-1', 'node-2']
    assert res['msg'].startswith('2 of 4 server(s) failed (node-1, node-2)')
    assert 'node-2: the server was deleted during the run' in res['msg']
    assert res['changed'] is True
    by_name = dict((s['name'], s) for s in res['servers'])
    assert by_name['node-0']['changed'] and by_name['node-3']['changed']
    assert not by_name['node-1']['changed'] and by_name['node-1']['failed']
    # no stray ports: the module's ports are attached or gone
    strays = [p for p in cloud.ports.values() if not p['device_id']]
    assert strays == []
    assert len(set(cloud.ports) - before) == 2


def test_conflict_storm_is_retried_and_counted(cloud):
    servers = nodes(cloud, 2)
    cloud.conflicts[servers[0]['id']] = 4
    res = ok(cloud, servers=['node-0', 'node-1'], interfaces=[{'network': 'eth-25g'}])
    assert res['summary']['retries'] == 4


def test_server_not_active_is_reported_not_attempted(cloud):
    ready = nodes(cloud, 1)[0]
    cloud.add_server('node-new', cloud.private, status='BUILD')
    res = failed(cloud, servers=['node-0', 'node-new'], interfaces=[{'network': 'eth-25g'}])
    assert res['failed_servers'] == ['node-new']
    assert 'the server is BUILD' in res['msg']
    assert [c[1] for c in cloud.calls if c[0] == 'attach'] == [ready['id']]


def test_port_in_use_elsewhere_fails_that_server(cloud):
    nodes(cloud, 2)
    other = [s for s in cloud.servers.values() if s['name'] == 'node-1'][0]
    cloud._new_port(cloud.eth['id'], other['id'], name='busy')
    res = failed(cloud, servers=['node-0'], interfaces=[{'port': 'busy'}])
    assert 'attached to another device' in res['msg']
    assert cloud.mutations() == []


def test_fixed_ip_held_elsewhere_fails_before_changes(cloud):
    servers = nodes(cloud, 2)
    cloud._new_port(cloud.eth['id'], servers[1]['id'], ip='10.25.0.9')
    res = failed(cloud, servers=['node-0'], interfaces=[{'network': 'eth-25g', 'fixed_ip': '10.25.0.9'}])
    assert 'already used by port' in res['msg'] and cloud.mutations() == []


def test_diff_lists_only_servers_that_change(cloud):
    nodes(cloud, 2)
    ok(cloud, servers=['node-0'], interfaces=[{'network': 'eth-25g'}])
    res = ok(cloud, diff=True, servers=['node-0', 'node-1'], interfaces=[{'network': 'eth-25g'}])
    assert list(res['diff']['before']) == ['node-1']
    assert res['diff']['before']['node-1'] == ['private 10.0.0.11 (primary)']
    assert res['diff']['after']['node-1'][0] == 'private 10.0.0.11 (primary)'
    assert res['diff']['after']['node-1'][1].startswith('eth-25g 10.25.0.')


def test_validate_entries_messages():
    problems = server_interfaces.validate_entries([
        {'network': 'a', 'fixed_ip': '1.2.3.4', 'fixed_ips': {'x': '1.2.3.5'}},
        {'network': 'a', 'port_name': '{host}'},
        {'network': 'a', 'mtu': 10},
    ])
    assert problems == [
        'interfaces[0]: fixed_ip and fixed_ips are mutually exclusive',
        "interfaces[1]: port_name '{host}' may only use {server}, {server_id}, {network}, {index} ('host')",
        'interfaces[2]: mtu 10 is below the IPv4 minimum of 68',
    ]


def test_cluster_nodes_by_role_and_nodegroup(cloud):
    servers = nodes(cloud, 3)
    found = [
        {'id': servers[0]['id'], 'name': 'node-0', 'role': 'master', 'nodegroup': 'default-master',
         'status': 'ACTIVE', 'flavor': 'bm.std', 'addresses': {}},
        {'id': servers[1]['id'], 'name': 'node-1', 'role': 'worker', 'nodegroup': 'default-worker',
         'status': 'ACTIVE', 'flavor': 'bm.std', 'addresses': {}},
        {'id': servers[2]['id'], 'name': 'node-2', 'role': 'worker', 'nodegroup': 'gpu',
         'status': 'ACTIVE', 'flavor': 'bm.std', 'addresses': {}},
    ]
    with mock.patch.object(server_interfaces.nodes, 'discover_cluster_nodes', return_value=found) as disc:
        res = ok(cloud, cluster='k8s', interfaces=[{'network': 'eth-25g'}])
        assert disc.call_args[0][1] == 'k8s'
        assert [s['name'] for s in res['servers']] == ['node-1', 'node-2']
        res = ok(cloud, cluster='k8s', nodegroups=['gpu'], node_roles=['worker', 'master'],
                 interfaces=[{'network': 'ib-100g'}])
        assert [s['name'] for s in res['servers']] == ['node-2']
        res = failed(cloud, cluster='k8s', nodegroups=['gpus'], interfaces=[{'network': 'ib-100g'}])
        assert "Nodegroup(s) gpus not found in cluster 'k8s'" in res['msg']
    # the servers listing is not needed: discovery already listed the nodes
    assert 'list_servers' not in [c[0] for c in cloud.calls]


def test_unknown_cluster_fails_clearly(cloud):
    err = server_interfaces.mg.MagnumInputError("cluster 'nope' does not exist (as a name or an ID). "
                                                "Existing clusters: k8s")
    with mock.patch.object(server_interfaces.nodes, 'discover_cluster_nodes', side_effect=err):
        res = failed(cloud, cluster='nope', interfaces=[{'network': 'eth-25g'}])
    assert "cluster 'nope' does not exist" in res['msg'] and 'Nothing was changed' in res['msg']


# --------------------------------------------------------------------------- stale ports


def module_port(conn, net, server_id, **kwargs):
    """An unattached port as this module leaves it behind when Nova deletes its server."""
    return conn.add_port(net, description=server_interfaces.ifc.module_port_description(server_id), **kwargs)


def test_ports_left_by_a_replaced_server_are_removed_and_reported(cloud):
    servers = nodes(cloud, 3)
    ok(cloud, servers=['node-0', 'node-1', 'node-2'], interfaces=[{'network': 'ib-100g', 'port_name': '{server}-ib'}])
    # node-0 is replaced outside the module (as Cluster API replaces a machine): Nova keeps our port.
    gone = servers[0]
    cloud.compute._delete_server(gone['id'])
    leftover = [p for p in cloud.ports.values() if p['name'] == 'node-0-ib'][0]
    assert leftover['device_id'] == ''
    # Neither a port of someone else nor our free port of a server that exists (not targeted) is stale.
    foreign = cloud.add_port(cloud.ib, name='manual', description='made by hand')
    spare = module_port(cloud, cloud.eth, servers[2]['id'], name='node-2-spare')
    attached_ids = set(p['id'] for p in cloud.ports.values() if p['device_id'])

    cloud.calls[:] = []
    predicted = ok(cloud, check=True, servers=['node-1'], interfaces=[{'network': 'ib-100g', 'port_name': '{server}-ib'}])
    assert cloud.mutations() == []
    assert predicted['changed'] is True
    assert [p['port_id'] for p in predicted['removed_stale_ports']] == [leftover['id']]
    # the server listing misses node-0; one look-up by ID confirms it is gone, no extra listing
    assert sorted(c[0] for c in cloud.calls) == ['get_server', 'list_networks', 'list_ports', 'list_servers',
                                                 'list_subnets']

    res = ok(cloud, servers=['node-1'], interfaces=[{'network': 'ib-100g', 'port_name': '{server}-ib'}])
    assert res['changed'] is True and not res['servers'][0]['changed']
    assert res['removed_stale_ports'] == [{
        'port_id': leftover['id'], 'name': 'node-0-ib', 'network': 'ib-100g', 'network_id': cloud.ib['id'],
        'mac_address': leftover['mac_address'], 'fixed_ips': [leftover['fixed_ips'][0]['ip_address']],
        'server_id': gone['id']}]
    assert leftover['id'] not in cloud.ports
    assert foreign['id'] in cloud.ports and spare['id'] in cloud.ports
    assert attached_ids <= set(cloud.ports)
    again = ok(cloud, servers=['node-1'], interfaces=[{'network': 'ib-100g', 'port_name': '{server}-ib'}])
    assert again['changed'] is False and again['removed_stale_ports'] == []


def test_a_stale_port_named_in_the_input_is_attached_not_deleted(cloud):
    nodes(cloud, 1)
    old = module_port(cloud, cloud.ib, 'srv-gone', name='old-ib')
    res = ok(cloud, servers=['node-0'], interfaces=[{'port': 'old-ib'}])
    assert res['removed_stale_ports'] == []
    assert cloud.ports[old['id']]['device_id'] == res['servers'][0]['id']


def test_the_address_of_a_stale_port_is_free_for_the_new_server(cloud):
    nodes(cloud, 1)
    old = module_port(cloud, cloud.eth, 'srv-gone', ip='10.25.0.50')
    res = ok(cloud, servers=['node-0'], interfaces=[{'network': 'eth-25g', 'fixed_ip': '10.25.0.50'}])
    assert [p['port_id'] for p in res['removed_stale_ports']] == [old['id']]
    assert res['servers'][0]['addresses']['eth-25g'] == ['10.25.0.50']
    deletes = [i for i, c in enumerate(cloud.calls) if c[0] == 'delete_port']
    attaches = [i for i, c in enumerate(cloud.calls) if c[0] == 'attach']
    assert deletes and attaches and deletes[0] < attaches[0]


def test_a_stale_port_attached_since_the_listing_is_left_alone(cloud):
    servers = nodes(cloud, 1)
    old = module_port(cloud, cloud.eth, 'srv-gone')
    real_get_port = cloud.network.get_port

    def attached_meanwhile(port_id):
        cloud.ports[old['id']]['device_id'] = servers[0]['id']
        return real_get_port(port_id)

    with mock.patch.object(cloud.network, 'get_port', side_effect=attached_meanwhile):
        res = ok(cloud, servers=['node-0'], interfaces=[])
    assert res['removed_stale_ports'] == [] and old['id'] in cloud.ports


def test_cluster_runs_delete_only_ports_of_servers_nova_does_not_know(cloud):
    servers = nodes(cloud, 3)
    # node-2 exists but is no node of the cluster: discovery does not list it.
    kept = module_port(cloud, cloud.ib, servers[2]['id'])
    stale = module_port(cloud, cloud.ib, 'srv-replaced')
    found = [{'id': s['id'], 'name': s['name'], 'role': 'worker', 'nodegroup': 'default-worker',
              'status': 'ACTIVE', 'flavor': 'bm.std', 'addresses': {}} for s in servers[:2]]
    with mock.patch.object(server_interfaces.nodes, 'discover_cluster_nodes', return_value=found):
        res = ok(cloud, cluster='k8s', interfaces=[{'network': 'eth-25g'}])
    assert [p['port_id'] for p in res['removed_stale_ports']] == [stale['id']]
    assert kept['id'] in cloud.ports and stale['id'] not in cloud.ports
    # one look-up per server discovery did not list, before any change (later ones check the attachments)
    first_change = cloud.calls.index(cloud.mutations()[0])
    assert sorted(c[1] for c in cloud.calls[:first_change] if c[0] == 'get_server') == \
        sorted([servers[2]['id'], 'srv-replaced'])
    assert 'list_servers' not in [c[0] for c in cloud.calls]


# --------------------------------------------------------------------------- locked servers


class _Access:
    def __init__(self, roles):
        self.role_names = roles


class _Auth:
    def __init__(self, roles):
        self.roles = roles

    def get_access(self, session):
        return _Access(self.roles)


class _Session:
    def __init__(self, roles):
        self.auth = _Auth(roles)


def test_a_locked_server_fails_up_front_in_check_mode_too(cloud):
    servers = nodes(cloud, 2)
    cloud.servers[servers[1]['id']]['locked'] = True
    cloud.servers[servers[1]['id']]['locked_reason'] = 'maintenance'
    # Nova would answer every attempt with a 409 that waiting does not cure.
    cloud.conflicts[servers[1]['id']] = 1000
    for check in (True, False):
        cloud.calls[:] = []
        res = failed(cloud, check=check, servers=['node-0', 'node-1'], interfaces=[{'network': 'eth-25g'}],
                     retries=2, retry_delay=0.5)
        assert res['failed_servers'] == ['node-1']
        assert ("node-1: server node-1 is locked (maintenance); unlock it ('openstack server unlock %s')"
                % servers[1]['id']) in res['msg']
        assert [c[1] for c in cloud.calls if c[0] == 'attach'] == ([] if check else [servers[0]['id']])
        assert res['summary']['retries'] == 0
    # Nothing to change on it: its lock does not matter.
    assert not ok(cloud, servers=['node-1'], interfaces=[])['changed']


def test_an_admin_changes_a_locked_server(cloud):
    servers = nodes(cloud, 1)
    cloud.servers[servers[0]['id']]['locked'] = True
    cloud.session = _Session(['reader', 'Admin'])
    res = ok(cloud, servers=['node-0'], interfaces=[{'network': 'eth-25g'}])
    assert res['servers'][0]['changed'] and extra_nets(cloud, servers[0]) == ['eth-25g', 'private']

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning and worker logic of hpcops.coe.server_interfaces, against the in-memory
Nova, Neutron and Ironic of fakes.FakeConn."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools
import threading
import time

import pytest

from ansible_collections.hpcops.coe.plugins.module_utils import interfaces as ifc
from ansible_collections.hpcops.coe.tests.unit.plugins.fakes import FakeHttpError, cloud_with_networks


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def world():
    return cloud_with_networks()


def snapshot(conn):
    cloud = ifc.SdkCloud(conn)
    return cloud, cloud.list_servers(), cloud.list_networks(), cloud.list_ports(), cloud.list_subnets()


def plans_for(conn, entries, state='present', names=None, primary=None):
    servers, networks, ports, subnets = snapshot(conn)[1:]
    if names is not None:
        servers = [s for s in servers if s['name'] in names]
    wants = ifc.resolve_wants(entries, networks, subnets, ports, servers)
    net_names = dict((n['id'], n['name']) for n in networks)
    return [ifc.plan_server(s, ports, wants, state, primary, net_names) for s in servers]


def nets_of(plan_ports, conn):
    return sorted(conn.networks[p['network_id']]['name'] for p in plan_ports)


def no_sleep(_seconds):
    return None


# --------------------------------------------------------------------------- resolution


def test_unknown_network_names_the_available_ones(world):
    world.add_server('n0', world.private)
    with pytest.raises(ifc.InterfaceError) as err:
        plans_for(world, [{'network': 'ib-200g'}])
    msg = str(err.value)
    assert "Network 'ib-200g' (interfaces[0]) not found" in msg
    assert 'eth-25g, ib-100g, private' in msg


def test_ambiguous_network_name_asks_for_an_id(world):
    world.add_server('n0', world.private)
    world.add_network('eth-25g', '10.26.0.0/24')
    with pytest.raises(ifc.InterfaceError, match="ambiguous: it matches 2 networks"):
        plans_for(world, [{'network': 'eth-25g'}])


def test_network_by_id(world):
    world.add_server('n0', world.private)
    plans = plans_for(world, [{'network': world.ib['id']}])
    assert [w.network_name for w in plans[0].attach] == ['ib-100g']


def test_fixed_ip_needs_a_single_server(world):
    world.add_server('n0', world.private)
    world.add_server('n1', world.private)
    with pytest.raises(ifc.InterfaceError, match='use fixed_ips'):
        plans_for(world, [{'network': 'eth-25g', 'fixed_ip': '10.25.0.50'}])


def test_fixed_ips_must_name_targeted_servers(world):
    world.add_server('n0', world.private)
    with pytest.raises(ifc.InterfaceError, match='not targeted: n9'):
        plans_for(world, [{'network': 'eth-25g', 'fixed_ips': {'n9': '10.25.0.50'}}])


def test_fixed_ip_outside_the_networks_subnets(world):
    world.add_server('n0', world.private)
    with pytest.raises(ifc.InterfaceError, match=r'10\.26\.0\.5 is outside every subnet'):
        plans_for(world, [{'network': 'eth-25g', 'fixed_ip': '10.26.0.5'}])


def test_mtu_expectation_larger_than_the_network(world):
    world.add_server('n0', world.private)
    with pytest.raises(ifc.InterfaceError, match="'ib-100g' has MTU 4092, smaller than the expected 9000"):
        plans_for(world, [{'network': 'ib-100g', 'mtu': 9000}])
    plans = plans_for(world, [{'network': 'ib-100g', 'mtu': 4092}])
    assert len(plans[0].attach) == 1


def test_port_on_another_network_is_refused(world):
    world.add_server('n0', world.private)
    world.add_port(world.eth, name='spare')
    with pytest.raises(ifc.InterfaceError, match="port 'spare' is on network"):
        plans_for(world, [{'network': 'ib-100g', 'port': 'spare'}])


# --------------------------------------------------------------------------- planning


def test_present_attaches_only_what_is_missing(world):
    s = world.add_server('n0', world.private)
    world._new_port(world.eth['id'], s['id'], owner='nova')
    plans = plans_for(world, [{'network': 'eth-25g'}, {'network': 'ib-100g'}])
    assert [w.network_name for w in plans[0].attach] == ['ib-100g']
    assert plans[0].detach == []


def test_a_network_listed_twice_means_two_attachments(world):
    s = world.add_server('n0', world.private)
    world._new_port(world.eth['id'], s['id'], owner='nova')
    plans = plans_for(world, [{'network': 'eth-25g'}, {'network': 'eth-25g'}])
    assert [w.network_name for w in plans[0].attach] == ['eth-25g']


def test_primary_network_listed_in_present_is_satisfied(world):
    world.add_server('n0', world.private)
    plans = plans_for(world, [{'network': 'private'}])
    assert not plans[0].changes


def test_absent_never_detaches_the_primary_interface(world):
    s = world.add_server('n0', world.private)
    extra = world._new_port(world.private['id'], s['id'], owner='nova')
    plans = plans_for(world, [{'network': 'private'}], state='absent')
    assert [p['id'] for p in plans[0].detach] == [extra['id']]
    plans = plans_for(world, [{'network': 'private'}, {'network': 'private'}], state='absent')
    assert [p['id'] for p in plans[0].detach] == [extra['id']]
    assert 'primary interface' in plans[0].warnings[0]


def test_exact_detaches_extras_and_keeps_the_primary(world):
    s = world.add_server('n0', world.private)
    world._new_port(world.eth['id'], s['id'], owner='nova')
    plans = plans_for(world, [{'network': 'ib-100g'}], state='exact')
    assert nets_of(plans[0].detach, world) == ['eth-25g']
    assert [w.network_name for w in plans[0].attach] == ['ib-100g']
    plans = plans_for(world, [], state='exact')
    assert nets_of(plans[0].detach, world) == ['eth-25g']
    assert not plans[0].attach


def test_fixed_ip_is_part_of_the_match(world):
    s = world.add_server('n0', world.private)
    world._new_port(world.eth['id'], s['id'], owner='nova', ip='10.25.0.77')
    plans = plans_for(world, [{'network': 'eth-25g', 'fixed_ip': '10.25.0.77'}])
    assert not plans[0].changes
    plans = plans_for(world, [{'network': 'eth-25g', 'fixed_ip': '10.25.0.78'}], state='exact')
    assert [w.fixed_ip for w in plans[0].attach] == ['10.25.0.78']
    assert [p['fixed_ips'][0]['ip_address'] for p in plans[0].detach] == ['10.25.0.77']


def test_specific_wants_match_before_generic_ones(world):
    s = world.add_server('n0', world.private)
    world._new_port(world.eth['id'], s['id'], owner='nova', ip='10.25.0.77')
    entries = [{'network': 'eth-25g'}, {'network': 'eth-25g', 'fixed_ip': '10.25.0.77'}]
    plans = plans_for(world, entries)
    # the generic entry gets a new port, the fixed one keeps its match
    assert [(w.index, w.fixed_ip) for w in plans[0].attach] == [(0, None)]


def test_per_server_fixed_ips(world):
    world.add_server('n0', world.private)
    world.add_server('n1', world.private)
    plans = plans_for(world, [{'network': 'eth-25g', 'fixed_ips': {'n1': '10.25.0.99'}}])
    by_name = dict((p.server['name'], p.attach[0].fixed_ip) for p in plans)
    assert by_name == {'n0': None, 'n1': '10.25.0.99'}


def test_primary_is_the_oldest_port_or_the_given_network(world):
    s = world.add_server('n0', world.eth)
    world._new_port(world.private['id'], s['id'], owner='nova')
    plans = plans_for(world, [], state='exact')
    assert nets_of(plans[0].detach, world) == ['private']
    plans = plans_for(world, [], state='exact', primary=[world.private['id']])
    assert nets_of(plans[0].detach, world) == ['eth-25g']


def test_primary_without_created_at_falls_back_to_novas_address_order():
    server = {'id': 's', 'name': 's', 'addresses': {'private': [{'OS-EXT-IPS-MAC:mac_addr': 'aa'}],
                                                    'eth': [{'OS-EXT-IPS-MAC:mac_addr': 'bb'}]}}
    ports = [{'id': 'p2', 'network_id': 'n-eth', 'mac_address': 'bb', 'created_at': None},
             {'id': 'p1', 'network_id': 'n-priv', 'mac_address': 'aa', 'created_at': None}]
    assert ifc.primary_port_ids(server, ports) == {'p1'}


def test_port_attached_elsewhere_is_a_plan_error(world):
    world.add_server('n0', world.private)
    other = world.add_server('n1', world.private)
    world._new_port(world.eth['id'], other['id'], name='taken')
    plans = plans_for(world, [{'port': 'taken'}], names=['n0'])
    assert 'attached to another device' in plans[0].error


def test_fixed_ip_held_by_another_server_is_found_up_front(world):
    world.add_server('n0', world.private)
    other = world.add_server('n1', world.private)
    world._new_port(world.eth['id'], other['id'], ip='10.25.0.40')
    plans = plans_for(world, [{'network': 'eth-25g', 'fixed_ip': '10.25.0.40'}], names=['n0'])
    ports = snapshot(world)[3]
    problems = ifc.fixed_ip_conflicts(plans, ports)
    assert len(problems) == 1 and '10.25.0.40 on eth-25g is already used' in problems[0]


# --------------------------------------------------------------------------- physical NICs


def test_capacity_sources_in_order():
    server = {'flavor': {'name': 'bm.gpu', 'id': 'f1',
                         'extra_specs': {'hpcops:physical_nics:ib': '2', 'other': 'x'}},
              'hypervisor_hostname': 'node-1'}
    assert ifc.nic_capacity(server) == {'ib': 2}
    assert ifc.nic_capacity(server, ironic_nics={'node-1': {'ib': 1, 'eth25': 3}},
                            primary_physnet='eth25') == {'ib': 1, 'eth25': 2}
    option = [{'physical_network': 'ib', 'count': 4, 'flavor': None},
              {'physical_network': 'ib', 'count': 1, 'flavor': 'bm.gpu'},
              {'physical_network': 'eth25', 'count': 3, 'flavor': 'bm.other'}]
    assert ifc.nic_capacity(server, option) == {'ib': 1}
    assert ifc.nic_capacity({'flavor': {'name': 'vm'}}, option[:1]) == {'ib': 4}
    assert ifc.nic_capacity({'flavor': {'name': 'vm', 'extra_specs': {}}}) is None


def test_shortfall_counts_existing_attachments_but_not_the_boot_nic(world):
    s = world.add_server('n0', world.private)
    world._new_port(world.ib['id'], s['id'], owner='nova')
    plans = plans_for(world, [{'network': 'ib-100g'}, {'network': 'ib-100g'}, {'network': 'eth-25g'}])
    physnet_of = {world.ib['id']: 'ib', world.eth['id']: 'eth25'}
    # two ib entries: one satisfied by the existing attachment, one new -> 1 + 1 <= 2
    assert ifc.nic_shortfall(plans[0], {'ib': 2, 'eth25': 1}, physnet_of) == []
    short = ifc.nic_shortfall(plans[0], {'ib': 1}, physnet_of)
    assert [(x['physical_network'], x['nics'], x['in_use'], x['requested']) for x in short] == \
        [('eth25', 0, 0, 1), ('ib', 1, 1, 1)]
    text = ifc.describe_shortfall(plans[0], short, {world.ib['id']: 'ib-100g'})
    assert "n0 (flavor bm.std; attached besides the primary network: ib-100g)" in text
    assert "physical network 'ib' has 1 NIC(s) for attachments, 1 in use, 1 more requested" in text


def test_exact_frees_nics_before_counting(world):
    s = world.add_server('n0', world.private)
    world._new_port(world.eth['id'], s['id'], owner='nova')
    plans = plans_for(world, [{'network': 'ib-100g'}], state='exact')
    assert ifc.nic_shortfall(plans[0], {'ib': 1, 'eth25': 0},
                             {world.ib['id']: 'ib', world.eth['id']: 'eth25'}) == []


# --------------------------------------------------------------------------- retries


def test_conflicts_that_waiting_cures():
    busy = FakeHttpError(409, "Cannot 'attach_interface' instance x while it is in task_state rebooting")
    locked = FakeHttpError(409, 'Instance x is locked')
    in_use = FakeHttpError(409, 'Port p is still in use.')
    ip_used = FakeHttpError(409, 'Fixed IP address 10.0.0.5 is already in use on instance x.')
    assert ifc.is_retryable_conflict(busy)
    assert ifc.is_retryable_conflict(locked)
    assert not ifc.is_retryable_conflict(in_use)
    assert not ifc.is_retryable_conflict(ip_used)
    assert not ifc.is_retryable_conflict(FakeHttpError(500, 'boom'))


# --------------------------------------------------------------------------- applying


def apply_all(conn, plans, concurrency=4, **kwargs):
    kwargs.setdefault('retry_delay', 0.001)
    kwargs.setdefault('sleep', no_sleep)
    applier = ifc.Applier(ifc.SdkCloud(conn), **kwargs)
    outcomes = ifc.run_bounded(plans, applier.apply, concurrency)
    if kwargs.get('wait', True):
        applier.wait_active(outcomes)
    return applier, outcomes


def test_attach_many_servers_and_report(world):
    for i in range(5):
        world.add_server('n%d' % i, world.private)
    plans = plans_for(world, [{'network': 'eth-25g'}, {'network': 'ib-100g'}])
    outcomes = apply_all(world, plans)[1]
    assert all(not o['failed'] for o in outcomes)
    assert [len(o['attached']) for o in outcomes] == [2] * 5
    for server in world.servers.values():
        assert sorted(world.networks[p['network_id']]['name'] for p in world.server_ports(server['id'])) == \
            ['eth-25g', 'ib-100g', 'private']
    again = plans_for(world, [{'network': 'eth-25g'}, {'network': 'ib-100g'}])
    assert not any(p.changes for p in again)


def test_conflict_storm_is_retried(world):
    s = world.add_server('n0', world.private)
    world.conflicts[s['id']] = 3
    plans = plans_for(world, [{'network': 'eth-25g'}])
    applier, outcomes = apply_all(world, plans)
    assert not outcomes[0]['failed']
    assert applier.retried == 3
    assert [c[0] for c in world.mutations()] == ['attach'] * 4


def test_conflicts_beyond_the_retries_fail_the_server(world):
    s = world.add_server('n0', world.private)
    world.conflicts[s['id']] = 5
    plans = plans_for(world, [{'network': 'eth-25g'}])
    outcomes = apply_all(world, plans, retries=2)[1]
    assert outcomes[0]['failed']
    assert 'task_state' in outcomes[0]['msg'] and 'HTTP 409' in outcomes[0]['msg']


def test_a_failed_attach_removes_the_port_the_module_created(world):
    s = world.add_server('n0', world.private, nics={'ib': 0})
    plans = plans_for(world, [{'network': 'ib-100g', 'vnic_type': 'baremetal', 'port_name': '{server}-{network}'}])
    before = set(world.ports)
    outcomes = apply_all(world, plans)[1]
    assert outcomes[0]['failed']
    assert "no free physical NIC on physical network 'ib'" in outcomes[0]['msg']
    assert set(world.ports) == before
    created = [c for c in world.calls if c[0] == 'create_port'][0]
    assert created[2]['binding_vnic_type'] == 'baremetal' and created[2]['name'] == 'n0-ib-100g'
    assert created[2]['description'] == ifc.module_port_description(s['id'])


def test_server_deleted_during_the_run(world):
    s = world.add_server('n0', world.private)
    world.vanish_on_attach.add(s['id'])
    plans = plans_for(world, [{'network': 'eth-25g', 'port_security_enabled': False}])
    outcomes = apply_all(world, plans)[1]
    assert outcomes[0]['failed'] and outcomes[0]['vanished']
    assert 'deleted during the run' in outcomes[0]['msg']
    assert world.ports == {}


def test_server_deleted_after_an_attach_leaves_no_module_port(world):
    s = world.add_server('n0', world.private)
    plans = plans_for(world, [{'network': 'eth-25g', 'port_name': 'a'}, {'network': 'ib-100g', 'port_name': 'b'}])
    real_attach = world.compute.create_server_interface
    count = {'n': 0}

    def attach_then_vanish(server_id, **kw):
        count['n'] += 1
        if count['n'] == 2:
            world.vanish_on_attach.add(server_id)
        return real_attach(server_id, **kw)

    world.compute.create_server_interface = attach_then_vanish
    outcomes = apply_all(world, plans)[1]
    assert outcomes[0]['vanished']
    assert world.ports == {}


def test_detach_then_attach_and_delete_own_ports(world):
    s = world.add_server('n0', world.private)
    mine = world._new_port(world.eth['id'], s['id'], name='old',
                           description=ifc.module_port_description(s['id']))
    theirs = world._new_port(world.eth['id'], s['id'], name='user-port')
    plans = plans_for(world, [{'network': 'ib-100g'}], state='exact')
    outcomes = apply_all(world, plans)[1]
    assert not outcomes[0]['failed']
    kinds = [c[0] for c in world.mutations()]
    assert kinds.index('attach') > max(i for i, k in enumerate(kinds) if k == 'detach')
    assert mine['id'] not in world.ports          # created by the module: deleted
    assert world.ports[theirs['id']]['device_id'] == ''   # the user's: kept, detached
    assert nets_of(world.server_ports(s['id']), world) == ['ib-100g', 'private']


def test_an_attachment_a_concurrent_run_made_first_is_kept_and_ours_taken_back(world):
    s = world.add_server('n0', world.private)
    plans = plans_for(world, [{'network': 'eth-25g'}, {'network': 'ib-100g', 'port_name': '{server}-ib'}])
    # Another run, planned from the same listing, attaches both networks first.
    first = [world.compute.create_server_interface(s['id'], net_id=net['id']) for net in (world.eth, world.ib)]
    outcome = apply_all(world, plans)[1][0]
    assert not outcome['failed'], outcome['msg']
    # One port per network: the other run's, which Nova attached first.
    assert sorted(p['id'] for p in world.server_ports(s['id']) if p['network_id'] != world.private['id']) == \
        sorted(a['port_id'] for a in first)
    assert outcome['attached'] == []
    assert sorted(port['id'] for want, port in outcome['adopted']) == sorted(a['port_id'] for a in first)
    # The port this run created for its own InfiniBand attachment is gone, not left unattached.
    assert not [p for p in world.ports.values() if p['name'] == 'n0-ib']
    assert outcome['created_ports'] == []


def test_without_a_concurrent_run_nothing_is_taken_back(world):
    world.add_server('n0', world.private)
    outcome = apply_all(world, plans_for(world, [{'network': 'eth-25g'}]))[1][0]
    assert [a['network_id'] for a in outcome['attached']] == [world.eth['id']]
    assert 'adopted' not in outcome and not [c for c in world.mutations() if c[0] == 'detach']


def test_waits_until_new_ports_are_active(world):
    world.bind_polls = 3
    world.add_server('n0', world.private)
    plans = plans_for(world, [{'network': 'eth-25g'}])
    outcomes = apply_all(world, plans, poll_interval=0.001)[1]
    assert outcomes[0]['attached'][0]['status'] == 'ACTIVE'
    # one listing per round for all pending ports, filtered by their IDs
    polls = [c for c in world.calls if c[0] == 'list_ports' and c[1]]
    assert len(polls) == 3 and polls[0][1] == (outcomes[0]['attached'][0]['id'],)
    assert not [c for c in world.calls if c[0] == 'get_port']


def test_wait_false_does_not_poll(world):
    world.bind_polls = 3
    world.add_server('n0', world.private)
    plans = plans_for(world, [{'network': 'eth-25g'}])
    outcomes = apply_all(world, plans, wait=False)[1]
    assert outcomes[0]['attached'][0]['status'] == 'DOWN'
    assert not [c for c in world.calls if c[0] == 'get_port' or (c[0] == 'list_ports' and c[1])]


def test_wait_timeout_reports_the_port(world):
    world.bind_polls = 10 ** 6
    world.add_server('n0', world.private)
    plans = plans_for(world, [{'network': 'eth-25g'}])
    ticks = itertools.count()
    outcomes = apply_all(world, plans, timeout=5, poll_interval=1, clock=lambda: next(ticks))[1]
    assert outcomes[0]['failed'] and 'n0: port' in outcomes[0]['msg'] and 'not ACTIVE, after 5s' in outcomes[0]['msg']


def test_ports_left_by_an_interrupted_run_are_reused(world):
    s = world.add_server('n0', world.private)
    left = world.add_port(world.eth, name='n0-eth-25g', description=ifc.module_port_description(s['id']))
    plans = plans_for(world, [{'network': 'eth-25g', 'port_name': '{server}-{network}'}])
    ports = snapshot(world)[3]
    ifc.mark_reusable_ports(plans, ports)
    outcomes = apply_all(world, plans)[1]
    assert outcomes[0]['attached'][0]['id'] == left['id']
    assert not [c for c in world.calls if c[0] == 'create_port']


def test_run_bounded_limits_parallel_servers_and_keeps_order():
    active = {'now': 0, 'max': 0}
    lock = threading.Lock()

    def work(i):
        with lock:
            active['now'] += 1
            active['max'] = max(active['max'], active['now'])
        time.sleep(0.01)
        with lock:
            active['now'] -= 1
        return i * 2

    assert ifc.run_bounded(range(20), work, 3) == [i * 2 for i in range(20)]
    assert active['max'] == 3
    assert ifc.run_bounded([], work, 3) == []


def test_attaches_on_one_server_are_sequential_servers_parallel(world):
    world.attach_time = 0.02
    for i in range(4):
        world.add_server('n%d' % i, world.private)
    plans = plans_for(world, [{'network': 'eth-25g'}, {'network': 'ib-100g'}])
    outcomes = apply_all(world, plans, concurrency=4)[1]
    assert not any(o['failed'] for o in outcomes)
    assert world.max_active == 4


def test_describe_interface_gives_prefix_and_gateway(world):
    s = world.add_server('n0', world.private)
    networks, ports, subnets = snapshot(world)[2:]
    port = [p for p in ports if p['device_id'] == s['id']][0]
    desc = ifc.describe_interface(port, dict((n['id'], n) for n in networks),
                                  dict((x['id'], x) for x in subnets), {port['id']})
    assert desc['network'] == 'private' and desc['primary'] is True
    assert desc['ip_addresses'][0]['prefix_length'] == 24
    assert desc['ip_addresses'][0]['gateway'] == '10.0.0.1'
    assert desc['ip_addresses'][0]['dhcp'] is True


def test_bare_metal_flavors_are_recognised():
    assert ifc.is_bare_metal({'flavor': {'extra_specs': {'resources:CUSTOM_BAREMETAL_GPU': '1'}}})
    assert ifc.is_bare_metal({'flavor': {'extra_specs': {'resources:VCPU': '0', 'resources:CUSTOM_HPC': '1'}}})
    assert not ifc.is_bare_metal({'flavor': {'extra_specs': {'hw:cpu_policy': 'dedicated'}}})
    assert not ifc.is_bare_metal({'flavor': {}})


def test_ports_created_for_bare_metal_get_vnic_type_baremetal(world):
    world.add_server('n0', world.private)
    entries = [{'network': 'eth-25g', 'port_name': 'x'},
               {'network': 'ib-100g', 'vnic_type': 'direct', 'port_name': 'y'}]
    plans = plans_for(world, entries)
    plans[0].bare_metal = True
    outcomes = apply_all(world, plans)[1]
    assert not outcomes[0]['failed']
    created = [c[2] for c in world.calls if c[0] == 'create_port']
    assert [c.get('binding_vnic_type') for c in created] == ['baremetal', 'direct']


def test_primary_follows_novas_order_when_ports_share_a_second():
    server = {'id': 's', 'name': 's', 'addresses': {
        'private': [{'OS-EXT-IPS-MAC:mac_addr': 'FA:16:3E:00:00:02'}],
        'eth': [{'OS-EXT-IPS-MAC:mac_addr': 'fa:16:3e:00:00:01'}]}}
    same = '2026-01-01T00:00:00Z'
    ports = [{'id': 'a-extra', 'network_id': 'n-eth', 'mac_address': 'fa:16:3e:00:00:01', 'created_at': same},
             {'id': 'b-boot', 'network_id': 'n-priv', 'mac_address': 'fa:16:3e:00:00:02', 'created_at': same}]
    assert ifc.primary_port_ids(server, ports) == {'b-boot'}


def test_waiting_polls_many_servers_with_few_listings(world):
    world.bind_polls = 2
    for i in range(50):
        world.add_server('n%d' % i, world.private)
    plans = plans_for(world, [{'network': 'eth-25g'}, {'network': 'ib-100g'}])
    outcomes = apply_all(world, plans, poll_interval=0.001, concurrency=8)[1]
    assert all(a['status'] == 'ACTIVE' for o in outcomes for a in o['attached'])
    polls = [c for c in world.calls if c[0] == 'list_ports' and c[1]]
    # 100 ports, 40 IDs per listing, two rounds
    assert [len(c[1]) for c in polls] == [40, 40, 20, 40, 40, 20]


def test_an_admin_sees_only_what_the_project_can_attach(world):
    world.current_project_id = 'p-hpc'
    for net in list(world.networks.values()):
        net['project_id'] = 'p-hpc'
    other = world.add_network('eth-25g', '10.26.0.0/24')
    other['project_id'] = 'p-other'
    shared = world.add_network('public', '172.24.4.0/24')
    shared.update({'project_id': 'p-admin', 'is_shared': True})
    cloud = ifc.SdkCloud(world)
    names = sorted(n['name'] for n in cloud.list_networks())
    assert names == ['eth-25g', 'ib-100g', 'private', 'public']
    calls = []
    world.network.ports = lambda **filters: calls.append(filters) or []
    cloud.list_ports()
    cloud.list_ports(id=['a'])
    assert calls == [{'project_id': 'p-hpc'}, {'id': ['a']}]


# --------------------------------------------------------------------------- stale ports


def test_stale_ports_are_only_unattached_marked_ports_of_servers_nova_does_not_know(world):
    s = world.add_server('n0', world.private)
    mark = ifc.module_port_description
    stale = world.add_port(world.eth, description=mark('srv-gone'))
    free_of_existing = world.add_port(world.eth, description=mark(s['id']))
    attached = world._new_port(world.eth['id'], s['id'], description=mark('srv-gone'))
    foreign = world.add_port(world.eth, description='srv-gone')
    bare_marker = world.add_port(world.eth, description=ifc.PORT_MARKER)
    named = world.add_port(world.ib, description=mark('srv-gone2'))
    cloud, servers, dummy, ports, dummy = snapshot(world)
    assert ifc.module_port_server_id(ifc.port_view(stale)) == 'srv-gone'
    assert ifc.module_port_server_id(ifc.port_view(bare_marker)) is None
    assert ifc.module_port_server_id(ifc.port_view(foreign)) is None
    known = [x['id'] for x in servers]
    assert [p['id'] for p in ifc.stale_port_candidates(ports, known, {named['id']})] == [stale['id']]
    # A partial listing (here: none) makes the port of an existing server a candidate, which Nova then clears.
    assert sorted(p['id'] for p in ifc.stale_port_candidates(ports, [])) == sorted(
        [stale['id'], free_of_existing['id'], named['id']])
    world.calls[:] = []
    assert [p['id'] for p in ifc.stale_ports(cloud, ports, [], {named['id']})] == [stale['id']]
    assert sorted(c[1] for c in world.calls) == sorted([s['id'], 'srv-gone'])
    assert attached['id'] not in [p['id'] for p in ifc.stale_ports(cloud, ports, [])]


def test_removing_stale_ports_rechecks_each_and_reports_failures(world):
    mark = ifc.module_port_description
    ports = [world.add_port(world.eth, description=mark('srv-gone')) for dummy in range(3)]
    cloud, dummy, dummy, views, dummy = snapshot(world)
    world.ports[ports[1]['id']]['device_id'] = 'srv-new'   # attached since the listing
    real_delete = world.network.delete_port

    def delete(port_id, ignore_missing=True):
        if port_id == ports[2]['id']:
            raise FakeHttpError(409, 'Port %s is busy' % port_id)
        return real_delete(port_id, ignore_missing)

    world.network.delete_port = delete
    removed, problems = ifc.remove_stale_ports(cloud, views)
    assert [p['id'] for p in removed] == [ports[0]['id']]
    assert len(problems) == 1 and ports[2]['id'] in problems[0] and '409' in problems[0]
    assert ports[0]['id'] not in world.ports and ports[1]['id'] in world.ports


def test_admin_role_from_the_token(world):
    cloud = ifc.SdkCloud(world)
    assert cloud.is_admin() is False   # no session to ask: a plain member

    class Access:
        role_names = ['member', 'admin']

    class Auth:
        def get_access(self, session):
            return Access()

    class Session:
        auth = Auth()

    world.session = Session()
    assert cloud.is_admin() is True


# ---------------------------------------------------------------- adaptive concurrency

class FakeClock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def finish(pace, clock, seconds, calls=3):
    """One server's work: it takes `seconds` on the fake clock."""
    pace.acquire()
    clock.now += seconds
    pace.release(seconds, calls)


def test_adaptive_concurrency_grows_while_the_cloud_keeps_up_and_stops_at_the_ceiling():
    clock = FakeClock()
    pace = ifc.AdaptiveConcurrency(10, 14, clock=clock)
    for dummy in range(6):
        finish(pace, clock, 3.0)
    assert pace.limit == 14 and [limit for _t, limit in pace.path] == [10, 11, 12, 13, 14]
    assert pace.report()['highest'] == 14 and pace.report()['throttled'] == 0


def test_adaptive_concurrency_holds_when_the_answers_get_slower():
    clock = FakeClock()
    pace = ifc.AdaptiveConcurrency(4, 32, clock=clock)
    finish(pace, clock, 3.0)
    assert pace.limit == 5
    finish(pace, clock, 6.0)          # twice as slow per call as the quickest: no more servers
    finish(pace, clock, 9.0)
    assert pace.limit == 5
    finish(pace, clock, 0.0, calls=0)  # nothing attached: says nothing about the cloud
    assert pace.limit == 5


def test_adaptive_concurrency_halves_once_per_round_and_honours_retry_after():
    clock = FakeClock()
    pace = ifc.AdaptiveConcurrency(16, 32, clock=clock)
    pace.throttled(retry_after=5.0)
    pace.throttled(retry_after=2.0)   # the same round: no second cut, the longer hold stays
    assert pace.limit == 8 and pace.paused_until == 5.0 and pace.throttles == 2
    finish_at = []

    def worker():
        pace.acquire()
        finish_at.append(clock.now)
        pace.release(0.0, 0)

    import threading
    t = threading.Thread(target=worker)
    t.start()
    t.join(0.2)
    assert t.is_alive() and finish_at == []   # held back until the Retry-After has passed
    clock.now = 5.0
    with pace._cond:
        pace._cond.notify_all()
    t.join(5)
    assert finish_at == [5.0]
    pace.throttled()                   # a completion since the cut: this one halves again
    assert pace.limit == 4


def test_adaptive_concurrency_after_a_throttle_grows_by_one_per_round():
    clock = FakeClock()
    pace = ifc.AdaptiveConcurrency(8, 32, clock=clock)
    pace.throttled()
    assert pace.limit == 4
    for dummy in range(3):
        finish(pace, clock, 1.0)
    assert pace.limit == 4            # fewer fast servers than the number at once: not yet
    finish(pace, clock, 1.0)
    assert pace.limit == 5


def test_run_adaptive_never_exceeds_the_number_and_keeps_the_order():
    import threading
    pace = ifc.AdaptiveConcurrency(2, 3)
    lock = threading.Lock()
    state = {'now': 0, 'most': 0}

    def work(item):
        with lock:
            state['now'] += 1
            state['most'] = max(state['most'], state['now'])
        time.sleep(0.01)
        with lock:
            state['now'] -= 1
        return item * 2

    out = ifc.run_adaptive(range(20), work, pace, calls=lambda item: 1)
    assert out == [i * 2 for i in range(20)]
    assert 1 <= state['most'] <= 3 and pace.report()['ceiling'] == 3


def test_throttling_answers_reach_the_controller():
    calls = []

    class Busy(Exception):
        status_code = 429

    applier = ifc.Applier(None, retries=2, retry_delay=0.0, sleep=lambda s: None, on_throttle=calls.append)
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 2:
            raise Busy('Too Many Requests')
        return 'ok'

    assert applier._retry(flaky) == 'ok'
    assert len(calls) == 1

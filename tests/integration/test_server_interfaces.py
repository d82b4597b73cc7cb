# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.server_interfaces run by ansible-playbook against the simulated cloud.

The scenario (scenarios/interfaces.yml) has six bare-metal nodes bm-0..bm-5 with
one NIC per fast physical network, two gpu nodes with two InfiniBand NICs and
flavor extra specs declaring them, and two VMs. Nova serializes attachments
per server and answers 500 when a node has no free NIC, like Nova on Ironic.
"""

import json
import os
import threading
import time

import openstack
import openstack.config
import openstack.connection
import pytest

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'scenarios', 'interfaces.yml')
BM = ['bm-%d' % i for i in range(6)]
TWO = [{'network': 'eth-25g'}, {'network': 'ib-100g'}]
LIST_ROUTES = ('GET /compute/v2.1/servers/detail', 'GET /network/v2.0/networks',
               'GET /network/v2.0/ports', 'GET /network/v2.0/subnets')


@pytest.fixture
def sim(sim_cloud_factory):
    return sim_cloud_factory(SCENARIO, attach=0.1, detach=0.05, port_bind=0.05)


def sdk(sim, cloud='hpcops-sim'):
    config = openstack.config.OpenStackConfig(config_files=[sim.clouds_yaml])
    return openstack.connection.Connection(config=config.get_one(cloud))


def env_for(sim, cloud='hpcops-sim'):
    env = dict(sim.env())
    env['OS_CLOUD'] = cloud
    return env


def task_yaml(args, name='interfaces'):
    return ('- hosts: localhost\n  gather_facts: false\n  tasks:\n'
            '    - name: %s\n      hpcops.coe.server_interfaces: %s\n' % (name, json.dumps(args)))


def run(playbook, sim, args, cloud='hpcops-sim', **kwargs):
    args = dict(args)
    args.setdefault('retry_delay', 0.05)
    result = playbook(task_yaml(args), env=env_for(sim, cloud), **kwargs)
    entry = result.entry('interfaces')
    return result, entry['result']


def ok(playbook, sim, args, **kwargs):
    result, res = run(playbook, sim, args, **kwargs)
    result.assert_ok()
    return res


def failed(playbook, sim, args, **kwargs):
    result, res = run(playbook, sim, args, **kwargs)
    assert result.rc != 0 and result.failed, result.explain()
    return res


def networks_of(sim, name):
    for server in sim.state()['servers']:
        if server['name'] == name:
            return sorted(server['networks'])
    raise KeyError(name)


def stray_ports(sim):
    """Ports left unattached or attached to a server that no longer exists."""
    state = sim.state()
    return [p for p in state['ports'] if not p['device_id'] or p['orphaned']]


def mutations(sim):
    routes = sim.requests()['by_route']
    return dict((r, n) for r, n in routes.items() if r.startswith(('POST /compute', 'DELETE /compute',
                                                                   'POST /network', 'DELETE /network')))


def test_attach_then_a_converged_rerun_lists_a_fixed_number_of_times(sim, playbook):
    servers = BM + ['gpu-0', 'gpu-1']
    res = ok(playbook, sim, {'servers': servers, 'interfaces': TWO, 'concurrency': 4})
    assert res['changed'] is True
    assert res['summary']['attached'] == 16 and res['summary']['failed'] == 0
    for name in servers:
        assert networks_of(sim, name) == ['eth-25g', 'ib-100g', 'private']
    entry = res['servers'][0]
    assert [i['network'] for i in entry['interfaces']] == ['private', 'eth-25g', 'ib-100g']
    assert all(i['status'] == 'ACTIVE' for i in entry['interfaces'])
    macs = dict((p['id'], p['mac_address']) for p in sim.state()['ports'])
    assert all(i['mac_address'] == macs[i['port_id']] for i in entry['interfaces'])

    counts = []
    for targets in (servers, servers[:2]):
        sim.reset_requests()
        res = ok(playbook, sim, {'servers': targets, 'interfaces': TWO})
        assert res['changed'] is False
        routes = sim.requests()['by_route']
        assert mutations(sim) == {}
        assert [routes.get(r) for r in LIST_ROUTES] == [1, 1, 1, 1], routes
        # nothing per server: no interface listing, no port or server read
        assert not [r for r in routes if '{id}' in r], routes
        counts.append(sim.requests()['total'])
    assert counts[0] == counts[1]


def test_absent_and_exact_keep_the_primary_network(sim, playbook):
    three = [{'network': 'eth-10g'}, {'network': 'eth-25g'}, {'network': 'ib-100g'}]
    ok(playbook, sim, {'servers': ['bm-0', 'bm-1'], 'interfaces': three})
    res = ok(playbook, sim, {'servers': ['bm-0'], 'state': 'absent',
                             'interfaces': [{'network': 'eth-25g'}, {'network': 'private'}]})
    assert [d['network'] for d in res['servers'][0]['detached']] == ['eth-25g']
    assert networks_of(sim, 'bm-0') == ['eth-10g', 'ib-100g', 'private']
    res = ok(playbook, sim, {'servers': ['bm-1'], 'state': 'exact', 'interfaces': [{'network': 'ib-100g'}]})
    assert sorted(d['network'] for d in res['servers'][0]['detached']) == ['eth-10g', 'eth-25g']
    assert networks_of(sim, 'bm-1') == ['ib-100g', 'private']
    ok(playbook, sim, {'servers': ['bm-0', 'bm-1'], 'state': 'exact', 'interfaces': []})
    assert networks_of(sim, 'bm-0') == networks_of(sim, 'bm-1') == ['private']
    # the freed NICs can be used again
    ok(playbook, sim, {'servers': ['bm-0'], 'interfaces': three})
    assert stray_ports(sim) == []


def test_fixed_ips_and_existing_ports(sim, playbook):
    conn = sdk(sim)
    eth10 = conn.network.find_network('eth-10g')
    spare = conn.network.create_port(network_id=eth10.id, name='vm-1-storage')
    spare_bm = conn.network.create_port(network_id=eth10.id, name='bm-3-storage', binding_vnic_type='baremetal')
    res = ok(playbook, sim, {'servers': ['vm-0'], 'interfaces': [{'network': 'eth-25g', 'fixed_ip': '10.25.7.7'},
                                                                 {'network': 'eth-10g', 'subnet': 'eth-10g-subnet'}]})
    assert res['servers'][0]['addresses']['eth-25g'] == ['10.25.7.7']
    ok(playbook, sim, {'servers': ['vm-1', 'bm-3'],
                       'interfaces': [{'ports': {'vm-1': 'vm-1-storage', 'bm-3': 'bm-3-storage'}}]})
    ports = dict((p['id'], p) for p in sim.state()['ports'])
    assert ports[spare.id]['device_id'] and ports[spare_bm.id]['device_id']
    # a bare-metal node takes the physical NIC's MAC
    assert ports[spare_bm.id]['mac_address'].startswith('b4:96:')
    # per-server addresses, and ports the module creates itself (vnic_type baremetal on bare metal)
    res = ok(playbook, sim, {'servers': ['bm-4', 'bm-5'],
                             'interfaces': [{'network': 'eth-25g', 'fixed_ips': {'bm-4': '10.25.9.4', 'bm-5': '10.25.9.5'}},
                                            {'network': 'ib-100g', 'port_name': '{server}-{network}'}]})
    by_name = dict((s['name'], s) for s in res['servers'])
    assert by_name['bm-5']['addresses']['eth-25g'] == ['10.25.9.5']
    named = dict((p['name'], p) for p in sim.state()['ports'] if p['name'])
    assert named['bm-4-ib-100g']['vnic_type'] == 'baremetal'
    # rerun: the fixed IPs and named ports are recognised
    again = ok(playbook, sim, {'servers': ['bm-4', 'bm-5'],
                               'interfaces': [{'network': 'eth-25g', 'fixed_ips': {'bm-4': '10.25.9.4', 'bm-5': '10.25.9.5'}},
                                              {'network': 'ib-100g', 'port_name': '{server}-{network}'}]})
    assert again['changed'] is False


def test_conflict_storm_is_retried(sim, playbook):
    sim.set_faults([{'kind': 'conflict_storm', 'service': 'compute', 'path_regex': 'os-interface', 'count': 6}])
    res = ok(playbook, sim, {'servers': ['bm-0', 'bm-1'], 'interfaces': TWO})
    assert res['summary']['retries'] == 6
    assert networks_of(sim, 'bm-0') == networks_of(sim, 'bm-1') == ['eth-25g', 'ib-100g', 'private']


def test_conflicts_beyond_the_retries_fail_clearly(sim, playbook):
    sim.set_faults([{'kind': 'conflict_storm', 'service': 'compute', 'path_regex': 'os-interface'}])
    res = failed(playbook, sim, {'servers': ['bm-0'], 'interfaces': TWO, 'retries': 2})
    assert res['failed_servers'] == ['bm-0']
    assert "task_state interface_attaching" in res['msg'] and 'HTTP 409' in res['msg']


def test_nic_shortfall_is_explained_before_any_change(sim, playbook):
    # admin sees the physical networks; the NICs of bm.compute are declared
    nics = [{'physical_network': 'physnet10g', 'count': 1}, {'physical_network': 'physnet25g', 'count': 1},
            {'physical_network': 'ib', 'count': 1}]
    sim.reset_requests()
    res = failed(playbook, sim, {'servers': ['bm-0', 'bm-1'], 'physical_nics': nics,
                                 'interfaces': [{'network': 'eth-25g'}, {'network': 'eth-25g'}]})
    assert mutations(sim) == {}
    assert "not enough free physical NICs on bm-0 (flavor bm.compute; attached besides the primary network: " \
           "nothing): physical network 'physnet25g' has 1 NIC(s) for attachments, 0 in use, 2 more requested" \
           in res['msg']
    assert 'bm-1' in res['msg']
    # a plain member: physical networks from the input, NICs from the gpu flavor's extra specs
    ok(playbook, sim, {'servers': ['gpu-0'], 'interfaces': [{'network': 'ib-100g', 'physical_network': 'ib'}]},
       cloud='hpcops-sim-demo')
    sim.reset_requests()
    res = failed(playbook, sim, {'servers': ['gpu-0'], 'interfaces': [
        {'network': 'ib-100g', 'physical_network': 'ib'}, {'network': 'ib-100g', 'physical_network': 'ib'},
        {'network': 'ib-100g', 'physical_network': 'ib'}]}, cloud='hpcops-sim-demo')
    assert "physical network 'ib' has 2 NIC(s) for attachments, 1 in use, 2 more requested" in res['msg']
    assert mutations(sim) == {}


def test_nova_500_without_declared_nics_is_explained_and_leaks_nothing(sim, playbook):
    ok(playbook, sim, {'servers': ['bm-0'], 'interfaces': [{'network': 'eth-25g'}]}, cloud='hpcops-sim-demo')
    res = failed(playbook, sim, {'servers': ['bm-0'], 'interfaces': [
        {'network': 'eth-25g'}, {'network': 'eth-25g', 'physical_network': 'physnet25g', 'port_name': 'second'}]},
        cloud='hpcops-sim-demo')
    assert 'HTTP 500' in res['msg']
    assert "no free physical NIC on physical network 'physnet25g'" in res['msg']
    assert stray_ports(sim) == []


def vanish_when(sim, attaches, name_regex):
    """Delete servers as soon as Nova has received ``attaches`` attach requests."""
    route = 'POST /compute/v2.1/servers/{id}/os-interface'

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sim.requests()['by_route'].get(route, 0) >= attaches:
                sim.set_faults([{'kind': 'server_vanish', 'name_regex': name_regex}])
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_server_deleted_during_the_run(sim, playbook):
    sim.set_timings(attach=0.4)
    sim.reset_requests()
    # one server at a time, two attachments each: the 7th attach request is bm-3's first,
    # and bm-3 goes away while Nova works on it
    watcher = vanish_when(sim, 7, '^bm-3$')
    res = failed(playbook, sim, {'servers': BM[:4], 'concurrency': 1,
                                 'interfaces': [{'network': 'eth-25g', 'port_name': '{server}-eth'},
                                                {'network': 'ib-100g'}]})
    watcher.join()
    assert res['failed_servers'] == ['bm-3']
    assert 'bm-3: the server was deleted during the run' in res['msg']
    for name in BM[:3]:
        assert networks_of(sim, name) == ['eth-25g', 'ib-100g', 'private']
    assert [s['changed'] for s in res['servers']] == [True, True, True, False]
    assert stray_ports(sim) == []


def test_unknown_network_names_the_available_ones(sim, playbook):
    sim.reset_requests()
    res = failed(playbook, sim, {'servers': ['bm-0'], 'interfaces': [{'network': 'ib-200g'}]})
    assert res['msg'] == ("Network 'ib-200g' (interfaces[0]) not found. Available networks: eth-10g, eth-25g, "
                          "ib-100g, private. Nothing was changed.")
    assert mutations(sim) == {}


def test_partial_failure_leaves_no_stray_ports_and_names_the_servers(sim, playbook):
    sim.set_faults([{'kind': 'attach_500', 'server_regex': '^bm-[24]$'}])
    res = failed(playbook, sim, {'servers': BM, 'interfaces': [
        {'network': 'eth-25g', 'port_name': '{server}-eth25', 'port_security_enabled': False},
        {'network': 'ib-100g'}]})
    assert res['failed_servers'] == ['bm-2', 'bm-4']
    assert res['msg'].startswith('2 of 6 server(s) failed (bm-2, bm-4)')
    assert res['summary']['changed'] == 4
    for name in ('bm-0', 'bm-1', 'bm-3', 'bm-5'):
        assert networks_of(sim, name) == ['eth-25g', 'ib-100g', 'private']
    assert stray_ports(sim) == []
    # the rerun finishes the job
    sim.set_faults([])
    res = ok(playbook, sim, {'servers': BM, 'interfaces': [
        {'network': 'eth-25g', 'port_name': '{server}-eth25', 'port_security_enabled': False},
        {'network': 'ib-100g'}]})
    assert sorted(s['name'] for s in res['servers'] if s['changed']) == ['bm-2', 'bm-4']


def test_check_mode_predicts_the_real_run(sim, playbook):
    ok(playbook, sim, {'servers': ['bm-0'], 'interfaces': [{'network': 'eth-10g'}]})
    args = {'servers': ['bm-0', 'bm-1', 'vm-0'], 'state': 'exact',
            'interfaces': [{'network': 'eth-25g'}, {'network': 'ib-100g', 'fixed_ips': {'vm-0': '10.100.3.3'}}]}
    sim.reset_requests()
    predicted = ok(playbook, sim, args, check=True, diff=True)
    assert mutations(sim) == {}
    real = ok(playbook, sim, args, diff=True)

    def plan(res):
        return [(s['name'], s['changed'], sorted(a['network'] for a in s['attached']),
                 sorted(d['network'] for d in s['detached'])) for s in res['servers']]

    assert plan(predicted) == plan(real)
    assert predicted['summary'] == real['summary']
    assert predicted['diff']['before'] == real['diff']['before']
    # a given address is known beforehand, one Neutron picks only afterwards
    assert 'ib-100g 10.100.3.3' in predicted['diff']['after']['vm-0']
    assert 'ib-100g 10.100.3.3' in real['diff']['after']['vm-0']
    assert 'eth-25g (new port)' in predicted['diff']['after']['vm-0']
    assert len(predicted['diff']['after']['vm-0']) == len(real['diff']['after']['vm-0']) == 3
    assert ok(playbook, sim, args, check=True)['changed'] is False


def test_whole_cluster(sim_cloud_factory, playbook):
    sim = sim_cloud_factory('default', attach=0.1, detach=0.05)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(c['status'].endswith('COMPLETE') for c in sim.state()['clusters'] if c['name'] == 'hpc-capi'):
            break
        time.sleep(0.2)
    res = ok(playbook, sim, {'cluster': 'hpc-capi', 'interfaces': [{'network': 'ib-100g'}]})
    names = [s['name'] for s in res['servers']]
    assert len(names) == 2 and all('control-plane' not in n for n in names)
    for name in names:
        assert 'ib-100g' in networks_of(sim, name)
    again = ok(playbook, sim, {'cluster': 'hpc-capi', 'interfaces': [{'network': 'ib-100g'}]})
    assert again['changed'] is False


def wait_gone(sim, name, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name not in [s['name'] for s in sim.state()['servers']]:
            return
        time.sleep(0.05)
    raise AssertionError('%s was not deleted' % name)


def test_ports_of_a_server_deleted_outside_the_module_are_cleaned_up(sim, playbook):
    entries = [{'network': 'eth-25g', 'port_name': '{server}-eth', 'port_security_enabled': False}]
    ok(playbook, sim, {'servers': ['bm-0', 'bm-1', 'vm-0'], 'interfaces': entries})
    # bm-0 is deleted as Cluster API deletes a machine it replaces: Nova keeps the module's port.
    conn = sdk(sim)
    gone = conn.compute.find_server('bm-0')
    conn.compute.delete_server(gone)
    wait_gone(sim, 'bm-0')
    left = [p for p in stray_ports(sim) if p['name'] == 'bm-0-eth']
    assert len(left) == 1 and not left[0]['device_id']
    # A free port of a server that exists, made by the module (an interrupted run) or by hand, stays.
    eth = conn.network.find_network('eth-25g')
    vm0 = conn.compute.find_server('vm-0')
    spare = conn.network.create_port(network_id=eth.id, name='vm-0-spare',
                                     description='hpcops.coe.server_interfaces for server %s' % vm0.id)
    manual = conn.network.create_port(network_id=eth.id, name='by-hand')

    sim.reset_requests()
    predicted = ok(playbook, sim, {'servers': ['bm-1'], 'interfaces': entries}, check=True)
    assert mutations(sim) == {}
    assert predicted['changed'] is True
    assert [(p['port_id'], p['server_id']) for p in predicted['removed_stale_ports']] == [(left[0]['id'], gone.id)]
    routes = sim.requests()['by_route']
    # no extra listing; one look-up confirms the missing server gone
    assert [routes.get(r) for r in LIST_ROUTES] == [1, 1, 1, 1], routes
    assert routes.get('GET /compute/v2.1/servers/{id}') == 1, routes

    res = ok(playbook, sim, {'servers': ['bm-1'], 'interfaces': entries})
    assert res['changed'] is True and not res['servers'][0]['changed']
    assert [p['name'] for p in res['removed_stale_ports']] == ['bm-0-eth']
    assert res['removed_stale_ports'][0]['network'] == 'eth-25g'
    assert sorted(p['name'] for p in stray_ports(sim)) == sorted([spare.name, manual.name])
    assert ok(playbook, sim, {'servers': ['bm-1'], 'interfaces': entries})['changed'] is False


def test_a_locked_server_fails_at_once_unless_the_caller_is_an_admin(sim, playbook):
    member = sdk(sim, 'hpcops-sim-demo')
    member.compute.lock_server(member.compute.find_server('bm-1'), locked_reason='firmware update')
    args = {'servers': ['bm-0', 'bm-1'], 'interfaces': [{'network': 'eth-25g'}], 'retries': 3, 'retry_delay': 1.0}
    for check in (True, False):
        sim.reset_requests()
        started = time.monotonic()
        res = failed(playbook, sim, args, cloud='hpcops-sim-demo', check=check)
        assert res['failed_servers'] == ['bm-1']
        assert "bm-1: server bm-1 is locked (firmware update); unlock it ('openstack server unlock " in res['msg']
        assert res['summary']['retries'] == 0
        routes = sim.requests()['by_route']
        # bm-0 alone is attached, and bm-1 costs no attempt, let alone ten retries with backoff
        assert routes.get('POST /compute/v2.1/servers/{id}/os-interface') == (None if check else 1), routes
        assert time.monotonic() - started < 60
    assert networks_of(sim, 'bm-0') == ['eth-25g', 'private']
    assert networks_of(sim, 'bm-1') == ['private']
    # Nova lets an admin change a locked server, and so does the module.
    res = ok(playbook, sim, args)
    assert [s['name'] for s in res['servers'] if s['changed']] == ['bm-1']
    assert networks_of(sim, 'bm-1') == ['eth-25g', 'private']

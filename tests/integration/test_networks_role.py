# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hpcops.coe.networks role against the simulated cloud, with "nodes" that are
directories: each host writes its configuration under its own target root and
reads its links from a fake sys/class/net there. Files are checked one by one.
"""

import json
import os
import stat
import sys
import time

import openstack
import openstack.config
import openstack.connection
import pytest

from testworld import ansible_run

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, 'scenarios', 'interfaces.yml')
SITE = os.path.join(HERE, 'playbooks', 'networks', 'site.yml')
WITH_INVENTORY = os.path.join(HERE, 'playbooks', 'networks', 'inventory.yml')
ROLE = 'hpcops.coe.networks : '

NETWORKS = [
    {'name': 'eth-25g', 'mtu': 9000},                       # DHCP subnet: DHCP
    {'name': 'eth-10g', 'addressing': 'static'},             # the port's fixed IP
    {'name': 'ib-100g', 'kind': 'infiniband', 'mtu': 4092, 'physical_network': 'ib'},   # no DHCP: static
]
HOSTS = [('bm-0', 'systemd-networkd', None), ('bm-1', 'auto', 'run/NetworkManager'),
         ('gpu-0', 'auto', 'run/systemd/netif')]


@pytest.fixture
def sim(sim_cloud_factory):
    return sim_cloud_factory(SCENARIO, attach=0.1, detach=0.05, port_bind=0.05)


def sdk(sim):
    config = openstack.config.OpenStackConfig(config_files=[sim.clouds_yaml])
    return openstack.connection.Connection(config=config.get_one('hpcops-sim'))


def ipoib_address(mac):
    """The 20-byte IPoIB address of the port whose Neutron MAC is ``mac``: GUID bytes
    0-2 and 5-7 are the MAC's, as Ironic derives it."""
    b = mac.split(':')
    guid = b[:3] + ['03', '00'] + b[3:]
    return '80:00:02:08:fe:80:00:00:00:00:00:00:' + ':'.join(guid)


def write_sysfs(sim, root, server_name):
    """The links of the bare-metal node behind ``server_name`` (as the simulated cloud
    lays them out in a node's root), written under ``root``; returns them."""
    world = sim.world
    with world.lock:
        server = [s for s in world.nova.servers.values() if s.name == server_name and s.vm_state != 'deleted'][-1]
        pool, idx = server.node
        pool.write_root(root, idx)
        return pool.links(idx)


def make_nodes(sim, tmp_path, hosts=None):
    nodes = []
    for name, backend, marker in hosts or HOSTS:
        root = str(tmp_path / ('root-' + name))
        os.makedirs(root, exist_ok=True)
        if marker:
            os.makedirs(os.path.join(root, marker), exist_ok=True)
        write_sysfs(sim, root, name)
        nodes.append({'name': name, 'root': root, 'server': name, 'backend': backend})
    return nodes


def role(playbook, sim, nodes, networks=None, **kwargs):
    extravars = {'networks_test_nodes': nodes, 'networks_list': networks or NETWORKS}
    extravars.update(kwargs.pop('extra', {}))
    return playbook(SITE, extravars=extravars, env=sim.env(), **kwargs)


def ports_of(sim, server_name):
    """{network name: port} of the live server called ``server_name``."""
    state = sim.state()
    server = [s for s in state['servers'] if s['name'] == server_name][0]
    return dict((p['network'], p) for p in state['ports'] if p['device_id'] == server['id'])


def read(root, *parts):
    with open(os.path.join(root, *parts)) as f:
        lines = f.read().splitlines()
    # the first line is the ansible_managed comment
    assert lines[0].startswith('#')
    return lines[1:]


def networkd(root, name):
    return os.path.join(root, 'etc', 'systemd', 'network', name)


def expected_networkd(sim, server_name, links):
    ports = ports_of(sim, server_name)
    eth25, eth10, ib = ports['eth-25g'], ports['eth-10g'], ports['ib-100g']
    ib_link = [n for n, a in links.items() if a == ipoib_address(ib['mac_address'])][0]
    link_common = ['NamePolicy=keep kernel database onboard slot path',
                   'AlternativeNamesPolicy=database onboard slot path', 'MACAddressPolicy=persistent']
    return {
        '50-hpcops-eth-25g.link': [
            '# OpenStack network eth-25g, port %s' % eth25['id'], '[Match]',
            'MACAddress=%s' % eth25['mac_address'], '', '[Link]',
            '# A matching .link file replaces 99-default.link, so keep its naming policy.'] + link_common + [
            'MTUBytes=9000'],
        '50-hpcops-eth-25g.network': [
            '# OpenStack network eth-25g, port %s' % eth25['id'], '[Match]',
            'MACAddress=%s' % eth25['mac_address'], '', '[Link]', 'MTUBytes=9000',
            '# Extra networks must not hold up boot when a fabric is down.', 'RequiredForOnline=no', '',
            '[Network]', 'Description=OpenStack network eth-25g', 'DHCP=ipv4', 'LinkLocalAddressing=no',
            'IPv6AcceptRA=no', '', '[DHCPv4]', '# The default route stays on the primary network.',
            'UseRoutes=no', 'UseDNS=no'],
        '50-hpcops-eth-10g.link': [
            '# OpenStack network eth-10g, port %s' % eth10['id'], '[Match]',
            'MACAddress=%s' % eth10['mac_address'], '', '[Link]',
            '# A matching .link file replaces 99-default.link, so keep its naming policy.'] + link_common + [
            'MTUBytes=9000'],
        '50-hpcops-eth-10g.network': [
            '# OpenStack network eth-10g, port %s' % eth10['id'], '[Match]',
            'MACAddress=%s' % eth10['mac_address'], '', '[Link]', 'MTUBytes=9000',
            '# Extra networks must not hold up boot when a fabric is down.', 'RequiredForOnline=no', '',
            '[Network]', 'Description=OpenStack network eth-10g', 'Address=%s/16' % eth10['fixed_ips'][0],
            'LinkLocalAddressing=no', 'IPv6AcceptRA=no'],
        '50-hpcops-ib-100g.network': [
            '# OpenStack network ib-100g, port %s' % ib['id'], '[Match]', 'Name=%s' % ib_link,
            'Type=infiniband', '', '[Link]', 'MTUBytes=4092',
            '# Extra networks must not hold up boot when a fabric is down.', 'RequiredForOnline=no', '',
            '[Network]', 'Description=OpenStack network ib-100g', 'Address=%s/16' % ib['fixed_ips'][0],
            'LinkLocalAddressing=no', 'IPv6AcceptRA=no', '', '[IPoIB]', 'Mode=datagram'],
    }


def check_networkd(sim, node, links):
    expected = expected_networkd(sim, node['server'], links)
    directory = networkd(node['root'], '')
    assert sorted(os.listdir(directory)) == sorted(expected)
    for name, lines in expected.items():
        assert read(directory, name) == lines, name
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o644


def check_networkmanager(sim, node, links):
    ports = ports_of(sim, node['server'])
    directory = os.path.join(node['root'], 'etc', 'NetworkManager', 'system-connections')
    assert sorted(os.listdir(directory)) == ['50-hpcops-eth-10g.nmconnection', '50-hpcops-eth-25g.nmconnection',
                                             '50-hpcops-ib-100g.nmconnection']
    for name in os.listdir(directory):
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o600
    eth25 = read(directory, '50-hpcops-eth-25g.nmconnection')
    assert eth25[:2] == ['# OpenStack network eth-25g, port %s' % ports['eth-25g']['id'], '[connection]']
    assert 'type=ethernet' in eth25 and 'id=hpcops-eth-25g' in eth25
    assert eth25[eth25.index('[ethernet]') + 1:eth25.index('[ethernet]') + 3] == [
        'mac-address=%s' % ports['eth-25g']['mac_address'].upper(), 'mtu=9000']
    v4 = eth25[eth25.index('[ipv4]') + 1:eth25.index('[ipv6]')]
    assert v4 == ['method=auto', 'ignore-auto-routes=true', 'ignore-auto-dns=true',
                  '# The default route stays on the primary network.', 'never-default=true', '']
    eth10 = read(directory, '50-hpcops-eth-10g.nmconnection')
    v4 = eth10[eth10.index('[ipv4]') + 1:eth10.index('[ipv6]')]
    assert v4[:2] == ['method=manual', 'address1=%s/16' % ports['eth-10g']['fixed_ips'][0]]
    assert 'mtu=9000' in eth10
    ib = read(directory, '50-hpcops-ib-100g.nmconnection')
    ib_link = [n for n, a in links.items() if a == ipoib_address(ports['ib-100g']['mac_address'])][0]
    assert ['type=infiniband', 'interface-name=%s' % ib_link] == ib[ib.index('[connection]') + 3:ib.index('[connection]') + 5]
    assert ib[ib.index('[infiniband]') + 1:ib.index('[infiniband]') + 3] == ['transport-mode=datagram', 'mtu=4092']
    assert 'address1=%s/16' % ports['ib-100g']['fixed_ips'][0] in ib
    assert ib[ib.index('[ipv6]') + 1] == 'method=disabled'


def links_of(node):
    base = os.path.join(node['root'], 'sys', 'class', 'net')
    out = {}
    for name in os.listdir(base):
        path = os.path.join(base, name, 'address')
        if os.path.exists(path):
            with open(path) as f:
                out[name] = f.read().strip()
    return out


def changed_hosts(run):
    return sorted(set(r['host'] for r in run.results if r['status'] == 'changed'))


def test_attach_configure_and_rerun_changes_nothing(sim, playbook, tmp_path):
    nodes = make_nodes(sim, tmp_path)
    run = role(playbook, sim, nodes).assert_ok()
    attach = run.task(ROLE + 'Networks | Attach the networks to the nodes')
    assert attach['summary']['attached'] == 9
    for name, _backend, _marker in HOSTS:
        assert sorted(ports_of(sim, name)) == ['eth-10g', 'eth-25g', 'ib-100g', 'private']
    check_networkd(sim, nodes[0], links_of(nodes[0]))
    check_networkmanager(sim, nodes[1], links_of(nodes[1]))
    check_networkd(sim, nodes[2], links_of(nodes[2]))   # auto: run/systemd/netif
    # the gpu node has two IPoIB links: the one whose GUID matches the port is configured
    assert 'Name=ibp65s0' in read(networkd(nodes[2]['root'], ''), '50-hpcops-ib-100g.network')

    sim.reset_requests()
    again = role(playbook, sim, nodes).assert_ok()
    assert again.changed == []
    routes = sim.requests()['by_route']
    assert not [r for r in routes if r.startswith(('POST', 'DELETE', 'PUT'))
                and not r.startswith('POST /identity')], routes
    node_side_runs_and_own_entries(again, nodes)


def node_side_runs_and_own_entries(run, nodes):
    """Each node runs at most one module to read its links and backend and one to write its files, and
    keeps only its own server's attachment entry (not a copy of every node's)."""
    for node in nodes:
        mine = [r for r in run.results if r['host'] == node['name'] and r['status'] != 'skipped']
        actions = [r['action'] for r in mine if r['action'].startswith('hpcops.coe.node_')]
        assert actions.count('hpcops.coe.node_network_files') == 1, (node['name'], actions)
        assert actions.count('hpcops.coe.node_network_info') <= 1, (node['name'], actions)
        facts = {}
        for r in mine:
            facts.update(r['result'].get('ansible_facts') or {})
        assert 'networks_attachments' not in facts
        assert facts['networks_host_server']['name'] == node['server'], node['name']


def test_a_replaced_node_is_healed_on_the_next_run(sim, playbook, tmp_path):
    nodes = make_nodes(sim, tmp_path)
    role(playbook, sim, nodes).assert_ok()
    before = ports_of(sim, 'bm-0')

    # Cluster API replaces a machine: a new server (another bare-metal node) first,
    # then the old one goes. The new server has only the primary network.
    conn = sdk(sim)
    old = conn.compute.find_server('bm-0', ignore_missing=False)
    new = conn.compute.create_server(name='bm-0', flavor_id=conn.compute.find_flavor('bm.compute').id,
                                     image_id=conn.image.find_image('ubuntu-jammy').id,
                                     networks=[{'uuid': conn.network.find_network('private').id}])
    conn.compute.wait_for_server(new, wait=30, interval=0.2)
    conn.compute.delete_server(old)
    conn.compute.wait_for_delete(old, wait=30, interval=0.2)
    links = write_sysfs(sim, nodes[0]['root'], 'bm-0')

    run = role(playbook, sim, nodes).assert_ok()
    attach = run.task(ROLE + 'Networks | Attach the networks to the nodes')
    assert [s['name'] for s in attach['servers'] if s['changed']] == ['bm-0']
    after = ports_of(sim, 'bm-0')
    assert sorted(after) == ['eth-10g', 'eth-25g', 'ib-100g', 'private']
    assert after['eth-25g']['mac_address'] != before['eth-25g']['mac_address']
    check_networkd(sim, nodes[0], links)
    assert changed_hosts(run) == ['bm-0']


def test_exact_detaches_and_removes_the_files(sim, playbook, tmp_path):
    nodes = make_nodes(sim, tmp_path, HOSTS[:2])
    role(playbook, sim, nodes).assert_ok()
    two = [n for n in NETWORKS if n['name'] != 'eth-10g']
    run = role(playbook, sim, nodes, networks=two, extra={'networks_state': 'exact'}).assert_ok()
    assert sorted(ports_of(sim, 'bm-0')) == ['eth-25g', 'ib-100g', 'private']
    assert sorted(os.listdir(networkd(nodes[0]['root'], ''))) == [
        '50-hpcops-eth-25g.link', '50-hpcops-eth-25g.network', '50-hpcops-ib-100g.network']
    nm_dir = os.path.join(nodes[1]['root'], 'etc', 'NetworkManager', 'system-connections')
    assert sorted(os.listdir(nm_dir)) == ['50-hpcops-eth-25g.nmconnection', '50-hpcops-ib-100g.nmconnection']
    assert run.task(ROLE + 'Networks | Attach the networks to the nodes')['summary']['detached'] == 2
    assert [p for p in sim.state()['ports'] if not p['device_id']] == []


def test_bad_variables_fail_before_any_api_call(sim, playbook, tmp_path):
    nodes = make_nodes(sim, tmp_path, HOSTS[:1])
    sim.reset_requests()
    run = role(playbook, sim, nodes, networks=[{'name': 'eth-25g', 'kind': 'token-ring'}])
    assert run.rc != 0
    assert 'token-ring' in run.explain()
    run = role(playbook, sim, nodes, networks=[{'name': 'eth-25g'}], extra={'networks_concurrency': 'many'})
    assert run.rc != 0 and 'networks_concurrency' in run.explain()
    assert sim.requests()['total'] == 0


def test_configure_only_reads_the_attachments(sim, playbook, tmp_path):
    nodes = make_nodes(sim, tmp_path, HOSTS[:1])
    run = role(playbook, sim, nodes, tags=['networks_attach']).assert_ok()
    assert not os.path.exists(networkd(nodes[0]['root'], ''))
    sim.reset_requests()
    run = role(playbook, sim, nodes, tags=['networks_configure']).assert_ok()
    assert not [r for r in sim.requests()['by_route'] if r.startswith('POST /compute')]
    check_networkd(sim, nodes[0], links_of(nodes[0]))
    assert changed_hosts(run) == ['bm-0']


def test_check_mode_changes_nothing(sim, playbook, tmp_path):
    nodes = make_nodes(sim, tmp_path, HOSTS[:1])
    sim.reset_requests()
    run = role(playbook, sim, nodes, check=True).assert_ok()
    assert run.task(ROLE + 'Networks | Attach the networks to the nodes')['changed'] is True
    assert not [r for r in sim.requests()['by_route'] if r.startswith(('POST /compute', 'DELETE'))]
    assert not os.path.exists(networkd(nodes[0]['root'], ''))


def test_missing_infiniband_link_is_explained(sim, playbook, tmp_path):
    nodes = make_nodes(sim, tmp_path, HOSTS[:1])
    for name in os.listdir(os.path.join(nodes[0]['root'], 'sys', 'class', 'net')):
        if name.startswith('ib'):
            path = os.path.join(nodes[0]['root'], 'sys', 'class', 'net', name)
            os.remove(os.path.join(path, 'address'))
            os.rmdir(path)
    run = role(playbook, sim, nodes)
    assert run.rc != 0
    msg = run.entry(ROLE + 'Networks | Check every listed network can be configured')['result']['msg']
    assert "0 InfiniBand links of bm-0 match port" in msg and "network 'ib-100g'" in msg
    assert 'links seen: none' in msg


def cluster_workers(sim, name, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = sim.state()
        cluster = [c for c in state['clusters'] if c['name'] == name][0]
        if cluster['status'] == 'CREATE_COMPLETE':
            ids = [sid for ng in cluster['nodegroups'] if ng['role'] != 'master' for sid in ng['servers']]
            servers = [s for s in state['servers'] if s['id'] in ids]
            if servers and all(s['status'] == 'ACTIVE' for s in servers):
                return servers
        time.sleep(0.2)
    raise AssertionError('cluster %s did not settle' % name)


def test_whole_cluster_with_the_inventory_variables(sim_cloud_factory, playbook, tmp_path):
    """networks_cluster: the module finds the cluster's workers (Heat driver, two nodegroups,
    eth-25g attached earlier on some); hosts name their server through coe_server_id like
    the hpcops.coe.clusters inventory does."""
    sim = sim_cloud_factory('default', attach=0.1, detach=0.05, port_bind=0.05)
    workers = cluster_workers(sim, 'hpc-heat')
    nodes = []
    for server in workers:
        root = str(tmp_path / server['name'])
        os.makedirs(root)
        write_sysfs(sim, root, server['name'])
        nodes.append({'name': server['name'], 'root': root, 'coe_server_id': server['id'],
                      'backend': 'systemd-networkd'})
    had = sorted(s['name'] for s in workers if 'eth-25g' in s['networks'])
    assert had and len(had) < len(workers)
    run = role(playbook, sim, nodes, networks=[{'name': 'eth-25g', 'mtu': 9000}],
               extra={'networks_cluster': 'hpc-heat'}).assert_ok()
    attach = run.task(ROLE + 'Networks | Attach the networks to the nodes')
    assert sorted(s['id'] for s in attach['servers']) == sorted(n['coe_server_id'] for n in nodes)
    assert sorted(s['name'] for s in attach['servers'] if not s['changed']) == had
    for node in nodes:
        assert sorted(os.listdir(networkd(node['root'], ''))) == ['50-hpcops-eth-25g.link', '50-hpcops-eth-25g.network']
        port = ports_of(sim, node['name'])['eth-25g']
        assert 'MACAddress=%s' % port['mac_address'] in read(networkd(node['root'], ''), '50-hpcops-eth-25g.network')


def test_with_the_clusters_inventory(sim_cloud_factory, tmp_path):
    """The role on the hosts of the hpcops.coe.clusters inventory: the worker group of a
    cluster, each host knowing its server by coe_server_id."""
    sim = sim_cloud_factory('default', attach=0.1, detach=0.05, port_bind=0.05)
    workers = cluster_workers(sim, 'hpc-heat')
    roots = tmp_path / 'roots'
    for server in workers:
        os.makedirs(str(roots / server['name']))
        write_sysfs(sim, str(roots / server['name']), server['name'])
    inventory = tmp_path / 'sim.coe_clusters.yml'
    inventory.write_text(json.dumps({'plugin': 'hpcops.coe.clusters', 'clouds': ['hpcops-sim'],
                                     'clusters': ['hpc-heat']}))
    extravars = tmp_path / 'vars.json'
    extravars.write_text(json.dumps({'networks_test_group': 'coe_cluster_hpc_heat_worker', 'networks_test_roots': str(roots),
                                     'networks_cluster': 'hpc-heat', 'networks_backend': 'systemd-networkd',
                                     'networks_list': [{'name': 'ib-100g', 'kind': 'infiniband'}]}))
    env = dict(os.environ)
    env.update(sim.env())
    env.update({'ANSIBLE_COLLECTIONS_PATH': os.environ.get('ANSIBLE_COLLECTIONS_PATH') or os.path.join(
        os.path.dirname(os.path.dirname(HERE)), '.cache', 'collections'), 'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_HOME': str(tmp_path / 'ansible-home'), 'ANSIBLE_LOCALHOST_WARNING': '0',
        'ANSIBLE_PYTHON_INTERPRETER': sys.executable})
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(inventory),
           WITH_INVENTORY, '-e', '@' + str(extravars)]
    for attempt in range(2):
        proc = ansible_run.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, check=False,
                               timeout=600)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        recap = proc.stdout[proc.stdout.rindex('PLAY RECAP'):]
        changed = [line.split()[0] for line in recap.splitlines()[1:] if 'changed=' in line
                   and 'changed=0' not in line]
        if attempt == 0:
            assert sorted(changed) == sorted(s['name'] for s in workers)
        else:
            assert changed == []       # the rerun changes nothing
    for server in workers:
        port = ports_of(sim, server['name'])['ib-100g']
        lines = read(networkd(str(roots / server['name']), ''), '50-hpcops-ib-100g.network')
        assert 'Address=%s/16' % port['fixed_ips'][0] in lines
        assert [line for line in lines if line.startswith('Name=ibp6')]


def test_a_failed_node_fails_alone(sim, playbook, tmp_path):
    nodes = make_nodes(sim, tmp_path, HOSTS[:2])
    sim.set_faults([{'kind': 'attach_500', 'server_regex': '^bm-1$'}])
    run = role(playbook, sim, nodes, networks=[{'name': 'eth-25g', 'mtu': 9000}])
    assert run.rc != 0
    failed = [(r['host'], r['result'].get('msg')) for r in run.failed]
    assert len(failed) == 1 and failed[0][0] == 'bm-1'
    assert 'bm-1: attaching eth-25g failed' in failed[0][1] and 'HTTP 500' in failed[0][1]
    assert sorted(os.listdir(networkd(nodes[0]['root'], ''))) == ['50-hpcops-eth-25g.link', '50-hpcops-eth-25g.network']
    assert not os.path.exists(os.path.join(nodes[1]['root'], 'etc'))
    assert [p for p in sim.state()['ports'] if not p['device_id']] == []

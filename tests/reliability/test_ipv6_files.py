# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPv6 on the extra networks: the files the networks role writes, for every way a subnet hands out addresses.

One render through the role's own templates (one ansible-playbook run) for five networks:
SLAAC beside IPv4 DHCP, DHCPv6 stateless, DHCPv6 stateful with and without router
advertisements, and static IPv6; their modes come from the subnets' ``ipv6_ra_mode``
and ``ipv6_address_mode`` as server_interfaces reports them. NetworkManager's own
parser (``nmcli --offline``, from Debian's network-manager, installed by
tools/parsers.sh) judges the keyfiles where it is installed.
"""

import configparser
import os
import shutil
import subprocess
import sys

import pytest

from reliability_kit import REPO, run_playbook

sys.path.insert(0, os.path.join(REPO, '.cache', 'collections'))
from ansible_collections.hpcops.coe.plugins.module_utils import interfaces as ifc  # noqa: E402

TEMPLATES = os.path.join(REPO, 'roles', 'networks', 'templates')
SUBNETS = {
    # network: (cidr, address, enable_dhcp, ipv6_ra_mode, ipv6_address_mode)
    'v6-slaac': ('2001:db8:1::/64', '2001:db8:1::f816:3eff:fe00:1', True, 'slaac', 'slaac'),
    'v6-stateless': ('2001:db8:2::/64', '2001:db8:2::f816:3eff:fe00:2', True, 'dhcpv6-stateless',
                     'dhcpv6-stateless'),
    'v6-stateful-ra': ('2001:db8:3::/64', '2001:db8:3::10', True, 'dhcpv6-stateful', 'dhcpv6-stateful'),
    'v6-stateful': ('2001:db8:4::/64', '2001:db8:4::10', True, None, 'dhcpv6-stateful'),
    'v6-static': ('2001:db8:5::/64', '2001:db8:5::10', False, None, None),
}


def interfaces():
    """The interfaces as server_interfaces describes them (its own code), one port per network."""
    nets = {}
    subnets = {}
    out = []
    for i, (name, (cidr, address, dhcp, ra, mode)) in enumerate(sorted(SUBNETS.items())):
        nets['net-%d' % i] = {'id': 'net-%d' % i, 'name': name, 'mtu': 9000}
        subnets['sub6-%d' % i] = {'cidr': cidr, 'gateway_ip': None, 'enable_dhcp': dhcp, 'ip_version': 6,
                                  'ipv6_ra_mode': ra, 'ipv6_address_mode': mode}
        fixed = [{'ip_address': address, 'subnet_id': 'sub6-%d' % i}]
        if name == 'v6-slaac':  # dual stack
            subnets['sub4-%d' % i] = {'cidr': '10.61.0.0/16', 'gateway_ip': '10.61.0.1', 'enable_dhcp': True,
                                      'ip_version': 4}
            fixed.insert(0, {'ip_address': '10.61.0.7', 'subnet_id': 'sub4-%d' % i})
        port = {'id': 'port-%d' % i, 'network_id': 'net-%d' % i, 'mac_address': 'fa:16:3e:00:00:%02x' % i,
                'fixed_ips': fixed, 'status': 'ACTIVE'}
        out.append(ifc.describe_interface(port, nets, subnets, set()))
    return out


@pytest.fixture(scope='module')
def rendered(tmp_path_factory):
    work = str(tmp_path_factory.mktemp('ipv6'))
    server = {'id': 'srv-1', 'name': 'node-1', 'interfaces': interfaces()}
    render = ("{{ lookup('ansible.builtin.template', '%s/node_files.json.j2', template_vars={"
              "'networks_file_interfaces': networks_node_interfaces, 'networks_file_template': '%%s', "
              "'networks_file_suffix': '%%s'}) | from_json }}" % TEMPLATES)
    doc = [{'name': 'render', 'hosts': 'localhost', 'gather_facts': False, 'vars': {
        'networks_host_server': server, 'networks_links': [], 'networks_file_prefix': '50-hpcops-',
        'networks_list': [{'name': n} for n in sorted(SUBNETS)]},
        'tasks': [
            {'name': 'interfaces', 'ansible.builtin.set_fact': {'networks_node_interfaces': "{{ networks_host_server"
             " | hpcops.coe.node_interfaces(networks_list, networks_links, networks_file_prefix) }}"}},
            {'name': 'networkd', 'ansible.builtin.set_fact': {
                'networkd_files': render % ('networkd.network.j2', '.network')}},
            {'name': 'nm', 'ansible.builtin.set_fact': {
                'nm_files': render % ('networkmanager.nmconnection.j2', '.nmconnection')}},
            {'name': 'files', 'ansible.builtin.copy': {
                'dest': '%s/out/{{ item.name }}' % work, 'content': '{{ item.content }}', 'mode': '0600'},
             'loop': '{{ networkd_files + nm_files }}'}]}]
    os.makedirs(os.path.join(work, 'out'))
    run = run_playbook(doc, work)
    assert run.rc == 0, run.explain()
    out = {}
    for name in os.listdir(os.path.join(work, 'out')):
        with open(os.path.join(work, 'out', name)) as f:
            out[name] = f.read()
    return work, out


def sections(text):
    parser = configparser.ConfigParser(strict=False, interpolation=None, allow_no_value=True)
    parser.optionxform = str
    parser.read_string(text)
    return parser


def test_server_interfaces_reports_the_ipv6_mode():
    modes = dict((i['network'], (i['ipv6_mode'], i['ipv6_router_advertisements'])) for i in interfaces())
    assert modes == {'v6-slaac': ('slaac', True), 'v6-stateless': ('dhcpv6-stateless', True),
                     'v6-stateful-ra': ('dhcpv6-stateful', True), 'v6-stateful': ('dhcpv6-stateful', False),
                     'v6-static': ('static', False)}


@pytest.mark.parametrize('network, dhcp, accept_ra, dhcpv6, address, route', [
    ('v6-slaac', 'ipv4', 'yes', None, None, None),
    ('v6-stateless', None, 'yes', '', None, None),
    ('v6-stateful-ra', None, 'yes', '', None, None),
    ('v6-stateful', 'ipv6', 'no', 'solicit', None, '2001:db8:4::/64'),
    ('v6-static', None, 'no', None, '2001:db8:5::10/64', None),
])
def test_networkd_files_get_an_ipv6_address(rendered, network, dhcp, accept_ra, dhcpv6, address, route):
    text = rendered[1]['50-hpcops-%s.network' % network]
    conf = sections(text)
    net = conf['Network']
    assert net.get('DHCP') == dhcp, text
    # Router solicitations, DHCPv6 and neighbour discovery all speak from the link-local address.
    assert net['LinkLocalAddressing'] == 'ipv6' and net['IPv6AcceptRA'] == accept_ra, text
    assert net.get('Address') == address, text
    if accept_ra == 'yes':
        assert conf['IPv6AcceptRA']['UseGateway'] == 'no', text
    if dhcpv6 is None:
        assert not conf.has_section('DHCPv6'), text
    else:
        assert conf['DHCPv6'].get('WithoutRA', '') == dhcpv6, text
    assert (conf['Route']['Destination'] if conf.has_section('Route') else None) == route, text


@pytest.mark.parametrize('network, method, v4', [
    ('v6-slaac', 'auto', 'auto'), ('v6-stateless', 'auto', 'disabled'), ('v6-stateful-ra', 'auto', 'disabled'),
    ('v6-stateful', 'dhcp', 'disabled'), ('v6-static', 'manual', 'disabled')])
def test_networkmanager_files_get_an_ipv6_address(rendered, network, method, v4):
    text = rendered[1]['50-hpcops-%s.nmconnection' % network]
    conf = sections(text)
    assert conf['ipv6']['method'] == method and conf['ipv4']['method'] == v4, text
    assert conf['ipv6']['never-default'] == 'true', text
    if network == 'v6-static':
        assert conf['ipv6']['address1'] == '2001:db8:5::10/64', text
    if network == 'v6-stateful':
        assert conf['ipv6']['route1'] == '2001:db8:4::/64', text


NMCLI = shutil.which('nmcli')


@pytest.mark.skipif(NMCLI is None, reason='nmcli (Debian package network-manager, installed by tools/parsers.sh) '
                                          'is not installed: NetworkManager cannot judge the keyfiles here')
@pytest.mark.parametrize('network', sorted(SUBNETS))
def test_networkmanager_reads_the_keyfiles(rendered, network):
    text = rendered[1]['50-hpcops-%s.nmconnection' % network]
    proc = subprocess.run([NMCLI, '--offline', 'connection', 'modify', 'connection.autoconnect', 'yes'],
                          input=text, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, 'nmcli refused the keyfile:\n%s\n%s' % (proc.stderr, text)
    normalized = sections(proc.stdout)
    expected = sections(text)
    # NetworkManager kept what the file asks for.
    for key in ('method', 'address1', 'route1'):
        if expected.has_option('ipv6', key):
            assert normalized['ipv6'][key].split(',')[0] == expected['ipv6'][key], proc.stdout

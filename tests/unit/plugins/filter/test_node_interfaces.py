# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The networks role's per-node plan: addressing, file names, connection UUIDs and InfiniBand links."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import uuid

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.hpcops.coe.plugins.filter.node_interfaces import node_interfaces

# The namespace of Ansible's to_uuid filter: connection UUIDs written before stay the same.
ANSIBLE_UUID_NAMESPACE = uuid.UUID('361E6D51-FAEC-444A-9079-341386DA8E2E')
GUID = '00:02:c9:03:00:a1:b2:c3'


def address(ip, version=4, dhcp=True, prefix=16):
    return {'address': ip, 'version': version, 'dhcp': dhcp, 'prefix_length': prefix}


def port(network, mac='fa:16:3e:00:00:02', addresses=None, port_id='port-1', **extra):
    iface = {'primary': False, 'network': network, 'network_id': 'id-' + network, 'port_id': port_id,
             'mac_address': mac, 'mtu': 9000, 'ip_addresses': addresses or [], 'client_id': None,
             'ipv6_mode': None, 'ipv6_router_advertisements': False, 'ipv6_cidrs': []}
    iface.update(extra)
    return iface


def server(*ports):
    primary = {'primary': True, 'network': 'private', 'network_id': 'id-private', 'mac_address': 'fa:16:3e:00:00:01'}
    return {'id': 'srv-1', 'name': 'node-1', 'interfaces': [primary] + list(ports)}


def plan(srv, *networks, **kwargs):
    return node_interfaces(srv, list(networks), **kwargs)


def test_dhcp_ethernet_gets_its_file_names_and_a_stable_uuid():
    [entry] = plan(server(port('eth-10g', addresses=[address('10.10.0.5')])), {'name': 'eth-10g'})
    assert entry['addressing'] == 'dhcp' and entry['ipv4_mode'] == 'dhcp' and entry['ipv6_mode'] == 'none'
    assert entry['file'] == '50-hpcops-eth-10g' and entry['id'] == 'hpcops-eth-10g'
    assert entry['uuid'] == str(uuid.uuid5(ANSIBLE_UUID_NAMESPACE, 'hpcops.coe.networks/srv-1/port-1'))
    assert entry['mtu'] == 9000 and entry['addresses'] == ['10.10.0.5/16'] and not entry['pending']
    assert 'error' not in entry


def test_a_second_port_on_the_same_network_gets_a_numbered_file():
    entries = plan(server(port('eth 25G', port_id='a'), port('eth 25G', mac='fa:16:3e:00:00:03', port_id='b')),
                   {'name': 'eth 25G'}, file_prefix='60-x-')
    assert [e['file'] for e in entries] == ['60-x-eth-25g', '60-x-eth-25g-1']
    assert [e['id'] for e in entries] == ['hpcops-eth-25g', 'hpcops-eth-25g-1']


@pytest.mark.parametrize('addresses, kind, wanted', [
    ([], 'ethernet', 'none'),
    ([address('10.0.0.5', dhcp=False)], 'ethernet', 'static'),
    ([address('10.0.0.5')], 'infiniband', 'static'),
])
def test_auto_addressing_follows_the_subnets(addresses, kind, wanted):
    [entry] = plan(server(port('n', mac='', addresses=addresses)), {'name': 'n', 'kind': kind})
    assert entry['addressing'] == wanted


def test_ipv6_follows_the_subnet_mode_and_stateful_without_ra_gets_routes():
    v6 = address('2001:db8::5', version=6, prefix=64)
    [entry] = plan(server(port('v6', addresses=[v6], ipv6_mode='dhcpv6-stateful',
                               ipv6_cidrs=['2001:db8::/64'])), {'name': 'v6'})
    assert entry['ipv6_mode'] == 'dhcpv6-stateful' and entry['ipv6_routes'] == ['2001:db8::/64']
    [entry] = plan(server(port('v6', addresses=[v6], ipv6_mode='slaac', ipv6_router_advertisements=True)),
                   {'name': 'v6', 'addressing': 'static'})
    assert entry['ipv6_mode'] == 'static' and entry['ipv6_routes'] == []


def test_a_static_address_without_a_visible_subnet_is_an_error_naming_it():
    [entry] = plan(server(port('n', addresses=[address('10.0.0.5', dhcp=False, prefix=None)])), {'name': 'n'})
    assert "the subnet of 10.0.0.5 on network 'n' is not visible" in entry['error']


def test_a_network_not_attached_is_an_error_naming_the_server():
    assert plan(server(), {'name': 'ib'}) == [
        {'network': 'ib', 'error': "network 'ib' is not attached to server node-1 (srv-1)"}]


def test_infiniband_port_is_matched_to_its_link_by_guid_or_by_the_mac_made_from_it():
    links = [{'name': 'ibp1s0', 'address': '80:00:02:08:FE:80:00:00:00:00:00:00:' + GUID.upper()},
             {'name': 'ibp2s0', 'address': '80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:ff:ff:ff'},
             {'name': 'eno1', 'address': 'fa:16:3e:00:00:02'}]
    by_guid = port('ib', mac='fa:16:3e:11:22:33', client_id='ff:00:00:00:00:00:02:00:00:02:c9:00:' + GUID)
    [entry] = plan(server(by_guid), {'name': 'ib', 'kind': 'infiniband', 'mtu': 65520}, links=links)
    assert entry['ifname'] == 'ibp1s0' and entry['ipoib_mode'] == 'connected' and 'error' not in entry
    # No client-id: the 6-byte MAC is the GUID's first and last three bytes.
    by_mac = port('ib', mac='00:02:c9:a1:b2:c3')
    [entry] = plan(server(by_mac), {'name': 'ib', 'kind': 'infiniband', 'mtu': 2044}, links=links)
    assert entry['ifname'] == 'ibp1s0' and entry['ipoib_mode'] == 'datagram'


def test_an_infiniband_port_matching_no_link_is_an_error_listing_the_links_seen():
    links = [{'name': 'ibp2s0', 'address': '80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:ff:ff:ff'}]
    [entry] = plan(server(port('ib', mac='00:02:c9:a1:b2:c3')), {'name': 'ib', 'kind': 'infiniband'},
                   links=links, hostname='gpu-1')
    assert entry['error'] == ("0 InfiniBand links of gpu-1 match port port-1 of network 'ib' "
                              "(MAC 00:02:c9:a1:b2:c3); links seen: ibp2s0")


def test_anything_but_a_server_entry_is_refused_by_name():
    with pytest.raises(AnsibleFilterError, match='server_interfaces'):
        node_interfaces({'name': 'x'}, [])

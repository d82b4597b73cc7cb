# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The networks role's plan for one node: which link each listed network's port is, and how it is addressed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import to_uuid

# An IPoIB hardware address: 20 bytes, the last 8 of them the port GUID.
IPOIB_ADDRESS = re.compile(r'^([0-9a-f]{2}:){19}[0-9a-f]{2}$')
# Above this MTU an IPoIB link needs connected mode (datagram mode stops at 4092).
IPOIB_DATAGRAM_MTU = 4092


def _given(mapping, key, default):
    """`mapping[key]` when the key is there (even as null), else `default`: what a role variable left out means."""
    return mapping[key] if key in mapping else default


def addressing(net, kind, addrs):
    """'none', 'dhcp' or 'static' for the port: the network's `addressing`, or what its addresses suggest."""
    mode = _given(net, 'addressing', 'auto')
    if mode != 'auto':
        return mode
    if not addrs:
        return 'none'
    if kind == 'ethernet' and all(a.get('dhcp') for a in addrs):
        return 'dhcp'
    return 'static'


def family_modes(iface, mode, v4, v6):
    """(ipv4_mode, ipv6_mode): IPv4 from DHCP or static; IPv6 as its subnet hands it out
    (ipv6_address_mode: slaac, dhcpv6-stateless, dhcpv6-stateful) or static."""
    if not v4 or mode == 'none':
        ipv4 = 'none'
    elif mode == 'dhcp':
        ipv4 = 'dhcp'
    else:
        ipv4 = 'static'
    if not v6 or mode == 'none':
        ipv6 = 'none'
    elif mode == 'static':
        ipv6 = 'static'
    else:
        ipv6 = iface.get('ipv6_mode') or 'static'
    return ipv4, ipv6


def infiniband_link(iface, mac, links):
    """(link names matching the port, its GUID or '', IPoIB links seen).

    The Neutron port carries the GUID in its DHCP client-id when Ironic set one, else a
    6-byte MAC made of the GUID's first and last three bytes.
    """
    guid = (iface.get('client_id') or '')[-23:].lower()
    seen = []
    for link in links or []:
        address = str(_given(link, 'address', '') or '').lower()
        if IPOIB_ADDRESS.match(address):
            seen.append({'name': link['name'], 'address': address})
    matched = []
    for link in seen:
        tail = link['address'][-23:]
        if (guid and tail == guid) or (not guid and tail[0:8] == mac[0:8] and tail[15:23] == mac[9:17]):
            matched.append(link['name'])
    return matched, guid, seen


def node_interfaces(server, networks, links=None, file_prefix='50-hpcops-', hostname=None):
    """One entry per attachment of a listed network to `server`, with what the node's files need.

    `server` is the node's entry of server_interfaces (its `interfaces`), `networks` the role's
    networks_list, `links` the node's links (name, address). Problems become entries with `error`.
    """
    if not isinstance(server, dict) or not isinstance(server.get('interfaces'), list):
        raise AnsibleFilterError("node_interfaces expects this node's entry of hpcops.coe.server_interfaces "
                                 "(a mapping with 'interfaces'), got %s" % type(server).__name__)
    hostname = hostname or server.get('name')
    extra = [iface for iface in server['interfaces'] if not iface.get('primary')]
    out = []
    for net in networks or []:
        kind = _given(net, 'kind', 'ethernet')
        found = ([i for i in extra if i.get('network') == net['name']]
                 + [i for i in extra if i.get('network_id') == net['name']])
        if not found:
            out.append({'network': net['name'], 'error': "network '%s' is not attached to server %s (%s)"
                        % (net['name'], server.get('name'), server.get('id'))})
        for index, iface in enumerate(found):
            out.append(_entry(server, net, kind, iface, index, links, file_prefix, hostname))
    return out


def _entry(server, net, kind, iface, index, links, file_prefix, hostname):
    suffix = ('-%d' % index) if index > 0 else ''
    slug = re.sub(r'[^a-z0-9_.-]+', '-', net['name'].lower())
    base = file_prefix + slug + suffix
    mtu = _given(net, 'mtu', iface.get('mtu'))
    mac = (iface.get('mac_address') or '').lower()
    addrs = iface.get('ip_addresses') or []
    mode = addressing(net, kind, addrs)
    v4 = [a for a in addrs if a.get('version') == 4]
    v6 = [a for a in addrs if a.get('version') == 6]
    ipv4_mode, ipv6_mode = family_modes(iface, mode, v4, v6)
    ipv6_ra = _given(iface, 'ipv6_router_advertisements', False)
    entry = {
        'network': net['name'], 'network_id': iface.get('network_id'), 'kind': kind, 'mac': mac, 'mtu': mtu,
        'addressing': mode, 'port_id': iface.get('port_id'), 'ipv4_mode': ipv4_mode, 'ipv6_mode': ipv6_mode,
        'ipv6_ra': ipv6_ra,
        'ipv6_routes': _given(iface, 'ipv6_cidrs', []) if ipv6_mode == 'dhcpv6-stateful' and not ipv6_ra else [],
        'addresses': ['%s/%s' % (a['address'], a['prefix_length']) for a in addrs if a.get('prefix_length')],
        'ipv4': bool(v4), 'ipv6': bool(v6),
        'file': base, 'id': 'hpcops-' + slug + suffix,
        # Stable across runs and nodes: the same port keeps its connection's UUID.
        'uuid': to_uuid('hpcops.coe.networks/%s/%s' % (server.get('id'), iface.get('port_id') or base)),
        'ifname': None, 'pending': not mac,
        'ipoib_mode': _given(net, 'ipoib_mode', 'connected' if (mtu or 0) > IPOIB_DATAGRAM_MTU else 'datagram'),
    }
    unknown = [a['address'] for a in addrs if not a.get('prefix_length')]
    if (ipv4_mode == 'static' and any(not a.get('prefix_length') for a in v4)) or \
            (ipv6_mode == 'static' and any(not a.get('prefix_length') for a in v6)):
        entry['error'] = ("the subnet of %s on network '%s' is not visible, so its prefix length is unknown; "
                          "use addressing: dhcp or none" % (', '.join(unknown), net['name']))
    if kind == 'infiniband' and mac:
        matched, guid, seen = infiniband_link(iface, mac, links)
        if len(matched) == 1:
            entry['ifname'] = matched[0]
        else:
            entry['error'] = ("%d InfiniBand links of %s match port %s of network '%s' (MAC %s%s); links seen: %s"
                              % (len(matched), hostname, iface.get('port_id'), net['name'], mac,
                                 (', GUID ' + guid) if guid else '', ', '.join(l['name'] for l in seen) or 'none'))
    return entry


class FilterModule(object):
    """The networks role's per-node plan."""

    def filters(self):
        return {'node_interfaces': node_interfaces}

# -*- coding: utf-8 -*-
# Copyright: hpcops.coe maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Planning and applying Nova interface attachments on many servers.

The module ``hpcops.coe.server_interfaces`` reads the cloud once (servers,
networks, ports, subnets: a fixed number of paged list calls whatever the
number of servers), plans every server without touching anything, checks the
plan (unknown names, fixed IPs, free physical NICs on bare metal) and only then
applies it, one worker per server with a bounded pool. Nova serializes
attachments on one server, so a worker attaches one interface after the other
while servers proceed in parallel.

Everything that talks to the cloud goes through ``SdkCloud`` so that the
planning and the worker logic can be exercised with an in-memory cloud.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import errno
import ipaddress
import os
import re
import socket
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.hpcops.coe.plugins.module_utils.openstack import (
    describe_error,
    http_status,
    retry_call,
    retry_unsure_call,
)

try:
    import fcntl
    HAS_FCNTL = True
except ImportError:  # not POSIX: runs are not serialized per server, only checked afterwards
    HAS_FCNTL = False
from ansible_collections.hpcops.coe.plugins.module_utils.waiting import WaitTimeout, wait_for

# Written into the description of every port this module creates itself. Nova
# keeps ports it did not create when they are detached or when the server is
# deleted, so the module must recognise its own ports to delete them again.
PORT_MARKER = 'hpcops.coe.server_interfaces'

# Flavor extra spec declaring how many physical NICs a bare-metal node of that
# flavor has on a physical network: ``hpcops:physical_nics:<physnet>=<count>``.
FLAVOR_NICS_PREFIX = 'hpcops:physical_nics:'

# Nova accepts interface attach/detach only in these states.
ATTACHABLE_STATES = ('ACTIVE', 'SHUTOFF', 'PAUSED')

VNIC_TYPES = ('normal', 'direct', 'direct-physical', 'macvtap', 'baremetal',
              'virtio-forwarder', 'vdpa', 'remote-managed', 'smart-nic')

# 409 answers that waiting does not cure.
_PERMANENT_CONFLICTS = ('in use', 'inuse', 'already', 'port limit')


class InterfaceError(Exception):
    """An error worth showing to the user as it is."""


# --------------------------------------------------------------------------
# Reading SDK resources or plain dicts alike


def field(obj, *names, **kwargs):
    """First non-None value among attribute or key ``names`` of ``obj``."""
    default = kwargs.get('default')
    for name in names:
        if isinstance(obj, dict):
            value = obj.get(name)
        else:
            try:
                value = getattr(obj, name, None)
            except Exception:  # some SDK attributes raise when absent
                value = None
        if value is not None:
            return value
    return default


def is_retryable_conflict(exc):
    """409 caused by a busy (task_state) or locked server, not by a port or IP in use."""
    if http_status(exc) != 409:
        return False
    text = (str(getattr(exc, 'details', '') or '') + ' ' + str(exc)).lower()
    return not any(marker in text for marker in _PERMANENT_CONFLICTS)


def is_retryable_refusal(exc):
    """A request the cloud refused without doing it, and may take later: a busy server, a rate limit (429)."""
    return http_status(exc) == 429 or is_retryable_conflict(exc)


# --------------------------------------------------------------------------
# Plain views of the resources the planner works on


def server_view(server):
    flavor = field(server, 'flavor', default={}) or {}
    return {
        'id': field(server, 'id'),
        'name': field(server, 'name', default=''),
        'status': (field(server, 'status', default='') or '').upper(),
        'task_state': field(server, 'task_state', 'OS-EXT-STS:task_state'),
        'locked': bool(field(server, 'is_locked', 'locked', default=False)),
        'locked_reason': field(server, 'locked_reason'),
        'flavor': {
            'id': field(flavor, 'id'),
            'name': field(flavor, 'original_name', 'name'),
            'extra_specs': dict(field(flavor, 'extra_specs', default={}) or {}),
        },
        'addresses': OrderedDict(field(server, 'addresses', default={}) or {}),
        'hypervisor_hostname': field(server, 'hypervisor_hostname',
                                     'OS-EXT-SRV-ATTR:hypervisor_hostname'),
    }


def port_view(port):
    fixed = []
    for item in field(port, 'fixed_ips', default=[]) or []:
        fixed.append({'ip_address': field(item, 'ip_address'),
                      'subnet_id': field(item, 'subnet_id')})
    return {
        'id': field(port, 'id'),
        'name': field(port, 'name', default='') or '',
        'network_id': field(port, 'network_id'),
        'device_id': field(port, 'device_id', default='') or '',
        'device_owner': field(port, 'device_owner', default='') or '',
        'mac_address': field(port, 'mac_address'),
        'fixed_ips': fixed,
        'status': field(port, 'status'),
        'created_at': field(port, 'created_at'),
        'description': field(port, 'description', default='') or '',
        'vnic_type': field(port, 'binding_vnic_type', 'binding:vnic_type'),
        'binding_profile': field(port, 'binding_profile', 'binding:profile', default={}) or {},
        'client_id': _client_id(field(port, 'extra_dhcp_opts', default=[]) or []),
    }


def _client_id(options):
    """The DHCP client-id Ironic sets on the port of an InfiniBand NIC (it ends in the GUID)."""
    for opt in options:
        if field(opt, 'opt_name') in ('client-id', '61'):
            return field(opt, 'opt_value')
    return None


def network_view(network):
    segments = field(network, 'segments', default=[]) or []
    return {
        'id': field(network, 'id'),
        'name': field(network, 'name', default='') or '',
        'mtu': field(network, 'mtu'),
        'physical_network': field(network, 'provider_physical_network', 'provider:physical_network') or (
            field(segments[0], 'provider:physical_network', 'physical_network') if segments else None),
        'project_id': field(network, 'project_id', 'tenant_id'),
        'shared': bool(field(network, 'is_shared', 'shared', default=False)),
        'external': bool(field(network, 'is_router_external', 'router:external', default=False)),
    }


def subnet_view(subnet):
    return {
        'id': field(subnet, 'id'),
        'name': field(subnet, 'name', default='') or '',
        'network_id': field(subnet, 'network_id'),
        'cidr': field(subnet, 'cidr'),
        'gateway_ip': field(subnet, 'gateway_ip'),
        'enable_dhcp': bool(field(subnet, 'is_dhcp_enabled', 'enable_dhcp', default=False)),
        'ip_version': field(subnet, 'ip_version'),
        'ipv6_address_mode': field(subnet, 'ipv6_address_mode'),
        'ipv6_ra_mode': field(subnet, 'ipv6_ra_mode'),
    }


def attachment_view(att):
    """A Nova interfaceAttachment as a port view."""
    fixed = []
    for item in field(att, 'fixed_ips', default=[]) or []:
        fixed.append({'ip_address': field(item, 'ip_address'),
                      'subnet_id': field(item, 'subnet_id')})
    return {
        'id': field(att, 'port_id', 'id'),
        'name': '',
        'network_id': field(att, 'net_id', 'network_id'),
        'device_id': '',
        'device_owner': '',
        'mac_address': field(att, 'mac_addr', 'mac_address'),
        'fixed_ips': fixed,
        'status': field(att, 'port_state', 'status'),
        'created_at': None,
        'description': '',
        'vnic_type': None,
        'binding_profile': {},
        'client_id': None,
    }


# --------------------------------------------------------------------------
# Name-or-ID resolution with errors that help


def _names_preview(names, limit=40):
    names = sorted(set(n for n in names if n))
    shown = ', '.join(names[:limit])
    if len(names) > limit:
        shown += ', ... and %d more' % (len(names) - limit)
    return shown or '(none)'


class Lookup:
    """Resolves a reference by ID first, then by unique name."""

    def __init__(self, kind, items):
        self.kind = kind
        self.items = list(items)
        self.by_id = dict((i['id'], i) for i in self.items)
        self.by_name = {}
        for item in self.items:
            self.by_name.setdefault(item.get('name'), []).append(item)

    def find(self, ref):
        if ref in self.by_id:
            return self.by_id[ref]
        matches = self.by_name.get(ref, [])
        if len(matches) > 1:
            raise InterfaceError(
                "%s name '%s' is ambiguous: it matches %d %ss (%s); use an ID."
                % (self.kind.capitalize(), ref, len(matches), self.kind,
                   ', '.join(sorted(m['id'] for m in matches))))
        return matches[0] if matches else None

    def get(self, ref, where=''):
        item = self.find(ref)
        if item is None:
            raise InterfaceError(
                "%s '%s'%s not found. Available %ss: %s."
                % (self.kind.capitalize(), ref, where, self.kind,
                   _names_preview(i.get('name') or i['id'] for i in self.items)))
        return item


# --------------------------------------------------------------------------
# Desired attachments


class Want:
    """One desired attachment, possibly specialised for one server."""

    PORT_PROPERTIES = ('vnic_type', 'binding_profile', 'port_security_enabled', 'port_name')

    def __init__(self, index, network, subnet=None, fixed_ip=None, fixed_ips=None,
                 port=None, ports=None, physical_network=None, mtu=None,
                 vnic_type=None, binding_profile=None, port_security_enabled=None,
                 port_name=None):
        self.index = index
        self.network = network          # network view
        self.subnet = subnet            # subnet view or None
        self.fixed_ip = fixed_ip
        self.fixed_ips = fixed_ips or {}  # server name or id -> IP
        self.port = port                # port view or None
        self.ports = ports or {}        # server name or id -> port view
        self.physical_network = physical_network or network.get('physical_network')
        self.mtu = mtu
        self.vnic_type = vnic_type
        self.binding_profile = binding_profile
        self.port_security_enabled = port_security_enabled
        self.port_name = port_name
        # A free port this module created for the server in an interrupted run.
        self.reuse_port = None

    @property
    def network_id(self):
        return self.network['id']

    @property
    def network_name(self):
        return self.network.get('name') or self.network['id']

    def for_server(self, server):
        """A copy carrying this server's fixed IP or port, if the input names one."""
        want = copy.copy(self)
        for key in (server['name'], server['id']):
            if key in self.fixed_ips:
                want.fixed_ip = self.fixed_ips[key]
            if key in self.ports:
                want.port = self.ports[key]
        want.fixed_ips = {}
        want.ports = {}
        return want

    def creates_port(self):
        """Whether the module creates the port itself (rather than letting Nova do it)."""
        if self.port is not None:
            return False
        if self.subnet is not None and not self.fixed_ip:
            return True
        return any(getattr(self, p) is not None for p in self.PORT_PROPERTIES)

    def specificity(self):
        if self.port is not None:
            return 0
        if self.fixed_ip:
            return 1
        if self.subnet is not None:
            return 2
        return 3

    def matches(self, port):
        if port['network_id'] != self.network_id:
            return False
        if self.port is not None:
            return port['id'] == self.port['id']
        ips = [f['ip_address'] for f in port['fixed_ips']]
        if self.fixed_ip:
            return self.fixed_ip in ips
        if self.subnet is not None:
            return any(f['subnet_id'] == self.subnet['id'] for f in port['fixed_ips'])
        return True

    def label(self):
        text = self.network_name
        if self.port is not None:
            text += ' port %s' % (self.port.get('name') or self.port['id'])
        elif self.fixed_ip:
            text += ' %s' % self.fixed_ip
        elif self.subnet is not None:
            text += ' subnet %s' % (self.subnet.get('name') or self.subnet['id'])
        return text

    def port_name_for(self, server):
        if not self.port_name:
            return None
        return self.port_name.format(server=server['name'], server_id=server['id'],
                                     network=self.network_name, index=self.index)


def resolve_wants(entries, networks, subnets, ports, servers):
    """Turn the module's ``interfaces`` input into ``Want`` objects.

    Raises InterfaceError naming what is wrong (and what exists) before any change.
    """
    net_lookup = Lookup('network', networks)
    port_lookup = Lookup('port', ports)
    server_keys = set()
    for s in servers:
        server_keys.update((s['name'], s['id']))
    single = len(servers) == 1
    wants = []
    for index, entry in enumerate(entries):
        where = ' (interfaces[%d])' % index
        port = None
        ports = {}
        if entry.get('port'):
            port = port_lookup.get(entry['port'], where)
        for key, ref in (entry.get('ports') or {}).items():
            ports[key] = port_lookup.get(ref, ' (interfaces[%d].ports.%s)' % (index, key))
        if entry.get('network'):
            network = net_lookup.get(entry['network'], where)
        else:
            given = [port] if port is not None else list(ports.values())
            network = net_lookup.by_id.get(given[0]['network_id']) if given else None
            if network is None:
                raise InterfaceError('interfaces[%d]: the network of the given port is not visible.' % index)
        for p in ([port] if port is not None else []) + list(ports.values()):
            if p['network_id'] != network['id']:
                raise InterfaceError(
                    "interfaces[%d]: port '%s' is on network %s, not on '%s'."
                    % (index, p.get('name') or p['id'], p['network_id'], network['name']))
        subnet = None
        if entry.get('subnet'):
            on_net = [s for s in subnets if s['network_id'] == network['id']]
            subnet = Lookup('subnet', on_net).get(entry['subnet'], " on network '%s'" % network['name'])
        fixed_ips = dict(entry.get('fixed_ips') or {})
        if entry.get('fixed_ip') and not single:
            raise InterfaceError(
                'interfaces[%d]: fixed_ip applies to one server but %d are targeted; '
                'use fixed_ips (a mapping of server name to address).' % (index, len(servers)))
        if port is not None and not single:
            raise InterfaceError(
                'interfaces[%d]: a port can be attached to one server but %d are targeted; '
                'use ports (a mapping of server name to port).' % (index, len(servers)))
        for mapping, what in ((fixed_ips, 'fixed_ips'), (ports, 'ports')):
            unknown = sorted(k for k in mapping if k not in server_keys)
            if unknown:
                raise InterfaceError('interfaces[%d].%s names servers that are not targeted: %s.'
                                     % (index, what, ', '.join(unknown)))
        on_net_subnets = [s for s in subnets if s['network_id'] == network['id']]
        for ip in ([entry['fixed_ip']] if entry.get('fixed_ip') else []) + list(fixed_ips.values()):
            _check_ip(index, ip, network, subnet, on_net_subnets)
        mtu = entry.get('mtu')
        if mtu and network.get('mtu') and int(network['mtu']) < int(mtu):
            raise InterfaceError(
                "interfaces[%d]: network '%s' has MTU %s, smaller than the expected %s."
                % (index, network['name'], network['mtu'], mtu))
        wants.append(Want(
            index, network, subnet=subnet, fixed_ip=entry.get('fixed_ip'), fixed_ips=fixed_ips,
            port=port, ports=ports, physical_network=entry.get('physical_network'), mtu=mtu,
            vnic_type=entry.get('vnic_type'), binding_profile=entry.get('binding_profile'),
            port_security_enabled=entry.get('port_security_enabled'),
            port_name=entry.get('port_name')))
    return wants


def _check_ip(index, ip, network, subnet, on_net_subnets):
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise InterfaceError("interfaces[%d]: '%s' is not an IP address." % (index, ip))
    candidates = [subnet] if subnet is not None else on_net_subnets
    if not candidates:
        return
    for sub in candidates:
        try:
            if sub.get('cidr') and address in ipaddress.ip_network(sub['cidr'], strict=False):
                return
        except ValueError:
            return
    raise InterfaceError(
        "interfaces[%d]: %s is outside %s of network '%s' (%s)."
        % (index, ip, "subnet '%s'" % subnet['name'] if subnet is not None else 'every subnet',
           network['name'], ', '.join(s.get('cidr') or '?' for s in candidates)))


# --------------------------------------------------------------------------
# Planning


def is_module_port(port, server_id=None):
    desc = port.get('description') or ''
    if not desc.startswith(PORT_MARKER):
        return False
    return server_id is None or desc.endswith(server_id)


def module_port_description(server_id):
    return '%s for server %s' % (PORT_MARKER, server_id)


def module_port_server_id(port):
    """The ID of the server this module created ``port`` for, or None for any other port."""
    head = module_port_description('')
    desc = port.get('description') or ''
    if not desc.startswith(head):
        return None
    return desc[len(head):].strip() or None


def stale_port_candidates(all_ports, known_server_ids, keep_port_ids=()):
    """Unattached ports this module made for servers not among ``known_server_ids``.

    Nova keeps a port it did not create when its server is deleted (a Cluster-API
    machine replacement, say), so the ports this module created stay behind. Only
    ports carrying the module's mark with a server ID, attached to nothing, and not
    named in the input (``keep_port_ids``) qualify. Whether their server is really
    gone is for the caller to tell: ``known_server_ids`` may be a partial listing.
    """
    known = set(known_server_ids)
    keep = set(keep_port_ids)
    found = []
    for port in all_ports:
        server_id = module_port_server_id(port)
        if (server_id and server_id not in known and port['id'] not in keep
                and not port['device_id'] and not port['device_owner']):
            found.append(port)
    return found


def ports_named_by(wants):
    """IDs of the existing ports the input asks to attach."""
    ids = set()
    for want in wants:
        if want.port is not None:
            ids.add(want.port['id'])
        ids.update(p['id'] for p in want.ports.values())
    return ids


def server_ports(ports, server_id):
    return [p for p in ports if p['device_id'] == server_id
            and (p['device_owner'].startswith('compute:') or not p['device_owner'])]


def _address_order(server, network_names):
    """Position of each MAC, and of each network name, in Nova's address list."""
    by_mac = {}
    by_net = {}
    position = 0
    for net_name, addrs in (server.get('addresses') or {}).items():
        by_net.setdefault(net_name, position)
        for addr in addrs or []:
            mac = field(addr, 'OS-EXT-IPS-MAC:mac_addr')
            if mac and mac.lower() not in by_mac:
                by_mac[mac.lower()] = position
            position += 1
    return by_mac, by_net


def primary_port_ids(server, ports, primary_network_ids=None, network_names=None):
    """IDs of the server's boot-time interface(s), which the module never detaches.

    Nova lists a server's boot interfaces first in its addresses and Neutron
    stamps ports with their creation time (to the second), so the primary port
    is the first in Nova's order, then the oldest. With ``primary_network_ids``
    it is the first such port on each of those networks.
    """
    if not ports:
        return set()
    names = network_names or {}
    by_mac, by_net = _address_order(server, names)
    unknown = 10 ** 6

    def rank(p):
        mac = (p.get('mac_address') or '').lower()
        where = by_mac.get(mac, by_net.get(names.get(p['network_id']), unknown) if not by_mac else unknown)
        return (where, p.get('created_at') or '~', p['id'])

    if primary_network_ids:
        chosen = set()
        for net_id in primary_network_ids:
            on_net = sorted((p for p in ports if p['network_id'] == net_id), key=rank)
            if on_net:
                chosen.add(on_net[0]['id'])
        return chosen
    return {sorted(ports, key=rank)[0]['id']}


def is_bare_metal(server):
    """Whether the server's flavor is an Ironic one, as its extra specs tell.

    Bare-metal flavors request a custom resource class (by convention
    ``resources:CUSTOM_BAREMETAL_<class>=1``) and zero the virtual resources.
    """
    specs = (server.get('flavor') or {}).get('extra_specs') or {}
    if str(specs.get('resources:VCPU', '')).strip() == '0':
        return True
    return any(k.startswith('resources:CUSTOM_BAREMETAL') for k in specs)


class ServerPlan:
    def __init__(self, server):
        self.server = server
        self.bare_metal = False  # ports the module creates then get vnic_type baremetal
        self.ports = []          # the server's ports now
        self.primary = set()     # port IDs never touched
        self.keep = []           # (want or None, port)
        self.attach = []         # per-server Want
        self.detach = []         # port views
        self.warnings = []
        self.error = None        # a reason to leave this server alone

    @property
    def changes(self):
        return bool(self.attach or self.detach)


def plan_server(server, all_ports, wants, state, primary_network_ids=None, network_names=None):
    plan = ServerPlan(server)
    ports = server_ports(all_ports, server['id'])
    plan.ports = ports
    plan.primary = primary_port_ids(server, ports, primary_network_ids, network_names)
    mine = [w.for_server(server) for w in wants]

    # Specific wants first so that a generic one does not take the port a fixed IP asks for;
    # extra interfaces before the primary one so that a generic want on the primary
    # network is satisfied by an attachment that may be removed, not the other way round.
    order = sorted(mine, key=lambda w: (w.specificity(), w.index))
    candidates = sorted(ports, key=lambda p: (p['id'] in plan.primary, p.get('created_at') or '', p['id']))
    used = set()
    matched = {}
    for want in order:
        pool = candidates if state != 'absent' else [p for p in candidates if p['id'] not in plan.primary]
        for port in pool:
            if port['id'] not in used and want.matches(port):
                used.add(port['id'])
                matched[want.index] = port
                break

    if state == 'absent':
        for want in mine:
            port = matched.get(want.index)
            if port is not None:
                plan.detach.append(port)
            elif any(want.matches(p) for p in ports if p['id'] in plan.primary):
                plan.warnings.append(
                    "%s: '%s' is the primary interface; it is never detached."
                    % (server['name'], want.label()))
        plan.keep = [(None, p) for p in ports if p not in plan.detach]
        return plan

    for want in mine:
        port = matched.get(want.index)
        if port is not None:
            plan.keep.append((want, port))
        else:
            if want.port is not None and want.port['device_id'] and want.port['device_id'] != server['id']:
                plan.error = ("port '%s' is attached to another device (%s)"
                              % (want.port.get('name') or want.port['id'], want.port['device_id']))
            plan.attach.append(want)
    listed_networks = set(w.network_id for w in mine if w.network_id)
    for port in ports:
        if port['id'] in used:
            continue
        if state == 'exact' and port['id'] not in plan.primary:
            plan.detach.append(port)
        elif (state == 'present' and port['id'] not in plan.primary and port['network_id'] in listed_networks
              and is_module_port(port, server['id'])):
            # A second attachment of a listed network that this module made (an interrupted or
            # concurrent run): the wanted ones are matched above, this one is a duplicate.
            plan.detach.append(port)
            plan.warnings.append("%s: port %s duplicates an attachment of network '%s' made by this module; "
                                 "it is detached." % (server['name'], port['id'],
                                                      (network_names or {}).get(port['network_id'],
                                                                                port['network_id'])))
        else:
            plan.keep.append((None, port))
    return plan


def fixed_ip_conflicts(plans, all_ports):
    """Fixed IPs asked for that another device already holds (Nova would answer 409)."""
    holders = {}
    for port in all_ports:
        for f in port['fixed_ips']:
            holders[(port['network_id'], f['ip_address'])] = port
    problems = []
    seen = {}
    for plan in plans:
        for want in plan.attach:
            if not want.fixed_ip:
                continue
            key = (want.network_id, want.fixed_ip)
            holder = holders.get(key)
            if holder is not None and holder['device_id'] != plan.server['id'] and not (
                    is_module_port(holder, plan.server['id']) and not holder['device_id']):
                problems.append('%s: %s on %s is already used by port %s (device %s)' % (
                    plan.server['name'], want.fixed_ip, want.network_name, holder['id'],
                    holder['device_id'] or 'none'))
            if key in seen and seen[key] != plan.server['id']:
                problems.append('%s: %s on %s is also asked for another server' % (
                    plan.server['name'], want.fixed_ip, want.network_name))
            seen[key] = plan.server['id']
    return problems


# --------------------------------------------------------------------------
# Physical NICs of bare-metal nodes


def nic_capacity(server, physical_nics=None, ironic_nics=None, primary_physnet=None):
    """Physical NICs per physical network this server can attach, or None when unknown.

    Counts exclude the boot NIC, which carries the primary network. Sources,
    strongest first: the module's ``physical_nics`` input (entries for the
    server's flavor override those without a flavor), Ironic's ports of the
    node (when the caller may read them; the boot NIC is taken off the
    primary network's physical network), the flavor's extra specs
    ``hpcops:physical_nics:<physnet>``.
    """
    flavor = server.get('flavor') or {}
    flavor_keys = set(k for k in (flavor.get('name'), flavor.get('id')) if k)
    if physical_nics:
        general = {}
        specific = {}
        for entry in physical_nics:
            if not entry.get('flavor'):
                general[entry['physical_network']] = int(entry['count'])
            elif entry['flavor'] in flavor_keys:
                specific[entry['physical_network']] = int(entry['count'])
        if specific:
            return specific
        if general:
            return general
    node = server.get('hypervisor_hostname')
    if ironic_nics and node and node in ironic_nics:
        caps = dict(ironic_nics[node])
        if primary_physnet and caps.get(primary_physnet):
            caps[primary_physnet] -= 1
        return caps
    caps = {}
    for key, value in (flavor.get('extra_specs') or {}).items():
        if key.startswith(FLAVOR_NICS_PREFIX):
            try:
                caps[key[len(FLAVOR_NICS_PREFIX):]] = int(value)
            except (TypeError, ValueError):
                continue
    return caps or None


def nic_shortfall(plan, capacity, physnet_of):
    """Physical networks on which the plan needs more NICs than the node has.

    ``physnet_of`` maps a network ID to its physical network. On a bare-metal
    node every attachment holds one physical NIC of its physical network; the
    primary interface holds the boot NIC, which ``capacity`` does not count.
    """
    if not capacity:
        return []
    usage = Counter()
    detaching = set(p['id'] for p in plan.detach)
    for port in plan.ports:
        if port['id'] in detaching or port['id'] in plan.primary:
            continue
        physnet = physnet_of.get(port['network_id'])
        if physnet:
            usage[physnet] += 1
    requested = Counter()
    for want in plan.attach:
        physnet = want.physical_network or physnet_of.get(want.network_id)
        if physnet:
            requested[physnet] += 1
    short = []
    for physnet in sorted(requested):
        have = capacity.get(physnet, 0)
        if usage[physnet] + requested[physnet] > have:
            short.append({'physical_network': physnet, 'nics': have, 'in_use': usage[physnet],
                          'requested': requested[physnet]})
    return short


def describe_shortfall(plan, short, network_names):
    attached = sorted(network_names.get(p['network_id'], p['network_id'])
                      for p in plan.ports if p['id'] not in plan.primary)
    parts = ["physical network '%s' has %d NIC(s) for attachments, %d in use, %d more requested"
             % (s['physical_network'], s['nics'], s['in_use'], s['requested']) for s in short]
    return '%s (flavor %s; attached besides the primary network: %s): %s' % (
        plan.server['name'], (plan.server.get('flavor') or {}).get('name') or '?',
        ', '.join(attached) or 'nothing', '; '.join(parts))


# --------------------------------------------------------------------------
# Cloud access


def _read(fn):
    """A read, retried on transient errors (5xx, 429, refused connections) by the shared retry layer."""
    return retry_call(fn, idempotent=True, deadline=60.0)


class SdkCloud:
    """The few openstacksdk calls the module makes. Thread-safe as the SDK is.

    Reads are retried on transient errors; writes are retried by their callers, which
    know whether a repeat is safe.
    """

    def __init__(self, conn):
        self.conn = conn
        try:
            self.project_id = conn.current_project_id
        except Exception:  # noqa: BLE001 - without it, listings are not narrowed
            self.project_id = None

    def list_servers(self):
        return _read(lambda: [server_view(s) for s in self.conn.compute.servers(details=True)])

    def get_server(self, server_id):
        """The server, or None once it is gone."""
        try:
            server = _read(lambda: self.conn.compute.get_server(server_id))
        except Exception as exc:
            if http_status(exc) == 404:
                return None
            raise
        view = server_view(server)
        if view['status'] in ('DELETED', 'SOFT_DELETED'):
            return None
        return view

    def list_networks(self):
        """The networks the project can attach: its own, shared and external ones.

        Neutron shows an admin every project's networks; those of other projects
        would make names ambiguous and cannot be attached anyway.
        """
        nets = _read(lambda: [network_view(n) for n in self.conn.network.networks()])
        if not self.project_id:
            return nets
        return [n for n in nets if n['shared'] or n['external'] or n['project_id'] in (None, self.project_id)]

    def list_ports(self, **filters):
        # An admin would otherwise get every project's ports.
        if self.project_id and 'id' not in filters:
            filters.setdefault('project_id', self.project_id)
        return _read(lambda: [port_view(p) for p in self.conn.network.ports(**filters)])

    def list_subnets(self, **filters):
        return _read(lambda: [subnet_view(s) for s in self.conn.network.subnets(**filters)])

    def server_gone(self, server_id):
        """Whether Nova answers 404 for the server: the one answer proving it no longer exists.

        A soft-deleted server can still be restored, with its ports, so it is not gone.
        """
        try:
            _read(lambda: self.conn.compute.get_server(server_id))
        except Exception as exc:
            if http_status(exc) == 404:
                return True
            raise
        return False

    def is_admin(self):
        """Whether the token has the admin role, for which Nova ignores server locks."""
        try:
            session = self.conn.session
            access = session.auth.get_access(session)
            return 'admin' in [r.lower() for r in access.role_names or []]
        except Exception:  # noqa: BLE001 - unknown roles: assume a plain member, as most callers are
            return False

    def get_port(self, port_id):
        try:
            return port_view(_read(lambda: self.conn.network.get_port(port_id)))
        except Exception as exc:
            if http_status(exc) == 404:
                return None
            raise

    def create_port(self, **attrs):
        return port_view(self.conn.network.create_port(**attrs))

    def delete_port(self, port_id):
        self.conn.network.delete_port(port_id, ignore_missing=True)

    def describe_port(self, port_id, description):
        self.conn.network.update_port(port_id, description=description)

    def attach(self, server_id, net_id=None, port_id=None, fixed_ip=None):
        attrs = {}
        if port_id:
            attrs['port_id'] = port_id
        else:
            attrs['net_id'] = net_id
            if fixed_ip:
                attrs['fixed_ips'] = [{'ip_address': fixed_ip}]
        return attachment_view(self.conn.compute.create_server_interface(server_id, **attrs))

    def detach(self, server_id, port_id):
        self.conn.compute.delete_server_interface(port_id, server=server_id, ignore_missing=False)

    def flavor_extra_specs(self, refs):
        """{flavor name and ID: extra specs} of the flavors named in ``refs``.

        One flavor listing; extra specs are fetched per flavor only for the flavors
        asked for when the listing (below compute 2.61) leaves them out.
        """
        wanted = set(r for r in refs if r)
        found = {}
        for flavor in self.conn.compute.flavors(details=True):
            keys = [k for k in (field(flavor, 'id'), field(flavor, 'name', 'original_name')) if k]
            if not wanted.intersection(keys):
                continue
            specs = dict(field(flavor, 'extra_specs', default={}) or {})
            if not specs:
                try:
                    specs = dict(field(self.conn.compute.fetch_flavor_extra_specs(flavor),
                                       'extra_specs', default={}) or {})
                except Exception:  # noqa: BLE001 - unknown specs just mean an unknown capacity
                    specs = {}
            for key in keys:
                found[key] = specs
        return found

    def ironic_nics(self):
        """Physical NICs per node and physical network, or None when Ironic is not readable."""
        try:
            counts = {}
            for port in self.conn.baremetal.ports(details=True):
                node = field(port, 'node_id', 'node_uuid')
                physnet = field(port, 'physical_network')
                if node and physnet:
                    counts.setdefault(node, Counter())[physnet] += 1
            return counts
        except Exception:
            return None


# --------------------------------------------------------------------------
# Applying a plan


LOCK_DIR_ENV = 'HPCOPS_COE_LOCK_DIR'


def lock_dir():
    """Where runs on this machine leave their per-server locks (only the user can enter it)."""
    folder = os.environ.get(LOCK_DIR_ENV)
    if not folder:
        cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
        folder = os.path.join(cache, 'hpcops.coe', 'locks')
    return folder


class ServerLock:
    """An exclusive lock on one server's interfaces, held by one run on this machine.

    A file lock (flock): the kernel drops it when its process ends, however it ends,
    so a killed run never leaves a stale lock, while the module process of an
    interrupted ansible-playbook, which goes on attaching, still holds it. The file
    is removed on release; a waiter that locked a removed file tries again.
    """

    def __init__(self, folder, server_id):
        self.path = os.path.join(folder, 'server-%s.lock' % re.sub(r'[^A-Za-z0-9_.-]', '_', server_id))
        self.fd = None

    def try_acquire(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (IOError, OSError) as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    return False
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, ('pid %d on %s\n' % (os.getpid(), socket.gethostname())).encode())
            self.fd = fd
            return True

    def holder(self):
        try:
            with open(self.path) as f:
                return f.read().strip() or 'unknown'
        except (IOError, OSError):
            return 'unknown'

    def release(self):
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def server_locks():
    """A factory of ServerLocks, or None where files cannot be locked (the run then goes unserialized)."""
    if not HAS_FCNTL:
        return None
    folder = lock_dir()
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None
    return lambda server_id: ServerLock(folder, server_id)


def run_bounded(items, worker, concurrency):
    """``worker(item)`` for every item, at most ``concurrency`` at a time, results in order."""
    items = list(items)
    if not items:
        return []
    if concurrency <= 1 or len(items) == 1:
        return [worker(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(worker, items))


# Answers that say the cloud wants fewer requests at once.
THROTTLE_STATUSES = (409, 429, 503)


class AdaptiveConcurrency:
    """How many servers are worked on at once, adapted to how the cloud answers.

    Starts at ``start``. A server's work that took no longer per call than ``slower`` times the
    quickest seen so far means the cloud keeps up: one more server at a time (up to ``ceiling``),
    for every such server until the first throttling answer, then one more per ``limit`` of them.
    A throttling answer (THROTTLE_STATUSES) halves the number, once per round of completions, and
    holds back new servers until its Retry-After has passed. ``path`` records every change as
    (seconds since the start, servers at once).
    """

    def __init__(self, start, ceiling, slower=1.5, clock=time.monotonic):
        self.ceiling = max(1, ceiling)
        self.limit = max(1, min(start, self.ceiling))
        self.slower = slower
        self.clock = clock
        self.started = clock()
        self.path = [(0.0, self.limit)]
        self.throttles = 0
        self.active = 0
        self.quickest = None
        self.paused_until = 0.0
        self._throttled_once = False
        self._fast_in_row = 0
        self._done_since_cut = True
        self._cond = threading.Condition()

    def _set(self, limit):
        if limit != self.limit:
            self.limit = limit
            self.path.append((round(self.clock() - self.started, 2), limit))

    def acquire(self):
        with self._cond:
            while True:
                hold = self.paused_until - self.clock()
                if hold <= 0 and self.active < self.limit:
                    break
                self._cond.wait(timeout=hold if hold > 0 else None)
            self.active += 1

    def release(self, seconds, calls):
        """A server's work is done: it took `seconds` for `calls` attach/detach calls (0: nothing to judge)."""
        with self._cond:
            self.active -= 1
            self._done_since_cut = True
            if calls:
                per_call = seconds / calls
                if self.quickest is None or per_call < self.quickest:
                    self.quickest = per_call
                if per_call <= self.slower * self.quickest:
                    self._fast_in_row += 1
                    if not self._throttled_once or self._fast_in_row >= self.limit:
                        self._fast_in_row = 0
                        self._set(min(self.ceiling, self.limit + 1))
                else:
                    self._fast_in_row = 0
            self._cond.notify_all()

    def throttled(self, retry_after=0.0):
        """The cloud answered 409/429/503; `retry_after` is how long it asked to wait (or the retry's delay)."""
        with self._cond:
            self.throttles += 1
            self._throttled_once = True
            self._fast_in_row = 0
            if self._done_since_cut:
                # the other servers under way were sent at the old number: cut once per round
                self._done_since_cut = False
                self._set(max(1, self.limit // 2))
            self.paused_until = max(self.paused_until, self.clock() + max(0.0, retry_after or 0.0))
            self._cond.notify_all()

    def report(self):
        return {'start': self.path[0][1], 'ceiling': self.ceiling, 'final': self.limit,
                'highest': max(limit for _t, limit in self.path), 'throttled': self.throttles,
                'path': [list(step) for step in self.path]}


def run_adaptive(items, worker, controller, calls=lambda item: 0):
    """``worker(item)`` for every item, as many at a time as ``controller`` allows; results in order.
    ``calls(item)`` is how many cloud calls the item's work makes (what its duration is judged by)."""
    items = list(items)
    if not items:
        return []

    def run(item):
        controller.acquire()
        start = controller.clock()
        try:
            return worker(item)
        finally:
            controller.release(controller.clock() - start, calls(item))

    if controller.ceiling <= 1 or len(items) == 1:
        return [run(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(controller.ceiling, len(items))) as pool:
        return list(pool.map(run, items))


class Applier:
    """Carries out ServerPlans against a cloud, one worker per server."""

    def __init__(self, cloud, retries=10, retry_delay=1.0, max_delay=30.0, wait=True,
                 timeout=180, poll_interval=1.0, sleep=time.sleep, clock=time.monotonic, locks=None, replan=None,
                 on_throttle=None):
        self.cloud = cloud
        self.on_throttle = on_throttle  # called with the retry's delay when the cloud throttles
        self.locks = locks          # server id -> ServerLock, or None
        self.replan = replan        # server -> a fresh ServerPlan, after waiting for another run
        self.lock_waits = 0
        self.retries = retries
        self.retry_delay = retry_delay
        self.max_delay = max_delay
        self.wait = wait
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.sleep = sleep
        self.clock = clock
        self.lock = threading.Lock()
        self.retried = 0

    def _count_retry(self, exc, attempt, delay):
        with self.lock:
            self.retried += 1
        if self.on_throttle is not None and http_status(exc) in THROTTLE_STATUSES:
            # the delay already honours the answer's Retry-After
            self.on_throttle(delay)

    def _retry(self, func):
        return retry_call(func, attempts=self.retries + 1, deadline=self.timeout,
                          base_delay=self.retry_delay, max_delay=self.max_delay,
                          retry_if=is_retryable_refusal, on_retry=self._count_retry,
                          sleep=self.sleep, clock=self.clock)

    def _poll(self, check, deadline):
        """Call ``check()`` until it returns True; False once the deadline has passed."""
        try:
            wait_for(check, bool, timeout=max(0.0, deadline - self.clock()),
                     interval=min(self.poll_interval, 0.2), max_interval=self.poll_interval,
                     backoff=2.0, clock=self.clock, sleep=self.sleep)
        except WaitTimeout:
            return False
        return True

    def apply(self, plan):
        lock = self.locks(plan.server['id']) if self.locks is not None else None
        if lock is not None:
            if not lock.try_acquire():
                # Another run on this machine is changing this server's interfaces (maybe the
                # module process of an interrupted ansible-playbook): wait for it.
                holder = lock.holder()
                if not self._poll(lock.try_acquire, self.clock() + self.timeout):
                    return {'name': plan.server['name'], 'attached': [], 'detached': [], 'created_ports': [],
                            'failed': True, 'vanished': False, 'ports': list(plan.ports),
                            'msg': '%s: another run of this module (%s) was still changing its interfaces '
                                   'after %ss; nothing was changed on it'
                                   % (plan.server['name'], holder, self.timeout)}
                with self.lock:
                    self.lock_waits += 1
        if lock is not None and self.replan is not None and plan.changes:
            # The plan comes from a listing made before the lock: another run may have changed
            # the server in between (and be done already). Plan it again from its ports now.
            try:
                fresh = self.replan(plan.server)
            except Exception as exc:  # noqa: BLE001 - reported as this server's failure
                lock.release()
                return {'name': plan.server['name'], 'attached': [], 'detached': [], 'created_ports': [],
                        'failed': True, 'vanished': False, 'ports': list(plan.ports),
                        'msg': '%s: reading its ports again failed: %s' % (plan.server['name'],
                                                                           describe_error(exc))}
            # Free ports of an interrupted run, found in the first listing, are still to be reused.
            reuse = dict((w.index, w.reuse_port) for w in plan.attach if w.reuse_port is not None)
            for want in fresh.attach:
                want.reuse_port = reuse.get(want.index)
            for key in ('ports', 'primary', 'keep', 'attach', 'detach'):
                setattr(plan, key, getattr(fresh, key))
        try:
            return self._apply(plan)
        finally:
            if lock is not None:
                lock.release()

    def _apply(self, plan):
        server = plan.server
        outcome = {'name': server['name'], 'attached': [], 'detached': [], 'created_ports': [],
                   'failed': False, 'msg': '', 'vanished': False, 'ports': list(plan.ports)}
        try:
            self._detach_all(plan, outcome)
            try:
                for want in plan.attach:
                    self._attach_one(plan, want, outcome)
            finally:
                # Also when an attach raised: what did land may have been made twice.
                if outcome['attached']:
                    self._undo_duplicates_after(plan, outcome)
        except InterfaceError as exc:
            outcome['failed'] = True
            outcome['msg'] = str(exc)
        except Exception as exc:  # one server's failure must not stop the others
            outcome['failed'] = True
            outcome['msg'] = '%s: %s' % (server['name'], describe_error(exc))
        if outcome['failed'] and not outcome['vanished']:
            if self._vanished(server['id']):
                outcome['vanished'] = True
                outcome['msg'] = '%s: the server was deleted during the run (%s)' % (
                    server['name'], outcome['msg'])
        if outcome['vanished']:
            # Nova keeps ports it did not create when the server goes: remove ours.
            for port_id in outcome['created_ports']:
                self._delete_quietly(port_id)
        return outcome

    def _vanished(self, server_id):
        try:
            return self.cloud.get_server(server_id) is None
        except Exception:
            return False

    def _delete_quietly(self, port_id):
        try:
            self.cloud.delete_port(port_id)
        except Exception:
            pass

    def _detach_all(self, plan, outcome):
        server = plan.server
        for port in plan.detach:
            try:
                self._retry(lambda p=port: self.cloud.detach(server['id'], p['id']))
            except Exception as exc:
                if http_status(exc) != 404:
                    raise InterfaceError('%s: detaching port %s failed: %s'
                                         % (server['name'], port['id'], describe_error(exc)))
                if self._vanished(server['id']):
                    outcome['vanished'] = True
                    raise InterfaceError('%s: the server was deleted during the run' % server['name'])
            outcome['detached'].append(port)
        if not plan.detach:
            return
        # Detach is asynchronous. A bare-metal NIC is free only once it completes, and a
        # port the module created can only be deleted then.
        must_wait = bool(plan.attach) or any(is_module_port(p) for p in plan.detach) or self.wait
        if not must_wait:
            return
        deadline = self.clock() + self.timeout
        for port in plan.detach:
            if self._wait_released(server, port, deadline) is not None and is_module_port(port):
                self.cloud.delete_port(port['id'])

    def _undo_duplicates_after(self, plan, outcome):
        try:
            self._undo_duplicates(plan, outcome)
        except Exception as exc:  # noqa: BLE001 - kept with the server's outcome, never hiding the first error
            outcome['undo_error'] = describe_error(exc) if not isinstance(exc, InterfaceError) else str(exc)
            if not outcome['failed']:
                outcome['failed'] = True
                outcome['msg'] = '%s: %s' % (plan.server['name'], outcome['undo_error'])

    def _undo_duplicates(self, plan, outcome):
        """Take back this run's attachments that a concurrent run made as well.

        Two runs that planned from the same listing attach each missing network twice.
        Nova appends every attachment to the server's addresses in the order it made
        them (attachments on one server are serialized), so every run ranks the
        server's ports alike, first attached first. Each want keeps the first matching
        port; a run detaches only its own attachments that lost, and reports the port
        that won as already there.
        """
        mine = dict((att['id'], att) for att in outcome['attached'] if att.get('id'))
        server = self.cloud.get_server(plan.server['id'])
        if not mine or server is None:
            return
        ports = server_ports(self.cloud.list_ports(device_id=server['id']), server['id'])
        by_mac = _address_order(server, {})[0]
        ranked = sorted(ports, key=lambda p: (by_mac.get((p.get('mac_address') or '').lower(), 10 ** 6),
                                              p.get('created_at') or '~', p['id']))
        used = set(plan.primary) | set(port['id'] for want, port in plan.keep if want is not None)
        winners = {}
        for want in sorted(plan.attach, key=lambda w: (w.specificity(), w.index)):
            for port in ranked:
                if port['id'] not in used and want.matches(port):
                    used.add(port['id'])
                    winners[want.index] = port
                    break
        losers = [port for port in ranked if port['id'] in mine and port['id'] not in used]
        if not losers:
            return
        outcome['attached'] = [att for att in outcome['attached'] if att.get('id') in used]
        for want in plan.attach:
            port = winners.get(want.index)
            if port is not None and port['id'] not in mine:
                outcome.setdefault('adopted', []).append((want, port))
        deadline = self.clock() + self.timeout
        for port in losers:
            try:
                self._retry(lambda p=port: self.cloud.detach(server['id'], p['id']))
            except Exception as exc:
                if http_status(exc) != 404:
                    raise InterfaceError('%s: detaching the duplicate port %s failed: %s'
                                         % (server['name'], port['id'], describe_error(exc)))
            if self._wait_released(server, port, deadline) is not None and port['id'] in outcome['created_ports']:
                self.cloud.delete_port(port['id'])
            if port['id'] in outcome['created_ports']:
                outcome['created_ports'].remove(port['id'])

    def _wait_released(self, server, port, deadline):
        """The port once Nova let go of it (None when Nova deleted it)."""
        seen = {}

        def released():
            seen['port'] = self.cloud.get_port(port['id'])
            return seen['port'] is None or seen['port']['device_id'] != server['id']

        if not self._poll(released, deadline):
            raise InterfaceError('%s: port %s was still attached after %ss'
                                 % (server['name'], port['id'], self.timeout))
        return seen['port']

    def _attach_one(self, plan, want, outcome):
        server = plan.server
        created = None
        port_id = want.port['id'] if want.port is not None else None
        if port_id is None and want.creates_port():
            reuse = want.reuse_port
            if reuse is not None:
                port_id = reuse['id']
                created = reuse['id']
            else:
                attrs = {'network_id': want.network_id,
                         'description': module_port_description(server['id'])}
                fixed = {}
                if want.subnet is not None:
                    fixed['subnet_id'] = want.subnet['id']
                if want.fixed_ip:
                    fixed['ip_address'] = want.fixed_ip
                if fixed:
                    attrs['fixed_ips'] = [fixed]
                if want.vnic_type:
                    attrs['binding_vnic_type'] = want.vnic_type
                elif plan.bare_metal:
                    # Neutron binds a port to an Ironic node only with this vnic_type.
                    attrs['binding_vnic_type'] = 'baremetal'
                if want.binding_profile is not None:
                    attrs['binding_profile'] = want.binding_profile
                if want.port_security_enabled is not None:
                    attrs['is_port_security_enabled'] = want.port_security_enabled
                name = want.port_name_for(server)
                if name:
                    attrs['name'] = name
                try:
                    port = self.cloud.create_port(**attrs)
                except Exception as exc:
                    raise InterfaceError('%s: creating a port on %s failed: %s'
                                         % (server['name'], want.network_name, describe_error(exc)))
                port_id = created = port['id']
            outcome['created_ports'].append(created)
        try:
            def attach():
                if port_id:
                    return self.cloud.attach(server['id'], port_id=port_id)
                return self.cloud.attach(server['id'], net_id=want.network_id, fixed_ip=want.fixed_ip)

            att = self._retry_attach(attach, lambda: self._landed(plan, want, port_id, outcome))
        except Exception as exc:
            if created:
                self._delete_quietly(created)
                outcome['created_ports'].remove(created)
            status = http_status(exc)
            if status == 404 and self._vanished(server['id']):
                outcome['vanished'] = True
                raise InterfaceError('%s: the server was deleted during the run' % server['name'])
            msg = '%s: attaching %s failed: %s' % (server['name'], want.label(), describe_error(exc))
            if status == 500 and want.physical_network:
                msg += (". On bare metal this usually means no free physical NIC on physical"
                        " network '%s'; declare the node's NICs (physical_nics, or the flavor"
                        " extra spec %s%s) to have this checked before any change"
                        % (want.physical_network, FLAVOR_NICS_PREFIX, want.physical_network))
            raise InterfaceError(msg)
        if not att.get('network_id'):
            att['network_id'] = want.network_id
        att['want_index'] = want.index
        outcome['attached'].append(att)
        if created is None and want.port is None and not is_module_port(att, server['id']):
            # Nova made this port: mark it as this module's attachment, so that a later run can
            # tell a duplicate it made (an interrupted run's) from someone else's port.
            try:
                retry_call(lambda: self.cloud.describe_port(att['id'], module_port_description(server['id'])),
                           attempts=self.retries + 1, deadline=self.timeout, base_delay=self.retry_delay,
                           max_delay=self.max_delay, sleep=self.sleep, clock=self.clock)
                att['description'] = module_port_description(server['id'])
            except Exception:  # noqa: BLE001 - unmarked, the port only loses duplicate detection
                pass

    def _retry_attach(self, attach, landed):
        """The attach, retried on busy servers and rate limits and, checking first whether it landed, on 5xx
        answers."""
        return retry_unsure_call(attach, landed, retry_if=is_retryable_refusal, attempts=self.retries + 1,
                                 deadline=self.timeout, base_delay=self.retry_delay, max_delay=self.max_delay,
                                 on_retry=self._count_retry, sleep=self.sleep, clock=self.clock)

    def _landed(self, plan, want, port_id, outcome):
        """The attachment an attach that answered 5xx made after all, or None."""
        server_id = plan.server['id']
        known = set(p['id'] for p in plan.ports) | set(a.get('id') for a in outcome['attached'])
        for port in self.cloud.list_ports(device_id=server_id):
            if port['device_id'] != server_id or port['id'] in known:
                continue
            if port_id:
                if port['id'] == port_id:
                    return dict(port)
            elif port['network_id'] == want.network_id and (
                    not want.fixed_ip or want.fixed_ip in [f['ip_address'] for f in port['fixed_ips']]):
                return dict(port)
        return None

    def wait_active(self, outcomes, chunk=40):
        """Wait until every port attached in ``outcomes`` is ACTIVE.

        Runs once after all workers, so that no worker holds a slot while its last
        port binds, and polls with port listings filtered by ID (``chunk`` IDs per
        request) rather than one request per port. Outcomes whose ports do not
        become ACTIVE in time are marked failed.
        """
        pending = {}
        for outcome in outcomes:
            if outcome.get('predicted'):
                continue
            for att in outcome['attached']:
                if (att.get('status') or '').upper() != 'ACTIVE':
                    pending[att['id']] = (att, outcome)
        if not pending:
            return
        deadline = self.clock() + self.timeout

        def settled():
            ids = sorted(pending)
            seen = set()
            for i in range(0, len(ids), chunk):
                for port in self.cloud.list_ports(id=ids[i:i + chunk]):
                    if port['id'] not in pending:
                        continue
                    seen.add(port['id'])
                    att = pending[port['id']][0]
                    att['status'] = port['status']
                    if port['mac_address']:
                        att['mac_address'] = port['mac_address']
                    if port['fixed_ips']:
                        att['fixed_ips'] = port['fixed_ips']
                    att['client_id'] = port.get('client_id')
                    if (port['status'] or '').upper() == 'ACTIVE':
                        del pending[port['id']]
            for port_id in [p for p in ids if p not in seen and p in pending]:
                att, outcome = pending.pop(port_id)
                outcome['failed'] = True
                outcome['msg'] = outcome['msg'] or ('%s: port %s on %s disappeared while waiting for it to be ACTIVE'
                                                    % (outcome['name'], port_id, att['network_id']))
            return not pending

        if not self._poll(settled, deadline):
            for port_id, (att, outcome) in pending.items():
                outcome['failed'] = True
                outcome['msg'] = outcome['msg'] or ('%s: port %s on %s is %s, not ACTIVE, after %ss' % (
                    outcome['name'], port_id, att['network_id'], att['status'], self.timeout))


def stale_ports(cloud, all_ports, known_server_ids, keep_port_ids=()):
    """The ports of ``stale_port_candidates`` whose server Nova confirms gone.

    A server listing is a moment earlier than the port listing, so a server made in
    between (and given a port by a concurrent run) is missing from it; one look-up per
    server named by a candidate tells for sure. Converged runs have no candidates.
    """
    candidates = stale_port_candidates(all_ports, known_server_ids, keep_port_ids)
    gone = {}
    for server_id in sorted(set(module_port_server_id(p) for p in candidates)):
        try:
            gone[server_id] = cloud.server_gone(server_id)
        except Exception:  # noqa: BLE001 - when Nova cannot tell, the port stays
            gone[server_id] = False
    return [p for p in candidates if gone[module_port_server_id(p)]]


def remove_stale_ports(cloud, ports):
    """Delete the ``stale_ports``; returns (ports removed, problems as text).

    Each port is read again first, so that one attached (or deleted) since the
    listing is left alone: deleting an attached port would pull it out of a server.
    """
    removed = []
    problems = []
    for port in ports:
        try:
            current = cloud.get_port(port['id'])
            if (current is None or current['device_id']
                    or module_port_server_id(current) != module_port_server_id(port)):
                continue
            cloud.delete_port(port['id'])
        except Exception as exc:  # noqa: BLE001 - a leftover that stays is not worth failing the run
            problems.append('deleting stale port %s failed: %s' % (port['id'], describe_error(exc)))
            continue
        removed.append(port)
    return removed, problems


def mark_reusable_ports(plans, all_ports):
    """Ports this module created for a server in an earlier, interrupted run are reused."""
    free = [p for p in all_ports if not p['device_id'] and is_module_port(p)]
    taken = set()
    for plan in plans:
        for want in plan.attach:
            if not want.creates_port():
                continue
            name = want.port_name_for(plan.server)
            for port in free:
                if (port['id'] not in taken and port['network_id'] == want.network_id
                        and is_module_port(port, plan.server['id'])
                        and (not name or port['name'] == name)
                        and (not want.fixed_ip or want.fixed_ip in [f['ip_address'] for f in port['fixed_ips']])
                        and (want.subnet is None or want.subnet['id'] in [f['subnet_id'] for f in port['fixed_ips']])):
                    want.reuse_port = port
                    taken.add(port['id'])
                    break


# --------------------------------------------------------------------------
# Reporting


def describe_interface(port, networks_by_id, subnets_by_id, primary_ids):
    net = networks_by_id.get(port['network_id'], {})
    addresses = []
    for f in port['fixed_ips']:
        sub = subnets_by_id.get(f.get('subnet_id')) or {}
        entry = {'address': f.get('ip_address'), 'subnet_id': f.get('subnet_id'),
                 'cidr': sub.get('cidr'), 'prefix_length': None,
                 'gateway': sub.get('gateway_ip'), 'dhcp': sub.get('enable_dhcp'),
                 'version': sub.get('ip_version')}
        if sub.get('cidr'):
            try:
                parsed = ipaddress.ip_network(sub['cidr'], strict=False)
                entry['prefix_length'] = parsed.prefixlen
                entry['version'] = parsed.version
            except ValueError:
                pass
        if entry['version'] == 6:
            entry['ipv6_address_mode'] = sub.get('ipv6_address_mode')
            entry['ipv6_ra_mode'] = sub.get('ipv6_ra_mode')
        addresses.append(entry)
    mode, ra, cidrs = ipv6_addressing(addresses)
    return {
        'network': net.get('name') or port['network_id'],
        'network_id': port['network_id'],
        'port_id': port['id'],
        'mac_address': port.get('mac_address'),
        'fixed_ips': [f.get('ip_address') for f in port['fixed_ips']],
        'ip_addresses': addresses,
        'status': port.get('status'),
        'primary': port['id'] in primary_ids,
        'mtu': net.get('mtu'),
        'physical_network': net.get('physical_network'),
        'client_id': port.get('client_id'),
        'ipv6_mode': mode,
        'ipv6_router_advertisements': ra,
        'ipv6_cidrs': cidrs,
    }


def ipv6_addressing(addresses):
    """(mode, router advertisements, CIDRs) of an interface's IPv6 addresses, from their subnets.

    ``mode`` follows the subnet's ``ipv6_address_mode``: C(slaac) and C(dhcpv6-stateless)
    (address from router advertisements), C(dhcpv6-stateful) (address from DHCPv6), or
    C(static) when the subnet hands out no address itself (no mode); None without IPv6.
    Router advertisements come from Neutron when the subnet has an ``ipv6_ra_mode``
    (an external router may send them too, but nothing tells). Without them a DHCPv6
    client must start on its own, and the subnet's prefix route is not announced.
    """
    v6 = [a for a in addresses if a.get('version') == 6]
    if not v6:
        return None, False, []
    modes = [a.get('ipv6_address_mode') for a in v6]
    mode = modes[0] if modes[0] in ('slaac', 'dhcpv6-stateless', 'dhcpv6-stateful') else 'static'
    ra = any(a.get('ipv6_ra_mode') for a in v6)
    cidrs = sorted(set(a['cidr'] for a in v6 if a.get('cidr')))
    return mode, ra, cidrs


def attachment_label(network_name, ips, primary=False, new=False):
    text = network_name
    if ips:
        text += ' ' + ','.join(ips)
    elif new:
        text += ' (new port)'
    if primary:
        text += ' (primary)'
    return text

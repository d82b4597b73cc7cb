# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pod networks on the nodes' extra Neutron networks: the decisions of hpcops.coe.pod_network.

A pod network is a Multus NetworkAttachmentDefinition (k8s.cni.cncf.io/v1)
whose CNI configuration follows from the Neutron subnet and the node
interface the network was attached as:

- the CNI plugin must suit the link: macvlan/ipvlan/host-device/sriov for
  Ethernet, ipoib/host-device for InfiniBand (an IPoIB link has no Ethernet
  header, so macvlan and ipvlan cannot run over it);
- addresses come from whereabouts, in a range that Neutron never hands out:
  outside every allocation pool of the subnet, off the gateway and off the
  addresses Neutron ports already hold (ports may carry fixed IPs outside the
  pools). Without such a range the pods would take addresses Neutron gives to
  the next server it boots, so no range means a refusal, not a guess.

Everything here is pure: the module and the unit tests call it the same way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json

NAD_API = 'k8s.cni.cncf.io/v1'
NAD_KIND = 'NetworkAttachmentDefinition'
NETWORKS_ANNOTATION = 'k8s.v1.cni.cncf.io/networks'
NETWORK_STATUS_ANNOTATION = 'k8s.v1.cni.cncf.io/network-status'
RESOURCE_ANNOTATION = 'k8s.v1.cni.cncf.io/resourceName'
NETWORK_LABEL = 'hpcops.coe/network'
CNI_VERSION = '0.4.0'

CNI_TYPES = ('macvlan', 'ipvlan', 'host-device', 'ipoib', 'sriov')
LINK_TYPES = ('ethernet', 'infiniband')
# The CNI plugins that work on each kind of link.
SUITS = {
    'ethernet': ('macvlan', 'ipvlan', 'host-device', 'sriov'),
    'infiniband': ('ipoib', 'host-device'),
}
# Largest MTU of a link: IPoIB connected mode, jumbo Ethernet.
MAX_MTU = {'ethernet': 9216, 'infiniband': 65520}

# The operator that may already own pod networks, and the kinds through which it makes NADs.
NETWORK_OPERATOR_API = 'mellanox.com/v1alpha1'
NETWORK_OPERATOR_NETWORK_KINDS = ('IPoIBNetwork', 'MacvlanNetwork', 'HostDeviceNetwork')


class RangeError(ValueError):
    """No range that Neutron cannot hand out, or a given range that it can."""


def _address(text, what):
    try:
        return ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise RangeError('%s %r is not an IP address' % (what, text))


def subnet_network(cidr):
    try:
        return ipaddress.ip_network(str(cidr).strip(), strict=False)
    except ValueError:
        raise RangeError('subnet cidr %r is not a network in CIDR notation (for example 10.25.0.0/16)' % (cidr,))


def usable_bounds(net):
    """First and last host address of a subnet (IPv4 drops the network and broadcast addresses)."""
    if net.version == 4 and net.prefixlen < 31:
        return int(net.network_address) + 1, int(net.broadcast_address) - 1
    if net.version == 6 and net.prefixlen < 127:
        # the subnet-router anycast address (all zeros) is not a host address
        return int(net.network_address) + 1, int(net.broadcast_address)
    return int(net.network_address), int(net.broadcast_address)


def _pool_bounds(net, pools):
    out = []
    for i, pool in enumerate(pools or []):
        start = _address(pool.get('start'), 'allocation_pools[%d].start' % i)
        end = _address(pool.get('end'), 'allocation_pools[%d].end' % i)
        if start.version != net.version or end.version != net.version or int(end) < int(start):
            raise RangeError('allocation_pools[%d] %s-%s is not a range of IPv%d addresses'
                             % (i, start, end, net.version))
        out.append((int(start), int(end)))
    return sorted(out)


def parse_range(text, net):
    """(first, last) of a range given as 'A-B' or as a CIDR inside the subnet."""
    text = str(text).strip()
    if '-' in text:
        first, last = [_address(p, 'range bound') for p in text.split('-', 1)]
    else:
        try:
            block = ipaddress.ip_network(text, strict=True)
        except ValueError:
            raise RangeError('range %r is neither FIRST-LAST nor a CIDR block such as 10.25.240.0/20 (with the '
                             'host bits zero)' % text)
        first, last = block.network_address, block.broadcast_address
    if first.version != net.version or last.version != net.version:
        raise RangeError('range %s is not IPv%d like subnet %s' % (text, net.version, net))
    if int(last) < int(first):
        raise RangeError('range %s ends before it starts' % text)
    return int(first), int(last)


def _fmt(net, value):
    return str(ipaddress.ip_address(value) if net.version == 4 else ipaddress.IPv6Address(value))


def free_blocks(net, taken):
    """Runs of host addresses of the subnet that no interval of `taken` touches, in order."""
    low, high = usable_bounds(net)
    blocks = []
    cursor = low
    for start, end in sorted(taken):
        if end < cursor:
            continue
        if start > high:
            break
        if start > cursor:
            blocks.append((cursor, min(start - 1, high)))
        cursor = max(cursor, end + 1)
    if cursor <= high:
        blocks.append((cursor, high))
    return blocks


def safe_range(cidr, allocation_pools, gateway_ip=None, reserved=(), requested=None, min_addresses=8,
               network='the network'):
    """The whereabouts range for a subnet: a run of addresses Neutron will never hand out.

    Returns {cidr, first, last, size}. `reserved` are addresses Neutron ports hold
    (fixed IPs may sit outside the pools). With `requested` the range is checked,
    else the largest free run outside the pools is taken (the highest one on a tie,
    away from the gateway at the bottom by convention). Raises RangeError saying
    what collides or what to change.
    """
    net = subnet_network(cidr)
    pools = _pool_bounds(net, allocation_pools)
    points = []
    if gateway_ip:
        points.append(('gateway', int(_address(gateway_ip, 'gateway_ip'))))
    for i, addr in enumerate(reserved or []):
        points.append(('address %s held by a Neutron port' % addr, int(_address(addr, 'reserved[%d]' % i))))
    low, high = usable_bounds(net)
    if requested:
        first, last = parse_range(requested, net)
        if first < low or last > high:
            raise RangeError('range %s of %s is not inside the host addresses %s-%s of subnet %s'
                             % (requested, network, _fmt(net, low), _fmt(net, high), net))
        for start, end in pools:
            if first <= end and start <= last:
                raise RangeError('range %s of %s overlaps the allocation pool %s-%s of subnet %s: Neutron hands '
                                 'those addresses to new ports, so pods would collide with servers; choose a range '
                                 'outside every allocation pool (free runs: %s)'
                                 % (requested, network, _fmt(net, start), _fmt(net, end), net,
                                    describe_blocks(net, free_blocks(net, pools + [(p, p) for _w, p in points]))))
        for what, point in points:
            if first <= point <= last:
                raise RangeError('range %s of %s holds the %s (%s); leave it out' % (
                    requested, network, what if what == 'gateway' else what.split(' held')[0] + ', which a Neutron '
                    'port holds', _fmt(net, point)))
        return {'cidr': str(net), 'first': _fmt(net, first), 'last': _fmt(net, last), 'size': last - first + 1}
    taken = pools + [(p, p) for _what, p in points]
    blocks = free_blocks(net, taken)
    if not blocks:
        raise RangeError('no safe range for the pods of %s: the allocation pools of subnet %s cover all its host '
                         'addresses, so every address may go to a Neutron port. Shrink an allocation pool (openstack '
                         'subnet set --no-allocation-pool --allocation-pool start=...,end=... %s) and give the freed '
                         'run as range, or set range to a block outside the pools' % (network, net, net))
    best = max(blocks, key=lambda b: (b[1] - b[0], b[0]))
    size = best[1] - best[0] + 1
    if size < min_addresses:
        raise RangeError('no safe range for the pods of %s: outside the allocation pools of subnet %s the largest '
                         'free run is %s (%d addresses), fewer than min_addresses=%d. Shrink an allocation pool '
                         '(openstack subnet set ... %s) and give the freed run as range, or lower min_addresses'
                         % (network, net, describe_blocks(net, [best]), size, min_addresses, net))
    return {'cidr': str(net), 'first': _fmt(net, best[0]), 'last': _fmt(net, best[1]), 'size': size}


def describe_blocks(net, blocks):
    return ', '.join('%s-%s' % (_fmt(net, a), _fmt(net, b)) for a, b in blocks) or 'none'


def in_range(address, ipam_range):
    """Whether `address` (with or without a prefix length) lies in {first, last} of a range."""
    try:
        value = int(ipaddress.ip_interface(str(address)).ip)
    except ValueError:
        return False
    return int(ipaddress.ip_address(ipam_range['first'])) <= value <= int(ipaddress.ip_address(ipam_range['last']))


# ------------------------------------------------------------------ input checks

def validate(params):
    """Problems with the module's input that need no API call, as sentences naming the option."""
    problems = []
    link, cni = params.get('link_type') or 'ethernet', params.get('type')
    if cni and cni not in SUITS.get(link, ()):
        if link == 'infiniband' and cni in ('macvlan', 'ipvlan'):
            problems.append('type=%s cannot run on InfiniBand network %s: an IPoIB link carries no Ethernet header '
                            'for %s to put its own MAC address in; use type=ipoib (or host-device to give the whole '
                            'link to one pod)' % (cni, params.get('network') or params.get('name'), cni))
        elif link == 'infiniband' and cni == 'sriov':
            problems.append('type=sriov is for Ethernet virtual functions; InfiniBand network %s needs type=ipoib '
                            '(or host-device)' % (params.get('network') or params.get('name')))
        else:
            problems.append('type=%s does not suit a %s link; use one of %s'
                            % (cni, link, ', '.join(SUITS.get(link, ()))))
    if cni == 'sriov' and not params.get('resource_name'):
        problems.append('type=sriov needs resource_name, the SR-IOV device plugin resource whose virtual functions '
                        'the pods get (for example intel.com/sriov_25g)')
    if cni and cni != 'sriov' and not params.get('interface'):
        problems.append('interface is required with type=%s: the name of the link the network is attached as on '
                        'the nodes (for example ens2f0 or ibp65s0)' % cni)
    mtu = params.get('mtu')
    if mtu is not None and not 68 <= mtu <= MAX_MTU.get(link, 9216):
        problems.append('mtu %s is outside 68-%d for a %s link' % (mtu, MAX_MTU.get(link, 9216), link))
    if params.get('network_mtu') and mtu and mtu > params['network_mtu']:
        problems.append('mtu %d is larger than the MTU %d of the Neutron network %s; pods cannot send bigger '
                        'frames than the network carries' % (mtu, params['network_mtu'], params.get('network')))
    subnet = params.get('subnet') or {}
    if not subnet.get('cidr'):
        problems.append('subnet.cidr is required (the Neutron subnet the pods share with the nodes)')
    if params.get('min_addresses') is not None and params['min_addresses'] < 2:
        problems.append('min_addresses must be 2 or more (two pods on different nodes are the smallest use)')
    if params.get('validate') and params.get('validation_nodes') is not None and \
            len(set(params['validation_nodes'])) == 1:
        problems.append('validation_nodes needs two nodes or more (pods on different nodes reach each other)')
    return problems


def ipam_range(params):
    """The range of the module's input, or RangeError."""
    subnet = params['subnet']
    return safe_range(subnet['cidr'], subnet.get('allocation_pools') or [], subnet.get('gateway_ip'),
                      reserved=params.get('reserved_addresses') or [], requested=params.get('range'),
                      min_addresses=params.get('min_addresses') or 8,
                      network=params.get('network') or params['name'])


# ------------------------------------------------------------------ CNI configuration

def cni_config(params, rng):
    """The CNI configuration (a dict) of the NetworkAttachmentDefinition."""
    ipam = {'type': 'whereabouts', 'range': rng['cidr'], 'range_start': rng['first'], 'range_end': rng['last'],
            # one IPPool per network even when two networks reuse a CIDR
            'network_name': params['name']}
    gateway = (params.get('subnet') or {}).get('gateway_ip')
    if gateway:
        ipam['gateway'] = gateway
    cni = params['type']
    config = {'cniVersion': CNI_VERSION, 'name': params['name'], 'type': cni}
    if cni == 'macvlan':
        config.update({'master': params['interface'], 'mode': params.get('mode') or 'bridge'})
    elif cni == 'ipvlan':
        config.update({'master': params['interface'], 'mode': params.get('mode') or 'l2'})
    elif cni == 'ipoib':
        config['master'] = params['interface']
    elif cni == 'host-device':
        config['device'] = params['interface']
    if params.get('mtu') and cni in ('macvlan', 'ipvlan', 'sriov'):
        config['mtu'] = params['mtu']
    config['ipam'] = ipam
    return config


def nad_manifest(params, rng):
    config = cni_config(params, rng)
    labels = {'app.kubernetes.io/managed-by': 'hpcops.coe'}
    if params.get('network'):
        labels[NETWORK_LABEL] = label_safe(params['network'])
    meta = {'name': params['name'], 'namespace': params['namespace'], 'labels': labels}
    if params.get('resource_name'):
        meta['annotations'] = {RESOURCE_ANNOTATION: params['resource_name']}
    # sorted keys: the same input always gives the same string, so a rerun changes nothing
    return {'apiVersion': NAD_API, 'kind': NAD_KIND, 'metadata': meta,
            'spec': {'config': json.dumps(config, sort_keys=True)}}


def label_safe(text):
    out = ''.join(c if c.isalnum() or c in '-_.' else '-' for c in str(text))[:63].strip('-_.')
    return out or 'network'


# ------------------------------------------------------------------ ownership

def operator_owner(nad, operator_networks):
    """Who else manages this NAD: a network-operator network object of its name, or its owner references."""
    meta = (nad or {}).get('metadata') or {}
    for ref in meta.get('ownerReferences') or []:
        if str(ref.get('apiVersion', '')).startswith('mellanox.com/'):
            return '%s %s (NVIDIA network operator)' % (ref.get('kind'), ref.get('name'))
    for obj in operator_networks or []:
        om = obj.get('metadata') or {}
        target = ((obj.get('spec') or {}).get('networkNamespace')) or 'default'
        if om.get('name') == meta.get('name') and target == meta.get('namespace'):
            return '%s %s (NVIDIA network operator)' % (obj.get('kind'), om.get('name'))
    return None


# ------------------------------------------------------------------ what Multus reports

def network_status(pod, nad_ref):
    """The entry of the pod's Multus network-status annotation for `nad_ref` ('ns/name'), or None."""
    annotations = ((pod or {}).get('metadata') or {}).get('annotations') or {}
    text = annotations.get(NETWORK_STATUS_ANNOTATION)
    if not text:
        return None
    try:
        entries = json.loads(text)
    except ValueError:
        return None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get('name') == nad_ref:
            return entry
    return None


def ring_peers(nodes):
    """Each node's peer: the next node in order, so every node both sends and answers."""
    nodes = sorted(nodes)
    return dict((node, nodes[(i + 1) % len(nodes)]) for i, node in enumerate(nodes))


# ------------------------------------------------------------------ the site's plan (pod_networks role)

DEFAULT_TYPE = {'ethernet': 'macvlan', 'infiniband': 'ipoib'}


def slug(text):
    """A DNS label from a network name (eth_25G -> eth-25g)."""
    out = ''.join(c if c.isalnum() else '-' for c in str(text).lower())
    while '--' in out:
        out = out.replace('--', '-')
    return out.strip('-')[:63].rstrip('-') or 'network'


def host_facts(hostvars, hosts):
    """{host: {interfaces, links}} of the networks role's facts on each host (absent facts: empty)."""
    out = {}
    for host in hosts or []:
        facts = hostvars[host] if host in hostvars else {}
        out[host] = {'interfaces': facts.get('networks_node_interfaces') or [],
                     'links': facts.get('networks_links_found') or []}
    return out


def node_interface_names(hosts):
    """{network: {node: link name}} from what the networks role found on each node.

    `hosts` maps a node name to {'interfaces': the role's networks_node_interfaces,
    'links': its networks_links_found}. InfiniBand entries carry the link name the
    role matched by GUID; Ethernet ones are matched here by MAC address.
    """
    out = {}
    for node, facts in sorted((hosts or {}).items()):
        links = dict(((link.get('address') or '').lower(), link.get('name'))
                     for link in (facts or {}).get('links') or [] if link.get('address'))
        for iface in (facts or {}).get('interfaces') or []:
            if iface.get('error'):
                continue
            name = iface.get('ifname') or links.get((iface.get('mac') or '').lower())
            if name:
                out.setdefault(iface['network'], {})[node] = name
    return out


def pick_subnet(subnets, wanted=None):
    """The subnet pods use: the one named (name or ID), else the first IPv4 one, else the first."""
    subnets = list(subnets or [])
    if wanted:
        for subnet in subnets:
            if wanted in (subnet.get('name'), subnet.get('id'), subnet.get('cidr')):
                return subnet
        return None
    v4 = [s for s in subnets if str(s.get('ip_version', 4)) == '4']
    return (v4 or subnets or [None])[0]


def plan(pod_networks, networks, neutron, interfaces, namespace='default', rdma_prefix='rdma'):
    """What the pod_networks role creates: (NAD arguments, components, RDMA pools, errors).

    pod_networks: the role's entries; networks: the site's networks_list;
    neutron: {network: {mtu, subnets: [...], reserved: [addresses]}};
    interfaces: {network: {node: link name}} or {network: link name}.
    """
    errors, nads, pools = [], [], []
    by_name = dict((n.get('name'), n) for n in networks or [])
    seen = set()
    # no entries: every network of the site, with the plugin its kind suggests
    entries = pod_networks or [{'network': n.get('name')} for n in networks or []]
    for i, entry in enumerate(entries):
        net_name = entry.get('network')
        where = 'pod_networks_list[%d] (%s)' % (i, net_name)
        if net_name not in by_name:
            errors.append('%s: network %r is not in networks_list, the networks attached to the nodes (%s); pods can '
                          'only join a network the nodes have' % (where, net_name, ', '.join(sorted(
                              str(k) for k in by_name)) or 'none'))
            continue
        site = by_name[net_name]
        link = site.get('kind') or 'ethernet'
        cni = entry.get('type') or DEFAULT_TYPE.get(link, 'macvlan')
        name = entry.get('name') or slug(net_name)
        if name in seen:
            errors.append('%s: a second pod network named %s; give one a name' % (where, name))
        seen.add(name)
        facts = (neutron or {}).get(net_name)
        if not facts:
            errors.append('%s: Neutron does not show network %r (or its subnets) to these credentials'
                          % (where, net_name))
            continue
        subnet = pick_subnet(facts.get('subnets'), entry.get('subnet'))
        if subnet is None:
            errors.append('%s: network %s has no subnet%s; pods need a subnet to share with the nodes (subnets: %s)'
                          % (where, net_name, ' %s' % entry['subnet'] if entry.get('subnet') else '',
                             ', '.join(s.get('cidr', '?') for s in facts.get('subnets') or []) or 'none'))
            continue
        found = (interfaces or {}).get(net_name)
        if entry.get('interface'):
            ifname = entry['interface']
        elif isinstance(found, str):
            ifname = found
        elif found:
            names = sorted(set(found.values()))
            if len(names) > 1:
                groups = '; '.join('%s on %s' % (n, ', '.join(sorted(k for k, v in found.items() if v == n)))
                                   for n in names)
                errors.append('%s: the network is a different link on different nodes (%s); a NetworkAttachment'
                              'Definition names one link for every node: give the links one name (udev/.link '
                              'rules) or set interface and keep the pods to the nodes that have it' % (where, groups))
                continue
            ifname = names[0]
        elif cni == 'sriov':
            ifname = None
        else:
            errors.append('%s: no node reports which link network %s is (the networks role records it per node when '
                          'it runs in the same play); set interface, or pod_networks_interfaces' % (where, net_name))
            continue
        rdma = entry.get('rdma')
        rdma_resource = None
        if rdma:
            pool = rdma if isinstance(rdma, str) else slug(name).replace('-', '_')
            rdma_resource = '%s/%s' % (rdma_prefix, pool)
            if ifname:
                pools.append({'name': pool, 'if_names': [ifname],
                              'link_types': ['infiniband' if link == 'infiniband' else 'ether']})
        nads.append({
            'name': name, 'namespace': entry.get('namespace') or namespace, 'network': net_name, 'type': cni,
            'link_type': link, 'interface': ifname, 'mode': entry.get('mode'),
            'mtu': entry.get('mtu') or site.get('mtu') or facts.get('mtu'), 'network_mtu': facts.get('mtu'),
            'subnet': {'cidr': subnet.get('cidr'), 'gateway_ip': subnet.get('gateway_ip'),
                       'allocation_pools': [{'start': p.get('start'), 'end': p.get('end')}
                                            for p in subnet.get('allocation_pools') or []]},
            'reserved_addresses': sorted(set(facts.get('reserved') or [])), 'range': entry.get('range'),
            'min_addresses': entry.get('min_addresses') or 8, 'resource_name': entry.get('resource_name'),
            'rdma_resource': rdma_resource,
            'nodes': sorted(found) if isinstance(found, dict) else None,
        })
    kinds = set(n['type'] for n in nads)
    components = ['multus', 'cni-plugins', 'whereabouts'] if nads else []
    components += [c for c, t in (('ipoib-cni', 'ipoib'), ('sriov-cni', 'sriov')) if t in kinds]
    return {'nads': nads, 'components': components, 'rdma_pools': pools, 'errors': errors}


def neutron_facts(networks, subnets, ports):
    """{network name: {mtu, subnets, reserved}} from openstack.cloud's networks_info, subnets_info, port_info."""
    out = {}
    for net in networks or []:
        mine = [s for s in subnets or [] if s.get('network_id') == net.get('id')]
        ids = set(s.get('id') for s in mine)
        reserved = [ip.get('ip_address') for p in ports or [] if p.get('network_id') == net.get('id')
                    for ip in p.get('fixed_ips') or [] if ip.get('subnet_id') in ids and ip.get('ip_address')]
        facts = {'id': net.get('id'), 'mtu': net.get('mtu'), 'subnets': mine, 'reserved': sorted(set(reserved))}
        out[net.get('name')] = facts
        out.setdefault(net.get('id'), facts)
    return out


# What each NicClusterPolicy field deploys, in the role's component names.
POLICY_COMPONENTS = (('multus', 'multus'), ('cniPlugins', 'cni-plugins'), ('ipamPlugin', 'whereabouts'),
                     ('ipoib', 'ipoib-cni'))
COMPONENT_IMAGES = (('multus', 'multus-cni'), ('whereabouts', 'whereabouts'), ('ipoib-cni', 'ipoib-cni'),
                    ('sriov-cni', 'sriov-cni'), ('rdma-shared', 'k8s-rdma-shared-dev-plugin'))


def foreign_owners(nic_policies, daemonsets, namespace):
    """{components: [...], owners: [...]}: the pieces another owner runs, so the role leaves them alone.

    The NVIDIA network operator's NicClusterPolicy deploys what its spec names
    (secondaryNetwork.multus, cniPlugins, ipamPlugin, ipoib; rdmaSharedDevicePlugin);
    a DaemonSet outside `namespace` running one of the images is another installation,
    unless this collection made it (the accelerators role's RDMA device plugin serves its
    own pools; the role's pools run beside it under other resource names).
    """
    components, owners = [], []
    for policy in nic_policies or []:
        spec = policy.get('spec') or {}
        secondary = spec.get('secondaryNetwork') or {}
        mine = [component for field, component in POLICY_COMPONENTS if secondary.get(field)]
        if spec.get('rdmaSharedDevicePlugin'):
            mine.append('rdma-shared')
        if spec.get('sriovDevicePlugin'):
            mine.append('sriov-cni')
        if mine:
            components.extend(mine)
            owners.append('NicClusterPolicy %s (NVIDIA network operator): %s'
                          % ((policy.get('metadata') or {}).get('name'), ', '.join(mine)))
    for ds in daemonsets or []:
        meta = ds.get('metadata') or {}
        if meta.get('namespace') == namespace or \
                (meta.get('labels') or {}).get('app.kubernetes.io/managed-by') == 'hpcops.coe':
            continue
        pod = (((ds.get('spec') or {}).get('template') or {}).get('spec')) or {}
        images = ' '.join(c.get('image', '') for c in (pod.get('initContainers') or []) + (pod.get('containers') or []))
        found = [component for component, part in COMPONENT_IMAGES if part in images]
        if found:
            components.extend(found)
            owners.append('DaemonSet %s/%s: %s' % (meta.get('namespace'), meta.get('name'), ', '.join(found)))
    return {'components': sorted(set(components)), 'owners': owners}

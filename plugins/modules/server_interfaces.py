#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
---
module: server_interfaces
short_description: Attach and detach extra networks on many OpenStack servers at once
version_added: "0.1.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Attaches extra networks to existing Nova servers (virtual machines or bare-metal nodes)
    through Nova's interface attach API, detaches them, or makes the extra networks of each
    server exactly a given list. Typical use is giving every node of a Magnum cluster its
    high-throughput Ethernet and InfiniBand networks after Magnum created it with one network.
  - Targets are servers by name or ID (I(servers)) or every node of a Magnum cluster (I(cluster)).
  - The module reads the cloud with a fixed number of paged list calls (servers, networks, ports,
    subnets) whatever the number of servers, plans every server, validates the plan, and only then
    changes anything. A rerun that finds nothing to do makes no other request and reports no change.
  - Nova serializes attachments on one server, so the module works on several servers at the same
    time, one attachment after the other on each server. It starts with 10 servers at once (or
    I(concurrency) when that is less) and adds one while the cloud answers as quickly as it did at
    its quickest, up to I(concurrency); an HTTP 409, 429 or 503 answer halves the number and holds
    back new servers for the answer's C(Retry-After) (or the retry's backoff).
  - Nova's HTTP 409 answers for a busy server (a C(task_state) is set) are retried with exponential
    backoff and jitter (I(retries), I(retry_delay)). A 409 about a port or an address already in use
    is not retried.
  - A server that is locked (C(openstack server lock)) and needs a change fails up front, in check
    mode too, with a message saying to unlock it, since Nova refuses interface changes on it until it
    is unlocked. Nova makes an exception for admins, so for them the module attempts the change. A server locked while the
    module works on it is retried like a busy one.
  - With I(wait=true) the module waits until every new port is C(ACTIVE).
  - Runs on one machine take turns per server. Before changing a server the module takes a lock on it
    (a file lock in C($XDG_CACHE_HOME/hpcops.coe/locks), or C(HPCOPS_COE_LOCK_DIR)), which the system
    drops when the process ends however it ends. A run that finds the lock taken (for example by the
    module process of an interrupted C(ansible-playbook), which goes on attaching) waits for it, within
    I(timeout), then reads the server's ports again and plans it anew.
  - Two runs from different machines at the same time on the same servers may both see a network missing
    and both attach it. After attaching (also when a later attach failed), the module reads each changed
    server again; where another run's attachment came first, it detaches its own again and reports the
    other one, so the server ends with one interface per wanted network.
  - Ports Nova creates for an attachment by network are marked as this module's in their description
    (one port update each). With I(state=present), a second attachment of a listed network that carries
    this mark (left by an interrupted or concurrent run) is detached as a duplicate. Attachments made by
    others are never detached by I(state=present).
  - A 5xx answer (or a connection lost) on an attach may hide an attach that happened, so the module reads
    the server's ports, takes an attachment that landed as made, and otherwise retries within I(timeout)
    (a plain 500 at most twice, since Nova also answers 500 when no physical NIC is free).
  - B(Bare metal.) Nova attaches a network to an Ironic node only when the node has a free physical
    NIC on the network's physical network, and answers HTTP 500 otherwise. The module checks this
    before any change when it knows the node's NICs, and fails with a per-server explanation of the
    shortfall. It learns the number of NICs a node has per physical network (not counting the boot
    NIC that carries the primary network) from, in this order, the I(physical_nics) option, Ironic's
    ports of the node (only readable with admin rights), or the flavor extra specs
    C(hpcops:physical_nics:<physical network>=<count>) (readable by every user). A network's physical
    network comes from I(interfaces[].physical_network) or from the network's
    C(provider:physical_network) (by default only visible to admins). When the NICs are not known,
    a Nova 500 on a network with a known physical network is explained the same way.
  - B(Ports.) Without port options the module attaches by network and Nova creates the port; Nova
    deletes such a port when it is detached or when the server is deleted. With port options
    (I(interfaces[].vnic_type), I(interfaces[].binding_profile), I(interfaces[].port_security_enabled),
    I(interfaces[].port_name), or a I(interfaces[].subnet) without an address) the module creates the
    port itself and marks it in its description; it deletes such a port again when the attachment
    fails, when the server vanishes during the run, and after it detached it. Nova does not delete
    these ports when a server is deleted outside this module (for example a Cluster-API machine
    replaced on upgrade or remediation).
  - B(Stale ports.) Every run also deletes the ports the module created for servers that no longer
    exist, before any other change, and returns them in RV(removed_stale_ports) (in check mode, the
    ones it would delete). A port qualifies only when its description carries the module's mark and
    the ID of its server, it is attached to nothing (no C(device_id)), no entry of I(interfaces)
    names it, and its server is missing from the module's server listing and Nova answers 404 for
    it. Finding them costs no extra listing (the port listing is read anyway), only one look-up per
    missing server. Other ports are never deleted, whoever created them.
  - B(Primary network.) The interface a server booted with is never detached. It is the server's
    oldest port (Neutron's C(created_at)), or the oldest port on one of the I(primary_network)
    networks when that option is set.
  - When some servers fail (for example a server deleted during the run), the others are still
    completed; the module then fails, lists the failed servers with the reason, and returns what
    changed on every server. A port the module created for a failed attachment is deleted again.
extends_documentation_fragment:
  - openstack.cloud.openstack
  - hpcops.coe.attributes
options:
  servers:
    description:
      - Servers to act on, by name or ID. Names must be unique among the project's servers.
      - Exactly one of I(servers) and I(cluster) is required.
    type: list
    elements: str
  cluster:
    description:
      - Name or UUID of a Magnum cluster; the module acts on the cluster's nodes, found through the
        Heat stack or, for Cluster API drivers, the server naming of the driver.
      - Exactly one of I(servers) and I(cluster) is required.
    type: str
  node_roles:
    description:
      - With I(cluster), the kinds of node to act on.
    type: list
    elements: str
    choices: [master, worker]
    default: [worker]
  nodegroups:
    description:
      - With I(cluster), only the nodes of these nodegroups (names). Default is every nodegroup.
    type: list
    elements: str
  interfaces:
    description:
      - The desired extra attachments of every targeted server.
      - Each entry needs I(network), I(port) or I(ports).
      - With I(state=present) the missing ones are attached. With I(state=absent) the matching ones
        are detached. With I(state=exact) the missing ones are attached and every other attachment
        except the primary one is detached; an empty list detaches every extra network.
      - An existing attachment matches an entry when it is on the entry's network and, if the
        entry names them, holds its port, its fixed IP or an address on its subnet. An entry that
        lists a network twice asks for two attachments on it.
    type: list
    elements: dict
    default: []
    suboptions:
      network:
        description:
          - Network name or ID. Required unless I(port) or I(ports) is given.
        type: str
      subnet:
        description:
          - Subnet (name or ID, on I(network)) the new port takes its address from.
        type: str
      fixed_ip:
        description:
          - The address the new port gets. Only when a single server is targeted.
        type: str
      fixed_ips:
        description:
          - Addresses per server, a mapping of server name (or ID) to IP address, for many servers.
          - Servers not named get an address from Neutron.
        type: dict
      port:
        description:
          - An existing port (name or ID) to attach. Only when a single server is targeted.
        type: str
      ports:
        description:
          - Existing ports per server, a mapping of server name (or ID) to port name or ID.
        type: dict
      physical_network:
        description:
          - The physical network of I(network), for the bare-metal NIC check when the network's
            C(provider:physical_network) is not visible to the user.
        type: str
      mtu:
        description:
          - The MTU the nodes will use on this network. The module fails before any change when the
            network's MTU is smaller.
        type: int
      vnic_type:
        description:
          - C(binding:vnic_type) of a port the module creates, for example C(direct) for SR-IOV or
            C(baremetal).
        type: str
        choices: [normal, direct, direct-physical, macvtap, baremetal, virtio-forwarder, vdpa,
                  remote-managed, smart-nic]
      binding_profile:
        description:
          - C(binding:profile) of a port the module creates. Neutron's default policy lets only admins
            set it.
        type: dict
      port_security_enabled:
        description:
          - Port security of a port the module creates.
        type: bool
      port_name:
        description:
          - Name of a port the module creates. May contain C({server}), C({server_id}),
            C({network}) and C({index}) (the entry's position in I(interfaces)).
        type: str
  state:
    description:
      - C(present) attaches what is missing, C(absent) detaches the listed attachments,
        C(exact) makes the extra attachments exactly I(interfaces).
    type: str
    choices: [present, absent, exact]
    default: present
  primary_network:
    description:
      - Networks (names or IDs) whose oldest port on a server is that server's primary interface.
        Default is the server's oldest port.
    type: list
    elements: str
  physical_nics:
    description:
      - NICs available for attachments on bare-metal nodes, per physical network, not counting the
        boot NIC that carries the primary network.
      - Entries with I(flavor) apply to servers of that flavor (name or ID) and replace the entries
        without one for those servers.
    type: list
    elements: dict
    suboptions:
      physical_network:
        description: Physical network name as Neutron and Ironic know it.
        type: str
        required: true
      count:
        description: Number of NICs on that physical network.
        type: int
        required: true
      flavor:
        description: Only for servers of this flavor.
        type: str
  concurrency:
    description:
      - The most servers worked on at the same time (see above for how the number adapts). C(1) works on
        one server after the other.
    type: int
    default: 32
  retries:
    description:
      - How often a call that Nova refused with a retryable 409, or answered with a 5xx, is tried again.
    type: int
    default: 10
  retry_delay:
    description:
      - First backoff delay in seconds; it doubles on every retry up to 30 seconds, with jitter.
    type: float
    default: 1.0
  wait:
    description:
      - Wait until new ports are C(ACTIVE) (and detached ports are released).
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for one server's ports, and the bound on the retries of one call.
    type: int
    default: 180
requirements:
  - python >= 3.9
  - openstacksdk >= 1.0.0
attributes:
  check_mode:
    support: full
    details:
      - Plans exactly what a real run would do, runs every validation and reports the same changes; new ports
        are shown without port ID, MAC or (unless given) address.
  diff_mode:
    support: full
    details: The attachments of each server that changes, before and after.
  platform:
    platforms: all
'''

EXAMPLES = r'''
- name: Give every worker of a cluster its 25G and InfiniBand networks
  hpcops.coe.server_interfaces:
    cloud: mycloud
    cluster: hpc-k8s
    interfaces:
      - network: eth-25g
        mtu: 9000
      - network: ib-100g
        physical_network: ib
    # Ironic ports are admin-only: the NICs the bare-metal flavor has besides the boot NIC.
    physical_nics:
      - physical_network: physnet25g
        count: 1
      - physical_network: ib
        count: 1
  register: attached

- name: A fixed address and an SR-IOV port on one server
  hpcops.coe.server_interfaces:
    cloud: mycloud
    servers: [login-0]
    interfaces:
      - network: eth-10g
        fixed_ip: 10.10.0.15
      - network: eth-25g
        vnic_type: direct
        port_name: "{server}-{network}"

- name: Per-server addresses
  hpcops.coe.server_interfaces:
    cloud: mycloud
    servers: [node-0, node-1]
    interfaces:
      - network: storage
        fixed_ips:
          node-0: 10.20.0.10
          node-1: 10.20.0.11

- name: A port created elsewhere
  openstack.cloud.port:
    cloud: mycloud
    name: node-0-scratch
    network: eth-10g

- name: Attach it
  hpcops.coe.server_interfaces:
    cloud: mycloud
    servers: [node-0]
    interfaces:
      - port: node-0-scratch

- name: Make the extra networks of the workers group exactly these two
  hpcops.coe.server_interfaces:
    cloud: mycloud
    servers: "{{ groups['workers'] }}"
    state: exact
    interfaces:
      - network: eth-25g
      - network: ib-100g

- name: Remove the 25G network again
  hpcops.coe.server_interfaces:
    cloud: mycloud
    servers: "{{ groups['workers'] }}"
    state: absent
    interfaces:
      - network: eth-25g
'''

RETURN = r'''
servers:
  description: One entry per targeted server, in the order of the input (or of the cluster's nodes).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Server name.
      type: str
      sample: genomics-k8s-abcdefghijkl-node-0
    id:
      description: Server ID.
      type: str
    changed:
      description: Whether something was (or, in check mode, would be) attached or detached.
      type: bool
    failed:
      description: Whether something went wrong on this server.
      type: bool
    msg:
      description: Why the server failed; empty otherwise.
      type: str
    attached:
      description: Attachments made (predicted in check mode).
      type: list
      elements: dict
      sample: [{network: eth-25g, network_id: 3f0c..., port_id: 8d1a..., mac_address: "fa:16:3e:00:00:01",
                fixed_ips: [10.25.0.7]}]
    detached:
      description: Attachments removed (predicted in check mode).
      type: list
      elements: dict
    interfaces:
      description:
        - Every interface of the server afterwards, the primary one first.
        - C(ip_addresses) gives for each address its subnet's C(cidr), C(prefix_length), C(gateway),
          C(dhcp) (whether the subnet runs DHCP) and C(version).
          IPv6 addresses also carry their subnet's C(ipv6_address_mode) and C(ipv6_ra_mode).
        - C(client_id) is the DHCP client-id of the port when it has one (Ironic sets it on InfiniBand
          ports; it ends in the port GUID).
        - C(ipv6_mode) says how the node gets its IPv6 address on this port, from the subnet's
          C(ipv6_address_mode) - C(slaac), C(dhcpv6-stateless), C(dhcpv6-stateful), or C(static) when the
          subnet hands out none itself - (V(null) without IPv6); C(ipv6_router_advertisements) whether
          Neutron sends router advertisements (the subnet has an C(ipv6_ra_mode)); C(ipv6_cidrs) the
          IPv6 subnets.
      type: list
      elements: dict
      sample: [{network: private, network_id: 9a1b..., port_id: 01f2..., mac_address: "fa:16:3e:aa:bb:cc",
                fixed_ips: [10.0.0.5], status: ACTIVE, primary: true, mtu: 1500, physical_network: null, client_id: null,
                ipv6_mode: null, ipv6_router_advertisements: false, ipv6_cidrs: [],
                ip_addresses: [{address: 10.0.0.5, cidr: 10.0.0.0/24, prefix_length: 24,
                                gateway: 10.0.0.1, dhcp: true, version: 4, subnet_id: 5c3d...}]}]
    addresses:
      description: Addresses per network name afterwards.
      type: dict
      sample: {private: [10.0.0.5], eth-25g: [10.25.0.7]}
removed_stale_ports:
  description:
    - Ports this module had created for servers that no longer exist, deleted by this run (in check
      mode, the ones a run would delete). See B(Stale ports) above.
  returned: always
  type: list
  elements: dict
  contains:
    port_id:
      description: Port ID.
      type: str
    name:
      description: Port name.
      type: str
    network:
      description: Network name.
      type: str
    network_id:
      description: Network ID.
      type: str
    server_id:
      description: ID of the deleted server the port was made for.
      type: str
    fixed_ips:
      description: Addresses the port held.
      type: list
      elements: str
    mac_address:
      description: MAC address of the port.
      type: str
failed_servers:
  description: Names of the servers that failed.
  returned: always
  type: list
  elements: str
summary:
  description:
    - Counts over all servers. C(retries) counts retried calls; C(waited_for_other_runs) the servers on which
      this run waited for another run of the module on this machine to finish first.
  returned: always
  type: dict
  sample: {servers: 200, changed: 200, failed: 0, attached: 600, detached: 0, retries: 3, waited_for_other_runs: 0}
concurrency:
  description:
    - How the number of servers worked on at once adapted during the changes (C(start), C(ceiling),
      C(highest), C(final), the number of C(throttled) answers, and C(path), a list of
      C([seconds since the start, servers at once])). Check mode cannot know it.
  returned: when servers were changed (not in check mode)
  type: dict
  sample: {start: 10, ceiling: 32, highest: 32, final: 32, throttled: 0, path: [[0.0, 10], [3.1, 11], [3.1, 12]]}
'''

from ansible_collections.hpcops.coe.plugins.module_utils.openstack import CoeOpenStackModule
from ansible_collections.hpcops.coe.plugins.module_utils.sessions import widen_connection_pool
from ansible_collections.hpcops.coe.plugins.module_utils import interfaces as ifc
from ansible_collections.hpcops.coe.plugins.module_utils import magnum as mg
from ansible_collections.hpcops.coe.plugins.module_utils import discovery as nodes

SERVER_KEYS = ('name', 'id', 'changed', 'failed', 'msg', 'attached', 'detached', 'interfaces',
               'addresses')
PORT_OPTIONS = ('vnic_type', 'binding_profile', 'port_security_enabled', 'port_name')
# Servers worked on at once at the start, before the cloud's answers say whether more keep up.
START_CONCURRENCY = 10


def validate_entries(entries):
    """Problems in the interfaces option that need no API call to find."""
    problems = []
    for i, e in enumerate(entries):
        name = 'interfaces[%d]' % i
        if not (e.get('network') or e.get('port') or e.get('ports')):
            problems.append('%s needs network, port or ports' % name)
        if e.get('port') and e.get('ports'):
            problems.append('%s: port and ports are mutually exclusive' % name)
        if e.get('fixed_ip') and e.get('fixed_ips'):
            problems.append('%s: fixed_ip and fixed_ips are mutually exclusive' % name)
        if e.get('port') or e.get('ports'):
            extra = [k for k in ('fixed_ip', 'fixed_ips', 'subnet') + PORT_OPTIONS if e.get(k) is not None]
            if extra:
                problems.append('%s: an existing port carries its own addresses and properties; '
                                'drop %s' % (name, ', '.join(extra)))
        if e.get('mtu') is not None and e['mtu'] < 68:
            problems.append('%s: mtu %d is below the IPv4 minimum of 68' % (name, e['mtu']))
        if e.get('port_name'):
            try:
                e['port_name'].format(server='s', server_id='i', network='n', index=0)
            except (KeyError, IndexError, ValueError) as exc:
                problems.append('%s: port_name %r may only use {server}, {server_id}, {network}, '
                                '{index} (%s)' % (name, e['port_name'], exc))
        for key in ('fixed_ips', 'ports'):
            for k, v in (e.get(key) or {}).items():
                if not isinstance(v, str) or not v:
                    problems.append('%s.%s.%s must be a non-empty string' % (name, key, k))
    return problems


class ServerInterfacesModule(CoeOpenStackModule):
    argument_spec = dict(
        servers=dict(type='list', elements='str'),
        cluster=dict(),
        node_roles=dict(type='list', elements='str', choices=['master', 'worker'], default=['worker']),
        nodegroups=dict(type='list', elements='str'),
        interfaces=dict(type='list', elements='dict', default=[], options=dict(
            network=dict(),
            subnet=dict(),
            fixed_ip=dict(),
            fixed_ips=dict(type='dict'),
            port=dict(),
            ports=dict(type='dict'),
            physical_network=dict(),
            mtu=dict(type='int'),
            vnic_type=dict(choices=list(ifc.VNIC_TYPES)),
            binding_profile=dict(type='dict'),
            port_security_enabled=dict(type='bool'),
            port_name=dict(),
        )),
        state=dict(default='present', choices=['present', 'absent', 'exact']),
        primary_network=dict(type='list', elements='str'),
        physical_nics=dict(type='list', elements='dict', options=dict(
            physical_network=dict(required=True),
            count=dict(type='int', required=True),
            flavor=dict(),
        )),
        concurrency=dict(type='int', default=32),
        retries=dict(type='int', default=10),
        retry_delay=dict(type='float', default=1.0),
        wait=dict(type='bool', default=True),
        timeout=dict(type='int', default=180),
    )
    module_kwargs = dict(
        supports_check_mode=True,
        mutually_exclusive=[('servers', 'cluster')],
        required_one_of=[('servers', 'cluster')],
    )
    requires_magnumclient = False

    # ------------------------------------------------------------------ input

    def validate_input(self):
        p = self.params
        problems = validate_entries(p['interfaces'])
        if p['concurrency'] < 1:
            problems.append('concurrency must be 1 or more, got %d' % p['concurrency'])
        if p['retries'] < 0:
            problems.append('retries must be 0 or more, got %d' % p['retries'])
        if p['retry_delay'] < 0:
            problems.append('retry_delay must be 0 or more, got %s' % p['retry_delay'])
        if p['timeout'] < 0:
            problems.append('timeout must be 0 or more, got %d' % p['timeout'])
        for i, e in enumerate(p['physical_nics'] or []):
            if e['count'] < 0:
                problems.append('physical_nics[%d].count must be 0 or more' % i)
        if p['servers'] is not None and not [s for s in p['servers'] if s]:
            problems.append('servers is empty')
        if problems:
            self.fail_json(msg='Invalid input, nothing was changed: %s.' % '; '.join(problems))

    # ------------------------------------------------------------------ targets

    def _cluster_servers(self):
        p = self.params
        self.current_op = "find the nodes of cluster '%s'" % p['cluster']
        try:
            found = nodes.discover_cluster_nodes(self.conn, p['cluster'])
        except mg.MagnumInputError as exc:
            self.fail_json(msg='%s. Nothing was changed.' % exc)
        servers = []
        # The cluster's servers only, not the project's: stale_ports confirms the others gone one by one.
        known_ids = [node['id'] for node in found]
        for node in found:
            if node.get('role') not in p['node_roles']:
                continue
            if p['nodegroups'] and node.get('nodegroup') not in p['nodegroups']:
                continue
            addresses = dict((net, [{'addr': ip, 'OS-EXT-IPS-MAC:mac_addr': info.get('mac')}
                                    for ip in info.get('fixed') or []])
                             for net, info in (node.get('addresses') or {}).items())
            servers.append(ifc.server_view({
                'id': node['id'], 'name': node['name'], 'status': node.get('status'),
                'flavor': {'original_name': node.get('flavor')}, 'addresses': addresses}))
        if p['nodegroups']:
            known = set(n.get('nodegroup') for n in found)
            unknown = sorted(set(p['nodegroups']) - known)
            if unknown:
                self.fail_json(msg="Nodegroup(s) %s not found in cluster '%s' (it has: %s). Nothing was changed."
                                   % (', '.join(unknown), p['cluster'], ', '.join(sorted(k for k in known if k))))
        return servers, known_ids

    def _targets(self, cloud):
        """(servers to act on, IDs of every server the module listed on the way)."""
        p = self.params
        if p['cluster']:
            return self._cluster_servers()
        self.current_op = 'list servers'
        listed = cloud.list_servers()
        lookup = ifc.Lookup('server', listed)
        targets = []
        seen = set()
        missing = []
        for ref in p['servers']:
            if not ref:
                continue
            try:
                server = lookup.find(ref)
            except ifc.InterfaceError as exc:
                self.fail_json(msg='%s Nothing was changed.' % exc)
            if server is None:
                missing.append(ref)
            elif server['id'] not in seen:
                seen.add(server['id'])
                targets.append(server)
        if missing:
            self.fail_json(msg='Server(s) not found: %s. Nothing was changed. %d server(s) exist in the project%s.'
                               % (', '.join(missing), len(listed),
                                  ': ' + ifc._names_preview((s['name'] for s in listed), 20) if listed else ''))
        return targets, [s['id'] for s in listed]

    # ------------------------------------------------------------------ run

    def run(self):
        p = self.params
        self.validate_input()
        widen_connection_pool(getattr(self.conn, 'session', None), p['concurrency'])
        cloud = ifc.SdkCloud(self.conn)

        servers, known_server_ids = self._targets(cloud)
        self.current_op = 'list networks'
        networks = cloud.list_networks()
        self.current_op = 'list ports'
        ports = cloud.list_ports()
        self.current_op = 'list subnets'
        subnets = cloud.list_subnets()
        self.current_op = 'run'

        nets_by_id = dict((n['id'], n) for n in networks)
        net_names = dict((n['id'], n['name'] or n['id']) for n in networks)
        subnets_by_id = dict((s['id'], s) for s in subnets)
        try:
            wants = ifc.resolve_wants(p['interfaces'], networks, subnets, ports, servers)
            primary_ids = None
            if p['primary_network']:
                lookup = ifc.Lookup('network', networks)
                primary_ids = [lookup.get(ref, ' (primary_network)')['id'] for ref in p['primary_network']]
        except ifc.InterfaceError as exc:
            self.fail_json(msg='%s Nothing was changed.' % exc)

        plans = [ifc.plan_server(s, ports, wants, p['state'], primary_ids, net_names) for s in servers]
        for plan in plans:
            for warning in plan.warnings:
                self.warn(warning)

        self._fill_flavor_specs(cloud, [plan for plan in plans if plan.attach])
        for plan in plans:
            plan.bare_metal = ifc.is_bare_metal(plan.server)
        self.current_op = 'look for stale ports'
        stale = ifc.stale_ports(cloud, ports, known_server_ids, ifc.ports_named_by(wants))
        self.current_op = 'run'
        stale_ids = set(port['id'] for port in stale)
        # A stale port is deleted before any attachment, so the address it holds is free by then.
        problems = ifc.fixed_ip_conflicts(plans, [port for port in ports if port['id'] not in stale_ids])
        problems.extend(self._nic_problems(cloud, plans, nets_by_id, net_names))
        if problems:
            self.fail_json(msg='Nothing was changed: %s.' % '; '.join(problems),
                           problems=problems)

        admin = None
        for plan in plans:
            if not plan.changes or plan.error is not None:
                continue
            server = plan.server
            if server['status'] not in ifc.ATTACHABLE_STATES:
                plan.error = ('the server is %s; Nova changes interfaces of %s servers only'
                              % (server['status'] or 'in an unknown state', ', '.join(ifc.ATTACHABLE_STATES)))
            elif server['locked']:
                # Nova refuses every interface change on a locked server with a 409 that no
                # retry cures, except for admins, whom it lets through.
                if admin is None:
                    admin = cloud.is_admin()
                if not admin:
                    plan.error = ("server %s is locked%s; unlock it ('openstack server unlock %s') and run "
                                  "again, or run as an admin, whom Nova lets change locked servers"
                                  % (server['name'],
                                     ' (%s)' % server['locked_reason'] if server.get('locked_reason') else '',
                                     server['id']))
        ifc.mark_reusable_ports(plans, ports)

        if self.check_mode:
            removed = stale
            outcomes = [self._predict(plan) for plan in plans]
            retried = 0
        else:
            self.current_op = 'delete stale ports'
            removed, failures = ifc.remove_stale_ports(cloud, stale)
            self.current_op = 'run'
            for failure in failures:
                self.warn(failure)

            def replan(server):
                # Another run changed this server meanwhile: plan it again from its ports now.
                fresh = ifc.plan_server(server, cloud.list_ports(device_id=server['id']), wants, p['state'],
                                        primary_ids, net_names)
                for warning in fresh.warnings:
                    self.warn(warning)
                return fresh

            pace = ifc.AdaptiveConcurrency(min(START_CONCURRENCY, p['concurrency']), p['concurrency'])
            applier = ifc.Applier(cloud, retries=p['retries'], retry_delay=p['retry_delay'],
                                  wait=p['wait'], timeout=p['timeout'], locks=ifc.server_locks(), replan=replan,
                                  on_throttle=pace.throttled)
            outcomes = ifc.run_adaptive(plans, lambda plan: self._apply(applier, plan), pace,
                                        calls=lambda plan: len(plan.attach) + len(plan.detach))
            self.concurrency_report = pace.report()
            if p['wait']:
                applier.wait_active(outcomes)
            retried = applier.retried
            self.lock_waits = applier.lock_waits
        return self._report(plans, outcomes, nets_by_id, net_names, subnets_by_id, retried, removed)

    def _fill_flavor_specs(self, cloud, plans):
        """Flavor extra specs of the servers that get attachments, when the listing left them out.

        Compute 2.47+ embeds them in every server; cluster discovery and older clouds do
        not, and one flavor listing fills them in. Nothing is read when nothing is attached.
        """
        if self.params['physical_nics'] and not any(w.creates_port() for plan in plans for w in plan.attach):
            return
        lacking = [plan for plan in plans if not plan.server['flavor'].get('extra_specs')]
        if not lacking:
            return
        refs = set()
        for plan in lacking:
            refs.update((plan.server['flavor'].get('name'), plan.server['flavor'].get('id')))
        try:
            specs = cloud.flavor_extra_specs(refs)
        except Exception:  # noqa: BLE001 - without specs the NIC count stays unknown
            return
        for plan in lacking:
            flavor = plan.server['flavor']
            flavor['extra_specs'] = specs.get(flavor.get('id')) or specs.get(flavor.get('name')) or {}

    def _nic_problems(self, cloud, plans, nets_by_id, net_names):
        p = self.params
        needing = [plan for plan in plans if plan.attach]
        if not needing:
            return []
        physnet_of = dict((n['id'], n['physical_network']) for n in nets_by_id.values() if n['physical_network'])
        for plan in needing:
            for want in plan.attach:
                if want.physical_network:
                    physnet_of.setdefault(want.network_id, want.physical_network)
        ironic = None
        if not p['physical_nics'] and any(plan.bare_metal and plan.server.get('hypervisor_hostname')
                                          for plan in needing):
            # Only admins see which Ironic node backs a server; they can read its ports too.
            ironic = cloud.ironic_nics()
        capacities = []
        for plan in needing:
            primary_physnet = None
            for port in plan.ports:
                if port['id'] in plan.primary:
                    primary_physnet = physnet_of.get(port['network_id'])
            capacities.append(ifc.nic_capacity(plan.server, p['physical_nics'], ironic, primary_physnet))
        problems = []
        for plan, capacity in zip(needing, capacities):
            short = ifc.nic_shortfall(plan, capacity, physnet_of)
            if short:
                problems.append('not enough free physical NICs on %s'
                                % ifc.describe_shortfall(plan, short, net_names))
        return problems

    def _apply(self, applier, plan):
        if plan.error is not None:
            return self._predict(plan, failed=True)
        if not plan.changes:
            return self._predict(plan)
        return applier.apply(plan)

    def _predict(self, plan, failed=False):
        outcome = {'name': plan.server['name'], 'attached': [], 'detached': [], 'created_ports': [],
                   'failed': False, 'msg': '', 'vanished': False, 'ports': list(plan.ports), 'predicted': True}
        if plan.error is not None:
            outcome['failed'] = True
            outcome['msg'] = '%s: %s' % (plan.server['name'], plan.error)
            return outcome
        outcome['detached'] = list(plan.detach)
        for want in plan.attach:
            outcome['attached'].append({
                'id': want.reuse_port['id'] if want.reuse_port is not None else (
                    want.port['id'] if want.port is not None else None),
                'network_id': want.network_id,
                'mac_address': want.port['mac_address'] if want.port is not None else None,
                'fixed_ips': ([{'ip_address': want.fixed_ip, 'subnet_id': None}] if want.fixed_ip
                              else list(want.port['fixed_ips']) if want.port is not None else []),
                'status': None,
                'want_index': want.index,
            })
        return outcome

    # ------------------------------------------------------------------ report

    def _report(self, plans, outcomes, nets_by_id, net_names, subnets_by_id, retried, removed=()):
        results = []
        failed = []
        changed_any = False
        before = {}
        after = {}
        totals = {'servers': len(plans), 'changed': 0, 'failed': 0, 'attached': 0, 'detached': 0,
                  'retries': retried, 'waited_for_other_runs': getattr(self, 'lock_waits', 0)}
        for plan, outcome in zip(plans, outcomes):
            server = plan.server
            detached_ids = set(p['id'] for p in outcome['detached'])
            # Attachments a concurrent run made first stand in for this run's own.
            kept = list(plan.keep) + list(outcome.get('adopted', []))
            # A failed run detached only part of the plan; ports it did not reach are still there.
            kept.extend((None, port) for port in plan.detach if port['id'] not in detached_ids)
            final = []
            for want, port in kept:
                order = (0 if port['id'] in plan.primary else 1,
                         want.index if want is not None else 10 ** 6,
                         net_names.get(port['network_id'], ''), port['id'])
                final.append((order, port))
            for att in outcome['attached']:
                order = (1, att.get('want_index', 10 ** 6), '', att.get('id') or '')
                final.append((order, att))
            final.sort(key=lambda item: item[0])
            interfaces = []
            addresses = {}
            for port in (item[1] for item in final):
                view = dict(port)
                view.setdefault('fixed_ips', [])
                view['id'] = port.get('id')
                desc = ifc.describe_interface(view, nets_by_id, subnets_by_id, plan.primary)
                interfaces.append(desc)
                addresses.setdefault(desc['network'], []).extend(desc['fixed_ips'])
            attached = [self._short(att, net_names) for att in outcome['attached']]
            detached = [self._short(port, net_names) for port in outcome['detached']]
            changed = bool(attached or detached)
            entry = {
                'name': server['name'], 'id': server['id'], 'changed': changed,
                'failed': outcome['failed'], 'msg': outcome['msg'], 'attached': attached,
                'detached': detached, 'interfaces': interfaces, 'addresses': addresses,
            }
            results.append(entry)
            if outcome['failed']:
                failed.append(server['name'])
                totals['failed'] += 1
            if changed:
                changed_any = True
                totals['changed'] += 1
                totals['attached'] += len(attached)
                totals['detached'] += len(detached)
                before[server['name']] = self._labels(
                    (net_names.get(p['network_id'], p['network_id']), [f['ip_address'] for f in p['fixed_ips']],
                     p['id'] in plan.primary, False) for p in plan.ports)
                after[server['name']] = self._labels(
                    (i['network'], i['fixed_ips'], i['primary'], i['port_id'] is None) for i in interfaces)
        stale = [dict(self._short(port, net_names), name=port['name'], server_id=ifc.module_port_server_id(port))
                 for port in removed]
        out = {'changed': changed_any or bool(stale), 'servers': results, 'failed_servers': failed,
               'summary': totals, 'removed_stale_ports': stale}
        if getattr(self, 'concurrency_report', None) and any(plan.changes for plan in plans):
            out['concurrency'] = self.concurrency_report
        if self.ansible._diff:
            out['diff'] = {'before': before, 'after': after}
        if failed:
            reasons = [r['msg'] for r in results if r['failed']]
            self.fail_json(msg='%d of %d server(s) failed (%s): %s' % (
                len(failed), len(plans), ', '.join(failed), '; '.join(reasons)), **out)
        return out

    @staticmethod
    def _short(port, net_names):
        return {
            'network': net_names.get(port.get('network_id'), port.get('network_id')),
            'network_id': port.get('network_id'),
            'port_id': port.get('id'),
            'mac_address': port.get('mac_address'),
            'fixed_ips': [f.get('ip_address') for f in port.get('fixed_ips') or []],
        }

    @staticmethod
    def _labels(items):
        """Attachments as sorted one-line labels, so before and after line up in a diff."""
        ordered = sorted(items, key=lambda i: (not i[2], i[0], ','.join(i[1])))
        return [ifc.attachment_label(name, ips, primary, new=new) for name, ips, primary, new in ordered]


def main():
    module = ServerInterfacesModule()
    module()


if __name__ == '__main__':
    main()

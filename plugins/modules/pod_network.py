#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pod_network
short_description: A Multus pod network on one of the nodes' Neutron networks, checked from pods on every node
version_added: "0.2.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Creates a Multus C(NetworkAttachmentDefinition) (C(k8s.cni.cncf.io/v1)) whose CNI configuration follows from a
    Neutron subnet and the link the network is attached as on the nodes; pods that name it in their
    C(k8s.v1.cni.cncf.io/networks) annotation get an interface on that network.
  - The CNI plugin must suit the link. Ethernet takes C(macvlan), C(ipvlan), C(host-device) or C(sriov) (virtual
    functions of the SR-IOV device plugin); InfiniBand takes C(ipoib) or C(host-device). C(macvlan) or C(ipvlan) on
    InfiniBand is refused before any change, because an IPoIB link has no Ethernet header.
  - Addresses come from whereabouts IPAM in a range Neutron never hands out, outside every allocation pool of the
    subnet and off the gateway and the addresses Neutron ports hold. Without I(range) the largest such run is taken;
    a given I(range) that overlaps a pool is refused. When the pools leave no run of I(min_addresses) the module
    refuses, naming the subnet and how to free a block; it never guesses.
  - One owner per NAD. When the NVIDIA network operator manages a NAD of this name (an C(IPoIBNetwork),
    C(MacvlanNetwork) or C(HostDeviceNetwork) of C(mellanox.com/v1alpha1), or an owner reference to one), the module
    leaves it alone and reports the owner.
  - With I(validate), a pod on each of I(validation_nodes) attaches to the network and holds an address, then a
    second pod on each node attaches too and pings the holder on the next node. The module reports per node the
    addresses Multus gave (its C(k8s.v1.cni.cncf.io/network-status) annotation), whether they lie in the range and
    whether the peer answered, then removes every pod it made. It fails when a node fails.
  - A node is checked only when something its check depends on changed since it last passed. After a check, the
    digest of each passed node's inputs and its result are kept in the ConfigMap C(<name>-pod-network-checked) of
    I(namespace); a later run checks only the nodes whose digest differs (with one node that passed before as
    their peer when fewer than two differ) and reports the others from the record, with C(checked=false). The
    inputs are the NetworkAttachmentDefinition as applied, I(validation_image), I(rdma_resource) and
    I(tolerations); the node's identity (UID) and boot ID, kernel, OS image, container runtime and kubelet
    versions, and its capacity and allocatable of I(rdma_resource); and the container images of the DaemonSets
    whose pods mount the host's C(/opt/cni) or C(/etc/cni) (Multus, the CNI plugins, whereabouts). A link that
    breaks without any of these changing is only found with I(validation_force=true), which checks every node.
    When no node needs a check, no pod is started and nothing is written; when nodes were checked, the module
    reports a change if the record changed.
  - Written with server-side apply under I(field_manager); check mode asks the API server for a dry run and shows
    the diff; the checks do not run in check mode.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - hpcops.coe.kubernetes
  - hpcops.coe.attributes
options:
  name:
    description: Name of the NetworkAttachmentDefinition, the name pods give in C(k8s.v1.cni.cncf.io/networks).
    type: str
    required: true
  namespace:
    description: Namespace of the NetworkAttachmentDefinition (pods of other namespaces name it C(<namespace>/<name>)).
    type: str
    default: default
  network:
    description: Name of the Neutron network, for messages and the C(hpcops.coe/network) label.
    type: str
  type:
    description: CNI plugin of the pod interface. Required with I(state=present).
    type: str
    choices: [macvlan, ipvlan, host-device, ipoib, sriov]
  link_type:
    description: Kind of the link on the nodes.
    type: str
    choices: [ethernet, infiniband]
    default: ethernet
  interface:
    description:
      - Name of the link the network is attached as, the same on every node (the CNI C(master), or C(device) of
        C(host-device)). Required except with C(sriov), whose virtual function comes from the device plugin.
    type: str
  mode:
    description: C(macvlan) mode (default V(bridge)) or C(ipvlan) mode (default V(l2)).
    type: str
  mtu:
    description: MTU of the pod interface (C(macvlan), C(ipvlan), C(sriov)); defaults to the link's.
    type: int
  network_mtu:
    description: MTU of the Neutron network; I(mtu) may not exceed it.
    type: int
  subnet:
    description: The Neutron subnet the pods share with the nodes, as Neutron shows it.
    type: dict
    suboptions:
      cidr:
        description: Subnet in CIDR notation.
        type: str
        required: true
      gateway_ip:
        description: Gateway of the subnet (given to the pods without a route; the default route stays on the pod network).
        type: str
      allocation_pools:
        description: Allocation pools of the subnet (Neutron hands these addresses to ports).
        type: list
        elements: dict
        default: []
  reserved_addresses:
    description: Addresses Neutron ports hold on the subnet; the range leaves them out (fixed IPs may lie outside the pools).
    type: list
    elements: str
    default: []
  range:
    description:
      - Addresses for the pods, as C(FIRST-LAST) or a CIDR block. Must lie in the subnet and outside every allocation
        pool. Default the largest free run outside the pools.
    type: str
  min_addresses:
    description: Fewest addresses a derived range may have.
    type: int
    default: 8
  resource_name:
    description:
      - Extended resource of the SR-IOV device plugin whose virtual functions the pods get (C(sriov)); written to the
        NAD's C(k8s.v1.cni.cncf.io/resourceName) annotation.
    type: str
  rdma_resource:
    description:
      - RDMA shared device plugin resource bound to the same link (for example C(rdma/ib_100g)); the check pods request
        one, so the RDMA device and the interface come together as they do for workloads.
    type: str
  handoff:
    description: Leave a NAD the NVIDIA network operator manages alone (V(false) fails instead).
    type: bool
    default: true
  validate:
    description: Check from pods on I(validation_nodes) that the network works (see the description).
    type: bool
    default: false
  validation_nodes:
    description:
      - Nodes to check from, two or more. Default every schedulable node without a C(NoSchedule) taint.
    type: list
    elements: str
  validation_image:
    description: Image of the check pods; it needs C(ping) and C(sleep).
    type: str
    default: docker.io/library/busybox:1.36.1
  validation_force:
    description: Check every node of I(validation_nodes), also those whose inputs are the same as when they last
      passed.
    type: bool
    default: false
  tolerations:
    description: Tolerations of the check pods.
    type: list
    elements: dict
  wait:
    description: Unused (the checks always wait); kept for the options every Kubernetes module of the collection has.
  wait_timeout:
    description: Seconds each step of the checks may take.
notes:
  - Multus, the CNI plugin binaries and whereabouts must run on the nodes (the C(hpcops.coe.pod_networks) role
    deploys them); without them the check pods start without the interface or stay in C(ContainerCreating).
  - C(host-device) moves the whole link into one pod per node; the checks need two pods per node, so use it without
    I(validate).
seealso:
  - module: hpcops.coe.device_plugin
  - module: hpcops.coe.server_interfaces
attributes:
  check_mode:
    details: The API server validates every object in a dry run and returns what it would store; the checks from pods do not run.
'''

EXAMPLES = r'''
- name: 25G Ethernet for pods, macvlan on ens2f0, addresses above the allocation pool
  hpcops.coe.pod_network:
    name: eth-25g
    namespace: default
    network: eth-25g
    type: macvlan
    interface: ens2f0
    mtu: 9000
    subnet:
      cidr: 10.25.0.0/16
      gateway_ip: 10.25.0.1
      allocation_pools: [{start: 10.25.0.2, end: 10.25.191.254}]
    validate: true
    validation_nodes: [gpu-1, gpu-2]

- name: IPoIB on ibp65s0, with the RDMA device of the same HCA in the check pods
  hpcops.coe.pod_network:
    name: ib-100g
    network: ib-100g
    type: ipoib
    link_type: infiniband
    interface: ibp65s0
    subnet:
      cidr: 10.100.0.0/16
      allocation_pools: [{start: 10.100.0.2, end: 10.100.127.254}]
    range: 10.100.200.0/21
    rdma_resource: rdma/ib_100g
'''

RETURN = r'''
nad:
  description: The NetworkAttachmentDefinition as stored (or as it would be, in check mode); the operator's when handed off.
  returned: state=present
  type: dict
config:
  description: The CNI configuration of the NAD.
  returned: state=present and not handed off
  type: dict
  sample: {cniVersion: 0.4.0, name: eth-25g, type: macvlan, master: ens2f0, mode: bridge, mtu: 9000,
           ipam: {type: whereabouts, range: 10.25.0.0/16, range_start: 10.25.192.0, range_end: 10.25.255.254}}
range:
  description: The pods' addresses, C(cidr), C(first), C(last) and C(size).
  returned: state=present and not handed off
  type: dict
  sample: {cidr: 10.25.0.0/16, first: 10.25.192.0, last: 10.25.255.254, size: 16383}
owner:
  description: Who manages the NAD when the module handed it off, else V(null).
  returned: always
  type: str
nodes:
  description:
    - Per node, C(address) of the holding pod, C(probe_address) of the pod that pinged, C(peer) and
      C(peer_address) it pinged, C(in_range), C(reached), C(reason) when it failed, and C(checked), V(false) when
      the node's inputs were unchanged and the entry is the one recorded when it last passed.
  returned: validate
  type: dict
  sample: {gpu-1: {address: 10.25.192.0, probe_address: 10.25.192.2, peer: gpu-2, peer_address: 10.25.192.1,
                   in_range: true, reached: true, reason: null, checked: true}}
checked_nodes:
  description: Nodes checked from pods in this run (the others were unchanged since they last passed).
  returned: validate
  type: list
  elements: str
passed_nodes:
  description: Nodes whose checks passed.
  returned: validate
  type: list
  elements: str
failed_nodes:
  description: Nodes whose checks failed.
  returned: validate
  type: list
  elements: str
diff:
  description: The NAD before and after, without server-maintained fields (with C(--diff)).
  returned: diff mode
  type: dict
'''

import hashlib
import json

from ansible_collections.hpcops.coe.plugins.module_utils.kube import (
    container_problem, inputs_digest, name_problem, node_identity, recorded_json)
from ansible_collections.hpcops.coe.plugins.module_utils.kube_module import CoeKubeModule
from ansible_collections.hpcops.coe.plugins.module_utils.kube_deviceplugin import eligible_nodes
from ansible_collections.hpcops.coe.plugins.module_utils.kube_podnet import (
    CNI_TYPES, LINK_TYPES, NAD_API, NAD_KIND, NETWORK_OPERATOR_API, NETWORK_OPERATOR_NETWORK_KINDS,
    NETWORKS_ANNOTATION, RangeError, cni_config, in_range, ipam_range, nad_manifest, network_status,
    operator_owner, ring_peers, validate)

CHECK_LABEL = 'hpcops.coe/pod-network-check'
RECORD_LABEL = 'hpcops.coe/pod-network-record'
# Host directories of CNI plugin binaries and configuration: a DaemonSet that mounts them takes part in
# attaching pods to networks.
CNI_HOST_PATHS = ('/opt/cni', '/etc/cni')

SUBNET_OPTIONS = dict(
    cidr=dict(type='str', required=True),
    gateway_ip=dict(type='str'),
    allocation_pools=dict(type='list', elements='dict', default=[]),
)


def check_pod_name(nad, role, index):
    """<nad>-<role><index>, shortened with a digest when the NAD's name is long."""
    name = '%s-%s%d' % (nad, role, index)
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(nad.encode('utf-8')).hexdigest()[:8]
    return '%s-%s-%s%d' % (nad[:40].rstrip('-.'), digest, role, index)


def record_name(nad):
    return '%s-pod-network-checked' % nad


def record_manifest(params, digests, results):
    """The ConfigMap that remembers, per node that passed, its inputs' digest and its result."""
    return {'apiVersion': 'v1', 'kind': 'ConfigMap',
            'metadata': {'name': record_name(params['name']), 'namespace': params['namespace'],
                         'labels': {RECORD_LABEL: params['name'], 'app.kubernetes.io/managed-by': 'hpcops.coe'}},
            'data': {'digests': json.dumps(digests, sort_keys=True), 'results': json.dumps(results, sort_keys=True)}}


def cni_daemonset_images(daemonsets):
    """{namespace/name: images} of the DaemonSets that install or run CNI plugins on the nodes (their pods mount
    the host's /opt/cni or /etc/cni): Multus, the reference plugins, whereabouts, IPoIB and SR-IOV CNI."""
    out = {}
    for ds in daemonsets:
        meta = ds.get('metadata') or {}
        pod = ((ds.get('spec') or {}).get('template') or {}).get('spec') or {}
        paths = [((v.get('hostPath') or {}).get('path') or '') for v in pod.get('volumes') or []]
        if not any(p.startswith(CNI_HOST_PATHS) for p in paths):
            continue
        containers = (pod.get('initContainers') or []) + (pod.get('containers') or [])
        out['%s/%s' % (meta.get('namespace'), meta.get('name'))] = sorted(c.get('image') or '' for c in containers)
    return out


def node_digests(params, nad, nodes, images):
    """{node name: sha256 over everything its check depends on} (see the description)."""
    check = {'nad': nad, 'image': params['validation_image'], 'rdma_resource': params.get('rdma_resource'),
             'tolerations': params.get('tolerations')}
    out = {}
    for node in nodes:
        status = node.get('status') or {}
        rdma = params.get('rdma_resource')
        devices = {'capacity': (status.get('capacity') or {}).get(rdma),
                   'allocatable': (status.get('allocatable') or {}).get(rdma)} if rdma else None
        out[node['metadata']['name']] = inputs_digest({'check': check, 'node': node_identity(node),
                                                       'devices': devices, 'daemonsets': images})
    return out


def nodes_to_check(nodes, digests, recorded, force=False):
    """The nodes whose inputs changed since they passed (all with force), with a peer that passed before
    when fewer than two changed; [] when none changed."""
    run = [n for n in nodes if force or recorded.get(n) != digests.get(n)]
    if len(run) == 1:
        run.append(next(n for n in nodes if n not in run))
    return sorted(run)


class PodNetworkCheck(object):
    """Pods on every node attach to the network, one per node holds an address, one pings the next node's."""

    def __init__(self, kube, params, rng):
        self.kube = kube
        self.params = params
        self.rng = rng
        self.ns = params['namespace']
        self.ref = '%s/%s' % (params['namespace'], params['name'])
        self.selector = '%s=%s' % (CHECK_LABEL, params['name'])

    def pod(self, role, index, node, command):
        labels = {CHECK_LABEL: self.params['name'], 'app.kubernetes.io/managed-by': 'hpcops.coe'}
        container = {'name': 'check', 'image': self.params['validation_image'], 'command': command}
        if self.params.get('rdma_resource'):
            container['resources'] = {'limits': {self.params['rdma_resource']: '1'}}
        spec = {'nodeSelector': {'kubernetes.io/hostname': node}, 'containers': [container],
                'restartPolicy': 'Always' if role == 'hold' else 'Never', 'terminationGracePeriodSeconds': 0}
        if self.params.get('tolerations'):
            spec['tolerations'] = list(self.params['tolerations'])
        return {'apiVersion': 'v1', 'kind': 'Pod',
                'metadata': {'name': check_pod_name(self.params['name'], role, index), 'namespace': self.ns,
                             'labels': labels, 'annotations': {NETWORKS_ANNOTATION: self.ref}},
                'spec': spec}

    def pods(self):
        return dict((p['metadata']['name'], p) for p in
                    self.kube.list('v1', 'Pod', self.ns, label_selector=self.selector))

    def clean(self):
        for name in self.pods():
            self.kube.delete('v1', 'Pod', name, self.ns)

    def why(self, pod):
        if pod is None:
            return 'the pod is gone'
        events = self.kube.events_for(pod)
        problem = container_problem(pod)
        sandbox = [e for e in events if e.startswith('FailedCreatePodSandBox')]
        if sandbox:
            return sandbox[-1]
        if problem:
            return problem + ('; %s' % events[-1] if events else '')
        if network_status(pod, self.ref) is None:
            return ('running without an interface on %s: Multus did not attach it (no %s entry in its '
                    'k8s.v1.cni.cncf.io/network-status annotation; is Multus the cluster\'s CNI on that node?)'
                    % (self.params['name'], self.ref))
        return None

    def address(self, pod):
        entry = network_status(pod, self.ref) or {}
        ips = entry.get('ips') or []
        return ips[0] if ips else None

    def run(self, nodes):
        results = dict((n, {'address': None, 'probe_address': None, 'peer': None, 'peer_address': None,
                            'in_range': False, 'reached': False, 'reason': None}) for n in nodes)
        self.clean()
        self.kube.wait('old check pods of %s to go' % self.params['name'], self.pods, lambda p: not p, timeout=60)
        try:
            holders = {}
            for i, node in enumerate(nodes):
                pod = self.pod('hold', i, node, ['sleep', '3600'])
                self.kube.create(pod)
                holders[node] = pod['metadata']['name']

            def attached(pods):
                return all(self.address(pods.get(holders[n])) and (pods[holders[n]].get('status') or {}).get(
                    'phase') == 'Running' for n in nodes)

            _ok, pods, _waited = self.kube.wait('pods on %s holding addresses' % self.params['name'],
                                                self.pods, attached)
            pods = pods or {}
            for node in nodes:
                pod = pods.get(holders[node])
                addr = self.address(pod)
                results[node]['address'] = addr
                if not addr or (pod.get('status') or {}).get('phase') != 'Running':
                    results[node]['reason'] = 'pod %s: %s' % (holders[node], self.why(pod) or 'not running')
                elif not in_range(addr, self.rng):
                    results[node]['reason'] = 'address %s is outside the range %s-%s' % (
                        addr, self.rng['first'], self.rng['last'])
            ready = [n for n in nodes if results[n]['reason'] is None]
            peers = ring_peers(ready) if len(ready) > 1 else {}
            probes = {}
            for i, node in enumerate(nodes):
                if node not in peers:
                    if results[node]['reason'] is None:
                        results[node]['reason'] = 'no other node holds an address on the network to reach'
                    continue
                peer_address = results[peers[node]]['address'].split('/')[0]
                results[node].update(peer=peers[node], peer_address=peer_address)
                pod = self.pod('ping', i, node, ['ping', '-c', '3', '-w', '10', peer_address])
                self.kube.create(pod)
                probes[node] = pod['metadata']['name']

            def finished(pods):
                return all((pods.get(probes[n]) or {}).get('status', {}).get('phase') in ('Succeeded', 'Failed')
                           for n in probes)

            _ok, pods, waited = self.kube.wait('pings on %s' % self.params['name'], self.pods, finished)
            pods = pods or {}
            for node, name in probes.items():
                pod = pods.get(name)
                entry = results[node]
                entry['probe_address'] = self.address(pod)
                phase = ((pod or {}).get('status') or {}).get('phase')
                if phase == 'Succeeded' and entry['probe_address'] and in_range(entry['probe_address'], self.rng):
                    entry['in_range'] = entry['reached'] = True
                elif phase == 'Succeeded':
                    entry['reason'] = 'pod %s: %s' % (name, self.why(pod) or 'address %s outside the range' % (
                        entry['probe_address'],))
                elif phase == 'Failed':
                    log = self.kube.pod_log(self.ns, name, 5).strip()
                    entry['in_range'] = bool(entry['probe_address']) and in_range(entry['probe_address'], self.rng)
                    entry['reason'] = 'pod %s on %s (%s) could not reach %s on %s: %s' % (
                        name, node, entry['probe_address'], entry['peer_address'], entry['peer'],
                        log or container_problem(pod) or 'ping failed')
                else:
                    entry['reason'] = 'pod %s not finished after %.0f s: %s' % (name, waited, self.why(pod) or 'running')
        finally:
            self.clean()
        return results


class PodNetwork(CoeKubeModule):
    """One NetworkAttachmentDefinition, optionally checked from pods on the nodes."""

    argument_spec = dict(
        name=dict(type='str', required=True),
        namespace=dict(type='str', default='default'),
        network=dict(type='str'),
        type=dict(type='str', choices=list(CNI_TYPES)),
        link_type=dict(type='str', default='ethernet', choices=list(LINK_TYPES)),
        interface=dict(type='str'),
        mode=dict(type='str'),
        mtu=dict(type='int'),
        network_mtu=dict(type='int'),
        subnet=dict(type='dict', options=SUBNET_OPTIONS),
        reserved_addresses=dict(type='list', elements='str', default=[]),
        range=dict(type='str'),
        min_addresses=dict(type='int', default=8),
        resource_name=dict(type='str'),
        rdma_resource=dict(type='str'),
        handoff=dict(type='bool', default=True),
        validate=dict(type='bool', default=False),
        validation_nodes=dict(type='list', elements='str'),
        validation_image=dict(type='str', default='docker.io/library/busybox:1.36.1'),
        validation_force=dict(type='bool', default=False),
        tolerations=dict(type='list', elements='dict'),
    )
    module_kwargs = dict(required_if=[('state', 'present', ('type', 'subnet'))])

    def __init__(self):
        super(PodNetwork, self).__init__()
        self.range = None

    def problems(self):
        params = self.params
        problems = [p for p in (name_problem(params['name'], 'name', label=True),
                                name_problem(params['namespace'], 'namespace', label=True)) if p]
        if params['state'] == 'present':
            problems.extend(validate(params))
            if not problems:
                try:
                    self.range = ipam_range(params)
                except RangeError as exc:
                    problems.append(str(exc))
        return problems

    def run(self):
        kube, params, rng = self.kube, self.params, self.range
        ns, name = params['namespace'], params['name']
        current = kube.get(NAD_API, NAD_KIND, name, ns) if kube.served(NAD_API, NAD_KIND) else None
        operator_networks = []
        for kind in NETWORK_OPERATOR_NETWORK_KINDS:
            operator_networks.extend(kube.list(NETWORK_OPERATOR_API, kind))
        owner = operator_owner(current or {'metadata': {'name': name, 'namespace': ns}}, operator_networks)
        if owner:
            if not params['handoff']:
                self.fail('NetworkAttachmentDefinition %s/%s is managed by %s; with handoff=false the module refuses '
                          'to fight it. Remove it there or set handoff=true.' % (ns, name, owner), owner=owner)
            self.exit(owner=owner, nad=current)
        if params['state'] == 'absent':
            self.delete(NAD_API, NAD_KIND, name, ns)
            self.delete('v1', 'ConfigMap', record_name(name), ns)
            self.exit(owner=None)
        if not kube.served(NAD_API, NAD_KIND) and not self.check_mode:
            self.fail('The API server does not serve %s %s: Multus (its CustomResourceDefinition '
                      'network-attachment-definitions.k8s.cni.cncf.io) is not installed.' % (NAD_API, NAD_KIND))
        applied = self.apply(nad_manifest(params, rng))
        self.diff = applied['diff']
        result = dict(nad=applied['after'], config=cni_config(params, rng), range=rng, owner=None)
        if params['validate'] and self.check_mode:
            self.warn('check mode: the pods that check %s were not started' % name)
        elif params['validate']:
            all_nodes = [n for n in kube.nodes() if not (n.get('spec') or {}).get('unschedulable')]
            nodes = params['validation_nodes']
            if nodes is None:
                bare = {'spec': {'template': {'spec': {'tolerations': params.get('tolerations') or []}}}}
                nodes = eligible_nodes(all_nodes, bare)
            nodes = sorted(set(nodes))
            if len(nodes) < 2:
                self.fail('%s: the checks need two nodes or more to reach each other, found %s' % (
                    name, ', '.join(nodes) or 'none'), **self.with_diff(result))
            checked = self.check(nodes, [n for n in all_nodes if n['metadata']['name'] in nodes])
            result.update(nodes=checked, checked_nodes=[n for n in nodes if checked[n]['checked']],
                          passed_nodes=[n for n in nodes if checked[n]['reached']],
                          failed_nodes=[n for n in nodes if not checked[n]['reached']])
            if result['failed_nodes']:
                self.fail('Pod network %s (%s on %s): %d of %d node(s) failed: %s' % (
                    name, params['type'], params.get('interface') or params.get('resource_name'),
                    len(result['failed_nodes']), len(nodes),
                    '; '.join('%s: %s' % (n, checked[n]['reason']) for n in result['failed_nodes'])),
                    **self.with_diff(result))
        self.exit(**result)

    def check(self, nodes, node_objects):
        """{node: entry} for every node: checked from pods where its inputs changed since it passed, the
        recorded entry elsewhere; the record is updated with what passed."""
        kube, params = self.kube, self.params
        ns, name = params['namespace'], params['name']
        images = cni_daemonset_images(kube.list('apps/v1', 'DaemonSet'))
        digests = node_digests(params, nad_manifest(params, self.range), node_objects, images)
        record = kube.get('v1', 'ConfigMap', record_name(name), ns)
        recorded = recorded_json(record, 'digests', {})
        recorded_results = recorded_json(record, 'results', {})
        # a node without a recorded result is checked again, whatever its digest
        recorded = dict((n, d) for n, d in recorded.items() if isinstance(recorded_results.get(n), dict))
        run = nodes_to_check(nodes, digests, recorded, params['validation_force'])
        checked = dict((n, dict(recorded_results[n], checked=False)) for n in nodes if n not in run)
        if run:
            fresh = PodNetworkCheck(kube, params, self.range).run(run)
            checked.update((n, dict(entry, checked=True)) for n, entry in fresh.items())
        # what passed is remembered with its inputs' digest; a failed node is checked again next time
        keep_digests, keep_results = {}, {}
        for node in nodes:
            entry = checked[node]
            if entry['reached'] and digests.get(node):
                keep_digests[node] = digests[node]
                keep_results[node] = dict((k, v) for k, v in entry.items() if k != 'checked')
        if (keep_digests, keep_results) != (recorded, dict((n, recorded_results[n]) for n in recorded)):
            self.apply(record_manifest(params, keep_digests, keep_results))
        return checked

    def with_diff(self, result):
        """A failed check still shows, in diff mode, the NetworkAttachmentDefinition it applied."""
        if self.module._diff:
            return dict(result, diff=self.diff)
        return result


def main():
    PodNetwork()()


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: device_plugin
short_description: Deploy a GPU, RDMA or SR-IOV device plugin and wait for its resources on the nodes
version_added: "0.1.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Deploys one Kubernetes device plugin as a DaemonSet with its configuration in a ConfigMap, on the nodes
    selected by labels (usually NFD labels), and waits until the resources it advertises show in the node
    allocatable of every expected node.
  - C(nvidia-gpu) is NVIDIA's k8s-device-plugin; it advertises C(nvidia.com/gpu) (or C(nvidia.com/mig-*) with
    the mixed MIG strategy) and needs the NVIDIA driver loaded on the node, for example by
    M(hpcops.coe.kernel_module).
  - C(rdma-shared) is the RDMA shared device plugin; each entry of I(rdma_resources) becomes a resource
    C(rdma/<name>) (ConfigMap C(rdma-devices), key C(config.json)) shared by up to C(hca_max) pods.
  - C(sriov) is the SR-IOV network device plugin; each entry of I(sriov_resources) becomes a resource
    C(<prefix>/<name>) counting the matching virtual functions (ConfigMap C(sriovdp-config), key C(config.json)).
  - The pod template carries a hash of the rendered configuration (annotation C(hpcops.coe/config-hash)), so a
    change of the configuration rolls the DaemonSet and the plugins read the new one (they read it only at start).
  - With I(driver_modules) the plugin starts only on nodes where KMM has loaded the driver, instead of starting
    before it and finding no device.
  - Objects are written with server-side apply under I(field_manager); check mode asks the API server for a dry
    run and shows the diff.
  - On timeout the module reports for every expected node why the resource is missing (pod not scheduled,
    image not pulled, plugin crashing and its log, plugin running but finding no matching device, pods refused
    by Pod Security admission).
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - hpcops.coe.kubernetes
  - hpcops.coe.attributes
  - hpcops.coe.device_nodes
options:
  type:
    description: Which device plugin.
    type: str
    required: true
    choices: [nvidia-gpu, rdma-shared, sriov]
  name:
    description:
      - Name of the DaemonSet.
      - Defaults to C(nvidia-device-plugin), C(rdma-shared-device-plugin) or C(sriov-device-plugin).
    type: str
  namespace:
    description: Namespace of the plugin. The pods use host paths (and host networking for the network plugins), so it needs privileged pod security.
  image:
    description: Plugin image; defaults to a release of the upstream image for the type.
    type: str
  node_selector:
    description:
      - Node labels selecting where the plugin runs.
      - Defaults to C(feature.node.kubernetes.io/pci-10de.present=true) for C(nvidia-gpu) and
        C(feature.node.kubernetes.io/pci-15b3.present=true) for the network plugins (set by the rules of
        M(hpcops.coe.node_feature_rule); NFD's default PCI labels have another form).
      - The ready labels of I(driver_modules) are added to it.
  tolerations:
    description: Extra tolerations of the plugin pods (C(nvidia-gpu) always tolerates the C(nvidia.com/gpu) taint).
  priority_class:
    description: Priority class of the plugin pods.
    type: str
    default: system-node-critical
  config_map_name:
    description: Name of the ConfigMap; defaults to C(<name>-config), C(rdma-devices) or C(sriovdp-config).
    type: str
  expected_nodes:
    description:
      - Nodes on which the resources must appear. Defaults to every node the plugin can run on (node selector
        and taints).
  expected_resources:
    description:
      - Per node, resources that must show in its allocatable with at least the given count, instead of the
        plugin's resource names; for example the MIG instances C(hpcops.coe.gpu_runtime) returns as
        C(mig_resources). The nodes are added to I(expected_nodes).
    type: dict
  runtime_class:
    description:
      - RuntimeClass of the plugin pods. The NVIDIA plugin needs the NVIDIA container runtime (it reads the GPUs
        through the driver's NVML library, which that runtime injects), so give C(nvidia) unless the nodes run it as
        their default runtime (see M(hpcops.coe.gpu_runtime)).
    type: str
  nvidia:
    description: Settings of the NVIDIA plugin.
    type: dict
    suboptions:
      mig_strategy:
        description: How MIG devices are advertised.
        type: str
        choices: [none, single, mixed]
        default: none
      fail_on_init_error:
        description: Let the plugin crash when it finds no driver (so a missing driver shows as CrashLoopBackOff).
        type: bool
        default: true
      time_slicing_replicas:
        description: Advertise every GPU this many times (time slicing).
        type: int
  rdma_resources:
    description: Resources of the RDMA shared device plugin.
    type: list
    elements: dict
    suboptions:
      name:
        description: Resource name (the resource is C(<prefix>/<name>)).
        type: str
        required: true
      prefix:
        description: Resource prefix.
        type: str
        default: rdma
      hca_max:
        description: How many pods may share the devices of one node.
        type: int
        default: 1000
      vendors:
        description: PCI vendor IDs.
        type: list
        elements: str
      device_ids:
        description: PCI device IDs.
        type: list
        elements: str
      drivers:
        description: Kernel drivers.
        type: list
        elements: str
      if_names:
        description: Network interface names.
        type: list
        elements: str
      link_types:
        description: Link types (C(ether), C(infiniband)).
        type: list
        elements: str
  sriov_resources:
    description: Resources of the SR-IOV network device plugin.
    type: list
    elements: dict
    suboptions:
      name:
        description: Resource name (the resource is C(<prefix>/<name>)).
        type: str
        required: true
      prefix:
        description: Resource prefix.
        type: str
        default: intel.com
      device_type:
        description: Device type.
        type: str
        choices: [netDevice, accelerator, auxNetDevice]
        default: netDevice
      vendors:
        description: PCI vendor IDs.
        type: list
        elements: str
      devices:
        description: PCI device IDs (of the virtual functions).
        type: list
        elements: str
      drivers:
        description: Kernel drivers of the virtual functions.
        type: list
        elements: str
      pf_names:
        description: Names of the physical functions whose virtual functions are counted.
        type: list
        elements: str
      link_types:
        description: Link types (C(ether), C(infiniband)).
        type: list
        elements: str
      is_rdma:
        description: Only RDMA-capable (C(true)) or only non-RDMA (C(false)) functions.
        type: bool
  wait:
    description: Wait until the DaemonSet is rolled out and the resources show in the allocatable of every expected node.
seealso:
  - module: hpcops.coe.node_feature_rule
  - module: hpcops.coe.kernel_module
  - module: hpcops.coe.accelerator_validation
'''

EXAMPLES = r'''
- name: NVIDIA GPUs on the nodes NFD labelled, with the runtime hpcops.coe.gpu_runtime configured
  hpcops.coe.device_plugin:
    type: nvidia-gpu
    namespace: hpcops-gpu
    runtime_class: nvidia

- name: InfiniBand HCAs shared by up to 64 pods per node
  hpcops.coe.device_plugin:
    type: rdma-shared
    namespace: hpcops-network
    rdma_resources:
      - name: ib
        vendors: ["15b3"]
        link_types: [infiniband]
        hca_max: 64
    expected_nodes: [gpu-1, ib-1]

- name: NVIDIA GPUs, started only where KMM has loaded the driver (Module hpcops-gpu/nvidia), MIG instances apart
  hpcops.coe.device_plugin:
    type: nvidia-gpu
    namespace: hpcops-gpu
    runtime_class: nvidia
    nvidia:
      # whole GPUs as nvidia.com/gpu, MIG instances as nvidia.com/mig-<profile>
      mig_strategy: mixed
    driver_modules:
      - name: nvidia

- name: SR-IOV virtual functions of ConnectX-7 cards
  hpcops.coe.device_plugin:
    type: sriov
    namespace: hpcops-network
    sriov_resources:
      - name: ib_vf
        prefix: nvidia.com
        vendors: ["15b3"]
        devices: ["101e"]
        link_types: [infiniband]
    # The nodes whose cards have virtual functions enabled; others run the plugin idle.
    expected_nodes: [ib-1]
'''

RETURN = r'''
daemonset:
  description: The DaemonSet as the API server stores it (or would store it, in check mode).
  returned: state=present
  type: dict
config_map:
  description: The ConfigMap holding the plugin configuration.
  returned: state=present
  type: dict
resources:
  description: Names (patterns for MIG) of the extended resources the plugin advertises.
  returned: always
  type: list
  elements: str
  sample: [rdma/ib]
nodes:
  description: For every expected node, how many of each resource its allocatable shows.
  returned: always
  type: dict
  sample: {gpu-1: {nvidia.com/gpu: 2}, gpu-2: {nvidia.com/gpu: 2}}
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
diff:
  description: ConfigMap and DaemonSet before and after, without server-maintained fields (with C(--diff)).
  returned: diff mode
  type: dict
'''

from ansible_collections.hpcops.coe.plugins.module_utils.kube import name_problem
from ansible_collections.hpcops.coe.plugins.module_utils.kube_module import CoeKubeModule
from ansible_collections.hpcops.coe.plugins.module_utils.kube_deviceplugin import (
    DEVICE_NODES_ARG_SPEC, TYPES, any_of, daemonset_ready, defaults, driver_labels, eligible_nodes, manifests, node_reasons,
    resources, serves, shown, validate)


RDMA_OPTIONS = dict(
    name=dict(type='str', required=True),
    prefix=dict(type='str', default='rdma'),
    hca_max=dict(type='int', default=1000),
    vendors=dict(type='list', elements='str'),
    device_ids=dict(type='list', elements='str'),
    drivers=dict(type='list', elements='str'),
    if_names=dict(type='list', elements='str'),
    link_types=dict(type='list', elements='str'),
)
SRIOV_OPTIONS = dict(
    name=dict(type='str', required=True),
    prefix=dict(type='str', default='intel.com'),
    device_type=dict(type='str', default='netDevice', choices=['netDevice', 'accelerator', 'auxNetDevice']),
    vendors=dict(type='list', elements='str'),
    devices=dict(type='list', elements='str'),
    drivers=dict(type='list', elements='str'),
    pf_names=dict(type='list', elements='str'),
    link_types=dict(type='list', elements='str'),
    is_rdma=dict(type='bool'),
)
NVIDIA_OPTIONS = dict(
    mig_strategy=dict(type='str', default='none', choices=['none', 'single', 'mixed']),
    fail_on_init_error=dict(type='bool', default=True),
    time_slicing_replicas=dict(type='int'),
)


class DevicePlugin(CoeKubeModule):
    """One device plugin: its ConfigMap and DaemonSet, then its resources on every expected node."""

    argument_spec = dict(
        DEVICE_NODES_ARG_SPEC,
        type=dict(type='str', required=True, choices=sorted(TYPES)),
        name=dict(type='str'),
        image=dict(type='str'),
        priority_class=dict(type='str', default='system-node-critical'),
        config_map_name=dict(type='str'),
        expected_resources=dict(type='dict'),
        runtime_class=dict(type='str'),
        nvidia=dict(type='dict', options=NVIDIA_OPTIONS),
        rdma_resources=dict(type='list', elements='dict', options=RDMA_OPTIONS),
        sriov_resources=dict(type='list', elements='dict', options=SRIOV_OPTIONS),
    )

    def problems(self):
        params = self.params
        d = defaults(params)
        problems = [p for p in (name_problem(d['name']), name_problem(params['namespace'], 'namespace', label=True),
                                params['runtime_class'] and name_problem(params['runtime_class'], 'runtime_class'))
                    if p]
        if params['state'] == 'present':
            problems.extend(validate(params))
        return problems

    def run(self):
        kube, params = self.kube, self.params
        d = defaults(params)
        if params['state'] == 'absent':
            self.delete('apps/v1', 'DaemonSet', d['name'], params['namespace'])
            self.delete('v1', 'ConfigMap', d['config_map'], params['namespace'])
            self.exit(resources=[], nodes={}, waited=0.0)

        patterns = resources(params)
        config_map, daemonset = manifests(params)
        nodes = kube.nodes()
        eligible = eligible_nodes(nodes, daemonset)
        expected = params['expected_nodes'] if params['expected_nodes'] is not None else eligible
        wanted = params.get('expected_resources') or {}
        expected = sorted(set(expected) | set(wanted))
        any_pattern = any_of(params)

        def served(node, node_obj):
            return serves(node_obj, patterns, any_pattern, wanted.get(node))
        if not expected:
            self.warn('No node matches node_selector %s, so nothing will advertise %s (are the NFD rules '
                      'applied%s?)' % (daemonset['spec']['template']['spec']['nodeSelector'], ', '.join(patterns),
                                       ', is the driver loaded by KMM' if params['driver_modules'] else ''))
        cm = self.apply(config_map)
        ds = self.apply(daemonset)
        self.diff = {'before': {'configmap': cm['diff']['before'], 'daemonset': ds['diff']['before']},
                     'after': {'configmap': cm['diff']['after'], 'daemonset': ds['diff']['after']}}
        waited = 0.0
        if params['wait'] and not self.check_mode:
            def fetch():
                return (kube.get('apps/v1', 'DaemonSet', d['name'], params['namespace']), kube.nodes())

            def done(value):
                current, current_nodes = value
                by_name = dict((n['metadata']['name'], n) for n in current_nodes)
                return daemonset_ready(current) and all(
                    node in by_name and served(node, by_name[node]) for node in expected)

            outcome = self.wait('%s to advertise %s' % (d['name'], ', '.join(patterns)), fetch, done)
            last, waited = outcome.value, outcome.waited
            nodes = last[1] if last else kube.nodes()
            if not outcome.done:
                current = last[0] if last and last[0] else ds['after']
                why = node_reasons(kube, current, expected, patterns, eligible_nodes(nodes, daemonset), nodes,
                                   driver_labels(params), served=served)
                status = (current or {}).get('status') or {}
                detail = '; '.join('%s: %s' % item for item in sorted(why.items())) or \
                    'DaemonSet not rolled out (%s of %s pods ready)' % (
                        status.get('numberReady', 0), status.get('desiredNumberScheduled', '?'))
                by_name = dict((n['metadata']['name'], n) for n in nodes)
                self.fail('%s/%s: %s not available after %.0f s on %d of %d expected node(s): %s' % (
                    params['namespace'], d['name'], ', '.join(patterns), waited, len(why), len(expected), detail),
                    daemonset=current, resources=patterns,
                    nodes=dict((n, shown(by_name.get(n, {}), patterns, any_pattern)) for n in expected))
        by_name = dict((n['metadata']['name'], n) for n in nodes)
        self.exit(daemonset=ds['after'], config_map=cm['after'], resources=patterns,
                  nodes=dict((n, shown(by_name.get(n, {}), patterns, any_pattern)) for n in expected),
                  waited=round(waited, 1))


def main():
    DevicePlugin()()


if __name__ == '__main__':
    main()

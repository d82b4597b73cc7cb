#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: gpu_runtime
short_description: Give GPU nodes the NVIDIA container runtime and MIG layouts, or hand them to the GPU operator
version_added: "0.2.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - A GPU pod needs the NVIDIA container runtime on its node, which injects the driver's libraries and the devices
    into the container; on a stock node a pod asking for C(nvidia.com/gpu) starts without them. This module provides
    that runtime in one of two ways, chosen with I(stack).
  - With I(stack=collection) it deploys the NVIDIA container toolkit as a DaemonSet on the GPU nodes. The toolkit
    configures containerd through a drop-in file (C(/etc/containerd/conf.d/99-nvidia.toml); the node's
    C(config.toml) must import that directory) with an C(nvidia) runtime handler, and generates CDI specifications.
    The module also writes the RuntimeClass I(runtime_class) (C(node.k8s.io/v1)) naming that handler, which the
    device plugin, the validation Jobs and GPU workloads ask for. It waits until the toolkit runs on every expected
    node and reports for every node that is not ready why (not scheduled, waiting for the driver, image not pulled,
    crashing, sandbox not created).
  - With I(mig) it also deploys NVIDIA's MIG manager and labels the selected nodes (usually a nodegroup) with
    C(nvidia.com/mig.config=all-<profile>), as the MIG manager expects; it waits until the manager reports
    C(nvidia.com/mig.config.state=success) on each of them and returns the resources the device plugin must then
    advertise (C(mig_resources)). A profile the GPU model of a node does not have is refused before anything is
    applied (the models come from NFD's NodeFeature objects).
  - With I(stack=gpu-operator) the NVIDIA GPU operator owns driver, toolkit, device plugin, DCGM and MIG manager. The
    module writes the operator's singleton ClusterPolicy (C(nvidia.com/v1)) with the matching settings (the existing
    one, whatever its name, so there is never a second) and waits until its C(status.state) is C(ready) and every
    expected node advertises GPUs.
  - In I(stack=collection) the module refuses to run when a ClusterPolicy exists, since the operator would fight
    over the same nodes.
  - Objects are written with server-side apply; check mode asks the API server for dry runs and shows the diff.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - hpcops.coe.kubernetes
  - hpcops.coe.attributes
  - hpcops.coe.device_nodes
options:
  stack:
    description: Who provides the GPU runtime, see above.
    type: str
    choices: [collection, gpu-operator]
    default: collection
  namespace:
    description: Namespace of the toolkit and the MIG manager (needs privileged pod security).
  state:
    description: Whether the runtime should be deployed (C(absent) removes the toolkit, the MIG manager and the RuntimeClass of I(stack=collection)).
  runtime_class:
    description: Name of the RuntimeClass and of the containerd runtime handler the toolkit configures.
    type: str
    default: nvidia
  node_selector:
    description:
      - Node labels selecting the GPU nodes. The ready labels of I(driver_modules) are added to it.
      - Defaults to C(feature.node.kubernetes.io/pci-10de.present=true) (see M(hpcops.coe.node_feature_rule)).
  driver_modules:
    description:
      - KMM Modules that load the NVIDIA driver; the toolkit (whose CDI specifications describe the driver) and the
        MIG manager start only where KMM reports them loaded, as M(hpcops.coe.device_plugin) does.
  expected_nodes:
    description:
      - Nodes that must get the runtime. Defaults to every node the toolkit can run on.
      - A listed node, or a node the selector selects, whose NFD NodeFeature shows no NVIDIA GPU is refused before
        anything is applied.
  tolerations:
    description: Extra tolerations of the toolkit and MIG manager pods (the C(nvidia.com/gpu) taint is always tolerated).
  toolkit_image:
    description: Image of the NVIDIA container toolkit.
    type: str
    default: nvcr.io/nvidia/k8s/container-toolkit:v1.19.0-ubuntu20.04
  mig_manager_image:
    description: Image of the NVIDIA MIG manager.
    type: str
    default: nvcr.io/nvidia/cloud-native/k8s-mig-manager:v0.12.3-ubuntu20.04
  mig:
    description:
      - MIG layouts, one profile for all GPUs of the selected nodes. Only with I(stack=collection).
      - Each entry selects its nodes with exactly one of I(nodegroup), I(node_selector) and I(nodes); a node gets one
        profile at most.
    type: list
    elements: dict
    suboptions:
      profile:
        description: MIG profile such as C(1g.10gb) or C(3g.40gb) (it must exist for the GPU model), or C(disabled).
        type: str
        required: true
      nodegroup:
        description: Magnum nodegroup whose nodes get the profile (nodes labelled I(nodegroup_label)=<nodegroup>).
        type: str
      nodegroup_label:
        description: The node label naming the nodegroup.
        type: str
        default: magnum.openstack.org/nodegroup
      node_selector:
        description: Node labels selecting the nodes.
        type: dict
      nodes:
        description: Node names.
        type: list
        elements: str
  mig_strategy:
    description:
      - How the device plugin advertises MIG instances (its C(migStrategy)), to compute C(mig_resources) and the
        ClusterPolicy's C(mig.strategy). C(mixed) gives C(nvidia.com/mig-<profile>), C(single) gives C(nvidia.com/gpu)
        per instance.
    type: str
    choices: [single, mixed]
    default: mixed
  gpu_operator:
    description: Settings of the ClusterPolicy with I(stack=gpu-operator).
    type: dict
    suboptions:
      name:
        description: Name of the ClusterPolicy when none exists yet (an existing one keeps its name).
        type: str
        default: cluster-policy
      driver:
        description: Let the operator install the driver (C(false) when the nodes have one, for example from KMM).
        type: bool
        default: true
      driver_version:
        description: Driver version the operator installs.
        type: str
      dcgm_exporter:
        description: Let the operator run DCGM and the DCGM exporter.
        type: bool
        default: true
      service_monitor:
        description: Let the operator create a ServiceMonitor for the DCGM exporter.
        type: bool
        default: false
      mig_manager:
        description: Let the operator run its MIG manager.
        type: bool
        default: true
  force_conflicts:
    description: Take over fields another field manager owns (for example of a ClusterPolicy Helm wrote) instead of failing.
  wait:
    description: Wait for the toolkit on every expected node, the MIG states, or the ClusterPolicy to be ready.
seealso:
  - module: hpcops.coe.device_plugin
  - module: hpcops.coe.accelerator_validation
  - module: hpcops.coe.gpu_monitoring
'''

EXAMPLES = r'''
- name: NVIDIA container runtime on the GPU nodes, after KMM has loaded the driver
  hpcops.coe.gpu_runtime:
    namespace: hpcops-gpu
    driver_modules:
      - name: nvidia

- name: Same, with the GPUs of nodegroup gpu-mig split into 1g.10gb instances
  hpcops.coe.gpu_runtime:
    namespace: hpcops-gpu
    driver_modules:
      - name: nvidia
    mig:
      - nodegroup: gpu-mig
        profile: 1g.10gb
  register: runtime

- name: The device plugin must then advertise the MIG instances
  hpcops.coe.device_plugin:
    type: nvidia-gpu
    namespace: hpcops-gpu
    runtime_class: nvidia
    nvidia:
      mig_strategy: mixed
    expected_resources: "{{ runtime.mig_resources }}"

- name: Hand the GPU stack to the NVIDIA GPU operator (installed with its Helm chart)
  hpcops.coe.gpu_runtime:
    stack: gpu-operator
    gpu_operator:
      driver: true
      service_monitor: true
'''

RETURN = r'''
stack:
  description: Who provides the runtime.
  returned: always
  type: str
  sample: collection
runtime_class:
  description: The RuntimeClass GPU pods must ask for (C(runtimeClassName)).
  returned: always
  type: str
  sample: nvidia
nodes:
  description: Per expected node, whether the runtime is ready there and its MIG layout.
  returned: state=present
  type: dict
  sample: {gpu-1: {runtime: ready, mig_profile: 1g.10gb, mig_state: success}, gpu-2: {runtime: ready}}
mig_resources:
  description: The resources the device plugin must advertise on the MIG nodes, for its I(expected_resources).
  returned: state=present
  type: dict
  sample: {gpu-1: {nvidia.com/mig-1g.10gb: 14}}
checks:
  description:
    - What M(hpcops.coe.accelerator_validation) should request on which nodes to check the GPUs through the runtime,
      with a regular expression C(nvidia-smi -L) must print (MIG nodes under the mixed strategy are checked through
      their MIG instances).
  returned: state=present
  type: list
  elements: dict
  sample: [{resource: nvidia.com/gpu, nodes: [gpu-2], expect_output: "^GPU 0: "},
           {resource: nvidia.com/mig-1g.10gb, nodes: [gpu-1], expect_output: "MIG 1g.10gb"}]
cluster_policy:
  description: The ClusterPolicy as the API server stores it (I(stack=gpu-operator)).
  returned: stack=gpu-operator
  type: dict
objects:
  description: The objects the module applied, as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
diff:
  description: Objects before and after, without server-maintained fields (with C(--diff)).
  returned: diff mode
  type: dict
'''

from ansible_collections.hpcops.coe.plugins.module_utils.kube import name_problem, selector_matches
from ansible_collections.hpcops.coe.plugins.module_utils.kube_module import CoeKubeModule
from ansible_collections.hpcops.coe.plugins.module_utils.kube_deviceplugin import (
    advertised, daemonset_ready, driver_labels, eligible_nodes, node_reasons)
from ansible_collections.hpcops.coe.plugins.module_utils.kube_gpu import (
    ALL_PROFILES, CLUSTER_POLICY_API, GPU_LABEL, GPU_NODES_ARG_SPEC, IMAGES, MIG_CONFIG_LABEL, MIG_STATE_LABEL,
    NODE_API, cluster_policy, checks, cluster_policy_state, mig_assignments, mig_config_name, mig_manager_manifests,
    mig_node_state, mig_problems, mig_resources, node_gpus, oldest, runtime_class, toolkit_daemonset)

MIG_OPTIONS = dict(
    profile=dict(type='str', required=True),
    nodegroup=dict(type='str'),
    nodegroup_label=dict(type='str', default='magnum.openstack.org/nodegroup'),
    node_selector=dict(type='dict'),
    nodes=dict(type='list', elements='str'),
)
OPERATOR_OPTIONS = dict(
    name=dict(type='str', default='cluster-policy'),
    driver=dict(type='bool', default=True),
    driver_version=dict(type='str'),
    dcgm_exporter=dict(type='bool', default=True),
    service_monitor=dict(type='bool', default=False),
    mig_manager=dict(type='bool', default=True),
)
NODEFEATURE_API = 'nfd.k8s-sigs.io/v1alpha1'


def static_problems(params):
    """What is wrong with the parameters without asking the cluster."""
    problems = [p for p in (name_problem(params['namespace'], 'namespace', label=True),
                            name_problem(params['runtime_class'], 'runtime_class', label=True)) if p]
    for i, entry in enumerate(params.get('mig') or []):
        profile = entry.get('profile')
        if profile != 'disabled' and profile not in ALL_PROFILES:
            problems.append('mig[%d].profile %r is not a MIG profile of any supported GPU; profiles are %s, or '
                            'disabled' % (i, profile, ', '.join(ALL_PROFILES)))
    if params['stack'] == 'gpu-operator' and params.get('mig'):
        problems.append('mig applies with stack=collection only (the GPU operator runs its own MIG manager: label the '
                        'nodes nvidia.com/mig.config yourself, or use stack=collection)')
    if params['stack'] == 'collection' and params.get('gpu_operator'):
        problems.append('gpu_operator settings apply with stack=gpu-operator only; both stacks were asked for')
    return problems


class GpuRuntime(CoeKubeModule):
    """One run of the module: plan, apply, wait."""

    argument_spec = dict(
        GPU_NODES_ARG_SPEC,
        stack=dict(type='str', default='collection', choices=['collection', 'gpu-operator']),
        toolkit_image=dict(type='str', default=IMAGES['toolkit']),
        mig_manager_image=dict(type='str', default=IMAGES['mig_manager']),
        mig=dict(type='list', elements='dict', options=MIG_OPTIONS),
        mig_strategy=dict(type='str', default='mixed', choices=['single', 'mixed']),
        gpu_operator=dict(type='dict', options=OPERATOR_OPTIONS),
    )

    def __init__(self):
        super(GpuRuntime, self).__init__()
        self.described = set()

    def problems(self):
        return static_problems(self.params)

    def exit(self, **result):
        result.update(stack=self.params['stack'], runtime_class=self.params['runtime_class'], objects=self.objects)
        super(GpuRuntime, self).exit(**result)

    def fail(self, msg, **result):
        result.update(objects=self.objects)
        super(GpuRuntime, self).fail(msg, **result)

    # ---------------------------------------------------------------- reads

    def cluster_policies(self):
        if not self.kube.served(CLUSTER_POLICY_API, 'ClusterPolicy'):
            return None
        return self.kube.list(CLUSTER_POLICY_API, 'ClusterPolicy')

    def gpus(self):
        """{node: [GPU device IDs]} of the nodes NFD has described (a node without a NodeFeature yet is not
        judged), or None when NFD's NodeFeature API is not there to tell."""
        if not self.kube.served(NODEFEATURE_API, 'NodeFeature'):
            return None
        features = self.kube.list(NODEFEATURE_API, 'NodeFeature')
        self.described = set(((f.get('metadata') or {}).get('labels') or {}).get('nfd.node.kubernetes.io/node-name')
                             or f['metadata']['name'] for f in features)
        return node_gpus(features)

    # ---------------------------------------------------------------- stacks

    def run(self):
        policies = self.cluster_policies()
        if self.params['state'] == 'absent':
            return self.remove()
        if self.params['stack'] == 'gpu-operator':
            return self.operator(policies)
        if policies:
            self.fail('A ClusterPolicy (%s) of the NVIDIA GPU operator exists: the operator deploys the container '
                      'toolkit on the GPU nodes, and a second one from stack=collection would fight it over '
                      'containerd. Use stack=gpu-operator, or remove the operator first. Nothing was applied.'
                      % ', '.join(p['metadata']['name'] for p in policies))
        return self.collection()

    def selector(self):
        selector = dict(self.params['node_selector'] if self.params.get('node_selector') is not None
                        else {GPU_LABEL: 'true'})
        selector.update(driver_labels(self.params))
        return selector

    def collection(self):
        params = self.params
        nodes = self.kube.nodes()
        selector = self.selector()
        toolkit = toolkit_daemonset(params, selector)
        eligible = eligible_nodes(nodes, toolkit)
        # nodes the selector picks before KMM's driver labels are there must have GPUs too
        base_selector = dict(params['node_selector'] if params.get('node_selector') is not None
                             else {GPU_LABEL: 'true'})
        selected = [n['metadata']['name'] for n in nodes
                    if selector_matches((n.get('metadata') or {}).get('labels'), base_selector)]
        expected = params['expected_nodes'] if params['expected_nodes'] is not None else eligible
        assignments, problems = mig_assignments(params.get('mig'), nodes)
        gpus = self.gpus()
        if gpus is not None:
            without = sorted(n for n in set(expected) | set(selected) if n in self.described and not gpus.get(n))
            if without:
                problems.append('the container toolkit would run on node(s) without an NVIDIA GPU: %s (their NFD '
                                'NodeFeature lists no PCI device of vendor 10de, class 03xx); fix node_selector or '
                                'expected_nodes' % ', '.join(without))
            unknown = sorted(n for n in assignments if n not in self.described)
            if unknown:
                problems.append('the GPU model of %s is not known yet (no NFD NodeFeature), so its MIG profile cannot '
                                'be checked: deploy NFD first' % ', '.join(unknown))
            problems.extend(mig_problems(dict((n, p) for n, p in assignments.items() if n in self.described), gpus))
        elif assignments and self.check_mode:
            self.warn('The GPU models behind the MIG profiles could not be checked: NFD (its NodeFeature '
                      'API) is not deployed yet.')
        elif assignments:
            problems.append('MIG profiles need the GPU models of the nodes, from NFD NodeFeature objects, and the '
                            'NodeFeature API (nfd.k8s-sigs.io/v1alpha1) is not served: deploy NFD first')
        missing = sorted(set(params['expected_nodes'] or []) - set(n['metadata']['name'] for n in nodes))
        if missing:
            problems.append('expected_nodes names node(s) the cluster does not have: %s' % ', '.join(missing))
        if problems:
            self.fail('Invalid parameters, nothing was applied: %s.' % '; '.join(problems))
        if not expected:
            self.warn('No node matches node_selector %s, so the container toolkit runs nowhere (are the '
                      'NFD rules applied, is the driver loaded by KMM?)' % selector)

        self.apply(runtime_class(params['runtime_class']))
        ds = self.apply(toolkit)
        manager = None
        if assignments:
            for obj in mig_manager_manifests(params, selector, assignments.values()):
                result = self.apply(obj)
                if obj['kind'] == 'DaemonSet':
                    manager = result
            for node, profile in sorted(assignments.items()):
                self.apply({'apiVersion': 'v1', 'kind': 'Node',
                            'metadata': {'name': node, 'labels': {MIG_CONFIG_LABEL: mig_config_name(profile)}}})
        waited = 0.0
        report = dict((n, {'runtime': 'not checked' if self.check_mode else 'ready'}) for n in expected)
        for node, profile in assignments.items():
            report.setdefault(node, {}).update(mig_profile=profile)
        mig_expect = dict((node, mig_resources(profile, (gpus or {}).get(node, []), params['mig_strategy']))
                          for node, profile in assignments.items() if profile != 'disabled')
        if params['wait'] and not self.check_mode:
            waited = self.wait_collection(ds['after'], toolkit, expected, assignments, manager, report)
        self.exit(nodes=report, mig_resources=mig_expect, checks=checks(expected, assignments, params['mig_strategy']),
                  waited=round(waited, 1))

    def wait_collection(self, ds, toolkit, expected, assignments, manager, report):
        kube, params = self.kube, self.params
        name, ns = toolkit['metadata']['name'], params['namespace']

        def fetch():
            return (kube.get('apps/v1', 'DaemonSet', name, ns), kube.nodes(),
                    kube.get('apps/v1', 'DaemonSet', 'nvidia-mig-manager', ns) if manager else None)

        def mig_done(nodes):
            by_name = dict((n['metadata']['name'], n) for n in nodes)
            return all(mig_node_state(by_name.get(node))[1] == 'success' for node in assignments)

        def mig_failed(value):
            by_name = dict((n['metadata']['name'], n) for n in value[1])
            return any(mig_node_state(by_name.get(node))[1] == 'failed' for node in assignments)

        def done(value):
            current, nodes, mig_ds = value
            # a rolled-out DaemonSet has a ready pod on every node it can run on; the expected ones must be among them
            return (daemonset_ready(current) and set(expected) <= set(eligible_nodes(nodes, toolkit)) and
                    (not manager or daemonset_ready(mig_ds)) and mig_done(nodes))

        outcome = self.wait('the NVIDIA container toolkit on %d node(s)' % len(expected), fetch, done,
                            is_failed=mig_failed if assignments else None)
        waited = outcome.waited
        current, nodes, mig_ds = outcome.value if outcome.value else (ds, kube.nodes(), None)
        if outcome.done:
            by_name = dict((n['metadata']['name'], n) for n in nodes)
            for node in assignments:
                report.setdefault(node, {})['mig_state'] = mig_node_state(by_name.get(node))[1]
            return waited
        why = node_reasons(kube, current or ds, expected, [], eligible_nodes(nodes, toolkit), nodes,
                           driver_labels(params), what='the container toolkit')
        for node in expected:
            report.setdefault(node, {})['runtime'] = why.get(node, 'ready')
        by_name = dict((n['metadata']['name'], n) for n in nodes)
        for node, profile in sorted(assignments.items()):
            config, state = mig_node_state(by_name.get(node))
            report.setdefault(node, {})['mig_state'] = state
            if state != 'success':
                detail = 'MIG %s: the MIG manager reports %s=%s' % (profile, MIG_STATE_LABEL, state) if state else \
                    'MIG %s: the MIG manager has not reported %s yet' % (profile, MIG_STATE_LABEL)
                if manager and mig_ds is not None:
                    manager_why = node_reasons(kube, mig_ds, [node], [], eligible_nodes(nodes, mig_ds), nodes,
                                               driver_labels(params), what='the MIG manager').get(node)
                    if manager_why:
                        detail += ' (%s)' % manager_why
                why[node] = '; '.join(x for x in (why.get(node), detail) if x)
        detail = '; '.join('%s: %s' % item for item in sorted(why.items())) or \
            'DaemonSet %s/%s not rolled out' % (ns, name)
        self.fail('The NVIDIA container runtime is not ready after %.0f s on %d of %d node(s): %s' % (
            waited, len(why), len(set(expected) | set(assignments)), detail), nodes=report, waited=round(waited, 1))

    def operator(self, policies):
        params, kube = self.params, self.kube
        if policies is None:
            self.fail('stack=gpu-operator, but the API server does not serve %s ClusterPolicy: the NVIDIA GPU operator '
                      'is not installed. Install it (its Helm chart brings the CRD and the operator), or use '
                      'stack=collection. Nothing was applied.' % CLUSTER_POLICY_API)
        current = oldest(policies)
        policy = cluster_policy(params, current['metadata']['name'] if current else None)
        others = sorted(p['metadata']['name'] for p in policies if current and p is not current)
        if others:
            self.warn('ClusterPolicy %s is ignored by the operator (it works from the oldest, %s)'
                      % (', '.join(others), current['metadata']['name']))
        nodes = kube.nodes()
        expected = params['expected_nodes'] if params['expected_nodes'] is not None else sorted(
            n['metadata']['name'] for n in nodes
            if all(((n.get('metadata') or {}).get('labels') or {}).get(k) == v for k, v in self.selector().items()))
        result = self.apply(policy)
        waited = 0.0
        report = dict((n, {'runtime': 'not checked' if self.check_mode else 'ready'}) for n in expected)
        patterns = ['nvidia.com/gpu', 'nvidia.com/mig-*']
        if params['wait'] and not self.check_mode:
            def fetch():
                return kube.get(CLUSTER_POLICY_API, 'ClusterPolicy', policy['metadata']['name']), kube.nodes()

            def serving(nodes):
                by_name = dict((n['metadata']['name'], n) for n in nodes)
                return [n for n in expected if sum(advertised(by_name.get(n, {}), patterns).values()) > 0]

            def done(value):
                return cluster_policy_state(value[0])[0] and len(serving(value[1])) == len(expected)

            outcome = self.wait('ClusterPolicy %s to be ready' % policy['metadata']['name'], fetch, done)
            waited = outcome.waited
            obj, nodes = outcome.value if outcome.value else (result['after'], kube.nodes())
            if not outcome.done:
                ready, state = cluster_policy_state(obj)
                lacking = sorted(set(expected) - set(serving(nodes)))
                for node in lacking:
                    report[node]['runtime'] = 'no nvidia.com/gpu (or MIG) resource in its allocatable'
                self.fail('The NVIDIA GPU operator is not ready after %.0f s: ClusterPolicy %s is %s%s.' % (
                    waited, policy['metadata']['name'], state,
                    '; node(s) without GPUs in their allocatable: %s' % ', '.join(lacking) if lacking else ''),
                    nodes=report, cluster_policy=obj, waited=round(waited, 1))
            result['after'] = obj
        self.exit(nodes=report, mig_resources={}, checks=checks(expected, {}, 'mixed'), cluster_policy=result['after'],
                  waited=round(waited, 1))

    def remove(self):
        kube, params = self.kube, self.params
        if params['stack'] == 'gpu-operator':
            self.fail('state=absent with stack=gpu-operator: remove the GPU operator with its own tooling (Helm); this '
                      'module does not delete a ClusterPolicy.')
        for api, kind, name, ns in (('apps/v1', 'DaemonSet', 'nvidia-mig-manager', params['namespace']),
                                    ('v1', 'ConfigMap', 'nvidia-mig-parted-config', params['namespace']),
                                    ('apps/v1', 'DaemonSet', 'nvidia-container-toolkit', params['namespace']),
                                    (NODE_API, 'RuntimeClass', params['runtime_class'], None)):
            self.delete(api, kind, name, ns)
        self.exit(nodes={}, mig_resources={}, waited=0.0)


def main():
    GpuRuntime()()


if __name__ == '__main__':
    main()

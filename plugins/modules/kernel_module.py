#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: kernel_module
short_description: Load an out-of-tree kernel module on selected nodes with a KMM Module
version_added: "0.1.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Manages a Kernel Module Management (KMM) C(Module) (C(kmm.sigs.x-k8s.io/v1beta1)), that is the kernel module
    to load with its parameters and firmware, the kernel mappings (which image holds the module built for
    which kernel), the node selector, an image pull secret and optionally a device plugin that KMM runs
    on the nodes where the module is loaded.
  - Before applying anything, even in check mode, the module lists the nodes the selector matches with
    their kernels and resolves each kernel the way KMM does (the first matching mapping wins; a C(literal)
    must equal the kernel, a C(regexp) must match; C(${KERNEL_FULL_VERSION}) in an image is replaced by the
    kernel). When a selected node runs a kernel no mapping covers, KMM would silently skip it
    (C(nodesMatchingSelectorNumber) > C(desiredNumber)); the module fails instead and names the nodes and
    kernels, unless I(allow_missing_mappings=true).
  - The Module is written with server-side apply under I(field_manager); check mode asks the API server
    for a dry run and shows the diff.
  - With I(wait=true) the module waits until KMM reports the module available on every mapped node
    (C(availableNumber) = C(desiredNumber) = the number of mapped nodes, C(nodesMatchingSelectorNumber) =
    the number of selected nodes) and those nodes carry C(kmm.node.kubernetes.io/<namespace>.<name>.ready)
    (and C(.device-plugin-ready) with I(device_plugin)). On timeout it reports, for every node that is not
    ready, the state of KMM's worker pod there (for example an image that cannot be pulled).
  - Regular expressions are evaluated with Python's engine; KMM uses Go's. They agree on the usual
    anchors, classes and alternations; avoid look-arounds and back-references, which Go does not support.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - hpcops.coe.kubernetes
  - hpcops.coe.attributes
options:
  name:
    description: Name of the Module.
    type: str
    required: true
  namespace:
    description: Namespace of the Module (KMM's worker pods run there; it needs privileged pod security).
    type: str
    required: true
  state:
    description: Whether the Module should exist. Deleting it makes KMM unload the module.
  module_name:
    description: Name of the kernel module to load (C(modprobe) name, for example C(nvidia) or C(mlx5_core)).
    type: str
  parameters:
    description: Module parameters passed to modprobe, as C(key=value) strings.
    type: list
    elements: str
  firmware_path:
    description: Directory in the image whose content KMM copies to the node's firmware search path.
    type: str
  dir_name:
    description: Directory in the image that holds C(lib/modules/<kernel>) (KMM's default is C(/opt)).
    type: str
  modules_loading_order:
    description: Modules to load in this order (the first one must be I(module_name)), for drivers made of several modules.
    type: list
    elements: str
  kernel_mappings:
    description:
      - Which image holds the module for which kernel. Each entry has exactly one of I(literal) and I(regexp).
      - Required with I(state=present) (or I(kernels)) unless the Module only runs a I(device_plugin).
    type: list
    elements: dict
    suboptions:
      literal:
        description: An exact kernel version, as C(uname -r) prints it.
        type: str
      regexp:
        description: A regular expression matched against the kernel version.
        type: str
      container_image:
        description: Image for this mapping; C(${KERNEL_FULL_VERSION}) is replaced by the kernel. Defaults to I(container_image).
        type: str
  kernels:
    description:
      - Exact kernel versions to support, a shorthand for one I(kernel_mappings) entry with C(literal) each, using
        I(container_image).
      - Listing the kernels that have an image (rather than a catch-all regexp) is what lets the module notice a node
        that was upgraded to a kernel without an image, before anything is applied.
    type: list
    elements: str
  container_image:
    description: Image for mappings without their own C(container_image).
    type: str
  image_pull_policy:
    description: Pull policy of the module image.
    type: str
    choices: [Always, IfNotPresent, Never]
  selector:
    description:
      - Node labels that select the nodes (all must match), typically NFD labels such as
        C(feature.node.kubernetes.io/pci-10de.present=true).
      - Required with I(state=present).
    type: dict
  tolerations:
    description: Tolerations for KMM's worker and device plugin pods.
    type: list
    elements: dict
  service_account:
    description: Service account of the module loader pods.
    type: str
  pull_secret:
    description:
      - The image pull secret (C(imageRepoSecret)) for the module and device plugin images.
      - With only I(name), an existing secret is referenced. With I(registry), I(username) and I(password), or
        with I(docker_config_json), the module also creates or updates the secret (type
        C(kubernetes.io/dockerconfigjson)) in I(namespace).
    type: dict
    suboptions:
      name:
        description: Name of the secret.
        type: str
        required: true
      registry:
        description: Registry host the credentials are for.
        type: str
      username:
        description: Registry user name.
        type: str
      password:
        description: Registry password or token.
        type: str
      docker_config_json:
        description: A complete C(.dockerconfigjson) document (string or mapping).
        type: raw
  device_plugin:
    description: A device plugin KMM runs on the nodes where the module is loaded.
    type: dict
    suboptions:
      image:
        description: Device plugin image.
        type: str
        required: true
      args:
        description: Arguments of the device plugin container.
        type: list
        elements: str
      env:
        description: Environment variables of the device plugin container.
        type: dict
      service_account:
        description: Service account of the device plugin pods.
        type: str
  allow_missing_mappings:
    description:
      - Apply even when selected nodes run kernels no mapping covers; those nodes are then not waited for and
        are listed in C(missing_mappings).
    type: bool
    default: false
  wait:
    description: Wait until the module is loaded on every mapped node (or, with I(state=absent), unloaded everywhere).
notes:
  - The KMM operator and its CRDs must be installed. In check mode a missing CRD or namespace only produces a
    warning, so a whole rollout can be checked before KMM exists.
seealso:
  - module: hpcops.coe.node_feature_rule
  - module: hpcops.coe.device_plugin
'''

EXAMPLES = r'''
- name: NVIDIA driver on every GPU node, one image per supported kernel
  hpcops.coe.kernel_module:
    name: nvidia
    namespace: hpcops-gpu
    module_name: nvidia
    selector:
      feature.node.kubernetes.io/pci-10de.present: "true"
    container_image: registry.example.com/drivers/nvidia:550.90.07-${KERNEL_FULL_VERSION}
    kernel_mappings:
      - literal: 5.14.0-427.13.1.el9_4.x86_64
      - literal: 5.14.0-503.11.1.el9_5.x86_64
    firmware_path: /firmware
    pull_secret:
      name: registry-creds
      registry: registry.example.com
      username: robot
      password: "{{ vault_registry_token }}"
    wait_timeout: 900

- name: Out-of-tree Mellanox OFED modules for all el9 kernels
  hpcops.coe.kernel_module:
    name: mofed
    namespace: hpcops-network
    module_name: mlx5_core
    modules_loading_order: [mlx5_core, mlx5_ib]
    selector:
      feature.node.kubernetes.io/pci-15b3.present: "true"
    kernel_mappings:
      - regexp: '^.+\.el9_[0-9]+\.x86_64$'
        container_image: registry.example.com/drivers/mofed:24.07-${KERNEL_FULL_VERSION}

- name: Check, before anything is applied, that every GPU node's kernel has a driver image
  hpcops.coe.kernel_module:
    name: nvidia
    namespace: hpcops-gpu
    module_name: nvidia
    selector: {feature.node.kubernetes.io/pci-10de.present: "true"}
    container_image: registry.example.com/drivers/nvidia:550.90.07-${KERNEL_FULL_VERSION}
    kernel_mappings:
      - literal: 5.14.0-427.13.1.el9_4.x86_64
      - literal: 5.14.0-503.11.1.el9_5.x86_64
  check_mode: true
'''

RETURN = r'''
module:
  description: The Module as the API server stores it (or would store it, in check mode).
  returned: state=present
  type: dict
nodes:
  description: Every node the selector matches, with its kernel, the image KMM loads there and whether it is ready.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: gpu-1, kernel: 5.14.0-427.13.1.el9_4.x86_64, image: "registry.example.com/nvidia:5.14.0-427.13.1.el9_4.x86_64",
       ready: true, reason: null}
missing_mappings:
  description: Selected nodes whose kernel no mapping covers.
  returned: always
  type: list
  elements: dict
  sample: [{node: gpu-3, kernel: 5.14.0-570.12.1.el9_6.x86_64}]
status:
  description: KMM's status of the Module (moduleLoader and devicePlugin counts).
  returned: state=present
  type: dict
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
diff:
  description: The Module before and after, without server-maintained fields (with C(--diff)).
  returned: diff mode
  type: dict
'''

from ansible_collections.hpcops.coe.plugins.module_utils.kube import container_problem, name_problem
from ansible_collections.hpcops.coe.plugins.module_utils.kube_module import CoeKubeModule
from ansible_collections.hpcops.coe.plugins.module_utils.kube_kmm import (
    KMM_API_VERSION, build_module, device_plugin_label, missing_mapping_message, plan, pull_secret, ready_label,
    status_reached, validate_mappings)

MAPPING_OPTIONS = dict(literal=dict(type='str'), regexp=dict(type='str'), container_image=dict(type='str'))
SECRET_OPTIONS = dict(
    name=dict(type='str', required=True),
    registry=dict(type='str'),
    username=dict(type='str'),
    password=dict(type='str', no_log=True),
    docker_config_json=dict(type='raw', no_log=True),
)
PLUGIN_OPTIONS = dict(
    image=dict(type='str', required=True),
    args=dict(type='list', elements='str'),
    env=dict(type='dict'),
    service_account=dict(type='str'),
)


def node_reasons(kube, params, entries, obj):
    """Why each mapped node is not ready, from KMM's worker and device plugin pods."""
    ns, name = params['namespace'], params['name']
    pods = kube.list('v1', 'Pod', ns)
    nodes = dict((n['metadata']['name'], n) for n in kube.nodes())
    reasons = {}
    for entry in entries:
        if not entry['image']:
            continue
        labels = (nodes.get(entry['name'], {}).get('metadata') or {}).get('labels') or {}
        if ready_label(ns, name) in labels:
            if params.get('device_plugin') and device_plugin_label(ns, name) not in labels:
                plugin_pods = [p for p in pods if p['spec'].get('nodeName') == entry['name'] and
                               (p['metadata'].get('labels') or {}).get('app.kubernetes.io/component') == 'device-plugin']
                why = container_problem(plugin_pods[0]) if plugin_pods else 'no device plugin pod yet'
                reasons[entry['name']] = 'module loaded, device plugin not ready: %s' % why
            continue
        mine = [p for p in pods if p['spec'].get('nodeName') == entry['name'] and (
            (p['metadata'].get('labels') or {}).get('kmm.node.kubernetes.io/module.name') == name or
            any(c.get('image') == entry['image'] for c in p['spec'].get('containers') or []))]
        if not mine:
            reasons[entry['name']] = ('no KMM worker pod on the node (is the KMM operator running, and does namespace '
                                      '%s allow privileged pods?)' % ns)
            warnings = kube.events_for(obj) if obj else []
            if warnings:
                reasons[entry['name']] += '; events: %s' % warnings[-1]
            continue
        pod = mine[-1]
        why = container_problem(pod) or 'worker pod %s is %s' % (
            pod['metadata']['name'], (pod.get('status') or {}).get('phase'))
        reasons[entry['name']] = 'worker pod %s: %s' % (pod['metadata']['name'], why)
    return reasons


class KernelModule(CoeKubeModule):
    """One KMM Module: check the kernels of the selected nodes, apply, wait until KMM loaded it."""

    argument_spec = dict(
        name=dict(type='str', required=True),
        namespace=dict(type='str', required=True),
        module_name=dict(type='str'),
        parameters=dict(type='list', elements='str'),
        firmware_path=dict(type='str'),
        dir_name=dict(type='str'),
        modules_loading_order=dict(type='list', elements='str'),
        kernel_mappings=dict(type='list', elements='dict', options=MAPPING_OPTIONS),
        kernels=dict(type='list', elements='str'),
        container_image=dict(type='str'),
        image_pull_policy=dict(type='str', choices=['Always', 'IfNotPresent', 'Never']),
        selector=dict(type='dict'),
        tolerations=dict(type='list', elements='dict'),
        service_account=dict(type='str'),
        pull_secret=dict(type='dict', options=SECRET_OPTIONS, no_log=False),
        device_plugin=dict(type='dict', options=PLUGIN_OPTIONS),
        allow_missing_mappings=dict(type='bool', default=False),
    )
    module_kwargs = dict(required_if=[('state', 'present', ['selector'])])

    def problems(self):
        params = self.params
        # `kernels` is shorthand for literal mappings; the rest of the module only sees mappings
        params['kernel_mappings'] = list(params['kernel_mappings'] or []) + [
            {'literal': k, 'regexp': None, 'container_image': None} for k in params.get('kernels') or []]
        problems = [p for p in (name_problem(params['name']), name_problem(params['namespace'], 'namespace', label=True))
                    if p]
        if params['state'] == 'present':
            if params['kernel_mappings'] or not params['device_plugin']:
                problems.extend(validate_mappings(params['kernel_mappings'], params['container_image']))
                if not params['module_name']:
                    problems.append('module_name is required with kernel_mappings (the name modprobe loads)')
            order = params.get('modules_loading_order') or []
            if order and order[0] != params['module_name']:
                problems.append('modules_loading_order must start with module_name (%s), got %s'
                                % (params['module_name'], order[0]))
            secret = params.get('pull_secret') or {}
            partial = [k for k in ('registry', 'username', 'password') if secret.get(k) is not None]
            if partial and len(partial) < 3:
                problems.append('pull_secret: registry, username and password go together (missing %s)'
                                % ', '.join(sorted({'registry', 'username', 'password'} - set(partial))))
            for key, value in (params['selector'] or {}).items():
                if not isinstance(value, str):
                    problems.append('selector %s: values are strings (quote "true")' % key)
        return problems

    def run(self):
        if self.params['state'] == 'absent':
            self.remove()
        else:
            self.load()

    def remove(self):
        kube, params = self.kube, self.params
        ns, name = params['namespace'], params['name']
        served = kube.served(KMM_API_VERSION, 'Module')
        before = kube.get(KMM_API_VERSION, 'Module', name, ns) if served else None
        changed = self.delete(KMM_API_VERSION, 'Module', name, ns)
        waited = 0.0
        if changed and params['wait'] and not self.check_mode:
            label = ready_label(ns, name)
            outcome = self.wait('KMM to unload %s/%s' % (ns, name), kube.nodes,
                                lambda nodes: not any(label in (n['metadata'].get('labels') or {}) for n in nodes))
            waited = outcome.waited
            if not outcome.done:
                still = sorted(n['metadata']['name'] for n in outcome.value
                               if label in (n['metadata'].get('labels') or {}))
                self.fail('Module %s/%s was deleted but after %.0f s KMM still reports it loaded on %s'
                          % (ns, name, waited, ', '.join(still)))
        self.exit(nodes=[], missing_mappings=[], waited=round(waited, 1), diff={'before': before or {}, 'after': {}})

    def load(self):
        kube, params = self.kube, self.params
        ns, name = params['namespace'], params['name']
        mappings = params['kernel_mappings'] or []
        entries = plan(kube.nodes(), params['selector'], mappings, params['container_image'])
        missing = [e for e in entries if e['image'] is None] if mappings else []
        missing_out = [{'node': e['name'], 'kernel': e['kernel']} for e in missing]
        if missing and not params['allow_missing_mappings']:
            self.fail(missing_mapping_message(ns, name, params['selector'], missing, mappings) +
                      ' Nothing was applied.', missing_mappings=missing_out,
                      nodes=[dict(e, ready=False, reason=None) for e in entries])
        if missing:
            self.warn(missing_mapping_message(ns, name, params['selector'], missing, mappings))
        if not entries:
            self.warn('Module %s/%s: no node matches the selector %s (yet); nothing will be loaded'
                      % (ns, name, params['selector']))

        secret = pull_secret(ns, params['pull_secret']) if params.get('pull_secret') else None
        if secret:
            self.apply(secret)
        applied = self.apply(build_module(params))
        self.diff = applied['diff']  # the Module's; the secret's would show its credentials
        obj = applied['after']
        mapped = [e for e in entries if e['image']] if mappings else entries
        waited = 0.0
        last = None
        status = (obj or {}).get('status') or {}
        if params['wait'] and not self.check_mode:
            outcome = self.wait_loaded(entries, mapped)
            last, waited = outcome.value, outcome.waited
            if last:
                status = (last[0] or {}).get('status') or {}
            if outcome.failed:
                now = plan(last[1], params['selector'], mappings, params['container_image'])
                gone = [e for e in now if e['image'] is None]
                was = dict((e['name'], e['kernel']) for e in entries)
                moves = ', '.join('%s from kernel %s to %s' % (e['name'], was[e['name']], e['kernel'])
                                  if was.get(e['name']) not in (None, e['kernel'])
                                  else '%s (newly selected) on kernel %s' % (e['name'], e['kernel']) for e in gone)
                self.fail('Node(s) changed while waiting for KMM: %s. %s' % (
                    moves, missing_mapping_message(ns, name, params['selector'], gone, mappings)),
                    status=status, missing_mappings=[{'node': e['name'], 'kernel': e['kernel']} for e in gone])
            if not outcome.done:
                reasons = node_reasons(kube, params, mapped, last[0] if last else obj)
                nodes_out = [dict(e, ready=e['name'] not in reasons, reason=reasons.get(e['name'])) for e in entries]
                loader = status.get('moduleLoader') or {}
                detail = '; '.join(
                    '%s (kernel %s, image %s): %s' % (e['name'], e['kernel'], e['image'], reasons[e['name']])
                    for e in mapped if e['name'] in reasons) or \
                    'KMM status has not caught up (status %s)' % loader
                self.fail('Module %s/%s: not ready after %.0f s on %d of %d node(s): %s' % (
                    ns, name, waited, len(reasons), len(mapped), detail), status=status,
                    nodes=nodes_out, missing_mappings=missing_out, module=obj)
        final = last[1] if params['wait'] and not self.check_mode and last else kube.nodes()
        labels = dict((n['metadata']['name'], n['metadata'].get('labels') or {}) for n in final)
        nodes_out = [dict(e, ready=ready_label(ns, name) in labels.get(e['name'], {}), reason=None) for e in entries]
        self.exit(module=obj, status=status, missing_mappings=missing_out, nodes=nodes_out, waited=round(waited, 1))

    def wait_loaded(self, entries, mapped):
        """Wait until KMM reports the module on every mapped node; a node moving to an unmapped kernel fails it."""
        kube, params = self.kube, self.params
        ns, name = params['namespace'], params['name']
        mappings = params['kernel_mappings'] or []

        def fetch():
            return kube.get(KMM_API_VERSION, 'Module', name, ns), kube.nodes()

        def done(value):
            current, nodes = value
            labels = dict((n['metadata']['name'], n['metadata'].get('labels') or {}) for n in nodes)
            want = [ready_label(ns, name)] if mappings else []
            if params['device_plugin']:
                want.append(device_plugin_label(ns, name))
            return bool(current) and status_reached(current.get('status'), len(mapped) if mappings else None,
                                                    len(entries), bool(params['device_plugin'])) and \
                all(all(w in labels.get(e['name'], {}) for w in want) for e in mapped)

        def newly_missing(value):
            if params['allow_missing_mappings'] or not mappings:
                return False
            return any(e['image'] is None for e in plan(value[1], params['selector'], mappings,
                                                        params['container_image']))

        return self.wait('KMM to load %s/%s' % (ns, name), fetch, done, is_failed=newly_missing)


def main():
    KernelModule()()


if __name__ == '__main__':
    main()

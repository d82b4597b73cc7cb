# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifests and checks for hpcops.coe.device_plugin.

Three device plugins are supported, each a DaemonSet plus the configuration
it reads from a ConfigMap: NVIDIA's GPU plugin (nvidia.com/gpu), Mellanox's
RDMA shared device plugin (rdma/<name>, ConfigMap `rdma-devices`, key
config.json) and the SR-IOV network device plugin (<prefix>/<name>,
ConfigMap `sriovdp-config`, key config.json).

The plugins read their configuration only when they start, so the pod
template carries a hash of it: a changed configuration rolls the DaemonSet.
A plugin can wait for its driver: the ready labels of the KMM Modules that
load it are added to the node selector, so its pods start only on nodes
where KMM has loaded the driver.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import hashlib
import json

from ansible_collections.hpcops.coe.plugins.module_utils.kube import container_problem, selector_matches
from ansible_collections.hpcops.coe.plugins.module_utils.kube_kmm import ready_label

CONFIG_HASH_ANNOTATION = 'hpcops.coe/config-hash'

NFD = 'feature.node.kubernetes.io/'

TYPES = {
    'nvidia-gpu': {
        'name': 'nvidia-device-plugin',
        'image': 'nvcr.io/nvidia/k8s-device-plugin:v0.16.2',
        'node_selector': {NFD + 'pci-10de.present': 'true'},
        'config_map': '%s-config',
        'config_key': 'config.yaml',
        'mount': '/etc/nvidia-device-plugin',
    },
    'rdma-shared': {
        'name': 'rdma-shared-device-plugin',
        'image': 'ghcr.io/mellanox/k8s-rdma-shared-dev-plugin:v1.5.1',
        'node_selector': {NFD + 'pci-15b3.present': 'true'},
        'config_map': 'rdma-devices',
        'config_key': 'config.json',
        'mount': '/k8s-rdma-shared-dev-plugin',
    },
    'sriov': {
        'name': 'sriov-device-plugin',
        'image': 'ghcr.io/k8snetworkplumbingwg/sriov-network-device-plugin:v3.7.0',
        'node_selector': {NFD + 'pci-15b3.present': 'true'},
        'config_map': 'sriovdp-config',
        'config_key': 'config.json',
        'mount': '/etc/pcidp',
    },
}
# Argument spec of the `driver_modules` option (the KMM Modules whose ready labels a DaemonSet waits for)
DRIVER_OPTIONS = dict(
    name=dict(type='str', required=True),
    namespace=dict(type='str'),
)
# Options of every module that runs a DaemonSet on the nodes with a device (device_plugin, gpu_runtime,
# gpu_monitoring), documented once in the hpcops.coe.device_nodes doc fragment; a module merges them into its own.
DEVICE_NODES_ARG_SPEC = dict(
    namespace=dict(type='str', default='kube-system'),
    node_selector=dict(type='dict'),
    driver_modules=dict(type='list', elements='dict', options=DRIVER_OPTIONS),
    expected_nodes=dict(type='list', elements='str'),
    tolerations=dict(type='list', elements='dict'),
    image_pull_secrets=dict(type='list', elements='str', no_log=False),
)
RESOURCE_NAME_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.'


def driver_labels(params):
    """{label: ''}: the ready label of every KMM Module in `driver_modules` (namespace defaults to the plugin's)."""
    out = {}
    for module in params.get('driver_modules') or []:
        out[ready_label(module.get('namespace') or params['namespace'], module['name'])] = ''
    return out


def defaults(params):
    kind = TYPES[params['type']]
    name = params.get('name') or kind['name']
    selector = dict(params['node_selector'] if params.get('node_selector') is not None else kind['node_selector'])
    selector.update(driver_labels(params))
    return {
        'name': name,
        'image': params.get('image') or kind['image'],
        'node_selector': selector,
        'config_map': params.get('config_map_name') or (
            kind['config_map'] % name if '%s' in kind['config_map'] else kind['config_map']),
    }


def config_hash(document):
    """Hash of the rendered configuration, kept in the pod template so a change rolls the DaemonSet."""
    return hashlib.sha256(document.encode('utf-8')).hexdigest()


def _lower(values):
    return [str(v).lower() for v in values or []]


def validate(params):
    problems = []
    kind = params['type']
    if kind == 'rdma-shared' and not params.get('rdma_resources'):
        problems.append('rdma_resources is required with type=rdma-shared (at least one resource with its selectors, '
                        'for example {name: ib, vendors: ["15b3"], link_types: [infiniband]})')
    if kind == 'sriov' and not params.get('sriov_resources'):
        problems.append('sriov_resources is required with type=sriov (at least one resource with its selectors, '
                        'for example {name: ib_vf, vendors: ["15b3"], devices: ["101e"]})')
    for field, expected in (('rdma_resources', 'rdma-shared'), ('sriov_resources', 'sriov'), ('nvidia', 'nvidia-gpu')):
        if params.get(field) and kind != expected:
            problems.append('%s only applies to type=%s' % (field, expected))
    for i, module in enumerate(params.get('driver_modules') or []):
        if not module.get('name'):
            problems.append('driver_modules[%d].name is required (the name of the KMM Module)' % i)
    for field in ('rdma_resources', 'sriov_resources'):
        names = []
        for i, res in enumerate(params.get(field) or []):
            rname = res.get('name') or ''
            names.append(rname)
            if not rname or any(c not in RESOURCE_NAME_CHARS for c in rname):
                problems.append('%s[%d].name %r: a resource name is letters, digits, "-", "_" and "."' % (field, i, rname))
            selectors = [k for k in ('vendors', 'device_ids', 'devices', 'drivers', 'if_names', 'pf_names', 'link_types')
                         if res.get(k)]
            if not selectors:
                problems.append('%s[%d] (%s): give at least one selector (vendors, devices/device_ids, drivers, '
                                'if_names/pf_names, link_types), or it matches every device' % (field, i, rname))
        dupes = sorted(set(n for n in names if names.count(n) > 1))
        if dupes:
            problems.append('%s: resource names must be unique: %s' % (field, ', '.join(dupes)))
    for node, wanted in sorted((params.get('expected_resources') or {}).items()):
        if not isinstance(wanted, dict) or not wanted:
            problems.append('expected_resources[%s] must map resource names to counts, for example '
                            '{nvidia.com/mig-1g.10gb: 14}' % node)
            continue
        for resource, count in sorted(wanted.items()):
            if '/' not in str(resource) or not str(count).isdigit():
                problems.append('expected_resources[%s]: %s: %s is not an extended resource name with a count'
                                % (node, resource, count))
    nvidia = params.get('nvidia') or {}
    if nvidia.get('time_slicing_replicas') is not None and nvidia['time_slicing_replicas'] < 2:
        problems.append('nvidia.time_slicing_replicas must be 2 or more (each GPU is then advertised that many times)')
    return problems


def resources(params):
    """Extended resource names (fnmatch patterns) the plugin advertises."""
    kind = params['type']
    if kind == 'nvidia-gpu':
        if (params.get('nvidia') or {}).get('mig_strategy') == 'mixed':
            # GPUs without MIG stay nvidia.com/gpu under the mixed strategy
            return ['nvidia.com/gpu', 'nvidia.com/mig-*']
        return ['nvidia.com/gpu']
    if kind == 'rdma-shared':
        return ['%s/%s' % (r.get('prefix') or 'rdma', r['name']) for r in params['rdma_resources']]
    return ['%s/%s' % (r.get('prefix') or 'intel.com', r['name']) for r in params['sriov_resources']]


def config_document(params):
    kind = params['type']
    if kind == 'nvidia-gpu':
        nvidia = params.get('nvidia') or {}
        lines = ['version: v1', 'flags:', '  migStrategy: %s' % (nvidia.get('mig_strategy') or 'none'),
                 '  failOnInitError: %s' % ('false' if nvidia.get('fail_on_init_error') is False else 'true')]
        if nvidia.get('time_slicing_replicas'):
            lines += ['sharing:', '  timeSlicing:', '    resources:', '      - name: nvidia.com/gpu',
                      '        replicas: %d' % nvidia['time_slicing_replicas']]
        return '\n'.join(lines) + '\n'
    if kind == 'rdma-shared':
        entries = []
        for res in params['rdma_resources']:
            selectors = {}
            for src, dst in (('vendors', 'vendors'), ('device_ids', 'deviceIDs'), ('drivers', 'drivers'),
                             ('if_names', 'ifNames'), ('link_types', 'linkTypes')):
                if res.get(src):
                    selectors[dst] = _lower(res[src]) if src in ('vendors', 'device_ids') else list(res[src])
            entry = {'resourceName': res['name'], 'rdmaHcaMax': res.get('hca_max') or 1000, 'selectors': selectors}
            if res.get('prefix'):
                entry['resourcePrefix'] = res['prefix']
            entries.append(entry)
        return json.dumps({'periodicUpdateInterval': 300, 'configList': entries}, indent=2, sort_keys=True)
    entries = []
    for res in params['sriov_resources']:
        selectors = {}
        for src, dst in (('vendors', 'vendors'), ('devices', 'devices'), ('drivers', 'drivers'),
                         ('pf_names', 'pfNames'), ('link_types', 'linkTypes')):
            if res.get(src):
                selectors[dst] = _lower(res[src]) if src in ('vendors', 'devices') else list(res[src])
        if res.get('is_rdma') is not None:
            selectors['isRdma'] = bool(res['is_rdma'])
        entry = {'resourceName': res['name'], 'deviceType': res.get('device_type') or 'netDevice',
                 'selectors': selectors}
        if res.get('prefix'):
            entry['resourcePrefix'] = res['prefix']
        entries.append(entry)
    return json.dumps({'resourceList': entries}, indent=2, sort_keys=True)


def manifests(params):
    """(ConfigMap, DaemonSet) for the plugin."""
    d = defaults(params)
    kind = TYPES[params['type']]
    ns = params['namespace']
    labels = {'app.kubernetes.io/name': d['name'], 'app.kubernetes.io/component': 'device-plugin',
              'app.kubernetes.io/managed-by': 'hpcops.coe'}
    document = config_document(params)
    config_map = {'apiVersion': 'v1', 'kind': 'ConfigMap',
                  'metadata': {'name': d['config_map'], 'namespace': ns, 'labels': labels},
                  'data': {kind['config_key']: document}}
    mounts = [{'name': 'device-plugin', 'mountPath': '/var/lib/kubelet/device-plugins'},
              {'name': 'config', 'mountPath': kind['mount'], 'readOnly': True}]
    volumes = [{'name': 'device-plugin', 'hostPath': {'path': '/var/lib/kubelet/device-plugins'}},
               {'name': 'config', 'configMap': {'name': d['config_map']}}]
    container = {'name': d['name'], 'image': d['image'], 'volumeMounts': mounts}
    pod = {'priorityClassName': params.get('priority_class') or 'system-node-critical',
           'nodeSelector': dict(d['node_selector']), 'containers': [container], 'volumes': volumes}
    if params.get('runtime_class'):
        # the NVIDIA plugin reads the GPUs through NVML, which only the NVIDIA container runtime injects
        pod['runtimeClassName'] = params['runtime_class']
    tolerations = list(params.get('tolerations') or [])
    if params['type'] == 'nvidia-gpu':
        container['args'] = ['--config-file=%s/%s' % (kind['mount'], kind['config_key'])]
        container['securityContext'] = {'allowPrivilegeEscalation': False, 'capabilities': {'drop': ['ALL']}}
        tolerations.append({'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'})
    else:
        # both network plugins read /sys and /dev of the host network namespace
        pod['hostNetwork'] = True
        container['securityContext'] = {'privileged': True}
        mounts.append({'name': 'devs', 'mountPath': '/dev/'})
        volumes.append({'name': 'devs', 'hostPath': {'path': '/dev/'}})
        if params['type'] == 'sriov':
            container['args'] = ['--log-level=10', '--config-file=%s/%s' % (kind['mount'], kind['config_key'])]
            mounts.append({'name': 'sys', 'mountPath': '/sys', 'readOnly': True})
            volumes.append({'name': 'sys', 'hostPath': {'path': '/sys'}})
    if tolerations:
        pod['tolerations'] = tolerations
    if params.get('image_pull_secrets'):
        pod['imagePullSecrets'] = [{'name': n} for n in params['image_pull_secrets']]
    daemonset = {'apiVersion': 'apps/v1', 'kind': 'DaemonSet',
                 'metadata': {'name': d['name'], 'namespace': ns, 'labels': labels},
                 'spec': {'selector': {'matchLabels': {'app.kubernetes.io/name': d['name']}},
                          'updateStrategy': {'type': 'RollingUpdate'},
                          'template': {'metadata': {'labels': labels,
                                                    'annotations': {CONFIG_HASH_ANNOTATION: config_hash(document)}},
                                       'spec': pod}}}
    return config_map, daemonset


def _tolerated(taint, tolerations):
    for tol in tolerations or []:
        if tol.get('effect') and tol['effect'] != taint.get('effect'):
            continue
        if not tol.get('key'):
            if tol.get('operator') == 'Exists':
                return True
            continue
        if tol['key'] != taint.get('key'):
            continue
        if tol.get('operator') == 'Exists' or tol.get('value', '') == taint.get('value', ''):
            return True
    return False


def eligible_nodes(nodes, daemonset):
    """Nodes a DaemonSet's pods can run on (node selector and NoSchedule/NoExecute taints)."""
    pod = daemonset['spec']['template']['spec']
    out = []
    for node in nodes:
        meta = node.get('metadata') or {}
        if not selector_matches(meta.get('labels'), pod.get('nodeSelector')):
            continue
        taints = [t for t in (node.get('spec') or {}).get('taints') or [] if t.get('effect') in ('NoSchedule', 'NoExecute')]
        if all(_tolerated(t, pod.get('tolerations')) for t in taints):
            out.append(meta['name'])
    return sorted(out)


def advertised(node, patterns):
    """{pattern: count} of the node's allocatable resources matching each pattern."""
    alloc = ((node.get('status') or {}).get('allocatable')) or {}
    out = {}
    for pattern in patterns:
        total = 0
        for key, value in alloc.items():
            if fnmatch.fnmatchcase(key, pattern):
                try:
                    total += int(str(value))
                except ValueError:
                    pass
        out[pattern] = total
    return out


def shown(node, patterns, any_pattern=False):
    """{resource: count} to report for a node: wildcard patterns expanded to the resources they match; with
    `any_pattern`, only what the node has."""
    alloc = ((node or {}).get('status') or {}).get('allocatable') or {}
    out = {}
    for pattern in patterns:
        if '*' in pattern:
            for key in sorted(alloc):
                if fnmatch.fnmatchcase(key, pattern):
                    out[key] = advertised(node, [key])[key]
        else:
            out[pattern] = advertised(node, [pattern])[pattern]
    if any_pattern and any(out.values()):
        out = dict((k, v) for k, v in out.items() if v)
    return out


def any_of(params):
    """Whether one of the resource patterns is enough on a node (mixed MIG: whole GPUs or MIG instances)."""
    return params['type'] == 'nvidia-gpu' and (params.get('nvidia') or {}).get('mig_strategy') == 'mixed'


def serves(node, patterns, any_pattern=False, wanted=None):
    """Whether a node advertises what it should: `wanted` {resource: at least}, else the patterns."""
    if wanted:
        alloc = ((node or {}).get('status') or {}).get('allocatable') or {}
        for resource, count in wanted.items():
            try:
                if int(str(alloc.get(resource, 0))) < int(count):
                    return False
            except ValueError:
                return False
        return True
    counts = advertised(node or {}, patterns).values()
    return any(counts) if any_pattern else all(counts)


def daemonset_ready(ds):
    status = (ds or {}).get('status') or {}
    meta = (ds or {}).get('metadata') or {}
    desired = status.get('desiredNumberScheduled')
    return (desired is not None and status.get('observedGeneration') == meta.get('generation') and
            status.get('numberReady') == desired and (status.get('updatedNumberScheduled') or 0) == desired and
            not status.get('numberUnavailable'))


def pod_ready(pod):
    return any(c.get('type') == 'Ready' and c.get('status') == 'True'
               for c in ((pod or {}).get('status') or {}).get('conditions') or [])


def sandbox_problem(kube, pod):
    """Why the kubelet cannot create the pod's sandbox (it then stays ContainerCreating), from its events."""
    if pod_ready(pod):
        return None
    for event in reversed(kube.events_for(pod)):
        if event.startswith('FailedCreatePodSandBox'):
            return 'sandbox not created: %s' % event
    return None


def node_reasons(kube, ds, expected, patterns, eligible, nodes, drivers=None, what='the plugin', served=None):
    """{node: why} for every expected node where the DaemonSet's pod is not serving.

    With `patterns` a node also needs those resources in its allocatable; without, a ready pod is enough.
    `drivers` are the ready labels of the KMM Modules the pods wait for; `served(node name, node)` replaces the
    check that every pattern shows."""
    by_name = dict((n['metadata']['name'], n) for n in nodes)
    pods = kube.list('v1', 'Pod', ds['metadata']['namespace'])
    uid = ds['metadata'].get('uid')
    pods = [p for p in pods if any(r.get('uid') == uid for r in p['metadata'].get('ownerReferences') or [])]
    events = kube.events_for(ds)
    out = {}
    for node in expected:
        counts = advertised(by_name.get(node, {}), patterns)
        ok = served(node, by_name.get(node, {})) if served else all(counts.values())
        short = not patterns or not ok
        if node not in by_name:
            out[node] = 'no such node'
            continue
        if node not in eligible:
            labels = by_name[node]['metadata'].get('labels') or {}
            unloaded = sorted(label for label in drivers or {} if label not in labels)
            if unloaded and short:
                out[node] = '%s waits for its driver: KMM has not loaded it there (no node label %s)' \
                    % (what, ', '.join(unloaded))
            elif not all(counts.values()):
                out[node] = 'the plugin cannot run there: the node does not match node_selector %s or has a taint ' \
                            'the pods do not tolerate' % ds['spec']['template']['spec'].get('nodeSelector')
            continue
        mine = [p for p in pods if p['spec'].get('nodeName') == node]
        if not mine:
            out[node] = 'no pod of %s on the node' % what + ('; DaemonSet events: %s' % events[-1] if events else '')
            continue
        pod = mine[-1]
        problem = container_problem(pod) or sandbox_problem(kube, pod)
        if problem:
            log = kube.pod_log(pod['metadata']['namespace'], pod['metadata']['name'], 5).strip()
            out[node] = 'pod %s: %s%s' % (pod['metadata']['name'], problem, ('; log: %s' % log) if log else '')
            continue
        if not patterns and not pod_ready(pod):
            out[node] = 'pod %s is not ready yet' % pod['metadata']['name']
        if patterns and not ok:
            missing = ', '.join(p for p, c in sorted(counts.items()) if not c) or \
                'the expected %s' % ' or '.join(patterns)
            out[node] = ('the plugin runs (pod %s) but the node advertises no %s: its devices do not match the '
                         'plugin configuration (selectors), or their driver is not loaded'
                         % (pod['metadata']['name'], missing))
    return out

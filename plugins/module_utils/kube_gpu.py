# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NVIDIA GPU runtime for hpcops.coe.gpu_runtime: container toolkit, RuntimeClass, MIG, GPU operator.

A GPU container needs more than a device plugin: the NVIDIA container toolkit
must configure the node's container runtime (containerd here) with an `nvidia`
runtime handler that injects the driver's libraries and the devices, and pods
must ask for that handler through a RuntimeClass. The toolkit runs as a
DaemonSet that writes a containerd drop-in file (so the node's own
config.toml is not rewritten) and generates CDI specifications.

MIG (Multi-Instance GPU) splits a GPU into instances. NVIDIA's MIG manager
watches the node label `nvidia.com/mig.config`, applies the named layout from
its mig-parted configuration and reports `nvidia.com/mig.config.state`; the
device plugin then advertises `nvidia.com/mig-<profile>` (mixed strategy) or
`nvidia.com/gpu` per instance (single strategy). Which profiles exist depends
on the GPU model, so they are checked against the PCI device IDs NFD found.

With the NVIDIA GPU operator, all of that is the operator's: the collection
writes its singleton ClusterPolicy and waits for `status.state: ready`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.hpcops.coe.plugins.module_utils.kube_deviceplugin import (
    CONFIG_HASH_ANNOTATION, DEVICE_NODES_ARG_SPEC, config_hash)
from ansible_collections.hpcops.coe.plugins.module_utils.kube_nfd import NFD_PREFIX, pci_devices, pci_matches

GPU_LABEL = NFD_PREFIX + 'pci-10de.present'
NODEGROUP_LABEL = 'magnum.openstack.org/nodegroup'
MIG_CONFIG_LABEL = 'nvidia.com/mig.config'
MIG_STATE_LABEL = 'nvidia.com/mig.config.state'
RUNTIME_CLASS = 'nvidia'
NODE_API = 'node.k8s.io/v1'
CLUSTER_POLICY_API = 'nvidia.com/v1'
NVIDIA_VENDOR = '10de'

# Options of the modules whose DaemonSets run on the GPU nodes with the NVIDIA runtime (gpu_runtime and
# gpu_monitoring): those of every device DaemonSet and the RuntimeClass. The modules merge it into their own.
GPU_NODES_ARG_SPEC = dict(DEVICE_NODES_ARG_SPEC, runtime_class=dict(type='str', default=RUNTIME_CLASS))

IMAGES = {
    'toolkit': 'nvcr.io/nvidia/k8s/container-toolkit:v1.19.0-ubuntu20.04',
    'mig_manager': 'nvcr.io/nvidia/cloud-native/k8s-mig-manager:v0.12.3-ubuntu20.04',
}

# Where the toolkit container sees the host's containerd files (hostPath mounts below).
CONTAINERD_HOST = {'config_dir': '/etc/containerd', 'drop_in_dir': '/etc/containerd/conf.d',
                   'socket_dir': '/run/containerd', 'cdi_dir': '/var/run/cdi', 'install_dir': '/usr/local/nvidia'}
DROP_IN_FILE = '99-nvidia.toml'

# MIG profiles per GPU model: {profile: instances per GPU}, from NVIDIA's MIG user guide; keyed by the PCI
# device IDs of the boards (vendor 10de).
MIG_MODELS = (
    {'model': 'A100 40GB', 'devices': ('20b0', '20f1'),
     'profiles': {'1g.5gb': 7, '1g.10gb': 4, '2g.10gb': 3, '3g.20gb': 2, '4g.20gb': 1, '7g.40gb': 1}},
    {'model': 'A100 80GB', 'devices': ('20b2', '20b5'),
     'profiles': {'1g.10gb': 7, '1g.20gb': 4, '2g.20gb': 3, '3g.40gb': 2, '4g.40gb': 1, '7g.80gb': 1}},
    {'model': 'A30 24GB', 'devices': ('20b7',),
     'profiles': {'1g.6gb': 4, '2g.12gb': 2, '4g.24gb': 1}},
    {'model': 'H100 80GB', 'devices': ('2330', '2331'),
     'profiles': {'1g.10gb': 7, '1g.20gb': 4, '2g.20gb': 3, '3g.40gb': 2, '4g.40gb': 1, '7g.80gb': 1}},
    {'model': 'H100 NVL 94GB', 'devices': ('2321',),
     'profiles': {'1g.12gb': 7, '1g.24gb': 4, '2g.24gb': 3, '3g.47gb': 2, '4g.47gb': 1, '7g.94gb': 1}},
    {'model': 'H200 141GB', 'devices': ('2335',),
     'profiles': {'1g.18gb': 7, '1g.35gb': 4, '2g.35gb': 3, '3g.71gb': 2, '4g.71gb': 1, '7g.141gb': 1}},
)
ALL_PROFILES = sorted(set(p for m in MIG_MODELS for p in m['profiles']))


def mig_model(device_id):
    for entry in MIG_MODELS:
        if str(device_id).lower() in entry['devices']:
            return entry
    return None


def mig_config_name(profile):
    """The mig-parted configuration (and node label value) that puts every GPU of a node into `profile`."""
    return 'all-disabled' if profile in (None, '', 'disabled') else 'all-%s' % profile


def mig_parted_config(profiles):
    """The MIG manager's mig-parted configuration: every used profile on all GPUs, plus all-disabled."""
    configs = {'all-disabled': [{'devices': 'all', 'mig-enabled': False}]}
    for profile in sorted(set(p for p in profiles if p and p != 'disabled')):
        per_gpu = max(entry['profiles'].get(profile, 0) for entry in MIG_MODELS)
        configs[mig_config_name(profile)] = [{'devices': 'all', 'mig-enabled': True,
                                              'mig-devices': {profile: per_gpu}}]
    # JSON is YAML: the MIG manager reads it, and no YAML library is needed on the controller.
    return json.dumps({'version': 'v1', 'mig-configs': configs}, indent=2, sort_keys=True)


def node_gpus(nodefeatures):
    """{node: [PCI device IDs of its NVIDIA GPUs]} from NFD NodeFeature objects (vendor 10de, class 03xx)."""
    out = {}
    for node, attrs in pci_devices(nodefeatures):
        if pci_matches(attrs, NVIDIA_VENDOR, ('03',)):
            out.setdefault(node, []).append(str(attrs.get('device', '')).lower())
    return out


def mig_assignments(mig, nodes):
    """({node: profile}, problems): the MIG profile each node gets from the `mig` entries.

    An entry names a `nodegroup` (nodes labelled magnum.openstack.org/nodegroup=<name>), a `node_selector` or
    `nodes`; a node may get one profile only."""
    out, problems, origin = {}, [], {}
    by_name = dict((n['metadata']['name'], n) for n in nodes)
    for i, entry in enumerate(mig or []):
        where = 'mig[%d]' % i
        chosen = [k for k in ('nodegroup', 'node_selector', 'nodes') if entry.get(k)]
        if len(chosen) != 1:
            problems.append('%s: give exactly one of nodegroup, node_selector and nodes (got %s)'
                            % (where, ', '.join(chosen) or 'none'))
            continue
        if entry.get('nodes'):
            selected = list(entry['nodes'])
            missing = [n for n in selected if n not in by_name]
            if missing:
                problems.append('%s: no such node(s): %s' % (where, ', '.join(sorted(missing))))
                selected = [n for n in selected if n in by_name]
        else:
            selector = {entry.get('nodegroup_label') or NODEGROUP_LABEL: entry['nodegroup']} \
                if entry.get('nodegroup') else dict(entry['node_selector'])
            selected = sorted(name for name, node in by_name.items()
                              if all(((node.get('metadata') or {}).get('labels') or {}).get(k) == v
                                     for k, v in selector.items()))
            if not selected:
                problems.append('%s: no node has the label(s) %s' % (
                    where, ', '.join('%s=%s' % kv for kv in sorted(selector.items()))))
        for node in selected:
            if node in out and out[node] != entry['profile']:
                problems.append('%s: node %s already gets MIG profile %s from %s' % (
                    where, node, out[node], origin[node]))
                continue
            out[node] = entry['profile']
            origin[node] = where
    return out, problems


def mig_problems(assignments, gpus):
    """Why a MIG profile cannot be applied to a node's GPUs (unknown profile for the model, no GPU, no MIG)."""
    problems = []
    for node, profile in sorted(assignments.items()):
        if profile == 'disabled':
            continue
        devices = gpus.get(node)
        if not devices:
            problems.append('%s has no NVIDIA GPU (its NFD NodeFeature lists no PCI device of vendor 10de, class '
                            '03xx), so MIG profile %s cannot apply' % (node, profile))
            continue
        for device in sorted(set(devices)):
            entry = mig_model(device)
            if entry is None:
                problems.append('%s: GPU 10de:%s does not support MIG (or is not a model with known MIG profiles: '
                                '%s)' % (node, device, ', '.join(m['model'] for m in MIG_MODELS)))
            elif profile not in entry['profiles']:
                problems.append('%s: MIG profile %s does not exist on the %s (10de:%s); its profiles are %s' % (
                    node, profile, entry['model'], device, ', '.join(sorted(entry['profiles']))))
    return problems


def mig_resources(profile, devices, strategy):
    """{resource: count} the device plugin advertises for a node whose GPUs (`devices`) are in `profile`."""
    per_gpu = sum((mig_model(d) or {'profiles': {}})['profiles'].get(profile, 0) for d in devices)
    if strategy == 'single':
        return {'nvidia.com/gpu': per_gpu}
    return {'nvidia.com/mig-%s' % profile: per_gpu}


def checks(nodes, assignments, strategy):
    """[{resource, nodes, expect_output}]: one GPU check per node through what its device plugin advertises."""
    whole = sorted(n for n in nodes if strategy == 'single' or assignments.get(n) in (None, 'disabled'))
    out = [{'resource': 'nvidia.com/gpu', 'nodes': whole, 'expect_output': '^GPU 0: '}] if whole else []
    for profile in sorted(set(p for n, p in assignments.items() if p != 'disabled' and n not in whole)):
        out.append({'resource': 'nvidia.com/mig-%s' % profile, 'expect_output': 'MIG %s' % profile,
                    'nodes': sorted(n for n, p in assignments.items() if p == profile and n not in whole)})
    return out


def _labels(name, component):
    return {'app.kubernetes.io/name': name, 'app.kubernetes.io/component': component,
            'app.kubernetes.io/managed-by': 'hpcops.coe'}


def runtime_class(handler=RUNTIME_CLASS):
    return {'apiVersion': NODE_API, 'kind': 'RuntimeClass',
            'metadata': {'name': handler, 'labels': _labels('nvidia-container-toolkit', 'runtime')},
            'handler': handler}


def _daemonset(name, namespace, component, pod):
    labels = _labels(name, component)
    return {'apiVersion': 'apps/v1', 'kind': 'DaemonSet',
            'metadata': {'name': name, 'namespace': namespace, 'labels': labels},
            'spec': {'selector': {'matchLabels': {'app.kubernetes.io/name': name}},
                     'updateStrategy': {'type': 'RollingUpdate'},
                     'template': {'metadata': {'labels': labels}, 'spec': pod}}}


def _host_volume(name, path, mount, read_only=False, kind=None):
    volume = {'name': name, 'hostPath': {'path': path}}
    if kind:
        volume['hostPath']['type'] = kind
    mount_entry = {'name': name, 'mountPath': mount}
    if read_only:
        mount_entry['readOnly'] = True
    return volume, mount_entry


def _pod_common(params, node_selector):
    pod = {'priorityClassName': 'system-node-critical', 'nodeSelector': dict(node_selector),
           'tolerations': [{'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}]
           + list(params.get('tolerations') or [])}
    if params.get('image_pull_secrets'):
        pod['imagePullSecrets'] = [{'name': n} for n in params['image_pull_secrets']]
    return pod


def toolkit_env(handler, cdi=True):
    """The toolkit container's documented settings: containerd, a drop-in file, the runtime class, CDI."""
    host = CONTAINERD_HOST
    return [
        {'name': 'RUNTIME', 'value': 'containerd'},
        # read the node's config.toml (not containerd's CLI) and leave it alone: the nvidia runtime goes to a drop-in
        {'name': 'RUNTIME_CONFIG_SOURCE', 'value': 'file'},
        {'name': 'CONTAINERD_CONFIG', 'value': '/runtime/config-dir/config.toml'},
        {'name': 'RUNTIME_DROP_IN_CONFIG', 'value': '/runtime/config-dir.d/' + DROP_IN_FILE},
        {'name': 'RUNTIME_DROP_IN_CONFIG_HOST_PATH', 'value': '%s/%s' % (host['drop_in_dir'], DROP_IN_FILE)},
        {'name': 'CONTAINERD_SOCKET', 'value': '/runtime/sock-dir/containerd.sock'},
        {'name': 'CONTAINERD_RUNTIME_CLASS', 'value': handler},
        # only pods asking for the RuntimeClass get the NVIDIA runtime; everything else keeps runc
        {'name': 'CONTAINERD_SET_AS_DEFAULT', 'value': 'false'},
        {'name': 'CDI_ENABLED', 'value': 'true' if cdi else 'false'},
        {'name': 'NVIDIA_VISIBLE_DEVICES', 'value': 'void'},
    ]


def toolkit_daemonset(params, node_selector):
    host = CONTAINERD_HOST
    volumes, mounts = [], []
    for name, path, mount, kind in (('containerd-config', host['config_dir'], '/runtime/config-dir/', None),
                                    ('containerd-drop-in', host['drop_in_dir'], '/runtime/config-dir.d/',
                                     'DirectoryOrCreate'),
                                    ('containerd-socket', host['socket_dir'], '/runtime/sock-dir/', None),
                                    ('cdi-specs', host['cdi_dir'], host['cdi_dir'], 'DirectoryOrCreate'),
                                    ('toolkit-install-dir', host['install_dir'], host['install_dir'],
                                     'DirectoryOrCreate'),
                                    ('run-nvidia', '/run/nvidia', '/run/nvidia', 'DirectoryOrCreate')):
        volume, mount_entry = _host_volume(name, path, mount, kind=kind)
        volumes.append(volume)
        mounts.append(mount_entry)
    container = {'name': 'nvidia-container-toolkit', 'image': params.get('toolkit_image') or IMAGES['toolkit'],
                 'env': toolkit_env(params.get('runtime_class') or RUNTIME_CLASS, params.get('cdi', True)),
                 'securityContext': {'privileged': True}, 'volumeMounts': mounts}
    pod = _pod_common(params, node_selector)
    # the toolkit signals containerd to reload its configuration
    pod.update(hostPID=True, containers=[container], volumes=volumes)
    return _daemonset(params.get('toolkit_name') or 'nvidia-container-toolkit', params['namespace'], 'runtime', pod)


def mig_manager_manifests(params, node_selector, profiles):
    """ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap and DaemonSet of the MIG manager."""
    ns = params['namespace']
    name = 'nvidia-mig-manager'
    labels = _labels(name, 'mig-manager')
    account = {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': {'name': name, 'namespace': ns,
                                                                          'labels': labels}}
    # it labels its node with the state and restarts the GPU clients (device plugin, exporter) around a change
    role = {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRole',
            'metadata': {'name': 'hpcops-nvidia-mig-manager', 'labels': labels},
            'rules': [{'apiGroups': [''], 'resources': ['nodes'], 'verbs': ['get', 'list', 'watch', 'patch', 'update']},
                      {'apiGroups': [''], 'resources': ['pods'], 'verbs': ['get', 'list', 'delete']},
                      {'apiGroups': ['apps'], 'resources': ['daemonsets'], 'verbs': ['get', 'list']}]}
    binding = {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRoleBinding',
               'metadata': {'name': 'hpcops-nvidia-mig-manager', 'labels': labels},
               'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole',
                           'name': 'hpcops-nvidia-mig-manager'},
               'subjects': [{'kind': 'ServiceAccount', 'name': name, 'namespace': ns}]}
    config = {'apiVersion': 'v1', 'kind': 'ConfigMap',
              'metadata': {'name': 'nvidia-mig-parted-config', 'namespace': ns, 'labels': labels},
              'data': {'config.yaml': mig_parted_config(profiles)}}
    volumes, mounts = [], []
    for vol_name, path, mount in (('host-root', '/', '/host'), ('run-nvidia', '/run/nvidia', '/run/nvidia'),
                                  ('host-sys', '/sys', '/sys')):
        volume, mount_entry = _host_volume(vol_name, path, mount)
        volumes.append(volume)
        mounts.append(mount_entry)
    volumes.append({'name': 'mig-parted-config', 'configMap': {'name': 'nvidia-mig-parted-config'}})
    mounts.append({'name': 'mig-parted-config', 'mountPath': '/mig-parted-config', 'readOnly': True})
    container = {'name': name, 'image': params.get('mig_manager_image') or IMAGES['mig_manager'],
                 'env': [{'name': 'NODE_NAME', 'valueFrom': {'fieldRef': {'fieldPath': 'spec.nodeName'}}},
                         {'name': 'CONFIG_FILE', 'value': '/mig-parted-config/config.yaml'},
                         {'name': 'DEFAULT_GPU_CLIENTS_NAMESPACE', 'value': ns},
                         {'name': 'WITH_REBOOT', 'value': 'false'}],
                 'securityContext': {'privileged': True}, 'volumeMounts': mounts}
    pod = _pod_common(params, node_selector)
    pod.update(serviceAccountName=name, hostPID=True, hostIPC=True, runtimeClassName=params.get('runtime_class')
               or RUNTIME_CLASS, containers=[container], volumes=volumes)
    daemonset = _daemonset(name, ns, 'mig-manager', pod)
    # a changed configuration must reach the running managers (they read it at start)
    daemonset['spec']['template']['metadata']['annotations'] = {
        CONFIG_HASH_ANNOTATION: config_hash(config['data']['config.yaml'])}
    return [account, role, binding, config, daemonset]


def cluster_policy(params, existing_name=None):
    """The GPU operator's ClusterPolicy with the settings the collection would otherwise apply itself."""
    operator = params.get('gpu_operator') or {}
    nvidia = params.get('nvidia') or {}
    monitoring = bool(operator.get('dcgm_exporter', True))
    spec = {
        'operator': {'defaultRuntime': 'containerd', 'runtimeClass': params.get('runtime_class') or RUNTIME_CLASS},
        'daemonsets': {'priorityClassName': 'system-node-critical',
                       'tolerations': [{'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}]
                       + list(params.get('tolerations') or [])},
        'driver': {'enabled': bool(operator.get('driver', True))},
        'toolkit': {'enabled': True, 'env': [e for e in toolkit_env(params.get('runtime_class') or RUNTIME_CLASS)
                                             if e['name'] in ('RUNTIME_DROP_IN_CONFIG_HOST_PATH',
                                                              'CONTAINERD_SET_AS_DEFAULT')]},
        'devicePlugin': {'enabled': True},
        'dcgm': {'enabled': monitoring},
        'dcgmExporter': {'enabled': monitoring, 'serviceMonitor': {'enabled': bool(operator.get('service_monitor'))}},
        'gfd': {'enabled': True},
        'mig': {'strategy': nvidia.get('mig_strategy') if nvidia.get('mig_strategy') in ('single', 'mixed')
                else 'single'},
        'migManager': {'enabled': bool(operator.get('mig_manager', True))},
        'nodeStatusExporter': {'enabled': False},
    }
    if operator.get('driver_version'):
        spec['driver']['version'] = operator['driver_version']
    if params.get('image_pull_secrets'):
        spec['daemonsets']['imagePullSecrets'] = list(params['image_pull_secrets'])
    return {'apiVersion': CLUSTER_POLICY_API, 'kind': 'ClusterPolicy',
            'metadata': {'name': existing_name or operator.get('name') or 'cluster-policy'}, 'spec': spec}


def cluster_policy_state(obj):
    """(ready, description) from the status the GPU operator reports on its ClusterPolicy."""
    status = (obj or {}).get('status') or {}
    state = status.get('state')
    if state == 'ready':
        return True, 'ready'
    details = [c.get('message') or c.get('reason') for c in status.get('conditions') or []
               if c.get('status') == 'True' and c.get('type') == 'Error']
    if state == 'ignored':
        return False, ('ignored: the operator works from another ClusterPolicy (it takes the oldest); this one '
                       'has no effect')
    return False, '%s%s' % (state or 'no state reported (is the GPU operator running?)',
                            (': %s' % '; '.join(d for d in details if d)) if any(details) else '')


def oldest(objects):
    """The ClusterPolicy the operator works from: the oldest (the singleton)."""
    if not objects:
        return None
    return sorted(objects, key=lambda o: ((o.get('metadata') or {}).get('creationTimestamp') or '',
                                          (o.get('metadata') or {}).get('name') or ''))[0]


def mig_node_state(node):
    labels = ((node or {}).get('metadata') or {}).get('labels') or {}
    return labels.get(MIG_CONFIG_LABEL), labels.get(MIG_STATE_LABEL)

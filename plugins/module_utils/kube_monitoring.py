# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Observability of the accelerator stack for hpcops.coe.gpu_monitoring.

DCGM exporter (NVIDIA's Prometheus exporter for DCGM fields) on the GPU
nodes, with a Service and a ServiceMonitor; PrometheusRules for GPU health
(XID errors, uncorrectable ECC errors, row-remapping failures, temperature),
InfiniBand link state (node_exporter's infiniband collector) and KMM worker
pods that fail to load a module; Grafana dashboards as ConfigMaps carrying
the label the Grafana sidecar collects (`grafana_dashboard: "1"`).

The exporter is given its own list of DCGM fields, so every metric the rules
and dashboards use is collected whatever the image's defaults are.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.hpcops.coe.plugins.module_utils.kube_deviceplugin import CONFIG_HASH_ANNOTATION, config_hash

DCGM_EXPORTER_IMAGE = 'nvcr.io/nvidia/k8s/dcgm-exporter:4.3.1-4.4.0-ubuntu22.04'
DCGM_PORT = 9400
DASHBOARD_LABEL = 'grafana_dashboard'

# DCGM field, Prometheus type, help: the counters file format of dcgm-exporter
DCGM_FIELDS = (
    ('DCGM_FI_DEV_GPU_TEMP', 'gauge', 'GPU temperature (C).'),
    ('DCGM_FI_DEV_MEMORY_TEMP', 'gauge', 'Memory temperature (C).'),
    ('DCGM_FI_DEV_POWER_USAGE', 'gauge', 'Power draw (W).'),
    ('DCGM_FI_DEV_GPU_UTIL', 'gauge', 'GPU utilization (%).'),
    ('DCGM_FI_DEV_MEM_COPY_UTIL', 'gauge', 'Memory utilization (%).'),
    ('DCGM_FI_DEV_FB_USED', 'gauge', 'Framebuffer memory used (MiB).'),
    ('DCGM_FI_DEV_FB_FREE', 'gauge', 'Framebuffer memory free (MiB).'),
    ('DCGM_FI_DEV_XID_ERRORS', 'gauge', 'Value of the last XID error encountered.'),
    ('DCGM_FI_DEV_ECC_SBE_VOL_TOTAL', 'counter', 'Volatile single-bit ECC errors.'),
    ('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', 'counter', 'Volatile double-bit ECC errors.'),
    ('DCGM_FI_DEV_ROW_REMAP_FAILURE', 'gauge', 'Whether remapping of rows has failed.'),
    ('DCGM_FI_DEV_PCIE_REPLAY_COUNTER', 'counter', 'PCIe replay counter.'),
    ('DCGM_FI_PROF_GR_ENGINE_ACTIVE', 'gauge', 'Ratio of time the graphics engine is active (per MIG instance too).'),
)
# XIDs that take a GPU out of service until it is reset (NVIDIA's XID catalogue): 48 double-bit ECC,
# 79 fallen off the bus, 94/95 contained/uncontained ECC error, 119/120 GSP errors
CRITICAL_XIDS = (48, 79, 94, 95, 119, 120)
RULE_GROUPS = ('gpu', 'rdma', 'kmm')


def counters_csv():
    lines = ['# DCGM field, Prometheus type, help (written by hpcops.coe.gpu_monitoring)']
    lines += ['%s, %s, %s' % field for field in DCGM_FIELDS]
    return '\n'.join(lines) + '\n'


def _labels(name, component, extra=None):
    out = {'app.kubernetes.io/name': name, 'app.kubernetes.io/component': component,
           'app.kubernetes.io/managed-by': 'hpcops.coe'}
    out.update(extra or {})
    return out


def exporter_manifests(params, node_selector):
    """ConfigMap (the fields), DaemonSet, Service and ServiceMonitor of the DCGM exporter."""
    ns, name = params['namespace'], 'dcgm-exporter'
    labels = _labels(name, 'gpu-metrics')
    csv = counters_csv()
    config = {'apiVersion': 'v1', 'kind': 'ConfigMap',
              'metadata': {'name': 'dcgm-exporter-fields', 'namespace': ns, 'labels': labels},
              'data': {'hpcops-fields.csv': csv}}
    container = {
        'name': name, 'image': params.get('dcgm_exporter_image') or DCGM_EXPORTER_IMAGE,
        'env': [{'name': 'DCGM_EXPORTER_COLLECTORS', 'value': '/etc/dcgm-exporter/hpcops/hpcops-fields.csv'},
                {'name': 'DCGM_EXPORTER_LISTEN', 'value': ':%d' % DCGM_PORT},
                # pod, namespace and container labels from the kubelet's pod-resources API
                {'name': 'DCGM_EXPORTER_KUBERNETES', 'value': 'true'}],
        'ports': [{'name': 'metrics', 'containerPort': DCGM_PORT}],
        # profiling fields need SYS_ADMIN
        'securityContext': {'capabilities': {'add': ['SYS_ADMIN']}},
        'volumeMounts': [{'name': 'pod-resources', 'mountPath': '/var/lib/kubelet/pod-resources', 'readOnly': True},
                         {'name': 'fields', 'mountPath': '/etc/dcgm-exporter/hpcops', 'readOnly': True}],
    }
    pod = {'priorityClassName': 'system-node-critical', 'nodeSelector': dict(node_selector),
           'tolerations': [{'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}]
           + list(params.get('tolerations') or []),
           'containers': [container],
           'volumes': [{'name': 'pod-resources', 'hostPath': {'path': '/var/lib/kubelet/pod-resources'}},
                       {'name': 'fields', 'configMap': {'name': 'dcgm-exporter-fields'}}]}
    if params.get('runtime_class'):
        pod['runtimeClassName'] = params['runtime_class']
    if params.get('image_pull_secrets'):
        pod['imagePullSecrets'] = [{'name': n} for n in params['image_pull_secrets']]
    daemonset = {'apiVersion': 'apps/v1', 'kind': 'DaemonSet',
                 'metadata': {'name': name, 'namespace': ns, 'labels': labels},
                 'spec': {'selector': {'matchLabels': {'app.kubernetes.io/name': name}},
                          'updateStrategy': {'type': 'RollingUpdate'},
                          'template': {'metadata': {'labels': labels,
                                                    'annotations': {CONFIG_HASH_ANNOTATION: config_hash(csv)}},
                                       'spec': pod}}}
    service = {'apiVersion': 'v1', 'kind': 'Service',
               'metadata': {'name': name, 'namespace': ns, 'labels': labels},
               'spec': {'selector': {'app.kubernetes.io/name': name},
                        'ports': [{'name': 'metrics', 'port': DCGM_PORT, 'targetPort': 'metrics'}]}}
    monitor_labels = _labels(name, 'gpu-metrics', params.get('labels'))
    monitor = {'apiVersion': 'monitoring.coreos.com/v1', 'kind': 'ServiceMonitor',
               'metadata': {'name': name, 'namespace': ns, 'labels': monitor_labels},
               'spec': {'selector': {'matchLabels': {'app.kubernetes.io/name': name}},
                        'endpoints': [{'port': 'metrics', 'interval': '30s', 'honorLabels': True}]}}
    return [config, daemonset, service, monitor]


def _alert(name, expr, summary, description, severity='warning', duration='5m'):
    rule = {'alert': name, 'expr': expr, 'labels': {'severity': severity},
            'annotations': {'summary': summary, 'description': description}}
    if duration:
        rule['for'] = duration
    return rule


def rule_groups(params):
    """PrometheusRule groups, from the metrics' documented names."""
    groups = []
    wanted = params.get('rules') or list(RULE_GROUPS)
    temp = params.get('gpu_temperature_limit') or 85
    if 'gpu' in wanted:
        critical = ' or '.join('DCGM_FI_DEV_XID_ERRORS == %d' % x for x in CRITICAL_XIDS)
        groups.append({'name': 'hpcops-gpu-health', 'rules': [
            _alert('GPUXidError', 'DCGM_FI_DEV_XID_ERRORS > 0',
                   'GPU {{ $labels.gpu }} on {{ $labels.Hostname }} reported XID {{ $value }}',
                   'The driver logged an XID error for this GPU; look it up in NVIDIA\'s XID catalogue.',
                   duration=None),
            _alert('GPUXidCritical', critical,
                   'GPU {{ $labels.gpu }} on {{ $labels.Hostname }} needs a reset (XID {{ $value }})',
                   'XID %s take the GPU out of service until it is reset; drain the node.'
                   % ', '.join(str(x) for x in CRITICAL_XIDS), severity='critical', duration=None),
            _alert('GPUUncorrectableECCErrors', 'increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[15m]) > 0',
                   'GPU {{ $labels.gpu }} on {{ $labels.Hostname }} had double-bit ECC errors',
                   'Uncorrectable memory errors corrupt results; the GPU needs a reset and may need replacing.',
                   severity='critical', duration=None),
            _alert('GPURowRemapFailure', 'DCGM_FI_DEV_ROW_REMAP_FAILURE > 0',
                   'GPU {{ $labels.gpu }} on {{ $labels.Hostname }} could not remap a faulty memory row',
                   'The GPU has run out of spare rows; it should be replaced.', severity='critical', duration=None),
            _alert('GPUTemperatureHigh', 'DCGM_FI_DEV_GPU_TEMP > %d' % temp,
                   'GPU {{ $labels.gpu }} on {{ $labels.Hostname }} is at {{ $value }} C',
                   'Above %d C for 10 minutes: check the cooling; the GPU throttles.' % temp, duration='10m'),
            _alert('GPUMetricsMissing',
                   'kube_daemonset_status_number_unavailable{daemonset="dcgm-exporter"} > 0',
                   'DCGM exporter pods of {{ $labels.namespace }} are unavailable',
                   'Nodes without a running exporter report no GPU health.', duration='15m'),
        ]})
    if 'rdma' in wanted:
        groups.append({'name': 'hpcops-rdma-links', 'rules': [
            # node_exporter's infiniband collector: state 4 is ACTIVE, physical state 5 is LinkUp
            _alert('InfiniBandPortNotActive', 'node_infiniband_state_id != 4',
                   'InfiniBand port {{ $labels.device }}/{{ $labels.port }} on {{ $labels.instance }} is not ACTIVE',
                   'The port is down, polling or waiting for the subnet manager; RDMA traffic cannot use it.'),
            _alert('InfiniBandPhysicalLinkDown', 'node_infiniband_physical_state_id != 5',
                   'InfiniBand link {{ $labels.device }}/{{ $labels.port }} on {{ $labels.instance }} is physically down',
                   'No physical link (cable, transceiver or switch port).'),
            _alert('InfiniBandLinkFlapping', 'increase(node_infiniband_link_downed_total[30m]) > 2',
                   'InfiniBand link {{ $labels.device }}/{{ $labels.port }} on {{ $labels.instance }} went down '
                   'repeatedly', 'The link recovered several times in 30 minutes: check cable and switch port.',
                   duration=None),
        ]})
    if 'kmm' in wanted:
        groups.append({'name': 'hpcops-kmm-modules', 'rules': [
            _alert('KMMModuleLoadFailed', 'kube_pod_status_phase{phase="Failed", pod=~"kmm-worker-.*"} > 0',
                   'KMM could not load a kernel module ({{ $labels.namespace }}/{{ $labels.pod }})',
                   'A KMM worker pod failed: the module image lacks the module for the node\'s kernel or modprobe '
                   'failed; read the pod\'s log.', duration='1m'),
            _alert('KMMModuleImageUnavailable',
                   'kube_pod_container_status_waiting_reason{pod=~"kmm-worker-.*", '
                   'reason=~"ErrImagePull|ImagePullBackOff|CrashLoopBackOff"} > 0',
                   'KMM worker {{ $labels.namespace }}/{{ $labels.pod }} is stuck ({{ $labels.reason }})',
                   'The kernel module image for the node\'s kernel cannot be pulled or started.', duration='10m'),
        ]})
    return groups


def prometheus_rule(params):
    return {'apiVersion': 'monitoring.coreos.com/v1', 'kind': 'PrometheusRule',
            'metadata': {'name': 'hpcops-gpu-health', 'namespace': params['namespace'],
                         'labels': _labels('hpcops-gpu-health', 'alerts', params.get('labels'))},
            'spec': {'groups': rule_groups(params)}}


# ---------------------------------------------------------------------------- dashboards

_DS = {'type': 'prometheus', 'uid': '${datasource}'}


def _panel(panel_id, title, exprs, unit, x, y, w=12, h=8, kind='timeseries'):
    return {'id': panel_id, 'type': kind, 'title': title, 'datasource': _DS,
            'gridPos': {'x': x, 'y': y, 'w': w, 'h': h},
            'fieldConfig': {'defaults': {'unit': unit}, 'overrides': []},
            'targets': [{'refId': chr(ord('A') + i), 'datasource': _DS, 'expr': expr, 'legendFormat': legend}
                        for i, (expr, legend) in enumerate(exprs)]}


def _dashboard(uid, title, variables, panels):
    templating = [{'name': 'datasource', 'type': 'datasource', 'query': 'prometheus', 'label': 'Data source'}]
    for name, query in variables:
        templating.append({'name': name, 'type': 'query', 'datasource': _DS, 'query': query, 'refresh': 2,
                           'multi': True, 'includeAll': True, 'label': name})
    return {'uid': uid, 'title': title, 'tags': ['hpcops', 'accelerators'], 'schemaVersion': 39, 'version': 1,
            'editable': True, 'time': {'from': 'now-6h', 'to': 'now'}, 'refresh': '1m',
            'templating': {'list': templating}, 'panels': panels}


def dashboards():
    """{file name: dashboard} of the GPU and RDMA dashboards."""
    node = '{Hostname=~"$node"}'
    gpu_legend = '{{Hostname}} GPU {{gpu}}'
    gpu = _dashboard('hpcops-gpu-nodes', 'GPU nodes (DCGM)', [('node', 'label_values(DCGM_FI_DEV_GPU_TEMP, Hostname)')], [
        _panel(1, 'GPU utilization', [('DCGM_FI_DEV_GPU_UTIL%s' % node, gpu_legend)], 'percent', 0, 0),
        _panel(2, 'Framebuffer memory used', [('DCGM_FI_DEV_FB_USED%s' % node, gpu_legend)], 'decmbytes', 12, 0),
        _panel(3, 'GPU temperature', [('DCGM_FI_DEV_GPU_TEMP%s' % node, gpu_legend),
                                      ('DCGM_FI_DEV_MEMORY_TEMP%s' % node, '{{Hostname}} GPU {{gpu}} memory')],
               'celsius', 0, 8),
        _panel(4, 'Power draw', [('DCGM_FI_DEV_POWER_USAGE%s' % node, gpu_legend)], 'watt', 12, 8),
        _panel(5, 'Last XID error', [('DCGM_FI_DEV_XID_ERRORS%s' % node, gpu_legend)], 'none', 0, 16, w=8,
               kind='stat'),
        _panel(6, 'Double-bit ECC errors (15 min)',
               [('increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL%s[15m])' % node, gpu_legend)], 'none', 8, 16, w=8,
               kind='stat'),
        _panel(7, 'Row remap failures', [('DCGM_FI_DEV_ROW_REMAP_FAILURE%s' % node, gpu_legend)], 'none', 16, 16,
               w=8, kind='stat'),
        _panel(8, 'MIG instances: graphics engine activity',
               [('DCGM_FI_PROF_GR_ENGINE_ACTIVE{Hostname=~"$node", GPU_I_PROFILE!=""}',
                 '{{Hostname}} GPU {{gpu}} {{GPU_I_PROFILE}} #{{GPU_I_ID}}')], 'percentunit', 0, 24, w=24),
        _panel(9, 'GPUs in use by pod', [('count by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL{pod!=""})',
                                          '{{namespace}}/{{pod}}')], 'none', 0, 32, w=24),
    ])
    link = '{instance=~"$instance"}'
    instances = [('instance', 'label_values(node_infiniband_state_id, instance)')]
    rdma = _dashboard('hpcops-rdma-links', 'InfiniBand links', instances, [
        _panel(1, 'Port state (4 = ACTIVE)', [('node_infiniband_state_id%s' % link, '{{instance}} {{device}}/{{port}}')],
               'none', 0, 0, kind='stat'),
        _panel(2, 'Physical state (5 = LinkUp)',
               [('node_infiniband_physical_state_id%s' % link, '{{instance}} {{device}}/{{port}}')], 'none', 12, 0,
               kind='stat'),
        _panel(3, 'Link rate', [('node_infiniband_rate_bytes_per_second%s' % link, '{{instance}} {{device}}/{{port}}')],
               'Bps', 0, 8),
        _panel(4, 'Link down events (1 h)',
               [('increase(node_infiniband_link_downed_total%s[1h])' % link, '{{instance}} {{device}}/{{port}}')],
               'none', 12, 8),
    ])
    return {'hpcops-gpu-nodes.json': gpu, 'hpcops-rdma-links.json': rdma}


def dashboard_configmaps(params):
    out = []
    for filename, dashboard in sorted(dashboards().items()):
        labels = _labels(dashboard['uid'], 'dashboard', {DASHBOARD_LABEL: '1'})
        meta = {'name': dashboard['uid'], 'namespace': params.get('dashboards_namespace') or params['namespace'],
                'labels': labels}
        if params.get('dashboards_folder'):
            # the sidecar's folder annotation (its folderAnnotation setting; this is its default key)
            meta['annotations'] = {'grafana_folder': params['dashboards_folder']}
        out.append({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': meta,
                    'data': {filename: json.dumps(dashboard, indent=1, sort_keys=True)}})
    return out

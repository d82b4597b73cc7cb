#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: gpu_monitoring
short_description: GPU and RDMA observability - DCGM exporter, alert rules and Grafana dashboards
version_added: "0.2.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Deploys NVIDIA's DCGM exporter as a DaemonSet on the GPU nodes with a Service and a ServiceMonitor (Prometheus
    operator), with its own list of DCGM fields so every metric the rules and dashboards use is collected. It runs
    with the NVIDIA RuntimeClass (it reads the GPUs through NVML). The module waits until the exporter runs on every
    expected node and reports for every node that is not ready why.
  - Writes a PrometheusRule with alerts for GPU health (XID errors, critical XIDs, double-bit ECC errors, row-remap
    failures, temperature, missing exporters), InfiniBand link state (node_exporter's infiniband collector) and KMM
    worker pods that fail to load a kernel module.
  - Writes Grafana dashboards (GPU nodes, InfiniBand links) as ConfigMaps labelled C(grafana_dashboard=1), the label
    the Grafana sidecar of kube-prometheus-stack collects.
  - With I(dcgm_exporter=false) (for example when the GPU operator runs the exporter) only rules and dashboards are
    written.
  - Objects are written with server-side apply; check mode asks the API server for dry runs and shows the diff.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - hpcops.coe.kubernetes
  - hpcops.coe.attributes
  - hpcops.coe.device_nodes
options:
  namespace:
    description: Namespace of the exporter, its Service, ServiceMonitor and the PrometheusRule. The exporter needs privileged pod security.
  dcgm_exporter:
    description: Deploy the DCGM exporter.
    type: bool
    default: true
  dcgm_exporter_image:
    description: Image of the DCGM exporter.
    type: str
    default: nvcr.io/nvidia/k8s/dcgm-exporter:4.3.1-4.4.0-ubuntu22.04
  runtime_class:
    description: RuntimeClass of the exporter pods (the NVIDIA runtime, see M(hpcops.coe.gpu_runtime)); empty for none.
    type: str
    default: nvidia
  node_selector:
    description:
      - Node labels selecting the GPU nodes. The ready labels of I(driver_modules) are added to it.
      - Defaults to C(feature.node.kubernetes.io/pci-10de.present=true).
  driver_modules:
    description: KMM Modules loading the NVIDIA driver; the exporter starts only where KMM has loaded them.
  expected_nodes:
    description: Nodes the exporter must run on. Defaults to every node it can run on.
  tolerations:
    description: Extra tolerations of the exporter pods.
  labels:
    description: Labels of the ServiceMonitor and the PrometheusRule (the ones your Prometheus selects them by).
    type: dict
  rules:
    description: Which alert groups to write.
    type: list
    elements: str
    choices: [gpu, rdma, kmm]
    default: [gpu, rdma, kmm]
  gpu_temperature_limit:
    description: GPU temperature (Celsius) above which C(GPUTemperatureHigh) fires after 10 minutes.
    type: int
    default: 85
  dashboards:
    description: Write the Grafana dashboards.
    type: bool
    default: true
  dashboards_namespace:
    description: Namespace of the dashboard ConfigMaps (the one the Grafana sidecar watches); defaults to I(namespace).
    type: str
  dashboards_folder:
    description: Grafana folder, as the sidecar's C(grafana_folder) annotation.
    type: str
  wait:
    description: Wait until the exporter runs on every expected node.
notes:
  - The ServiceMonitor and PrometheusRule kinds come from the Prometheus operator; without its CRDs the module fails
    before applying anything.
seealso:
  - module: hpcops.coe.gpu_runtime
'''

EXAMPLES = r'''
- name: DCGM exporter, GPU/InfiniBand/KMM alerts and dashboards for kube-prometheus-stack
  hpcops.coe.gpu_monitoring:
    namespace: hpcops-gpu
    driver_modules:
      - name: nvidia
    labels:
      release: prometheus
    dashboards_namespace: monitoring

- name: Only rules and dashboards (the GPU operator runs the exporter)
  hpcops.coe.gpu_monitoring:
    namespace: gpu-operator
    dcgm_exporter: false
    labels:
      release: prometheus
'''

RETURN = r'''
objects:
  description: Every object written, as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
  sample: [DaemonSet hpcops-gpu/dcgm-exporter, PrometheusRule hpcops-gpu/hpcops-gpu-health]
alerts:
  description: Names of the alerts in the PrometheusRule.
  returned: state=present
  type: list
  elements: str
dashboards:
  description: Dashboard ConfigMaps written, as C(namespace/name).
  returned: state=present
  type: list
  elements: str
nodes:
  description: Per expected node, C(ready) or why the exporter does not run there.
  returned: state=present
  type: dict
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
diff:
  description: Objects before and after, without server-maintained fields (with C(--diff)).
  returned: diff mode
  type: dict
'''

from ansible_collections.hpcops.coe.plugins.module_utils.kube import name_problem
from ansible_collections.hpcops.coe.plugins.module_utils.kube_module import CoeKubeModule
from ansible_collections.hpcops.coe.plugins.module_utils.kube_deviceplugin import (
    daemonset_ready, driver_labels, eligible_nodes, node_reasons)
from ansible_collections.hpcops.coe.plugins.module_utils.kube_gpu import GPU_LABEL, GPU_NODES_ARG_SPEC
from ansible_collections.hpcops.coe.plugins.module_utils.kube_monitoring import (
    DCGM_EXPORTER_IMAGE, RULE_GROUPS, dashboard_configmaps, exporter_manifests, prometheus_rule)

MONITORING_API = 'monitoring.coreos.com/v1'


class GpuMonitoring(CoeKubeModule):
    """The DCGM exporter, the alert rules and the dashboards."""

    argument_spec = dict(
        GPU_NODES_ARG_SPEC,
        dcgm_exporter=dict(type='bool', default=True),
        dcgm_exporter_image=dict(type='str', default=DCGM_EXPORTER_IMAGE),
        labels=dict(type='dict'),
        rules=dict(type='list', elements='str', choices=list(RULE_GROUPS), default=list(RULE_GROUPS)),
        gpu_temperature_limit=dict(type='int', default=85),
        dashboards=dict(type='bool', default=True),
        dashboards_namespace=dict(type='str'),
        dashboards_folder=dict(type='str'),
    )

    def problems(self):
        params = self.params
        problems = [p for p in (name_problem(params['namespace'], 'namespace', label=True),
                                params['dashboards_namespace'] and
                                name_problem(params['dashboards_namespace'], 'dashboards_namespace', label=True),
                                params['runtime_class'] and name_problem(params['runtime_class'], 'runtime_class'))
                    if p]
        if not 20 <= params['gpu_temperature_limit'] <= 120:
            problems.append('gpu_temperature_limit %d is not a GPU temperature in Celsius (20 to 120)'
                            % params['gpu_temperature_limit'])
        return problems

    def run(self):
        kube, params = self.kube, self.params
        selector = dict(params['node_selector'] if params.get('node_selector') is not None else {GPU_LABEL: 'true'})
        selector.update(driver_labels(params))
        exporter = exporter_manifests(params, selector) if params['dcgm_exporter'] else []
        rule = prometheus_rule(params)
        boards = dashboard_configmaps(params) if params['dashboards'] else []
        objects = exporter + [rule] + boards
        if params['state'] == 'absent':
            for obj in objects:
                meta = obj['metadata']
                self.delete(obj['apiVersion'], obj['kind'], meta['name'], meta.get('namespace'))
            self.exit(objects=self.objects, waited=0.0)
        for kind in ('ServiceMonitor', 'PrometheusRule'):
            if not kube.served(MONITORING_API, kind) and not self.check_mode:
                self.fail('The API server does not serve %s %s: install the Prometheus operator (its CRDs) first. '
                          'Nothing was applied.' % (MONITORING_API, kind), objects=[], waited=0.0)
        nodes = kube.nodes()
        daemonset = next((o for o in exporter if o['kind'] == 'DaemonSet'), None)
        eligible = eligible_nodes(nodes, daemonset) if daemonset else []
        expected = params['expected_nodes'] if params['expected_nodes'] is not None else eligible
        stored = None
        for obj in objects:
            result = self.apply(obj)
            if obj is daemonset:
                stored = result['after']
        report = dict((n, 'not checked' if self.check_mode else 'ready') for n in expected)
        waited = 0.0
        if daemonset and params['wait'] and not self.check_mode:
            name, ns = daemonset['metadata']['name'], params['namespace']

            def fetch():
                return kube.get('apps/v1', 'DaemonSet', name, ns), kube.nodes()

            def done(value):
                return daemonset_ready(value[0]) and set(expected) <= set(eligible_nodes(value[1], daemonset))

            outcome = self.wait('the DCGM exporter on %d node(s)' % len(expected), fetch, done)
            waited = outcome.waited
            if not outcome.done:
                current, now_nodes = outcome.value if outcome.value else (stored, kube.nodes())
                why = node_reasons(kube, current or stored, expected, [], eligible_nodes(now_nodes, daemonset),
                                   now_nodes, driver_labels(params), what='the DCGM exporter')
                report.update(why)
                self.fail('The DCGM exporter is not running after %.0f s on %d of %d node(s): %s' % (
                    waited, len(why), len(expected), '; '.join('%s: %s' % item for item in sorted(why.items()))
                    or 'DaemonSet %s/%s not rolled out' % (ns, name)),
                    objects=self.objects, nodes=report, waited=round(waited, 1))
        self.exit(objects=self.objects, nodes=report, waited=round(waited, 1),
                  alerts=[r['alert'] for g in rule['spec']['groups'] for r in g['rules']],
                  dashboards=['%s/%s' % (b['metadata']['namespace'], b['metadata']['name']) for b in boards])


def main():
    GpuMonitoring()()


if __name__ == '__main__':
    main()

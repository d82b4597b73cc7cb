#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: accelerator_validation
short_description: Check an accelerator on every node with a Job that requests it and runs a command
version_added: "0.1.0"
author: "hpcops.coe maintainers (@hpcops)"
description:
  - Runs one Job per node that requests the extended resource (for example C(nvidia.com/gpu) or C(rdma/ib))
    and runs a check command in the given image (for example C(nvidia-smi -L) or C(ibv_devinfo)), waits for all
    of them, reports the outcome per node and deletes the Jobs and their pods again.
  - A node passes when its Job completes and, with I(expect_output), the command's output matches. A node fails
    when the command fails, when the pod cannot be scheduled (the resource is not free), when its image cannot be
    pulled, or when the Job has not finished within I(wait_timeout); the reason is reported.
  - By default every node whose allocatable shows at least I(count) of the resource is checked.
  - A node is checked only when something its check depends on changed since it last passed. After a run, the
    digest of each passed node's inputs is kept in the ConfigMap C(<name>-validated) of I(namespace), and a later
    run skips the nodes whose digest is the same (they are reported as passed, with C(ran=false)). The inputs are
    the check itself (I(resource), I(count), I(image), I(command), I(expect_output), I(tolerations),
    I(image_pull_secrets), I(service_account), I(runtime_class)); the node's identity (its UID, so a node that
    registers again is new) and boot ID (a reboot reloads the driver); its kernel, OS image, container runtime and
    kubelet versions; its capacity and allocatable of I(resource); its labels under C(nvidia.com/),
    C(feature.node.kubernetes.io/), C(kmm.node.kubernetes.io/) and the domain of I(resource) (driver, device and
    kernel-module state as advertised; labels ending in C(timestamp) are left out); and the container images of
    the DaemonSets labelled C(app.kubernetes.io/component) C(device-plugin), C(runtime), C(mig-manager) or
    C(driver), and of those the NVIDIA GPU operator runs for its C(ClusterPolicy) (the device plugins, container
    runtime configuration and driver containers). A device that breaks without any of these changing (the plugin
    usually lowers the node's allocatable then) is only found with I(force=true), which checks every node.
  - When it runs Jobs the module reports a change (it creates and deletes them, and updates the ConfigMap); when
    every node is unchanged it sends no write and reports none. The Jobs and their pods are deleted with one
    request each (by label), and pod logs are read only where they are needed (a failed Job, or the output to
    match against I(expect_output)). In check mode it lists the nodes it would check and predicts the change.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - hpcops.coe.attributes
options:
  name:
    description: Base name of the Jobs (one per node, named C(<name>-<node>)).
    type: str
    required: true
  namespace:
    description: Namespace of the Jobs.
    type: str
    default: default
  resource:
    description: Extended resource each Job requests.
    type: str
    required: true
  count:
    description: How many of the resource each Job requests.
    type: int
    default: 1
  image:
    description: Image with the check command.
    type: str
    required: true
  command:
    description: The check command (exec form); a non-zero exit status fails the node.
    type: list
    elements: str
    required: true
  expect_output:
    description: A regular expression the command's output must match for the node to pass.
    type: str
  nodes:
    description:
      - Nodes to check. A listed node that does not advertise the resource fails without a Job.
      - Defaults to every node whose allocatable shows at least I(count) of I(resource) (and that matches I(node_selector)).
    type: list
    elements: str
  node_selector:
    description: Only check nodes with these labels (when I(nodes) is not given).
    type: dict
  tolerations:
    description: Tolerations of the Job pods (a toleration for a taint named like I(resource) is always added).
    type: list
    elements: dict
  image_pull_secrets:
    description: Names of image pull secrets in I(namespace).
    type: list
    elements: str
  service_account:
    description: Service account of the Job pods.
    type: str
  runtime_class:
    description:
      - RuntimeClass of the Job pods. A GPU check needs the NVIDIA container runtime (C(nvidia), see
        M(hpcops.coe.gpu_runtime)) unless the nodes run it as their default; without it the container gets neither
        the driver's libraries nor C(nvidia-smi).
    type: str
  cleanup:
    description: Delete the Jobs and their pods at the end (also when the check failed).
    type: bool
    default: true
  force:
    description: Check every node, also those whose inputs are unchanged since they last passed.
    type: bool
    default: false
  field_manager:
    description: Field manager recorded for the Jobs.
    type: str
    default: hpcops.coe
  wait_timeout:
    description: Seconds the Jobs may take in total (also their C(activeDeadlineSeconds)).
    type: int
    default: 300
  wait_sleep:
    description: Seconds between two checks while waiting.
    type: float
    default: 2.0
requirements:
  - python >= 3.9
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
seealso:
  - module: hpcops.coe.device_plugin
attributes:
  check_mode:
    support: full
    details: Lists the nodes it would check and predicts the change; creates no Job.
  diff_mode:
    support: none
  platform:
    platforms: all
'''

EXAMPLES = r'''
- name: Every GPU node runs nvidia-smi on one of its GPUs
  hpcops.coe.accelerator_validation:
    name: gpu-check
    namespace: hpcops-gpu
    resource: nvidia.com/gpu
    image: nvcr.io/nvidia/cuda:12.4.1-base-ubi9
    command: [nvidia-smi, -L]
    expect_output: '^GPU 0: '
    runtime_class: nvidia

- name: The MIG instances of nodegroup gpu-mig, one per Job
  hpcops.coe.accelerator_validation:
    name: mig-check
    namespace: hpcops-gpu
    resource: nvidia.com/mig-1g.10gb
    image: nvcr.io/nvidia/cuda:12.4.1-base-ubi9
    command: [nvidia-smi, -L]
    expect_output: 'MIG 1g.10gb'
    runtime_class: nvidia

- name: InfiniBand devices are visible to pods on the listed nodes
  hpcops.coe.accelerator_validation:
    name: ib-check
    namespace: hpcops-network
    resource: rdma/ib
    image: registry.example.com/tools/rdma-core:50.0
    command: [ibv_devinfo]
    nodes: [gpu-1, ib-1]
'''

RETURN = r'''
results:
  description: One entry per node.
  returned: always
  type: list
  elements: dict
  sample:
    - {node: gpu-1, passed: true, ran: true, reason: null, output: "GPU 0: NVIDIA A100 80GB PCIe (UUID: GPU-...)"}
    - {node: gpu-2, passed: false, ran: true, reason: "exit code 1", output: "NVIDIA-SMI has failed ..."}
    - {node: gpu-3, passed: true, ran: false, reason: null, output: ""}
passed_nodes:
  description: Nodes that passed (now, or before with the same inputs).
  returned: always
  type: list
  elements: str
validated_nodes:
  description: Nodes checked by a Job in this run (in check mode, the nodes that would be).
  returned: always
  type: list
  elements: str
unchanged_nodes:
  description: Nodes not checked because their inputs are the same as when they last passed.
  returned: always
  type: list
  elements: str
failed_nodes:
  description: Nodes that failed (the module then fails).
  returned: always
  type: list
  elements: str
'''

import hashlib
import json
import re

from ansible_collections.hpcops.coe.plugins.module_utils.kube import (
    condition, container_problem, inputs_digest, name_problem, node_identity, recorded_json, selector_matches)
from ansible_collections.hpcops.coe.plugins.module_utils.kube_module import CoeKubeModule

VALIDATION_LABEL = 'hpcops.coe/validation'
RECORD_LABEL = 'hpcops.coe/validation-record'

# What a node's check depends on (see the description): the check's own parameters, node facts, labels under
# these domains (and the resource's), and the images of the DaemonSets with these components.
CHECK_INPUTS = ('resource', 'count', 'image', 'command', 'expect_output', 'tolerations', 'image_pull_secrets',
                'service_account', 'runtime_class')
LABEL_DOMAIN_INPUTS = ('nvidia.com', 'feature.node.kubernetes.io', 'kmm.node.kubernetes.io')
COMPONENT_INPUTS = ('device-plugin', 'runtime', 'mig-manager', 'driver')


def job_name(base, node):
    name = '%s-%s' % (base, node)
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return '%s-%s' % (name[:54].rstrip('-.'), digest)


def job_manifest(params, node):
    labels = {VALIDATION_LABEL: params['name'], 'hpcops.coe/node': node[:63],
              'app.kubernetes.io/managed-by': 'hpcops.coe'}
    container = {'name': 'check', 'image': params['image'], 'command': list(params['command']),
                 'resources': {'limits': {params['resource']: str(params['count'])}}}
    tolerations = list(params.get('tolerations') or [])
    tolerations.append({'key': params['resource'], 'operator': 'Exists', 'effect': 'NoSchedule'})
    pod = {'restartPolicy': 'Never', 'nodeSelector': {'kubernetes.io/hostname': node}, 'containers': [container],
           'tolerations': tolerations}
    if params.get('image_pull_secrets'):
        pod['imagePullSecrets'] = [{'name': n} for n in params['image_pull_secrets']]
    if params.get('service_account'):
        pod['serviceAccountName'] = params['service_account']
    if params.get('runtime_class'):
        pod['runtimeClassName'] = params['runtime_class']
    return {'apiVersion': 'batch/v1', 'kind': 'Job',
            'metadata': {'name': job_name(params['name'], node), 'namespace': params['namespace'], 'labels': labels},
            'spec': {'backoffLimit': 0, 'activeDeadlineSeconds': max(1, params['wait_timeout']),
                     'template': {'metadata': {'labels': labels}, 'spec': pod}}}


def record_name(base):
    return '%s-validated' % base


def component_images(daemonsets):
    """{namespace/name: images} of the DaemonSets that provide the devices: COMPONENT_INPUTS, and the GPU
    operator's operands (owned by its ClusterPolicy)."""
    out = {}
    for ds in daemonsets:
        meta = ds.get('metadata') or {}
        operand = any(ref.get('kind') == 'ClusterPolicy' for ref in meta.get('ownerReferences') or [])
        if not operand and (meta.get('labels') or {}).get('app.kubernetes.io/component') not in COMPONENT_INPUTS:
            continue
        pod = (((ds.get('spec') or {}).get('template') or {}).get('spec') or {})
        containers = (pod.get('initContainers') or []) + (pod.get('containers') or [])
        out['%s/%s' % (meta.get('namespace'), meta.get('name'))] = sorted(c.get('image') or '' for c in containers)
    return out


def node_digest(params, node, images):
    """sha256 over everything the check of `node` depends on: equal digests, nothing to check again."""
    meta = node.get('metadata') or {}
    status = node.get('status') or {}
    domains = LABEL_DOMAIN_INPUTS + (params['resource'].partition('/')[0],)
    labels = dict((key, value) for key, value in (meta.get('labels') or {}).items()
                  if key.partition('/')[0] in domains and not key.endswith('timestamp'))
    inputs = {'check': dict((key, params.get(key)) for key in CHECK_INPUTS),
              'node': dict(node_identity(node), labels=labels,
                           capacity=(status.get('capacity') or {}).get(params['resource']),
                           allocatable=(status.get('allocatable') or {}).get(params['resource'])),
              'daemonsets': images}
    return inputs_digest(inputs)


def recorded_digests(record):
    """{node: digest} of the nodes that passed, from the record ConfigMap (empty when absent or unreadable)."""
    return recorded_json(record, 'digests', {})


def record_manifest(params, digests):
    return {'apiVersion': 'v1', 'kind': 'ConfigMap',
            'metadata': {'name': record_name(params['name']), 'namespace': params['namespace'],
                         'labels': {RECORD_LABEL: params['name'], 'app.kubernetes.io/managed-by': 'hpcops.coe'}},
            'data': {'resource': params['resource'], 'digests': json.dumps(digests, sort_keys=True)}}


def finished(job):
    for ctype in ('Complete', 'Failed'):
        cond = condition(job, ctype)
        if cond and cond.get('status') == 'True':
            return ctype
    return None


def targets(params, nodes):
    """(nodes to run on, {node: reason} for listed nodes that cannot run)."""
    by_name = dict((n['metadata']['name'], n) for n in nodes)

    def amount(node):
        try:
            return int(str(((node.get('status') or {}).get('allocatable') or {}).get(params['resource'], 0)))
        except ValueError:
            return 0

    if params.get('nodes'):
        run, skip = [], {}
        for name in params['nodes']:
            if name not in by_name:
                skip[name] = 'no such node'
            elif amount(by_name[name]) < params['count']:
                skip[name] = 'the node advertises %d %s (allocatable), %d needed' % (
                    amount(by_name[name]), params['resource'], params['count'])
            else:
                run.append(name)
        return run, skip
    run = sorted(name for name, node in by_name.items()
                 if amount(node) >= params['count'] and
                 selector_matches((node.get('metadata') or {}).get('labels'), params.get('node_selector')))
    return run, {}


class AcceleratorValidation(CoeKubeModule):
    """One check Job per node, skipping the nodes whose inputs are unchanged since they passed."""

    argument_spec = dict(
        name=dict(type='str', required=True),
        namespace=dict(type='str', default='default'),
        resource=dict(type='str', required=True),
        count=dict(type='int', default=1),
        image=dict(type='str', required=True),
        command=dict(type='list', elements='str', required=True),
        expect_output=dict(type='str'),
        nodes=dict(type='list', elements='str'),
        node_selector=dict(type='dict'),
        tolerations=dict(type='list', elements='dict'),
        image_pull_secrets=dict(type='list', elements='str', no_log=False),
        service_account=dict(type='str'),
        runtime_class=dict(type='str'),
        cleanup=dict(type='bool', default=True),
        force=dict(type='bool', default=False),
    )
    # The Jobs are always waited for and removed again; only the record ConfigMap is applied.
    common_options = ('field_manager', 'wait_timeout', 'wait_sleep')
    returns_diff = False
    nothing_done = 'nothing was run'

    def problems(self):
        params = self.params
        problems = [p for p in (name_problem(params['name'], 'name', label=True),
                                name_problem(params['namespace'], 'namespace', label=True),
                                params['runtime_class'] and name_problem(params['runtime_class'], 'runtime_class'))
                    if p]
        if '/' not in params['resource']:
            problems.append('resource %r is not an extended resource name (vendor-domain/name, such as nvidia.com/gpu '
                            'or rdma/ib)' % params['resource'])
        if params['count'] < 1:
            problems.append('count must be 1 or more')
        if params.get('expect_output'):
            try:
                re.compile(params['expect_output'])
            except re.error as exc:
                problems.append('expect_output %r is not a valid regular expression: %s'
                                % (params['expect_output'], exc))
        return problems

    def run(self):
        kube, params = self.kube, self.params
        nodes = kube.nodes()
        run, skipped = targets(params, nodes)
        results = dict((node, {'node': node, 'passed': False, 'ran': False, 'reason': why, 'output': ''})
                       for node, why in skipped.items())
        if not run and not skipped:
            nothing = dict(results=[], passed_nodes=[], failed_nodes=[], validated_nodes=[], unchanged_nodes=[])
            if self.check_mode:
                self.warn('No node advertises %s yet; in a real run this fails unless the device plugin is '
                          'deployed by then.' % params['resource'])
                return self.exit(changed=False, **nothing)
            return self.fail('No node advertises %s (node allocatable)%s, so there is nothing to validate: is the '
                             'device plugin deployed and the driver loaded?' % (
                                 params['resource'], ' among nodes with labels %s' % params['node_selector']
                                 if params.get('node_selector') else ''), **nothing)

        by_name = dict((n['metadata']['name'], n) for n in nodes)
        images = component_images(kube.list('apps/v1', 'DaemonSet'))
        digests = dict((node, node_digest(params, by_name[node], images)) for node in run)
        recorded = recorded_digests(kube.get('v1', 'ConfigMap', record_name(params['name']), params['namespace']))
        unchanged = [] if params['force'] else [n for n in run if recorded.get(n) == digests[n]]
        run = [n for n in run if n not in unchanged]
        for node in unchanged:
            results[node] = {'node': node, 'passed': True, 'ran': False, 'reason': None, 'output': ''}

        if self.check_mode or not run:
            return self.plan(run, skipped, unchanged, results)
        self.check(run, results)
        self.remember(run, results, digests, recorded, by_name)

        ordered = [results[n] for n in sorted(results)]
        passed = [r['node'] for r in ordered if r['passed']]
        failed = [r['node'] for r in ordered if not r['passed']]
        outcome = dict(changed=True, results=ordered, passed_nodes=passed, failed_nodes=failed,
                       validated_nodes=sorted(run), unchanged_nodes=sorted(unchanged))
        if failed:
            detail = '; '.join(
                '%s: %s%s' % (r['node'], r['reason'], ' (output: %s)' % r['output'][-300:] if r['output'] else '')
                for r in ordered if not r['passed'])
            return self.fail('Validation %s (%s): %d of %d node(s) failed: %s' % (
                params['name'], params['resource'], len(failed), len(ordered), detail), **outcome)
        return self.exit(**outcome)

    def plan(self, run, skipped, unchanged, results):
        """The result when no Job runs: check mode (the nodes it would check), or every node unchanged."""
        params = self.params
        planned = [{'node': n, 'passed': None, 'ran': True, 'reason': 'check mode: would run a Job', 'output': ''}
                   for n in run]
        ordered = sorted(planned + list(results.values()), key=lambda r: r['node'])
        outcome = dict(changed=bool(run), results=ordered, passed_nodes=sorted(unchanged),
                       validated_nodes=sorted(run), unchanged_nodes=sorted(unchanged))
        if skipped and not self.check_mode:
            return self.fail('Validation %s (%s): %d node(s) cannot run the check: %s' % (
                params['name'], params['resource'], len(skipped),
                '; '.join('%s: %s' % kv for kv in sorted(skipped.items()))), failed_nodes=sorted(skipped),
                **outcome)
        return self.exit(failed_nodes=sorted(skipped), **outcome)

    def check(self, run, results):
        """Run one Job per node in `run`, wait for them all and put each node's outcome into `results`."""
        kube, params = self.kube, self.params
        ns = params['namespace']
        selector = '%s=%s' % (VALIDATION_LABEL, params['name'])
        # leftovers of an interrupted run would make the names clash
        if kube.list('batch/v1', 'Job', ns, label_selector=selector):
            kube.delete_collection('batch/v1', 'Job', ns, selector)
            kube.delete_collection('v1', 'Pod', ns, selector)
            self.wait('old validation Jobs to go', lambda: kube.list('batch/v1', 'Job', ns, label_selector=selector),
                      lambda jobs: not jobs, timeout=60)
        names = {}
        for node in run:
            manifest = job_manifest(params, node)
            kube.create(manifest)
            self.changed = True
            names[node] = manifest['metadata']['name']

        def fetch():
            return dict((j['metadata']['name'], j) for j in kube.list('batch/v1', 'Job', ns, label_selector=selector))

        def all_finished(jobs):
            return all(finished(jobs.get(names[n])) for n in run)

        outcome = self.wait('validation Jobs of %s' % params['name'], fetch, all_finished)
        jobs = outcome.value or {}
        pods = kube.list('v1', 'Pod', ns, label_selector=selector)
        for node in run:
            job = jobs.get(names[node])
            state = finished(job)
            mine = [p for p in pods if (p['metadata'].get('labels') or {}).get('job-name') == names[node]]
            pod = mine[-1] if mine else None
            # the log is read where it is needed: the output to match, or what a failure printed
            needs_log = pod and (state != 'Complete' or params.get('expect_output'))
            output = kube.pod_log(ns, pod['metadata']['name'], 20).strip() if needs_log else ''
            entry = {'node': node, 'passed': False, 'ran': True, 'reason': None, 'output': output}
            if state == 'Complete':
                if params.get('expect_output') and not re.search(params['expect_output'], output, re.M):
                    entry['reason'] = 'the output does not match %r' % params['expect_output']
                else:
                    entry['passed'] = True
            elif state == 'Failed':
                cond = condition(job, 'Failed') or {}
                detail = container_problem(pod) if pod else None
                entry['reason'] = detail or '%s: %s' % (cond.get('reason'), cond.get('message'))
            else:
                detail = container_problem(pod) if pod else 'no pod created for the Job'
                entry['reason'] = 'not finished after %.0f s: %s' % (outcome.waited, detail or 'running')
            results[node] = entry
        if params['cleanup']:
            kube.delete_collection('batch/v1', 'Job', ns, selector)
            kube.delete_collection('v1', 'Pod', ns, selector)

    def remember(self, run, results, digests, recorded, by_name):
        """Keep what passed with its inputs' digest; a failed node is checked again next time."""
        keep = dict((node, digest) for node, digest in recorded.items() if node in by_name and node not in run)
        keep.update((node, digests[node]) for node in run if results[node]['passed'])
        if keep != recorded:
            self.apply(record_manifest(self.params, keep))


def main():
    AcceleratorValidation()()


if __name__ == '__main__':
    main()

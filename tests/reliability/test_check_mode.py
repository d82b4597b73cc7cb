# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check mode: for every module, a check-mode run and then a real run; the real run
changes exactly what check mode predicted, and check mode itself changes nothing.

One play holds a task per module (creates, updates and deletes, and the read-only
modules), run first with --check --diff, then for real with --diff, on a fresh
cloud and Kubernetes world. Every task is compared: the changed flag, the plan or
the diff's "after", and for the interfaces which networks each server gets. The
clouds are counted too: the check run sent no change, and what the real run
created or removed is what check mode listed.
"""

import os

import pytest

from reliability_kit import FIGURES, census, kube_writes, run_playbook, run_together, writes
from testworld.kubernetes import components

NS = 'hpcops-check'
EL94 = '5.14.0-427.13.1.el9_4.x86_64'
EL95 = '5.14.0-503.11.1.el9_5.x86_64'


def openstack_tasks(workdir):
    t = {'name': 'rel-cm-tpl', 'image': 'fedora-coreos-40', 'keypair': 'hpc-key', 'external_network': 'public',
         'flavor': 'm1.small', 'master_flavor': 'm1.large', 'labels': {'hpcops_sim_driver': 'heat', 'gpu': True}}
    # Reads and attachments first: a task's prediction cannot know what the tasks before it
    # will have changed by then (a resize adds a node the attachment would then cover too).
    return [
        ('info', 'cluster_info', {'name': 'hpc-heat', 'nodegroups': False}),
        ('nodes', 'cluster_nodes', {'cluster': 'hpc-capi'}),
        ('stack', 'stack_facts', {'cluster': 'hpc-heat', 'nested_depth': 2}),
        ('interfaces', 'server_interfaces', {'cluster': 'hpc-capi', 'interfaces': [{'network': 'eth-10g'}]}),
        ('interfaces exact', 'server_interfaces', {'cluster': 'hpc-heat', 'nodegroups': ['default-worker'],
                                                   'state': 'exact', 'interfaces': [{'network': 'ib-100g'}]}),
        ('kubeconfig', 'cluster_kubeconfig', {'cluster': 'hpc-capi', 'dest': os.path.join(workdir, 'hpc-capi.kc')}),
        ('template create', 'cluster_template', t),
        ('template delete', 'cluster_template', {'name': 'k8s-capi-v1.31', 'state': 'absent'}),
        ('cluster create', 'cluster', {'name': 'rel-cm', 'cluster_template': 'k8s-heat-fcos', 'node_count': 1,
                                       'labels': {'monitoring_enabled': True}, 'timeout': 60}),
        ('cluster resize', 'cluster', {'name': 'hpc-heat', 'node_count': 3, 'timeout': 60}),
        ('nodegroup create', 'cluster_nodegroup', {'cluster': 'hpc-capi', 'name': 'rel-ng', 'flavor': 'm1.small',
                                                   'node_count': 1, 'max_node_count': 3, 'timeout': 60}),
        ('nodegroup limits', 'cluster_nodegroup', {'cluster': 'hpc-capi', 'name': 'default-worker',
                                                   'max_node_count': 6, 'timeout': 60}),
        ('nodegroup delete', 'cluster_nodegroup', {'cluster': 'hpc-heat', 'name': 'gpu', 'state': 'absent',
                                                   'timeout': 60}),
        # Node side, on the tree node_root() lays out: one file kept, one rewritten, one new, one stale.
        ('node links', 'node_network_info', {'root': os.path.join(workdir, 'node')}),
        ('node files', 'node_network_files', {
            'directory': node_network_dir(workdir),
            'files': [{'name': '50-hpcops-eth-10g.network', 'content': '[Match]\nName=ens2\n'},
                      {'name': '50-hpcops-eth-25g.network', 'content': '[Match]\nName=ens3\n[Link]\nMTUBytes=9000\n'},
                      {'name': '50-hpcops-ib-100g.network', 'content': '[Match]\nName=ibp65s0\n'}],
            'prune': ['50-hpcops-*.network']}),
        ('node mounts', 'node_mounts', {
            'root': os.path.join(workdir, 'node'), 'os_family': 'debian',
            'mounts': [{'path': '/home/shared', 'type': 'nfs', 'servers': ['10.0.0.5'], 'source': '/export/home',
                        'automount': True},
                       {'path': '/ceph', 'type': 'cephfs', 'servers': ['10.0.0.21'], 'ceph_secret': 'AQBcheckmode=='}]}),
    ]


def node_network_dir(workdir):
    return os.path.join(workdir, 'node', 'etc', 'systemd', 'network')


def node_root(workdir):
    """A node's tree for the node-side tasks; returns {relative path: content} of its network files."""
    root = os.path.join(workdir, 'node')
    for link, address in (('ens2', 'fa:16:3e:00:00:01'), ('ibp65s0', '80:00:02:08:fe:80:00:00:00:00:00:00:'
                                                                     '3c:fd:fe:03:00:a1:00:02')):
        os.makedirs(os.path.join(root, 'sys', 'class', 'net', link))
        with open(os.path.join(root, 'sys', 'class', 'net', link, 'address'), 'w') as f:
            f.write(address + '\n')
    os.makedirs(os.path.join(root, 'run', 'systemd', 'netif'))
    return node_files(workdir, {'50-hpcops-eth-10g.network': '[Match]\nName=ens2\n',
                                '50-hpcops-eth-25g.network': '[Match]\nName=ens3\n',
                                '50-hpcops-old.network': '[Match]\nName=ens9\n',
                                '10-site.network': '[Match]\nName=eno1\n'})


def node_files(workdir, write=None):
    directory = node_network_dir(workdir)
    for name, content in (write or {}).items():
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, name), 'w') as f:
            f.write(content)
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as f:
            out[name] = f.read()
    return out


def kube_tasks():
    gpu = {'hpcops.example/gpu': 'true'}
    return [
        ('rule', 'node_feature_rule', {'name': 'rel-cm-rules', 'rules': [
            {'name': 'nvidia', 'labels': {'rel-gpu': 'true'}, 'pci': {'vendor': '10de', 'class': ['0300', '0302']}},
            {'name': 'mellanox', 'labels': {'rel-nic': 'true'}, 'pci': {'vendor': '15b3'}}]}),
        ('module', 'kernel_module', {
            'name': 'nvidia', 'namespace': NS, 'module_name': 'nvidia', 'selector': gpu,
            'container_image': 'registry.example.com/nvidia:550-${KERNEL_FULL_VERSION}', 'kernels': [EL94, EL95],
            'parameters': ['NVreg_EnableGpuFirmware=0'], 'wait_sleep': 0.2, 'wait_timeout': 20}),
        ('plugin', 'device_plugin', {
            'type': 'rdma-shared', 'namespace': NS, 'node_selector': {'hpcops.example/rdma': 'true'},
            'expected_nodes': ['gpu-1', 'ib-1'], 'wait_sleep': 0.2, 'wait_timeout': 20,
            'rdma_resources': [{'name': 'ib', 'vendors': ['15b3'], 'link_types': ['infiniband'], 'hca_max': 16}]}),
        ('pod network', 'pod_network', {
            'name': 'eth-25g', 'namespace': NS, 'network': 'eth-25g', 'type': 'macvlan', 'interface': 'eno1',
            'mtu': 9000, 'subnet': {'cidr': '10.25.0.0/16', 'gateway_ip': '10.25.0.1',
                                    'allocation_pools': [{'start': '10.25.0.2', 'end': '10.25.191.254'}]}}),
        ('rule delete', 'node_feature_rule', {'name': 'rel-old-rules', 'state': 'absent', 'wait': False}),
        ('validation', 'accelerator_validation', {
            'name': 'rel-cm-check', 'namespace': NS, 'resource': 'nvidia.com/gpu', 'image': 'cuda:12',
            'command': ['nvidia-smi', '-L'], 'wait_sleep': 0.2, 'wait_timeout': 20}),
        # After the validation: the runtime's containerd restart makes the plugin register again.
        ('gpu runtime', 'gpu_runtime', {
            'namespace': NS, 'node_selector': gpu, 'wait_sleep': 0.2, 'wait_timeout': 30}),
        ('gpu monitoring', 'gpu_monitoring', {
            'namespace': NS, 'node_selector': gpu, 'labels': {'release': 'prometheus'},
            'wait_sleep': 0.2, 'wait_timeout': 30}),
    ]


def as_play(tasks, cloud):
    play = {'name': 'check mode', 'hosts': 'localhost', 'gather_facts': False,
            'tasks': [{'name': n, 'hpcops.coe.' + m: a} for n, m, a in tasks]}
    if cloud:
        play['module_defaults'] = {'group/hpcops.coe.openstack': {'cloud': 'hpcops-sim'}}
    return [play]


@pytest.fixture(scope='module')
def runs(module_factory, tmp_path_factory):
    base = tmp_path_factory.mktemp('check-mode')
    cloud = module_factory.cloud()
    world = module_factory.kube()
    components.install_crds(world, ['nfd', 'multus', 'monitoring'])
    components.deploy_kmm(world)
    components.namespace(world, NS)
    for node in ('gpu-1', 'gpu-2'):
        world.call(world.sim.hw[node].loaded.add, 'nvidia')
        # node images with the NVIDIA container runtime as containerd's default
        world.call(world.sim.gpu.preinstall, node)
        world.label_node(node, {'hpcops.example/gpu': 'true'})
    for node in ('gpu-1', 'ib-1'):
        world.label_node(node, {'hpcops.example/rdma': 'true'})
    # A GPU plugin already runs, so the validation has nodes to check in both runs.
    world.apply({'apiVersion': 'apps/v1', 'kind': 'DaemonSet', 'metadata': {'name': 'gpu-plugin', 'namespace': NS},
                 'spec': {'selector': {'matchLabels': {'app': 'gpu'}}, 'template': {
                     'metadata': {'labels': {'app': 'gpu'}},
                     'spec': {'nodeSelector': {'hpcops.example/gpu': 'true'}, 'containers': [
                         {'name': 'plugin', 'image': 'nvcr.io/nvidia/k8s-device-plugin:v0.16.2'}]}}}})
    world.apply({'apiVersion': 'nfd.k8s-sigs.io/v1alpha1', 'kind': 'NodeFeatureRule',
                 'metadata': {'name': 'rel-old-rules'}, 'spec': {'rules': [{
                     'name': 'old', 'labels': {'rel-old': 'true'},
                     'matchFeatures': [{'feature': 'kernel.version', 'matchExpressions': {'major': {'op': 'Exists'}}}]
                 }]}})
    world.wait_for(lambda: world.allocatable('gpu-2').get('nvidia.com/gpu'), what='GPU resources')

    out_node = node_root(str(base))
    os_tasks = openstack_tasks(str(base))
    k_tasks = kube_tasks()
    out = {'cloud': cloud, 'world': world, 'os_tasks': os_tasks, 'kube_tasks': k_tasks, 'base': str(base)}
    out['before'] = census(cloud)
    cloud.reset_requests()
    seen = len(world.requests())
    out['check'] = run_together(
        lambda: run_playbook(as_play(os_tasks, True), str(base / 'check-os'), openstack=cloud, check=True, diff=True),
        lambda: run_playbook(as_play(k_tasks, False), str(base / 'check-kube'), kube=world, check=True, diff=True))
    out['check_writes'] = writes(cloud.requests())
    out['check_kube_writes'] = kube_writes(world, seen)
    out['after_check'] = census(cloud)
    out['kubeconfig_after_check'] = os.path.exists(os.path.join(str(base), 'hpc-capi.kc'))
    out['node_files_before'], out['node_files_after_check'] = out_node, node_files(str(base))
    out['mount_dirs_after_check'] = [d for d in ('etc/systemd/system', 'etc/ceph')
                                     if os.path.exists(os.path.join(str(base), 'node', d))]
    out['real'] = run_together(
        lambda: run_playbook(as_play(os_tasks, True), str(base / 'real-os'), openstack=cloud, diff=True),
        lambda: run_playbook(as_play(k_tasks, False), str(base / 'real-kube'), kube=world, diff=True))
    out['after'] = census(cloud)
    out['node_files_after'] = node_files(str(base))
    return out


def names(items):
    return sorted(i['name'] for i in items)


def _attachments(result, key):
    return dict((s['name'], sorted(a['network'] for a in s[key])) for s in result['servers'])


def compare(name, module, check, real):
    """Why the real run did not do what check mode said, or None."""
    if check['status'] != 'ok' or real['status'] != 'ok':
        return 'failed: check %s (%s), real %s (%s)' % (
            check['status'], check['result'].get('msg'), real['status'], real['result'].get('msg'))
    c, r = check['result'], real['result']
    if bool(c.get('changed')) != bool(r.get('changed')):
        return 'check mode said changed=%s, the real run changed=%s' % (c.get('changed'), r.get('changed'))
    if module in ('cluster', 'cluster_nodegroup', 'cluster_template') and c.get('changed'):
        if c.get('plan', {}).get('action') != r.get('plan', {}).get('action') or \
                c.get('plan', {}).get('resize') != r.get('plan', {}).get('resize'):
            return 'plans differ: %s / %s' % (c.get('plan'), r.get('plan'))
        if c.get('diff', {}).get('after') != r.get('diff', {}).get('after'):
            return 'diffs differ:\n  check %s\n  real  %s' % (
                c.get('diff', {}).get('after'), r.get('diff', {}).get('after'))
    if module == 'server_interfaces':
        for key in ('attached', 'detached'):
            if _attachments(c, key) != _attachments(r, key):
                return '%s differ: %s / %s' % (key, _attachments(c, key), _attachments(r, key))
        if c['summary']['attached'] != r['summary']['attached'] or \
                c['summary']['detached'] != r['summary']['detached']:
            return 'summaries differ: %s / %s' % (c['summary'], r['summary'])
    if module in ('node_feature_rule', 'kernel_module', 'device_plugin', 'pod_network', 'gpu_runtime',
                  'gpu_monitoring') and \
            c.get('diff', {}).get('after') != r.get('diff', {}).get('after'):
        return 'diffs differ:\n  check %s\n  real  %s' % (c.get('diff', {}).get('after'), r.get('diff', {}).get('after'))
    if module == 'accelerator_validation':
        predicted = sorted(x['node'] for x in c['results'])
        ran = sorted(x['node'] for x in r['results'])
        if predicted != ran:
            return 'check mode would check %s, the real run checked %s' % (predicted, ran)
    if module in ('cluster_info', 'cluster_nodes', 'stack_facts'):
        for key in ('clusters', 'nodes', 'resources'):
            if key in c and (names(c[key]) != names(r[key])):
                return '%s differ between the runs' % key
    if module == 'node_network_files':
        for key in ('written', 'removed', 'directory_created', 'diff'):
            if c.get(key) != r.get(key):
                return '%s differ:\n  check %s\n  real  %s' % (key, c.get(key), r.get(key))
    if module == 'node_mounts':
        for key in ('files_written', 'files_removed', 'removed', 'mounts', 'commands', 'diff'):
            if c.get(key) != r.get(key):
                return '%s differ:\n  check %s\n  real  %s' % (key, c.get(key), r.get(key))
    if module == 'node_network_info' and (c['links'], c['backend']) != (r['links'], r['backend']):
        return 'the links read differ between the runs'
    if module == 'cluster_kubeconfig' and (c.get('certificate_issued') or not r.get('certificate_issued')):
        return 'check mode must not ask for a certificate and the real run must: %s / %s' % (
            c.get('certificate_issued'), r.get('certificate_issued'))
    return None


def test_check_mode_changes_nothing(runs):
    assert runs['check_writes'] == {}, runs['check_writes']
    assert [(r['verb'], r['resource'], r.get('name')) for r in runs['check_kube_writes']] == []
    before, after = runs['before'], runs['after_check']
    assert names(before['clusters']) == names(after['clusters'])
    assert names(before['templates']) == names(after['templates'])
    assert len(before['ports']) == len(after['ports']) and len(before['servers']) == len(after['servers'])
    assert not runs['kubeconfig_after_check'], 'check mode wrote the kubeconfig'
    assert runs['node_files_after_check'] == runs['node_files_before'], 'check mode changed the node files'
    assert runs['mount_dirs_after_check'] == [], 'check mode wrote mounts: %s' % runs['mount_dirs_after_check']


def test_node_files_changed_as_predicted(runs):
    assert runs['node_files_after'] == {
        '10-site.network': '[Match]\nName=eno1\n',
        '50-hpcops-eth-10g.network': '[Match]\nName=ens2\n',
        '50-hpcops-eth-25g.network': '[Match]\nName=ens3\n[Link]\nMTUBytes=9000\n',
        '50-hpcops-ib-100g.network': '[Match]\nName=ibp65s0\n'}


def test_every_module_is_exercised(runs):
    modules = set(task[1] for task in runs['os_tasks'] + runs['kube_tasks'])
    shipped = set(os.path.splitext(f)[0] for f in os.listdir(os.path.join(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))), 'plugins', 'modules')) if f.endswith('.py'))
    assert modules == shipped, shipped ^ modules


def test_real_run_does_what_check_mode_predicted(runs):
    problems = []
    compared = 0
    for (check, real), tasks in zip(zip(runs['check'], runs['real']), (runs['os_tasks'], runs['kube_tasks'])):
        for name, module, _args in tasks:
            compared += 1
            why = compare(name, module, check.record(name), real.record(name))
            if why:
                problems.append('%s (%s): %s' % (name, module, why))
    FIGURES.predictions(compared, compared - len(problems))
    assert not problems, '\n'.join(problems)


def test_the_clouds_changed_as_predicted(runs):
    check_os = runs['check'][0]
    before, after = runs['before'], runs['after']
    assert sorted(set(names(after['clusters'])) - set(names(before['clusters']))) == ['rel-cm']
    assert sorted(set(names(after['templates'])) ^ set(names(before['templates']))) == [
        'k8s-capi-v1.31', 'rel-cm-tpl']
    # Ports: one more per attachment check mode listed, one fewer per detachment, on the servers
    # that were there all along (new servers bring primary ports, deleted ones take theirs).
    predicted = sum(check_os.result(t)['summary']['attached'] - check_os.result(t)['summary']['detached']
                    for t in ('interfaces', 'interfaces exact'))
    kept = set(s['id'] for s in before['servers']) & set(s['id'] for s in after['servers'])
    old_ports = set(p['id'] for p in before['ports'])
    new_ports = set(p['id'] for p in after['ports'])
    grown = sum(1 for p in after['ports'] if p['id'] not in old_ports and p['device_id'] in kept)
    gone = sum(1 for p in before['ports'] if p['id'] not in new_ports and p['device_id'] in kept)
    assert predicted == 2 and grown - gone == predicted, (grown, gone, predicted)
    world = runs['world']
    assert world.get('kmm.sigs.x-k8s.io/v1beta1', 'Module', 'nvidia', NS)
    assert world.get('nfd.k8s-sigs.io/v1alpha1', 'NodeFeatureRule', 'rel-old-rules') is None
    assert world.list('batch/v1', 'Job', NS) == []

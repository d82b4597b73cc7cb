# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU runtime manifests, MIG planning and checks, ClusterPolicy, and the observability objects."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import yaml

from ansible_collections.hpcops.coe.plugins.module_utils import kube_gpu as gpu
from ansible_collections.hpcops.coe.plugins.module_utils import kube_monitoring as mon


def node(name, **labels):
    return {'metadata': {'name': name, 'labels': labels}}


def feature(name, *devices):
    return {'metadata': {'name': name, 'labels': {'nfd.node.kubernetes.io/node-name': name}},
            'spec': {'features': {'instances': {'pci.device': {'elements': [
                {'attributes': {'vendor': vendor, 'class': cls, 'device': device}} for vendor, cls, device in devices]}}}}}


def test_node_gpus_from_nodefeatures():
    found = gpu.node_gpus([feature('gpu-1', ('10de', '0302', '20b5'), ('15b3', '0207', '101b')),
                           feature('cpu-1', ('8086', '0200', '1592')), feature('vga-1', ('10de', '0300', '26b9'))])
    assert found == {'gpu-1': ['20b5'], 'vga-1': ['26b9']}


def test_mig_assignments_by_nodegroup_selector_and_names():
    nodes = [node('gpu-1', **{gpu.NODEGROUP_LABEL: 'mig'}), node('gpu-2', **{gpu.NODEGROUP_LABEL: 'mig'}),
             node('gpu-3', pool='a')]
    got, problems = gpu.mig_assignments([{'nodegroup': 'mig', 'profile': '1g.10gb'},
                                         {'node_selector': {'pool': 'a'}, 'profile': '3g.40gb'}], nodes)
    assert got == {'gpu-1': '1g.10gb', 'gpu-2': '1g.10gb', 'gpu-3': '3g.40gb'} and problems == []
    got, problems = gpu.mig_assignments([{'nodegroup': 'none', 'profile': '1g.10gb'},
                                         {'nodes': ['gpu-1', 'gpu-9'], 'profile': '1g.10gb'},
                                         {'nodes': ['gpu-1'], 'profile': '7g.80gb'},
                                         {'nodes': ['gpu-1'], 'nodegroup': 'mig', 'profile': '7g.80gb'}], nodes)
    assert 'mig[0]: no node has the label(s) magnum.openstack.org/nodegroup=none' in problems
    assert 'mig[1]: no such node(s): gpu-9' in problems
    assert 'mig[2]: node gpu-1 already gets MIG profile 1g.10gb from mig[1]' in problems
    assert 'mig[3]: give exactly one of nodegroup, node_selector and nodes (got nodegroup, nodes)' in problems


def test_mig_problems_name_the_model_and_its_profiles():
    gpus = {'a100': ['20b5', '20b5'], 'l40s': ['26b9'], 'a100-40': ['20f1']}
    problems = gpu.mig_problems({'a100': '1g.10gb', 'l40s': '1g.10gb', 'a100-40': '1g.10gb', 'cpu': '1g.10gb'}, gpus)
    assert problems == [
        'cpu has no NVIDIA GPU (its NFD NodeFeature lists no PCI device of vendor 10de, class 03xx), so MIG profile '
        '1g.10gb cannot apply',
        'l40s: GPU 10de:26b9 does not support MIG (or is not a model with known MIG profiles: A100 40GB, A100 80GB, '
        'A30 24GB, H100 80GB, H100 NVL 94GB, H200 141GB)']
    assert gpu.mig_problems({'a100': '1g.5gb'}, gpus) == [
        'a100: MIG profile 1g.5gb does not exist on the A100 80GB (10de:20b5); its profiles are 1g.10gb, 1g.20gb, '
        '2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb']
    assert gpu.mig_problems({'a100': 'disabled', 'a100-40': '1g.10gb'}, gpus) == []


def test_mig_resources_and_checks_per_strategy():
    assert gpu.mig_resources('1g.10gb', ['20b5', '20b5'], 'mixed') == {'nvidia.com/mig-1g.10gb': 14}
    assert gpu.mig_resources('3g.40gb', ['2330'], 'single') == {'nvidia.com/gpu': 2}
    checks = gpu.checks(['gpu-1', 'gpu-2', 'gpu-3'], {'gpu-1': '1g.10gb', 'gpu-3': 'disabled'}, 'mixed')
    assert checks == [{'resource': 'nvidia.com/gpu', 'nodes': ['gpu-2', 'gpu-3'], 'expect_output': '^GPU 0: '},
                      {'resource': 'nvidia.com/mig-1g.10gb', 'nodes': ['gpu-1'], 'expect_output': 'MIG 1g.10gb'}]
    assert gpu.checks(['gpu-1'], {'gpu-1': '1g.10gb'}, 'single') == [
        {'resource': 'nvidia.com/gpu', 'nodes': ['gpu-1'], 'expect_output': '^GPU 0: '}]


def test_mig_parted_config_has_every_used_layout():
    config = yaml.safe_load(gpu.mig_parted_config(['1g.10gb', 'disabled', '1g.10gb', '3g.40gb']))
    assert config['version'] == 'v1'
    assert sorted(config['mig-configs']) == ['all-1g.10gb', 'all-3g.40gb', 'all-disabled']
    assert config['mig-configs']['all-1g.10gb'] == [{'devices': 'all', 'mig-enabled': True,
                                                     'mig-devices': {'1g.10gb': 7}}]
    assert gpu.mig_config_name('disabled') == 'all-disabled'


def test_toolkit_uses_a_containerd_drop_in_and_a_runtime_class():
    ds = gpu.toolkit_daemonset({'namespace': 'gpu', 'runtime_class': 'nvidia-cdi'}, {'a': 'b'})
    pod = ds['spec']['template']['spec']
    env = dict((e['name'], e['value']) for e in pod['containers'][0]['env'])
    assert env['RUNTIME'] == 'containerd' and env['CONTAINERD_RUNTIME_CLASS'] == 'nvidia-cdi'
    assert env['RUNTIME_DROP_IN_CONFIG_HOST_PATH'] == '/etc/containerd/conf.d/99-nvidia.toml'
    assert env['CONTAINERD_SET_AS_DEFAULT'] == 'false' and env['CDI_ENABLED'] == 'true'
    paths = sorted(v['hostPath']['path'] for v in pod['volumes'])
    assert '/etc/containerd/conf.d' in paths and '/run/containerd' in paths and '/var/run/cdi' in paths
    assert pod['nodeSelector'] == {'a': 'b'} and pod['containers'][0]['image'] == gpu.IMAGES['toolkit']
    assert gpu.runtime_class('nvidia-cdi')['handler'] == 'nvidia-cdi'


def test_mig_manager_rolls_when_its_configuration_changes():
    first = gpu.mig_manager_manifests({'namespace': 'gpu'}, {}, ['1g.10gb'])
    second = gpu.mig_manager_manifests({'namespace': 'gpu'}, {}, ['3g.40gb'])
    kinds = [o['kind'] for o in first]
    assert kinds == ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet']
    hash_of = [o['spec']['template']['metadata']['annotations'] for o in (first[-1], second[-1])]
    assert hash_of[0] != hash_of[1]
    assert first[-1]['spec']['template']['spec']['runtimeClassName'] == 'nvidia'


def test_cluster_policy_settings_and_state():
    policy = gpu.cluster_policy({'gpu_operator': {'driver': False, 'service_monitor': True},
                                 'nvidia': {'mig_strategy': 'mixed'}}, existing_name='gpu-cluster-policy')
    assert policy['metadata']['name'] == 'gpu-cluster-policy'
    spec = policy['spec']
    assert spec['driver'] == {'enabled': False} and spec['mig'] == {'strategy': 'mixed'}
    assert spec['dcgmExporter'] == {'enabled': True, 'serviceMonitor': {'enabled': True}}
    assert spec['operator']['runtimeClass'] == 'nvidia'
    assert gpu.cluster_policy_state({'status': {'state': 'ready'}}) == (True, 'ready')
    assert gpu.cluster_policy_state({'status': {'state': 'ignored'}})[1].startswith('ignored')
    assert gpu.cluster_policy_state({})[1].startswith('no state reported')
    older = {'metadata': {'name': 'b', 'creationTimestamp': '2026-01-01T00:00:00Z'}}
    newer = {'metadata': {'name': 'a', 'creationTimestamp': '2026-02-01T00:00:00Z'}}
    assert gpu.oldest([newer, older]) is older


def test_exporter_collects_every_metric_the_rules_and_dashboards_use():
    objects = mon.exporter_manifests({'namespace': 'gpu', 'runtime_class': 'nvidia', 'labels': {'release': 'p'}}, {})
    config, daemonset, service, monitor = objects
    collected = set(line.split(',')[0] for line in config['data']['hpcops-fields.csv'].splitlines()
                    if not line.startswith('#'))
    rules = json.dumps(mon.prometheus_rule({'namespace': 'gpu'})['spec'])
    boards = json.dumps(mon.dashboards())
    import re
    used = set(re.findall(r'DCGM_FI_[A-Z_]+', rules + boards))
    assert used and used <= collected, used - collected
    assert daemonset['spec']['template']['spec']['runtimeClassName'] == 'nvidia'
    assert service['spec']['ports'][0]['port'] == mon.DCGM_PORT
    assert monitor['metadata']['labels']['release'] == 'p'
    assert monitor['spec']['endpoints'][0]['port'] == 'metrics'


def test_rule_groups_and_dashboards():
    groups = mon.rule_groups({'rules': ['gpu', 'kmm'], 'gpu_temperature_limit': 80})
    assert [g['name'] for g in groups] == ['hpcops-gpu-health', 'hpcops-kmm-modules']
    alerts = dict((r['alert'], r) for g in groups for r in g['rules'])
    assert alerts['GPUTemperatureHigh']['expr'] == 'DCGM_FI_DEV_GPU_TEMP > 80'
    assert 'DCGM_FI_DEV_XID_ERRORS == 79' in alerts['GPUXidCritical']['expr']
    assert 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL' in alerts['GPUUncorrectableECCErrors']['expr']
    maps = mon.dashboard_configmaps({'namespace': 'gpu', 'dashboards_namespace': 'monitoring',
                                     'dashboards_folder': 'HPC'})
    assert [m['metadata']['name'] for m in maps] == ['hpcops-gpu-nodes', 'hpcops-rdma-links']
    for cm in maps:
        assert cm['metadata']['labels']['grafana_dashboard'] == '1'
        assert cm['metadata']['namespace'] == 'monitoring'
        assert cm['metadata']['annotations'] == {'grafana_folder': 'HPC'}
        board = json.loads(list(cm['data'].values())[0])
        ids = [p['id'] for p in board['panels']]
        assert len(ids) == len(set(ids)) and board['uid'] == cm['metadata']['name']

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module's EXAMPLES block runs as written.

The examples are read back the way a user reads them (``ansible-doc --json``), put into
plays unchanged, and run by ansible-playbook: the OpenStack and Kubernetes examples in one
run against the simulated cloud linked to the Kubernetes test world, the node-side examples
in a second run inside a private mount namespace whose /etc is an overlay, so that they
write /etc/systemd/network and /etc/NetworkManager as on a node without touching this
machine's.

What the examples take for granted is set up here as a user's site would have it: a
clouds.yaml with the cloud ``mycloud``, a running cluster ``hpc-k8s`` (Cluster API driver)
and an older Heat-driver cluster ``legacy-k8s``, a few plain servers, NFD and KMM on the
Kubernetes cluster, the namespaces the examples use, and an inventory group ``workers``.
Examples of one module run in the order written; modules run in ORDER (what creates comes
before what reads), and any module not listed runs after them, in its action group's play.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, ansible_env, run_playbook
from testworld import ansible_run
from testworld.kubernetes import components
from testworld.kubernetes.pytest_fixtures import kube_world_factory  # noqa: F401 pylint: disable=unused-import

ORDER = ['cluster_template', 'cluster', 'cluster_nodegroup', 'cluster_info', 'cluster_kubeconfig',
         'cluster_nodes', 'stack_facts', 'server_interfaces',
         'node_feature_rule', 'kernel_module', 'gpu_runtime', 'device_plugin', 'accelerator_validation',
         'gpu_monitoring',
         'node_network_info', 'node_network_files']


def modules():
    names = sorted(n[:-3] for n in os.listdir(os.path.join(REPO, 'plugins', 'modules'))
                   if n.endswith('.py') and n != '__init__.py')
    return [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]


def action_groups():
    with open(os.path.join(REPO, 'meta', 'runtime.yml')) as f:
        runtime = yaml.safe_load(f)
    return dict((m, group) for group, members in runtime['action_groups'].items() for m in members)


def examples(names):
    """{module: [task, ...]} as ansible-doc shows them to users."""
    env = ansible_env(os.path.join(REPO, '.cache'))
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-doc'), '--json', '-t', 'module']
                         + ['hpcops.coe.' + n for n in names], env=env, capture_output=True, text=True, check=True)
    docs = json.loads(out.stdout)
    found = {}
    for name in names:
        text = docs['hpcops.coe.' + name]['examples']
        tasks = yaml.safe_load(text)
        assert isinstance(tasks, list) and tasks, 'EXAMPLES of %s is not a list of tasks' % name
        found[name] = tasks
    return found


def scenario():
    """The default cloud, plus what the examples name."""
    with open(os.path.join(REPO, 'testworld', 'scenarios', 'default.yml')) as f:
        data = yaml.safe_load(f)
    data['name'] = 'examples'
    data['keypairs'].append({'name': 'ops'})
    data['networks'].append({'name': 'hpc-net', 'subnets': [{'name': 'hpc-subnet', 'cidr': '10.30.0.0/16'}]})
    data['networks'].append({'name': 'storage', 'mtu': 9000,
                             'provider': {'network_type': 'vlan', 'physical_network': 'physnet25g',
                                          'segmentation_id': 120},
                             'subnets': [{'name': 'storage-subnet', 'cidr': '10.20.0.0/16'}]})
    data['servers'] += [{'name': name, 'flavor': 'm1.small', 'image': 'ubuntu-jammy-kube-v1.30.4',
                         'key_name': 'ops', 'networks': ['private']} for name in ('login-0', 'node-0', 'node-1')]
    data['clusters'] = [
        {'name': 'hpc-k8s', 'template': 'k8s-capi-v1.30', 'master_count': 1, 'node_count': 2,
         'flavor_id': 'bm.compute'},
        {'name': 'legacy-k8s', 'template': 'k8s-heat-fcos', 'master_count': 1, 'node_count': 1,
         'flavor_id': 'bm.compute',
         'nodegroups': [{'name': 'gpu', 'flavor': 'bm.gpu', 'node_count': 1, 'min_node_count': 0,
                         'max_node_count': 2}]},
    ]
    return data


def notified(tasks):
    names = set()
    for task in tasks:
        notify = task.get('notify') or []
        names.update([notify] if isinstance(notify, str) else notify)
    return sorted(names)


def play(name, tasks, hosts='localhost', module_defaults=None):
    handlers = [{'name': n, 'ansible.builtin.debug': {'msg': 'handler %s ran' % n}} for n in notified(tasks)]
    body = {'name': name, 'hosts': hosts, 'gather_facts': False, 'tasks': tasks}
    if module_defaults:
        body['module_defaults'] = module_defaults
    if handlers:
        body['handlers'] = handlers
    return body


def site_scenario():
    """The accelerators scenario, its GPU nodes with the 25G port (ens2f0) the pod-network examples name."""
    with open(os.path.join(REPO, 'testworld', 'scenarios', 'kube-accelerators.yml')) as f:
        doc = yaml.safe_load(f)
    for node in doc['nodes']:
        if node['name'] in ('gpu-1', 'gpu-2'):
            node['pci'].append({'address': '0000:5e:00.0', 'class': '0200', 'vendor': '8086', 'device': '159b',
                                'name': 'Intel E810-XXV', 'driver': 'ice'})
            node['network'].append({'name': 'ens2f0', 'pci': '0000:5e:00.0', 'linkType': 'ether', 'speed': 25000})
    return doc


@pytest.fixture
def world(kube_world_factory, sim_cloud_factory, tmp_path):  # noqa: F811
    kube = kube_world_factory(site_scenario())
    components.deploy_nfd(kube)
    components.deploy_kmm(kube)
    components.install_crds(kube, ['monitoring'])
    components.deploy_multus(kube)
    for ns in ('hpcops-gpu', 'hpcops-network', 'monitoring'):
        components.namespace(kube, ns)
    # Magnum's drivers label nodes with their nodegroup; gpu-1 (A100) is the MIG nodegroup's node.
    kube.label_node('gpu-1', {'magnum.openstack.org/nodegroup': 'gpu-mig'})
    # The examples that hand the GPU stack to the NVIDIA GPU operator run where it is installed.
    operator = kube_world_factory('kube-gpu-operator.yml')
    cloud = sim_cloud_factory(scenario(), kube_api_url=kube.url,
                              kube_ca={'cert': kube.ca_file, 'key': kube.ca_key_file})
    # The user's clouds.yaml names the cloud "mycloud".
    with open(cloud.env()['OS_CLIENT_CONFIG_FILE']) as f:
        clouds = yaml.safe_load(f)
    clouds['clouds']['mycloud'] = clouds['clouds']['hpcops-sim']
    config = tmp_path / 'clouds.yaml'
    config.write_text(yaml.safe_dump(clouds))
    config.chmod(0o600)
    home = tmp_path / 'home'
    home.mkdir()
    env = {'OS_CLIENT_CONFIG_FILE': str(config), 'HOME': str(home), 'K8S_AUTH_KUBECONFIG': kube.kubeconfig,
           'TMPDIR': ansible_run.short_tmpdir(str(tmp_path))}
    env.pop('OS_CLOUD', None)
    return {'kube': kube, 'operator_kube': operator, 'cloud': cloud, 'env': env, 'home': home}


def with_gpu_operator(task):
    """Whether an example works with the NVIDIA GPU operator (it runs in the world that has one)."""
    args = next((v for k, v in task.items() if k.startswith('hpcops.coe.')), None) or {}
    return isinstance(args, dict) and 'gpu-operator' in (args.get('stack'), args.get('namespace'))


def assert_ran_every_example(run, blocks):
    ran = [r['task'] for r in run.results if r['play'] != 'Site inventory']
    expected = [t['name'] for name in blocks for t in blocks[name]]
    assert [n for n in expected if n not in ran] == [], run.explain()


def test_every_example_runs_as_written(world, tmp_path):
    names = modules()
    groups = action_groups()
    blocks = examples(names)
    remote = dict((n, t) for n, t in blocks.items() if groups.get(n) != 'node')
    node = dict((n, t) for n, t in blocks.items() if groups.get(n) == 'node')

    plays = [play('Site inventory', [{'name': 'The workers group of the site inventory',
                                      'ansible.builtin.add_host': {'name': '{{ item }}', 'groups': ['workers']},
                                      'loop': ['node-0', 'node-1']}])]
    for name, tasks in remote.items():
        plain = [t for t in tasks if not with_gpu_operator(t)]
        operator = [t for t in tasks if with_gpu_operator(t)]
        if plain:
            plays.append(play('Examples of hpcops.coe.%s' % name, plain, module_defaults={
                'group/hpcops.coe.openstack': {'cloud': 'mycloud'},
                'group/hpcops.coe.kubernetes': {'kubeconfig': world['kube'].kubeconfig}}))
        if operator:
            plays.append(play('Examples of hpcops.coe.%s with the GPU operator' % name, operator, module_defaults={
                'group/hpcops.coe.kubernetes': {'kubeconfig': world['operator_kube'].kubeconfig}}))
    run = run_playbook(yaml.safe_dump(plays, sort_keys=False), extravars={'vault_registry_token': 'robot-token'},
                       env=world['env'], workdir=str(tmp_path / 'remote'))
    assert run.rc == 0 and not run.failed, run.explain()
    assert_ran_every_example(run, remote)

    # What the examples say they do happened in the two worlds.
    state = world['cloud'].state()
    assert 'genomics-k8s' not in [c['name'] for c in state['clusters']]  # created, resized, upgraded, deleted
    assert (world['home'] / '.kube' / 'hpc-k8s.yaml').exists()
    nodes = run.task('Use it with kubernetes.core')['resources']
    assert {'gpu-1', 'ib-1'} <= set(n['metadata']['name'] for n in nodes)
    assert world['kube'].get('kmm.sigs.x-k8s.io/v1beta1', 'Module', 'nvidia', 'hpcops-gpu') is not None

    if node:
        run_node_examples(node, tmp_path / 'node')


def node_root(root):
    """A node's tree: Ubuntu, the eth-25g and ib-100g files of the networks role, a GlusterFS client with RDMA."""
    files = {
        'etc/os-release': 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n',
        'etc/systemd/network/50-hpcops-eth-25g.network':
            '# OpenStack network eth-25g, port 6d3c1f0e-2b1a-4c55-9f0e-7b2a1c9d4e01\n[Match]\nName=ens2f0\n'
            '[Network]\nAddress=10.2.0.41/24\n',
        'etc/systemd/network/50-hpcops-ib-100g.network':
            '# OpenStack network ib-100g, port 0b8e4d2a-5f61-4e3b-8c7d-2a9f1e6b3c40\n[Match]\nName=ibp65s0\n'
            '[Network]\nAddress=10.100.0.21/16\n',
        'usr/lib/x86_64-linux-gnu/glusterfs/11.1/rpc-transport/socket.so': '',
        'usr/lib/x86_64-linux-gnu/glusterfs/11.1/rpc-transport/rdma.so': '',
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def run_node_examples(blocks, workdir):
    """The node-side examples, with this machine's /etc behind an overlay that only they see."""
    if not shutil.which('unshare'):
        pytest.skip('unshare (util-linux) is needed to give the node-side examples a private /etc')
    workdir.mkdir()
    upper, work = workdir / 'upper', workdir / 'work'
    upper.mkdir()
    work.mkdir()
    # node_mounts mounts remote filesystems on the node it runs on: its examples work on a node root
    # (where the module writes its files and lists the commands instead of running them), laid out as
    # a node the networks role has configured, with a GlusterFS client built with RDMA.
    root = node_root(workdir / 'node-root')
    plays = [play('Examples of hpcops.coe.%s' % name, tasks, module_defaults={
        'hpcops.coe.node_mounts': {'root': str(root)}}) for name, tasks in blocks.items()]
    playbook = workdir / 'node-examples.yml'
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    inventory = workdir / 'inventory.json'
    inventory.write_text(json.dumps({'all': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}))
    results = workdir / 'results.jsonl'
    results.touch()
    env = ansible_env(str(workdir), {'HPCOPS_RESULTS_FILE': str(results)})
    script = ('mount -t overlay overlay -o lowerdir=/etc,upperdir={u},workdir={w} /etc && '
              'mount -t tmpfs tmpfs /mnt && mkdir -p /mnt/sysimage/sys/class/net && '
              'exec {pb} -i {inv} -e vault_ceph_hpc_key=AQBexampleCephKeyOnlyForTheTest== {play}').format(
        u=upper, w=work, pb=os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), inv=inventory,
        play=playbook)
    probe = subprocess.run(['unshare', '-Urm', 'true'], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip('no unprivileged mount namespaces here (%s): node-side examples need a private /etc'
                    % probe.stderr.strip())
    proc = ansible_run.run(['unshare', '-Urm', 'sh', '-c', script], env=env, cwd=str(workdir), capture_output=True,
                           text=True, timeout=600, check=False)
    records = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    failed = [r for r in records if r['status'] in ('failed', 'unreachable') and not r['ignore_errors']]
    assert proc.returncode == 0 and not failed, (proc.stdout[-4000:], proc.stderr[-2000:])
    ran = [r['task'] for r in records]
    assert [t['name'] for n in blocks for t in blocks[n] if t['name'] not in ran] == []
    # The files went to the overlay, that is to where the node's /etc would be.
    assert (upper / 'systemd' / 'network' / '50-hpcops-eth-25g.network').exists()
    written = upper / 'NetworkManager' / 'system-connections'
    assert oct(written.stat().st_mode & 0o777) == '0o700'
    assert all(oct(p.stat().st_mode & 0o777) == '0o600' for p in written.iterdir()) and any(written.iterdir())

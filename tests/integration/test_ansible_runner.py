# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml run as AWX runs it: through ansible-runner, inventory from the plugin.

AWX hands ansible-runner a private data directory: the inventory source (here a
``*.coe_clusters.yml`` file of the ``hpcops.coe.clusters`` plugin with its group_vars), the
environment its credentials inject (``OS_CLIENT_CONFIG_FILE`` pointing at a clouds.yaml, a
kubeconfig), and the playbook. The cloud already has the site's cluster, as on any run after the
first, so the plugin lists its nodes when the inventory is read and the networks phase runs on
them. One run of the whole site: cluster (found as described, nothing to change), networks
(attached in Nova, configured on the simulated nodes), accelerators (through the cluster's
Kubernetes API).
"""

import os
import shutil
import time

import pytest
import yaml

from conftest import REPO, ansible_env
from testworld.kubernetes.pytest_fixtures import kube_world_factory  # noqa: F401 pylint: disable=unused-import

ansible_runner = pytest.importorskip('ansible_runner', reason='ansible-runner (requirements/test.txt) is needed')

DEMO = os.path.join(REPO, 'playbooks', 'inventory', 'demo', 'group_vars', 'all')
CLUSTER = 'demo-gpu-ib'


def demo_vars(name):
    with open(os.path.join(DEMO, name)) as f:
        return yaml.safe_load(f)


def scenario():
    """The default cloud, plus the site's template as the demo vars describe it."""
    with open(os.path.join(REPO, 'testworld', 'scenarios', 'default.yml')) as f:
        data = yaml.safe_load(f)
    spec = demo_vars('cluster.yml')
    tpl = spec['cluster_template']
    data['name'] = 'runner'
    data['cluster_templates'].append({
        'name': tpl['name'], 'image': tpl['image'], 'server_type': tpl['server_type'], 'keypair': tpl['keypair'],
        'flavor_id': tpl['flavor'], 'master_flavor_id': tpl['master_flavor'],
        'external_network_id': tpl['external_network'], 'fixed_network': tpl['fixed_network'],
        'fixed_subnet': tpl['fixed_subnet'], 'network_driver': tpl['network_driver'],
        'floating_ip_enabled': tpl['floating_ip_enabled'], 'labels': tpl['labels']})
    data['clusters'] = []
    return data


def status(read):
    """The status of what read() returns; None while Magnum answers 404 (a create not stored yet)."""
    from magnumclient import exceptions

    try:
        return read().status
    except exceptions.NotFound:
        return None


def create_cluster(cloud, monkeypatch):
    """The site's cluster, made through Magnum's API as an earlier run would have made it (servers the
    scenario starts with get no node root; servers built afterwards do)."""
    import openstack
    from magnumclient import client

    spec = demo_vars('cluster.yml')
    assert spec['cluster_name'] == CLUSTER
    monkeypatch.setenv('OS_CLIENT_CONFIG_FILE', cloud.clouds_yaml)
    magnum = client.Client('1', session=openstack.connect(cloud='hpcops-sim').session, api_version='latest')
    template = magnum.cluster_templates.get(spec['cluster_template']['name']).uuid
    uuid = magnum.clusters.create(name=CLUSTER, cluster_template_id=template, master_count=spec['cluster_master_count'],
                                  node_count=spec['cluster_node_count']).uuid
    wait_for(lambda: status(lambda: magnum.clusters.get(uuid)) == 'CREATE_COMPLETE', 'cluster %s' % CLUSTER)
    for group in spec['cluster_nodegroups']:
        magnum.nodegroups.create(uuid, name=group['name'], flavor_id=group['flavor'], node_count=group['node_count'],
                                 min_node_count=group['min_node_count'], max_node_count=group['max_node_count'])
    for group in spec['cluster_nodegroups']:
        wait_for(lambda: status(lambda: magnum.nodegroups.get(uuid, group['name'])) == 'CREATE_COMPLETE',
                 'nodegroup %s' % group['name'])


def wait_for(predicate, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'timed out waiting for ' + what
        time.sleep(0.2)


@pytest.fixture
def site(kube_world_factory, sim_cloud_factory, tmp_path, monkeypatch):  # noqa: F811
    kube = kube_world_factory('kube-demo.yml')
    cloud = sim_cloud_factory(scenario(), kube_api_url=kube.url,
                              kube_ca={'cert': kube.ca_file, 'key': kube.ca_key_file})
    create_cluster(cloud, monkeypatch)
    private = tmp_path / 'runner'
    inventory = private / 'inventory'
    shutil.copytree(DEMO, inventory / 'group_vars' / 'all')
    # The cluster exists: the site reads its nodes from the plugin, not from the cluster role.
    # The simulated nodes keep their network files in a directory each, in the cloud's state.
    (inventory / 'group_vars' / 'all' / 'zz-runner.yml').write_text(yaml.safe_dump({
        'cluster_add_hosts': False,
        'cluster_kubeconfig_path': str(tmp_path / 'site.kubeconfig'),
        'networks_target_root': os.path.join(cloud.state_dir, 'nodes', '{{ inventory_hostname }}')}))
    # The plugin groups the nodes as the cluster role does (coe_nodes, coe_workers, ...), so the
    # demo's group variables apply unchanged.
    shutil.copy(os.path.join(REPO, 'playbooks', 'inventory', 'demo', 'group_vars', 'coe_nodes.yml'),
                inventory / 'group_vars' / 'coe_nodes.yml')
    (inventory / 'clusters.coe_clusters.yml').write_text(yaml.safe_dump({
        'plugin': 'hpcops.coe.clusters', 'clouds': ['hpcops-sim'], 'clusters': [CLUSTER]}))
    (inventory / 'hosts.yml').write_text(yaml.safe_dump({'all': {
        'hosts': {'localhost': {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}'}}}}))
    return {'kube': kube, 'cloud': cloud, 'private': private, 'tmp': tmp_path}


def test_site_runs_through_ansible_runner_with_the_inventory_plugin(site):
    # What a job's environment holds: the collections, and what the credentials inject. The
    # stdout and event callbacks are ansible-runner's own, as in AWX.
    env = dict((k, v) for k, v in ansible_env(str(site['tmp'])).items()
               if k not in ('ANSIBLE_CALLBACK_PLUGINS', 'ANSIBLE_CALLBACKS_ENABLED', 'ANSIBLE_STDOUT_CALLBACK'))
    env.update(site['cloud'].env())
    env['K8S_AUTH_KUBECONFIG'] = site['kube'].kubeconfig
    run = ansible_runner.run(private_data_dir=str(site['private']), playbook=os.path.join(REPO, 'playbooks', 'site.yml'),
                             inventory=str(site['private'] / 'inventory'), envvars=env, quiet=True, timeout=1500)
    stdout = run.stdout.read()
    assert run.status == 'successful' and run.rc == 0, stdout[-6000:]
    # The nodes the plugin listed are the hosts the networks phase ran on: the cluster's workers
    # (default and GPU nodegroups), not its control plane nor look-alike servers of no cluster.
    worked = set()
    for event in run.events:
        data = event.get('event_data') or {}
        if event.get('event') == 'runner_on_ok' and 'high-speed networks' in data.get('play', ''):
            worked.add(data['host'])
    state = site['cloud'].state()
    [cluster] = [c for c in state['clusters'] if c['name'] == CLUSTER]
    workers = sorted(s['name'] for s in state['servers']
                     if s['name'].startswith(cluster['stack_id'] + '-') and '-control-plane-' not in s['name'])
    spec = demo_vars('cluster.yml')
    wanted = spec['cluster_node_count'] + sum(g['node_count'] for g in spec['cluster_nodegroups'])
    assert len(workers) == wanted and sorted(worked - {'localhost'}) == workers, (worked, workers)
    stats = run.stats
    assert not stats.get('failures') and not stats.get('dark'), stats
    # The accelerator phase reached the cluster's Kubernetes API and ran there.
    assert site['kube'].get('nfd.k8s-sigs.io/v1alpha1', 'NodeFeatureRule', 'hpcops-accelerators') is not None

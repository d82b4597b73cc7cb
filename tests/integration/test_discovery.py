# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hpcops.coe.cluster_nodes and hpcops.coe.stack_facts run by ansible-playbook on the simulated cloud.

scenarios/discovery.yml holds a Heat-style cluster (with a nodegroup of its own
stack), two CAPI-style clusters (nodegroups "gpu" and "gpu-a100"), a cluster
still being created and servers outside any cluster; the test adds look-alikes
of the generated CAPI names before running playbooks/discovery/modules.yml
(here, not in the scenario: the CAPI names are generated, and the inventory
tests on the same scenario expect every server under a CAPI prefix to be a node).
"""

import os
from collections import Counter

import openstack.config
import openstack.connection
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, 'scenarios', 'discovery.yml')
PLAYBOOK = os.path.join(HERE, 'playbooks', 'discovery', 'modules.yml')


def connect(sim, cloud='hpcops-sim'):
    config = openstack.config.OpenStackConfig(config_files=[sim.clouds_yaml])
    return openstack.connection.Connection(config=config.get_one(cloud))


def add_look_alikes(conn, names):
    flavor = conn.compute.find_flavor('m1.small')
    image = conn.image.find_image('fedora-coreos-40')
    network = conn.network.find_network('private')
    for name in names:
        conn.compute.create_server(name=name, flavor_id=flavor.id, image_id=image.id,
                                   networks=[{'uuid': network.id}])


@pytest.fixture
def world(sim_cloud_factory):
    sim = sim_cloud_factory(SCENARIO)
    conn = connect(sim)
    clusters = dict((c.name, c) for c in conn.container_infrastructure_management.clusters())
    capi_b = clusters['capi-b'].stack_id
    heat_stack = conn.orchestration.get_stack(clusters['heat-a'].stack_id).name
    # Names a CAPI node could have: under the cluster's own prefix, the nodegroup part ("bastion",
    # "gpu-spare") is none of the nodegroups Magnum lists, so these are no workers.
    look_alikes = [capi_b + 'x-default-worker-aaaaa-bbbbb', capi_b + '-bastion', heat_stack + '-bastion',
                   'x' + capi_b + '-gpu-aaaaa-bbbbb', capi_b + '-bastion-aaaaa-bbbbb',
                   capi_b + '-gpu-spare-aaaaa-bbbbb']
    add_look_alikes(conn, look_alikes)
    return {'sim': sim, 'capi_b': capi_b, 'heat_stack': heat_stack, 'look_alikes': look_alikes}


@pytest.mark.realservices
def test_modules_on_every_kind_of_cluster(world, playbook):
    sim = world['sim']
    sim.reset_requests()
    run = playbook(PLAYBOOK, env=sim.env())
    run.assert_ok()

    heat = run.task('Heat nodes')
    assert heat['changed'] is False
    assert heat['cluster']['driver'] == 'heat' and heat['cluster']['status'] == 'CREATE_COMPLETE'
    assert heat['nodegroups'] == ['default-master', 'default-worker', 'gpu']
    assert [(n['role'], n['nodegroup']) for n in heat['nodes']] == [
        ('master', 'default-master'), ('worker', 'default-worker'), ('worker', 'default-worker'), ('worker', 'gpu')]
    stack = world['heat_stack']
    assert [n['name'] for n in heat['nodes'][:3]] == [stack + '-master-0', stack + '-node-0', stack + '-node-1']
    assert heat['nodes'][3]['name'].startswith('heat-a-gpu-')
    worker = heat['nodes'][1]
    assert set(worker['addresses']) == {'private', 'eth-25g'}  # the attached network shows up too
    assert worker['addresses']['eth-25g']['fixed'][0].startswith('10.25.')
    assert worker['flavor'] == 'bm.compute' and worker['status'] == 'ACTIVE' and worker['driver'] == 'heat'
    assert heat['nodes'][3]['flavor'] == 'bm.gpu'

    capi = run.task('Capi nodes')
    capi_b = world['capi_b']
    assert capi['cluster']['driver'] == 'capi' and capi['cluster']['stack_id'] == capi_b
    assert Counter((n['role'], n['nodegroup']) for n in capi['nodes']) == Counter({
        ('master', 'default-master'): 1, ('worker', 'default-worker'): 2, ('worker', 'gpu'): 1,
        ('worker', 'gpu-a100'): 2})
    assert all(n['name'].startswith(capi_b + '-') for n in capi['nodes'])
    every_name = [n['name'] for task in ('Heat nodes', 'Capi nodes') for n in run.task(task)['nodes']]
    for stranger in world['look_alikes'] + ['login-1', 'heat-a-scratch-node-0', 'kube-zz9zz-default-worker-aaaaa-bbbbb']:
        assert stranger not in every_name

    gpu = run.task('Capi gpu-a100 workers')
    assert [(n['role'], n['nodegroup']) for n in gpu['nodes']] == [('worker', 'gpu-a100')] * 2

    building = run.task('Building nodes')
    assert building['cluster']['status'] == 'CREATE_IN_PROGRESS'
    assert sorted(n['role'] for n in building['nodes']) == ['master', 'worker']
    assert all(n['status'] in ('BUILD', 'ACTIVE') for n in building['nodes'])

    checked = run.task('Capi nodes in check mode')
    assert checked['changed'] is False and len(checked['nodes']) == 2

    heat_stack = run.task('Heat stack')
    assert heat_stack['stack']['name'] == stack and heat_stack['stack']['status'] == 'CREATE_COMPLETE'
    assert 'api_address' in heat_stack['stack']['outputs']
    assert sorted(r['name'] for r in heat_stack['resources']) == ['kube-master', 'kube-minion', 'kube-minion']
    assert sorted(r['physical_id'] for r in heat_stack['resources']) == sorted(n['id'] for n in heat['nodes'][:3])
    assert heat_stack['cluster']['driver'] == 'heat'

    gpu_stack = run.task('Gpu nodegroup stack')
    assert gpu_stack['stack']['name'].startswith('heat-a-gpu-')
    assert [r['physical_id'] for r in gpu_stack['resources']] == [heat['nodes'][3]['id']]

    groups = run.task('Heat stack groups by name')
    assert sorted(r['name'] for r in groups['resources']) == ['kube_masters', 'kube_minions']
    assert set(r['type'] for r in groups['resources']) == {'OS::Heat::ResourceGroup'}
    assert groups['stack']['outputs'] == {}

    capi_stack = run.task('Capi stack')
    assert capi_stack['stack'] is None and capi_stack['resources'] == []
    assert capi_stack['cluster'] == {'id': capi['cluster']['id'], 'name': 'capi-b', 'status': 'CREATE_COMPLETE',
                                     'driver': 'capi', 'stack_id': capi_b}

    # The servers come from listings, never one request per node.
    routes = sim.requests()['by_route']
    assert not [r for r in routes if r.startswith('GET /compute/v2.1/servers/') and r.count('/') > 4
                and not r.endswith('/detail')]
    assert routes['GET /compute/v2.1/servers/detail'] == 5  # one per successful cluster_nodes task

    # Bad input fails naming the input and the valid choices.
    for task, expected in (
            ('Unknown cluster', ["cluster 'no-such-cluster' does not exist", 'building, capi-b, capi-c, heat-a']),
            ('Unknown nodegroup', ['nodegroups gpu-h100 do not exist', 'default-master, default-worker, gpu, gpu-a100']),
            ('Unknown role', ['roles', 'master, worker']),
            ('Unknown stack nodegroup', ["nodegroup 'gpu-h100' does not exist", 'default-master, default-worker, gpu']),
            ('Negative depth', ['nested_depth must be 0 or more, got -1'])):
        entry = run.entry(task)
        assert entry['status'] == 'failed', entry
        for text in expected:
            assert text in entry['result']['msg'], (task, entry['result']['msg'])


ONE_503_EACH = [{'service': s, 'status': 503, 'count': 1} for s in ('container-infra', 'orchestration', 'compute')]
NODES_PLAY = """
- name: Nodes of a Heat-style and a CAPI-style cluster
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Heat nodes
      hpcops.coe.cluster_nodes:
        cloud: hpcops-sim
        cluster: heat-a
    - name: Capi nodes
      hpcops.coe.cluster_nodes:
        cloud: hpcops-sim
        cluster: capi-b
"""


def test_cluster_nodes_rides_out_one_503_from_magnum_heat_and_nova(world, playbook):
    sim = world['sim']
    clean = playbook(NODES_PLAY, env=sim.env())
    clean.assert_ok()
    sim.set_faults(ONE_503_EACH)
    retried = playbook(NODES_PLAY, env=sim.env())
    retried.assert_ok()
    assert [r['fired'] for r in sim.faults()] == [1, 1, 1]
    for task in ('Heat nodes', 'Capi nodes'):
        assert retried.task(task)['nodes'] == clean.task(task)['nodes']
    assert len(retried.task('Heat nodes')['nodes']) == 4 and len(retried.task('Capi nodes')['nodes']) == 6

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Magnum modules on the real-services tier: a real Keystone (and Heat) beside the simulator.

Authentication goes through the real Keystone: its catalog points container-infra,
compute, network and image at the simulator. Skipped when the real services are not
installed (testworld/realservices/setup.sh), or when the simulator does not accept
tokens issued by the real Keystone.
"""

import os

import pytest

from test_magnum_support import clusters_named, one, play, task

realservices = pytest.importorskip('testworld.realservices')

pytestmark = pytest.mark.skipif(not realservices.is_installed(),
                                reason='real services not installed: run testworld/realservices/setup.sh')

REAL_CLOUD = realservices.CLOUD


@pytest.fixture(scope='module')
def real_world(tmp_path_factory):
    from testworld.openstack import SimCloud
    from testworld.pytest_plugin import FAST_TIMINGS

    sim = SimCloud.start(scenario='default', state_dir=str(tmp_path_factory.mktemp('sim-real')),
                         timings=dict(FAST_TIMINGS))
    services = realservices.RealServices(str(tmp_path_factory.mktemp('realservices') / 'state'))
    try:
        state = services.start(sim_url=sim.url)
    except Exception:
        services.stop()
        sim.stop()
        raise
    env = dict(os.environ)
    env['OS_CLIENT_CONFIG_FILE'] = state['clouds_yaml']
    env.pop('OS_CLOUD', None)
    yield sim, state, env
    services.stop()
    sim.stop()


def _require_token_bridge(run):
    result = run.task('step')
    if result.get('failed') and ('HTTP 401' in result.get('msg', '') or 'authentication' in result.get('msg', '')):
        pytest.skip('the simulator does not accept tokens issued by the real Keystone yet: %s' % result['msg'])
    return result


@pytest.mark.realservices
def test_cluster_lifecycle_through_real_keystone(real_world, playbook):
    sim, state, env = real_world
    probe = playbook(one('cluster_info', {}, cloud=REAL_CLOUD, ignore_errors=True), env=env)
    _require_token_bridge(probe)

    tasks = [
        task('cluster_template', {'name': 'real-k8s', 'image': 'fedora-coreos-40', 'keypair': 'hpc-key',
                                  'external_network': 'public', 'flavor': 'm1.small', 'master_flavor': 'm1.large',
                                  'labels': {'hpcops_sim_driver': 'heat'}}, name='Template'),
        task('cluster', {'name': 'real-k8s', 'cluster_template': 'real-k8s', 'node_count': 1, 'timeout': 300},
             name='Create'),
        task('cluster', {'name': 'real-k8s', 'cluster_template': 'real-k8s', 'node_count': 1}, name='Create again'),
        task('cluster', {'name': 'real-k8s', 'node_count': 2, 'timeout': 300}, name='Grow'),
        task('cluster', {'name': 'real-k8s', 'state': 'absent', 'timeout': 300}, name='Delete'),
    ]
    run = playbook(play(tasks, cloud=REAL_CLOUD), env=env).assert_ok()
    created = run.task('Create')['cluster']
    assert created['status'] == 'CREATE_COMPLETE' and created['driver_kind'] == 'heat'
    assert run.task('Create again')['changed'] is False
    assert run.task('Grow')['changed'] is True
    assert clusters_named(sim.state(), 'real-k8s', live=False) == []

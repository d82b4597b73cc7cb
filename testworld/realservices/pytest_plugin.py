# -*- coding: utf-8 -*-
"""Run a suite written for the simulated cloud on the real-services tier.

    pytest -p testworld.pytest_plugin -p testworld.realservices.pytest_plugin tests/integration

Loaded after ``testworld.pytest_plugin``, this replaces its ``sim_cloud_factory`` (and so
``sim_cloud`` and ``sim_env``): a real Keystone and a real Heat start once per session, and
every simulated cloud a test asks for runs on the real identities, validates tokens with the
real Keystone, keeps real Heat stacks for its Heat-driver clusters, and is registered in the
real catalog. ``cloud.clouds_yaml`` then authenticates at the real Keystone under the
simulator's cloud names (``hpcops-sim``, ``hpcops-sim-<user>``, ``hpcops-sim-appcred``), so
tests and playbooks run unchanged. The control API (``/_sim/``) is the simulator's as before;
request counters no longer see Keystone and Heat calls, which go to the real services.

Without testworld/realservices/setup.sh the session is skipped with that reason.
"""

import os

import pytest

from testworld.realservices.controller import RealServices, is_installed


@pytest.fixture(scope='session')
def real_services(tmp_path_factory):
    if not is_installed():
        pytest.skip('real services not installed: run testworld/realservices/setup.sh')
    services = RealServices(str(tmp_path_factory.mktemp('realservices') / 'state'))
    services.start()
    yield services
    services.stop()


@pytest.fixture
def sim_cloud_factory(real_services, tmp_path_factory):
    from testworld.openstack import SimCloud
    from testworld.openstack import scenario as scenario_mod
    from testworld.pytest_plugin import FAST_TIMINGS

    clouds = []

    def factory(scenario='default', mode='thread', **overrides):
        timings = dict(FAST_TIMINGS)
        timings.update(overrides.pop('timings', None) or {})
        for key in list(overrides):
            if key in scenario_mod.TIMING_KEYS:
                timings[key] = overrides.pop(key)
        scn = real_services.sim_scenario(scenario_mod.load(scenario, timings=timings, **overrides))
        state_dir = tmp_path_factory.mktemp('sim-openstack')
        starter = SimCloud.spawn if mode == 'process' else SimCloud.start
        cloud = starter(scenario=scn, state_dir=str(state_dir))
        clouds.append(cloud)
        # A region of its own: two simulators of one test are two clouds, not one.
        region = 'sim-%d' % len(clouds)
        real_services.register_sim(cloud.url, region=region)
        cloud.clouds_yaml = real_services.write_clouds_yaml(os.path.join(str(state_dir), 'clouds-real.yaml'),
                                                            prefix=cloud.cloud_name, region=region)
        return cloud

    yield factory
    for cloud in clouds:
        cloud.stop()

"""pytest fixtures for the simulated OpenStack cloud.

Load with ``-p testworld.pytest_plugin`` (the repository root on sys.path):

* ``sim_cloud``: a fresh in-process cloud on ``default.yml`` with fast timings,
  one per test.
* ``sim_cloud_factory(scenario="default", mode="thread"|"process", **overrides)``:
  more clouds, other scenarios (a path, a shipped name or a dict), other
  timings (``attach=0.5``...) or top-level keys (``kube_api_url=...``).
* ``sim_env``: a copy of ``os.environ`` with ``OS_CLIENT_CONFIG_FILE`` and
  ``OS_CLOUD`` pointing at ``sim_cloud``, for subprocesses (ansible-playbook,
  the openstack CLI).
"""

import os

import pytest

# Short enough to keep suites fast, long enough that clients observe the
# intermediate states (BUILD, *_IN_PROGRESS) at least once.
FAST_TIMINGS = {
    "server_build": 0.2,
    "server_delete": 0.05,
    "attach": 0.2,
    "detach": 0.1,
    "port_bind": 0.05,
    "cluster_create": 0.6,
    "cluster_visible": 0.3,
    "cluster_update": 0.4,
    "cluster_delete": 0.3,
    "nodegroup_create": 0.4,
    "nodegroup_update": 0.3,
    "nodegroup_delete": 0.3,
}


@pytest.fixture
def sim_cloud_factory(tmp_path_factory):
    from testworld.openstack import SimCloud
    from testworld.openstack.scenario import TIMING_KEYS

    clouds = []

    def factory(scenario="default", mode="thread", **overrides):
        timings = dict(FAST_TIMINGS)
        timings.update(overrides.pop("timings", None) or {})
        for key in list(overrides):
            if key in TIMING_KEYS:
                timings[key] = overrides.pop(key)
        state_dir = tmp_path_factory.mktemp("sim-openstack")
        starter = SimCloud.spawn if mode == "process" else SimCloud.start
        cloud = starter(scenario=scenario, state_dir=str(state_dir), timings=timings, **overrides)
        clouds.append(cloud)
        return cloud

    yield factory
    for cloud in clouds:
        cloud.stop()


@pytest.fixture
def sim_cloud(sim_cloud_factory):
    return sim_cloud_factory()


@pytest.fixture
def sim_env(sim_cloud):
    env = dict(os.environ)
    env.update(sim_cloud.env())
    return env

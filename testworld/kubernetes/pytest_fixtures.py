"""pytest fixtures for the Kubernetes test world.

kube_world          a running world with the default scenario (kube-accelerators.yml)
kube_world_factory  start worlds with other scenarios or options:
                        world = kube_world_factory("kube-gpu-operator.yml", nfd_interval=0.2)
Worlds are stopped when the test ends. Scenario names without a directory are
looked up in testworld/scenarios/.
"""

import os

import pytest

from testworld.kubernetes.world import KubeWorld

SCENARIOS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")
DEFAULT_SCENARIO = "kube-accelerators.yml"
# Short controller intervals keep suites at seconds, not minutes.
TEST_OPTIONS = {"nfd_interval": 0.3, "tick": 0.05, "pod_start": 0.1, "job_run": 0.2}


def scenario_path(name):
    if isinstance(name, (dict,)) or "\n" in str(name) or os.sep in str(name):
        return name
    return os.path.join(SCENARIOS, name)


@pytest.fixture
def kube_world_factory(tmp_path_factory):
    worlds = []

    def start(scenario=DEFAULT_SCENARIO, port=0, **options):
        merged = dict(TEST_OPTIONS, **options)
        world = KubeWorld.start(scenario=scenario_path(scenario), state_dir=str(tmp_path_factory.mktemp("kube")),
                                port=port, **merged)
        worlds.append(world)
        return world

    yield start
    for world in worlds:
        world.stop()


@pytest.fixture
def kube_world(kube_world_factory):
    return kube_world_factory()

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the reliability suite and the figures it prints at the end.

Run with the test-world plugin: ``pytest -p testworld.pytest_plugin tests/reliability``.

* ``cloud``: a fresh simulated cloud per test (the demo scenario without its
  never-finishing cluster, short timings), so every count is the test's own.
* ``cloud_factory``: more of them, also from module-scoped fixtures that run
  several scenarios side by side.
* ``kube_world`` / ``kube_world_factory``: the Kubernetes test world.
"""

import copy
import os

import pytest
import yaml

from reliability_kit import FIGURES, KUBE_OPTIONS, TIMINGS
from testworld.kubernetes.world import KubeWorld

SCENARIOS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         'testworld', 'scenarios')


def _default_scenario():
    with open(os.path.join(SCENARIOS, 'default.yml')) as f:
        scn = yaml.safe_load(f)
    # A cluster that never finishes building would be in every count; no test here needs it.
    scn['clusters'] = [c for c in scn['clusters'] if c.get('complete_after') != 'never']
    return scn


DEFAULT_SCENARIO = _default_scenario()


class _Factory(object):
    def __init__(self, tmp_path_factory):
        self.tmp = tmp_path_factory
        self.clouds = []
        self.worlds = []

    def cloud(self, scenario=None, **timings):
        from testworld.openstack import SimCloud

        merged = dict(TIMINGS)
        merged.update(timings)
        cloud = SimCloud.start(scenario=copy.deepcopy(scenario or DEFAULT_SCENARIO),
                               state_dir=str(self.tmp.mktemp('sim-openstack')), timings=merged)
        self.clouds.append(cloud)
        return cloud

    def kube(self, scenario='kube-accelerators.yml', **options):
        merged = dict(KUBE_OPTIONS)
        merged.update(options)
        world = KubeWorld.start(scenario=os.path.join(SCENARIOS, scenario),
                                state_dir=str(self.tmp.mktemp('sim-kube')), port=0, **merged)
        self.worlds.append(world)
        return world

    def stop(self):
        for world in self.worlds:
            world.stop()
        for cloud in self.clouds:
            cloud.stop()


@pytest.fixture
def cloud_factory(tmp_path_factory):
    factory = _Factory(tmp_path_factory)
    yield factory
    factory.stop()


@pytest.fixture(scope='module')
def module_factory(tmp_path_factory):
    factory = _Factory(tmp_path_factory)
    yield factory
    factory.stop()


@pytest.fixture
def cloud(cloud_factory):
    return cloud_factory.cloud()


@pytest.fixture
def kube_world(cloud_factory):
    return cloud_factory.kube()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    terminalreporter.section('reliability figures')
    for line in FIGURES.lines():
        terminalreporter.write_line(line)

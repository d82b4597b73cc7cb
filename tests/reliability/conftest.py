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
import json
import os
import shutil
import tempfile

import pytest

from reliability_kit import DEFAULT_SCENARIO, FIGURES, KUBE_OPTIONS, SCENARIOS, TIMINGS
from testworld.kubernetes.world import KubeWorld


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


# Under pytest-xdist every worker counts its own tests: each leaves its figures in a
# folder the controller made (workers inherit its environment), and the controller
# adds them up before printing.
FIGURES_DIR_ENV = 'HPCOPS_RELIABILITY_FIGURES_DIR'


def pytest_configure(config):
    if not hasattr(config, 'workerinput'):
        os.environ[FIGURES_DIR_ENV] = tempfile.mkdtemp(prefix='reliability-figures-')


def pytest_sessionfinish(session, exitstatus):
    workerinput = getattr(session.config, 'workerinput', None)
    if workerinput is not None and os.environ.get(FIGURES_DIR_ENV):
        path = os.path.join(os.environ[FIGURES_DIR_ENV], '%s.json' % workerinput['workerid'])
        with open(path, 'w') as f:
            json.dump(FIGURES.state(), f)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if hasattr(config, 'workerinput'):
        return  # the controller prints the sum
    folder = os.environ.get(FIGURES_DIR_ENV)
    if folder and os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name)) as f:
                FIGURES.merge(json.load(f))
        shutil.rmtree(folder, ignore_errors=True)
    terminalreporter.section('reliability figures')
    for line in FIGURES.lines():
        terminalreporter.write_line(line)

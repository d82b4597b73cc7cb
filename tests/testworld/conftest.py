"""Fixtures for the simulated-cloud fidelity tests; the cloud itself comes from
testworld.pytest_plugin (``-p testworld.pytest_plugin``)."""

import pytest
from os_simhelpers import Api

# Make the fixtures available when the plugin is not loaded with -p (pytest.ini
# does not load it); with -p these are the same functions.
from testworld.pytest_plugin import sim_cloud, sim_cloud_factory, sim_env  # noqa: F401  pylint: disable=unused-import


@pytest.fixture
def os_api(sim_cloud):
    return Api(sim_cloud.url)


@pytest.fixture
def os_conn(sim_cloud, monkeypatch):
    import openstack

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", sim_cloud.clouds_yaml)
    c = openstack.connect(cloud="hpcops-sim")
    yield c
    c.close()


@pytest.fixture
def os_magnum(os_conn):
    from magnumclient import client

    return client.Client("1", session=os_conn.session, api_version="latest")


@pytest.fixture
def os_heat(os_conn):
    from heatclient import client

    return client.Client("1", session=os_conn.session)


# Short, but long enough for clients to see the *_IN_PROGRESS states.
REALSERVICES_TIMINGS = {'server_build': 0.3, 'server_delete': 0.1, 'attach': 0.2, 'detach': 0.1, 'port_bind': 0.05,
                        'cluster_create': 1.5, 'cluster_update': 1.0, 'cluster_delete': 0.5}


@pytest.fixture(scope="session")
def tier(request, tmp_path_factory):
    """The real-services tier (real Keystone and Heat, and a simulator on the default scenario
    bridged to them), started once for the session's real-services tests (test_realservices*.py;
    the full tier's module has a tier of its own) and stopped, state directory removed, at its end."""
    from testworld.openstack import scenario
    from testworld.realservices import RealServices

    services = RealServices(str(tmp_path_factory.mktemp("realservices") / "state"))
    # start() stops what it started when it fails; its logs stay in the state directory.
    state = services.start(scenario=scenario.load("default", timings=REALSERVICES_TIMINGS))
    yield state
    # After a failure the configuration and logs stay for a look (processes end either way).
    services.stop(keep=request.session.testsfailed > 0)

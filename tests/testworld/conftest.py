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

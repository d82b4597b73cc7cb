"""The openstack CLI (python-openstackclient with the Magnum and Heat plugins)
as a subprocess against the simulated cloud."""

import concurrent.futures
import json
import os
import subprocess
import sys

from os_simhelpers import cluster_state, wait_for

OPENSTACK = os.path.join(os.path.dirname(sys.executable), "openstack")


def _run(env, *args):
    r = subprocess.run([OPENSTACK, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, "openstack %s: %s" % (" ".join(args), r.stderr)
    return r.stdout


def test_openstack_cli(sim_env, sim_cloud):
    heat = cluster_state(sim_cloud, "hpc-heat")
    stack = next(s["name"] for s in sim_cloud.state()["stacks"] if s["id"] == heat["stack_id"])
    worker = cluster_state(sim_cloud, "hpc-capi")["nodegroups"][1]["server_names"][0]
    jobs = {
        "list": ("coe", "cluster", "list", "-f", "json"),
        "show": ("coe", "cluster", "show", "hpc-capi", "-f", "json"),
        "output": ("stack", "output", "show", stack, "kube_minions_private", "-f", "json"),
        "attach": ("server", "add", "network", worker, "eth-25g"),
    }
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {k: pool.submit(_run, sim_env, *v) for k, v in jobs.items()}
        out = {k: f.result() for k, f in futures.items()}
    listed = {c["name"]: c for c in json.loads(out["list"])}
    assert listed["hpc-heat"]["status"] == "CREATE_COMPLETE" and listed["hpc-heat"]["node_count"] == 3
    shown = json.loads(out["show"])
    assert shown["name"] == "hpc-capi" and shown["api_address"].endswith(":6443")
    value = json.loads(out["output"])["output_value"]
    assert len(value if isinstance(value, list) else json.loads(value)) == 2
    assert next(s for s in sim_cloud.state()["servers"] if s["name"] == worker)["networks"] == ["private", "eth-25g"]

    created = _run(sim_env, "coe", "cluster", "create", "--cluster-template", "k8s-capi-v1.30",
                   "--node-count", "1", "clitest")
    assert "Request to create cluster" in created and "accepted" in created
    wait_for(lambda: cluster_state(sim_cloud, "clitest")["status"] == "CREATE_COMPLETE", what="clitest created")
    assert "accepted" in _run(sim_env, "coe", "cluster", "delete", "clitest")
    wait_for(lambda: "clitest" not in {c["name"] for c in sim_cloud.state()["clusters"]}, what="clitest deleted")

"""kubernetes.core's k8s and k8s_info against the test world: the fidelity
check that matters most, since the collection's modules use the same client."""

import pytest

from testworld.kubernetes.playbook_runner import run_playbook
from testworld.kubernetes.pytest_fixtures import kube_world, kube_world_factory  # noqa: F401 pylint: disable=unused-import

SCENARIO = {
    "cluster": {"podSecurity": {"enforce": "privileged"}},
    "nodes": [{"name": "n1", "kernel": "6.8.0-45-generic", "labels": {"pool": "a"}},
              {"name": "n2", "kernel": "6.8.0-45-generic", "labels": {"pool": "b"}}],
}

PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    value: "1"
  tasks:
    - name: Namespace
      kubernetes.core.k8s:
        api_version: v1
        kind: Namespace
        name: fid
    - name: Client-side apply
      kubernetes.core.k8s:
        apply: true
        definition:
          apiVersion: v1
          kind: ConfigMap
          metadata: {name: csa, namespace: fid}
          data: {value: "{{ value }}"}
    - name: Server-side apply
      kubernetes.core.k8s:
        apply: true
        server_side_apply: {field_manager: hpcops-test}
        definition:
          apiVersion: v1
          kind: ConfigMap
          metadata: {name: ssa, namespace: fid, labels: {app: fid}}
          data: {value: "{{ value }}"}
    - name: Plain update (strategic merge)
      kubernetes.core.k8s:
        definition:
          apiVersion: v1
          kind: ConfigMap
          metadata: {name: plain, namespace: fid}
          data: {value: "{{ value }}"}
    - name: Deployment and wait
      kubernetes.core.k8s:
        wait: true
        wait_sleep: 1
        wait_timeout: 30
        definition:
          apiVersion: apps/v1
          kind: Deployment
          metadata: {name: web, namespace: fid}
          spec:
            replicas: 2
            selector: {matchLabels: {app: web}}
            template:
              metadata: {labels: {app: web}}
              spec:
                containers: [{name: web, image: "registry.example.com/web:1"}]
      register: deploy
    - name: DaemonSet and wait
      kubernetes.core.k8s:
        apply: true
        wait: true
        wait_sleep: 1
        wait_timeout: 30
        definition:
          apiVersion: apps/v1
          kind: DaemonSet
          metadata: {name: agent, namespace: fid}
          spec:
            selector: {matchLabels: {app: agent}}
            template:
              metadata: {labels: {app: agent}}
              spec:
                nodeSelector: {pool: a}
                containers: [{name: agent, image: "registry.example.com/agent:1"}]
      register: ds
    - name: CRD and wait for Established
      kubernetes.core.k8s:
        apply: true
        server_side_apply: {field_manager: hpcops-test}
        wait: true
        wait_sleep: 1
        wait_timeout: 30
        wait_condition: {type: Established, status: "True"}
        definition:
          apiVersion: apiextensions.k8s.io/v1
          kind: CustomResourceDefinition
          metadata: {name: gadgets.example.com}
          spec:
            group: example.com
            scope: Namespaced
            names: {plural: gadgets, singular: gadget, kind: Gadget}
            versions:
              - name: v1
                served: true
                storage: true
                schema:
                  openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
    - name: Custom resource by server-side apply
      kubernetes.core.k8s:
        apply: true
        server_side_apply: {field_manager: hpcops-test}
        definition:
          apiVersion: example.com/v1
          kind: Gadget
          metadata: {name: g1, namespace: fid}
          spec: {size: "{{ value }}"}
    - name: Job and wait for completion
      kubernetes.core.k8s:
        wait: true
        wait_sleep: 1
        wait_timeout: 30
        wait_condition: {type: Complete, status: "True"}
        definition:
          apiVersion: batch/v1
          kind: Job
          metadata: {name: once, namespace: fid}
          spec:
            backoffLimit: 0
            template:
              spec:
                restartPolicy: Never
                containers: [{name: c, image: "registry.example.com/tool:1", command: ["true"]}]
    - name: Nodes in pool a
      kubernetes.core.k8s_info:
        kind: Node
        label_selectors: ["pool=a"]
      register: pool_a
    - name: Pods on n1
      kubernetes.core.k8s_info:
        kind: Pod
        namespace: fid
        field_selectors: ["spec.nodeName=n1"]
      register: on_n1
    - name: Checks
      ansible.builtin.assert:
        that:
          - deploy.result.status.availableReplicas == 2
          - ds.result.status.numberReady == 1
          - pool_a.resources | length == 1
          - pool_a.resources[0].metadata.name == 'n1'
          - on_n1.resources | map(attribute='spec.nodeName') | unique == ['n1']
"""


@pytest.fixture
def world(kube_world_factory):  # noqa: F811
    return kube_world_factory(SCENARIO)


def test_k8s_apply_ssa_wait_and_rerun_is_unchanged(world):
    first = run_playbook(world, PLAY)
    assert first.rc == 0, first.explain()
    assert {"Namespace", "Client-side apply", "Server-side apply", "Plain update (strategic merge)",
            "Deployment and wait", "DaemonSet and wait", "CRD and wait for Established",
            "Custom resource by server-side apply", "Job and wait for completion"} <= set(first.changed_tasks())
    ssa = world.get("v1", "ConfigMap", "ssa", "fid")
    assert [m["manager"] for m in ssa["metadata"]["managedFields"]] == ["hpcops-test"]

    second = run_playbook(world, PLAY)
    assert second.rc == 0, second.explain()
    assert second.changed_tasks() == [], second.explain()

    # check mode: changes are reported (dry-run diff) but nothing is written
    seen = len(world.requests())
    check = run_playbook(world, PLAY, extra_vars={"value": "2"}, check=True, diff=True)
    assert check.rc == 0, check.explain()
    assert "Server-side apply" in check.changed_tasks(), check.explain()
    assert "Client-side apply" in check.changed_tasks()
    diff = check.task("Server-side apply")["result"]["diff"]
    assert diff["before"]["data"]["value"] == "1" and diff["after"]["data"]["value"] == "2"
    assert world.get("v1", "ConfigMap", "ssa", "fid")["data"] == {"value": "1"}
    assert world.get("example.com/v1", "Gadget", "g1", "fid")["spec"] == {"size": "1"}
    writes = [r for r in world.requests()[seen:] if r.get("verb") in ("create", "update", "patch", "delete")]
    assert writes and all(r["dry_run"] == "All" for r in writes), writes


def test_k8s_delete_with_wait_and_info_on_missing_api(world):
    play = """
- hosts: localhost
  gather_facts: false
  tasks:
    - kubernetes.core.k8s:
        definition: {apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: default}, data: {a: "1"}}
    - name: Delete and wait
      kubernetes.core.k8s:
        state: absent
        wait: true
        wait_sleep: 1
        wait_timeout: 10
        definition: {apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: default}}
      register: gone
    - name: Unknown API
      kubernetes.core.k8s_info:
        api_version: nfd.k8s-sigs.io/v1alpha1
        kind: NodeFeatureRule
      register: nfr
    - ansible.builtin.assert:
        that:
          - gone is changed
          - not nfr.api_found
"""
    result = run_playbook(world, play)
    assert result.rc == 0, result.explain()
    assert world.get("v1", "ConfigMap", "x", "default") is None


def test_k8s_reports_rbac_denial_from_status_body(world):
    world.deny("configmaps", "create", namespace="default")
    play = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Denied
      kubernetes.core.k8s:
        definition: {apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: default}}
"""
    result = run_playbook(world, play)
    assert result.rc != 0
    msg = result.task("Denied")["result"]["msg"]
    assert "Forbidden" in msg and 'cannot create resource \\"configmaps\\"' in msg or \
        'cannot create resource "configmaps"' in msg

"""Stand-ins for cluster components, for tests of one module at a time.

They create what the simulated controllers recognise (the NFD master and
worker, the KMM operator) without going through the accelerators role:
    install_crds(world, ["nfd", "kmm"])
    deploy_nfd(world)
    deploy_kmm(world)
"""

import yaml

from testworld.kubernetes import crds

PRIVILEGED = {"pod-security.kubernetes.io/enforce": "privileged"}
NFD_IMAGE = "registry.k8s.io/nfd/node-feature-discovery:v0.16.4"
KMM_IMAGE = "registry.k8s.io/kmm/kernel-module-management-operator:v2.2.0"
# What a secondary-network setup runs on every node (thick Multus, the reference CNI plugins, whereabouts).
MULTUS_IMAGES = {
    "kube-multus-ds": "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.1.4-thick",
    "cni-plugins": "ghcr.io/k8snetworkplumbingwg/plugins:v1.5.0",
    "whereabouts": "ghcr.io/k8snetworkplumbingwg/whereabouts:v0.8.0",
}


def install_crds(world, names):
    for crd in crds.expand(names):
        world.apply(crd)
    world.kick()


def namespace(world, name, privileged=True):
    world.apply({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": name, "labels": dict(PRIVILEGED) if privileged else {}}})


def deploy_nfd(world, ns="node-feature-discovery", worker_conf=None, extra_label_ns=None, wait=True):
    install_crds(world, ["nfd"])
    namespace(world, ns)
    world.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nfd-worker-conf", "namespace": ns},
                 "data": {"nfd-worker.conf": yaml.safe_dump(worker_conf or {})}})
    args = ["-extra-label-ns=" + ",".join(extra_label_ns)] if extra_label_ns else []
    world.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nfd-master", "namespace": ns},
                 "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nfd-master"}},
                          "template": {"metadata": {"labels": {"app": "nfd-master"}},
                                       "spec": {"containers": [{"name": "nfd-master", "image": NFD_IMAGE,
                                                                "command": ["nfd-master"], "args": args}]}}}})
    world.apply({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "nfd-worker", "namespace": ns},
                 "spec": {"selector": {"matchLabels": {"app": "nfd-worker"}},
                          "template": {"metadata": {"labels": {"app": "nfd-worker"}}, "spec": {
                              "containers": [{"name": "nfd-worker", "image": NFD_IMAGE, "command": ["nfd-worker"],
                                              "securityContext": {"privileged": True}}],
                              "volumes": [{"name": "config", "configMap": {"name": "nfd-worker-conf"}}]}}}})
    if wait:
        world.wait_for(lambda: any(k.startswith("feature.node.kubernetes.io/kernel-version")
                                   for k in world.node_labels(world.scenario.nodes[-1].name)), what="NFD labels")


def deploy_kmm(world, ns="kmm-operator-system"):
    install_crds(world, ["kmm"])
    namespace(world, ns)
    world.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "kmm-operator-controller", "namespace": ns},
                 "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "kmm"}},
                          "template": {"metadata": {"labels": {"app": "kmm"}},
                                       "spec": {"containers": [{"name": "manager", "image": KMM_IMAGE}]}}}})
    world.wait_for(lambda: (world.get("apps/v1", "Deployment", "kmm-operator-controller", ns).get("status") or {})
                   .get("availableReplicas"), what="KMM operator")


def deploy_multus(world, ns="multus-system"):
    """Multus as the nodes' CNI with the macvlan/ipvlan/host-device plugins and whereabouts, rolled out."""
    install_crds(world, ["multus"])
    namespace(world, ns)
    for name, image in MULTUS_IMAGES.items():
        world.apply({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": ns},
                     "spec": {"selector": {"matchLabels": {"app": name}},
                              "template": {"metadata": {"labels": {"app": name}},
                                           "spec": {"hostNetwork": True, "tolerations": [{"operator": "Exists"}],
                                                    "containers": [{"name": name, "image": image,
                                                                    "securityContext": {"privileged": True}}]}}}})

    def rolled_out(name):
        status = (world.get("apps/v1", "DaemonSet", name, ns) or {}).get("status") or {}
        return status.get("desiredNumberScheduled") and status.get("numberReady") == status["desiredNumberScheduled"]

    for name in MULTUS_IMAGES:
        world.wait_for(lambda n=name: rolled_out(n), what="DaemonSet %s" % name)

"""CustomResourceDefinitions a scenario can mark as already installed.

They are deliberately small: the group, names, scope, subresources and the
few required fields that matter to clients. Scenarios name them with the
shortcuts below (`installed.crds: [monitoring, gpu-operator]`).
"""

PRESERVE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def crd(group, kind, plural, version, scope="Namespaced", status=True, short_names=(), spec_schema=None,
        required_spec=False):
    props = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
             "spec": spec_schema or PRESERVE}
    if status:
        props["status"] = PRESERVE
    schema = {"type": "object", "properties": props}
    if required_spec:
        schema["required"] = ["spec"]
    entry = {"name": version, "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
    if status:
        entry["subresources"] = {"status": {}}
    names = {"kind": kind, "listKind": kind + "List", "plural": plural, "singular": kind.lower()}
    if short_names:
        names["shortNames"] = list(short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "%s.%s" % (plural, group)},
        "spec": {"group": group, "names": names, "scope": scope, "versions": [entry]},
    }


NFD_RULE_SPEC = {
    "type": "object",
    "required": ["rules"],
    "properties": {
        "rules": {
            "type": "array",
            "items": {"type": "object", "required": ["name"], "x-kubernetes-preserve-unknown-fields": True,
                      "properties": {"name": {"type": "string"}}},
        },
    },
}
KMM_MODULE_SPEC = {
    "type": "object",
    "required": ["selector"],
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {"selector": {"type": "object", "additionalProperties": {"type": "string"}}},
}

SETS = {
    "cert-manager": [
        crd("cert-manager.io", "Certificate", "certificates", "v1", short_names=("cert", "certs")),
        crd("cert-manager.io", "Issuer", "issuers", "v1"),
        crd("cert-manager.io", "ClusterIssuer", "clusterissuers", "v1", scope="Cluster"),
    ],
    "monitoring": [
        crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", "v1", status=False, short_names=("smon",)),
        crd("monitoring.coreos.com", "PodMonitor", "podmonitors", "v1", status=False, short_names=("pmon",)),
        crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules", "v1", status=False,
            short_names=("promrule",)),
    ],
    "gpu-operator": [
        crd("nvidia.com", "ClusterPolicy", "clusterpolicies", "v1", scope="Cluster"),
    ],
    "network-operator": [
        crd("mellanox.com", "NicClusterPolicy", "nicclusterpolicies", "v1alpha1", scope="Cluster"),
    ],
    # Multus and whereabouts (the pod_networks role installs its own copies of these)
    "multus": [
        crd("k8s.cni.cncf.io", "NetworkAttachmentDefinition", "network-attachment-definitions", "v1", status=False,
            short_names=("net-attach-def",)),
        crd("whereabouts.cni.cncf.io", "IPPool", "ippools", "v1alpha1", status=False),
        crd("whereabouts.cni.cncf.io", "OverlappingRangeIPReservation", "overlappingrangeipreservations", "v1alpha1",
            status=False),
    ],
    "nfd-operator": [
        crd("nfd.kubernetes.io", "NodeFeatureDiscovery", "nodefeaturediscoveries", "v1"),
    ],
    "nfd": [
        crd("nfd.k8s-sigs.io", "NodeFeatureRule", "nodefeaturerules", "v1alpha1", scope="Cluster", status=False,
            short_names=("nfr",), spec_schema=NFD_RULE_SPEC, required_spec=True),
        crd("nfd.k8s-sigs.io", "NodeFeature", "nodefeatures", "v1alpha1", status=False),
        crd("nfd.k8s-sigs.io", "NodeFeatureGroup", "nodefeaturegroups", "v1alpha1", short_names=("nfg",)),
    ],
    "kmm": [
        crd("kmm.sigs.x-k8s.io", "Module", "modules", "v1beta1", spec_schema=KMM_MODULE_SPEC, required_spec=True),
        crd("kmm.sigs.x-k8s.io", "PreflightValidation", "preflightvalidations", "v1beta2", scope="Cluster"),
        crd("kmm.sigs.x-k8s.io", "NodeModulesConfig", "nodemodulesconfigs", "v1beta1", scope="Cluster"),
    ],
}


def expand(names):
    out = []
    for name in names:
        if isinstance(name, dict):
            out.append(name)
            continue
        if name not in SETS:
            raise ValueError("unknown CRD set %r; known: %s" % (name, ", ".join(sorted(SETS))))
        out.extend(SETS[name])
    return out

"""Loading scenario files (YAML) that describe a simulated cloud.

See testworld/openstack/README.md for the format. Everything has a default so
that a scenario only states what matters to its tests.
"""

import copy
import os

SCENARIO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")

TIMING_KEYS = (
    "server_build", "server_delete", "attach", "detach", "port_bind", "cluster_create", "cluster_visible",
    "cluster_update", "cluster_delete", "nodegroup_create", "nodegroup_update",
    "nodegroup_delete", "token_lifetime",
)

_TOP_LEVEL_OVERRIDES = ("kube_api_url", "kube_ca", "latency_ms", "magnum_release", "default_driver", "seed", "name")


def _yaml_load(text):
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


def resolve_path(scenario):
    """Accept a path, or a bare name of a file shipped in testworld/scenarios."""
    if os.path.exists(scenario):
        return scenario
    for candidate in (scenario, scenario + ".yml", scenario + ".yaml"):
        p = os.path.join(SCENARIO_DIR, candidate)
        if os.path.exists(p):
            return p
    raise FileNotFoundError("scenario %r not found (neither a path nor a file in %s)" % (scenario, SCENARIO_DIR))


def load(scenario=None, **overrides):
    if scenario is None:
        scenario = "default"
    if isinstance(scenario, dict):
        data = copy.deepcopy(scenario)
    else:
        path = resolve_path(os.fspath(scenario))
        with open(path, encoding="utf-8") as f:
            data = _yaml_load(f.read()) or {}
        data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return apply_overrides(data, **overrides)


def apply_overrides(data, **overrides):
    timings = dict(data.get("timings") or {})
    for key, value in list(overrides.items()):
        if value is None:
            continue
        if key == "timings":
            timings.update(value)
        elif key in TIMING_KEYS:
            timings[key] = value
        elif key in _TOP_LEVEL_OVERRIDES:
            data[key] = value
        else:
            raise TypeError("unknown scenario override %r (timings: %s; top level: %s)"
                            % (key, ", ".join(TIMING_KEYS), ", ".join(_TOP_LEVEL_OVERRIDES)))
    data["timings"] = timings
    data.setdefault("seed", 0)
    data.setdefault("region", "RegionOne")
    data.setdefault("magnum_release", "22")
    data.setdefault("default_driver", "heat")
    data["magnum_release"] = str(data["magnum_release"])
    return data

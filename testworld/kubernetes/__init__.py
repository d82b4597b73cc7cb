"""The Kubernetes test world: kmock's API emulator with fixes, plus simulated
controllers (nodes and their hardware, NFD, KMM, device plugins, workloads).

    from testworld.kubernetes import KubeWorld
    world = KubeWorld.start(scenario="testworld/scenarios/kube-accelerators.yml", state_dir=tmp, port=0)
"""

from testworld.kubernetes.world import CONTEXT, KubeWorld

__all__ = ["CONTEXT", "KubeWorld"]

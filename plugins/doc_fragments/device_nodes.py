# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # The options of DEVICE_NODES_ARG_SPEC in module_utils/kube_deviceplugin.py, which every module that runs a
    # DaemonSet on the nodes with a device has (device_plugin, gpu_runtime, gpu_monitoring). Where the option
    # means something more precise in a module (which pods, which default nodes), the module documents only
    # its description; type, elements, default and suboptions stay here.
    DOCUMENTATION = r'''
options:
  namespace:
    description: Namespace of the DaemonSets. Their pods use host paths, so it needs privileged pod security.
    type: str
    default: kube-system
  node_selector:
    description: Node labels selecting the nodes the pods run on. The ready labels of I(driver_modules) are added to it.
    type: dict
  driver_modules:
    description:
      - KMM Modules that load the driver of the device. Their ready label
        C(kmm.node.kubernetes.io/<namespace>.<name>.ready) is added to the node selector, so the pods start only on
        nodes where KMM reports the driver loaded (and leave a node when KMM unloads it) instead of starting before
        it and finding no device.
      - Every listed Module must be loaded on a node for the pods to run there.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the Module.
        type: str
        required: true
      namespace:
        description: Namespace of the Module; defaults to I(namespace).
        type: str
  expected_nodes:
    description: Nodes the pods must run on. Defaults to every node they can run on (node selector and taints).
    type: list
    elements: str
  tolerations:
    description: Extra tolerations of the pods.
    type: list
    elements: dict
  image_pull_secrets:
    description: Names of image pull secrets in I(namespace).
    type: list
    elements: str
'''

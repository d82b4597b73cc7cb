# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # The options of COMMON_ARG_SPEC in module_utils/kube.py, which every Kubernetes module of the
    # collection has besides kubernetes.core's connection options (kubernetes.core.k8s_auth_options).
    # A module that gives an option a more precise meaning documents only its description; the
    # type, choices and default stay here. Every module over CoeKubeModule applies through the
    # API server's dry run in check mode and returns the diff of what it applied, hence one
    # statement of its attributes (what they mean is in hpcops.coe.attributes).
    DOCUMENTATION = r'''
options:
  state:
    description:
      - V(present) creates the objects the module manages or brings them to the given settings; V(absent) deletes
        them.
    type: str
    choices: [present, absent]
    default: present
  field_manager:
    description:
      - Field manager name for server-side apply. The fields written under it belong to this module, so a rerun
        changes only those and leaves alone what controllers and other tools write.
    type: str
    default: hpcops.coe
  force_conflicts:
    description: Take over fields another field manager owns instead of failing with a conflict.
    type: bool
    default: false
  wait:
    description: Wait until what the module applied has taken effect on the nodes (each module says what it waits for).
    type: bool
    default: true
  wait_timeout:
    description: How many seconds to wait.
    type: int
    default: 300
  wait_sleep:
    description: Seconds between two checks while waiting.
    type: float
    default: 2.0
attributes:
  check_mode:
    support: full
    details: The API server validates every object in a dry run and returns what it would store; nothing is waited for.
  diff_mode:
    support: full
  platform:
    platforms: all
requirements:
  - python >= 3.9
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
'''

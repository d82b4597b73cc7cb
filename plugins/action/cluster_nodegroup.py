# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live progress for hpcops.coe.cluster_nodegroup (see the cluster action)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.hpcops.coe.plugins.action.cluster import ActionModule as ProgressAction


class ActionModule(ProgressAction):
    pass

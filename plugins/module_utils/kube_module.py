# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one shape of the collection's Kubernetes modules.

CoeKubeModule is to the Kubernetes modules what CoeOpenStackModule is to the
OpenStack ones. A module subclasses it, declares its own options, lists what is
wrong with the parameters before anything is asked of the cluster, and writes
run(). The base owns the rest: the shared options, the client, the KubeError to
failure translation, the changed flag and the diff of everything applied,
warnings, and what a wait ended in.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
from collections import namedtuple

from ansible_collections.hpcops.coe.plugins.module_utils.kube import (
    COMMON_ARG_SPEC, Kube, KubeError, new_module, obj_ref)
from ansible_collections.hpcops.coe.plugins.module_utils.kube import argument_spec as full_argument_spec

# How a wait ended: done, or stopped by is_failed (failed), or neither by the deadline.
WaitOutcome = namedtuple('WaitOutcome', ['done', 'failed', 'value', 'waited'])


class CoeKubeModule(object):
    """Base of the Kubernetes modules.

    Subclasses set `argument_spec` (their own options; COMMON_ARG_SPEC and
    kubernetes.core's connection options are added) and `module_kwargs`, may
    override problems(), and implement run(), which ends in exit() or fail().
    """

    argument_spec = {}
    module_kwargs = {}
    # The options of COMMON_ARG_SPEC the module has: all of them, unless some mean nothing for what it does
    # (a module that runs checks and keeps no desired state has no `state`).
    common_options = tuple(COMMON_ARG_SPEC)
    # Whether the result carries the diff of what was applied (the module's diff_mode support).
    returns_diff = True
    # How the failure for invalid parameters says that nothing was done.
    nothing_done = 'nothing was applied'

    def __init__(self):
        spec = full_argument_spec(**copy.deepcopy(self.argument_spec))
        for name in set(COMMON_ARG_SPEC) - set(self.common_options) - set(self.argument_spec):
            del spec[name]
        self.module = new_module(spec, **self.module_kwargs)
        self.params = self.module.params
        self.kube = None
        self.changed = False
        self.objects = []  # what apply() wrote, as 'Kind namespace/name'
        # Diff of every applied object that changed, keyed by object; a module whose diff is
        # one object (or another layout its RETURN documents) sets `diff` instead.
        self.diffs = {'before': {}, 'after': {}}
        self.diff = None

    @property
    def check_mode(self):
        return self.module.check_mode

    def problems(self):
        """What is wrong with the parameters, found without asking the cluster."""
        return []

    def run(self):
        raise NotImplementedError

    def __call__(self):
        problems = self.problems()
        if problems:
            self.module.fail_json(msg='Invalid parameters, %s: %s.' % (self.nothing_done, '; '.join(problems)))
        self.kube = Kube(self.module)
        try:
            self.run()
        except KubeError as exc:
            self.fail(str(exc))

    # ---------------------------------------------------------------- changes

    def apply(self, definition):
        """Server-side apply (a dry run in check mode), recorded in changed, objects and diffs."""
        result = self.kube.apply(definition)
        ref = obj_ref(definition)
        self.objects.append(ref)
        if result['changed']:
            self.changed = True
            self.diffs['before'][ref] = result['diff']['before']
            self.diffs['after'][ref] = result['diff']['after']
        return result

    def delete(self, api_version, kind, name, namespace=None):
        """Delete if present; recorded in changed and objects."""
        gone = self.kube.delete(api_version, kind, name, namespace)
        if gone:
            self.changed = True
            self.objects.append('%s %s' % (kind, '%s/%s' % (namespace, name) if namespace else name))
        return gone

    def warn(self, message):
        self.kube.warnings.append(message)

    # ---------------------------------------------------------------- waits

    def wait(self, what, fetch, is_done, is_failed=None, timeout=None):
        """Poll fetch() until is_done; a WaitOutcome says how it ended and with what value."""
        done, value, waited = self.kube.wait(what, fetch, is_done, timeout=timeout, is_failed=is_failed)
        failed = not done and is_failed is not None and value is not None and bool(is_failed(value))
        return WaitOutcome(done, failed, value, waited)

    # ---------------------------------------------------------------- results

    def exit(self, **result):
        """End the run; changed and (in diff mode) diff come from what was applied unless given."""
        result.setdefault('changed', self.changed)
        if self.module._diff and self.returns_diff:
            result.setdefault('diff', self.diff if self.diff is not None else self.diffs)
        self.kube.exit(**result)

    def fail(self, msg, **result):
        result.setdefault('changed', self.changed)
        self.kube.fail(msg, **result)

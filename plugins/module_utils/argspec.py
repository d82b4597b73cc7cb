# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument validation messages that name the option.

ansible-core reports only the first of its validation errors. When an option with
suboptions gets a value that is not a mapping (``rules: gpu`` instead of a list of
rules), the first error comes from its scan for no_log values and reads
"dictionary requested, could not parse JSON or key=value": it names neither the
option nor what would be valid, while the errors after it do. Every module of this
collection calls ``refuse_unclear_input`` before it builds its AnsibleModule, and
fails with the errors that name their option in that one case.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import NoLogError

_RULES = ('mutually_exclusive', 'required_together', 'required_one_of', 'required_if', 'required_by')


def _has_secret(spec):
    for option in (spec or {}).values():
        if option.get('no_log') or _has_secret(option.get('options')):
            return True
    return False


def refuse_unclear_input(argument_spec, **module_kwargs):
    """Fail now, naming the option, where ansible-core's first error would not; else return."""
    # Looked up at call time: tools that inspect argument specs (ansible-test's
    # validate-modules) replace basic._load_params with one that returns nothing.
    params = basic._load_params()  # pylint: disable=protected-access
    if not isinstance(params, dict):
        return
    params = copy.deepcopy(params)
    rules = dict((k, v) for k, v in module_kwargs.items() if k in _RULES)
    result = ArgumentSpecValidator(argument_spec, **rules).validate(params)
    errors = list(result.errors)
    named = [str(e) for e in errors if not isinstance(e, NoLogError)]
    if not errors or not isinstance(errors[0], NoLogError) or not named:
        return
    # Validation failed, so no option can be trusted to have its declared shape: accept them
    # all as they are, and hide every option that holds a secret somewhere inside (every
    # value of such an option becomes a no_log value, the secrets among them included).
    loose = dict((name, {'type': 'raw', 'aliases': option.get('aliases') or [],
                         'no_log': bool(option.get('no_log') or _has_secret(option.get('options')))})
                 for name, option in argument_spec.items())
    module = AnsibleModule(argument_spec=loose, supports_check_mode=True)
    module.fail_json(msg='%s. Nothing was changed.' % '; '.join(dict.fromkeys(named)))

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""refuse_unclear_input: validation errors that name the option, and secrets kept out of them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpcops.coe.plugins.module_utils.argspec import refuse_unclear_input

SPEC = {
    'rules': {'type': 'list', 'elements': 'dict', 'options': {'name': {'type': 'str', 'required': True}}},
    'pull_secret': {'type': 'dict', 'options': {'username': {'type': 'str'},
                                                'password': {'type': 'str', 'no_log': True}}},
    'token': {'type': 'str', 'no_log': True},
    'count': {'type': 'int'},
}


def outcome(args, capsys):
    """(exit code, JSON result) of refuse_unclear_input, or (None, None) when it let the input pass."""
    with patch_module_args(args):
        try:
            refuse_unclear_input(SPEC)
        except SystemExit as done:
            return done.code, json.loads(capsys.readouterr().out)
    return None, None


def test_a_non_mapping_for_a_list_of_dicts_names_the_option(capsys):
    code, result = outcome({'rules': 'gpu'}, capsys)
    assert code == 1 and result['failed']
    assert "'rules'" in result['msg'] and 'dict' in result['msg']
    assert not result['msg'].startswith('dictionary requested')


def test_a_non_mapping_for_a_secret_holding_dict_is_masked(capsys):
    code, result = outcome({'pull_secret': 's3cr3t-value', 'token': 'tok-123', 'count': 'many'}, capsys)
    assert code == 1 and "'pull_secret'" in result['msg'] and "'count'" in result['msg']
    text = json.dumps(result)
    assert 's3cr3t-value' not in text and 'tok-123' not in text


@pytest.mark.parametrize('args', [
    {'rules': [{'name': 'gpu'}], 'count': 2},   # valid
    {'count': 'many'},                           # ansible-core's own message already names the option
    {'rules': [{}]},                             # a missing suboption: named by ansible-core too
])
def test_other_input_is_left_to_ansible_core(args, capsys):
    assert outcome(args, capsys) == (None, None)

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures the unit tests of several plugin types share (the fakes themselves are in fakes.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time
import types

import pytest

from ansible_collections.hpcops.coe.plugins.module_utils import retries


@pytest.fixture
def no_retry_waits(monkeypatch):
    """Reads retry transient errors with real sleeps; the errors the tests inject need no waiting.
    A test file that injects them marks itself with pytest.mark.usefixtures('no_retry_waits')."""
    monkeypatch.setattr(retries, 'time', types.SimpleNamespace(
        sleep=lambda seconds: None, monotonic=time.monotonic, time=time.time))

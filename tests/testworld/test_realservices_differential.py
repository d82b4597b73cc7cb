"""The differential check: the same requests to the simulated and to the real Keystone and Heat.

Runs on the session's real-services tier (conftest.py ``tier``, shared with
test_realservices.py) and a fresh simulator on the same scenario; fails on any difference in
status, Location or body shape that differential-allowlist.yml does not name with its reason,
and on allowlist entries that no longer match anything.
"""

import pytest

from testworld.realservices import is_installed
from testworld.realservices import differential

pytestmark = [pytest.mark.skipif(not is_installed(), reason='real services not installed: run testworld/realservices/setup.sh'),
              pytest.mark.realservices]


def test_simulator_answers_as_the_real_keystone_and_heat(tier, sim_cloud_factory):
    cloud = sim_cloud_factory()
    rows, stale, counts = differential.differential(differential.Side('sim', cloud.clouds_yaml, cloud.cloud_name),
                                                    differential.Side('real', tier['clouds_yaml'], tier['cloud']))
    report = differential.table(rows, stale)
    print(report)
    assert counts['compared'] >= 80
    assert counts['unexplained'] == 0, report
    assert not stale, 'allowlist entries that matched no difference: %s' % stale

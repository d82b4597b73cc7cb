# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # What the attributes mean; each module states its own support (full, partial or none)
    # for check_mode and diff_mode, and the platforms it runs on.
    DOCUMENTATION = r'''
attributes:
  check_mode:
    description:
      - Runs in check mode (C(--check)), reporting what it would change without changing it.
  diff_mode:
    description:
      - Returns what it changed, or in check mode would change, as before and after, when run with C(--diff).
  platform:
    description: The systems the module can run on.
    support: N/A
'''

    # Modules that only read: extend this as well (hpcops.coe.attributes.info_module).
    INFO_MODULE = r'''
attributes:
  check_mode:
    support: full
    details: Read only; check mode reads the same and changes nothing either.
  diff_mode:
    support: none
    details: Read only; there is no change to show.
'''

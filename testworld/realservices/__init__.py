# -*- coding: utf-8 -*-
"""Real Keystone and real Heat (from PyPI) run beside the simulated cloud.

``setup.sh`` installs them; ``python -m testworld.realservices start|stop|status`` runs
them (see README.md); ``bridge`` connects the simulator to them.
"""

from testworld.realservices.controller import CLOUD, RealServices, RealServicesError, is_installed, summary

__all__ = ['CLOUD', 'RealServices', 'RealServicesError', 'is_installed', 'summary']

"""Simulated OpenStack cloud (Keystone, Nova, Neutron, Glance, Magnum, Heat).

``SimCloud`` is imported lazily so that ``python -m testworld.openstack`` and
the pytest plugin do not pay for modules they never use.
"""

__all__ = ["SimCloud"]  # pylint: disable=undefined-all-variable  # provided by __getattr__


def __getattr__(name):
    if name == "SimCloud":
        from .control import SimCloud

        return SimCloud
    raise AttributeError(name)

"""Drivers the real-services tier plugs into the real Neutron and the real Magnum.

``ml2.AgentlessMechanismDriver`` binds ports with no agent running; ``magnum_capi.CapiTestDriver``
runs clusters as the Cluster-API drivers do, with machines that are servers of the real Nova.
Imported only inside those services' processes (their virtualenv), never by the test tools.
"""

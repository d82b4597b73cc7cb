"""An ML2 mechanism driver that binds ports without agents.

The tier runs no Open vSwitch, DHCP or L3 agent, so no agent-based driver can bind a port and
Nova would see every port fail with ``binding_failed``. This driver binds the first segment it
is offered, as the Open vSwitch driver would for a VM port (vif_type ``ovs``) and as the bare-metal
driver would for an Ironic port (vnic_type ``baremetal``, vif_type ``other``), and marks the port
ACTIVE: the bound states a production cloud reports once its agents have wired the port.
"""

from neutron_lib.api.definitions import portbindings
from neutron_lib import constants
from neutron_lib.plugins.ml2 import api

VIF_TYPE_OVS = 'ovs'


class AgentlessMechanismDriver(api.MechanismDriver):

    supported_vnic_types = (portbindings.VNIC_NORMAL, portbindings.VNIC_BAREMETAL)

    def initialize(self):
        pass

    @property
    def connectivity(self):
        # Ports with no fixed IP (networks without a subnet) bind too, as with OVS.
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        vnic_type = context.current.get(portbindings.VNIC_TYPE, portbindings.VNIC_NORMAL)
        if vnic_type not in self.supported_vnic_types:
            return
        for segment in context.segments_to_bind:
            if vnic_type == portbindings.VNIC_BAREMETAL:
                vif_type, details = portbindings.VIF_TYPE_OTHER, {}
            else:
                vif_type = VIF_TYPE_OVS
                details = {portbindings.CAP_PORT_FILTER: True, portbindings.OVS_HYBRID_PLUG: False,
                           portbindings.VIF_DETAILS_CONNECTIVITY: self.connectivity}
            context.set_binding(segment[api.ID], vif_type, details, status=constants.PORT_STATUS_ACTIVE)
            return

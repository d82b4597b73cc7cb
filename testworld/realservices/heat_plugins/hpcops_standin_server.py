# -*- coding: utf-8 -*-
"""A Heat resource that stands in for an OS::Nova::Server the simulated Nova already made.

heat-engine loads this file through ``plugin_dirs`` (see controller.py). Stacks made by
``testworld.realservices.bridge.HeatStackBackend`` map ``OS::Nova::Server`` to
``HPCOps::Testworld::Server`` in their own environment, so a resource listing shows the
type ``OS::Nova::Server`` and, as with a real server, the Nova server id as
``physical_resource_id``. Nothing is created or deleted in Nova: the simulator owns the
server, this resource only records it.

It runs inside heat-engine (the services virtualenv), never in the test virtualenv.
"""

from heat.engine import attributes
from heat.engine import properties
from heat.engine import resource
from heat.engine import support


class StandInServer(resource.Resource):
    """Records an existing server: its id becomes this resource's physical id."""

    support_status = support.SupportStatus(version='1.0.0')

    PROPERTIES = (SERVER_ID, NAME, NETWORKS, FIRST_ADDRESS) = ('server_id', 'name', 'networks', 'first_address')

    properties_schema = {
        SERVER_ID: properties.Schema(properties.Schema.STRING, 'Id of the server in (simulated) Nova.', required=True),
        NAME: properties.Schema(properties.Schema.STRING, 'Server name.', update_allowed=True),
        NETWORKS: properties.Schema(properties.Schema.MAP, 'Addresses by network name, as the server attribute "networks".',
                                    default={}, update_allowed=True),
        FIRST_ADDRESS: properties.Schema(properties.Schema.STRING, 'The server\'s first address.', default='', update_allowed=True),
    }

    attributes_schema = {
        'name': attributes.Schema('Server name.', type=attributes.Schema.STRING),
        'networks': attributes.Schema('Addresses by network name.', type=attributes.Schema.MAP),
        'first_address': attributes.Schema('The first address.', type=attributes.Schema.STRING),
    }

    def handle_create(self):
        self.resource_id_set(self.properties[self.SERVER_ID])

    def handle_update(self, json_snippet, tmpl_diff, prop_diff):
        # Only the recorded fields change; a new server_id means a new server (replacement).
        return None

    def handle_delete(self):
        # The simulator deletes its servers itself.
        return None

    def get_reference_id(self):
        return self.resource_id or self.physical_resource_name()

    def _resolve_attribute(self, name):
        if name == 'name':
            return self.properties[self.NAME]
        if name == 'networks':
            return self.properties[self.NETWORKS]
        if name == 'first_address':
            return self.properties[self.FIRST_ADDRESS]
        return None


def resource_mapping():
    return {'HPCOps::Testworld::Server': StandInServer}

"""Horizon 27 lists availability zones through openstacksdk, whose zones
carry `name`; magnum-ui 19's Create Cluster form reads `zoneName` (the
novaclient field of older Horizons), so its zone stays undefined and Submit
stays disabled. This app, loaded by scripts/horizon.sh only, adds
`zoneName` (a copy of `name`) to each zone of Horizon's
/api/nova/availzones/ answer; nothing else changes."""

from django.apps import AppConfig


class _Zone:
    def __init__(self, zone):
        self._zone = zone

    def __getattr__(self, attr):
        return getattr(self._zone, attr)

    def to_dict(self):
        d = self._zone.to_dict()
        d.setdefault("zoneName", d.get("name"))
        return d


class ZoneName(AppConfig):
    name = "magnum_rs_zone_name"
    label = "magnum_rs_zone_name"

    def ready(self):
        from openstack_dashboard.api import nova

        listed = nova.availability_zone_list

        def availability_zone_list(request, detailed=False):
            return [_Zone(z) for z in listed(request, detailed)]

        nova.availability_zone_list = availability_zone_list

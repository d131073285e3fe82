# Enabled by scripts/horizon.sh: adds the app that gives each availability
# zone Horizon returns the `zoneName` magnum-ui 19 reads (see
# magnum_rs_zone_name/apps.py). A feature, not a panel: Horizon skips enabled
# files that name none of DASHBOARD, PANEL, PANEL_GROUP or FEATURE.
FEATURE = True
ADD_INSTALLED_APPS = ["magnum_rs_zone_name"]

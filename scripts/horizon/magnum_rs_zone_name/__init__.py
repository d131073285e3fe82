"""See apps.py: adds `zoneName` to the availability zones Horizon lists,
for magnum-ui 19's Create Cluster form."""

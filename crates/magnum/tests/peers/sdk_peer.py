"""openstacksdk (PyPI, unchanged) driving our container-infra API.

  ENDPOINT FAKE_TEMPLATE   with no Keystone (auth_type none, the endpoint
                           given as container_infra_endpoint_override):
                           cluster templates through the proxy and the cloud
                           layer (create, list, get, find, update, delete),
                           then a cluster on FAKE_TEMPLATE (a template the
                           caller made with the fake driver, which the SDK
                           has no field for): create, wait, list, get, find,
                           update, resize, delete, wait for it to go; and
                           the service list. Prints one JSON document of
                           what it saw; the caller checks it.
"""
import json
import sys
import time

import openstack

endpoint, fake_template = sys.argv[1:3]
conn = openstack.connect(
    auth_type='none',
    container_infra_endpoint_override=endpoint,
)
coe = conn.container_infrastructure_management
seen = {}


def plain(resource):
    return resource.to_dict(computed=False)


# Templates, through the proxy.
created = coe.create_cluster_template(
    name='sdk-t', coe='kubernetes', image_id='fcos',
    external_network_id='public', keypair_id='kp', flavor_id='m1.small',
    master_flavor_id='m1.medium', network_driver='calico',
    docker_volume_size=5, labels={'kube_tag': 'v1.30'},
    is_floating_ip_enabled=False, is_master_lb_enabled=False,
    is_public=False, is_tls_disabled=False, server_type='vm')
seen['template_created'] = plain(created)
seen['template_list'] = [plain(t) for t in coe.cluster_templates()]
seen['template_get'] = plain(coe.get_cluster_template(created.id))
seen['template_find'] = plain(coe.find_cluster_template('sdk-t'))
# An update is a JSON patch of what changed since the resource was read
# (one made from a bare id would patch its id too).
seen['template_updated'] = plain(coe.update_cluster_template(
    coe.get_cluster_template(created.id), docker_volume_size=10))
# The cloud layer's template calls.
second = conn.create_cluster_template(
    'sdk-t2', image_id='fcos', keypair_id='kp', coe='kubernetes',
    external_network_id='public')
seen['cloud_template_created'] = plain(second)
seen['cloud_template_list'] = sorted(
    t.name for t in conn.list_cluster_templates())
seen['cloud_template_get'] = plain(conn.get_cluster_template('sdk-t2'))
seen['cloud_template_updated'] = plain(
    conn.update_cluster_template('sdk-t2', docker_volume_size=7))
seen['cloud_template_deleted'] = conn.delete_cluster_template('sdk-t2')
coe.delete_cluster_template(created.id)
seen['template_missing'] = coe.find_cluster_template(
    'sdk-t', ignore_missing=True) is None
seen['template_names_left'] = sorted(
    t.name for t in coe.cluster_templates())

# A cluster on the caller's fake-driver template.
template = coe.find_cluster_template(fake_template, ignore_missing=False)
cluster = coe.create_cluster(
    name='sdk-c', cluster_template_id=template.uuid, node_count=2,
    master_count=1, create_timeout=30, keypair='kp')
seen['cluster_created'] = plain(cluster)
cluster = coe.wait_for_status(cluster, 'CREATE_COMPLETE',
                              failures=['CREATE_FAILED'], interval=1,
                              wait=90)
seen['cluster_complete'] = plain(cluster)
seen['cluster_list'] = [plain(c) for c in coe.clusters()]
seen['cluster_get'] = plain(coe.get_cluster(cluster.id))
seen['cluster_find'] = plain(coe.find_cluster('sdk-c'))
coe.update_cluster(cluster, node_count=3)
cluster = coe.wait_for_status(coe.get_cluster(cluster.id), 'UPDATE_COMPLETE',
                              failures=['UPDATE_FAILED'], interval=1,
                              wait=90)
seen['cluster_updated'] = plain(cluster)
# Resize is an API of microversion 1.7 on, and the SDK sends no
# microversion unless told: refused as upstream refuses it, then asked
# again at 1.10.
try:
    cluster.resize(coe, node_count=1)
    seen['resize_at_1_1'] = 'accepted'
except openstack.exceptions.HttpException as e:
    seen['resize_at_1_1'] = [e.status_code, e.details]
coe110 = openstack.connect(
    auth_type='none',
    container_infra_endpoint_override=endpoint,
    container_infra_api_version='1.10',
).container_infrastructure_management
try:
    seen['resize'] = cluster.resize(coe110, node_count=1)
except TypeError as e:
    # openstacksdk 4.22.0 reads the 202's uuid as response['uuid'] of a
    # requests.Response, whatever the server said; the node count below
    # shows whether the resize was taken.
    seen['resize'] = 'TypeError: %s' % e
for _ in range(90):
    cluster = coe.get_cluster(cluster.id)
    if cluster.status == 'UPDATE_COMPLETE' and cluster.node_count == 1:
        break
    time.sleep(1)
seen['cluster_resized'] = plain(cluster)
seen['cloud_cluster_list'] = [c.name for c in conn.list_coe_clusters()]
seen['cloud_cluster_get'] = plain(conn.get_coe_cluster('sdk-c'))
seen['services'] = [plain(s) for s in coe.services()]
coe.delete_cluster(cluster)
coe.wait_for_delete(cluster, interval=1, wait=90)
seen['cluster_gone'] = coe.find_cluster('sdk-c', ignore_missing=True) is None
seen['cluster_list_after'] = [plain(c) for c in coe.clusters()]
print(json.dumps(seen, default=str))

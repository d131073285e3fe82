"""Upstream Magnum's conductor API client driving a conductor.

  URL TOPIC TEMPLATE PROJECT  create a cluster from TEMPLATE (a uuid) with
                              magnum.conductor.api.API.cluster_create (a
                              call), print the object the conductor returns,
                              then ask for its deletion with
                              cluster_delete_async (a cast). JSON lines.
  URL TOPIC - PROJECT certs UUID CSR-FILE
                              get_ca_certificate and sign_certificate (calls,
                              the CSR as an objects.Certificate) for cluster
                              UUID; one JSON line with both PEMs.
"""
import json
import sys
import tempfile
import uuid

import magnum.conf
from magnum.common import context
from magnum.common import rpc

url, topic, template, project = sys.argv[1:5]
CONF = magnum.conf.CONF
with tempfile.NamedTemporaryFile('w', suffix='.conf', delete=False) as f:
    f.write('[DEFAULT]\ntransport_url = %s\n' % url)
CONF(['--config-file', f.name], project='magnum', default_config_files=[])
rpc.set_defaults(control_exchange='magnum')
rpc.init(CONF)

from magnum.conductor import api  # noqa: E402
from magnum import objects  # noqa: E402

ctx = context.RequestContext(user_id='upstream-user', project_id=project,
                             is_admin=False, roles=['member'])
cluster = objects.Cluster(ctx)
cluster.uuid = str(uuid.uuid4())
cluster.name = 'from-upstream'
cluster.cluster_template_id = template
cluster.project_id = project
cluster.user_id = 'upstream-user'
cluster.keypair = 'kp'
cluster.labels = {'fake_seconds': '0'}
cluster.create_timeout = 60
cluster.master_flavor_id = 'm1.medium'
cluster.flavor_id = 'm1.small'
cluster.floating_ip_enabled = True
cluster.master_lb_enabled = False
client = api.API(ctx, topic=topic)
if len(sys.argv) > 5 and sys.argv[5] == 'certs':
    cluster.uuid = sys.argv[6]
    ca = client.get_ca_certificate(cluster)
    csr = objects.Certificate(ctx, cluster_uuid=cluster.uuid,
                              project_id=project, user_id='upstream-user',
                              csr=open(sys.argv[7]).read())
    signed = client.sign_certificate(cluster, csr)
    etcd = client.get_ca_certificate(cluster, ca_cert_type='etcd')
    print(json.dumps({'ca': ca.pem, 'ca_type': type(ca).__name__,
                      'ca_cluster': ca.cluster_uuid, 'signed': signed.pem,
                      'etcd': etcd.pem}), flush=True)
    sys.exit(0)
out = client.cluster_create(cluster, 1, 2, 60)
print(json.dumps({'uuid': out.uuid, 'status': out.status,
                  'stack_id': out.stack_id, 'type': type(out).__name__}),
      flush=True)
if len(sys.argv) > 5 and sys.argv[5] == 'delete':
    client.cluster_delete_async(out.uuid)
    print(json.dumps({'delete': 'sent'}), flush=True)

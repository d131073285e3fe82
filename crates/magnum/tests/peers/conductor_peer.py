"""Upstream Magnum's own conductor clients against a conductor.

  URL TOPIC SERVER   ping it with magnum.conductor.api.ListenerAPI, then
                     try an operation with magnum.conductor.api.API; print
                     the outcomes as JSON lines.
"""
import json
import sys
import tempfile

import magnum.conf
from magnum.common import context
from magnum.common import rpc

url, topic, server = sys.argv[1:4]
CONF = magnum.conf.CONF
# transport_url is registered when the transport is made: give it in a file.
with tempfile.NamedTemporaryFile('w', suffix='.conf', delete=False) as f:
    f.write('[DEFAULT]\ntransport_url = %s\n' % url)
CONF(['--config-file', f.name], project='magnum', default_config_files=[])
rpc.set_defaults(control_exchange='magnum')
rpc.init(CONF)

from magnum.conductor import api  # noqa: E402  (needs the RPC setup above)

ctx = context.make_admin_context()
listener = api.ListenerAPI(ctx, topic=topic, server=server, timeout=20)
print(json.dumps({'ping': listener.ping_conductor()}), flush=True)
try:
    api.API(ctx, topic=topic).cluster_delete('0c6c8f5e-0000-4000-8000-000000000000')
    print(json.dumps({'delete': 'returned'}), flush=True)
except Exception as e:
    print(json.dumps({'delete': type(e).__name__, 'text': str(e)[:300]}), flush=True)

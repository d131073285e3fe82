"""oslo.messaging as a peer of magnum-rpc's tests.

  server URL TOPIC SERVER   serve TOPIC as SERVER (endpoints echo, fail)
  client URL TOPIC          call echo and fail on TOPIC, print results as JSON lines
"""
import json
import sys
import time

from oslo_config import cfg
import oslo_messaging as om

mode, url, topic = sys.argv[1], sys.argv[2], sys.argv[3]
om.set_transport_defaults(control_exchange='magnum')
conf = cfg.CONF
conf([])
transport = om.get_rpc_transport(conf, url=url)

if mode == 'server':
    class Endpoint:
        def echo(self, ctxt, **kwargs):
            return {'context': ctxt, 'args': kwargs}

        def fail(self, ctxt, **kwargs):
            raise ValueError('boom from python')

    target = om.Target(topic=topic, server=sys.argv[4])
    server = om.get_rpc_server(transport, target, [Endpoint()], executor='threading')
    server.start()
    print('ready', flush=True)
    time.sleep(120)
else:
    client = om.get_rpc_client(transport, om.Target(topic=topic), timeout=20)
    result = client.call({'user_id': 'u1', 'project_id': 'p1'}, 'echo', x=1, name='n')
    print(json.dumps({'echo': result}), flush=True)
    try:
        client.call({}, 'fail')
        print(json.dumps({'fail': None}), flush=True)
    except Exception as e:
        print(json.dumps({'fail': type(e).__name__, 'text': str(e)}), flush=True)
    client.cast({}, 'echo', note='cast')
    transport.cleanup()

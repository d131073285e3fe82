"""Listen for notifications the way a consumer of upstream's would.

  URL EXCHANGE SECONDS   oslo.messaging notification listener on topic
                         'notifications' of EXCHANGE; prints "ready", then
                         one JSON line per notification for SECONDS seconds.
"""
import json
import sys
import threading
import time

from oslo_config import cfg
import oslo_messaging

url, exchange, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
conf = cfg.ConfigOpts()
conf([], project='listener')
transport = oslo_messaging.get_notification_transport(conf, url=url)
lock = threading.Lock()


class Endpoint(object):
    def _out(self, priority, ctxt, publisher_id, event_type, payload):
        with lock:
            print(json.dumps({'priority': priority, 'publisher_id': publisher_id,
                              'event_type': event_type, 'payload': payload,
                              'context_user': ctxt.get('user_id')}), flush=True)

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._out('INFO', ctxt, publisher_id, event_type, payload)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._out('ERROR', ctxt, publisher_id, event_type, payload)


targets = [oslo_messaging.Target(topic='notifications', exchange=exchange)]
listener = oslo_messaging.get_notification_listener(
    transport, targets, [Endpoint()], executor='threading')
listener.start()
print('ready', flush=True)
time.sleep(seconds)
listener.stop()
listener.wait()

#!/usr/bin/env bash
# A real Heat (PyPI `openstack-heat`) on 127.0.0.1 for the Heat driver tests
# and for trying clusters out: heat-api under gunicorn (threaded) and heat-engine (two workers),
# its database on the local MariaDB (SQLite locks up under Heat's
# concurrency), RPC over the local RabbitMQ, tokens validated by the Keystone of
# scripts/keystone.sh, registered there as `orchestration`.
#
#   scripts/heat.sh start [--port P]   start (no-op when both answer) and
#                                      register the endpoint
#   scripts/heat.sh venv               only build the virtualenv
#   scripts/heat.sh stop
#
# Stack users (wait condition handles that make them) live in Keystone's
# domain `magnum`, administered by magnum-domain-admin. Heat's own
# deferred operations authenticate as the `magnum` service user
# ([trustee]). The virtualenv is cached outside the clone, keyed by
# scripts/heat-requirements.txt; state lives in $MAGNUM_HEAT_DIR (default
# /tmp/magnum-heat-$UID).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/peer.sh"
state="${MAGNUM_HEAT_DIR:-/tmp/magnum-heat-$(id -u)}"
port=8004
cmd="${1:-}"
shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
url="http://127.0.0.1:$port"
db="${MAGNUM_HEAT_DB:-magnum_heat_$(id -u)}"
healthy() { curl -fs -o /dev/null --max-time 2 "$url/"; }
alive() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

case "$cmd" in
  start)
    peer_lock heat
    kport=$(keystone_port)
    peer_venv heat "$here/heat-requirements.txt"
    # Two engine workers and a threaded API: the tests run several
    # clusters at once, and one synchronous worker queues them past their
    # clients' timeouts. A Heat started with other settings is restarted.
    settings="engines=2 api=2x8 venv=$venv"
    if ! { alive api && alive engine && healthy && [ "$(cat "$state/settings" 2>/dev/null)" = "$settings" ]; }; then
      "$0" stop
      mkdir -p "$state"
      echo "$settings" > "$state/settings"
      cp "$venv/etc/heat/api-paste.ini" "$state/"
      cat > "$state/heat.conf" <<CONF
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:5672/
host = magnum-test-heat
num_engine_workers = 2
log_dir = $state
heat_metadata_server_url = $url
heat_waitcondition_server_url = $url/v1/waitcondition
stack_user_domain_name = magnum
stack_domain_admin = magnum-domain-admin
stack_domain_admin_password = domain-secret
region_name_for_services = RegionOne
[paste_deploy]
api_paste_config = $state/api-paste.ini
[database]
connection = mysql+pymysql://root@127.0.0.1:3306/$db?charset=utf8
[oslo_messaging_notifications]
driver = noop
[clients_keystone]
auth_uri = http://127.0.0.1:$kport
[ec2authtoken]
auth_uri = http://127.0.0.1:$kport/v3
[trustee]
auth_type = password
auth_url = http://127.0.0.1:$kport/v3
username = magnum
password = magnum-secret
user_domain_name = Default
$(keystone_authtoken_section)
CONF
      mysql -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS $db CHARACTER SET utf8"
      "$venv/bin/heat-manage" --config-file "$state/heat.conf" db_sync >"$state/db_sync.log" 2>&1
      setsid "$venv/bin/heat-engine" --config-file "$state/heat.conf" \
        >>"$state/engine.out" 2>&1 < /dev/null 9>&- &
      echo $! > "$state/engine.pid"
      HEAT_CONF="$state/heat.conf" PYTHONPATH="$here" setsid "$venv/bin/gunicorn" \
        --chdir "$state" --bind "127.0.0.1:$port" --workers 2 --threads 8 --timeout 120 \
        --pid "$state/api.pid" heat_wsgi:application \
        >>"$state/gunicorn.log" 2>&1 < /dev/null 9>&- &
      for _ in $(seq 1 120); do healthy && break; sleep 0.5; done
      healthy || { echo "heat: did not start; see $state" >&2; tail -20 "$state/gunicorn.log" >&2; exit 1; }
    fi
    keystone_register orchestration heat "$url/v1/%(tenant_id)s"
    echo "heat: running at $url, state in $state" >&2
    ;;
  venv) peer_venv heat "$here/heat-requirements.txt" ;;
  stop)
    for p in api engine; do
      if [ -f "$state/$p.pid" ]; then
        pid=$(cat "$state/$p.pid"); kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true; rm -f "$state/$p.pid"
      fi
    done
    ;;
  *) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac

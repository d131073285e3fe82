#!/usr/bin/env bash
# A real Glance (PyPI `glance`) on 127.0.0.1 for the Keystone tests: SQLite,
# file store, tokens validated by the Keystone of scripts/keystone.sh, and
# registered there as the `image` service.
#
#   scripts/glance.sh start [--port P]   start (no-op when it answers) and
#                                        register the image endpoint
#   scripts/glance.sh venv                 only build the virtualenv
#   scripts/glance.sh stop
#
# Needs scripts/keystone.sh running. The virtualenv is cached outside the
# clone, keyed by scripts/glance-requirements.txt; state lives in
# $MAGNUM_GLANCE_DIR (default /tmp/magnum-glance-$UID).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/peer.sh"
state="${MAGNUM_GLANCE_DIR:-/tmp/magnum-glance-$(id -u)}"
port=9393
cmd="${1:-}"
shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
url="http://127.0.0.1:$port"
healthy() { curl -fs -o /dev/null --max-time 2 "$url/versions"; }

case "$cmd" in
  start)
    peer_lock glance
    keystone_port >/dev/null
    peer_venv glance "$here/glance-requirements.txt"
    if ! { [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null && healthy; }; then
      mkdir -p "$state/images"
      cp "$venv/etc/glance/glance-api-paste.ini" "$state/"
      : > "$state/glance-image-import.conf"
      cat > "$state/glance-api.conf" <<CONF
[DEFAULT]
enabled_backends = fs:file
log_file = $state/glance.log
[database]
connection = sqlite:///$state/glance.db
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $state/images/
[os_glance_staging_store]
filesystem_store_datadir = $state/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $state/tasks/
[paste_deploy]
flavor = keystone
$(keystone_authtoken_section)
CONF
      "$venv/bin/glance-manage" --config-file "$state/glance-api.conf" db_sync >/dev/null 2>&1
      OS_GLANCE_CONFIG_DIR="$state" setsid "$venv/bin/gunicorn" --bind "127.0.0.1:$port" \
        --workers 2 --timeout 60 --pid "$state/pid" glance.wsgi.api:application \
        >>"$state/gunicorn.log" 2>&1 < /dev/null 9>&- &
      for _ in $(seq 1 120); do healthy && break; sleep 0.5; done
      healthy || { echo "glance: did not start; see $state/gunicorn.log" >&2; tail -20 "$state/gunicorn.log" >&2; exit 1; }
    fi
    keystone_register image glance "$url"
    echo "glance: running at $url, state in $state" >&2
    ;;
  venv) peer_venv glance "$here/glance-requirements.txt" ;;
  stop) peer_stop "$state" ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac

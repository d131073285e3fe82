#!/usr/bin/env bash
# A real Glance (PyPI `glance`) on 127.0.0.1 for the Keystone tests: SQLite,
# file store, tokens validated by the Keystone of scripts/keystone.sh, and
# registered there as the `image` service.
#
#   scripts/glance.sh start [--port P]   start (no-op when it answers) and
#                                        register the image endpoint
#   scripts/glance.sh stop
#
# Needs scripts/keystone.sh running. The virtualenv is cached outside the
# clone, keyed by scripts/glance-requirements.txt; state lives in
# $MAGNUM_GLANCE_DIR (default /tmp/magnum-glance-$UID).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
req="$here/glance-requirements.txt"
hash=$(sha256sum "$req" | cut -c1-16)
cache="${MAGNUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/magnum-rs}"
venv="$cache/glance-$hash"
state="${MAGNUM_GLANCE_DIR:-/tmp/magnum-glance-$(id -u)}"
keystone_state="${MAGNUM_KEYSTONE_DIR:-/tmp/magnum-keystone-$(id -u)}"
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
    [ -f "$keystone_state/port" ] || { echo "glance: start scripts/keystone.sh first" >&2; exit 1; }
    kport=$(cat "$keystone_state/port")
    if [ ! -f "$venv/.complete" ]; then
      echo "glance: creating $venv (first run only)" >&2
      rm -rf "$venv"; mkdir -p "$cache"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
      touch "$venv/.complete"
    fi
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
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$kport/v3
auth_url = http://127.0.0.1:$kport/v3
auth_type = password
username = magnum
password = magnum-secret
project_name = service
user_domain_name = Default
project_domain_name = Default
interface = public
CONF
      "$venv/bin/glance-manage" --config-file "$state/glance-api.conf" db_sync >/dev/null 2>&1
      OS_GLANCE_CONFIG_DIR="$state" setsid "$venv/bin/gunicorn" --bind "127.0.0.1:$port" \
        --workers 1 --timeout 60 --pid "$state/pid" glance.wsgi.api:application \
        >>"$state/gunicorn.log" 2>&1 < /dev/null &
      for _ in $(seq 1 120); do healthy && break; sleep 0.5; done
      healthy || { echo "glance: did not start; see $state/gunicorn.log" >&2; tail -20 "$state/gunicorn.log" >&2; exit 1; }
    fi
    # Register it in Keystone's catalog.
    TOKEN=$(curl -sS -i --max-time 10 -X POST "http://127.0.0.1:$kport/v3/auth/tokens?nocatalog" \
      -H 'Content-Type: application/json' \
      -d '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": "admin-secret", "domain": {"id": "default"}}}}, "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}' \
      | tr -d '\r' | awk -F': ' 'tolower($1)=="x-subject-token" {print $2}')
    k() { curl -sS --max-time 10 -X "$1" "http://127.0.0.1:$kport$2" -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
    py() { "$venv/bin/python" -c "import json,sys; d=json.load(sys.stdin)[sys.argv[1]]; print(d[0]['id'] if d else '')" "$1"; }
    svc=$(k GET "/v3/services?type=image" | py services)
    [ -n "$svc" ] || svc=$(k POST /v3/services '{"service": {"type": "image", "name": "glance"}}' | "$venv/bin/python" -c "import json,sys; print(json.load(sys.stdin)['service']['id'])")
    ep=$(k GET "/v3/endpoints?service_id=$svc&interface=public" | py endpoints)
    if [ -z "$ep" ]; then
      k POST /v3/endpoints "{\"endpoint\": {\"service_id\": \"$svc\", \"interface\": \"public\", \"region_id\": \"RegionOne\", \"url\": \"$url\"}}" >/dev/null
    else
      k PATCH "/v3/endpoints/$ep" "{\"endpoint\": {\"url\": \"$url\"}}" >/dev/null
    fi
    echo "glance: running at $url, state in $state" >&2
    ;;
  stop)
    if [ -f "$state/pid" ]; then
      pid=$(cat "$state/pid"); kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true; rm -f "$state/pid"
    fi
    ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac

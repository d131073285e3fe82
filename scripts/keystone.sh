#!/usr/bin/env bash
# A real Keystone (PyPI `keystone`) on 127.0.0.1 for tests and for trying
# Magnum with authentication: its database on the local MariaDB, fernet
# tokens, served by gunicorn.
#
#   scripts/keystone.sh start [--port P] [--magnum-url URL]
#       start it (a no-op when it already answers) and bootstrap: admin
#       (admin-secret) in project admin; projects project-a and project-b
#       with users {a,b}-{admin,member,reader} (password "secret"); the
#       service user magnum (magnum-secret, admin + service in project
#       service); domain magnum with its admin magnum-domain-admin
#       (domain-secret) for trustees; service container-infra whose public
#       endpoint is URL (default http://127.0.0.1:9511/v1).
#   scripts/keystone.sh endpoint URL   point container-infra at URL
#   scripts/keystone.sh register TYPE URL   public endpoint of service TYPE
#   scripts/keystone.sh env            print exports for the admin
#   scripts/keystone.sh venv           only build the virtualenv
#   scripts/keystone.sh stop
#
# The virtualenv is cached outside the clone, keyed by
# scripts/keystone-requirements.txt; state lives in $MAGNUM_KEYSTONE_DIR
# (default /tmp/magnum-keystone-$UID), its database is $MAGNUM_KEYSTONE_DB
# (default magnum_keystone_$UID, made anew with a new state directory).
# KEYSTONE_TOKEN_EXPIRATION sets the token lifetime in seconds (default
# 3600) when it starts.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/peer.sh"
state="${MAGNUM_KEYSTONE_DIR:-/tmp/magnum-keystone-$(id -u)}"
db="${MAGNUM_KEYSTONE_DB:-magnum_keystone_$(id -u)}"
port=5001
magnum_url="http://127.0.0.1:9511/v1"
cmd="${1:-}"
shift || true
register_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --magnum-url) magnum_url="$2"; shift 2 ;;
    *) if [ "$cmd" = endpoint ]; then magnum_url="$1"; shift
       elif [ "$cmd" = register ]; then register_args+=("$1"); shift
       else echo "unknown argument $1" >&2; exit 2; fi ;;
  esac
done
[ -f "$state/port" ] && [ "$cmd" != start ] && port=$(cat "$state/port")
url="http://127.0.0.1:$port"

make_venv() { peer_venv keystone "$here/keystone-requirements.txt"; }

healthy() { curl -fs -o /dev/null --max-time 2 "$url/v3"; }

# REST helper: api METHOD PATH [BODY] with $TOKEN; prints the body.
api() {
  curl -sS --max-time 10 -X "$1" "$url$2" -H "X-Auth-Token: $TOKEN" \
    -H 'Content-Type: application/json' ${3:+-d "$3"}
}

jget() { "$venv/bin/python" -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

# The id of the named entity in a list answer, or nothing.
first_id() { "$venv/bin/python" -c "
import json,sys
d=json.load(sys.stdin)[sys.argv[1]]
print(d[0]['id'] if d else '')" "$1"; }

ensure() { # ensure KIND COLLECTION QUERY BODY -> id
  local id
  id=$(api GET "/v3/$2?$3" | first_id "$2")
  if [ -z "$id" ]; then
    id=$(api POST "/v3/$2" "$4" | jget "d['$1']['id']")
  fi
  echo "$id"
}

set_endpoint() {
  local svc ep
  svc=$(ensure service services "type=container-infra" '{"service": {"type": "container-infra", "name": "magnum"}}')
  ep=$(api GET "/v3/endpoints?service_id=$svc&interface=public" | first_id endpoints)
  if [ -z "$ep" ]; then
    api POST /v3/endpoints "{\"endpoint\": {\"service_id\": \"$svc\", \"interface\": \"public\", \"region_id\": \"RegionOne\", \"url\": \"$magnum_url\"}}" >/dev/null
  else
    api PATCH "/v3/endpoints/$ep" "{\"endpoint\": {\"url\": \"$magnum_url\"}}" >/dev/null
  fi
}

admin_token() {
  TOKEN=$(curl -sS -i --max-time 10 -X POST "$url/v3/auth/tokens?nocatalog" -H 'Content-Type: application/json' \
    -d '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": "admin-secret", "domain": {"id": "default"}}}}, "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}' \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="x-subject-token" {print $2}')
  [ -n "$TOKEN" ] || { echo "keystone: cannot get an admin token" >&2; exit 1; }
}

bootstrap() {
  "$venv/bin/keystone-manage" --config-file "$state/keystone.conf" bootstrap \
    --bootstrap-password admin-secret --bootstrap-username admin \
    --bootstrap-project-name admin --bootstrap-role-name admin \
    --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
    --bootstrap-public-url "$url/v3" >/dev/null 2>&1
  admin_token
  local admin member reader service_role
  admin=$(ensure role roles "name=admin" '{"role": {"name": "admin"}}')
  member=$(ensure role roles "name=member" '{"role": {"name": "member"}}')
  reader=$(ensure role roles "name=reader" '{"role": {"name": "reader"}}')
  service_role=$(ensure role roles "name=service" '{"role": {"name": "service"}}')
  grant() { api PUT "/v3/projects/$1/users/$2/roles/$3" >/dev/null; }
  local svc_project magnum_user
  svc_project=$(ensure project projects "name=service" '{"project": {"name": "service", "domain_id": "default"}}')
  magnum_user=$(ensure user users "name=magnum" '{"user": {"name": "magnum", "password": "magnum-secret", "domain_id": "default"}}')
  grant "$svc_project" "$magnum_user" "$admin"
  grant "$svc_project" "$magnum_user" "$service_role"
  for x in a b; do
    local p
    p=$(ensure project projects "name=project-$x" "{\"project\": {\"name\": \"project-$x\", \"domain_id\": \"default\"}}")
    for who in admin member reader; do
      local u
      u=$(ensure user users "name=$x-$who" "{\"user\": {\"name\": \"$x-$who\", \"password\": \"secret\", \"domain_id\": \"default\"}}")
      grant "$p" "$u" "$reader"
      [ "$who" = reader ] || grant "$p" "$u" "$member"
      [ "$who" = admin ] && grant "$p" "$u" "$admin"
    done
  done
  local dom dadmin
  dom=$(ensure domain domains "name=magnum" '{"domain": {"name": "magnum"}}')
  dadmin=$(ensure user users "name=magnum-domain-admin&domain_id=$dom" "{\"user\": {\"name\": \"magnum-domain-admin\", \"password\": \"domain-secret\", \"domain_id\": \"$dom\"}}")
  api PUT "/v3/domains/$dom/users/$dadmin/roles/$admin" >/dev/null
  set_endpoint
}

case "$cmd" in
  start)
    peer_lock keystone
    make_venv
    mkdir -p "$state"
    expiration=${KEYSTONE_TOKEN_EXPIRATION:-3600}
    workers=3
    # bcrypt's cheapest cost: every password sign-in (each client command,
    # Heat's and the conductor's trust sign-ins) costs ~1 ms instead of
    # ~250 ms of CPU, which a 2-core machine running several Heat stacks
    # at once cannot spare. Only for this test and trial Keystone.
    hash_rounds=4
    # What a running Keystone must have been started with to be kept.
    settings="expiration=$expiration hash_rounds=$hash_rounds db=mariadb:$db workers=$workers"
    if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null && healthy; then
      if [ "$(cat "$state/settings" 2>/dev/null)" = "$settings" ]; then
        echo "keystone: already running at $url" >&2
        exit 0
      fi
      "$0" stop
    fi
    # The settings mark a Keystone worth keeping: written once it is
    # bootstrapped, so one whose start was cut short is started again.
    rm -f "$state/settings"
    echo "$port" > "$state/port"
    cat > "$state/keystone.conf" <<CONF
[DEFAULT]
log_file = $state/keystone.log
[database]
# MariaDB, not SQLite: Heat, Glance and the tests write to Keystone at
# once (trustees, trusts, Heat's stack domain projects), and SQLite
# refused such writes with "database is locked" (an HTTP 500 that failed
# a Heat stack delete).
connection = mysql+pymysql://root@127.0.0.1:3306/$db?charset=utf8
[identity]
password_hash_rounds = $hash_rounds
[token]
provider = fernet
expiration = $expiration
[fernet_tokens]
key_repository = $state/fernet-keys
[credential]
key_repository = $state/credential-keys
CONF
    started=$(date +%s)
    # A new state directory (no keys yet) is a new Keystone.
    fresh=false
    [ -d "$state/fernet-keys" ] || fresh=true
    if $fresh; then
      mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db"
    fi
    mysql -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS $db CHARACTER SET utf8"
    "$venv/bin/keystone-manage" --config-file "$state/keystone.conf" db_sync >"$state/db_sync.log" 2>&1 \
      || { echo "keystone: db_sync failed; see $state/db_sync.log" >&2; tail -20 "$state/db_sync.log" >&2; exit 1; }
    if $fresh; then
      "$venv/bin/keystone-manage" --config-file "$state/keystone.conf" fernet_setup \
        --keystone-user "$(id -un)" --keystone-group "$(id -gn)" >/dev/null 2>&1
      "$venv/bin/keystone-manage" --config-file "$state/keystone.conf" credential_setup \
        --keystone-user "$(id -un)" --keystone-group "$(id -gn)" >/dev/null 2>&1
    fi
    KEYSTONE_CONF="$state/keystone.conf" PYTHONPATH="$here" setsid "$venv/bin/gunicorn" \
      --bind "127.0.0.1:$port" --workers "$workers" --timeout 60 --pid "$state/pid" \
      --error-logfile "$state/gunicorn.log" keystone_wsgi:application \
      >>"$state/gunicorn.log" 2>&1 < /dev/null 9>&- &
    for _ in $(seq 1 120); do healthy && break; sleep 0.5; done
    healthy || { echo "keystone: did not start; see $state/gunicorn.log" >&2; tail -20 "$state/gunicorn.log" >&2; exit 1; }
    bootstrap
    echo "$settings" > "$state/settings"
    echo "keystone: running at $url (started in $(( $(date +%s) - started )) s), state in $state" >&2
    ;;
  endpoint)
    make_venv
    admin_token
    set_endpoint
    ;;
  register)
    # register TYPE URL: any other service's public endpoint.
    keystone_register "${register_args[0]}" "${register_args[0]}" "${register_args[1]}"
    ;;
  env)
    echo "export KEYSTONE_URL=$url/v3"
    echo "export OS_AUTH_URL=$url/v3"
    echo "export OS_USERNAME=admin OS_PASSWORD=admin-secret OS_PROJECT_NAME=admin"
    echo "export OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3"
    ;;
  venv) make_venv ;;
  stop)
    if [ -f "$state/pid" ]; then
      pid=$(cat "$state/pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$state/pid"
    fi
    ;;
  *)
    sed -n '2,27p' "$0" >&2
    exit 2
    ;;
esac

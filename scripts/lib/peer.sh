# Shared by the scripts that run real OpenStack services from PyPI beside
# the local Keystone (scripts/keystone.sh): a cached virtualenv per
# requirements file, and registration in Keystone's catalog.
# Source it; it expects `set -euo pipefail`.

peer_cache="${MAGNUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/magnum-rs}"
keystone_state="${MAGNUM_KEYSTONE_DIR:-/tmp/magnum-keystone-$(id -u)}"

# peer_venv NAME REQUIREMENTS: set $venv to a virtualenv holding
# REQUIREMENTS, kept under the cache keyed by the file's hash.
peer_venv() {
  local name="$1" req="$2" hash
  hash=$(sha256sum "$req" | cut -c1-16)
  venv="$peer_cache/$name-$hash"
  mkdir -p "$peer_cache"
  [ -f "$venv/.complete" ] && return 0
  # One builder at a time; a second finds it built. The lock is let go
  # before any service starts, so no daemon keeps it.
  exec 8>"$peer_cache/$name.lock"
  flock -w 900 8
  if [ ! -f "$venv/.complete" ]; then
    echo "$name: creating $venv (first run only)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
    touch "$venv/.complete"
  fi
  exec 8>&-
}

# keystone_port: the port of the running local Keystone (fails without one).
keystone_port() {
  [ -f "$keystone_state/port" ] || { echo "start scripts/keystone.sh first" >&2; return 1; }
  cat "$keystone_state/port"
}

# keystone_register TYPE NAME URL: make sure the catalog has service TYPE
# (named NAME) with public endpoint URL in RegionOne.
keystone_register() {
  local type="$1" name="$2" url="$3" kport token svc ep
  kport=$(keystone_port)
  token=$(curl -sS -i --max-time 10 -X POST "http://127.0.0.1:$kport/v3/auth/tokens?nocatalog" \
    -H 'Content-Type: application/json' \
    -d '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": "admin-secret", "domain": {"id": "default"}}}}, "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}' \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="x-subject-token" {print $2}')
  k() { curl -sS --max-time 10 -X "$1" "http://127.0.0.1:$kport$2" -H "X-Auth-Token: $token" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
  first() { python3 -c "import json,sys; d=json.load(sys.stdin)[sys.argv[1]]; print(d[0]['id'] if d else '')" "$1"; }
  svc=$(k GET "/v3/services?type=$type" | first services)
  [ -n "$svc" ] || svc=$(k POST /v3/services "{\"service\": {\"type\": \"$type\", \"name\": \"$name\"}}" | python3 -c "import json,sys; print(json.load(sys.stdin)['service']['id'])")
  ep=$(k GET "/v3/endpoints?service_id=$svc&interface=public" | first endpoints)
  if [ -z "$ep" ]; then
    k POST /v3/endpoints "{\"endpoint\": {\"service_id\": \"$svc\", \"interface\": \"public\", \"region_id\": \"RegionOne\", \"url\": \"$url\"}}" >/dev/null
  else
    k PATCH "/v3/endpoints/$ep" "{\"endpoint\": {\"url\": \"$url\"}}" >/dev/null
  fi
}

# keystone_authtoken_section: the [keystone_authtoken] of a service that
# validates tokens with the local Keystone as the magnum service user.
keystone_authtoken_section() {
  local kport
  kport=$(keystone_port)
  cat <<CONF
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
}

# peer_stop STATE NAME: stop the process whose pid is in STATE/pid.
peer_stop() {
  local state="$1" pid
  [ -f "$state/pid" ] || return 0
  pid=$(cat "$state/pid"); kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true; rm -f "$state/pid"
}

# peer_lock NAME: hold a lock on NAME until this script exits, so tests
# starting the same service at once take turns (the second finds it up).
peer_lock() {
  exec 9>"${TMPDIR:-/tmp}/magnum-$1-$(id -u).lock"
  flock -w 600 9 || { echo "$1: another start holds the lock" >&2; exit 1; }
}

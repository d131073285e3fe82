#!/usr/bin/env bash
# A real Barbican (PyPI `barbican`) on 127.0.0.1 for the certificate
# storage tests: SQLite, the simple crypto plugin, tokens validated by the
# Keystone of scripts/keystone.sh, registered there as `key-manager`.
#
#   scripts/barbican.sh start [--port P]   start (no-op when it answers)
#                                          and register the endpoint
#   scripts/barbican.sh venv                 only build the virtualenv
#   scripts/barbican.sh stop
#
# Needs scripts/keystone.sh running. The virtualenv is cached outside the
# clone, keyed by scripts/barbican-requirements.txt; state lives in
# $MAGNUM_BARBICAN_DIR (default /tmp/magnum-barbican-$UID).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/peer.sh"
state="${MAGNUM_BARBICAN_DIR:-/tmp/magnum-barbican-$(id -u)}"
port=9311
cmd="${1:-}"
shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
url="http://127.0.0.1:$port"
healthy() { curl -fs -o /dev/null --max-time 2 "$url/"; }

case "$cmd" in
  start)
    peer_lock barbican
    keystone_port >/dev/null
    peer_venv barbican "$here/barbican-requirements.txt"
    # A key-encryption key of this instance only (the default one is
    # public). simple_crypto hands it to Fernet, which takes URL-safe
    # base64 only: a key with '+' or '/' fails every secret store with a
    # 500, so such a key (from an older version of this script) is
    # replaced, and the Barbican that holds it restarted.
    if [ -f "$state/kek" ] && grep -q '[+/]' "$state/kek"; then
      "$0" stop
      rm -f "$state/kek"
    fi
    if ! { [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null && healthy; }; then
      mkdir -p "$state/.barbican"
      cp "$venv/etc/barbican/barbican-api-paste.ini" "$state/"
      [ -f "$state/kek" ] || python3 -c "import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())" > "$state/kek"
      cat > "$state/.barbican/barbican.conf" <<CONF
[DEFAULT]
host_href = $url
db_auto_create = True
log_file = $state/barbican.log
[database]
connection = sqlite:///$state/barbican.db
[simple_crypto_plugin]
kek = $(cat "$state/kek")
$(keystone_authtoken_section)
CONF
      HOME="$state" BARBICAN_PASTE="$state/barbican-api-paste.ini" PYTHONPATH="$here" \
        setsid "$venv/bin/gunicorn" --chdir "$state" --bind "127.0.0.1:$port" --workers 1 --timeout 60 \
        --pid "$state/pid" barbican_wsgi:application \
        >>"$state/gunicorn.log" 2>&1 < /dev/null 9>&- &
      for _ in $(seq 1 120); do healthy && break; sleep 0.5; done
      healthy || { echo "barbican: did not start; see $state/gunicorn.log" >&2; tail -20 "$state/gunicorn.log" >&2; exit 1; }
    fi
    keystone_register key-manager barbican "$url"
    echo "barbican: running at $url, state in $state" >&2
    ;;
  venv) peer_venv barbican "$here/barbican-requirements.txt" ;;
  stop) peer_stop "$state" ;;
  *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac

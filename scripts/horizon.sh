#!/usr/bin/env bash
# Horizon (PyPI `horizon`) with Magnum's panels (PyPI `magnum-ui`) on
# 127.0.0.1, signing in at the Keystone of scripts/keystone.sh: the
# Container Infra panels talk to whatever that Keystone's catalog lists as
# `container-infra` (ours, once registered with `scripts/keystone.sh
# endpoint URL`).
#
#   scripts/horizon.sh start [--port P]   start it (a no-op when it answers);
#                                         default port 8088
#   scripts/horizon.sh venv               only build the virtualenv
#   scripts/horizon.sh browser            install Debian's chromium and
#                                         chromium-driver (for the browser
#                                         test, crates/magnum/tests/horizon.rs)
#   scripts/horizon.sh stop
#
# Needs scripts/keystone.sh running. The virtualenv (horizon, magnum-ui,
# the python-magnumclient magnum-ui works with, and selenium for the test)
# is cached outside the clone, keyed by scripts/horizon-requirements.txt;
# state lives in $MAGNUM_HORIZON_DIR (default /tmp/magnum-horizon-$UID).
# Django's development server serves it (DEBUG, static files from the
# packages): a trial and test dashboard, not a deployment.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/peer.sh"
state="${MAGNUM_HORIZON_DIR:-/tmp/magnum-horizon-$(id -u)}"
port=8088
cmd="${1:-}"
shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f "$state/port" ] && [ "$cmd" != start ] && port=$(cat "$state/port")
url="http://127.0.0.1:$port"
healthy() { curl -fs -o /dev/null --max-time 60 "$url/auth/login/"; }

make_venv() { peer_venv horizon "$here/horizon-requirements.txt"; }

# Our settings and the panels' enabled files into the venv's
# openstack_dashboard/local (the venv is ours alone; copied at each start
# so an edit here takes effect).
install_local() {
  local site dash
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  dash="$site/openstack_dashboard/local"
  cp "$here/horizon/local_settings.py" "$dash/local_settings.py"
  cp "$site"/magnum_ui/enabled/_[0-9]*.py "$dash/enabled/"
  cp "$here/horizon/_9990_magnum_rs_zone_name.py" "$dash/enabled/"
  rm -rf "$site/magnum_rs_zone_name"
  cp -r "$here/horizon/magnum_rs_zone_name" "$site/"
}

case "$cmd" in
  start)
    peer_lock horizon
    kport=$(keystone_port)
    make_venv
    mkdir -p "$state"
    if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null && healthy; then
      echo "horizon: already running at $url" >&2
      exit 0
    fi
    peer_stop "$state"
    install_local
    echo "$port" > "$state/port"
    [ -f "$state/secret" ] || head -c 32 /dev/urandom | base64 > "$state/secret"
    started=$(date +%s)
    MAGNUM_HORIZON_SECRET=$(cat "$state/secret") \
    MAGNUM_HORIZON_KEYSTONE="http://127.0.0.1:$kport/v3" \
    MAGNUM_HORIZON_STATE="$state" \
    DJANGO_SETTINGS_MODULE=openstack_dashboard.settings \
      setsid "$venv/bin/python" -m django runserver --noreload "127.0.0.1:$port" \
      >"$state/horizon.log" 2>&1 < /dev/null 9>&- &
    echo $! > "$state/pid"
    # The first page compiles the theme's SCSS: give it time.
    for _ in $(seq 1 240); do healthy && break; sleep 0.5; done
    healthy || { echo "horizon: did not start; see $state/horizon.log" >&2; tail -20 "$state/horizon.log" >&2; exit 1; }
    echo "horizon: running at $url (started in $(( $(date +%s) - started )) s), state in $state" >&2
    ;;
  venv)
    make_venv
    echo "$venv"
    ;;
  browser)
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
      # Debian's packages (root, as in CI); no browser download.
      apt-get update >&2
      apt-get install -y chromium chromium-driver >&2
    fi
    ;;
  stop)
    peer_stop "$state"
    ;;
  *)
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac

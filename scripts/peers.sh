#!/usr/bin/env bash
# Make (once) the virtualenv of Python peers the tests drive, and print its path.
# It lives in a cache outside the clone, keyed by the requirements' hash, so
# reruns reuse it: ${MAGNUM_CACHE_DIR:-~/.cache/magnum-rs}/peers-<hash>.
#
#   scripts/peers.sh            the peers of scripts/peers-requirements.txt
#   scripts/peers.sh NAME       those of scripts/peers-NAME-requirements.txt,
#                               in peers-NAME-<hash> (e.g. magnumclient4:
#                               the last python-magnumclient 4.x)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name="${1:-}"
if [ -n "$name" ]; then
  req="$here/peers-$name-requirements.txt"
  prefix="peers-$name"
else
  req="$here/peers-requirements.txt"
  prefix="peers"
fi
[ -f "$req" ] || { echo "peers: no $req" >&2; exit 2; }
hash=$(sha256sum "$req" | cut -c1-16)
cache="${MAGNUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/magnum-rs}"
venv="$cache/$prefix-$hash"
mkdir -p "$cache"
# One builder at a time (tests may ask at once); the others then find it.
exec 9>"$cache/$prefix.lock"
flock -w 900 9
if [ ! -f "$venv/.complete" ]; then
  echo "peers: creating $venv (first run only)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  touch "$venv/.complete"
fi
echo "$venv"

#!/usr/bin/env bash
# Upstream Magnum's tempest API suite (PyPI `tempest` and
# `magnum-tempest-plugin`), run against ours by
# crates/magnum/tests/tempest.rs (part of scripts/test).
#
#   scripts/tempest.sh venv   build (once) the virtualenv and print its path
#
# The virtualenv is cached outside the clone, keyed by
# scripts/tempest-requirements.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib/peer.sh"
case "${1:-}" in
  venv) peer_venv tempest "$here/tempest-requirements.txt"; echo "$venv" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac

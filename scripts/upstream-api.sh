#!/usr/bin/env bash
# Serve upstream Magnum's own API (PyPI magnum, from the peers virtualenv) for
# side-by-side checks: a MariaDB database migrated by upstream's
# magnum-db-manage, upstream's WSGI app without the Keystone filter (send
# X-Roles / X-Project-Id / X-User-Id yourself), on 127.0.0.1:${PORT:-9611}.
# Runs in the foreground; stop it with Ctrl-C. Work files go to $DIR.
# Note: upstream 23.0.0 ships no cluster drivers, so its template creates
# answer "Cluster driver (...) not supported".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=$("$here/peers.sh")
port=${PORT:-9611}
db=${DB:-magnum_upstream_sbs}
dir=${DIR:-${TMPDIR:-/tmp}/magnum-upstream-api}
mkdir -p "$dir"
mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
sed 's/^pipeline = .*/pipeline = request_id api_v1/' "$venv/etc/magnum/api-paste.ini" > "$dir/api-paste.ini"
cat > "$dir/magnum.conf" <<CONF
[api]
api_paste_config = $dir/api-paste.ini
[database]
connection = mysql+pymysql://root@127.0.0.1:3306/$db
CONF
"$venv/bin/magnum-db-manage" --config-file "$dir/magnum.conf" upgrade
cat > "$dir/serve.py" <<PY
import sys
# oslo parses sys.argv when the WSGI module is imported.
sys.argv = ['magnum-api', '--config-file', '$dir/magnum.conf']
from wsgiref.simple_server import make_server
from magnum.wsgi import api
print('upstream magnum-api on http://127.0.0.1:$port/', flush=True)
make_server('127.0.0.1', $port, api.application).serve_forever()
PY
exec "$venv/bin/python" "$dir/serve.py"

"""Test doubles of Nova (v2.1) and Neutron (v2.0) for the cloud lookups
Magnum makes. Real Nova and Neutron cannot run on this machine (Nova needs
a hypervisor, placement and conductors; Neutron its agents and a
switch); these answer the few read calls Magnum makes in their real APIs'
shapes. Glance is real (scripts/glance.sh).

  PORT_FILE   listen on 127.0.0.1 (a free port, written to PORT_FILE) and
              serve /compute/v2.1/..., /network/v2.0/...
              Every call must carry X-Auth-Token (401 otherwise); each call
              is printed as a JSON line on stdout.
"""
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLAVORS = [
    {"id": "1", "name": "m1.small", "disk": 20, "ram": 2048, "vcpus": 1},
    {"id": "2", "name": "m1.medium", "disk": 40, "ram": 4096, "vcpus": 2},
]
KEYPAIRS = {"kp": {"keypair": {"name": "kp", "type": "ssh",
                               "fingerprint": "aa:bb"}}}
NETWORKS = [
    {"id": "7e70e7e7-0000-4000-8000-00000000000a", "name": "public",
     "router:external": True, "status": "ACTIVE"},
    {"id": "7e70e7e7-0000-4000-8000-00000000000b", "name": "private",
     "router:external": False, "status": "ACTIVE"},
]
SUBNETS = [
    {"id": "5b5b5b5b-0000-4000-8000-00000000000a", "name": "private-subnet",
     "network_id": NETWORKS[1]["id"], "cidr": "10.0.0.0/24"},
]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=None):
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        print(json.dumps({"path": url.path, "query": url.query,
                          "token": bool(self.headers.get("X-Auth-Token"))}),
              flush=True)
        if not self.headers.get("X-Auth-Token"):
            return self.answer(401, {"error": {"code": 401}})
        parts = [p for p in url.path.split("/") if p]
        name = q.get("name", [None])[0]
        if parts[:3] == ["compute", "v2.1", "flavors"]:
            if len(parts) == 4 and parts[3] == "detail":
                return self.answer(200, {"flavors": FLAVORS})
            f = [f for f in FLAVORS if f["id"] == parts[3]]
            return self.answer(200, {"flavor": f[0]}) if f else self.answer(404)
        if parts[:3] == ["compute", "v2.1", "os-keypairs"]:
            kp = KEYPAIRS.get(urllib.parse.unquote(parts[3]))
            return self.answer(200, kp) if kp else self.answer(404)
        if parts[:3] == ["network", "v2.0", "networks"]:
            if len(parts) == 4:
                n = [n for n in NETWORKS if n["id"] == parts[3]]
                return self.answer(200, {"network": n[0]}) if n else self.answer(404)
            return self.answer(200, {"networks": [n for n in NETWORKS if name in (None, n["name"])]})
        if parts[:3] == ["network", "v2.0", "subnets"]:
            if len(parts) == 4:
                s = [s for s in SUBNETS if s["id"] == parts[3]]
                return self.answer(200, {"subnet": s[0]}) if s else self.answer(404)
            return self.answer(200, {"subnets": [s for s in SUBNETS if name in (None, s["name"])]})
        return self.answer(404)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()

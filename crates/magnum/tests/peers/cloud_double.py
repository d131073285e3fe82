"""Test doubles of Nova (v2.1) and Neutron (v2.0) for the cloud lookups
Magnum makes. Real Nova and Neutron cannot run on this machine (Nova needs
a hypervisor, placement and conductors; Neutron its agents and a
switch); these answer the few read calls Magnum makes in their real APIs'
shapes. Glance is real (scripts/glance.sh).

  PORT_FILE   listen on 127.0.0.1 (a free port, written to PORT_FILE) and
              serve /compute/v2.1/..., /network/v2.0/...
              Every call must carry X-Auth-Token (401 otherwise); each call
              is printed as a JSON line on stdout.

It knows only the flavors, networks and subnets below. Keypairs are kept
per user as Nova keeps them (create, import, list, show, delete through
/os-keypairs), the user being the one Keystone ($KEYSTONE_URL, default
http://127.0.0.1:5001) says the token is of; keypair `kp` is one every user
has, for the tests that do not make their own.
"""
import base64
import datetime
import hashlib
import json
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLAVORS = [
    {"id": "1", "name": "m1.small", "disk": 20, "ram": 2048, "vcpus": 1},
    {"id": "2", "name": "m1.medium", "disk": 40, "ram": 4096, "vcpus": 2},
]
KEYSTONE = os.environ.get("KEYSTONE_URL", "http://127.0.0.1:5001")
# A keypair every user has (public key, fingerprint).
SHARED_KEYPAIRS = {"kp": ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKp kp", "aa:bb")}
NETWORKS = [
    {"id": "7e70e7e7-0000-4000-8000-00000000000a", "name": "public",
     "router:external": True, "status": "ACTIVE", "shared": False,
     "admin_state_up": True, "tenant_id": "", "project_id": "", "subnets": []},
    {"id": "7e70e7e7-0000-4000-8000-00000000000b", "name": "private",
     "router:external": False, "status": "ACTIVE", "shared": False,
     "admin_state_up": True, "tenant_id": "", "project_id": "",
     "subnets": ["5b5b5b5b-0000-4000-8000-00000000000a"]},
]
SUBNETS = [
    {"id": "5b5b5b5b-0000-4000-8000-00000000000a", "name": "private-subnet",
     "network_id": NETWORKS[1]["id"], "cidr": "10.0.0.0/24",
     "tenant_id": "", "project_id": "", "ip_version": 4, "enable_dhcp": True,
     "gateway_ip": "10.0.0.1", "allocation_pools": [], "dns_nameservers": [],
     "host_routes": []},
]


LOCK = threading.Lock()
# user id -> name -> keypair (Nova's full view of one).
KEYPAIRS = {}
USERS = {}  # token -> user id, as Keystone answered
NEXT_ID = [1]


class KeystoneDown(Exception):
    pass


def user_of(token):
    """The id of the user `token` is of, None when Keystone refuses it;
    raises KeystoneDown when Keystone cannot be reached."""
    with LOCK:
        if token in USERS:
            return USERS[token]
    req = urllib.request.Request(
        KEYSTONE + "/v3/auth/tokens?nocatalog",
        headers={"X-Auth-Token": token, "X-Subject-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            user = json.load(r)["token"]["user"]["id"]
    except urllib.error.HTTPError as e:
        if e.code >= 500:
            raise KeystoneDown(e.code) from e
        return None
    except OSError as e:  # refused, reset, timed out
        raise KeystoneDown(e) from e
    with LOCK:
        USERS[token] = user
    return user


def new_key():
    """A fresh RSA key pair in OpenSSH's forms, as Nova makes one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, public


def fingerprint(public):
    try:
        blob = base64.b64decode(public.split()[1])
    except Exception:
        return None
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def now():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")


def keypairs_of(user):
    """The user's keypairs (the shared ones included), by name."""
    mine = dict(KEYPAIRS.get(user, {}))
    for name, (public, fp) in SHARED_KEYPAIRS.items():
        mine.setdefault(name, {
            "name": name, "public_key": public, "fingerprint": fp,
            "user_id": user, "type": "ssh", "deleted": False,
            "created_at": "2024-01-01T00:00:00.000000", "updated_at": None,
            "deleted_at": None, "id": 0})
    return mine


def microversion(headers):
    """The compute microversion asked for, as (major, minor)."""
    for h in ("OpenStack-API-Version", "X-OpenStack-Nova-API-Version"):
        v = headers.get(h)
        if v:
            v = v.split()[-1]
            if v == "latest":
                return (2, 96)
            try:
                major, minor = v.split(".")
                return (int(major), int(minor))
            except ValueError:
                pass
    return (2, 1)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def handle_one_request(self):
        # Keystone out of reach: 503, as keystonemiddleware answers.
        try:
            super().handle_one_request()
        except KeystoneDown:
            self.answer(503, {"error": {"code": 503}})

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
            user = user_of(self.headers["X-Auth-Token"])
            if user is None:
                return self.answer(401, {"error": {"code": 401}})
            with LOCK:
                mine = keypairs_of(user)
            if len(parts) == 3:
                view = ["name", "public_key", "fingerprint"]
                if microversion(self.headers) >= (2, 2):
                    view.append("type")
                return self.answer(200, {"keypairs": [
                    {"keypair": {k: kp[k] for k in view}}
                    for kp in mine.values()]})
            kp = mine.get(urllib.parse.unquote(parts[3]))
            if kp is None:
                return self.not_found(parts[3])
            view = dict(kp)
            if microversion(self.headers) < (2, 2):
                view.pop("type")
            return self.answer(200, {"keypair": view})
        if parts in (["compute"], ["compute", "v2.1"]):
            # Version discovery (openstacksdk's compute proxy, in Horizon).
            base = "http://%s/compute/v2.1/" % self.headers.get("Host")
            v = {"id": "v2.1", "status": "CURRENT", "version": "2.96",
                 "min_version": "2.1", "updated": "2013-07-23T11:33:21Z",
                 "links": [{"rel": "self", "href": base}]}
            return self.answer(200, {"version": v} if len(parts) == 2
                               else {"versions": [v]})
        if parts == ["network", "v2.0", "extensions"]:
            # No extensions (Horizon asks before listing networks).
            return self.answer(200, {"extensions": []})
        if parts[:3] == ["compute", "v2.1", "os-availability-zone"]:
            # One zone, as a single-zone Nova lists it (Horizon's Create
            # Cluster form offers it).
            return self.answer(200, {"availabilityZoneInfo": [
                {"zoneName": "nova", "zoneState": {"available": True},
                 "hosts": None}]})
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

    def not_found(self, name):
        msg = "Keypair %s not found for user" % urllib.parse.unquote(name)
        return self.answer(404, {"itemNotFound": {"code": 404, "message": msg}})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return None

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        body = self.body()
        print(json.dumps({"method": "POST", "path": url.path}), flush=True)
        if not self.headers.get("X-Auth-Token"):
            return self.answer(401, {"error": {"code": 401}})
        if parts != ["compute", "v2.1", "os-keypairs"]:
            return self.answer(404)
        user = user_of(self.headers["X-Auth-Token"])
        if user is None:
            return self.answer(401, {"error": {"code": 401}})
        req = (body or {}).get("keypair")
        name = req.get("name") if isinstance(req, dict) else None
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            return self.answer(400, {"badRequest": {
                "code": 400, "message": "Invalid input for field/attribute keypair."}})
        v = microversion(self.headers)
        public = req.get("public_key")
        private = None
        if public is None:
            private, public = new_key()
        fp = fingerprint(public)
        if fp is None:
            return self.answer(400, {"badRequest": {
                "code": 400, "message": "Keypair data is invalid: failed to generate fingerprint"}})
        with LOCK:
            if name in keypairs_of(user):
                return self.answer(409, {"conflictingRequest": {
                    "code": 409, "message": "Key pair '%s' already exists." % name}})
            kp = {"name": name, "public_key": public, "fingerprint": fp,
                  "user_id": user, "type": req.get("type", "ssh"),
                  "deleted": False, "created_at": now(), "updated_at": None,
                  "deleted_at": None, "id": NEXT_ID[0]}
            NEXT_ID[0] += 1
            KEYPAIRS.setdefault(user, {})[name] = kp
        view = {k: kp[k] for k in ("name", "public_key", "fingerprint", "user_id")}
        if private is not None:
            view["private_key"] = private
        if v >= (2, 2):
            view["type"] = kp["type"]
        return self.answer(201 if v >= (2, 2) else 200, {"keypair": view})

    def do_DELETE(self):
        url = urllib.parse.urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        print(json.dumps({"method": "DELETE", "path": url.path}), flush=True)
        if not self.headers.get("X-Auth-Token"):
            return self.answer(401, {"error": {"code": 401}})
        if parts[:3] != ["compute", "v2.1", "os-keypairs"] or len(parts) != 4:
            return self.answer(404)
        user = user_of(self.headers["X-Auth-Token"])
        if user is None:
            return self.answer(401, {"error": {"code": 401}})
        name = urllib.parse.unquote(parts[3])
        with LOCK:
            if KEYPAIRS.get(user, {}).pop(name, None) is None:
                return self.not_found(name)
        # Nothing in the body: 202 before 2.2, 204 from it.
        self.send_response(204 if microversion(self.headers) >= (2, 2) else 202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return None


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()

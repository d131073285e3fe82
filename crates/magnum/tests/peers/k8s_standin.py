#!/usr/bin/env python3
"""A stand-in management cluster for upstream magnum-conductor running the
magnum-cluster-api driver (vexxhost) in tests: stdlib only.

    k8s_standin.py [PORT | PORTFILE]

binds 127.0.0.1 on PORT (a number) or on a free port, which it prints on
stdout and, given a PORTFILE path, writes there. It logs each request on
stderr. It serves, all on that one port:

* the Kubernetes API of an EMPTY cluster in which Cluster API (core,
  kubeadm bootstrap/control plane, addons) is installed but its OpenStack
  provider (CAPO, group infrastructure.cluster.x-k8s.io) is not: discovery
  (/version, /api, /api/v1, /apis), and for every other resource an
  in-memory store: GET of a named object that is not there -> 404 Status,
  lists -> the stored items matching a labelSelector (so at first empty),
  POST/PUT/PATCH/DELETE keep the store. Every request to a group named in
  MISSING_GROUPS answers 404 "the server could not find the requested
  resource", as the API server does for a CRD not installed. The driver's
  create_cluster so fails at its first CAPO object (the
  OpenStackClusterTemplate of its ClusterClass), and its status sync of a
  cluster being deleted finds nothing left.
* what the driver asks of OpenStack while deleting (its create fails
  before it needs more): a minimal Keystone v3 under /identity (any
  password or token is accepted; the catalog points compute and
  load-balancer back here; application credentials: none), Nova under
  /compute/v2.1 (no server groups) and Octavia under /load-balancer/v2 (no
  load balancers). Use it as [keystone_authtoken] auth_url, or register
  /compute/v2.1 and /load-balancer as endpoints in a real Keystone.

It also answers `helm`: symlinked or copied as `helm` on the conductor's
PATH, it behaves as helm with no release (the driver's delete_cluster runs
`helm delete --namespace magnum-system <stack_id>` and accepts "release: not
found").
"""

import datetime
import json
import os
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MISSING_GROUPS = {
    g for g in os.environ.get(
        "STANDIN_MISSING_GROUPS", "infrastructure.cluster.x-k8s.io").split(",")
    if g
}

STORE = {}  # (group, version, resource, namespace, name) -> object
LOCK = threading.Lock()
RV = [1]


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def status(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure" if code >= 400 else "Success",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return code, body


def plural_kind(resource):
    k = resource[:-1] if resource.endswith("s") else resource
    return k[:1].upper() + k[1:]


def match_labels(obj, selector):
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def merge(dst, patch):
    if not isinstance(patch, dict) or not isinstance(dst, dict):
        return patch
    out = dict(dst)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def parse_k8s_path(parts):
    """(group, version, namespace, resource, name, subresource) or None."""
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    if not rest:
        return None
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return group, version, ns, resource, name, sub


def k8s(method, path, query, body):
    parts = [p for p in path.split("/") if p]
    if path == "/version":
        return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0",
                     "platform": "linux/amd64"}
    if parts == ["api"]:
        return 200, {"kind": "APIVersions", "versions": ["v1"],
                     "serverAddressByClientCIDRs": []}
    if parts == ["apis"]:
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
    if parts == ["api", "v1"]:
        return 200, {"kind": "APIResourceList", "groupVersion": "v1",
                     "resources": [
                         {"name": "namespaces", "namespaced": False,
                          "kind": "Namespace", "verbs": ["*"]},
                         {"name": "secrets", "namespaced": True,
                          "kind": "Secret", "verbs": ["*"]}]}
    p = parse_k8s_path(parts)
    if p is None:
        return status(404, "NotFound",
                      "the server could not find the requested resource")
    group, version, ns, resource, name, _sub = p
    gr = resource + ("." + group if group else "")
    if group in MISSING_GROUPS or (len(parts) == 3 and parts[0] == "apis"):
        return status(404, "NotFound",
                      "the server could not find the requested resource",
                      {"group": group, "kind": resource})
    api_version = (group + "/" + version) if group else version
    with LOCK:
        if name is None:
            if method == "GET":
                sel = (query.get("labelSelector") or [""])[0]
                items = [o for (g, v, r, n, _), o in sorted(STORE.items())
                         if (g, r) == (group, resource)
                         and (ns is None or n == ns) and match_labels(o, sel)]
                return 200, {"kind": plural_kind(resource) + "List",
                             "apiVersion": api_version,
                             "metadata": {"resourceVersion": str(RV[0])},
                             "items": items}
            if method == "POST":
                obj = body if isinstance(body, dict) else {}
                meta = obj.setdefault("metadata", {})
                name = meta.get("name")
                if not name and meta.get("generateName"):
                    name = meta["generateName"] + uuid.uuid4().hex[:5]
                    meta["name"] = name
                key = (group, version, resource, ns, name)
                if key in STORE:
                    return status(409, "AlreadyExists",
                                  '%s "%s" already exists' % (gr, name),
                                  {"name": name, "group": group,
                                   "kind": resource})
                RV[0] += 1
                if ns:
                    meta["namespace"] = ns
                meta.setdefault("uid", str(uuid.uuid4()))
                meta["resourceVersion"] = str(RV[0])
                meta.setdefault("creationTimestamp", now())
                obj.setdefault("apiVersion", api_version)
                STORE[key] = obj
                return 201, obj
            if method == "DELETE":
                return status(405, "MethodNotAllowed", "not supported here")
            return status(405, "MethodNotAllowed",
                          "the server does not allow this method")
        key = (group, version, resource, ns, name)
        obj = STORE.get(key)
        notfound = status(404, "NotFound", '%s "%s" not found' % (gr, name),
                          {"name": name, "group": group, "kind": resource})
        if method == "GET":
            return (200, obj) if obj is not None else notfound
        if method == "DELETE":
            if obj is None:
                return notfound
            del STORE[key]
            return 200, {"kind": "Status", "apiVersion": "v1",
                         "metadata": {}, "status": "Success",
                         "details": {"name": name, "group": group,
                                     "kind": resource, "uid":
                                     obj["metadata"].get("uid")}}
        if method in ("PUT", "PATCH"):
            if obj is None and not (method == "PATCH" and "apply" in
                                    (query.get("_ct") or [""])[0]):
                return notfound
            new = body if method == "PUT" else merge(obj or {}, body)
            meta = new.setdefault("metadata", {})
            meta["name"] = name
            if ns:
                meta["namespace"] = ns
            RV[0] += 1
            meta["uid"] = (obj or {}).get("metadata", {}).get(
                "uid", str(uuid.uuid4()))
            meta["resourceVersion"] = str(RV[0])
            new.setdefault("apiVersion", api_version)
            STORE[key] = new
            return (200 if obj is not None else 201), new
    return status(405, "MethodNotAllowed",
                  "the server does not allow this method")


# --- OpenStack, just what the driver's delete path asks -------------------

def catalog(base):
    def svc(stype, name, url):
        return {"id": stype, "type": stype, "name": name, "endpoints": [
            {"id": "%s-%s" % (stype, i), "interface": i,
             "region": "RegionOne", "region_id": "RegionOne", "url": url}
            for i in ("public", "internal", "admin")]}
    return [svc("identity", "keystone", base + "/identity/v3"),
            svc("compute", "nova", base + "/compute/v2.1"),
            svc("load-balancer", "octavia", base + "/load-balancer")]


def token_body(base):
    dom = {"id": "default", "name": "Default"}
    return {"token": {
        "methods": ["password"],
        "user": {"id": "standin-user", "name": "standin", "domain": dom,
                 "password_expires_at": None},
        "project": {"id": "standin-project", "name": "service",
                    "domain": dom},
        "roles": [{"id": "admin", "name": "admin"}],
        "is_domain": False,
        "issued_at": now().replace("Z", ".000000Z"),
        "expires_at": "2099-01-01T00:00:00.000000Z",
        "audit_ids": ["standin"],
        "catalog": catalog(base)}}


def openstack(method, path, query, body, base):
    """(code, body, headers) or None when PATH is not OpenStack's."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("identity", "compute", "load-balancer"):
        return None
    svc, rest = parts[0], parts[1:]
    if svc == "identity":
        v3 = {"id": "v3.14", "status": "stable",
              "updated": "2020-04-07T00:00:00Z",
              "links": [{"rel": "self", "href": base + "/identity/v3/"}],
              "media-types": [{"base": "application/json",
                               "type": "application/vnd.openstack.identity-v3+json"}]}
        if not rest:
            return 300, {"versions": {"values": [v3]}}, {}
        if rest == ["v3"]:
            return 200, {"version": v3}, {}
        if rest == ["v3", "auth", "tokens"]:
            code = 201 if method == "POST" else 200
            return code, token_body(base), {"X-Subject-Token": "standin-token"}
        if rest[:2] == ["v3", "users"] and "application_credentials" in rest:
            if rest[-1] == "application_credentials":
                return 200, {"application_credentials": [],
                             "links": {"self": base + path}}, {}
            return 404, {"error": {"code": 404, "title": "Not Found",
                                   "message": "Could not find application credential."}}, {}
        if rest == ["v3", "regions"]:
            return 200, {"regions": [{"id": "RegionOne"}]}, {}
        return 404, {"error": {"code": 404, "title": "Not Found",
                               "message": "standin: %s" % path}}, {}
    if svc == "compute":
        ver = {"id": "v2.1", "status": "CURRENT", "version": "2.96",
               "min_version": "2.1", "updated": "2013-07-23T11:33:21Z",
               "links": [{"rel": "self", "href": base + "/compute/v2.1/"}]}
        if not rest:
            return 200, {"versions": [ver]}, {}
        if rest == ["v2.1"]:
            return 200, {"version": ver}, {}
        if rest == ["v2.1", "os-server-groups"]:
            return 200, {"server_groups": []}, {}
        return 404, {"itemNotFound": {"code": 404,
                                      "message": "standin: %s" % path}}, {}
    # load-balancer
    ver = {"id": "v2.0", "status": "CURRENT", "updated": "2018-12-01T00:00:00Z",
           "links": [{"rel": "self", "href": base + "/load-balancer/v2"}]}
    if not rest:
        return 200, {"versions": [ver]}, {}
    if rest == ["v2"] or rest == ["v2.0"]:
        return 200, {"version": ver}, {}
    if rest[-1] == "loadbalancers":
        return 200, {"loadbalancers": [], "loadbalancers_links": []}, {}
    return 404, {"faultcode": "Client", "faultstring": "standin: %s" % path}, {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("standin: %s\n" % (fmt % args))
        sys.stderr.flush()

    def _handle(self):
        u = urlsplit(self.path)
        query = parse_qs(u.query)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        ct = self.headers.get("Content-Type") or ""
        query["_ct"] = [ct]
        base = "http://%s:%d" % self.server.server_address[:2]
        headers = {}
        res = openstack(self.command, u.path, query, body, base)
        if res is not None:
            code, out, headers = res
        else:
            code, out = k8s(self.command, u.path, query, body)
        data = json.dumps(out).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


def helm(argv):
    # `helm delete --namespace NS NAME` and the like, with no release stored.
    name = argv[-1] if argv else ""
    sys.stderr.write(
        "Error: uninstall: Release not loaded: %s: release: not found\n" % name)
    return 1


def main(argv):
    if os.path.basename(argv[0]) == "helm":
        return helm(argv[1:])
    arg = argv[1] if len(argv) > 1 else "0"
    port = int(arg) if arg.isdigit() else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    bound = server.server_address[1]
    if not arg.isdigit():
        tmp = arg + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % bound)
        os.replace(tmp, arg)
    print(bound, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

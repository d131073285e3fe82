#!/usr/bin/env python3
"""Seed a migrated Magnum database for bench/run (Python standard library only).

One cluster template, N clusters in CREATE_COMPLETE (each with a default
master and a default worker node group, realistic labels, addresses and
certificate references) and one Cluster quota row, all owned by the project
the benchmark's requests name. The rows are written with multi-row INSERTs
inside one transaction, so 10,000 clusters seed in seconds.

    seed.py --dialect mysql|postgresql|sqlite --clusters N [--project P] [--user U]
        prints the SQL (pipe it to mysql or psql)
    seed.py --dialect sqlite --sqlite PATH --clusters N
        applies it to the SQLite database at PATH itself

Every uuid is derived from its row's index, so the load generator's scripts
can name any seeded cluster without reading the database:
    cluster i (1-based)   5eed0000-0000-4000-8000-%012x
    its master group      5eed0001-0000-4000-8000-%012x
    its worker group      5eed0002-0000-4000-8000-%012x
    the template          5eed00ff-0000-4000-8000-000000000001
"""

import argparse
import json
import sqlite3
import sys

TEMPLATE_UUID = "5eed00ff-0000-4000-8000-000000000001"
CREATED = "2025-01-06 09:30:00"
UPDATED = "2025-01-06 09:41:27"
BATCH = 500

LABELS = {
    "kube_tag": "v1.30.4",
    "container_runtime": "containerd",
    "containerd_version": "1.7.20",
    "cloud_provider_tag": "v1.30.0",
    "cinder_csi_plugin_tag": "v1.30.0",
    "k8s_keystone_auth_tag": "v1.30.0",
    "magnum_auto_healer_tag": "v1.30.0",
    "octavia_ingress_controller_tag": "v1.30.0",
    "calico_tag": "v3.26.4",
    "auto_healing_enabled": "true",
    "availability_zone": "nova",
}


def cluster_uuid(i):
    return "5eed0000-0000-4000-8000-%012x" % i


def nodegroup_uuid(i, master):
    return "5eed%04x-0000-4000-8000-%012x" % (1 if master else 2, i)


def stack_uuid(i):
    return "5eed0003-0000-4000-8000-%012x" % i


class Sql:
    def __init__(self, dialect):
        self.dialect = dialect

    def ident(self, name):
        return "`%s`" % name if self.dialect == "mysql" else '"%s"' % name

    def value(self, v):
        if v is None:
            return "NULL"
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, (dict, list)):
            v = json.dumps(v)
        s = str(v).replace("'", "''")
        if self.dialect == "mysql":
            s = s.replace("\\", "\\\\")
        return "'%s'" % s

    def inserts(self, table, rows):
        """Multi-row INSERT statements for rows (dicts with the same keys)."""
        if not rows:
            return
        cols = list(rows[0])
        head = "INSERT INTO %s (%s) VALUES\n" % (
            self.ident(table),
            ", ".join(self.ident(c) for c in cols),
        )
        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            yield head + ",\n".join(
                "(" + ", ".join(self.value(r[c]) for c in cols) + ")" for r in chunk
            ) + ";\n"


def template(project, user):
    return {
        "created_at": CREATED, "updated_at": None,
        "uuid": TEMPLATE_UUID, "name": "k8s-fcos-v1.30",
        "flavor_id": "m1.small", "master_flavor_id": "m1.medium",
        "keypair_id": "kp", "image_id": "fedora-coreos-40",
        "external_network_id": "public", "fixed_network": None, "fixed_subnet": None,
        "dns_nameserver": "8.8.8.8", "apiserver_port": None,
        "project_id": project, "user_id": user,
        "docker_volume_size": 10, "docker_storage_driver": "overlay2",
        "cluster_distro": "fedora-coreos", "coe": "kubernetes", "server_type": "vm",
        "http_proxy": None, "https_proxy": None, "no_proxy": None,
        "registry_enabled": False, "network_driver": "calico", "volume_driver": "cinder",
        "labels": LABELS, "tls_disabled": False, "public": False,
        "insecure_registry": None, "master_lb_enabled": False,
        "floating_ip_enabled": True, "hidden": False, "tags": None, "driver": None,
    }


def cluster(i, project, user):
    net = "10.%d.%d" % ((i >> 8) & 255, i & 255)
    cert = "http://127.0.0.1:9311/v1/containers/5eed%04x-0000-4000-8000-%012x"
    return {
        "created_at": CREATED, "updated_at": UPDATED,
        "uuid": cluster_uuid(i), "name": "bench-%05d" % i,
        "cluster_template_id": TEMPLATE_UUID,
        "api_address": "https://%s.4:6443" % net,
        "stack_id": stack_uuid(i), "project_id": project, "user_id": user,
        "status": "CREATE_COMPLETE",
        "status_reason": "Stack CREATE completed successfully",
        "discovery_url": "https://discovery.etcd.io/%032x" % (i * 2654435761),
        "ca_cert_ref": cert % (0x10, i), "magnum_cert_ref": cert % (0x11, i),
        "etcd_ca_cert_ref": cert % (0x12, i), "front_proxy_ca_cert_ref": cert % (0x13, i),
        "create_timeout": 60, "coe_version": "v1.30.4", "container_version": "1.7.20",
        "keypair": "kp", "docker_volume_size": 10, "labels": LABELS,
        "master_flavor_id": "m1.medium", "flavor_id": "m1.small",
        "health_status": "HEALTHY",
        "health_status_reason": {"api": "ok", "bench-%05d-node-0.Ready" % i: "True"},
        "fixed_network": "private", "fixed_subnet": "private-subnet",
        "floating_ip_enabled": True, "master_lb_enabled": False,
    }


def nodegroup(i, master, project):
    net = "10.%d.%d" % ((i >> 8) & 255, i & 255)
    return {
        "created_at": CREATED, "updated_at": UPDATED,
        "uuid": nodegroup_uuid(i, master),
        "name": "default-master" if master else "default-worker",
        "cluster_id": cluster_uuid(i), "project_id": project,
        "docker_volume_size": 10, "labels": LABELS,
        "flavor_id": "m1.medium" if master else "m1.small",
        "image_id": "fedora-coreos-40",
        "node_addresses": ["%s.4" % net] if master else ["%s.%d" % (net, 10 + n) for n in range(3)],
        "node_count": 1 if master else 3,
        "max_node_count": None if master else 10,
        "min_node_count": 1,
        "role": "master" if master else "worker", "is_default": True,
        "stack_id": stack_uuid(i), "status": "CREATE_COMPLETE", "status_reason": None,
        "version": None, "node_labels": None, "node_taints": None,
    }


def statements(dialect, clusters, project, user):
    sql = Sql(dialect)
    yield "BEGIN;\n" if dialect != "mysql" else "START TRANSACTION;\n"
    yield from sql.inserts("cluster_template", [template(project, user)])
    yield from sql.inserts("cluster", [cluster(i, project, user) for i in range(1, clusters + 1)])
    ngs = []
    for i in range(1, clusters + 1):
        ngs.append(nodegroup(i, True, project))
        ngs.append(nodegroup(i, False, project))
    yield from sql.inserts("nodegroup", ngs)
    yield from sql.inserts("quotas", [{
        "created_at": CREATED, "updated_at": None, "project_id": project,
        "resource": "Cluster", "hard_limit": 2000000000,
    }])
    yield "COMMIT;\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dialect", choices=["mysql", "postgresql", "sqlite"], required=True)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--project", default="5eedbe0c5eedbe0c5eedbe0c5eedbe0c")
    p.add_argument("--user", default="5eedface5eedface5eedface5eedface")
    p.add_argument("--sqlite", metavar="PATH", help="apply to this SQLite database")
    a = p.parse_args()
    stmts = statements(a.dialect, a.clusters, a.project, a.user)
    if a.sqlite:
        db = sqlite3.connect(a.sqlite, timeout=60, isolation_level=None)
        db.executescript("".join(stmts))
        db.close()
    else:
        out = sys.stdout
        for s in stmts:
            out.write(s)


if __name__ == "__main__":
    main()

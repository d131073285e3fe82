#!/usr/bin/env python3
"""Print bench/run's tables from its results (Python standard library only).

    report.py RESULTS.tsv FACTS.tsv [--check]

RESULTS: one line per wrk run: part, side, round, route, mode, then the
key=value figures of wrk.lua's BENCH line. FACTS: key, value (RSS, start
times, settings). Figures over rounds are means. With --check (the smoke),
exit 1 unless every run was parsed and answered 2xx (the node_count PATCH
only needs some 2xx: a cluster resized once refuses the next one).
"""

import sys
from collections import OrderedDict

SIDE_BY_SIDE = "mariadb"


def load(results_path, facts_path):
    runs = []
    with open(results_path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            part, side, rnd, route, mode, kv = line.split("\t")
            fig = dict(item.split("=", 1) for item in kv.split())
            fig = {k: int(v) for k, v in fig.items()}
            runs.append({"part": part, "side": side, "round": rnd, "route": route,
                         "mode": mode, **fig})
    facts = {}
    with open(facts_path) as f:
        for line in f:
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                facts[k] = v
    return runs, facts


def rps_of(r):
    return r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0


def summary(runs):
    """Mean req/s, p50, p99 (us) and summed non-2xx / socket errors."""
    if not runs:
        return None
    n = len(runs)
    return {
        "rps": sum(rps_of(r) for r in runs) / n,
        "p50": sum(r["p50_us"] for r in runs) / n,
        "p99": sum(r["p99_us"] for r in runs) / n,
        "requests": sum(r["requests"] for r in runs),
        "non2xx": sum(r["non2xx"] for r in runs),
        "errors": sum(r["connect"] + r["read"] + r["write"] + r["timeout"] for r in runs),
        # CPU time per answered request (us), summed over rounds.
        "cpu_server": per_request(runs, "cpu_server_us"),
        "cpu_db": per_request(runs, "cpu_db_us"),
        "cpu_wrk": per_request(runs, "cpu_wrk_us"),
    }


def per_request(runs, key):
    n = sum(r["requests"] for r in runs)
    if not n or any(key not in r for r in runs):
        return None
    return sum(r[key] for r in runs) / n


def f_us(v):
    return "—" if v is None else "{:.0f}".format(v)


def f_rps(v):
    if v is None:
        return "—"
    if v >= 100:
        return "{:,.0f}".format(v)
    if v >= 10:
        return "{:.1f}".format(v)
    return "{:.2f}".format(v)


def f_ms(us):
    if us is None:
        return "—"
    ms = us / 1000.0
    if ms >= 100:
        return "{:,.0f}".format(ms)
    if ms >= 10:
        return "{:.1f}".format(ms)
    return "{:.2f}".format(ms)


def f_mb(kb):
    return "—" if kb in (None, "") else "{:.1f} MB".format(int(kb) / 1024.0)


def f_s(s):
    return "—" if s in (None, "") else "{:.2f} s".format(float(s))


def f_bad(s):
    if s is None:
        return "—"
    out = str(s["non2xx"])
    if s["errors"]:
        out += " (+%d socket errors)" % s["errors"]
    return out


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def routes_of(runs):
    return list(OrderedDict((r["route"], None) for r in runs))


def pick(runs, part, side, route):
    return summary([r for r in runs if r["part"] == part and r["side"] == side and r["route"] == route])


def thousands(n):
    return "{:,}".format(int(n))


def print_cpu(runs, facts, part, routes):
    """Where each request's CPU goes, and what that allows on this machine.

    On a machine of few cores the server, the database server and the load
    generator share the same cores, so no server can answer more than
    cores / (CPU of all three per request): the ceiling column. "50x needs"
    is fifty times upstream's rate in the same run, to set beside it.
    """
    cores = int(facts.get("nproc") or 1)
    rows = []
    for route in routes:
        up = pick(runs, part, "upstream", route)
        us = pick(runs, part, "ours", route)
        if not us or us["cpu_server"] is None:
            continue
        db = us["cpu_db"] or 0.0
        total = us["cpu_server"] + db + (us["cpu_wrk"] or 0.0)
        db_only = cores * 1e6 / db if db >= 1 else None
        rows.append([route,
                     f_us(up and up["cpu_server"]), f_us(up and up["cpu_db"]),
                     f_us(us["cpu_server"]), f_us(us["cpu_db"]), f_us(us["cpu_wrk"]),
                     f_rps(cores * 1e6 / total if total else None),
                     f_rps(db_only),
                     f_rps(up and 50 * up["rps"])])
    if not rows:
        return
    print("CPU per request (us; server with its workers, the database server, wrk) and what it "
          "allows on %d cores: ceiling = cores / (ours + database + wrk); database alone = "
          "cores / database (were ours and wrk free)" % cores)
    print()
    print(table(["route", "upstream", "its database", "ours", "our database", "wrk",
                 "ceiling req/s", "database alone req/s", "50x upstream needs"], rows))
    print()


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    check = "--check" in sys.argv
    runs, facts = load(args[0], args[1])
    parts = list(OrderedDict((r["part"], None) for r in runs))
    print("## bench/run: wrk -t%s -c%s -d%s --latency on %s cores%s" % (
        facts.get("threads"), facts.get("connections"), facts.get("duration"),
        facts.get("nproc"), " (smoke)" if facts.get("smoke") == "1" else ""))
    print()
    print("req/s: mean over rounds; p50 and p99 in ms (means of each round's); "
          "non-2xx: answers wrk counted outside 2xx/3xx, summed over rounds.")
    if facts.get("commit"):
        print("ours at commit %s, %s" % (facts["commit"], facts.get("magnum_bin", "")))
    print()

    if SIDE_BY_SIDE in parts:
        print("### Upstream Magnum 23.0.0 (gunicorn, %s workers) and ours, one MariaDB database, "
              "%s clusters, %s alternating rounds each" % (
                  facts.get("mariadb.upstream.workers"), thousands(facts.get("mariadb.clusters", 0)),
                  facts.get("rounds")))
        print()
        rows = []
        mine = [r for r in runs if r["part"] == SIDE_BY_SIDE]
        for route in routes_of(mine):
            up = pick(runs, SIDE_BY_SIDE, "upstream", route)
            us = pick(runs, SIDE_BY_SIDE, "ours", route)
            ratio = "—"
            if up and us and up["rps"] > 0:
                x = us["rps"] / up["rps"]
                ratio = ("{:.0f}x" if x >= 10 else "{:.1f}x").format(x)
            rows.append([route,
                         f_rps(up and up["rps"]), f_ms(up and up["p50"]), f_ms(up and up["p99"]),
                         f_rps(us and us["rps"]), f_ms(us and us["p50"]), f_ms(us and us["p99"]),
                         ratio, "%s / %s" % (f_bad(up), f_bad(us))])
        print(table(["route", "upstream req/s", "p50", "p99", "ours req/s", "p50", "p99",
                     "ratio", "non-2xx up / ours"], rows))
        print()
        print_cpu(runs, facts, SIDE_BY_SIDE, routes_of(mine))
        print(table(["", "RSS idle", "RSS after the table", "start to first 200"], [
            ["upstream (gunicorn master + %s workers)" % facts.get("mariadb.upstream.workers"),
             f_mb(facts.get("mariadb.upstream.rss_idle_kb")),
             f_mb(facts.get("mariadb.upstream.rss_after_kb")),
             f_s(facts.get("mariadb.upstream.start_s"))],
            ["ours (magnum api)", f_mb(facts.get("mariadb.ours.rss_idle_kb")),
             f_mb(facts.get("mariadb.ours.rss_after_kb")), f_s(facts.get("mariadb.ours.start_s"))],
        ]))
        print()

    ours_parts = [p for p in parts if p != "hello"]
    if ours_parts:
        print("### Ours by backend and size: req/s (p99 ms)")
        print()
        head = ["route"] + ["%s, %s clusters" % (facts.get(p + ".backend", p),
                                                 thousands(facts.get(p + ".clusters", 0)))
                            for p in ours_parts]
        rows = []
        for route in routes_of([r for r in runs if r["side"] == "ours" and r["part"] in ours_parts]):
            row = [route]
            for p in ours_parts:
                s = pick(runs, p, "ours", route)
                row.append("—" if s is None else "%s (%s)%s" % (
                    f_rps(s["rps"]), f_ms(s["p99"]),
                    " [%d non-2xx]" % s["non2xx"] if s["non2xx"] else ""))
            rows.append(row)
        print(table(head, rows))
        print()
        if SIDE_BY_SIDE not in parts:
            first = ours_parts[0]
            print_cpu(runs, facts, first,
                      routes_of([r for r in runs if r["part"] == first and r["side"] == "ours"]))
        print(table(["ours", "RSS idle", "RSS after", "start to first 200"], [
            ["%s, %s clusters" % (facts.get(p + ".backend", p), thousands(facts.get(p + ".clusters", 0))),
             f_mb(facts.get(p + ".ours.rss_idle_kb")), f_mb(facts.get(p + ".ours.rss_after_kb")),
             f_s(facts.get(p + ".ours.start_s"))] for p in ours_parts]))
        print()

    if "hello" in parts:
        h = pick(runs, "hello", "ours", "GET /")
        line = "### Ceiling: a bare axum server, GET /: %s req/s, p50 %s ms, p99 %s ms, RSS %s idle, %s after" % (
            f_rps(h["rps"]), f_ms(h["p50"]), f_ms(h["p99"]),
            f_mb(facts.get("hello.ours.rss_idle_kb")), f_mb(facts.get("hello.ours.rss_after_kb")))
        # Ours' GET / of the first part (the side-by-side one when it ran).
        first = pick(runs, ours_parts[0], "ours", "GET /") if ours_parts else None
        if first and h["rps"]:
            line += "; ours' GET / (%s, %s) is %.0f%% of it" % (
                facts.get(ours_parts[0] + ".backend", ours_parts[0]),
                f_rps(first["rps"]), 100.0 * first["rps"] / h["rps"])
        print(line)
        print()
    if facts.get("elapsed_s"):
        print("(the whole run took %.0f s)" % float(facts["elapsed_s"]))

    if check:
        bad = []
        if not runs:
            bad.append("no wrk run was recorded")
        for r in runs:
            what = "%s %s round %s %s" % (r["part"], r["side"], r["round"], r["route"])
            if r.get("failed") or r["requests"] == 0 or r["duration_us"] == 0:
                bad.append(what + ": no figures")
                continue
            if r["p50_us"] <= 0 or r["p99_us"] < r["p50_us"]:
                bad.append(what + ": odd latencies")
            if r["mode"] == "patch-node-count":
                if r["requests"] - r["non2xx"] <= 0:
                    bad.append(what + ": no 2xx answer")
            elif r["non2xx"]:
                bad.append(what + ": %d non-2xx answers" % r["non2xx"])
            errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
            if errors:
                bad.append(what + ": %d socket errors" % errors)
        if bad:
            print("bench: smoke FAILED:\n  " + "\n  ".join(bad), file=sys.stderr)
            sys.exit(1)
        print("bench: smoke passed (%d wrk runs, every route answered)" % len(runs))


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The conductor's side of the benchmark (issue 11, item 4), with the fake
# driver, on PostgreSQL (127.0.0.1:5432, user postgres) and RabbitMQ
# (127.0.0.1:5672, guest/guest). It prints figures; it asserts nothing
# about them.
#
#   bench/conductor.sh            the figures (about five minutes)
#   bench/conductor.sh --smoke    a tiny run (well under a minute) that
#                                 fails only when the harness is broken
#
# Figures:
#   1. CPU seconds of one conductor per status-sync cycle at 1,000 and
#      10,000 CREATE_IN_PROGRESS clusters (seeded by SQL, each with a
#      stack_id and two node groups, their fake stacks still building):
#      utime+stime from /proc/PID/stat over several cycles, after the
#      first (which records the nodes' addresses).
#   2. Driver status calls per cluster per minute with 1 and 3
#      conductors (the fake cloud logs each call with its conductor).
#   3. Create throughput, clusters reaching CREATE_COMPLETE per second,
#      with 1, 2 and 4 conductors behind our API on RabbitMQ.
#   4. Takeover: time from a conductor's SIGKILL to each of its running
#      operations being claimed by another conductor, over several kills.
#
# The binary: the full run builds a release binary with the fake driver
# into its own target directory (target/bench-fake, so the ordinary
# builds are left alone); --smoke uses the debug build the test suite
# makes (target/debug/magnum). MAGNUM_BIN overrides either. Environment:
# SWEEP_CONCURRENCY ([conductor] sweep_concurrency for figure 4; 1 runs
# the sweep one operation after another, as before it was concurrent).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

smoke=0
case "${1:-}" in
--smoke) smoke=1 ;;
"") ;;
*)
    echo "usage: $0 [--smoke]" >&2
    exit 2
    ;;
esac

if [[ -n "${MAGNUM_BIN:-}" ]]; then
    bin=$MAGNUM_BIN
elif ((smoke)); then
    cargo build -q -p magnum --features magnum/fake-driver
    bin=${CARGO_TARGET_DIR:-$root/target}/debug/magnum
else
    cargo build -q --release -p magnum --features magnum/fake-driver --target-dir target/bench-fake
    bin=$root/target/bench-fake/release/magnum
fi
[[ -x "$bin" ]] || {
    echo "no binary at $bin" >&2
    exit 1
}

if ((smoke)); then
    sizes=(200)
    count_clusters=60
    count_window=3
    creates=12
    conductor_counts=(1 2)
    kills=1
    cycle_interval=1
    cycles=2
    lease=3
    sweep_every=1
else
    sizes=(1000 10000)
    count_clusters=1000
    count_window=30
    creates=600
    conductor_counts=(1 2 4)
    kills=4
    cycle_interval=5
    cycles=4
    lease=6
    sweep_every=2
fi
sweep_concurrency=${SWEEP_CONCURRENCY:-16}

work=$(mktemp -d /tmp/magnum-bench-conductor.XXXXXX)
db="magnum_bench_cond_$$"
id=$$
pids=() # the processes started, to signal
jobs_=() # the subshells waiting for them, to wait for
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres)

fail() {
    echo "bench/conductor.sh: $*" >&2
    exit 1
}

stop_all() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${jobs_[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    pids=()
    jobs_=()
}

# Run "$@" in the background through a subshell that waits for it, so a
# SIGKILL of the process is not reported as a killed job. Its pid lands
# in $started.
spawn() {
    local pidfile
    pidfile=$(mktemp "$work/pid.XXXXXX")
    (
        "$@" &
        echo $! >"$pidfile"
        wait $! 2>/dev/null
    ) &
    jobs_+=("$!")
    until [[ -s "$pidfile" ]]; do sleep 0.01; done
    started=$(cat "$pidfile")
    pids+=("$started")
}

cleanup() {
    stop_all
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

sql() { "${PSQL[@]}" -d "$db" -c "$1"; }

now() { date +%s.%N; }

# utime+stime of a process, in seconds.
cpu_of() {
    local ticks
    ticks=$(getconf CLK_TCK)
    awk -v t="$ticks" '{ sub(/^.*\) /, ""); printf "%.3f\n", ($12 + $13) / t }' "/proc/$1/stat"
}

"${PSQL[@]}" -d postgres -c "CREATE DATABASE $db" >/dev/null ||
    fail "PostgreSQL at 127.0.0.1:5432 (user postgres) is not reachable"

# $1: sync interval; the rest is appended to [conductor].
write_conf() {
    cat >"$work/base.conf" <<EOF
[DEFAULT]
auth_strategy = noauth
transport_url = rabbit://guest:guest@127.0.0.1:5672/
control_exchange = magnum-bench-$id
report_interval = 1
service_down_time = 4
[database]
connection = postgresql://postgres@127.0.0.1:5432/$db
max_pool_size = 10
[conductor]
topic = magnum-bench-$id
sync_interval = $1
operation_lease = $lease
operation_grace = 2
sweep_concurrency = $sweep_concurrency
[quotas]
max_clusters_per_project = 1000000
[api]
port = 0
EOF
}

write_conf "$cycle_interval"
"$bin" --config-file "$work/base.conf" db-manage upgrade >"$work/migrate.log" 2>&1 ||
    fail "db-manage upgrade failed: $(tail -3 "$work/migrate.log")"
cloud=$work/cloud
mkdir -p "$cloud"

# Wait until file $1 has a line matching $2 (at most $3 seconds).
wait_log() {
    local deadline=$(($(date +%s) + $3))
    until grep -q -- "$2" "$1" 2>/dev/null; do
        (($(date +%s) < deadline)) || fail "no '$2' in $1 after $3 s: $(tail -5 "$1")"
        sleep 0.1
    done
}

# Start conductor host c$1; $2: 1 to log its status calls. Its pid lands
# in $started.
start_conductor() {
    local host=c$1 log=$work/c$1.log
    printf '[DEFAULT]\nhost = %s\n' "$host" >"$work/$host.conf"
    local count=""
    [[ "$2" == 1 ]] && count=$host
    MAGNUM_FAKE_CLOUD=$cloud MAGNUM_FAKE_STATUS_LOG=$count \
        MAGNUM_LOG="info,magnum_conductor::sync=debug,sqlx=warn" \
        spawn "$bin" --config-file "$work/base.conf" --config-file "$work/$host.conf" conductor \
        >>"$log" 2>&1
    wait_log "$log" "conductor serving RPC topic" 30
}

start_api() {
    local log=$work/api.log
    : >"$log"
    MAGNUM_FAKE_CLOUD=$cloud spawn "$bin" --config-file "$work/base.conf" api >>"$log" 2>&1
    wait_log "$log" "listening on " 30
    api=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //')
    [[ -n "$api" ]] || fail "cannot tell where the API listens: $(cat "$log")"
}

template_sql() {
    sql "INSERT INTO cluster_template (created_at, uuid, name, coe, image_id, driver, server_type,
           tls_disabled, public, hidden, project_id, user_id, labels)
         VALUES (now() AT TIME ZONE 'utc', '$1', '$2', 'kubernetes', 'fcos', 'fake', 'vm',
           true, true, false, 'bench', 'bench', '{}')"
}

# Seed $1 clusters building (CREATE_IN_PROGRESS, stack_id set, two node
# groups each, the fake stack started and never finishing).
seed_building() {
    sql "DELETE FROM nodegroup; DELETE FROM cluster; DELETE FROM rs_cluster_operation;
         DELETE FROM cluster_template; DELETE FROM magnum_service;"
    rm -rf "$cloud" && mkdir -p "$cloud"
    template_sql 11111111-2222-4333-8444-555555555555 bench
    sql "INSERT INTO cluster (created_at, uuid, name, cluster_template_id, stack_id, project_id,
           user_id, status, create_timeout, labels, keypair, flavor_id, master_flavor_id)
         SELECT now() AT TIME ZONE 'utc', u, 'bench-' || i, '11111111-2222-4333-8444-555555555555',
           'fake-' || u, 'bench', 'bench', 'CREATE_IN_PROGRESS', 0,
           '{\"fake_hang\": \"create\", \"kube_tag\": \"v1.30.0\", \"availability_zone\": \"nova\"}',
           'key', 'm1.small', 'm1.medium'
         FROM (SELECT i, gen_random_uuid()::text AS u FROM generate_series(1, $1) i) s;
         INSERT INTO nodegroup (created_at, uuid, name, cluster_id, project_id, node_count,
           role, is_default, status, image_id, flavor_id, labels)
         SELECT now() AT TIME ZONE 'utc', gen_random_uuid()::text, r.name, c.uuid, 'bench',
           r.n, r.role, true, 'CREATE_IN_PROGRESS', 'fcos', 'm1.small', '{}'
         FROM cluster c CROSS JOIN (VALUES ('default-master', 'master', 1),
           ('default-worker', 'worker', 3)) AS r(name, role, n)"
    "${PSQL[@]}" -d "$db" -c "SELECT uuid FROM cluster" | python3 -c '
import json, sys, time
d = sys.argv[1]
t = time.time()
for u in sys.stdin.read().split():
    with open(f"{d}/fake-{u}.json", "w") as f:
        json.dump({"action": "create", "what": "create", "started": t}, f)
' "$cloud"
}

synced_cycles() { grep -c "status sync: .* synced" "$1" 2>/dev/null || true; }

echo "conductor benchmark: $bin; PostgreSQL 127.0.0.1:5432; RabbitMQ 127.0.0.1:5672"
echo

# 1. CPU per status-sync cycle.
echo "1. status sync CPU, one conductor, [conductor] sync_interval = $cycle_interval s"
printf '   %-9s %-24s %-18s %-14s\n' clusters "CPU s per cycle" "cycle wall ms" "first cycle"
for n in "${sizes[@]}"; do
    stop_all
    write_conf "$cycle_interval"
    seed_building "$n"
    : >"$work/c1.log"
    t0=$(now)
    start_conductor 1 0
    pid=$started
    deadline=$(($(date +%s) + 120))
    until (($(synced_cycles "$work/c1.log") >= 1)); do
        (($(date +%s) < deadline)) || fail "no sync cycle in 120 s: $(tail -5 "$work/c1.log")"
        sleep 0.05
    done
    first_cpu=$(cpu_of "$pid")
    first_wall=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    c0=$(cpu_of "$pid")
    k0=$(synced_cycles "$work/c1.log")
    deadline=$(($(date +%s) + cycles * (cycle_interval + 60) + 60))
    until (($(synced_cycles "$work/c1.log") >= k0 + cycles)); do
        (($(date +%s) < deadline)) || fail "sync cycles stalled: $(tail -5 "$work/c1.log")"
        sleep 0.05
    done
    c1=$(cpu_of "$pid")
    k1=$(synced_cycles "$work/c1.log")
    walls=$(grep "status sync: .* synced" "$work/c1.log" | tail -n $((k1 - k0)) |
        sed -E 's/.* in ([0-9]+) ms.*/\1/' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    synced=$(grep "status sync: .* synced" "$work/c1.log" | tail -1 | sed -E 's/.*: ([0-9]+) of ([0-9]+) .*/\1 of \2/')
    per=$(awk -v a="$c0" -v b="$c1" -v k="$((k1 - k0))" 'BEGIN { printf "%.3f", (b - a) / k }')
    printf '   %-9s %-24s %-18s %s\n' "$n" "$per (over $((k1 - k0)))" "$walls (median)" \
        "${first_cpu} s CPU, ${first_wall} s from start"
    [[ "$synced" == "$n of $n" ]] || fail "the conductor synced $synced clusters, not $n"
    size_done=1
done
stop_all
echo

# 2. Status calls per cluster per minute.
echo "2. driver status calls per cluster per minute ($count_clusters clusters, sync_interval = $sweep_every s)"
printf '   %-11s %-16s %-22s %s\n' conductors "calls/cluster/min" "per cluster per window" "share of calls"
for k in 1 3; do
    stop_all
    write_conf "$sweep_every"
    seed_building "$count_clusters"
    for i in $(seq 1 "$k"); do start_conductor "$i" 1; done
    # Until every conductor's heartbeat is seen by the others.
    ((k == 1)) || sleep 2.5
    from=$(now)
    sleep "$count_window"
    to=$(now)
    read -r rate lo hi shares < <(python3 - "$cloud/status.log" "$from" "$to" "$count_clusters" <<'EOF'
import collections, sys
log, a, b, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
per, tags = collections.Counter(), collections.Counter()
try:
    lines = open(log).read().split("\n")
except FileNotFoundError:
    lines = []
for line in lines:
    f = line.split()
    if len(f) == 3 and a <= float(f[2]) < b:
        per[f[1]] += 1
        tags[f[0]] += 1
total = sum(per.values())
counts = [per.get(c, 0) for c in per] + [0] * (n - len(per))
shares = ",".join(f"{t}={tags[t] * 100 // max(total, 1)}%" for t in sorted(tags))
print(f"{total / n / ((b - a) / 60):.1f} {min(counts) if counts else 0} {max(counts) if counts else 0} {shares or '-'}")
EOF
    )
    printf '   %-11s %-16s %-22s %s\n' "$k" "$rate" "$lo..$hi" "$shares"
    awk -v r="$rate" 'BEGIN { exit !(r > 0) }' || fail "no status calls counted with $k conductors"
done
stop_all
echo "   (one poll per cluster per interval is $((60 / sweep_every))/min whatever the number of conductors; upstream polls every cluster from every conductor)"
echo

# 3. Create throughput.
echo "3. create throughput, our API on RabbitMQ ($creates clusters, fake_seconds = 1, sync_interval = 1 s)"
printf '   %-11s %-20s %-20s %s\n' conductors "CREATE_COMPLETE/s" "all complete after" "POSTs answered after"
post_clusters() {
    seq 1 "$2" | xargs -P 16 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST \
        -H 'Content-Type: application/json' \
        -d "{\"name\": \"$1-{}\", \"cluster_template_id\": \"bench\", \"master_count\": 1, \"node_count\": 1}" \
        "$api/v1/clusters" >"$work/posts.txt"
    local bad
    bad=$(grep -vc '^202$' "$work/posts.txt" || true)
    ((bad == 0)) || fail "$bad POSTs not answered 202: $(sort "$work/posts.txt" | uniq -c | tr '\n' ' ')"
}
for k in "${conductor_counts[@]}"; do
    stop_all
    write_conf 1
    sql "DELETE FROM nodegroup; DELETE FROM cluster; DELETE FROM rs_cluster_operation;
         DELETE FROM cluster_template; DELETE FROM magnum_service;"
    rm -rf "$cloud" && mkdir -p "$cloud"
    template_sql 22222222-2222-4333-8444-555555555555 bench
    start_api
    for i in $(seq 1 "$k"); do start_conductor "$i" 0; done
    t0=$(now)
    post_clusters "k$k" "$creates"
    posted=$(now)
    deadline=$(($(date +%s) + 120 + creates / 5))
    while :; do
        done_n=$(sql "SELECT count(*) FROM cluster WHERE status = 'CREATE_COMPLETE'")
        ((done_n >= creates)) && break
        (($(date +%s) < deadline)) || fail "only $done_n of $creates creates completed with $k conductors"
        sleep 0.1
    done
    t1=$(now)
    printf '   %-11s %-20s %-20s %s\n' "$k" "$(awk -v n="$creates" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f s", b - a }')" \
        "$(awk -v a="$t0" -v b="$posted" 'BEGIN { printf "%.1f s", b - a }')"
done
stop_all
echo

# 4. Takeover after SIGKILL.
echo "4. takeover: SIGKILL of the conductor running the most creates (3 conductors, operation_lease = $lease s,"
echo "   sync_interval = $sweep_every s, sweep_concurrency = $sweep_concurrency; each create's driver call blocks 30 s)"
write_conf "$sweep_every"
sql "DELETE FROM nodegroup; DELETE FROM cluster; DELETE FROM rs_cluster_operation;
     DELETE FROM cluster_template; DELETE FROM magnum_service;"
rm -rf "$cloud" && mkdir -p "$cloud"
template_sql 33333333-2222-4333-8444-555555555555 bench
sql "UPDATE cluster_template SET labels = '{\"fake_call_seconds\": \"30\"}'"
start_api
declare -A conductor_pid
for i in 1 2 3; do
    start_conductor "$i" 0
    conductor_pid[c$i]=$started
done
: >"$work/takeover.txt"
for round in $(seq 1 "$kills"); do
    post_clusters "r$round" 12
    deadline=$(($(date +%s) + 30))
    until (($(sql "SELECT count(*) FROM rs_cluster_operation WHERE owner IS NOT NULL AND attempts = 1 AND
              cluster_uuid IN (SELECT uuid FROM cluster WHERE name LIKE 'r$round-%')") >= 12)); do
        (($(date +%s) < deadline)) || fail "round $round: the creates were not all claimed"
        sleep 0.1
    done
    victim=$(sql "SELECT owner FROM rs_cluster_operation o JOIN cluster c ON c.uuid = o.cluster_uuid
                  WHERE c.name LIKE 'r$round-%' GROUP BY owner ORDER BY count(*) DESC, owner LIMIT 1")
    ops=$(sql "SELECT string_agg('''' || o.uuid || '''', ',') FROM rs_cluster_operation o
               JOIN cluster c ON c.uuid = o.cluster_uuid WHERE c.name LIKE 'r$round-%' AND o.owner = '$victim'")
    n_ops=$(sql "SELECT count(*) FROM rs_cluster_operation WHERE uuid IN ($ops)")
    kill -9 "${conductor_pid[$victim]}"
    killed=$(now)
    declare -A taken=()
    # Generous enough for a sweep that runs one create after another.
    deadline=$(($(date +%s) + lease + 60 + 35 * n_ops))
    while ((${#taken[@]} < n_ops)); do
        while IFS='|' read -r op owner; do
            [[ -n "$op" && -z "${taken[$op]:-}" ]] || continue
            taken[$op]=$(awk -v a="$killed" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
            echo "${taken[$op]}" >>"$work/takeover.txt"
        done < <(sql "SELECT uuid, owner FROM rs_cluster_operation WHERE uuid IN ($ops)
                      AND owner IS NOT NULL AND owner <> '$victim'")
        (($(date +%s) < deadline)) || fail "round $round: ${#taken[@]} of $n_ops operations taken over"
        sleep 0.1
    done
    printf '   kill %d: %s ran %d creates; taken over after %s s\n' "$round" "$victim" "$n_ops" \
        "$(printf '%s\n' "${taken[@]}" | sort -n | tr '\n' ' ')"
    unset taken
    # The killed conductor comes back for the next round.
    n=${victim#c}
    start_conductor "$n" 0
    conductor_pid[$victim]=$started
    sleep 0.5
done
python3 - "$work/takeover.txt" "$lease" "$sweep_every" <<'EOF'
import statistics, sys
t = sorted(float(x) for x in open(sys.argv[1]).read().split())
if not t:
    sys.exit("no takeover measured")
p99 = t[min(len(t) - 1, int(round(0.99 * (len(t) - 1))))]
print(f"   {len(t)} operations: median {statistics.median(t):.1f} s, p99 {p99:.1f} s, max {t[-1]:.1f} s "
      f"(lease + one sweep interval = {int(sys.argv[2]) + int(sys.argv[3])} s)")
EOF
stop_all

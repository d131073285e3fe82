-- bench/run's wrk script. Every run ends with one machine-readable line
-- (BENCH ...) that bench/run parses; the write routes also build a request
-- per call. Settings come from the environment:
--   BENCH_MODE      static (the command line's request), create (POST
--                   /v1/clusters), patch-health, patch-node-count
--   BENCH_CLUSTERS  how many clusters are seeded (uuids as in bench/seed.py)
--   BENCH_THREADS   wrk's -t, so threads take disjoint clusters
--   BENCH_TEMPLATE  the template of created clusters
--   BENCH_TAG       part of created clusters' names (unique per run)

local mode = os.getenv("BENCH_MODE") or "static"
local clusters = tonumber(os.getenv("BENCH_CLUSTERS") or "1000")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local template = os.getenv("BENCH_TEMPLATE") or ""
local tag = os.getenv("BENCH_TAG") or "0"

local count = 0
local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local function cluster_path(i)
  return string.format("/v1/clusters/5eed0000-0000-4000-8000-%012x", i)
end

-- The n-th request of this thread names cluster ..., each thread its own.
local function next_cluster()
  local i = ((thread_index or 0) + count * nthreads) % clusters + 1
  count = count + 1
  return i
end

if mode == "create" then
  wrk.method = "POST"
  request = function()
    count = count + 1
    local body = string.format(
      '{"name": "bench-new-%s-%d-%d", "cluster_template_id": "%s", "master_count": 1, "node_count": 1}',
      tag, thread_index or 0, count, template)
    return wrk.format(nil, nil, nil, body)
  end
elseif mode == "patch-health" then
  wrk.method = "PATCH"
  local body = '[{"op": "replace", "path": "/health_status", "value": "UNHEALTHY"}]'
  request = function()
    return wrk.format(nil, cluster_path(next_cluster()), nil, body)
  end
elseif mode == "patch-node-count" then
  wrk.method = "PATCH"
  local body = '[{"op": "replace", "path": "/node_count", "value": 4}]'
  request = function()
    return wrk.format(nil, cluster_path(next_cluster()), nil, body)
  end
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end

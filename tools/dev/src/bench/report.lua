-- wrk script of `npm run bench` (tools/dev/src/bench/wrk.ts). Configured by environment:
--   BENCH_METHOD    GET (default) or POST
--   BENCH_PATHS     space-separated request paths, used in turn (default: the URL's path)
--   BENCH_TOKEN     bearer token (optional)
--   BENCH_BODY      request body; every "{n}" becomes a value unique to this request (POST)
--   BENCH_IDEMPOTENCY  "1": send a unique Idempotency-Key with each request
--   BENCH_RUN       prefix that keeps "{n}" unique across runs
-- Counts responses by status per thread and prints one JSON line (prefixed "BENCH_JSON ") in done().

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

local method, paths, body, headers, idempotency, run, n, tid

function init(args)
  tid = wrk.thread:get("tid")
  method = os.getenv("BENCH_METHOD") or "GET"
  paths = {}
  for p in string.gmatch(os.getenv("BENCH_PATHS") or "", "%S+") do
    table.insert(paths, p)
  end
  if #paths == 0 then
    table.insert(paths, wrk.path)
  end
  body = os.getenv("BENCH_BODY")
  idempotency = os.getenv("BENCH_IDEMPOTENCY") == "1"
  run = os.getenv("BENCH_RUN") or "0"
  headers = {}
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
  if body then
    headers["Content-Type"] = "application/json"
  end
  statuses = {}
  n = 0
end

function request()
  n = n + 1
  local path = paths[(n % #paths) + 1]
  local unique = run .. "-" .. tid .. "-" .. n
  if idempotency then
    headers["Idempotency-Key"] = "bench-" .. unique
  end
  local b = nil
  if body then
    b = string.gsub(body, "{n}", unique)
  end
  return wrk.format(method, path, headers, b)
end

function response(status, hdrs, resp)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, count in pairs(s) do
      counts[status] = (counts[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"durationUs":%d,"bytes":%d,"p50Us":%d,"p90Us":%d,"p99Us":%d,"maxUs":%d,"meanUs":%.1f,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ",")))
end

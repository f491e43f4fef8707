-- wrk script for benchmarks/bench_decide.py: POSTs /v1/decide bodies for random known
-- customers and prints one machine-readable summary line when the run ends.
--
--   wrk -t1 -c32 -d5s --timeout 10s -s benchmarks/wrk_decide.lua http://127.0.0.1:8000 \
--       -- bodies.jsonl [seed]
--
-- bodies.jsonl holds one JSON request body per line. Each request is formatted once
-- in init(), so request() only draws a random index and the client stays cheap.

local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

local prepared = {}

function init(args)
  local path = args[1]
  if path == nil then
    error("usage: wrk ... -s wrk_decide.lua URL -- bodies.jsonl [seed]")
  end
  local seed = tonumber(args[2] or "1")
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(path) do
    if #line > 0 then
      prepared[#prepared + 1] = wrk.format("POST", "/v1/decide", headers, line)
    end
  end
  if #prepared == 0 then
    error("no request bodies in " .. path)
  end
  math.randomseed(seed * 1000 + (thread_number or 0))
end

function request()
  return prepared[math.random(#prepared)]
end

-- Latencies in microseconds; errors.status counts responses with status >= 400.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, "max": %d, '
      .. '"p50": %d, "p90": %d, "p99": %d, "p99.9": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)
  ))
end

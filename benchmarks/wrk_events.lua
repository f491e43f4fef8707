-- wrk script for benchmarks/bench_data.py: POSTs new customer events to /v1/events, one
-- per request or batches of N, and prints one machine-readable summary line at the end.
--
--   wrk -t1 -c4 -d5s --timeout 10s -s benchmarks/wrk_events.lua http://127.0.0.1:8000 \
--       -- BATCH RUN_ID CUSTOMERS
--
-- Every event has an id never sent before (RUN_ID, the thread, a counter), so each
-- one is a real insert, not a duplicate. BATCH 1 sends a bare event; more sends
-- {"events": [...]}. Bodies are built in request(): string.format and table.concat
-- on LuaJIT, a few microseconds per event.

local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

local batch = 1
local run_id = "r"
local customers = 1000
local counter = 0
local headers = { ["Content-Type"] = "application/json" }
local occurred_at = os.date("!%Y-%m-%dT%H:%M:%SZ")

function init(args)
  batch = tonumber(args[1] or "1")
  run_id = (args[2] or "r") .. "-" .. tostring(thread_number or 0)
  customers = tonumber(args[3] or "1000")
  math.randomseed(os.time() + (thread_number or 0))
end

local function event()
  counter = counter + 1
  return string.format(
    '{"event_id":"%s-%d","customer_id":"h%05d","type":"page_view","occurred_at":"%s"}',
    run_id, counter, math.random(0, customers - 1), occurred_at
  )
end

function request()
  local body
  if batch == 1 then
    body = event()
  else
    local parts = {}
    for i = 1, batch do
      parts[i] = event()
    end
    body = '{"events":[' .. table.concat(parts, ",") .. "]}"
  end
  return wrk.format("POST", "/v1/events", headers, body)
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

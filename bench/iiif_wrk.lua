-- bench/iiif_wrk.lua: wrk walks a list of IIIF tile URLs (bench/iiif).
--
--   wrk -t2 -c8 -d15s --latency -s bench/iiif_wrk.lua http://127.0.0.1:PORT -- PREFIX urls.txt [THREADS [TOKEN]]
--
-- Each request is PREFIX .. the next line of urls.txt; each wrk thread walks the whole list in
-- order from its own starting point (thread i of n starts i/n of the way in), wrapping around.
-- TOKEN, when given, is sent as "Authorization: Bearer TOKEN" (a secured gateway's).
-- At the end prints one line for bench/iiif:
--   wrk requests=N seconds=S per_s=R p50_ms=A p90_ms=B p99_ms=C max_ms=D bytes_mean=E
--       errors_status=F errors_socket=G

local prefix, lines, headers = nil, {}, {}
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1]
  for line in io.lines(args[2]) do
    if #line > 0 then lines[#lines + 1] = line end
  end
  if #lines == 0 then error("no URLs in " .. args[2]) end
  local n = tonumber(args[3] or "2")
  if args[4] and #args[4] > 0 then headers["Authorization"] = "Bearer " .. args[4] end
  next_at = math.floor((id - 1) * #lines / n) + 1
end

function request()
  local path = prefix .. lines[next_at]
  next_at = next_at % #lines + 1
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "wrk requests=%d seconds=%.2f per_s=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f " ..
    "bytes_mean=%d errors_status=%d errors_socket=%d\n",
    summary.requests, s, summary.requests / s, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, summary.bytes / math.max(1, summary.requests),
    e.status, e.connect + e.read + e.write + e.timeout))
end

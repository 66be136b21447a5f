-- wrk script for bench/api: prints one machine-readable line at the end.
--
-- WRK_MAX_REQUESTS=N (environment): for the sequential baseline (`wrk -t1
-- -c1`, so one request at a time): after N responses the thread stops and
-- sends SIGINT to wrk (its parent's pid is $PPID of the shell os.execute
-- starts), which ends wrk's duration sleep at once and prints the report, so
-- -d is only a cap. Only then is a response() callback defined: wrk parses
-- headers and bodies in Lua only when one exists, which would slow the load
-- runs down.
--
-- Output (stdout, after wrk's own report):
--   WRK_JSON {"requests":…,"duration_us":…,"bytes":…,"errors":{…},"lat_us":{…}}

local max_requests = tonumber(os.getenv("WRK_MAX_REQUESTS") or "0") or 0

if max_requests > 0 then
  local count = 0
  function response(status, headers, body)
    count = count + 1
    if count == max_requests then
      wrk.thread:stop()
      -- system() ignores SIGINT in wrk while it waits: signal from a detached subshell after it returned.
      os.execute("(sleep 0.05; kill -INT $PPID) >/dev/null 2>&1 &")
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"lat_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end

-- wrk script for bench/run.sh: every request is a POST of the same small JSON event (the body
-- the echo functions return; BENCH_BODY replaces it, e.g. {"ms":100} for the sleep function),
-- and done() prints one machine-readable line "WRK {json}" (latencies in microseconds).
wrk.method = "POST"
local body = os.getenv("BENCH_BODY")
if body == nil or body == "" then
   body = '{"orderId":7,"item":"book"}'
end
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK {"requests":%d,"duration_us":%d,"bytes":%d,"rps":%.1f,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"mean_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      summary.requests / (summary.duration / 1e6),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end

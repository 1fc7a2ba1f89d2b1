-- Shared by the wrk scripts of benches/load.sh: one machine-readable summary line.
-- Latencies in milliseconds; "errors" counts socket errors and HTTP statuses >= 400, and
-- the kinds follow (a server closing kept-alive connections shows up as read errors).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d seconds=%.2f rate=%.1f errors=%d p50_ms=%.2f p99_ms=%.2f" ..
    " (connect=%d read=%d write=%d timeout=%d status=%d)\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect, e.read, e.write, e.timeout, e.status))
end

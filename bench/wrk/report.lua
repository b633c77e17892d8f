-- wrk script of the jwtgate benchmark: an optional POST body, and one
-- machine-readable result line printed when the run is done.
--
-- BENCH_BODY_BYTES, when set above 0, turns every request into a POST with a
-- body of that many bytes.

local body_bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "0") or 0
if body_bytes > 0 then
    wrk.method = "POST"
    wrk.body = string.rep("x", body_bytes)
    wrk.headers["Content-Type"] = "application/octet-stream"
end

-- Print requests/s, latency percentiles in microseconds and error counts as one
-- JSON object after the marker BENCH_RESULT.
function done(summary, latency, requests)
    local seconds = summary.duration / 1000000
    local errors = summary.errors
    io.write(string.format(
        'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "rps": %.3f, ' ..
        '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}, ' ..
        '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
        summary.requests, summary.duration, summary.bytes, summary.requests / seconds,
        latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end

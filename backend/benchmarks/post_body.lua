-- wrk script: POST the body from the file named in BODY_FILE (set by bench.py).
local path = os.getenv("BODY_FILE")
local file = assert(io.open(path, "rb"), "cannot open BODY_FILE " .. tostring(path))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
-- The Open Inference Protocol's binary tensors: the JSON header's length (bench.py sets it).
local header_length = os.getenv("INFERENCE_HEADER_LENGTH")
if header_length and header_length ~= "" then
  wrk.headers["Content-Type"] = "application/octet-stream"
  wrk.headers["Inference-Header-Content-Length"] = header_length
end
local key = os.getenv("API_KEY")
if key and key ~= "" then
  wrk.headers["X-API-Key"] = key
end

-- Count non-2xx replies so a fast stream of errors is never reported as throughput.
local errors = 0
response = function(status, headers, body)
  if status >= 300 then
    errors = errors + 1
  end
end

done = function(summary, latency, requests)
  io.write(string.format("NON2XX %d\n", summary.errors.status))
  -- wrk --latency prints no p95: print the percentiles bench.py reports, in microseconds.
  io.write(string.format("PERCENTILES_US %d %d %d %d\n", latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99)))
end

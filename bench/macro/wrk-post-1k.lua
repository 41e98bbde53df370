-- wrk script for the request-rate benchmark: every request carries a 1 KiB body (the backend
-- answers with 1 KiB), so 1 KiB travels each way per request.
wrk.method = "POST"
wrk.body = string.rep("a", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"

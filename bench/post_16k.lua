-- wrk script: POST a 16 KiB body to /echo; the server must read it all and send it back.
-- Measures request-body handling (reassembly across reads, receive() messages) and a 16 KiB write.
wrk.method = "POST"
wrk.path = "/echo"
wrk.body = string.rep("x", 16384)
wrk.headers["Content-Type"] = "application/octet-stream"

-- wrk script: every request sends the file $BODY_FILE with $METHOD and $CONTENT_TYPE, and the
-- header $EXTRA_HEADER ("Name: value") when set.
-- Responses are not parsed here (that would slow wrk down): loadtest.sh checks one answer with
-- curl before each run, and wrk counts non-2xx statuses itself.
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = file:read("*a")
file:close()
wrk.method = os.getenv("METHOD") or "POST"
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE")
local extra = os.getenv("EXTRA_HEADER")
if extra and extra ~= "" then
  local name, value = extra:match("^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
end

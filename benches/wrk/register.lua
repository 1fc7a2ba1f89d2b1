-- POST /register (RFC 7591) with a distinct client name per request: the flood half of
-- the bounded-memory check in benches/load.sh.
dofile("benches/wrk/report.lua")
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"redirect_uris":["http://127.0.0.1:9/cb"],"token_endpoint_auth_method":"none",' ..
    '"client_name":"flood %d"}', n)
  return wrk.format("POST", "/register", {["Content-Type"] = "application/json"}, body)
end

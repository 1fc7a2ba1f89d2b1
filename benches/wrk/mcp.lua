-- POST /mcp tools/list with the bearer token and MCP session of one completed flow
-- (TOKEN and SESSION come from `flows session`, exported by benches/load.sh).
dofile("benches/wrk/report.lua")
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Mcp-Protocol-Version"] = "2025-06-18"
local session = os.getenv("SESSION")
if session ~= nil and session ~= "" then
  wrk.headers["Mcp-Session-Id"] = session
end

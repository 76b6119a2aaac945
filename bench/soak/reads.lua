-- Widget loads: the config of a random tenant and the widget script, one
-- request every PACE_MS per connection.
dofile("bench/soak/status.lua")
local n = tonumber(os.getenv("TENANTS") or "200")
local pace = tonumber(os.getenv("PACE_MS") or "5")
math.randomseed(os.time() + os.clock() * 1000000)
request = function()
  if math.random(1, 2) == 1 then
    return wrk.format("GET", "/api/widget/config", { ["X-Client-ID"] = "tenant_" .. math.random(0, n - 1) })
  end
  return wrk.format("GET", "/static/widget.js", { ["Accept-Encoding"] = "br, gzip" })
end
delay = function() return pace end

-- wrk: GET /api/widget/config for a random one of TENANTS tenants named
-- tenant_0 .. tenant_{TENANTS-1} (as benches/tenancy.rs creates them).
local n = tonumber(os.getenv("TENANTS") or "1")
math.randomseed(os.time())
request = function()
  local id = "tenant_" .. math.random(0, n - 1)
  return wrk.format("GET", "/api/widget/config", { ["X-Client-ID"] = id })
end

-- Dashboard-style reads by signed-in owners (tokens in TOKENS_FILE, one
-- "tenant token" a line): FAQs, conversations, the overview's numbers, and
-- now and then the grouped summary (6 a minute per user, then 429).
dofile("bench/soak/status.lua")
local pace = tonumber(os.getenv("PACE_MS") or "100")
local owners = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  local tenant, token = line:match("^(%S+) (%S+)$")
  if tenant then table.insert(owners, { tenant = tenant, token = token }) end
end
local paths = {
  "/api/faqs", "/api/conversations?page=1", "/api/analytics/summary?days=30&groups=false",
  "/api/faqs", "/api/conversations?page=1", "/api/analytics/summary?days=30",
}
math.randomseed(os.time() + os.clock() * 1000000)
request = function()
  local o = owners[math.random(1, #owners)]
  return wrk.format("GET", paths[math.random(1, #paths)], {
    ["X-Client-ID"] = o.tenant, ["Authorization"] = "Bearer " .. o.token,
  })
end
delay = function() return pace end

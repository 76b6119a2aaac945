-- wrk: POST /api/chat to a random one of TENANTS tenants named tenant_0 ..
-- tenant_{TENANTS-1} (bench/citus.sh gives them FAQs), questions in turn.
local questions = {
  "what time do you close on sunday", "how fast is delivery", "do you deliver outside the US",
  "is there a tracking number for my shipment", "can I get a refund if I don't like it",
  "do you take apple pay", "I forgot my password", "how long is the guarantee",
  "student pricing?", "do you do gear rentals", "what is the capital of france", "tell me a joke",
}
local n = tonumber(os.getenv("TENANTS") or "1")
local i = 0
math.randomseed(os.time())
request = function()
  i = i + 1
  local q = questions[(i % #questions) + 1]
  local id = "tenant_" .. math.random(0, n - 1)
  return wrk.format("POST", "/api/chat",
    { ["Content-Type"] = "application/json", ["X-Client-ID"] = id },
    '{"message": "' .. q .. '"}')
end

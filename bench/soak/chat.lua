-- Well-behaved visitors: one question every PACE_MS per connection, to a
-- random one of TENANTS tenants; one in five is new wording (an inference),
-- the rest repeat (the question cache).
dofile("bench/soak/status.lua")
local n = tonumber(os.getenv("TENANTS") or "200")
local pace = tonumber(os.getenv("PACE_MS") or "40")
local questions = {
  "when do you open", "how fast is delivery", "do you deliver abroad", "can I get a refund",
  "do you take apple pay", "how long is the guarantee", "student pricing?", "do you rent tents",
  "what is the capital of france", "tell me a joke",
}
math.randomseed(os.time() + os.clock() * 1000000)
request = function()
  local q = questions[math.random(1, #questions)]
  if math.random(1, 5) == 1 then q = q .. " number " .. math.random(1, 1000000) end
  return wrk.format("POST", "/api/chat", {
    ["X-Client-ID"] = "tenant_" .. math.random(0, n - 1),
    ["Content-Type"] = "application/json",
  }, '{"message": "' .. q .. '"}')
end
delay = function() return pace end

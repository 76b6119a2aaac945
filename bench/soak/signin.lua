-- Sign-ins: owners with their password, and one in three a wrong one
-- (each costs an argon2 hash; the per-account limit answers 429).
dofile("bench/soak/status.lua")
local pace = tonumber(os.getenv("PACE_MS") or "200")
local owners = tonumber(os.getenv("OWNERS") or "10")
math.randomseed(os.time() + os.clock() * 1000000)
request = function()
  local i = math.random(0, owners - 1)
  local password = "soak password " .. i
  if math.random(1, 3) == 1 then password = "wrong guess " .. math.random(1, 1000000) end
  return wrk.format("POST", "/api/auth/login", { ["Content-Type"] = "application/json" },
    '{"email": "owner' .. i .. '@soak.test", "password": "' .. password .. '"}')
end
delay = function() return pace end

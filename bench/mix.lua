-- wrk: POST /api/chat with one of bench/lean.sh's question mixes (MIX):
--   one20          one tenant, the same 20-word question (after the first,
--                  the question cache answers it: no inference)
--   one20-unique   one tenant, the 20-word question made unique by a number
--                  (every request is an inference)
--   short-unique   TENANTS tenants (bench_0 ..), a short question of
--                  bench/questions.txt made unique by a number
--   zipf           TENANTS tenants, a question of bench/questions.txt drawn
--                  by Zipf's law (rank r with weight 1/r^ZIPF_S, s = 1.1)
--   spread         TENANTS tenants named tenant_0 .. (benches/tenancy.rs),
--                  each request a random tenant and a random short question
--   each           TENANTS tenants in turn (each wrk thread goes through
--                  all), a random short question: warms every tenant
-- benches/worker.rs builds the same texts for the worker alone.
local mix = os.getenv("MIX") or "one20"
local tenants = tonumber(os.getenv("TENANTS") or "20")
local s = tonumber(os.getenv("ZIPF_S") or "1.1")
local prefix = os.getenv("TENANT_PREFIX") or "bench_"
local LONG = "could you please tell me whether you deliver outdoor gear like tents and backpacks to home addresses outside the country"

local questions = {}
for line in io.lines(os.getenv("QUESTIONS") or "bench/questions.txt") do
  questions[#questions + 1] = line
end
local cdf, total = {}, 0
for r = 1, #questions do
  total = total + 1 / r ^ s
  cdf[r] = total
end

local function zipf()
  local u = math.random() * total
  local lo, hi = 1, #questions
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return questions[lo]
end

local counter = 0
local thread_id = 0
function setup(thread)
  thread_id = thread_id + 1
  thread:set("thread_tag", thread_id)
end

function init(args)
  math.randomseed(os.time() + (thread_tag or 0) * 7919)
end

request = function()
  counter = counter + 1
  local tenant = prefix .. math.random(0, tenants - 1)
  local q
  if mix == "one20" then
    tenant, q = prefix .. "0", LONG
  elseif mix == "one20-unique" then
    tenant, q = prefix .. "0", LONG .. " #" .. (thread_tag or 0) .. "-" .. counter
  elseif mix == "short-unique" then
    q = questions[math.random(1, #questions)] .. " #" .. (thread_tag or 0) .. "-" .. counter
  elseif mix == "each" then
    tenant, q = prefix .. ((counter - 1) % tenants), questions[math.random(1, #questions)]
  elseif mix == "zipf" then
    q = zipf()
  else
    q = questions[math.random(1, #questions)]
  end
  -- Headers given here replace wrk.headers: name them all.
  local headers = { ["X-Client-ID"] = tenant, ["Content-Type"] = "application/json" }
  return wrk.format("POST", "/api/chat", headers, '{"message": "' .. q .. '"}')
end

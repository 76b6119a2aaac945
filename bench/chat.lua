-- wrk: POST /api/chat with questions taken in turn from a fixed list.
local questions = {
  "what time do you close on sunday", "how fast is delivery", "do you deliver outside the US",
  "is there a tracking number for my shipment", "can I get a refund if I don't like it",
  "do you take apple pay", "I forgot my password", "how long is the guarantee",
  "student pricing?", "do you do gear rentals", "what is the capital of france", "tell me a joke",
}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Client-ID"] = os.getenv("CLIENT_ID") or "bench"
request = function()
  i = i + 1
  local q = questions[(i % #questions) + 1]
  return wrk.format(nil, nil, nil, '{"message": "' .. q .. '"}')
end

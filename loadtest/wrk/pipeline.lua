-- Sends DEPTH requests per write on each connection (HTTP/1.1 pipelining), as TechEmpower's
-- plaintext test does with 16: wrk ... -s loadtest/wrk/pipeline.lua -- 16
local depth = 1
function init(args)
  depth = tonumber(args[1]) or 1
  local batch = {}
  for i = 1, depth do
    batch[i] = wrk.format()
  end
  req = table.concat(batch)
end
function request()
  return req
end

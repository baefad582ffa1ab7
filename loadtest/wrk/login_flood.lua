-- Wrong-password logins, each from a client address and for an email never used before in
-- this run (a counter per wrk thread, mixed with the thread's number), the address given in
-- X-Forwarded-For: the server under test trusts 127.0.0.1 as its proxy (--trusted-proxies), so
-- every request counts against a different address, as a flood from many addresses would.
--
--   wrk -t1 -c32 -d10s -s loadtest/wrk/login_flood.lua http://127.0.0.1:8080/api/sessions
--   wrk ... -s loadtest/wrk/login_flood.lua URL -- 1000000 1 /tmp/done
--     stops after a million answers (key series 1: new keys again) and touches /tmp/done: wrk
--     itself waits out -d, so the caller sends it SIGINT then, and wrk prints its summary.
--
-- Prints one FLOODJSON line: requests, and answers by status.
local threads = {}
local id = 0

function setup(thread)
  id = id + 1
  thread:set("tid", id)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  answers = 0
  limit = tonumber(args[1] or "0")
  series = tonumber(args[2] or "0")
  marker = args[3]
  statuses = {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local k = (series * 8 + tid) * 16777216 + n
  local addr = string.format("10.%d.%d.%d", math.floor(k / 65536) % 256, math.floor(k / 256) % 256, k % 256)
  local body = string.format('{"email":"flood-%d-%d-%d@example.com","password":"not the password"}', series, tid, n)
  wrk.headers["X-Forwarded-For"] = addr
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answers = answers + 1
  if limit > 0 and answers >= limit then
    if marker then
      local f = io.open(marker, "w")
      if f then f:close() end
    end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local all, parts = {}, {}
  for _, t in ipairs(threads) do
    for code, count in pairs(t:get("statuses") or {}) do
      all[code] = (all[code] or 0) + count
    end
  end
  for code, count in pairs(all) do
    table.insert(parts, string.format('"%d":%d', code, count))
  end
  io.write(string.format('FLOODJSON {"requests":%d,"duration_us":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, table.concat(parts, ",")))
end

-- tests/bench/post.lua: wrk script of `make bench` (tests/bench/bench.py).
--
--   wrk ... -s post.lua URL -- REQUEST_FILE THREADS ONCE
--
-- REQUEST_FILE holds one request a line, fields separated by tabs: the path, then
-- "Name: value" headers, the body last (JSON: no raw tabs or newlines).  Thread K takes
-- lines K, K+THREADS, ... and cycles them; with ONCE=1 it posts each of its lines once,
-- then GET /healthz until its last POST answered, then stops.  Per thread it counts 2xx
-- and other answers and sums "received" of the webhook's answers; done() prints one line
-- "BENCH-JSON {...}" with the totals for bench.py.

local threads = {}
local counter = 0

function setup(thread)
	thread:set("tid", counter)
	counter = counter + 1
	table.insert(threads, thread)
end

local reqs = {}
local idx = 0
local once = false
local health
sent, answered, ok, bad, received = 0, 0, 0, 0, 0

local function split(line)
	local out = {}
	for field in (line .. "\t"):gmatch("([^\t]*)\t") do
		out[#out + 1] = field
	end
	return out
end

function init(args)
	local nth = tonumber(args[2])
	once = args[3] == "1"
	local n = 0
	for line in io.lines(args[1]) do
		if n % nth == tid then
			local f = split(line)
			local headers = {}
			for i = 2, #f - 1 do
				local k, v = f[i]:match("^([^:]+): (.*)$")
				headers[k] = v
			end
			reqs[#reqs + 1] = wrk.format("POST", f[1], headers, f[#f])
		end
		n = n + 1
	end
	health = wrk.format("GET", "/healthz")
end

-- ONCE: after its last POST a connection asks /healthz once a second at most, so the
-- wait for the last answers costs next to nothing (and stop() may end it sooner)
function delay()
	if once and idx >= #reqs then
		return 1000
	end
	return 0
end

function request()
	if idx >= #reqs then
		if once or #reqs == 0 then
			return health
		end
		idx = 0
	end
	idx = idx + 1
	sent = sent + 1
	return reqs[idx]
end

function response(status, headers, body)
	local n = body and body:match('"received":(%d+)')
	if n == nil and status < 300 and body ~= nil and body:match('"status"') then
		return -- a /healthz answer
	end
	answered = answered + 1
	if status >= 200 and status < 300 then
		ok = ok + 1
		if n then
			received = received + tonumber(n)
		end
	else
		bad = bad + 1
	end
	if once and idx >= #reqs and answered >= sent then
		wrk.thread:stop()
	end
end

function done(summary, latency, requests)
	local t = {sent = 0, answered = 0, ok = 0, bad = 0, received = 0}
	for _, th in ipairs(threads) do
		for k, _ in pairs(t) do
			t[k] = t[k] + (th:get(k) or 0)
		end
	end
	local e = summary.errors
	io.write(string.format(
		'BENCH-JSON {"sent":%d,"answered":%d,"ok":%d,"bad":%d,"received":%d,' ..
		'"duration_us":%d,"requests":%d,"connect":%d,"read":%d,"write":%d,' ..
		'"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
		t.sent, t.answered, t.ok, t.bad, t.received, summary.duration, summary.requests,
		e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50),
		latency:percentile(99), latency.max))
end

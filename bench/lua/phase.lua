-- wrk script for one benchmark phase (create, read or update of CarePlan).
-- bench/loadgen.py prepends a `bench = {...}` table: method, base path, ids, body parts and
-- slots, the number of wrk threads, an id offset and a tag. Each wrk thread walks the id list
-- with a stride of the thread count, so concurrent requests touch different resources.

local thread_count = 0

function setup(thread)
   thread:set("tid", thread_count)
   thread_count = thread_count + 1
end

local counter = 0
local headers = {}

function init(args)
   headers["Accept"] = "application/fhir+json"
   if bench.method ~= "GET" then
      headers["Content-Type"] = "application/fhir+json"
   end
end

function request()
   local path = bench.base
   local id = ""
   if #bench.ids > 0 then
      local index = (bench.offset + counter * bench.nthreads + tid) % #bench.ids
      id = bench.ids[index + 1]
      path = path .. "/" .. id
   end
   counter = counter + 1
   local body = nil
   if #bench.parts > 0 then
      local seq = bench.tag .. "-" .. tid .. "-" .. counter
      local out = { bench.parts[1] }
      for k, slot in ipairs(bench.slots) do
         if slot == "id" then
            out[#out + 1] = id
         else
            out[#out + 1] = seq
         end
         out[#out + 1] = bench.parts[k + 1]
      end
      body = table.concat(out)
   end
   return wrk.format(bench.method, path, headers, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%.0f,"p99_us":%.0f,' ..
      '"max_us":%.0f,"errors_connect":%d,"errors_read":%d,"errors_write":%d,' ..
      '"errors_status":%d,"errors_timeout":%d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end

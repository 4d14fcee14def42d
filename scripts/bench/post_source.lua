-- wrk script for `scripts/bench.sh`: POST /api/v1/sources with a unique name per request.
--
-- Environment:
--   BENCH_NAME_PREFIX  lower-case letters, digits, '-'; unique per wrk run (names are unique)
--   BENCH_API_KEY      sent as `Authorization: Bearer <key>` (omitted when empty)
--
-- Each wrk thread has its own Lua state: `setup` (main state) numbers the threads and the thread
-- counts its own requests, so `<prefix>-t<thread>-<n>` never repeats within or across runs.

local thread_counter = 0

function setup(thread)
   thread_counter = thread_counter + 1
   thread:set("thread_no", thread_counter)
end

local prefix = "bench"
local headers = {}
local n = 0

function init(args)
   prefix = (os.getenv("BENCH_NAME_PREFIX") or "bench") .. "-t" .. tostring(thread_no or 0)
   headers["Content-Type"] = "application/json"
   local key = os.getenv("BENCH_API_KEY")
   if key and key ~= "" then
      headers["Authorization"] = "Bearer " .. key
   end
end

function request()
   n = n + 1
   local body = string.format(
      '{"name":"%s-%d","pg_host":"127.0.0.1","pg_port":5432,"pg_database":"db",'
         .. '"pg_username":"u","pg_password":"pw","publication_name":"pub_%d","replication_id":%d}',
      prefix, n, n, n)
   return wrk.format("POST", "/api/v1/sources", headers, body)
end

-- wrk script for `scripts/bench-wal.sh`: GET /api/v1/metrics/wal for a random source and a random
-- one-hour window, newest first, limit 100.
--
-- Environment:
--   BENCH_IDS_FILE     file with one source id per line (the real ids; required)
--   BENCH_T_START      first second (Unix time) of the history (required)
--   BENCH_T_END        last second (Unix time) of the history (required)
--   BENCH_WINDOW       window length in seconds (default 3600)
--   BENCH_LIMIT        limit (default 100)
--   BENCH_API_KEY      sent as `Authorization: Bearer <key>` (omitted when empty)
--
-- Each wrk thread has its own Lua state: `setup` (main state) numbers the threads so each seeds
-- its own random sequence.

local thread_counter = 0

function setup(thread)
   thread_counter = thread_counter + 1
   thread:set("thread_no", thread_counter)
end

local ids = {}
local headers = {}
local t_start, t_end, window, limit

function init(args)
   local path = os.getenv("BENCH_IDS_FILE")
   assert(path and path ~= "", "BENCH_IDS_FILE is required")
   for line in io.lines(path) do
      local id = line:match("^%s*(%d+)%s*$")
      if id then
         ids[#ids + 1] = id
      end
   end
   assert(#ids > 0, "no ids in " .. path)
   t_start = assert(tonumber(os.getenv("BENCH_T_START")), "BENCH_T_START is required")
   t_end = assert(tonumber(os.getenv("BENCH_T_END")), "BENCH_T_END is required")
   window = tonumber(os.getenv("BENCH_WINDOW") or "") or 3600
   limit = tonumber(os.getenv("BENCH_LIMIT") or "") or 100
   assert(t_end - window > t_start, "the history is shorter than one window")
   local key = os.getenv("BENCH_API_KEY")
   if key and key ~= "" then
      headers["Authorization"] = "Bearer " .. key
   end
   math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
end

local function rfc3339(t)
   return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

function request()
   local id = ids[math.random(#ids)]
   local from = math.random(t_start, t_end - window)
   local path = string.format("/api/v1/metrics/wal?source_id=%s&from=%s&to=%s&limit=%d",
      id, rfc3339(from), rfc3339(from + window), limit)
   return wrk.format("GET", path, headers)
end

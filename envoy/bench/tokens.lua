-- wrk script for scripts/bench.sh: every request is `GET <url path>` with
-- `Authorization: Bearer <token>`, the tokens read from the file named by BENCH_TOKENS
-- (one per line) and used round-robin, each wrk thread starting at a different place.
-- Every mode uses this script, with one token or many, so wrk's own cost is the same in all.

local tokens = {}
local next_token = 0

function init(args)
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    if #line > 0 then
      tokens[#tokens + 1] = "Bearer " .. line
    end
  end
  next_token = math.random(#tokens)
end

function request()
  next_token = next_token % #tokens + 1
  return wrk.format("GET", wrk.path, { ["Authorization"] = tokens[next_token] })
end

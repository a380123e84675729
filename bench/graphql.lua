-- wrk script for the benchmark's GraphQL workloads, identical for consentry
-- and the baseline. BENCH_KIND picks the workload (person, people,
-- update); BENCH_IDS names a file of person ids (one per line), rotated
-- through so no single row is hot; BENCH_AFTER is the `people` cursor.
-- An update sets a person's source type to the one after what this script
-- last set it to, so every update changes the card: BENCH_STATE names a
-- file that carries the request counter from one run to the next (a warm-up
-- and its measured run, consentry's run and the baseline's).
-- Every response is checked: a non-200 status or an "errors" member counts
-- as an error. done() prints one line: RESULT rps p99_ms errors requests.

local FIELDS = "id firstName lastName email company complianceCard { authorizationType authorizationOther consentDate processingPurpose sourceType sourceOther }"
local QUERIES = {
  person = "query Person($id: UUID!) { person(id: $id) { " .. FIELDS .. " } }",
  people = "query People($after: String) { people(first: 50, after: $after, filter: {authorizationTypes: [CONSENT, LEGITIMATE_INTEREST]}) { edges { cursor node { " .. FIELDS .. " } } pageInfo { hasNextPage endCursor } } }",
  update = "mutation UpdateCard($id: UUID!, $source: SourceType!) { updateComplianceCard(personId: $id, input: {sourceType: $source}) { id complianceCard { sourceType } } }",
}
local NAMES = { person = "Person", people = "People", update = "UpdateCard" }
local SOURCES = { "CRM_SYNC", "IMPORT", "MANUAL_UPLOAD", "CHROME_EXTENSION" }

local threads = {}
local counter = 1

function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  kind = os.getenv("BENCH_KIND")
  after = os.getenv("BENCH_AFTER") or ""
  ids = {}
  for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
  i = offset or 0
  local state = os.getenv("BENCH_STATE")
  local f = state and io.open(state, "r")
  if f then i = tonumber(f:read("*l")) or i; f:close() end
  errors = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
end

function request()
  i = i + 1
  local id = ids[(i % #ids) + 1]
  local vars
  if kind == "person" then
    vars = '{"id":"' .. id .. '"}'
  elseif kind == "people" then
    if after == "" then vars = '{"after":null}' else vars = '{"after":"' .. after .. '"}' end
  else
    -- i advances by #ids between two updates of one person, so the pass
    -- number, and with it the source, changes on every update.
    local pass = math.floor(i / #ids)
    vars = '{"id":"' .. id .. '","source":"' .. SOURCES[(pass % #SOURCES) + 1] .. '"}'
  end
  local body = '{"operationName":"' .. NAMES[kind] .. '","query":"' .. QUERIES[kind] .. '","variables":' .. vars .. '}'
  return wrk.format(nil, "/graphql", nil, body)
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    errors = errors + 1
    if errors == 1 then io.stderr:write("first error: " .. status .. " " .. string.sub(body, 1, 300) .. "\n") end
  end
end

function done(summary, latency, requests)
  local errs = 0
  for _, t in ipairs(threads) do errs = errs + t:get("errors") end
  local state = os.getenv("BENCH_STATE")
  if state and #threads == 1 then
    local f = assert(io.open(state, "w"))
    f:write(string.format("%d\n", threads[1]:get("i")))
    f:close()
  end
  io.write(string.format("RESULT %.1f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000, errs, summary.requests))
end

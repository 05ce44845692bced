-- Argo CD health check for ferry.dev/Job (resource.customizations.health.ferry.dev_Job).
-- Healthy when Finished; Degraded on Failed, TimedOut, Cancelled; Suspended while
-- spec.suspend holds it; Progressing otherwise, including while the status is older than the
-- spec (observedGeneration) and while Blocked (it recovers by itself; the message says why).
local hs = {}
if obj.status == nil or obj.status.state == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Ferry to accept the Job"
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Ferry to observe the latest spec"
  return hs
end
local state = obj.status.state
local reason = obj.status.reason or ""
local message = obj.status.message or ""
local text = state
if reason ~= "" then text = text .. " (" .. reason .. ")" end
if message ~= "" then text = text .. ": " .. message end
if state == "Finished" then
  hs.status = "Healthy"
elseif state == "Failed" or state == "TimedOut" or state == "Cancelled" then
  hs.status = "Degraded"
elseif state == "Suspended" then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
hs.message = text
return hs

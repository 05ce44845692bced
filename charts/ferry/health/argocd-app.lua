-- Argo CD health check for ferry.dev/App (resource.customizations.health.ferry.dev_App).
-- Healthy when Ready is True (Jobs can use the App); Degraded when Stalled is True or Ready is
-- False (the App is invalid: the message names the field); Progressing while Ferry has not
-- judged the App's latest spec (no status yet, or observedGeneration older than the spec).
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Ferry to judge the App"
  return hs
end
local generation = obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for Ferry to judge the latest spec"
  return hs
end
local ready, stalled
for _, c in ipairs(status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Stalled" then stalled = c end
end
local function text(c)
  local out = c.reason or ""
  if c.message ~= nil and c.message ~= "" then out = out .. ": " .. c.message end
  return out
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = text(stalled)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready)
elseif ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = text(ready)
else
  hs.status = "Progressing"
  hs.message = "Waiting for Ferry to judge the App"
end
return hs

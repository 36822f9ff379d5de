-- Argo CD health for ops.tradesense.io/ScalingPolicy from its HPA-style conditions.
local hs = {}
local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then return c end
  end
  return nil
end
if obj.status == nil or (obj.status.observedGeneration or 0) < (obj.metadata.generation or 0) then
  hs.status = "Progressing"
  hs.message = "Waiting for tradesense-operator to evaluate the current spec"
  return hs
end
local able = condition("AbleToScale")
local active = condition("ScalingActive")
local fallback = condition("FallbackActive")
if active ~= nil and active.status == "False" and active.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = active.message or "Paused"
elseif able ~= nil and able.status == "False" then
  hs.status = "Degraded"
  hs.message = able.reason .. ": " .. (able.message or "")
elseif active ~= nil and active.status == "False" then
  hs.status = "Degraded"
  hs.message = active.reason .. ": " .. (active.message or "")
elseif fallback ~= nil and fallback.status == "True" then
  hs.status = "Degraded"
  hs.message = "Fallback active: " .. (fallback.message or fallback.reason)
elseif active ~= nil and active.status == "True" then
  hs.status = "Healthy"
  hs.message = active.message or "Scaling active"
else
  hs.status = "Progressing"
  hs.message = "Not evaluated yet"
end
return hs

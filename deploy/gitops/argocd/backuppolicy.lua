-- Argo CD health for ops.tradesense.io/BackupPolicy from its conditions.
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
  hs.message = "Waiting for tradesense-operator to observe the current spec"
  return hs
end
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Scheduling suspended (spec.suspend)"
  return hs
end
local ready = condition("Ready")
local last = condition("LastBackupSucceeded")
local stale = condition("BackupStale")
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. (ready.message or "")
elseif last ~= nil and last.status == "False" then
  hs.status = "Degraded"
  hs.message = "Last backup failed: " .. (last.message or last.reason)
elseif stale ~= nil and stale.status == "True" then
  hs.status = "Degraded"
  hs.message = "Backups are stale: " .. (stale.message or stale.reason)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
else
  hs.status = "Progressing"
  hs.message = "No backup yet"
end
return hs

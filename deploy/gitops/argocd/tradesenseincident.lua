-- Argo CD health for ops.tradesense.io/TradeSenseIncident: phase → Healthy/Progressing/Suspended/Degraded.
local hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for tradesense-operator to plan the incident"
  return hs
end
local phase = obj.status.phase
local message = obj.status.message or ""
if obj.status.currentStep ~= nil and obj.status.currentStep ~= "" then
  message = "step " .. obj.status.currentStep .. ": " .. message
end
if phase == "Succeeded" or phase == "Cancelled" then
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "Blocked" then
  hs.status = "Degraded"
elseif phase == "AwaitingApproval" then
  hs.status = "Suspended"
  message = "awaiting approval: add the step id to spec.approvals. " .. message
else
  hs.status = "Progressing"
end
hs.message = phase .. (message ~= "" and (" — " .. message) or "")
return hs

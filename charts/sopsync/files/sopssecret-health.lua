-- Argo CD health check for sopsync.io/SopsSecret (argocd-cm key
-- resource.customizations.health.sopsync.io_SopsSecret). It reads only the status the
-- controller writes (kstatus style: Ready always, Reconciling and Stalled while true,
-- each with observedGeneration), never spec.encrypted.
-- Argo CD runs it in gopher-lua with only the base, table and package libraries open
-- (no string library, no string methods), so it uses `..` and tostring alone.
hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the sopsync controller to reconcile"
  return hs
end
-- A status written for an older spec says nothing about the current one.
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the sopsync controller to observe generation " .. tostring(generation)
  return hs
end
local ready = nil
local reconciling = nil
for _, condition in ipairs(status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  elseif condition.type == "Reconciling" and condition.status == "True" then
    reconciling = condition
  end
end
if ready ~= nil and generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the sopsync controller to observe generation " .. tostring(generation)
  return hs
end
-- Retrying after a transient failure (Git, API server): still making progress.
if reconciling ~= nil then
  hs.status = "Progressing"
  hs.message = reconciling.message or ""
  return hs
end
if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "Waiting for the sopsync controller to reconcile"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
if ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = ready.message or ""
  return hs
end
hs.status = "Degraded"
hs.message = ready.message or ""
return hs

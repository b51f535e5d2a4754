-- Argo CD health of a PravahJob (pravah.io/PravahJob).
--
--   Succeeded                    -> Healthy
--   Failed                       -> Degraded   (the status message says why)
--   Cancelled (spec.suspend)     -> Suspended
--   Pending, Queued, Running     -> Progressing (with the progress in the message)
--   no status yet, or a status for an older generation -> Progressing
--
-- A finished job stays Healthy or Degraded for good: re-syncing the same manifest never
-- re-runs it. Install it in argocd-cm as resource.customizations.health.pravah.io_PravahJob
-- (see examples/gitops/argocd/argocd-cm-health.yaml).
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Pravah operator to admit the job"
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Pravah operator to observe generation " .. tostring(generation)
  return hs
end
local phase = status.phase
local message = status.message or ""
if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Failed" then
  hs.status = "Degraded"
elseif phase == "Cancelled" then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
  if phase == "Running" and status.progress ~= nil and status.progress.percent ~= nil then
    local shards = ""
    if status.shards ~= nil and status.shards.ready ~= nil then
      shards = ", shards " .. tostring(status.shards.ready)
    end
    message = tostring(status.progress.percent) .. "% done" .. shards
  end
end
if message == "" then
  message = phase
end
hs.message = message
return hs

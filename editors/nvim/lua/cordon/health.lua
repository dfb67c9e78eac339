-- :checkhealth cordon — the binary, its version, and the isolation this host provides
-- (as reported by a short-lived server's `initialize`).
local M = {}

-- vim.health (0.9+: start/ok/warn/error; 0.8: report_*) or the 0.7 `health` module.
local function reporter()
  local h = vim.health
  if not (h and (h.start or h.report_start)) then
    h = require('health')
  end
  return {
    start = h.start or h.report_start,
    ok = h.ok or h.report_ok,
    warn = h.warn or h.report_warn,
    error = h.error or h.report_error,
    info = h.info or h.report_info,
  }
end

local REQUIRED = { userns = true, overlay = true, seccomp = true }

function M.check()
  local report = reporter()
  local cordon = require('cordon')
  report.start('cordon')

  local exe = vim.fn.exepath(cordon.config.cmd)
  if exe == '' then
    report.error(('cordon binary not found: %q'):format(cordon.config.cmd),
      { 'Build cordon and put it in $PATH, or require("cordon").setup({ cmd = "/path/to/cordon" })' })
    return
  end
  report.ok('binary: ' .. exe)

  local version = vim.fn.system({ exe, '--version' })
  if vim.v.shell_error ~= 0 then
    report.error('`cordon --version` failed: ' .. vim.trim(version))
  else
    report.ok('version: ' .. vim.trim(version))
  end

  local rpc = require('cordon.rpc')
  local _, args = cordon.server_command()
  local client, err = rpc.start(exe, args, {})
  if not client then
    report.error('cannot start `cordon serve`: ' .. tostring(err))
    return
  end
  local ierr, result = client:request_sync('initialize', {
    clientInfo = { name = 'cordon.nvim-health', version = '0' },
    capabilities = { approvals = false },
  }, cordon.config.timeout_ms)
  client:stop(2000)
  if ierr then
    report.error('initialize failed: ' .. cordon.format_error(ierr), { client.stderr_tail })
    return
  end
  local info = result.serverInfo or {}
  report.ok(('server: %s %s'):format(tostring(info.name), tostring(info.version)))
  local iso = (result.capabilities or {}).isolation or {}
  for _, k in ipairs({ 'userns', 'overlay', 'seccomp', 'landlock', 'cgroups' }) do
    local v = iso[k]
    if v == true then
      report.ok('isolation: ' .. k)
    elseif REQUIRED[k] then
      report.error('isolation: ' .. k .. ' unavailable: sessions cannot start', { 'Run `cordon doctor` for the fix' })
    else
      report.warn('isolation: ' .. k .. ' unavailable (degraded protection)', { 'Run `cordon doctor` for details' })
    end
  end
end

return M

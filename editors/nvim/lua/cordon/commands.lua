-- cordon.commands: what the user commands do (plugin/cordon.lua only declares them).
local cordon = require('cordon')

local M = {}

local function notify(msg, level)
  vim.notify('cordon: ' .. msg, level or vim.log.levels.INFO)
end

local function isolation_summary(iso)
  if type(iso) ~= 'table' then
    return ''
  end
  local parts = {}
  for _, k in ipairs({ 'userns', 'overlay', 'seccomp', 'landlock', 'cgroups' }) do
    if iso[k] ~= nil then
      table.insert(parts, k .. (iso[k] == true and '+' or '-'))
    end
  end
  return table.concat(parts, ' ')
end

--- :CordonStart [workspace]
function M.start(o)
  local ws = o and o.args ~= '' and o.args or nil
  cordon.start({ workspace = ws }, function(err, s)
    if err then
      return notify('cannot start: ' .. cordon.format_error(err), vim.log.levels.ERROR)
    end
    local info = cordon.server_info() or {}
    local iso = s.isolation or (info.capabilities and info.capabilities.isolation)
    notify(('session %s on %s%s [%s]'):format(s.sessionId, s.workspace,
      s.reused and (' (resumed, %s pending file(s))'):format(tostring(s.changedFiles)) or '',
      isolation_summary(iso)))
  end)
end

-- Request ids of the commands started by :CordonRun that are still running.
local running = {}

--- :CordonRun {cmd} — output streams into the cordon://output buffer.
function M.run(o)
  local output = require('cordon.output')
  local command = o.args
  output.open(cordon.config.output.split)
  local w = output.begin(command)
  local id
  cordon.run(command, {
    on_output = w.write,
    on_violation = w.violation,
    on_start = function(request_id)
      id = request_id
      running[id] = true
    end,
  }, function(err, result)
    if id then
      running[id] = nil
    end
    w.finish(err, result)
    if err and err.code ~= -32800 then
      notify('run failed: ' .. cordon.format_error(err), vim.log.levels.ERROR)
    end
  end)
end

--- :CordonCancel — stops every command :CordonRun started that is still running.
function M.cancel()
  local n = 0
  for id in pairs(running) do
    cordon.cancel(id)
    n = n + 1
  end
  notify(n == 0 and 'nothing is running' or ('cancelling %d command(s)'):format(n))
end

function M.changes()
  require('cordon.review').changes()
end

function M.diff(o)
  require('cordon.review').diff(o.args)
end

function M.apply(o)
  require('cordon.review').apply(o.args)
end

function M.discard(o)
  require('cordon.review').discard(o.args, o.bang)
end

function M.stop()
  if not cordon.is_running() then
    return notify('not running')
  end
  cordon.stop(function(err)
    if err then
      notify('session/close: ' .. cordon.format_error(err), vim.log.levels.WARN)
    end
    notify('stopped (pending changes stay in the state dir)')
  end)
end

-- Completion for file arguments: the session's pending files, else workspace files.
function M.complete_pending(arglead)
  local pending = {}
  for path in pairs(require('cordon.review')._shown) do
    if path:sub(1, #arglead) == arglead then
      table.insert(pending, path)
    end
  end
  if #pending > 0 then
    table.sort(pending)
    return pending
  end
  return vim.fn.getcompletion(arglead, 'file')
end

return M

-- cordon.prompts: questions the sandbox asks the user (`sandbox/approve`) and what it
-- reports (`sandbox/violation`). Both go through Neovim's replaceable UI hooks
-- (`vim.ui.select`, `vim.notify`), so pickers like telescope or dressing.nvim apply.
local M = {}

M.choices = {
  { decision = 'allow-once', label = 'Allow once' },
  { decision = 'allow-session', label = 'Allow for this session' },
  { decision = 'deny', label = 'Deny' },
}

-- One line of text for a protocol value: strings as they are, objects as `key: value, ...`
-- (`detail` fields may be either), control characters blanked.
local function text(v)
  if v == nil or v == vim.NIL then
    return nil
  end
  if type(v) == 'table' then
    local keys = vim.tbl_keys(v)
    table.sort(keys, function(a, b)
      return tostring(a) < tostring(b)
    end)
    local parts = {}
    for _, k in ipairs(keys) do
      local item = text(v[k]) or 'null'
      table.insert(parts, type(k) == 'number' and item or (tostring(k) .. ': ' .. item))
    end
    return table.concat(parts, ', ')
  end
  return (tostring(v):gsub('[%c]', ' '))
end
M.text = text

--- The question shown for a sandbox/approve request: names the exact host, port and
--- resolved address.
function M.approve_prompt(p)
  local target = text(p.host) or '?'
  if text(p.port) then
    target = target .. ':' .. text(p.port)
  end
  local q = ('cordon: the sandbox wants %s access to %s'):format(text(p.kind) or 'network', target)
  if text(p.address) and text(p.address) ~= text(p.host) then
    q = q .. (' (address %s)'):format(text(p.address))
  end
  if text(p.detail) then
    q = q .. ' — ' .. text(p.detail)
  end
  return q
end

--- Default `sandbox/approve` handler: asks with vim.ui.select; no choice means deny.
function M.approve(params, reply)
  vim.ui.select(M.choices, {
    prompt = M.approve_prompt(params),
    kind = 'cordon.approve',
    format_item = function(c)
      return c.label
    end,
  }, function(choice)
    -- Clear what a command-line picker (the default inputlist) left on the screen, so the
    -- messages that follow do not stop at a hit-enter prompt.
    pcall(vim.cmd, 'redraw')
    reply(choice and choice.decision or 'deny')
  end)
end

--- One line describing a violation's detail: `host:port (address): reason [via]` for
--- network details, `key: value, ...` for any other object, a string as it is.
function M.describe(detail)
  if type(detail) == 'table' and text(detail.host) then
    local where = text(detail.host) .. (text(detail.port) and (':' .. text(detail.port)) or '')
    if text(detail.address) and text(detail.address) ~= text(detail.host) then
      where = where .. ' (' .. text(detail.address) .. ')'
    end
    local line = where .. (text(detail.reason) and (': ' .. text(detail.reason)) or '')
    if text(detail.via) and text(detail.via) ~= '' then
      line = line .. ' [' .. text(detail.via) .. ']'
    end
    return line
  end
  return text(detail) or ''
end

--- Default `sandbox/violation` handler.
function M.violation(p)
  vim.notify(('cordon: blocked %s access: %s'):format(text(p.kind) or '?', M.describe(p.detail)), vim.log.levels.WARN)
end

--- Asks a yes/no question through vim.ui.select; cb(true) only on an explicit yes.
function M.confirm(question, yes_label, cb)
  local items = { 'No', yes_label }
  vim.ui.select(items, { prompt = question, kind = 'cordon.confirm' }, function(choice)
    cb(choice == yes_label)
  end)
end

return M

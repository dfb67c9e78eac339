-- cordon.review: reviewing the session's pending changes — quickfix list, diff split (real
-- file vs sandbox content), apply and discard.
--
-- Apply sends the hashes of the version the user was shown (`shown`): if the real file or
-- the sandbox's version changed since, the server reports a conflict instead of writing.
local cordon = require('cordon')
local prompts = require('cordon.prompts')

local M = {}

M.QF_TITLE = 'cordon: pending changes'

-- path -> {path, baseHash, newHash}: the version of each file last shown to the user.
local shown = {}
M._shown = shown

local function notify(msg, level)
  vim.notify('cordon: ' .. msg, level or vim.log.levels.INFO)
end

local function fail(what, err)
  notify(what .. ' failed: ' .. cordon.format_error(err), vim.log.levels.ERROR)
end

local function remember(file)
  shown[file.path] = { path = file.path, baseHash = file.baseHash, newHash = file.newHash }
end

-- The first changed line of a unified diff, on the new side ("@@ -a,b +c,d @@" gives the
-- hunk's start; context lines are skipped), and the counts of added and removed lines.
local function diff_stats(unified)
  local first, added, removed = nil, 0, 0
  local line_no = nil
  for line in (unified or ''):gmatch('[^\n]+') do
    local start = line:match('^@@ %-%d+,?%d* %+(%d+)')
    if start then
      line_no = tonumber(start)
    elseif line_no then -- inside a hunk (the ---/+++ headers come before the first one)
      local c = line:sub(1, 1)
      if c == '+' or c == '-' then
        first = first or math.max(line_no, 1)
        if c == '+' then
          added = added + 1
          line_no = line_no + 1
        else
          removed = removed + 1
        end
      elseif c == ' ' then
        line_no = line_no + 1
      end
    end
  end
  return first, added, removed
end

--- Quickfix items for a changes/diff result.
function M.quickfix_items(files)
  local items = {}
  for _, f in ipairs(files or {}) do
    local lnum, added, removed = diff_stats(f.unified)
    local tags = { f.status }
    if f.protected == true then
      table.insert(tags, 'PROTECTED')
    end
    if f.binary == true then
      table.insert(tags, 'binary')
    end
    if f.type == 'symlink' then
      table.insert(tags, 'symlink')
    end
    table.insert(items, {
      filename = cordon.absolute_path(f.path),
      lnum = math.max(lnum or 1, 1),
      col = 1,
      text = ('%s +%d -%d'):format(table.concat(tags, ' '), added, removed),
      type = f.protected == true and 'W' or 'I',
    })
  end
  return items
end

local function is_our_quickfix()
  local ok, info = pcall(vim.fn.getqflist, { title = 0 })
  return ok and info.title and info.title:sub(1, #M.QF_TITLE) == M.QF_TITLE
end

--- :CordonChanges — fills the quickfix list with the pending files and opens it.
--- opts.open = false: only refresh the list. cb(err, files) is optional.
--- The listed versions count as shown (their hashes are what :CordonApply sends), except
--- on the automatic refresh after an apply or discard (opts.remember = false).
function M.changes(opts, cb)
  opts = opts or {}
  cordon.diff(nil, function(err, r)
    if err then
      fail('changes/diff', err)
      return cb and cb(err)
    end
    local files = r.files or {}
    if opts.remember ~= false then
      for _, f in ipairs(files) do
        remember(f)
      end
    end
    local title = M.QF_TITLE .. ' (' .. #files .. ')'
    vim.fn.setqflist({}, ' ', { title = title, items = M.quickfix_items(files) })
    if opts.open ~= false then
      if #files == 0 then
        notify('no pending changes')
      else
        vim.cmd('botright copen')
      end
    end
    if cb then
      cb(nil, files)
    end
  end)
end

local function refresh_quickfix()
  if is_our_quickfix() then
    M.changes({ open = false, remember = false })
  end
end

-- The workspace-relative path meant by a command's argument, or by the current buffer
-- (a cordon diff buffer, a file in the workspace, or the quickfix entry under the cursor).
function M.target_path(arg)
  if arg and arg ~= '' then
    return cordon.relative_path(arg) or arg
  end
  local b = vim.b.cordon_change
  if type(b) == 'table' and b.path then
    return b.path
  end
  if vim.bo.buftype == 'quickfix' then
    local idx = vim.fn.line('.')
    local item = vim.fn.getqflist()[idx]
    if item and item.bufnr > 0 then
      return cordon.relative_path(vim.api.nvim_buf_get_name(item.bufnr))
    end
  end
  local name = vim.api.nvim_buf_get_name(0)
  if name ~= '' and vim.bo.buftype == '' then
    return cordon.relative_path(name)
  end
  return nil
end

local function split_lines(content)
  local lines = vim.split(content, '\n', { plain = true })
  if lines[#lines] == '' then
    table.remove(lines)
  end
  return lines
end

local function scratch(name, lines, filetype)
  local old = vim.fn.bufnr('^' .. vim.fn.escape(name, '\\/.*$^~[]') .. '$')
  if old ~= -1 then
    pcall(vim.api.nvim_buf_delete, old, { force = true })
  end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  pcall(vim.api.nvim_buf_set_name, buf, name)
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].swapfile = false
  vim.bo[buf].modifiable = false
  vim.bo[buf].readonly = true
  if filetype and filetype ~= '' then
    vim.bo[buf].filetype = filetype
  end
  return buf
end

--- :CordonDiff [file] — a new tab with the real file (left) and the sandbox's version
--- (right, read-only scratch buffer `cordon://<session>/<path>`), in diff mode.
--- cb(err, {real_buf, sandbox_buf, file}) is optional.
function M.diff(arg, cb)
  local path = M.target_path(arg)
  if not path then
    notify('which file? (:CordonDiff {file}, or run it from a changed file or the quickfix list)',
      vim.log.levels.WARN)
    return cb and cb({ message = 'no file' })
  end
  cordon.diff({ path }, function(err, r)
    if err then
      fail('changes/diff', err)
      return cb and cb(err)
    end
    local file
    for _, f in ipairs(r.files or {}) do
      if f.path == path then
        file = f
      end
    end
    if not file then
      notify('no pending change for ' .. path, vim.log.levels.WARN)
      return cb and cb({ message = 'no pending change for ' .. path })
    end
    local function show(sandbox_lines)
      remember(file)
      local session = cordon.session()
      local real = cordon.absolute_path(path)
      vim.cmd('tabnew')
      local real_buf
      if file.status ~= 'added' and vim.fn.filereadable(real) == 1 then
        vim.cmd('edit ' .. vim.fn.fnameescape(real))
        real_buf = vim.api.nvim_get_current_buf()
      else
        real_buf = scratch('cordon-real://' .. path .. ' (absent)', {}, nil)
        vim.api.nvim_win_set_buf(0, real_buf)
      end
      vim.cmd('diffthis')
      local ft = vim.bo[real_buf].filetype
      local sb = scratch(('cordon://%s/%s'):format(session and session.sessionId or '?', path), sandbox_lines, ft)
      vim.api.nvim_buf_set_var(sb, 'cordon_change', {
        path = file.path,
        status = file.status,
        baseHash = file.baseHash,
        newHash = file.newHash,
        protected = file.protected == true,
      })
      vim.cmd('rightbelow vertical split')
      vim.api.nvim_win_set_buf(0, sb)
      vim.cmd('diffthis')
      if cb then
        cb(nil, { real_buf = real_buf, sandbox_buf = sb, file = file })
      end
    end
    if file.status == 'deleted' then
      return show({})
    end
    if file.binary == true then
      return show({ ('[binary file, sha256 %s]'):format(tostring(file.newHash)) })
    end
    cordon.read(path, function(rerr, content)
      if rerr then
        fail('fs/read ' .. path, rerr)
        return cb and cb(rerr)
      end
      if content.encoding == 'base64' then
        return show({ ('[binary file, %s bytes]'):format(tostring(content.size)) })
      end
      show(split_lines(content.content or ''))
    end)
  end)
end

local function reload_applied(applied)
  for _, rel in ipairs(applied) do
    local buf = vim.fn.bufnr(cordon.absolute_path(rel))
    if buf ~= -1 and vim.api.nvim_buf_is_loaded(buf) and not vim.bo[buf].modified then
      vim.api.nvim_buf_call(buf, function()
        vim.cmd('silent! checktime')
        vim.cmd('silent! edit')
      end)
    end
  end
end

-- Asks about each protected file in turn; cb(list of confirmed paths).
local function confirm_protected(files, cb)
  local confirmed, i = {}, 0
  local function next_file()
    i = i + 1
    local f = files[i]
    if not f then
      return cb(confirmed)
    end
    prompts.confirm(
      ('cordon: %s is protected (it can run code on your machine later). Apply it?'):format(f.path),
      'Apply ' .. f.path,
      function(yes)
        if yes then
          table.insert(confirmed, f.path)
        end
        next_file()
      end)
  end
  next_file()
end

--- :CordonApply [file] — applies one pending file (without an argument: the file of the
--- current cordon diff buffer, else all of them) to the real workspace, with the hashes of
--- the version last shown. Protected files need an explicit yes.
--- cb(err, apply_result) is optional.
function M.apply(arg, cb)
  local path = arg and arg ~= '' and M.target_path(arg) or nil
  if not path and vim.b.cordon_change then
    path = M.target_path(nil)
  end
  cordon.diff(path and { path } or nil, function(err, r)
    if err then
      fail('changes/diff', err)
      return cb and cb(err)
    end
    local files, protected = {}, {}
    for _, f in ipairs(r.files or {}) do
      if not path or f.path == path then
        local seen = shown[f.path]
        table.insert(files, seen or { path = f.path, baseHash = f.baseHash, newHash = f.newHash })
        if f.protected == true then
          table.insert(protected, f)
        end
      end
    end
    if #files == 0 then
      notify(path and ('no pending change for ' .. path) or 'no pending changes')
      return cb and cb(nil, { applied = {}, conflicts = {}, protected = {} })
    end
    confirm_protected(protected, function(confirmed)
      cordon.apply(files, { confirmProtected = confirmed }, function(aerr, res)
        if aerr then
          fail('changes/apply', aerr)
          return cb and cb(aerr)
        end
        local applied = res.applied or {}
        for _, p in ipairs(applied) do
          shown[p] = nil
        end
        local msg = ('applied %d file(s)'):format(#applied)
        if #applied > 0 and #applied <= 5 then
          msg = msg .. ': ' .. table.concat(applied, ', ')
        end
        local level = vim.log.levels.INFO
        for _, c in ipairs(res.conflicts or {}) do
          msg = msg .. ('\nconflict, not applied: %s (%s)'):format(c.path, tostring(c.reason))
          level = vim.log.levels.WARN
        end
        for _, p in ipairs(res.protected or {}) do
          msg = msg .. ('\nprotected, not applied (not confirmed): %s'):format(p)
          level = vim.log.levels.WARN
        end
        notify(msg, level)
        reload_applied(applied)
        refresh_quickfix()
        if cb then
          cb(nil, res)
        end
      end)
    end)
  end)
end

--- :CordonDiscard[!] [file] — drops one pending change (or, after a confirmation that `!`
--- skips, all of them) from the sandbox. cb(err) is optional.
function M.discard(arg, bang, cb)
  local path = arg and arg ~= '' and M.target_path(arg) or nil
  if not path and vim.b.cordon_change then
    path = M.target_path(nil)
  end
  local function go()
    cordon.discard(path and { path } or nil, function(err)
      if err then
        fail('changes/discard', err)
        return cb and cb(err)
      end
      if path then
        shown[path] = nil
      else
        for k in pairs(shown) do
          shown[k] = nil
        end
      end
      notify('discarded ' .. (path or 'every pending change'))
      refresh_quickfix()
      if cb then
        cb(nil)
      end
    end)
  end
  if path or bang then
    return go()
  end
  prompts.confirm('cordon: discard every pending change of this session?', 'Discard all', function(yes)
    if yes then
      go()
    elseif cb then
      cb({ message = 'not confirmed' })
    end
  end)
end

return M

-- cordon.output: the scratch buffer that shows sandboxed commands and their streamed output.
--
-- Output is untrusted text: escape and control sequences are neutralised before they reach
-- the buffer (CSI/OSC/other ESC sequences removed, remaining C0/C1 controls shown in caret
-- or <xx> notation, a lone `\r` shown as a line break so that nothing can be overwritten
-- and hidden). Must be called on the main loop.
local M = {}

M.BUFNAME = 'cordon://output'

local function valid(buf)
  return buf and vim.api.nvim_buf_is_valid(buf)
end

local bufnr = nil

--- The output buffer (created on first use). Does not open a window.
function M.buffer()
  if valid(bufnr) then
    return bufnr
  end
  bufnr = vim.fn.bufnr(M.BUFNAME)
  if bufnr == -1 or not valid(bufnr) then
    bufnr = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(bufnr, M.BUFNAME)
  end
  vim.bo[bufnr].buftype = 'nofile'
  vim.bo[bufnr].bufhidden = 'hide'
  vim.bo[bufnr].swapfile = false
  vim.bo[bufnr].filetype = 'cordon'
  vim.bo[bufnr].modifiable = false
  return bufnr
end

--- Shows the output buffer in a window (reusing one that shows it). Returns buf, win.
function M.open(split_cmd)
  local buf = M.buffer()
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_buf(win) == buf then
      return buf, win
    end
  end
  local cur = vim.api.nvim_get_current_win()
  vim.cmd(split_cmd or 'botright 12split')
  local win = vim.api.nvim_get_current_win()
  vim.api.nvim_win_set_buf(win, buf)
  vim.wo[win].wrap = true
  vim.wo[win].number = false
  if vim.api.nvim_win_is_valid(cur) then
    vim.api.nvim_set_current_win(cur)
  end
  return buf, win
end

-- Escape sequences left open at the end of a chunk: ESC alone, CSI without its final byte,
-- OSC/DCS/SOS/PM/APC without their terminator (possibly ending with the ESC of ST).
M.OPEN_SEQUENCES = {
  '\27$',
  '\27%[[0-?]*[ -/]*$',
  '\27%][^\7\27]*\27?$',
  '\27[PX%^_][^\27]*\27?$',
}

-- Removes terminal escape sequences and makes the remaining control characters visible.
-- Returns the cleaned text and an incomplete trailing escape sequence to prepend to the
-- next chunk of the same stream.
function M.sanitize(text)
  local carry = ''
  -- A sequence that is still open at the end of this chunk waits for the next one (up to a
  -- size cap; past it, it is neutralised as it stands).
  local open_at
  for _, pattern in ipairs(M.OPEN_SEQUENCES) do
    local at = text:find(pattern)
    if at and (not open_at or at < open_at) then
      open_at = at
    end
  end
  if open_at and #text - open_at < 4096 then
    carry = text:sub(open_at)
    text = text:sub(1, open_at - 1)
  end
  if carry == '' and text:sub(-1) == '\r' then
    carry, text = '\r', text:sub(1, -2) -- may be the first half of \r\n
  end
  text = text:gsub('\27%[[0-?]*[ -/]*[@-~]', '') -- CSI (colours, cursor moves, ...)
  text = text:gsub('\27%][^\7\27]*\7', '') -- OSC ... BEL (titles, hyperlinks, clipboard)
  text = text:gsub('\27%][^\7\27]*\27\\', '') -- OSC ... ST
  text = text:gsub('\27[PX%^_][^\27]*\27\\', '') -- DCS, SOS, PM, APC ... ST
  text = text:gsub('\27.', '') -- any other two-byte escape
  text = text:gsub('\27', '')
  text = text:gsub('\r\n', '\n')
  text = text:gsub('\r', '\n')
  -- C1 controls (U+0080..U+009F, UTF-8 \194\128-\194\159), e.g. the 8-bit CSI U+009B.
  text = text:gsub('\194([\128-\159])', function(c)
    return ('<%02x>'):format(c:byte())
  end)
  -- Remaining C0 controls except TAB, LF and CR, and DEL, in caret notation.
  text = text:gsub('[%z\1-\8\11\12\14-\31\127]', function(c)
    local b = c:byte()
    return b == 127 and '^?' or ('^' .. string.char(b + 64))
  end)
  return text, carry
end

-- Appends text to the buffer: continues the last line, `\n` starts a new one.
local function append(buf, text)
  if text == '' then
    return
  end
  local n = vim.api.nvim_buf_line_count(buf)
  local last = vim.api.nvim_buf_get_lines(buf, n - 1, n, false)[1] or ''
  local pieces = vim.split(text, '\n', { plain = true })
  pieces[1] = last .. pieces[1]
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, n - 1, n, false, pieces)
  vim.bo[buf].modifiable = false
  -- Follow the output in windows whose cursor was on the last line.
  local count = vim.api.nvim_buf_line_count(buf)
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_buf(win) == buf then
      local row = vim.api.nvim_win_get_cursor(win)[1]
      if row >= n then
        vim.api.nvim_win_set_cursor(win, { count, 0 })
      end
    end
  end
end

-- Starts a new line unless the buffer already ends with an empty one.
local function new_line(buf)
  local n = vim.api.nvim_buf_line_count(buf)
  local last = vim.api.nvim_buf_get_lines(buf, n - 1, n, false)[1]
  if last ~= '' then
    append(buf, '\n')
  end
end

--- Writes a complete line of the plugin's own (trusted) text.
function M.note(text)
  local buf = M.buffer()
  new_line(buf)
  append(buf, (M.sanitize(text)))
end

--- Begins the transcript of one command. Returns a writer:
---   writer.write(stream, data)   -- streamed output
---   writer.violation(params)     -- a sandbox/violation tied to this command
---   writer.finish(err, result)   -- the exec answer
function M.begin(command)
  local buf = M.buffer()
  local label = type(command) == 'table' and table.concat(command, ' ') or command
  local n = vim.api.nvim_buf_line_count(buf)
  local first = vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1]
  if not (n == 1 and first == '') then
    new_line(buf)
    append(buf, '\n')
  end
  append(buf, '$ ' .. (M.sanitize(label)):gsub('\n', ' ') .. '\n')
  local carry = { stdout = '', stderr = '' }
  local streamed = false
  local w = {}
  function w.write(stream, data)
    if not valid(buf) then
      return
    end
    streamed = true
    local text
    text, carry[stream] = M.sanitize((carry[stream] or '') .. data)
    append(buf, text)
  end
  local violations_shown = 0
  function w.violation(p)
    if not valid(buf) then
      return
    end
    violations_shown = violations_shown + 1
    new_line(buf)
    local prompts = require('cordon.prompts')
    append(buf, ('[cordon] blocked (%s): %s\n'):format(prompts.text(p.kind) or '?', (M.sanitize(prompts.describe(p.detail)))))
  end
  function w.finish(err, r)
    if not valid(buf) then
      return
    end
    if not err and not streamed then
      -- No exec/output arrived (e.g. a server without streaming): show the captured output.
      w.write('stdout', r.stdout or '')
      w.write('stderr', r.stderr or '')
    end
    -- What was held back waiting for the rest of a sequence is shown as it is now.
    for stream, held in pairs(carry) do
      if held ~= '' then
        carry[stream] = ''
        append(buf, (M.sanitize((held:gsub('\27', ''):gsub('\r$', '\n')))))
      end
    end
    new_line(buf)
    if err then
      append(buf, '[cordon] failed: ' .. M.sanitize(require('cordon').format_error(err)))
      return
    end
    local parts = { r.reason or '?' }
    if r.exitCode ~= nil and r.exitCode ~= vim.NIL then
      parts[1] = 'exit ' .. tostring(r.exitCode)
      if r.reason and r.reason ~= 'exited' then
        table.insert(parts, r.reason)
      end
    elseif r.signal ~= nil and r.signal ~= vim.NIL then
      table.insert(parts, tostring(r.signal))
    end
    if r.durationMs then
      table.insert(parts, tostring(r.durationMs) .. ' ms')
    end
    if r.stdoutTruncated == true or r.stderrTruncated == true then
      table.insert(parts, 'output truncated')
    end
    append(buf, '[' .. table.concat(parts, ', ') .. ']')
    -- Violations the server reported only in the result (none arrived as notifications).
    if violations_shown == 0 and type(r.violations) == 'table' then
      for _, v in ipairs(r.violations) do
        w.violation(v)
      end
    end
    local changes = type(r.changes) == 'table' and r.changes or {}
    for _, c in ipairs(changes) do
      append(buf, ('\n  %-8s %s'):format(tostring(c.status), (M.sanitize(tostring(c.path)))))
    end
    if #changes > 0 then
      append(buf, '\n  (in the sandbox only: :CordonChanges to review, :CordonApply to apply)')
    end
  end
  return w
end

return M

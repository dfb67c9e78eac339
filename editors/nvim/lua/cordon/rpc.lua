-- cordon.rpc: a small JSON-RPC 2.0 client over a child process's stdio, with LSP
-- base-protocol framing (`Content-Length: N\r\n\r\n` + N bytes of JSON).
--
-- Contract:
--   * `rpc.start(cmd, args, handlers)` spawns the server with `vim.loop.spawn` and returns a
--     client, or nil and an error message.
--   * Every callback (`request` callbacks, `handlers.notification`, `handlers.request`,
--     `handlers.exit`) runs on Neovim's main loop (through `vim.schedule`), in the order the
--     messages arrived, so callbacks may use `vim.api` and `vim.fn` freely.
--   * Requests are answered exactly once: with the server's reply, or with an error when the
--     server exits first (code -32099, "server exited").
--   * Server -> client requests go to `handlers.request(method, params, reply)`; the handler
--     calls `reply(result)` or `reply(nil, {code=..., message=...})` once, now or later.
--
-- Deliberately not built on `vim.lsp.rpc`: its `start` signature changed in Neovim 0.10 and
-- this client must run unchanged on 0.7 (Debian 12) and on current releases.
local uv = vim.uv or vim.loop

local M = {}

M.SERVER_EXITED = -32099

local function is_null(v)
  return v == nil or v == vim.NIL
end
M.is_null = is_null

-- JSON-encodes params: nil and {} become `{}` (vim.json.encode({}) would give `[]`).
local function encode_params(params)
  if params == nil or (type(params) == 'table' and next(params) == nil and getmetatable(params) == nil) then
    return vim.empty_dict()
  end
  return params
end

local function frame(msg)
  local body = vim.json.encode(msg)
  return 'Content-Length: ' .. #body .. '\r\n\r\n' .. body
end
M.frame = frame

-- Incremental decoder of Content-Length frames. `feed(bytes)` returns the complete bodies
-- found so far (strings) and the framing errors met; partial frames stay buffered. Chunks of
-- a large body are kept in a list and joined once, so a big message costs O(size).
-- A header block without a Content-Length is skipped and reported.
function M.new_decoder()
  local buf = '' -- bytes not yet consumed (header being read, or the start of a body)
  local parts, parts_len = {}, 0 -- the rest of a body being collected
  local need = nil -- total body length once its header is parsed
  local d = {}
  function d.feed(chunk)
    local bodies, errors = {}, {}
    if need then
      table.insert(parts, chunk)
      parts_len = parts_len + #chunk
      if #buf + parts_len < need then
        return bodies, errors
      end
      buf = buf .. table.concat(parts)
      parts, parts_len = {}, 0
    else
      buf = buf .. chunk
    end
    while true do
      if need then
        if #buf < need then
          break
        end
        table.insert(bodies, buf:sub(1, need))
        buf = buf:sub(need + 1)
        need = nil
      end
      local header_end = buf:find('\r\n\r\n', 1, true)
      if not header_end then
        break
      end
      local header = buf:sub(1, header_end - 1)
      local len = header:lower():match('content%-length:%s*(%d+)')
      buf = buf:sub(header_end + 4)
      if len then
        need = tonumber(len)
      else
        table.insert(errors, 'frame header without Content-Length: ' .. header:sub(1, 200))
      end
    end
    return bodies, errors
  end
  function d.pending()
    return #buf + parts_len
  end
  return d
end

local Client = {}
Client.__index = Client

--- Starts `cmd` with `args` and returns a client.
--- handlers: { notification = fn(method, params), request = fn(method, params, reply),
---             exit = fn(code, signal, stderr_tail), stderr = fn(chunk) }
function M.start(cmd, args, handlers)
  handlers = handlers or {}
  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local self = setmetatable({
    next_id = 1,
    callbacks = {},
    handlers = handlers,
    stdin = stdin,
    stdout = stdout,
    stderr = stderr,
    stderr_tail = '',
    closed = false,
    exit_code = nil,
    exit_signal = nil,
    decoder = M.new_decoder(),
  }, Client)

  local handle, pid_or_err = uv.spawn(cmd, {
    args = args or {},
    stdio = { stdin, stdout, stderr },
    detached = false,
  }, function(code, signal)
    self.exit_code, self.exit_signal = code, signal
    -- Replies written just before the exit may still be in the pipe: finish once stdout is
    -- at EOF too (or after a short grace period if something else still holds it open).
    local function finish()
      vim.schedule(function()
        self:_on_exit(code, signal)
      end)
    end
    if self.stdout_eof then
      finish()
    else
      self.on_stdout_eof = finish
      local t = uv.new_timer()
      t:start(500, 0, function()
        t:close()
        if self.on_stdout_eof then
          self.on_stdout_eof = nil
          finish()
        end
      end)
    end
  end)
  if not handle then
    for _, p in ipairs({ stdin, stdout, stderr }) do
      p:close()
    end
    return nil, ('cannot start %s: %s'):format(cmd, tostring(pid_or_err))
  end
  self.handle, self.pid = handle, pid_or_err

  stdout:read_start(function(err, chunk)
    if err or not chunk then
      self.stdout_eof = true
      local k = self.on_stdout_eof
      self.on_stdout_eof = nil
      if k then
        k()
      end
      return
    end
    local bodies, errors = self.decoder.feed(chunk)
    for _, body in ipairs(bodies) do
      vim.schedule(function()
        self:_on_body(body)
      end)
    end
    for _, e in ipairs(errors) do
      vim.schedule(function()
        self:_log(e)
      end)
    end
  end)
  stderr:read_start(function(err, chunk)
    if err or not chunk then
      return
    end
    -- Keep the last few KiB: they explain a failed start.
    self.stderr_tail = (self.stderr_tail .. chunk):sub(-4096)
    if handlers.stderr then
      vim.schedule(function()
        handlers.stderr(chunk)
      end)
    end
  end)
  return self
end

function Client:_log(msg)
  if self.handlers.log then
    self.handlers.log(msg)
  end
end

function Client:_on_body(body)
  local ok, msg = pcall(vim.json.decode, body)
  if not ok or type(msg) ~= 'table' then
    self:_log('undecodable message from server: ' .. body:sub(1, 200))
    return
  end
  if msg[1] ~= nil then -- a batch: handle each member in order
    for _, m in ipairs(msg) do
      self:_on_message(m)
    end
  else
    self:_on_message(msg)
  end
end

function Client:_on_message(msg)
  local has_id = not is_null(msg.id)
  if msg.method and has_id then
    self:_on_server_request(msg)
  elseif msg.method then
    if self.handlers.notification then
      self.handlers.notification(msg.method, is_null(msg.params) and {} or msg.params)
    end
  elseif has_id then
    local cb = self.callbacks[msg.id]
    self.callbacks[msg.id] = nil
    if cb then
      if not is_null(msg.error) then
        cb(msg.error, nil)
      else
        cb(nil, msg.result)
      end
    end
  else
    -- An error about a message the server could not attribute (id null).
    self:_log('server error: ' .. vim.inspect(msg.error))
  end
end

function Client:_on_server_request(msg)
  local answered = false
  local function reply(result, err)
    if answered then
      return
    end
    answered = true
    if err then
      self:_write({ jsonrpc = '2.0', id = msg.id, error = err })
    else
      self:_write({ jsonrpc = '2.0', id = msg.id, result = result == nil and vim.NIL or result })
    end
  end
  if not self.handlers.request then
    return reply(nil, { code = -32601, message = 'method not found: ' .. msg.method })
  end
  local ok, err = pcall(self.handlers.request, msg.method, is_null(msg.params) and {} or msg.params, reply)
  if not ok then
    reply(nil, { code = -32603, message = tostring(err) })
  end
end

function Client:_write(msg)
  if self.closed or self.stdin:is_closing() then
    return false
  end
  self.stdin:write(frame(msg))
  return true
end

--- Sends a request; `callback(err, result)` runs once on the main loop. Returns the id.
function Client:request(method, params, callback)
  callback = callback or function() end
  local id = self.next_id
  self.next_id = id + 1
  if self.closed then
    vim.schedule(function()
      callback({ code = M.SERVER_EXITED, message = 'cordon server is not running' }, nil)
    end)
    return id
  end
  self.callbacks[id] = callback
  self:_write({ jsonrpc = '2.0', id = id, method = method, params = encode_params(params) })
  return id
end

--- Sends a request and waits for its answer (at most `timeout_ms`, default 30 s).
--- Returns err, result; on timeout the request is cancelled and err.code is -32800.
function Client:request_sync(method, params, timeout_ms)
  local done, err, result = false, nil, nil
  local id = self:request(method, params, function(e, r)
    done, err, result = true, e, r
  end)
  local ok = vim.wait(timeout_ms or 30000, function()
    return done
  end, 10)
  if not ok then
    self.callbacks[id] = nil
    self:cancel(id)
    return { code = -32800, message = method .. ': no answer within ' .. (timeout_ms or 30000) .. ' ms' }, nil
  end
  return err, result
end

function Client:notify(method, params)
  return self:_write({ jsonrpc = '2.0', method = method, params = encode_params(params) })
end

--- Asks the server to stop request `id` ($/cancelRequest).
function Client:cancel(id)
  return self:notify('$/cancelRequest', { id = id })
end

function Client:is_running()
  return not self.closed
end

function Client:_on_exit(code, signal)
  if self.closed then
    return
  end
  self.closed = true
  for _, p in ipairs({ self.stdin, self.stdout, self.stderr }) do
    if not p:is_closing() then
      p:close()
    end
  end
  if self.handle and not self.handle:is_closing() then
    self.handle:close()
  end
  local pending = self.callbacks
  self.callbacks = {}
  local ids = vim.tbl_keys(pending)
  table.sort(ids)
  local why = ('cordon server exited (code %s, signal %s)'):format(tostring(code), tostring(signal))
  for _, id in ipairs(ids) do
    pending[id]({ code = M.SERVER_EXITED, message = why, data = { stderr = self.stderr_tail } }, nil)
  end
  if self.handlers.exit then
    self.handlers.exit(code, signal, self.stderr_tail)
  end
end

--- Stops the server politely (shutdown, exit), then by SIGTERM and SIGKILL if it lingers.
--- Waits at most `timeout_ms` (default 3000) in total. Returns true once the process is gone.
function Client:stop(timeout_ms)
  timeout_ms = timeout_ms or 3000
  if self.closed then
    return true
  end
  local function gone()
    return self.exit_code ~= nil
  end
  self:request_sync('shutdown', nil, math.floor(timeout_ms / 2))
  self:notify('exit', nil)
  if not self.stdin:is_closing() then
    self.stdin:shutdown()
  end
  if not vim.wait(math.floor(timeout_ms / 2), gone, 10) then
    self:kill('sigterm')
    if not vim.wait(500, gone, 10) then
      self:kill('sigkill')
      vim.wait(500, gone, 10)
    end
  end
  -- Run the exit bookkeeping now rather than on the next loop iteration.
  if gone() then
    self:_on_exit(self.exit_code, self.exit_signal)
  end
  return gone()
end

function Client:kill(sig)
  if self.handle and not self.handle:is_closing() then
    pcall(self.handle.kill, self.handle, sig or 'sigterm')
  end
end

return M

-- cordon: run an agent's tool calls in cordon's per-workspace sandbox.
--
-- This module is the Lua API for agent plugins and for the user commands. It owns one
-- `cordon serve --stdio` process and one session (per Neovim instance), started lazily by
-- the first call that needs it. Every API function is asynchronous and ends by calling
-- `cb(err, result)` once on the main loop: `err` is nil or a JSON-RPC error table
-- `{code, message, data}`, `result` is the method's result as PROTOCOL.md describes it
-- (JSON null arrives as `vim.NIL`).
--
-- `setup()` only merges options; nothing starts until a command or API call needs it.
local rpc = require('cordon.rpc')
local uv = vim.uv or vim.loop

local M = {}

local defaults = {
  -- The cordon binary: a name looked up in $PATH, or a path.
  cmd = 'cordon',
  -- Extra arguments for `cordon serve --stdio`.
  args = {},
  -- Where sessions live (`--state-dir`); nil: cordon's default ($XDG_STATE_HOME/cordon).
  state_dir = nil,
  -- Server log file (`--log-file`); nil: the log goes to the server's stderr, which this
  -- plugin keeps (the last lines are shown when the server fails).
  log_file = nil,
  log_level = nil,
  -- Workspace of the session; nil: the current directory when the session starts.
  workspace = nil,
  -- Policy override for new sessions (see PROTOCOL.md, session/create).
  policy = nil,
  -- Reuse a session the server already has for the same workspace (pending changes
  -- survive a restart of Neovim or of the server).
  reuse_session = true,
  -- Declare `capabilities.approvals`: the server may then ask before allowing a host.
  approvals = true,
  -- Called for `sandbox/approve` as fn(params, reply) with reply(decision); nil: the
  -- built-in `vim.ui.select` prompt.
  on_approve = nil,
  -- Called for `sandbox/violation` as fn(params); nil: `vim.notify`.
  on_violation = nil,
  -- How long :checkhealth and :CordonStop (session/close) wait for an answer.
  timeout_ms = 30000,
  output = {
    -- Command that opens the output window when it is not visible.
    split = 'botright 12split',
  },
}

M.config = vim.deepcopy(defaults)

--- Merges `opts` into the configuration. Starts nothing.
function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts or {})
end

-- Runtime state of the one server and session of this Neovim instance.
local state = {
  client = nil, -- rpc client
  server_info = nil, -- initialize result
  session = nil, -- session/create result (+ `reused`)
  waiting = nil, -- callbacks queued while starting
  execs = {}, -- request id -> {on_output, on_violation}
  listeners = {}, -- event -> {fn}
}
M._state = state

local function schedule_cb(cb, err, result)
  if cb then
    vim.schedule(function()
      cb(err, result)
    end)
  end
end

--- Human-readable text of an error table.
function M.format_error(err)
  if type(err) ~= 'table' then
    return tostring(err)
  end
  local text = ('%s (%s)'):format(tostring(err.message), tostring(err.code))
  local data = err.data
  if type(data) == 'table' then
    if data.path and data.path ~= vim.NIL then
      text = text .. ' at ' .. tostring(data.path)
    end
    if data.fix and data.fix ~= vim.NIL and data.fix ~= '' then
      text = text .. '; fix: ' .. tostring(data.fix)
    end
    if data.stderr and data.stderr ~= '' then
      text = text .. '\n' .. tostring(data.stderr)
    end
  end
  return text
end

--- Subscribes to plugin events: "output" (params of exec/output), "violation"
--- (params of sandbox/violation), "exit" ({code, signal, stderr}). Returns an unsubscribe fn.
function M.on(event, fn)
  state.listeners[event] = state.listeners[event] or {}
  table.insert(state.listeners[event], fn)
  return function()
    for i, f in ipairs(state.listeners[event] or {}) do
      if f == fn then
        table.remove(state.listeners[event], i)
        return
      end
    end
  end
end

local function emit(event, payload)
  for _, fn in ipairs(state.listeners[event] or {}) do
    local ok, err = pcall(fn, payload)
    if not ok then
      vim.notify('cordon: ' .. event .. ' listener failed: ' .. tostring(err), vim.log.levels.ERROR)
    end
  end
end

local function on_notification(method, params)
  if method == 'exec/output' then
    local ex = state.execs[params.requestId]
    if ex and ex.on_output then
      ex.on_output(params.stream, params.data)
    end
    emit('output', params)
  elseif method == 'sandbox/violation' then
    local ex = not rpc.is_null(params.requestId) and state.execs[params.requestId] or nil
    if ex and ex.on_violation then
      ex.on_violation(params)
    end
    emit('violation', params)
    local handler = M.config.on_violation or require('cordon.prompts').violation
    handler(params)
  end
end

local function on_request(method, params, reply)
  if method == 'sandbox/approve' then
    local handler = M.config.on_approve or require('cordon.prompts').approve
    handler(params, function(decision)
      reply({ decision = decision or 'deny' })
    end)
  else
    reply(nil, { code = -32601, message = 'method not found: ' .. method })
  end
end

--- The server command line for the current configuration.
function M.server_command()
  local c = M.config
  local args = { 'serve', '--stdio' }
  if c.state_dir then
    vim.list_extend(args, { '--state-dir', c.state_dir })
  end
  if c.log_file then
    vim.list_extend(args, { '--log-file', c.log_file })
  end
  if c.log_level then
    vim.list_extend(args, { '--log-level', c.log_level })
  end
  vim.list_extend(args, c.args or {})
  local exe = vim.fn.exepath(c.cmd)
  return exe ~= '' and exe or c.cmd, args
end

local function finish_start(err, session)
  local waiting = state.waiting or {}
  state.waiting = nil
  if err then
    if state.client then
      local client = state.client
      state.client = nil -- its exit is expected now
      client:stop(2000)
    end
    state.client, state.server_info, state.session = nil, nil, nil
  else
    state.session = session
  end
  for _, cb in ipairs(waiting) do
    cb(err, session)
  end
end

local function create_session(workspace)
  local function create()
    local params = { workspace = workspace }
    if M.config.policy then
      params.policy = M.config.policy
    end
    state.client:request('session/create', params, function(err, result)
      finish_start(err, result)
    end)
  end
  if not M.config.reuse_session then
    return create()
  end
  state.client:request('session/list', nil, function(err, result)
    if not err and type(result.sessions) == 'table' then
      for _, s in ipairs(result.sessions) do
        if s.workspace == workspace then
          return finish_start(nil, { sessionId = s.sessionId, workspace = s.workspace, reused = true,
            changedFiles = s.changedFiles })
        end
      end
    end
    create()
  end)
end

local leave_autocmd = false

--- Starts the server (if needed) and a session for `opts.workspace` (default: the
--- configured workspace or the current directory). cb(err, session) where session is
--- `{sessionId, workspace, isolation?, reused?}`.
function M.start(opts, cb)
  if type(opts) == 'function' then
    cb, opts = opts, nil
  end
  opts = opts or {}
  if state.session then
    local wanted = opts.workspace and (uv.fs_realpath(vim.fn.fnamemodify(opts.workspace, ':p')) or opts.workspace)
    if wanted and wanted:gsub('(.)/$', '%1') ~= state.session.workspace then
      return schedule_cb(cb, {
        code = -32602,
        message = ('a session on %s is open (one per Neovim): :CordonStop first'):format(state.session.workspace),
      })
    end
    return schedule_cb(cb, nil, state.session)
  end
  if state.waiting then
    table.insert(state.waiting, cb or function() end)
    return
  end
  state.waiting = { cb or function() end }
  local workspace = opts.workspace or M.config.workspace or vim.fn.getcwd()
  workspace = vim.fn.fnamemodify(workspace, ':p'):gsub('(.)/$', '%1')
  workspace = (uv.fs_realpath(workspace) or workspace)

  local exe, args = M.server_command()
  local client, err
  client, err = rpc.start(exe, args, {
    notification = on_notification,
    request = on_request,
    exit = function(code, signal, stderr)
      local expected = state.client ~= client -- stopped on purpose, or replaced
      if not expected then
        state.client, state.server_info, state.session = nil, nil, nil
      end
      if not expected then
        vim.notify(('cordon: the server exited (code %s, signal %s)%s'):format(tostring(code), tostring(signal),
          stderr ~= '' and (':\n' .. stderr) or ''), vim.log.levels.ERROR)
      end
      emit('exit', { code = code, signal = signal, stderr = stderr, expected = expected })
    end,
    log = function(msg)
      vim.notify('cordon: ' .. msg, vim.log.levels.WARN)
    end,
  })
  if not client then
    return vim.schedule(function()
      finish_start({ code = rpc.SERVER_EXITED, message = err .. ' (set cordon.setup{cmd=...})' })
    end)
  end
  state.client = client
  if not leave_autocmd then
    leave_autocmd = true
    vim.api.nvim_create_autocmd('VimLeavePre', {
      group = vim.api.nvim_create_augroup('cordon_leave', { clear = true }),
      callback = function()
        if state.client then
          state.client:stop(1000)
        end
      end,
    })
  end
  client:request('initialize', {
    clientInfo = { name = 'cordon.nvim', version = tostring(vim.version().major .. '.' .. vim.version().minor) },
    capabilities = { approvals = M.config.approvals and true or false },
  }, function(ierr, result)
    if ierr then
      return finish_start(ierr)
    end
    state.server_info = result
    create_session(workspace)
  end)
end

--- The current session (`{sessionId, workspace, ...}`) or nil.
function M.session()
  return state.session
end

--- The initialize result of the running server, or nil.
function M.server_info()
  return state.server_info
end

-- Calls `method` with `params` + sessionId once a session exists.
local function with_session(method, params, cb, on_id)
  M.start(function(err, session)
    if err then
      return cb and cb(err)
    end
    if not state.client then
      return cb and cb({ code = rpc.SERVER_EXITED, message = 'cordon server is not running' })
    end
    params = params or {}
    params.sessionId = session.sessionId
    local id = state.client:request(method, params, function(e, r)
      if cb then
        cb(e, r)
      end
    end)
    if on_id then
      on_id(id)
    end
  end)
end

--- Sends any session method (sessionId added). cb(err, result).
function M.request(method, params, cb)
  with_session(method, params, cb)
end

--- Runs a command in the sandbox. `command`: a shell string (run by /bin/sh -c) or an argv
--- list. opts: {cwd, env, stdin, timeoutMs, maxOutputBytes, on_output = fn(stream, data),
--- on_violation = fn(params), on_start = fn(request_id)}. Output streams to `on_output`
--- while the command runs; cb(err, result) gets the exec result (exitCode, reason,
--- changes, ...).
function M.run(command, opts, cb)
  if type(opts) == 'function' then
    cb, opts = opts, nil
  end
  opts = opts or {}
  local params = {
    stream = true,
    cwd = opts.cwd,
    env = opts.env,
    stdin = opts.stdin,
    timeoutMs = opts.timeoutMs,
    maxOutputBytes = opts.maxOutputBytes,
  }
  if type(command) == 'table' then
    params.argv = command
  else
    params.command = command
  end
  local request_id
  with_session('exec', params, function(err, result)
    if request_id then
      state.execs[request_id] = nil
    end
    if cb then
      cb(err, result)
    end
  end, function(id)
    request_id = id
    state.execs[id] = { on_output = opts.on_output, on_violation = opts.on_violation }
    if opts.on_start then
      opts.on_start(id)
    end
  end)
end

--- Cancels a running request (e.g. the id given to run's `on_start`).
function M.cancel(request_id)
  if state.client then
    state.client:cancel(request_id)
  end
end

--- fs/read: the sandbox's view of `path`. cb(err, {content, encoding, size}).
function M.read(path, cb)
  with_session('fs/read', { path = path }, cb)
end

--- fs/list. cb(err, {entries = {{name, type, size}}}).
function M.list(path, cb)
  with_session('fs/list', { path = path }, cb)
end

--- fs/write (into the sandbox, never the real workspace). opts: {encoding}.
function M.write(path, content, opts, cb)
  if type(opts) == 'function' then
    cb, opts = opts, nil
  end
  with_session('fs/write', { path = path, content = content, encoding = opts and opts.encoding }, cb)
end

--- fs/edit: `edits` = {{oldText, newText, replaceAll?}}. cb(err, {path, diff}).
function M.edit(path, edits, cb)
  with_session('fs/edit', { path = path, edits = edits }, cb)
end

--- fetch through the session's network policy. opts: {method, headers, body, maxBytes,
--- timeoutMs}. cb(err, {status, headers, body, encoding, truncated}).
function M.fetch(url, opts, cb)
  if type(opts) == 'function' then
    cb, opts = opts, nil
  end
  local params = vim.tbl_extend('force', {}, opts or {})
  params.url = url
  with_session('fetch', params, cb)
end

--- changes/diff for `paths` (nil: every pending file). cb(err, {files, patch, git}).
function M.diff(paths, cb)
  with_session('changes/diff', { paths = (paths and #paths > 0) and paths or nil }, cb)
end

--- changes/apply. `files`: {{path, baseHash, newHash}} as shown to the user (nil: every
--- unprotected pending file, hashes taken now). opts: {confirmProtected = {path}}.
--- cb(err, {applied, conflicts, protected}).
function M.apply(files, opts, cb)
  if type(opts) == 'function' then
    cb, opts = opts, nil
  end
  local params = { files = (files and #files > 0) and files or nil }
  if opts and opts.confirmProtected and #opts.confirmProtected > 0 then
    params.confirmProtected = opts.confirmProtected
  end
  with_session('changes/apply', params, cb)
end

--- changes/discard for `paths` (nil: every pending change).
function M.discard(paths, cb)
  with_session('changes/discard', { paths = (paths and #paths > 0) and paths or nil }, cb)
end

--- Closes the session (its pending changes stay on disk unless opts.discard) and stops the
--- server. Synchronous, bounded by a few seconds. cb(err) is optional.
function M.stop(opts, cb)
  if type(opts) == 'function' then
    cb, opts = opts, nil
  end
  opts = opts or {}
  local client = state.client
  if not client then
    return schedule_cb(cb, nil, nil)
  end
  local err
  if state.session then
    err = client:request_sync('session/close', { sessionId = state.session.sessionId, discard = opts.discard or nil },
      M.config.timeout_ms)
  end
  state.client, state.server_info, state.session, state.waiting = nil, nil, nil, nil
  state.execs = {}
  client:stop(3000)
  schedule_cb(cb, err, nil)
end

--- Whether a server is running.
function M.is_running()
  return state.client ~= nil and state.client:is_running()
end

--- Converts an absolute or relative path to the session's workspace-relative form, or nil
--- when it lies outside the workspace.
function M.relative_path(path)
  local s = state.session
  if not s or not path or path == '' then
    return nil
  end
  local abs = vim.fn.fnamemodify(path, ':p')
  abs = uv.fs_realpath(abs) or abs
  local root = s.workspace:gsub('/$', '') .. '/'
  if abs:sub(1, #root) == root then
    return abs:sub(#root + 1)
  end
  if not path:match('^/') and not path:match('^~') then
    return path -- already relative: taken as workspace-relative
  end
  return nil
end

--- The absolute path in the real workspace of a workspace-relative path.
function M.absolute_path(rel)
  local s = state.session
  return s and (s.workspace:gsub('/$', '') .. '/' .. rel) or rel
end

return M

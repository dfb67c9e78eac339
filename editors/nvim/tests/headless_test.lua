-- Headless tests of the cordon Neovim plugin against the real `cordon` binary.
--
-- Run by run_headless.sh: nvim --headless -u minimal_init.lua -c 'luafile headless_test.lua'
-- with CORDON_BIN (the binary), CORDON_TEST_TMP (a fresh temp dir), CORDON_STATE_DIR.
-- Prints one line per test and `N passed, N failed`; exits with :cquit on any failure (a Lua
-- error followed by :qa! would exit 0 in headless mode), so every path ends in cquit or qa!.
local uv = vim.uv or vim.loop

local function out(s)
  io.stdout:write(s .. '\n')
  io.stdout:flush()
end

local ok_all, setup_err = pcall(function()
  assert(os.getenv('CORDON_TEST_TMP'), 'CORDON_TEST_TMP is not set')
end)
if not ok_all then
  out('FAIL setup: ' .. tostring(setup_err))
  out('0 passed, 1 failed')
  vim.cmd('cquit 1')
end

local TMP = os.getenv('CORDON_TEST_TMP')
local WS = TMP .. '/workspace'
local ONLY = os.getenv('CORDON_TEST_ONLY') -- a Lua pattern: run matching tests only

local cordon = require('cordon')
local review = require('cordon.review')
local output = require('cordon.output')

-- Hard stop: whatever hangs, the run ends (failed) within the CTest timeout.
local watchdog = uv.new_timer()
watchdog:start(100000, 0, function()
  io.stdout:write('FAIL watchdog: the tests did not finish within 100 s\n')
  os.exit(3)
end)

---------------------------------------------------------------------------------------
-- helpers

local function write_file(path, content)
  vim.fn.mkdir(vim.fn.fnamemodify(path, ':h'), 'p')
  local f = assert(io.open(path, 'wb'))
  f:write(content)
  f:close()
end

local function read_file(path)
  local f = io.open(path, 'rb')
  if not f then
    return nil
  end
  local s = f:read('*a')
  f:close()
  return s
end

local notes = {} -- captured vim.notify messages

-- Waits for cond(); fails at once when the plugin reports an error meanwhile.
local function wait_for(what, cond, ms)
  local seen = #notes
  local failure
  local ok = vim.wait(ms or 20000, function()
    for i = seen + 1, #notes do
      if notes[i].level == vim.log.levels.ERROR then
        failure = notes[i].msg
        return true
      end
    end
    return cond()
  end, 10)
  if failure and not cond() then
    error(('while waiting for %s: %s'):format(what, failure), 2)
  end
  if not ok then
    error('timed out waiting for ' .. what, 2)
  end
end

-- Calls fn(args..., cb) and waits for cb(err, result).
local function await(what, fn, ...)
  local args = { n = select('#', ...), ... }
  local done, e, r = false, nil, nil
  args[args.n + 1] = function(err, result)
    done, e, r = true, err, result
  end
  fn(unpack(args, 1, args.n + 1))
  wait_for(what, function()
    return done
  end)
  return e, r
end

local function eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(('%s: expected %s, got %s'):format(what or 'value', vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

local function truthy(v, what)
  if not v then
    error((what or 'condition') .. ' is false', 2)
  end
end

local function contains(haystack, needle, what)
  if type(haystack) ~= 'string' or not haystack:find(needle, 1, true) then
    error(('%s: %s does not contain %q'):format(what or 'text', vim.inspect(haystack), needle), 2)
  end
end

local function no_error(err, what)
  if err then
    error((what or 'call') .. ' failed: ' .. cordon.format_error(err), 2)
  end
end

-- Captured notifications and a scriptable vim.ui.select.
vim.notify = function(msg, level)
  table.insert(notes, { msg = msg, level = level })
end
local function notes_matching(s)
  local found = {}
  for _, n in ipairs(notes) do
    if n.msg:find(s, 1, true) then
      table.insert(found, n.msg)
    end
  end
  return found
end

local asked = {}
local answer = function()
  return nil
end
vim.ui.select = function(items, opts, on_choice)
  local labels = {}
  for i, it in ipairs(items) do
    labels[i] = opts.format_item and opts.format_item(it) or tostring(it)
  end
  table.insert(asked, { prompt = opts.prompt, labels = labels, kind = opts.kind })
  local pick = answer(items, labels, opts)
  vim.schedule(function()
    on_choice(pick, pick and vim.tbl_contains(items, pick) and nil)
  end)
end
local function answer_with(label_pattern)
  answer = function(items, labels)
    for i, l in ipairs(labels) do
      if l:find(label_pattern) then
        return items[i]
      end
    end
    error('no choice matches ' .. label_pattern .. ' in ' .. vim.inspect(labels))
  end
end

-- The output buffer's lines; with `header`, only those from the last line starting with it.
local function output_lines(header)
  local lines = vim.api.nvim_buf_get_lines(output.buffer(), 0, -1, false)
  if not header then
    return lines
  end
  for i = #lines, 1, -1 do
    if lines[i]:sub(1, #header) == header then
      return vim.list_slice(lines, i, #lines)
    end
  end
  return {}
end

local function changed_paths(files)
  local paths = {}
  for _, f in ipairs(files or {}) do
    paths[f.path] = f
  end
  return paths
end

-- An HTTP server on `host` (default 127.0.0.1; each approval test uses its own 127.0.0.N so
-- that no test depends on what the server remembers of another's answer) inside this
-- Neovim (libuv): answers `body` to each
-- request. Returns port, close().
local function http_server(body, host)
  local server = uv.new_tcp()
  assert(server:bind(host or '127.0.0.1', 0))
  local hits = { n = 0 }
  server:listen(16, function(err)
    if err then
      return
    end
    local client = uv.new_tcp()
    server:accept(client)
    local req = ''
    client:read_start(function(rerr, chunk)
      if rerr or not chunk then
        client:close()
        return
      end
      req = req .. chunk
      if req:find('\r\n\r\n', 1, true) then
        hits.n = hits.n + 1
        client:write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ' .. #body ..
          '\r\nConnection: close\r\n\r\n' .. body, function()
          client:shutdown(function()
            client:close()
          end)
        end)
      end
    end)
  end)
  local port = server:getsockname().port
  return port, function()
    server:close()
  end, hits
end

---------------------------------------------------------------------------------------
-- the example workspace

write_file(WS .. '/README.md', '# demo\n\nline two\n')
write_file(WS .. '/conflict.txt', 'base\n')
write_file(WS .. '/src/main.c', 'int main(void) { return 0; }\n')
vim.cmd('cd ' .. vim.fn.fnameescape(WS))

---------------------------------------------------------------------------------------
-- tests (run in order; later ones build on the session state of earlier ones)

local tests = {}
local function test(name, fn)
  table.insert(tests, { name = name, fn = fn })
end

test('rpc: Content-Length frames decode across arbitrary chunk boundaries', function()
  local rpc = require('cordon.rpc')
  local d = rpc.new_decoder()
  local big = string.rep('x', 200000)
  local stream = rpc.frame({ a = 1 }) .. 'Content-Type: application/vscode-jsonrpc\r\n' .. rpc.frame({ b = big })
    .. 'X-Bad: 1\r\n\r\n' .. rpc.frame({ c = 'é€' })
  local bodies, errors = {}, {}
  local i, step = 1, 1
  while i <= #stream do
    local b, e = d.feed(stream:sub(i, i + step - 1))
    vim.list_extend(bodies, b)
    vim.list_extend(errors, e)
    i = i + step
    step = step % 9000 + 7
  end
  eq(3, #bodies, 'bodies')
  eq({ a = 1 }, vim.json.decode(bodies[1]), 'first')
  eq(big, vim.json.decode(bodies[2]).b, 'second')
  eq('é€', vim.json.decode(bodies[3]).c, 'third (Content-Length counts bytes)')
  eq(1, #errors, 'the header block without Content-Length is reported')
  eq(0, d.pending(), 'nothing left over')
  eq('{}', vim.json.encode(vim.empty_dict()), 'empty params encode as an object')
end)

test('output: escape and control sequences are neutralised, also when split across chunks', function()
  local w = output.begin('unit')
  w.write('stdout', 'a\27[1')
  w.write('stdout', ';31mb\27]8;;http://x\27')
  w.write('stdout', '\\c\r')
  w.write('stdout', '\nd\rhidden?\194\155e\0\n')
  w.write('stderr', 'tail\27')
  w.finish(nil, { exitCode = 0, reason = 'exited', durationMs = 1, changes = {} })
  local lines = output_lines()
  local i = #lines
  while i > 0 and lines[i] ~= '$ unit' do
    i = i - 1
  end
  eq({ '$ unit', 'abc', 'd', 'hidden?<9b>e^@', 'tail', '[exit 0, 1 ms]' }, vim.list_slice(lines, i, #lines), 'transcript')
end)

test('start: initialize reports isolation, session/create opens a session on the workspace', function()
  local err, s = await('start', cordon.start, { workspace = WS })
  no_error(err, 'start')
  truthy(type(s.sessionId) == 'string' and s.sessionId ~= '', 'sessionId')
  eq(uv.fs_realpath(WS), s.workspace, 'workspace')
  local info = cordon.server_info()
  eq('cordon', info.serverInfo.name, 'serverInfo.name')
  local iso = info.capabilities.isolation
  for _, k in ipairs({ 'userns', 'overlay', 'seccomp', 'landlock', 'cgroups' }) do
    truthy(type(iso[k]) == 'boolean', 'isolation.' .. k .. ' is a boolean')
  end
end)

test('start: one session per Neovim; another workspace is refused while it is open', function()
  local err, s = await('start again', cordon.start, { workspace = WS .. '/' })
  no_error(err, 'same workspace')
  eq(cordon.session().sessionId, s.sessionId, 'same session')
  err = await('start elsewhere', cordon.start, { workspace = TMP })
  truthy(err and err.code == -32602, 'refused: ' .. vim.inspect(err))
  contains(err.message, ':CordonStop', 'message')
end)

test(':checkhealth cordon reports the binary, the version and the isolation', function()
  vim.cmd('silent checkhealth cordon')
  local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  vim.cmd('bwipeout!')
  contains(text, 'binary: ', 'health')
  contains(text, 'version: cordon', 'health')
  contains(text, 'server: cordon', 'health')
  contains(text, 'isolation: userns', 'health')
  truthy(not text:find('ERROR', 1, true), 'no ERROR in health report:\n' .. text)
end)

test('doc/cordon.txt: :helptags builds its tags without errors', function()
  local doc = vim.fn.fnamemodify(vim.api.nvim_get_runtime_file('doc/cordon.txt', false)[1], ':h')
  local copy = TMP .. '/doc'
  vim.fn.mkdir(copy, 'p')
  write_file(copy .. '/cordon.txt', read_file(doc .. '/cordon.txt'))
  vim.cmd('helptags ' .. vim.fn.fnameescape(copy))
  local tags = read_file(copy .. '/tags') or ''
  for _, tag in ipairs({ 'cordon.txt', ':CordonStart', ':CordonRun', ':CordonCancel', ':CordonChanges', ':CordonDiff',
    ':CordonApply', ':CordonDiscard', ':CordonStop', 'cordon-api', 'cordon.run()', 'cordon-approvals' }) do
    contains(tags, tag .. '\t', 'tags')
  end
end)

test(':CordonRun streams output into cordon://output, escape sequences neutralised', function()
  local chunks = 0
  local unsubscribe = cordon.on('output', function()
    chunks = chunks + 1
  end)
  vim.cmd([[CordonRun printf 'hi\n'; sleep 0.3; printf '\033[31mred\033[0m\033]0;pwned\007 \001done\n'; echo oops >&2]])
  -- Streaming: "hi" is in the buffer while the command still sleeps.
  local H = "$ printf 'hi"
  wait_for('hi in the output buffer', function()
    return vim.tbl_contains(output_lines(H), 'hi')
  end, 10000)
  wait_for('the command to finish', function()
    for _, l in ipairs(output_lines(H)) do
      if l:match('^%[exit 0, %d+ ms%]$') then
        return true
      end
    end
  end, 15000)
  unsubscribe()
  local lines = output_lines(H)
  local text = table.concat(lines, '\n')
  truthy(chunks >= 2, 'at least 2 exec/output notifications (got ' .. chunks .. ')')
  contains(text, "$ printf 'hi\\n'", 'command header')
  truthy(vim.tbl_contains(lines, 'red ^Adone'), 'escapes removed, controls shown: ' .. vim.inspect(lines))
  truthy(vim.tbl_contains(lines, 'oops'), 'stderr shown')
  truthy(not text:find('\27', 1, true), 'no ESC byte left in the buffer')
  local body = vim.tbl_filter(function(l)
    return l:sub(1, 2) ~= '$ '
  end, lines)
  truthy(not table.concat(body, '\n'):find('pwned', 1, true), 'OSC title sequence removed')
  -- The buffer is a read-only scratch buffer shown in a window.
  local buf = output.buffer()
  eq('nofile', vim.bo[buf].buftype, 'buftype')
  eq(false, vim.bo[buf].modifiable, 'modifiable')
  truthy(vim.fn.bufwinid(buf) ~= -1, 'output window open')
end)

test('API run: exit code, streamed output, changes reported, real workspace untouched', function()
  local streamed = {}
  local err, r = await('run', cordon.run,
    'echo agent line >> README.md; echo new > new.txt; mkdir -p .vscode notes; echo "{}" > .vscode/tasks.json; echo agent > conflict.txt; echo done',
    {
      on_output = function(stream, data)
        table.insert(streamed, stream .. ':' .. data)
      end,
    })
  no_error(err, 'exec')
  eq(0, r.exitCode, 'exitCode')
  eq('exited', r.reason, 'reason')
  contains(table.concat(streamed), 'stdout:done', 'streamed output')
  eq('done\n', r.stdout, 'captured stdout')
  local changes = {}
  for _, c in ipairs(r.changes) do
    changes[c.path] = c.status
  end
  eq('modified', changes['README.md'], 'README.md change')
  eq('added', changes['new.txt'], 'new.txt change')
  eq('added', changes['.vscode/tasks.json'], 'tasks.json change')
  eq('# demo\n\nline two\n', read_file(WS .. '/README.md'), 'real README.md')
  eq(nil, read_file(WS .. '/new.txt'), 'real new.txt')
end)

test('API run: a non-zero exit and a cancelled command', function()
  local err, r = await('run', cordon.run, { 'sh', '-c', 'exit 7' }, {})
  no_error(err, 'exec argv')
  eq(7, r.exitCode, 'exitCode')
  local id
  local started = uv.now()
  local done, cerr = false, nil
  cordon.run('sleep 30', {
    on_start = function(i)
      id = i
    end,
  }, function(e)
    done, cerr = true, e
  end)
  wait_for('request id', function()
    return id ~= nil
  end)
  vim.wait(200)
  cordon.cancel(id)
  wait_for('cancelled exec to answer', function()
    return done
  end, 10000)
  truthy(cerr and cerr.code == -32800, 'cancelled with -32800: ' .. vim.inspect(cerr))
  truthy(uv.now() - started < 10000, 'cancelled promptly')
end)

test(':CordonCancel stops a running :CordonRun', function()
  local started = uv.now()
  vim.cmd('CordonRun sleep 30; echo not-reached')
  vim.wait(300)
  vim.cmd('CordonCancel')
  wait_for('the cancelled transcript', function()
    return vim.tbl_contains(output_lines('$ sleep 30'), '[cordon] failed: request cancelled (-32800)')
  end, 10000)
  truthy(uv.now() - started < 10000, 'promptly')
  truthy(not vim.tbl_contains(output_lines('$ sleep 30'), 'not-reached'), 'the command did not go on')
end)

test('API fs: write, edit, read, list; a failing edit changes nothing', function()
  local err, r = await('write', cordon.write, 'notes/plan.md', 'step a\nstep b\n')
  no_error(err, 'fs/write')
  eq('notes/plan.md', r.path, 'fs/write path')
  err, r = await('edit', cordon.edit, 'notes/plan.md', { { oldText = 'step b', newText = 'step B' } })
  no_error(err, 'fs/edit')
  contains(r.diff, '+step B', 'fs/edit diff')
  err, r = await('edit', cordon.edit, 'notes/plan.md',
    { { oldText = 'step a', newText = 'x' }, { oldText = 'not there', newText = 'y' } })
  truthy(err and err.code == -32602, 'absent oldText fails with -32602: ' .. vim.inspect(err))
  err, r = await('read', cordon.read, 'notes/plan.md')
  no_error(err, 'fs/read')
  eq('step a\nstep B\n', r.content, 'content after edits')
  eq('utf-8', r.encoding, 'encoding')
  err, r = await('list', cordon.list, 'notes')
  no_error(err, 'fs/list')
  eq('plan.md', r.entries[1] and r.entries[1].name, 'fs/list entry')
  err = await('read outside', cordon.read, '../outside')
  truthy(err and err.code == -32602, 'a path leaving the workspace fails with -32602')
  eq(nil, read_file(WS .. '/notes/plan.md'), 'real notes/plan.md')
end)

test(':CordonChanges fills the quickfix list with the pending files', function()
  vim.cmd('CordonChanges')
  wait_for('quickfix list', function()
    local t = vim.fn.getqflist({ title = 0 }).title
    return t:find(review.QF_TITLE, 1, true) ~= nil
  end)
  local items = vim.fn.getqflist()
  local by_name = {}
  for _, it in ipairs(items) do
    by_name[vim.fn.fnamemodify(vim.api.nvim_buf_get_name(it.bufnr), ':.')] = it
  end
  for _, p in ipairs({ 'README.md', 'new.txt', 'conflict.txt', 'notes/plan.md', '.vscode/tasks.json' }) do
    truthy(by_name[p], p .. ' in the quickfix list ' .. vim.inspect(vim.tbl_keys(by_name)))
  end
  contains(by_name['README.md'].text, 'modified', 'README.md entry')
  contains(by_name['new.txt'].text, 'added', 'new.txt entry')
  contains(by_name['.vscode/tasks.json'].text, 'PROTECTED', 'tasks.json entry')
  eq(4, by_name['README.md'].lnum, 'README.md entry points at the first changed line')
  truthy(vim.fn.getqflist({ winid = 0 }).winid ~= 0, 'quickfix window open')
  vim.cmd('cclose')
end)

test(':CordonDiff README.md opens real file vs read-only sandbox content in diff mode', function()
  local tabs = #vim.api.nvim_list_tabpages()
  vim.cmd('CordonDiff README.md')
  wait_for('diff tab', function()
    return #vim.api.nvim_list_tabpages() == tabs + 1 and #vim.api.nvim_tabpage_list_wins(0) == 2
      and vim.b.cordon_change ~= nil
  end)
  local wins = vim.api.nvim_tabpage_list_wins(0)
  local real_buf = vim.api.nvim_win_get_buf(wins[1])
  local sb = vim.api.nvim_win_get_buf(wins[2])
  eq(uv.fs_realpath(WS) .. '/README.md', vim.api.nvim_buf_get_name(real_buf), 'left: the real file')
  eq({ '# demo', '', 'line two' }, vim.api.nvim_buf_get_lines(real_buf, 0, -1, false), 'real content')
  contains(vim.api.nvim_buf_get_name(sb), 'cordon://' .. cordon.session().sessionId .. '/README.md', 'sandbox buffer name')
  eq({ '# demo', '', 'line two', 'agent line' }, vim.api.nvim_buf_get_lines(sb, 0, -1, false), 'sandbox content')
  eq(false, vim.bo[sb].modifiable, 'sandbox buffer modifiable')
  eq('nofile', vim.bo[sb].buftype, 'sandbox buffer buftype')
  eq(true, vim.wo[wins[1]].diff, 'left diff')
  eq(true, vim.wo[wins[2]].diff, 'right diff')
  eq('README.md', vim.b.cordon_change.path, 'b:cordon_change')
end)

test(':CordonApply from the diff buffer writes the real file, other changes stay pending', function()
  for k in pairs(notes) do notes[k] = nil end
  vim.cmd('CordonApply') -- the cursor is in the sandbox buffer of README.md
  wait_for('README.md applied', function()
    return read_file(WS .. '/README.md') == '# demo\n\nline two\nagent line\n'
  end)
  wait_for('apply notification', function()
    return #notes_matching('applied 1 file') > 0
  end)
  vim.cmd('tabclose')
  eq(nil, read_file(WS .. '/new.txt'), 'new.txt still not applied')
  local err, r = await('diff', cordon.diff, nil)
  no_error(err, 'changes/diff')
  local files = changed_paths(r.files)
  truthy(not files['README.md'], 'README.md no longer pending')
  truthy(files['new.txt'], 'new.txt still pending')
end)

test('conflict: the real file changed after the diff was shown → not applied, user bytes intact', function()
  for k in pairs(notes) do notes[k] = nil end
  local err = await('changes', review.changes, { open = false })
  no_error(err, 'changes')
  write_file(WS .. '/conflict.txt', 'user edit\n')
  vim.cmd('CordonApply conflict.txt')
  wait_for('conflict notification', function()
    return #notes_matching('conflict, not applied: conflict.txt') > 0
  end)
  eq('user edit\n', read_file(WS .. '/conflict.txt'), 'real conflict.txt')
end)

test('protected: .vscode/tasks.json is applied only after an explicit yes', function()
  for k in pairs(notes) do notes[k] = nil end
  asked = {}
  answer_with('^No$')
  vim.cmd('CordonApply .vscode/tasks.json')
  wait_for('protected notification', function()
    return #notes_matching('protected, not applied') > 0 or #notes_matching('applied') > 0
  end)
  eq(1, #asked, 'one question asked')
  contains(asked[1].prompt, '.vscode/tasks.json is protected', 'question')
  eq(nil, read_file(WS .. '/.vscode/tasks.json'), 'not applied after "No"')
  for k in pairs(notes) do notes[k] = nil end
  asked = {}
  answer_with('^Apply ')
  vim.cmd('CordonApply .vscode/tasks.json')
  wait_for('tasks.json applied', function()
    return read_file(WS .. '/.vscode/tasks.json') == '{}\n'
  end)
end)

test(':CordonDiscard new.txt drops that change only', function()
  for k in pairs(notes) do notes[k] = nil end
  vim.cmd('CordonDiscard new.txt')
  wait_for('discard notification', function()
    return #notes_matching('discarded new.txt') > 0
  end)
  local err, r = await('diff', cordon.diff, nil)
  no_error(err, 'changes/diff')
  local files = changed_paths(r.files)
  truthy(not files['new.txt'], 'new.txt discarded')
  truthy(files['notes/plan.md'], 'notes/plan.md still pending')
  eq(nil, read_file(WS .. '/new.txt'), 'real new.txt')
  local rerr = await('read', cordon.read, 'new.txt')
  truthy(rerr ~= nil, 'new.txt gone from the sandbox view too')
end)

test(':CordonApply without a file applies every pending file it can', function()
  for k in pairs(notes) do notes[k] = nil end
  vim.cmd('CordonApply')
  wait_for('plan.md applied', function()
    return read_file(WS .. '/notes/plan.md') == 'step a\nstep B\n'
  end)
  wait_for('summary', function()
    return #notes_matching('applied') > 0
  end)
  contains(table.concat(notes_matching('applied'), '\n'), 'conflict, not applied: conflict.txt', 'summary')
  eq('user edit\n', read_file(WS .. '/conflict.txt'), 'real conflict.txt')
end)

test(':CordonDiff of a deleted, an added and a binary file; applying the deletion removes the real file', function()
  local err, r = await('run', cordon.run, [[rm src/main.c && echo fresh > brand-new.txt && printf 'a\000b' > blob.bin]], {})
  no_error(err, 'exec')
  eq(0, r.exitCode, 'exitCode')
  local function open_diff(path)
    local tabs = #vim.api.nvim_list_tabpages()
    vim.cmd('CordonDiff ' .. path)
    wait_for('diff tab for ' .. path, function()
      return #vim.api.nvim_list_tabpages() == tabs + 1 and vim.b.cordon_change ~= nil
    end)
    local wins = vim.api.nvim_tabpage_list_wins(0)
    local left = vim.api.nvim_win_get_buf(wins[1])
    local right = vim.api.nvim_win_get_buf(wins[2])
    return vim.api.nvim_buf_get_lines(left, 0, -1, false), vim.api.nvim_buf_get_lines(right, 0, -1, false),
      vim.api.nvim_buf_get_name(left)
  end
  local left, right = open_diff('src/main.c')
  eq({ 'int main(void) { return 0; }' }, left, 'deleted: real side')
  eq({ '' }, right, 'deleted: sandbox side empty')
  eq('deleted', vim.b.cordon_change.status, 'status')
  vim.cmd('tabclose')
  local lname
  left, right, lname = open_diff('brand-new.txt')
  eq({ '' }, left, 'added: real side empty')
  contains(lname, '(absent)', 'added: real side named as absent')
  eq({ 'fresh' }, right, 'added: sandbox side')
  vim.cmd('tabclose')
  left, right = open_diff('blob.bin')
  contains(right[1], '[binary file', 'binary placeholder')
  vim.cmd('tabclose')
  vim.cmd('CordonApply src/main.c')
  wait_for('the real src/main.c to be removed', function()
    return uv.fs_stat(WS .. '/src/main.c') == nil
  end)
  vim.cmd('CordonDiscard!')
  wait_for('everything discarded', function()
    return #notes_matching('discarded every pending change') > 0
  end)
  local derr, d = await('diff', cordon.diff, nil)
  no_error(derr, 'changes/diff')
  eq(0, #d.files, 'nothing pending after :CordonDiscard!')
  eq(nil, read_file(WS .. '/brand-new.txt'), 'the discarded file never reached the workspace')
end)

test('approval: fetch of an unlisted host asks via vim.ui.select; allow-once lets it through', function()
  local port, close, hits = http_server('hello from the host', '127.0.0.2')
  asked = {}
  answer_with('^Allow once$')
  local err, r = await('fetch', cordon.fetch, ('http://127.0.0.2:%d/greeting'):format(port), { timeoutMs = 10000 })
  close()
  no_error(err, 'fetch')
  eq(200, r.status, 'status')
  eq('hello from the host', r.body, 'body')
  eq(1, hits.n, 'requests served')
  eq(1, #asked, 'one approval question')
  eq('cordon.approve', asked[1].kind, 'question kind')
  eq({ 'Allow once', 'Allow for this session', 'Deny' }, asked[1].labels, 'choices')
  contains(asked[1].prompt, '127.0.0.2:' .. port, 'question names host and port')
end)

test('approval: deny → fetch fails with -32003 and the violation is notified', function()
  local port, close, hits = http_server('secret', '127.0.0.3')
  for k in pairs(notes) do notes[k] = nil end
  asked = {}
  answer_with('^Deny$')
  local err = await('fetch', cordon.fetch, ('http://127.0.0.3:%d/'):format(port), { timeoutMs = 10000 })
  truthy(err and err.code == -32003, 'denied with -32003: ' .. vim.inspect(err))
  eq(1, #asked, 'one approval question')
  eq(0, hits.n, 'the host server was not reached')
  wait_for('violation notification', function()
    return #notes_matching('cordon: blocked network access') > 0
  end, 5000)
  close()
end)

-- A request from inside the sandbox through its HTTP proxy (NO_PROXY covers the sandbox's
-- own loopback, so curl is told to use the proxy for this address).
local function curl_via_proxy(url)
  return ([[curl -fsS --max-time 10 --noproxy '' -x "$HTTP_PROXY" %s]]):format(url)
end

test(':CordonRun: a denied request shows in the output and as a notification', function()
  local port, close, hits = http_server('secret', '127.0.0.4')
  for k in pairs(notes) do notes[k] = nil end
  asked = {}
  answer_with('^Deny$')
  vim.cmd('CordonRun ' .. curl_via_proxy(('http://127.0.0.4:%d/'):format(port)) .. '; echo curl-exit=$?')
  wait_for('the command to finish', function()
    for _, l in ipairs(output_lines('$ curl')) do
      if l:match('^curl%-exit=') then
        return true
      end
    end
  end, 20000)
  close()
  eq(1, #asked, 'one approval question')
  contains(asked[1].prompt, '127.0.0.4:' .. port, 'question names host and port')
  eq(0, hits.n, 'the host server was not reached')
  truthy(not vim.tbl_contains(output_lines('$ curl'), 'curl-exit=0'), 'curl failed')
  truthy(not table.concat(output_lines('$ curl'), '\n'):find('secret', 1, true), 'no body from the host')
  wait_for('the violation in the output', function()
    for _, l in ipairs(output_lines('$ curl')) do
      if l:match('^%[cordon%] blocked %(network%)') then
        return true
      end
    end
  end, 5000)
  wait_for('violation notification', function()
    return #notes_matching('cordon: blocked network access: 127.0.0.4:' .. port) > 0
  end, 5000)
end)

test(':CordonRun: allow-session is asked once, then the sandbox reaches that host', function()
  local port, close, hits = http_server('hello again', '127.0.0.5')
  asked = {}
  answer_with('^Allow for this session$')
  local url = ('http://127.0.0.5:%d/'):format(port)
  local err, r = await('run', cordon.run, curl_via_proxy(url) .. ' && echo && ' .. curl_via_proxy(url), {})
  no_error(err, 'exec')
  eq(0, r.exitCode, 'curl exit code; stderr: ' .. tostring(r.stderr))
  eq('hello again\nhello again', r.stdout, 'both requests answered')
  eq(2, hits.n, 'requests served')
  eq(1, #asked, 'asked once for the session')
  close()
end)

test(':CordonStop stops the server; a new start resumes the session with its pending change', function()
  local werr = await('write', cordon.write, 'resume.txt', 'still pending\n')
  no_error(werr, 'fs/write')
  local old = cordon.session().sessionId
  local pid = cordon._state.client.pid
  for k in pairs(notes) do notes[k] = nil end
  vim.cmd('CordonStop')
  wait_for('stop notification', function()
    return #notes_matching('stopped') > 0
  end)
  truthy(not cordon.is_running(), 'not running')
  wait_for('server process gone', function()
    return uv.kill(pid, 0) ~= 0
  end, 5000)
  local err, s = await('restart', cordon.start, { workspace = WS })
  no_error(err, 'restart')
  eq(old, s.sessionId, 'same session resumed')
  eq(true, s.reused, 'reused')
  eq(1, s.changedFiles, 'pending changes after the restart')
  local rerr, r = await('read', cordon.read, 'resume.txt')
  no_error(rerr, 'fs/read after restart')
  eq('still pending\n', r.content, 'sandbox view after restart')
  eq(nil, read_file(WS .. '/resume.txt'), 'real workspace')
end)

test('a server that dies: pending requests fail, the user is told, the next call restarts it', function()
  local err0 = await('start', cordon.start, { workspace = WS })
  no_error(err0, 'start')
  local pid = cordon._state.client.pid
  for k in pairs(notes) do notes[k] = nil end
  local done, rerr = false, nil
  cordon.run('sleep 30', {}, function(e)
    done, rerr = true, e
  end)
  vim.wait(300)
  uv.kill(pid, 'sigkill')
  wait_for('the pending run to fail', function()
    return done
  end, 5000)
  eq(require('cordon.rpc').SERVER_EXITED, rerr and rerr.code, 'error code')
  wait_for('exit notification', function()
    return #notes_matching('the server exited') > 0
  end, 5000)
  local err, r = await('run after restart', cordon.run, 'echo back', {})
  no_error(err, 'run after restart')
  eq('back\n', r.stdout, 'stdout')
  truthy(cordon._state.client.pid ~= pid, 'a new server process')
end)

test('a missing binary: :CordonRun reports it, nothing hangs', function()
  pcall(cordon.stop)
  local saved = cordon.config.cmd
  cordon.config.cmd = TMP .. '/no-such-cordon'
  for k in pairs(notes) do notes[k] = nil end
  local ok, err = pcall(vim.cmd, 'CordonRun echo never')
  cordon.config.cmd = saved
  truthy(ok, 'the command itself does not throw: ' .. tostring(err))
  vim.wait(2000, function()
    return #notes > 0
  end, 10)
  contains(table.concat(notes_matching('cannot start'), '\n'), 'no-such-cordon', 'error names the binary')
  truthy(not cordon.is_running(), 'not running')
end)

---------------------------------------------------------------------------------------
-- run

local passed, failed = 0, 0
for _, t in ipairs(tests) do
  if not ONLY or t.name:find(ONLY) then
    local started = uv.hrtime()
    local ok, err = xpcall(t.fn, debug.traceback)
    local ms = math.floor((uv.hrtime() - started) / 1e6)
    if ok then
      passed = passed + 1
      out(('PASS %s (%d ms)'):format(t.name, ms))
    else
      failed = failed + 1
      out(('FAIL %s (%d ms)\n    %s'):format(t.name, ms, tostring(err):gsub('\n', '\n    ')))
    end
  end
end

pcall(cordon.stop)
watchdog:stop()
out(('%d passed, %d failed'):format(passed, failed))
if failed > 0 or passed == 0 then
  vim.cmd('cquit 1')
else
  vim.cmd('qall!')
end

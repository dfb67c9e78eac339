-- cordon.nvim: user commands. Everything else loads on first use.
if vim.g.loaded_cordon then
  return
end
vim.g.loaded_cordon = true

local function cmd(name, fn, opts)
  vim.api.nvim_create_user_command(name, function(o)
    require('cordon.commands')[fn](o)
  end, opts)
end

local function complete_pending(arglead)
  return require('cordon.commands').complete_pending(arglead)
end

cmd('CordonStart', 'start', { nargs = '?', complete = 'dir', desc = 'cordon: start the server and a session' })
cmd('CordonRun', 'run', { nargs = '+', complete = 'shellcmd', desc = 'cordon: run a shell command in the sandbox' })
cmd('CordonChanges', 'changes', { nargs = 0, desc = 'cordon: quickfix list of pending changes' })
cmd('CordonDiff', 'diff', { nargs = '?', complete = complete_pending, desc = 'cordon: diff real file vs sandbox' })
cmd('CordonApply', 'apply', { nargs = '?', complete = complete_pending, desc = 'cordon: apply pending changes' })
cmd('CordonDiscard', 'discard', { nargs = '?', bang = true, complete = complete_pending, desc = 'cordon: discard pending changes' })
cmd('CordonCancel', 'cancel', { nargs = 0, desc = 'cordon: stop the commands :CordonRun started' })
cmd('CordonStop', 'stop', { nargs = 0, desc = 'cordon: close the session and stop the server' })

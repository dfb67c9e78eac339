-- Minimal init for the tests: this plugin only, no user config, no swap or shada files.
local tests = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h')
local root = vim.fn.fnamemodify(tests, ':h')
vim.opt.runtimepath:prepend(root)
vim.opt.swapfile = false
vim.opt.shadafile = 'NONE'
vim.opt.more = false
vim.cmd('runtime plugin/cordon.lua')
require('cordon').setup({
  cmd = assert(os.getenv('CORDON_BIN'), 'CORDON_BIN is not set'),
  state_dir = os.getenv('CORDON_STATE_DIR'),
  log_file = os.getenv('CORDON_LOG_FILE'),
  log_level = os.getenv('CORDON_LOG_FILE') and 'debug' or nil,
})

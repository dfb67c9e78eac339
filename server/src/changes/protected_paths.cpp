#include "cordon/server/changes/protected_paths.hpp"

#include "cordon/server/changes/fd.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

namespace cordon::server::changes {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix.data(), suffix.size()) == 0;
}

// A directory any file below which runs on the host.
constexpr std::array kProtectedDirs = {
    ".git",      ".devcontainer", ".claude",  ".cursor",   ".cordon",
    ".githooks", ".husky",        ".idea",    ".windsurf", ".continue",
    ".gemini",   ".codex",        ".amazonq", ".roo",      ".clinerules",
};

// A file name that runs on the host wherever it is.
constexpr std::array kProtectedNames = {
    // direnv, shell startup files
    ".envrc", ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc",
    ".zshenv", ".zprofile", ".zlogin", ".zlogout", ".kshrc", ".cshrc", ".tcshrc", ".inputrc",
    ".config.fish",
    // editors that execute project-local config
    ".exrc", ".nvimrc", ".nvim.lua", ".lazy.lua",
    // agent configs
    ".mcp.json",
    // git config carried in the tree, hook managers
    ".gitmodules", ".pre-commit-config.yaml", "lefthook.yml", "lefthook.yaml", ".lefthook.yml",
    ".lefthook.yaml"};

} // namespace

bool is_protected_path(std::string_view rel) {
    auto comps = split_rel(rel);
    if (comps.empty()) return false;
    for (auto& c : comps)
        c = lower(c);
    for (std::size_t i = 0; i + 1 < comps.size(); ++i)
        for (const char* d : kProtectedDirs)
            if (comps[i] == d) return true;
    const std::string& name = comps.back();
    for (const char* n : kProtectedNames)
        if (name == n) return true;
    if (ends_with(name, ".code-workspace")) return true;
    if (comps.size() >= 2) {
        const std::string& parent = comps[comps.size() - 2];
        if (parent == ".vscode" &&
            (name == "settings.json" || name == "tasks.json" || name == "launch.json" ||
             name == "extensions.json" || name == "mcp.json"))
            return true;
        if (comps.size() >= 3 && comps[comps.size() - 3] == ".github" &&
            (parent == "workflows" || parent == "actions"))
            return true;
        if (parent == ".config" && (name == "fish" || name == "git")) return true;
    }
    // .github/actions/** at any depth below the actions dir
    for (std::size_t i = 0; i + 2 < comps.size(); ++i)
        if (comps[i] == ".github" && (comps[i + 1] == "workflows" || comps[i + 1] == "actions"))
            return true;
    return false;
}

} // namespace cordon::server::changes

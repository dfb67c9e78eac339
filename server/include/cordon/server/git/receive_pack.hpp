// The git-receive-pack request as the proxy sees it, and the push policy applied to it.
//
// parse_receive_pack reads the (decompressed) request body of `POST .../git-receive-pack`:
//   [shallow <id>]* <old> <new> <ref>\0<capabilities> (<old> <new> <ref>)* flush
//   [push-option lines flush, when "push-options" was asked for] <pack>
// scan_pack reads the commits out of the pushed pack (PACK v2/v3: plain objects and
// OFS_DELTA / REF_DELTA chains resolvable inside the pack; deltas against objects the pack
// does not carry - thin packs - are skipped). check_push decides every command against the
// repository's PushPolicy; a single refusal refuses the whole push. report_status builds
// git's own answer (`unpack ok` + `ng <ref> <reason>`, side-band-64k wrapped when asked),
// so `git push` prints the reason.
//
// Fast-forward rule (docs/git.md): an update old -> new is a fast-forward only when a chain
// of parent links from new to old exists among commits whose ids were verified by hashing
// their content: those of the pushed pack and, when the walk leaves the pack at commits the
// remote already has (pack_boundaries), those of a pack the proxy fetches from the remote
// (protocol v2: want <boundaries>, have <old>). Anything not proven is a non-fast-forward.
//
// All functions are pure.
#pragma once

#include "cordon/server/git/config.hpp"

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cordon::server::git {

inline constexpr std::string_view kZeroId = "0000000000000000000000000000000000000000";

struct RefUpdate {
    std::string old_id, new_id, ref;
    bool is_delete() const { return new_id == kZeroId; }
    bool is_create() const { return old_id == kZeroId; }
};

struct ReceivePackRequest {
    std::vector<RefUpdate> commands;
    std::vector<std::string> capabilities;
    std::vector<std::string> push_options;
    std::vector<std::string> shallow;
    std::size_t pack_offset = 0; // where the pack starts in the body (== size: no pack)
    bool has(std::string_view cap) const;
};

// Throws std::runtime_error on malformed input.
ReceivePackRequest parse_receive_pack(std::string_view body);

struct PackCommit {
    std::vector<std::string> parents;
    std::string summary; // first line of the message
    std::string author;  // "Name <email>"
};
struct PackCommits {
    std::map<std::string, PackCommit> commits; // id (hex) -> commit
    std::size_t objects = 0;                   // objects in the pack
    std::size_t unresolved = 0;                // deltas whose base is outside the pack
    std::vector<std::string> paths_touched;    // not computed (reserved)
};
// Throws std::runtime_error on a malformed pack. An empty view (no pack) gives no commits.
PackCommits scan_pack(std::string_view pack);

// True when `old_id` is an ancestor of (or equal to) `new_id` according to the pack.
bool proven_fast_forward(const PackCommits& pack, const std::string& old_id,
                         const std::string& new_id);

// The commits the walk from `new_id` through the pack's commits reaches but the pack does
// not contain (`new_id` itself when it is not in the pack): objects the remote has.
std::vector<std::string> pack_boundaries(const PackCommits& pack, const std::string& new_id);

// The body of a protocol v2 `fetch` to git-upload-pack: want each of `wants`, have `have`,
// done, no progress. The answer's pack holds the commits reachable from the wants and not
// from `have`.
std::string upload_pack_fetch_request(const std::vector<std::string>& wants,
                                      const std::string& have);
// The pack of a protocol v2 fetch response (the `packfile` section, side-band demultiplexed).
// Throws std::runtime_error on anything else (an error band included).
std::string upload_pack_response_pack(std::string_view body);

// Glob match of a ref pattern: '*' matches any run of characters, including '/'.
bool ref_matches(std::string_view pattern, std::string_view ref);

// Git's own ref name rules (check-ref-format, plus "must start with refs/").
bool valid_ref_name(std::string_view ref);

struct RefDecision {
    RefUpdate update;
    bool allowed = false;
    std::string reason; // why refused ("" when allowed)
};
struct PushDecision {
    bool allowed = false; // every command allowed
    std::vector<RefDecision> refs;
    std::string summary; // one line naming the first refusal
};
PushDecision check_push(const ReceivePackRequest& req, const PackCommits& pack,
                        const PushPolicy& policy);

// The receive-pack response refusing every command of `d` (the allowed ones "rejected
// together with ..."), with `message` on side band 2 when side-band-64k was asked for.
std::string report_status(const ReceivePackRequest& req, const PushDecision& d,
                          const std::string& message);

// One pkt-line ("0000" for flush when `data` is empty and flush is true).
std::string pkt_line(std::string_view data);

} // namespace cordon::server::git

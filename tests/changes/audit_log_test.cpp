#include "fixture.hpp"

#include "cordon/server/changes/audit_log.hpp"
#include "cordon/server/changes/hash.hpp"

#include <vector>

using namespace cordon::server::changes;
using cordon::protocol::json;
using namespace cordon_test;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/chaudit.XXXXXX";
        REQUIRE(::mkdtemp(tmpl));
        path = tmpl;
    }
    ~TempDir() { fs::remove_all(path); }
};

std::vector<std::string> lines_of(const fs::path& p) {
    std::vector<std::string> out;
    std::ifstream in(p);
    for (std::string l; std::getline(in, l);)
        out.push_back(l);
    return out;
}

void write_lines(const fs::path& p, const std::vector<std::string>& lines) {
    std::ofstream out(p, std::ios::trunc);
    for (auto& l : lines)
        out << l << "\n";
}

void fill(const fs::path& p) {
    AuditLog log(p);
    log.tool_call("fs/write", summarize_params(json{{"path", "a"}, {"content", "secret"}}), "ok",
                  3);
    log.apply(json{{"applied", {"a"}}, {"conflicts", json::array()}});
    log.denial("network", json{{"host", "evil.example"}, {"reason", "not allowed"}});
    log.tool_call("exec", json{{"command", "make"}}, "exited 0", 1200);
}

} // namespace

TEST_CASE("audit log lines are chained by SHA-256 and verify", "[changes][audit]") {
    TempDir t;
    fs::path p = t.path / "audit.jsonl";
    fill(p);
    auto lines = lines_of(p);
    REQUIRE(lines.size() == 4);
    CHECK(json::parse(lines[0])["prev"] == kSha256Empty);
    CHECK(json::parse(lines[1])["prev"] == sha256_hex(lines[0]));
    CHECK(json::parse(lines[0])["params"]["content"]["bytes"] == 6); // content summarised
    CHECK(lines[0].find("secret") == std::string::npos);
    AuditVerdict v = verify_audit_log(p);
    CHECK(v.ok);
    CHECK(v.lines == 4);
    // Reopening continues the chain.
    {
        AuditLog log(p);
        CHECK(log.lines() == 4);
        CHECK(log.head() == sha256_hex(lines[3]));
        log.tool_call("fs/read", json{{"path", "b"}}, "ok", 1);
    }
    CHECK(verify_audit_log(p).ok);
    CHECK(verify_audit_log(p).lines == 5);
}

TEST_CASE("audit log tampering is detected at the first bad line", "[changes][audit][security]") {
    TempDir t;
    fs::path p = t.path / "audit.jsonl";
    fill(p);
    auto lines = lines_of(p);

    SECTION("an edited line breaks the chain at the next one") {
        auto edited = lines;
        auto pos = edited[1].find("\"a\"");
        REQUIRE(pos != std::string::npos);
        edited[1].replace(pos, 3, "\"b\"");
        write_lines(p, edited);
        AuditVerdict v = verify_audit_log(p);
        CHECK_FALSE(v.ok);
        CHECK(v.first_bad == 3);
    }
    SECTION("a removed line") {
        auto removed = lines;
        removed.erase(removed.begin() + 2);
        write_lines(p, removed);
        CHECK(verify_audit_log(p).first_bad == 3);
    }
    SECTION("swapped lines") {
        auto swapped = lines;
        std::swap(swapped[0], swapped[1]);
        write_lines(p, swapped);
        CHECK(verify_audit_log(p).first_bad == 1);
    }
    SECTION("a forged line with a recomputed prev still breaks the successor") {
        auto forged = lines;
        json j = json::parse(forged[2]);
        j["detail"]["host"] = "fine.example";
        forged[2] = j.dump();
        write_lines(p, forged);
        CHECK(verify_audit_log(p).first_bad == 4);
    }
    SECTION("a torn tail is cut off on open and recorded") {
        {
            std::ofstream out(p, std::ios::app);
            out << "{\"seq\":5,\"partial";
        }
        CHECK(verify_audit_log(p).first_bad == 5);
        AuditLog log(p);
        CHECK(log.lines() == 5); // 4 + the "recovered" entry
        AuditVerdict v = verify_audit_log(p);
        CHECK(v.ok);
        CHECK(json::parse(lines_of(p).back())["kind"] == "recovered");
    }
}

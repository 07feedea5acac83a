#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "core/address.hpp"
#include "core/admin_error.hpp"
#include "core/event.hpp"
#include "core/frame.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/process.hpp"
#include "core/replies.hpp"
#include "core/token.hpp"
#include "core/units.hpp"

using namespace kaiwa;

TEST_CASE("names are 1 to 128 chars from the allowed set") {
  CHECK(valid_name("alice"));
  CHECK(valid_name("a.b:c@d-e_F9"));
  CHECK(valid_name(std::string(128, 'x')));
  CHECK_FALSE(valid_name(""));
  CHECK_FALSE(valid_name(std::string(129, 'x')));
  CHECK_FALSE(valid_name("a b"));
  CHECK_FALSE(valid_name("a/b"));
  CHECK_FALSE(valid_name("日本"));
}

TEST_CASE("json_writer escapes strings and separates members") {
  std::string out;
  json_writer w(out);
  w.begin_object().field("a", "q\"b\\\n\x01").field("n", std::uint64_t{7}).key("l").begin_array();
  w.value(1).value(true).end_array().end_object();
  CHECK(out == R"({"a":"q\"b\\\n\u0001","n":7,"l":[1,true]})");
}

TEST_CASE("json_writer passes UTF-8 through unchanged") {
  std::string out;
  append_json_string(out, "こんにちは");
  CHECK(out == "\"こんにちは\"");
}

TEST_CASE("events round-trip through their JSON encoding") {
  event e;
  e.room = room_id{"general"};
  e.seq = 58;
  e.ts = 1732412345123;
  e.type = event_type::created;
  e.from = user_id{"alice"};
  e.is_private = true;
  e.topic = "plans";
  e.members = {"alice", "bob"};
  std::string json;
  json_writer w(json);
  encode_event(w, e);
  CHECK(
      json ==
      R"({"op":"event","room":"general","seq":58,"ts":1732412345123,"type":"created","from":"alice","private":true,"topic":"plans","members":["alice","bob"]})");
  auto d = decode_event(json);
  REQUIRE(d);
  CHECK(d->room == e.room);
  CHECK(d->seq == 58);
  CHECK(d->ts == e.ts);
  CHECK(d->type == event_type::created);
  CHECK(d->members == e.members);
  CHECK(d->is_private);
  CHECK_FALSE(decode_event("{\"op\":\"event\"}"));
}

TEST_CASE("a message's stored form after edits and a delete: current text, then redacted") {
  event m;
  m.room = room_id{"r"};
  m.seq = 2;
  m.ts = 100;
  m.from = user_id{"alice"};
  m.text = "old";
  m.cid = "c-1";
  event edit = m;
  edit.type = event_type::edit;
  edit.seq = 3;
  edit.ts = 150;
  edit.ref = 2;
  edit.text = "new";
  auto encode = [](const event& e) {
    std::string json;
    json_writer w(json);
    encode_event(w, e);
    return json;
  };
  auto edited = rewritten(m, edit);
  CHECK(
      encode(edited) ==
      R"({"op":"event","room":"r","seq":2,"ts":100,"type":"message","from":"alice","text":"new","cid":"c-1","edited":true,"edited_ts":150,"edits":[3]})");
  auto back = decode_event(encode(edited));
  REQUIRE(back);
  CHECK(back->edited_ts == 150);
  CHECK(back->edits == std::vector<seq_t>{3});
  event del = m;
  del.type = event_type::del;
  del.seq = 4;
  del.ref = 2;
  CHECK(
      encode(rewritten(*back, del)) ==
      R"({"op":"event","room":"r","seq":2,"ts":100,"type":"message","from":"alice","deleted":true})");
  CHECK(
      encode(redacted(edit)) ==
      R"({"op":"event","room":"r","seq":3,"ts":150,"type":"edit","from":"alice","ref":2,"deleted":true})");
  CHECK(decode_event(encode(redacted(edit)))->deleted);
}

TEST_CASE("text frames carry the payload behind a correct header") {
  auto small = text_frame("{}");
  CHECK(small->wire() == std::string("\x81\x02{}", 4));
  CHECK(small->payload() == "{}");

  std::string mid(300, 'a');
  auto f = text_frame(mid);
  REQUIRE(f->wire().size() == 4 + 300);
  CHECK(static_cast<unsigned char>(f->wire()[1]) == 126);
  CHECK((static_cast<unsigned char>(f->wire()[2]) << 8 |
         static_cast<unsigned char>(f->wire()[3])) == 300);

  std::string big(70000, 'b');
  auto g = text_frame(big);
  REQUIRE(g->wire().size() == 10 + 70000);
  CHECK(static_cast<unsigned char>(g->wire()[1]) == 127);
  CHECK(g->payload() == big);
}

TEST_CASE("close frames carry the code in network order") {
  auto f = close_frame(close_code::slow_consumer, "slow");
  CHECK(f->wire() == std::string("\x88\x06\x0f\xa9slow", 8));
}

TEST_CASE("replies echo the request id as raw JSON") {
  CHECK(error_frame("\"x\"", errc::not_found, "no")->payload() ==
        R"({"op":"error","id":"x","code":"not_found","message":"no"})");
  CHECK(ack_frame("", room_id{"r"}, 3, 9)->payload() ==
        R"({"op":"ack","room":"r","seq":3,"ts":9})");
}

TEST_CASE("tokens verify with the right secret until they expire") {
  token_keys keys{{"", "s3cret"}};
  auto t = issue_token(keys[0], user_id{"alice"}, 2000);
  CHECK(t.starts_with("v1."));
  auto u = verify_token(keys, t, 1000);
  REQUIRE(u);
  CHECK(u->str() == "alice");
  CHECK_FALSE(verify_token(token_keys{{"", "other"}}, t, 1000));
  CHECK_FALSE(verify_token(keys, t, 2000));
  CHECK_FALSE(verify_token(token_keys{}, t, 1000));
  auto tampered = t;
  tampered[5] = tampered[5] == 'A' ? 'B' : 'A';
  CHECK_FALSE(verify_token(keys, tampered, 1000));
  CHECK_FALSE(verify_token(keys, "garbage", 1000));
  CHECK_FALSE(verify_token(keys, t + std::string(max_token_bytes, 'A'), 1000));
}

TEST_CASE(
    "a token names its key; a node accepts any of its keys, and one naming none is the "
    "primary's") {
  token_keys node{{"k2", "new"}, {"k1", "old"}};
  auto by_k1 = issue_token(node[1], user_id{"alice"}, 2000);
  auto by_k2 = issue_token(node[0], user_id{"bob"}, 2000);
  CHECK(verify_token(node, by_k1, 1000)->str() == "alice");
  CHECK(verify_token(node, by_k2, 1000)->str() == "bob");
  // Signed with k1's secret but claiming k2: checked against k2, so refused.
  CHECK_FALSE(verify_token(token_keys{{"k2", "old"}}, by_k1, 1000));
  CHECK_FALSE(verify_token(token_keys{{"k3", "old"}}, by_k1, 1000));  // unknown kid
  // A token from before key ids (no kid) verifies against the primary key only.
  auto legacy = issue_token(token_key{"", "new"}, user_id{"carol"}, 2000);
  CHECK(legacy.find('.') == 2);
  CHECK(verify_token(node, legacy, 1000)->str() == "carol");
  CHECK_FALSE(verify_token(node, issue_token(token_key{"", "old"}, user_id{"carol"}, 2000), 1000));
}

TEST_CASE("a token has one spelling: padded or non-canonical base64url is refused") {
  token_keys keys{{"", "s"}};
  auto t = issue_token(keys[0], user_id{"alice"}, 2000);
  auto sig = t.substr(t.rfind('.') + 1);
  REQUIRE(sig.size() == 43);  // 32 bytes: the last char carries 2 unused bits
  auto last = std::string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
                  .find(sig.back());
  auto flipped = t;
  flipped.back() = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last ^ 1];
  CHECK_FALSE(verify_token(keys, flipped, 1000));
  CHECK_FALSE(verify_token(keys, t + "=", 1000));
}

TEST_CASE("key files are KID=SECRET lines, the first primary; mistakes name the line") {
  std::string error;
  auto keys = parse_token_keys("# rotated 2026-11\nk2=a=b\r\n\nk1=old\n", error);
  REQUIRE(keys);
  REQUIRE(keys->size() == 2);
  CHECK((*keys)[0].kid == "k2");
  CHECK((*keys)[0].secret == "a=b");
  CHECK((*keys)[1].secret == "old");
  CHECK_FALSE(parse_token_keys("k1=x\nk1=y\n", error));
  CHECK(error == "line 2: key id 'k1' appears twice");
  CHECK_FALSE(parse_token_keys("just-a-secret\n", error));
  CHECK(error.starts_with("line 1: expected KID=SECRET"));
  CHECK_FALSE(parse_token_keys("k1=\n", error));
  CHECK_FALSE(parse_token_keys("bad kid=x\n", error));
  CHECK_FALSE(parse_token_keys("# nothing\n", error));
  CHECK(error == "no KID=SECRET line");
}

TEST_CASE("secrets compare equal only when they are") {
  CHECK(secrets_equal("Bearer t0p", "Bearer t0p"));
  CHECK_FALSE(secrets_equal("Bearer t0p", "Bearer t0q"));
  CHECK_FALSE(secrets_equal("Bearer t0p", "Bearer t0"));
}

TEST_CASE("log levels and formats parse by name") {
  log_level l{};
  CHECK(parse_log_level("warn", l));
  CHECK(l == log_level::warn);
  CHECK_FALSE(parse_log_level("loud", l));
  log_format f{};
  CHECK(parse_log_format("json", f));
  CHECK(f == log_format::json);
  CHECK_FALSE(parse_log_format("xml", f));
  configure_logging(log_level::warn, log_format::text);
  CHECK_FALSE(log_enabled(log_level::info));
  CHECK(log_enabled(log_level::error));
  configure_logging(log_level::info, log_format::text);
}

TEST_CASE("a frame knows its message's op, found once when it is built") {
  auto op_name = [](const frame_ptr& f) { return frame_ops[f->op()]; };
  CHECK(op_name(ack_frame("1", room_id{"r"}, 1, 2)) == "ack");
  CHECK(op_name(error_frame("", errc::internal, "x")) == "error");
  CHECK(op_name(text_frame(R"({"op":"event","room":"r"})")) == "event");
  CHECK(op_name(text_frame(R"({"op":"unheard-of"})")) == "other");
  CHECK(op_name(close_frame(close_code::going_away, "bye")) == "control");
}

TEST_CASE("HOST:PORT splits at the last colon and takes only a decimal port up to 65535") {
  auto hp = kaiwa::parse_host_port("127.0.0.1:7070");
  REQUIRE(hp);
  CHECK(hp->host == "127.0.0.1");
  CHECK(hp->port == 7070);
  CHECK(kaiwa::parse_host_port("::1:0")->host == "::1");
  CHECK(kaiwa::parse_host_port("h:65535")->port == 65535);
  for (auto bad : {"", "h", "h:", ":80", "h:65536", "h:80x", "h:+80", "h: 80"})
    CHECK(!kaiwa::parse_host_port(bad));
}

TEST_CASE("only loopback spellings count as loopback; wildcards and names do not") {
  for (auto host : {"127.0.0.1", "127.1.2.3", "::1", "localhost"}) CHECK(kaiwa::is_loopback(host));
  for (auto host : {"0.0.0.0", "", "::", "10.0.0.1", "node1.example", "128.0.0.1", "localhost.x"})
    CHECK(!kaiwa::is_loopback(host));
}

TEST_CASE("durations: numbers with a unit, strictly") {
  using std::chrono::milliseconds;
  CHECK(parse_duration("90") == milliseconds(90'000));
  CHECK(parse_duration("90s") == milliseconds(90'000));
  CHECK(parse_duration("250ms") == milliseconds(250));
  CHECK(parse_duration("1.5h") == milliseconds(5'400'000));
  CHECK(parse_duration("2w") == milliseconds(14LL * 86'400'000));
  CHECK(parse_duration("24h") == milliseconds(86'400'000));
  CHECK(parse_duration("0") == milliseconds(0));
  CHECK(parse_duration("0.25s") == milliseconds(250));
  for (auto bad : {"", "abc", "24x", "-5h", "+5h", "5 h", "5h ", "1e3", ".5s", "5.s", "h", "5hh",
                   "1.2.3s", "99999999999999999999s", "101w00", "10000w", "nan", "inf"})
    CHECK_FALSE(parse_duration(bad));
}

TEST_CASE("sizes: bytes or binary units, strictly") {
  CHECK(parse_size("512") == 512u);
  CHECK(parse_size("64KiB") == 65'536u);
  CHECK(parse_size("1.5MiB") == 1'572'864u);
  CHECK(parse_size("8GiB") == 8ull << 30);
  for (auto bad : {"", "1MB", "1 MiB", "-1", "1k", "5000000000GiB", "0x10", "MiB"})
    CHECK_FALSE(parse_size(bad));
}

TEST_CASE("sizes read for people: bytes, then binary units with one decimal") {
  CHECK(format_size(0) == "0 B");
  CHECK(format_size(1023) == "1023 B");
  CHECK(format_size(1024) == "1.0 KiB");
  CHECK(format_size(1536) == "1.5 KiB");
  CHECK(format_size(47'395'635) == "45.2 MiB");
  CHECK(format_size((1ull << 20) - 1) == "1.0 MiB");  // not "1024.0 KiB"
  CHECK(format_size(3ull << 30) == "3.0 GiB");
  CHECK(format_size(5000ull << 40) == "5000.0 TiB");  // no unit past TiB
}

TEST_CASE("durations read for people: the two largest units") {
  using std::chrono::milliseconds;
  CHECK(format_duration(milliseconds(-5)) == "0 ms");
  CHECK(format_duration(milliseconds(250)) == "250 ms");
  CHECK(format_duration(milliseconds(3'999)) == "3 s");
  CHECK(format_duration(milliseconds(252'000)) == "4 m 12 s");
  CHECK(format_duration(milliseconds(11'100'000)) == "3 h 5 m");
  CHECK(format_duration(milliseconds(183'600'000)) == "2 d 3 h");
}

TEST_CASE("the admin API's error shape: code, message and hint, read back as written") {
  auto body = admin_error_json(admin_errc::not_found, "no such \"room\"", "GET / lists them");
  CHECK(body ==
        R"({"error":{"code":"not_found","message":"no such \"room\"","hint":"GET / lists them"}})");
  auto e = parse_admin_error(body);
  REQUIRE(e);
  CHECK(e->code == admin_errc::not_found);
  CHECK(e->message == "no such \"room\"");
  CHECK(e->hint == "GET / lists them");
  CHECK(admin_error_json(admin_errc::conflict, "busy") ==
        R"({"error":{"code":"conflict","message":"busy"}})");
  CHECK(parse_admin_error(admin_error_json(admin_errc::conflict, "busy"))->hint.empty());
  for (auto c : {admin_errc::bad_request, admin_errc::unauthorized, admin_errc::forbidden,
                 admin_errc::not_found, admin_errc::method_not_allowed, admin_errc::conflict,
                 admin_errc::internal, admin_errc::unavailable, admin_errc::timeout})
    CHECK(admin_errc_from(to_string(c)) == c);
  CHECK(http_status(admin_errc::method_not_allowed) == 405);
  CHECK(http_status(admin_errc::timeout) == 504);
  for (auto bad : {"", "not found", R"({"error":"old shape"})",
                   R"({"error":{"code":"nope",)"
                   R"("message":"m"}})",
                   R"({"error":{"code":"not_found"}})"})
    CHECK_FALSE(parse_admin_error(bad));
}

TEST_CASE("the CPU budget: the affinity mask, capped by a cgroup quota rounded up") {
  using kaiwa::budget_cpus;
  using kaiwa::parse_cpu_max;
  CHECK(parse_cpu_max("max 100000\n") == std::nullopt);
  CHECK(parse_cpu_max("50000 100000\n") == 0.5);
  CHECK(parse_cpu_max("200000 100000") == 2.0);
  for (auto bad : {"", "0 100000", "50000 0", "-1 100000", "5e4 100000", "50000", "a b",
                   "50000 100000 7", "99999999999999999999999 1"})
    CHECK(parse_cpu_max(bad) == std::nullopt);
  CHECK(budget_cpus(1, std::nullopt, 2) == 1);  // `taskset -c 0` on a 2-core machine
  CHECK(budget_cpus(2, std::nullopt, 2) == 2);
  CHECK(budget_cpus(8, 0.5, 8) == 1);  // half a CPU still needs a thread
  CHECK(budget_cpus(8, 2.5, 8) == 3);
  CHECK(budget_cpus(2, 16.0, 2) == 2);          // a quota above the mask doesn't add CPUs
  CHECK(budget_cpus(0, std::nullopt, 4) == 4);  // the mask unknown: the online CPUs
  CHECK(budget_cpus(0, std::nullopt, 0) == 1);
  CHECK(budget_cpus(4, 1e30, 4) == 4);
  auto here = kaiwa::available_cpus();
  CHECK(here.cpus >= 1);
  CHECK(here.cpus <= std::max(here.affinity, here.online));
}

TEST_CASE("a thread's name is what top -H and perf show, cut to Linux's 15 bytes") {
  auto comm = [] {
    std::ifstream f("/proc/thread-self/comm");
    std::string line;
    std::getline(f, line);
    return line;
  };
  std::string seen_short, seen_long;
  kaiwa::named_thread("kaiwa-journal", [&] {
    seen_short = comm();
    kaiwa::name_this_thread("kaiwa-a-name-longer-than-fifteen");
    seen_long = comm();
  }).join();
  CHECK(seen_short == "kaiwa-journal");
  CHECK(seen_long == "kaiwa-a-name-lo");
}

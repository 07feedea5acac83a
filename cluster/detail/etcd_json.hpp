#pragma once
// The etcd v3 gateway's JSON, both ways, apart from any transport (so the fuzz target and the
// tests can drive it with any bytes). Keys and values are base64 in JSON; 64-bit integers are
// strings (grpc-gateway's proto3 mapping), and fields equal to their default (0, false, "") are
// left out, so a missing field reads as its default.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/etcd_client.hpp"

namespace kaiwa::cluster::detail {

std::string base64_encode(std::string_view in);
/// Strict RFC 4648 base64 (padding required, no whitespace, unused bits zero); false if `in`
/// is not. `out` is sized from `in`, which the caller has bounded.
bool base64_decode(std::string_view in, std::string& out);

/// The first key after every key starting with `prefix`: its last byte below 0xff incremented,
/// what follows dropped; "\0" (etcd: no end) when there is no such byte.
std::string prefix_end(std::string_view prefix);

// -- requests ---------------------------------------------------------------------------------

std::string range_request(std::string_view key, std::string_view range_end);
std::string put_request(std::string_view key, std::string_view value, std::int64_t lease);
std::string delete_request(std::string_view key, std::string_view range_end);
std::string txn_request(const std::vector<compare>& compares, const std::vector<txn_op>& success,
                        const std::vector<txn_op>& failure);
std::string compaction_request(std::int64_t revision);
std::string lease_grant_request(std::int64_t ttl);
std::string lease_id_request(std::int64_t id);
std::string watch_create_request(std::string_view key, std::string_view range_end,
                                 std::int64_t start_revision);

// -- responses (the body of an HTTP 200) ------------------------------------------------------

result<range_response> parse_range(std::string_view body);
result<put_response> parse_put(std::string_view body);
result<delete_response> parse_delete(std::string_view body);
result<txn_response> parse_txn(std::string_view body);
result<lease_grant_response> parse_lease_grant(std::string_view body);
/// A keepalive's `{"result":{...}}` (the gateway streams it): the remaining TTL.
result<std::int64_t> parse_lease_keepalive(std::string_view body);
/// Any header-only answer (revoke): valid JSON with an object at the top.
status parse_empty(std::string_view body);
/// The error an HTTP status other than 200 carries: `{"error":..,"message":..,"code":N}`
/// becomes errc::etcd with that code; anything else errc::protocol.
error parse_error(unsigned http_status, std::string_view body);

/// One message of a watch stream.
struct watch_message {
  bool created = false;
  bool canceled = false;
  std::int64_t revision = 0;  // the header's
  std::int64_t compact_revision = 0;
  std::string cancel_reason;
  std::vector<watch_event> events;
};
result<watch_message> parse_watch(std::string_view line);

}  // namespace kaiwa::cluster::detail

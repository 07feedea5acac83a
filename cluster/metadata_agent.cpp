#include "cluster/metadata_agent.hpp"

namespace kaiwa::cluster {

struct metadata_agent::state {};

result<std::unique_ptr<metadata_agent>> metadata_agent::start(metadata_config, metadata_events) {
  return error{errc::invalid, "not built yet", 0};
}

metadata_agent::metadata_agent(std::unique_ptr<state> s) : state_(std::move(s)) {}
metadata_agent::~metadata_agent() = default;
bool metadata_agent::lease_valid() const { return false; }
void metadata_agent::propose_isr(shard_t, shard_assignment, std::int64_t,
                                 std::function<void(std::optional<std::int64_t>)> done) {
  done(std::nullopt);
}
void metadata_agent::member_unreachable(const std::string&) {}
std::string metadata_agent::status_json() const { return "{}"; }
std::string encode(const member_info&) { return "{}"; }
std::optional<member_info> decode_member(std::string_view) { return std::nullopt; }

}  // namespace kaiwa::cluster

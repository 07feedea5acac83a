#pragma once
// `kaiwa bench` scenarios (docs/benchmarks.md). Each runs against a node on the loopback
// interface, checks every event it receives (seq strictly increasing by one per subscription,
// no duplicates, nothing acked missing), prints a report, and returns the process exit code:
// 0 when the run was clean, 1 when it found a violation or could not run.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/connection.hpp"
#include "bench/corpus.hpp"

namespace kaiwa::bench {

struct run_options {
  std::vector<endpoint> servers;      // public listeners; connection i goes to servers[i % n]
  endpoint admin{"127.0.0.1", 8081};  // its admin listener (status, memory)
  std::size_t threads = 1;            // client worker threads
  double duration_s = 10;             // measured time
  double warmup_s = 2;                // before measuring
  bool json = false;                  // machine-readable report
  bool quiet = false;                 // no progress lines
  bool tls = false;                   // wss:// (the node's certificate is not verified)
};

struct pubsub_config {
  std::size_t rooms = 1;
  std::size_t publishers = 1;   // per room
  std::size_t subscribers = 1;  // per room
  std::size_t payload = 128;    // text bytes
  double rate = 0;              // offered msgs/s in total; 0 = as fast as acks allow
  std::size_t window = 8;       // sends in flight per publisher
  // Failover runs (docs/benchmarks.md "Faults"): when > 0, every send carries a cid and one
  // answered `timeout`, or not answered within this many ms, goes again with the same cid and
  // text (the server's dedupe makes the retry return the first seq).
  std::size_t resend_ms = 0;
  std::string acked_log;  // when set: every ack as "room seq text" lines, written at the end
};

struct conns_config {
  std::size_t connections = 1000;
  std::size_t per_room = 100;  // connections joined to each room
  std::size_t procs = 1;       // worker processes the connections are spread over
};

struct history_config {
  std::size_t rooms = 10;
  std::size_t events = 5000;  // log length per room (prefilled if shorter)
  std::size_t clients = 50;
  std::size_t limit = 50;  // events per page
  std::size_t window = 4;  // requests in flight per client
};

struct resume_config {
  std::size_t clients = 1000;
  std::size_t rooms = 10;
  double rate = 2000;  // msgs/s published while clients are away
  double away_s = 1;   // how long they stay disconnected
};

struct chat_config {
  std::size_t users = 1000;
  std::size_t rooms = 200;
  std::size_t rooms_per_user = 5;
  double zipf = 1.1;  // room popularity exponent
  double sends_per_user_s = 0.2;
};

struct search_config {
  corpus_config corpus;
  /// How the corpus gets in: "ws" (sends to the running node), "offline" (written into the
  /// stopped node's `data_dir` through the journal, then exit), "none" (already loaded: wait
  /// for the index and query), "groonga" (print Groonga's load command for it, then exit).
  std::string load = "ws";
  std::string data_dir;          // offline
  std::size_t connections = 16;  // ws: loading connections (rooms are split among them)
  std::size_t window = 32;       // ws: sends in flight per connection
  double rate = 0;  // ws: offered msgs/s in all; 0: as fast as acked, <= 9,000/s per connection
  std::size_t rounds = 10;          // measured passes over the query set after a warm-up; 0: none
  std::size_t limit = 20;           // hits per query
  double index_timeout_s = 3600;    // waiting for the search projection to catch up
  std::optional<endpoint> groonga;  // a Groonga GQTP server to ask the same queries
};

int run_pubsub(const run_options& o, const pubsub_config& c, const std::string& name);
int run_conns(const run_options& o, const conns_config& c);
int run_history(const run_options& o, const history_config& c);
int run_resume(const run_options& o, const resume_config& c);
int run_chat(const run_options& o, const chat_config& c);
int run_search(const run_options& o, const search_config& c);
/// The offline path of run_search (load = "offline").
int run_offline_load(const corpus_config& c, const std::string& data_dir, bool json);

}  // namespace kaiwa::bench

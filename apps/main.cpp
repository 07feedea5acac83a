// The `kaiwa` binary: `kaiwa start` runs a node, `kaiwa token` issues a client token.

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <sstream>

#include "apps/admin_commands.hpp"
#include "apps/cert.hpp"
#include "apps/node.hpp"
#include "apps/room_commands.hpp"
#include "apps/secrets.hpp"
#include "bench/scenarios.hpp"
#include "core/address.hpp"
#include "core/event.hpp"
#include "core/log.hpp"
#include "core/process.hpp"
#include "core/token.hpp"
#include "core/units.hpp"

namespace {

using namespace kaiwa;

bool parse_endpoint(const std::string& s, net::endpoint& ep) {
  auto hp = parse_host_port(s);
  if (!hp) return false;
  ep = {std::move(hp->host), hp->port};
  return true;
}

using std::chrono::milliseconds;
constexpr milliseconds one_ms{1};
constexpr milliseconds one_hour = std::chrono::hours(1);
constexpr milliseconds one_day = std::chrono::hours(24);
constexpr milliseconds a_century = std::chrono::hours(24 * 36525);  // parse_duration's bound

/// The text a duration option shows as its default and print-config writes: parse_duration
/// reads it back.
std::string duration_text(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + "s"
                               : std::to_string(d.count()) + "ms";
}

/// A duration option (flag, config key, KAIWA_ variable alike), parsed by parse_duration:
/// anything else, or a value outside [min, max], is a usage error naming the option and the
/// value. `set` receives it.
CLI::Option* add_duration(CLI::App* app, const std::string& name, const std::string& desc,
                          std::chrono::milliseconds initial, std::chrono::milliseconds min,
                          std::chrono::milliseconds max,
                          std::function<void(std::chrono::milliseconds)> set) {
  set(initial);
  return app
      ->add_option_function<std::string>(
          name,
          [name, min, max, set](const std::string& text) {
            auto d = parse_duration(text);
            if (!d)
              throw CLI::ValidationError(
                  name, "'" + text +
                            "' is not a duration: a number and ms, s, m, h, d or w (250ms, 90s, "
                            "1.5h, 2w; a bare number is seconds)");
            if (*d < min || *d > max)
              throw CLI::ValidationError(
                  name,
                  "'" + text + "' is out of range: " +
                      (max == a_century ? "at least " + format_duration(min)
                                        : format_duration(min) + " to " + format_duration(max)));
            set(*d);
          },
          desc)
      ->type_name("DURATION")
      ->default_str(duration_text(initial));
}

CLI::Option* add_duration(CLI::App* app, const std::string& name, const std::string& desc,
                          std::chrono::milliseconds& into, std::chrono::milliseconds min,
                          std::chrono::milliseconds max) {
  return add_duration(app, name, desc, into, min, max,
                      [&into](std::chrono::milliseconds d) { into = d; });
}

/// A duration option kept as seconds in a double (the bench's options).
CLI::Option* add_duration(CLI::App* app, const std::string& name, const std::string& desc,
                          double& seconds, std::chrono::milliseconds min,
                          std::chrono::milliseconds max) {
  return add_duration(
      app, name, desc, std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000)), min,
      max, [&seconds](std::chrono::milliseconds d) { seconds = d.count() / 1000.0; });
}

/// A size option, parsed by parse_size (B, KiB, MiB, GiB; a bare number is bytes), within
/// [min, max]; like add_duration.
template <class T>
CLI::Option* add_size(CLI::App* app, const std::string& name, const std::string& desc, T& into,
                      std::uint64_t min, std::uint64_t max) {
  return app
      ->add_option_function<std::string>(
          name,
          [name, min, max, &into](const std::string& text) {
            auto n = parse_size(text);
            if (!n)
              throw CLI::ValidationError(name, "'" + text +
                                                   "' is not a size: a number and B, KiB, MiB "
                                                   "or GiB (512KiB, 8MiB; a bare number is bytes)");
            if (*n < min || *n > max)
              throw CLI::ValidationError(name, "'" + text + "' is out of range: " +
                                                   format_size(min) + " to " + format_size(max));
            into = static_cast<T>(*n);
          },
          desc)
      ->type_name("SIZE")
      ->default_str(std::to_string(into));
}

/// A whole-number option's lower bound (CLI11's PositiveNumber names its bounds as doubles).
CLI::Range at_least(std::int64_t min) {
  return CLI::Range(min, std::numeric_limits<std::int64_t>::max());
}

/// CLI11 2.1 reads integers with strtoll in base 0 ("0x10" is 16, "010" is 8) and takes an
/// overflow as the largest value. Every integer option of `app` and its subcommands is checked
/// first as what the docs promise: plain decimal digits (no option takes a negative number)
/// that fit in 64 bits, passed on without leading zeros; the option's own range checks and
/// CLI11's conversion come after.
void strict_integers(CLI::App& app) {
  for (auto* opt : app.get_options()) {
    // "UINT", or with its checks appended: "UINT:UINT in [1 - 65536]".
    auto type = opt->get_type_name();
    type = type.substr(0, type.find(':'));
    if (type != "INT" && type != "UINT") continue;
    opt->transform(CLI::Validator(
        [](std::string& text) -> std::string {
          std::uint64_t v = 0;
          auto* end = text.data() + text.size();
          auto r = std::from_chars(text.data(), end, v);
          if (r.ec == std::errc::result_out_of_range) return "'" + text + "' is out of range";
          if (r.ec != std::errc{} || r.ptr != end)
            return "'" + text + "' is not a whole number (decimal digits)";
          text = std::to_string(v);
          return {};
        },
        "", "strict integer"));
  }
  for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) strict_integers(*sub);
}

/// The line (from "kaiwa") saying what CLI11's bare messages leave out, or empty: for "A subcommand
/// is required", which command wants one, what was given and the valid ones; for a config key
/// nothing reads ("INI was not able to parse start.bogus"), the key, the file and its line.
std::string explain_parse_error(CLI::App& app, const CLI::ParseError& e,
                                const std::string& config_file) {
  std::string_view what = e.what();
  // CLI11 says "FILE was not readable (missing?)"; the OS knows why.
  if (e.get_name() == "FileError" && !config_file.empty()) {
    int fd = ::open(config_file.c_str(), O_RDONLY | O_CLOEXEC);
    std::string why = fd < 0 ? std::strerror(errno) : "not readable";
    if (fd >= 0) ::close(fd);
    return "kaiwa: --config: can't read '" + config_file + "': " + why;
  }
  constexpr std::string_view extras = "INI was not able to parse ";
  if (what.starts_with(extras)) {
    auto item = std::string(what.substr(extras.size()));
    auto dot = item.rfind('.');
    auto key = dot == std::string::npos ? item : item.substr(dot + 1);
    auto section = dot == std::string::npos ? std::string() : item.substr(0, dot);
    std::ifstream in(config_file);
    std::string line, where = config_file;
    auto trimmed = [](std::string_view t) {
      auto first = t.find_first_not_of(" \t");
      return first == std::string_view::npos ? std::string_view() : t.substr(first);
    };
    // CLI11 reports a section nothing reads as its markers "SECTION.++" (its start) or
    // "SECTION.--" (its end), not as a key.
    bool is_section = key == "++" || key == "--";
    for (int n = 1; std::getline(in, line); ++n) {
      auto text = trimmed(line);  // `key = value` or `[section]`, spaces anywhere around
      bool found = is_section
                       ? text.starts_with("[" + section + "]")
                       : text.starts_with(key) && trimmed(text.substr(key.size())).starts_with('=');
      if (found) {
        where += ", line " + std::to_string(n);
        break;
      }
    }
    if (is_section)
      return "kaiwa: unknown section [" + section + "] in " + where +
             "; kaiwa start reads its keys (the flags' names) under [start]";
    return "kaiwa: unknown key '" + key + "'" + (section.empty() ? "" : " in [" + section + "]") +
           " of " + where + "; the keys are the flags' names (kaiwa start --help)" +
           (section.empty() ? ", under [start]" : "");
  }
  if (what != "A subcommand is required") return {};
  // The deepest command given, which needs one of its subcommands.
  CLI::App* cur = &app;
  for (bool deeper = true; deeper;) {
    deeper = false;
    for (auto* sub : cur->get_subcommands())
      if (sub->parsed()) {
        cur = sub;
        deeper = true;
        break;
      }
  }
  std::string names;
  for (auto* sub : cur->get_subcommands({})) names += (names.empty() ? "" : ", ") + sub->get_name();
  auto noun = cur->get_name() == "bench" ? "scenario" : "command";
  auto command = cur == &app ? std::string("kaiwa") : "kaiwa " + cur->get_name();
  auto given = cur->remaining();
  if (given.empty()) return command + " needs a " + noun + ": one of " + names;
  return command + ": unknown " + noun + " '" + given.front() + "'; one of " + names;
}

/// Options that once took a secret on the command line, where every local user can read it
/// (/proc/PID/cmdline). Still parsed (hidden), so that refuse_secret_options() can say how to
/// pass the secret now, on the command line and in the config file alike.
void add_refused_secret_option(CLI::App* app, const std::string& name) {
  app->add_option(name)->group("");
}

const std::string secret_instead =
    "set KAIWA_SECRET, or --secret-file PATH (config key secret-file) naming a file of "
    "KID=SECRET lines";
/// The most threads a thread-count option may ask for (--io-threads, --actor-threads, bench's
/// --threads): far above any core count, far below what the OS refuses.
constexpr std::size_t max_threads = 1024;
/// bench's fanout and rooms: the most connections one run may make (rooms x (publishers +
/// subscribers)), far above what one process's open-files limit allows, and low enough that
/// counting them can't overflow nor their table exhaust memory before the first connect.
constexpr std::size_t max_bench_connections = 1'000'000;
/// Sends in flight per publisher: a publisher makes its whole window at once, in one handler, so
/// a window of billions would allocate until the process died.
constexpr std::size_t max_bench_window = 100'000;

/// An offered rate in msgs/s: 0 (the scenario's own meaning: fanout's and rooms' "as fast as
/// acks come") or 0.01 to 100,000,000, finite. Below that, a publisher's period overflows the
/// clock and it would send unpaced; NaN and inf are not rates (and would print as invalid JSON).
CLI::Validator offered_rate() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        auto* end = text.data() + text.size();
        auto r = std::from_chars(text.data(), end, v);
        if (r.ec != std::errc{} || r.ptr != end || !std::isfinite(v) || v < 0 ||
            (v != 0 && v < 0.01) || v > 1e8)
          return "'" + text + "' is not a rate: 0, or 0.01 to 100000000 msgs/s";
        return {};
      },
      "0 or 0.01 to 1e8", "offered rate");
}
const std::string name_rule = "1 to 128 chars of [A-Za-z0-9_.:@-]";
const std::string admin_token_instead =
    "set KAIWA_ADMIN_TOKEN, or --admin-token-file PATH (config key admin-token-file)";

void refuse_secret_options(CLI::App* app) {
  for (auto [name, instead] :
       {std::pair{"--secret", &secret_instead}, std::pair{"--admin-token", &admin_token_instead}}) {
    auto* opt = app->get_option_no_throw(name);
    if (opt && opt->count() > 0)
      throw CLI::ValidationError(
          name,
          "secrets are taken neither from the command line nor from the config file (any "
          "local user can read a command line in /proc/PID/cmdline); " +
              *instead);
  }
}

/// Loads the token keys or throws the reason for CLI11 to print.
token_keys token_keys_or_throw(const std::string& file) {
  std::string error;
  auto keys = app::load_token_keys(file, error);
  if (!keys) throw CLI::ValidationError("--secret-file", error);
  if (auto w = app::permissions_warning(file); !w.empty()) fmt::print(stderr, "kaiwa: {}\n", w);
  return std::move(*keys);
}

std::string admin_token_or_throw(const std::string& file) {
  std::string error;
  auto token = app::load_admin_token(file, error);
  if (!token) throw CLI::ValidationError("--admin-token-file", error);
  if (auto w = app::permissions_warning(file); !w.empty()) fmt::print(stderr, "kaiwa: {}\n", w);
  return std::move(*token);
}

int run_node(app::node_config cfg) {
  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto fds = raise_fd_limit();
  // Threads by the CPUs this process may use, not the machine's: pinned or under a quota,
  // more would only contend (docs/operations.md, "Threads").
  auto cpu = available_cpus();
  if (cfg.rooms.threads == 0) cfg.rooms.threads = cpu.cpus;
  if (cfg.gateway.io_threads == 0) cfg.gateway.io_threads = cpu.cpus;
  log(log_level::info, "cpu_budget",
      {{"cpus", std::uint64_t{cpu.cpus}},
       {"affinity", std::uint64_t{cpu.affinity}},
       {"online", std::uint64_t{cpu.online}},
       {"quota", cpu.quota ? fmt::format("{:.2f}", *cpu.quota) : std::string("none")},
       {"actor_threads", std::uint64_t{cfg.rooms.threads}},
       {"io_lanes", std::uint64_t{cfg.gateway.io_threads}}});
  // Allowed (a node may share its CPUs knowingly), but CAF's idle workers poll before they
  // sleep: 1,024 of them on two CPUs burned 87% of a core with no client connected.
  if (cfg.rooms.threads > cpu.cpus || cfg.gateway.io_threads > cpu.cpus)
    log(log_level::warn, "threads_over_cpu_budget",
        {{"cpus", std::uint64_t{cpu.cpus}},
         {"actor_threads", std::uint64_t{cfg.rooms.threads}},
         {"io_lanes", std::uint64_t{cfg.gateway.io_threads}},
         {"why", std::string(cfg.rooms.threads > cpu.cpus
                                 ? "more threads than CPUs only take turns; idle actor threads poll"
                                 : "more threads than CPUs only take turns")}});
  app::node n(cfg);
  if (auto err = n.start()) {
    fmt::print(stderr, "kaiwa: {}\n", *err);
    return 1;
  }
  auto& g = cfg.gateway;
  fmt::print(
      "kaiwa {} node {} ready: {}://{}:{}/ws  web {}://{}:{}/  admin http://{}:{}/  "
      "data {}  durability {}  open-files limit {}{}\n",
      g.version, g.node_id, g.tls_cert.empty() ? "ws" : "wss", g.listen.host, n.public_port(),
      g.tls_cert.empty() ? "http" : "https", g.listen.host, n.public_port(), g.admin.host,
      n.admin_port(), cfg.journal.dir, cfg.journal.sync ? "sync" : "async", fds,
      g.keys.empty() ? "  (dev mode: hello with any user name)" : "");
  if (cfg.rooms.cluster)
    fmt::print(
        "cluster member {} at {}:{}{}\n", g.node_id, cfg.rooms.cluster->host, n.cluster_port(),
        !cfg.rooms.cluster->etcd.empty()
            ? fmt::format(" (metadata in etcd, replication factor {}, min in-sync {})",
                          cfg.rooms.cluster->replication_factor, cfg.rooms.cluster->min_insync)
        : cfg.rooms.cluster->join.empty() ? " (coordinator of a new cluster, or as before)"
                                          : "");
  // A line for scripts and tests that start nodes on port 0.
  fmt::print("listening public={}:{} admin={}:{}{}\n", g.listen.host, n.public_port(), g.admin.host,
             n.admin_port(),
             cfg.rooms.cluster
                 ? fmt::format(" cluster={}:{}", cfg.rooms.cluster->host, n.cluster_port())
                 : "");
  std::fflush(stdout);

  int sig = 0;
  // SIGHUP reloads the TLS certificate and the token key file; SIGINT and SIGTERM stop the node.
  while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) n.reload();
  fmt::print("kaiwa: {} received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stdout);
  n.stop();
  fmt::print("kaiwa: stopped\n");
  return 0;
}

/// `kaiwa rooms`, `kaiwa users` and `kaiwa room delete|archive|unarchive ROOM`
/// (apps/room_commands.hpp), with the admin options every admin command has.
template <class AdminOpts, class Target>
void add_room_management(CLI::App& app, CLI::App& room_cmd, AdminOpts admin_opts, Target target,
                         bool& json) {
  // Their storage outlives parsing: the callbacks run at the end of it.
  static app::listing_options listing;
  static std::string room;
  static bool yes = false;
  for (auto [name, help, users] :
       {std::tuple{"rooms", "List the rooms this node holds (paged)", false},
        std::tuple{"users", "List the users seen in this node's rooms (paged)", true}}) {
    auto* cmd = app.add_subcommand(name, help);
    admin_opts(cmd, true);
    cmd->add_option("--limit", listing.limit, "Per page, 1 to 1000")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    cmd->add_option("--after", listing.after, "Start after this cursor (a page's 'next')");
    cmd->add_flag("--all", listing.all, "Every page, not just the first");
    cmd->callback([target, &json, users] {
      listing.json = json;
      std::exit(users ? app::users_command(target(), listing)
                      : app::rooms_command(target(), listing));
    });
  }
  auto* del = room_cmd.add_subcommand("delete", "Delete a room with its whole history");
  admin_opts(del, true);
  del->add_option("room", room, "Room name")->required();
  del->add_flag("--yes", yes, "Don't ask (needed when stdin is not a terminal)");
  auto valid_room = [] {
    if (!valid_name(room))
      throw CLI::ValidationError("room", "'" + room + "' is not a room name: " + name_rule);
  };
  del->callback([target, &json, valid_room] {
    valid_room();
    std::exit(app::room_delete_command(target(), room, yes, json));
  });
  for (auto archive : {true, false}) {
    auto* cmd = room_cmd.add_subcommand(archive ? "archive" : "unarchive",
                                        archive ? "Make a room read-only" : "Make it writable");
    admin_opts(cmd, true);
    cmd->add_option("room", room, "Room name")->required();
    cmd->callback([target, &json, archive, valid_room] {
      valid_room();
      std::exit(app::room_archive_command(target(), room, archive, json));
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kaiwa: a distributed chat server"};
  app.require_subcommand(1);

  // -- kaiwa start --------------------------------------------------------------------------
  app::node_config cfg;
  std::string listen = "127.0.0.1:8080", admin = "127.0.0.1:8081", durability = "sync";
  std::string cluster, join, admin_hosts, address_limit_exempt = "127.0.0.0/8,::1/128";
  auto* start = app.add_subcommand("start", "Run a kaiwa node");
  // The file's keys are the flags' names under a [start] section (TOML); --config is the
  // app's option, reached from `kaiwa start --config FILE` through fallthrough.
  auto* config_opt = app.set_config(
      "--config", "", "Read options from this file ([start] section, the flags' names)");
  start->fallthrough();
  start->add_option("--listen", listen, "Public listener ADDR:PORT (WebSocket /ws)")
      ->capture_default_str();
  start->add_option("--admin", admin, "Admin listener ADDR:PORT")->capture_default_str();
  start->add_option("--data-dir", cfg.journal.dir, "Data directory")->capture_default_str();
  start
      ->add_option("--durability", durability,
                   "sync: ack after fsync; async: ack after the OS has it")
      ->check(CLI::IsMember({"sync", "async"}))
      ->capture_default_str();
  start->add_option("--node-id", cfg.gateway.node_id, "This node's id")->capture_default_str();
  start->add_option("--cluster", cluster,
                    "Cluster listener ADDR:PORT; makes this node a cluster member");
  start->add_option("--join", join,
                    "HOST:PORT[,...] of members to join (none: start a new cluster)");
  std::string etcd;
  start->add_option("--etcd", etcd,
                    "HOST:PORT[,...] of etcd's client endpoints: the cluster's metadata lives in "
                    "etcd and every shard is replicated (instead of --join; docs/cluster.md)");
  std::string etcd_prefix = "/kaiwa/";
  start
      ->add_option("--etcd-prefix", etcd_prefix,
                   "With --etcd: the key prefix of this cluster's metadata")
      ->capture_default_str();
  std::size_t replication_factor = 3, min_insync = 2;
  start
      ->add_option("--replication-factor", replication_factor,
                   "With --etcd: replicas of each shard; shards are placed once this many "
                   "members have registered")
      ->check(CLI::Range(std::size_t{1}, std::size_t{7}))
      ->capture_default_str();
  start
      ->add_option("--min-insync", min_insync,
                   "With --etcd: in-sync replicas a shard needs to take writes (an ack means "
                   "that many disks)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{7}))
      ->capture_default_str();
  std::uint64_t log_retention_entries = 100'000, log_retention_mib = 64;
  start
      ->add_option("--log-retention-entries", log_retention_entries,
                   "With --etcd: entries of each shard's replicated log a replica keeps at most "
                   "(a follower further behind can't catch up from the log)")
      ->check(CLI::Range(std::uint64_t{1000}, std::uint64_t{100'000'000}))
      ->capture_default_str();
  start
      ->add_option("--log-retention-mib", log_retention_mib,
                   "With --etcd: MiB of each shard's replicated log a replica keeps at most "
                   "(whichever bound is less holds)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 20))
      ->capture_default_str();
  cluster_tls tls;
  start->add_option("--cluster-ca", tls.ca_file,
                    "The cluster CA's certificate (PEM); with --cluster-cert and --cluster-key, "
                    "members speak mutual TLS (required off loopback; `kaiwa cert` makes them)");
  start->add_option("--cluster-cert", tls.cert_file,
                    "This node's certificate (PEM), signed by the cluster CA");
  start->add_option("--cluster-key", tls.key_file, "This node's private key (unencrypted PEM)");
  start
      ->add_option("--shards", cfg.journal.shards,
                   "Virtual shards; fixed when the data dir is created")
      ->check(CLI::Range(1u, max_shards))
      ->capture_default_str();
  std::size_t block_cache_mib = cfg.journal.block_cache_bytes >> 20;
  start
      ->add_option("--block-cache-mib", block_cache_mib,
                   "RocksDB's block cache, for the log and the read models, in MiB")
      ->check(CLI::Range(std::size_t{8}, std::size_t{1} << 20))
      ->capture_default_str();
  std::size_t memtable_mib = cfg.journal.memtable_bytes >> 20;
  start
      ->add_option("--memtable-mib", memtable_mib,
                   "Memtables of every column family together, in MiB")
      ->check(CLI::Range(std::size_t{16}, std::size_t{1} << 20))
      ->capture_default_str();
  milliseconds failure_timeout{5000};
  add_duration(start, "--failure-timeout", "Silence after which a cluster member counts as dead",
               failure_timeout, milliseconds(100), one_hour);
  start->add_option("--admin-hosts", admin_hosts,
                    "NAME[,...]: host names the admin API answers to besides IP addresses and "
                    "localhost (others are refused: DNS rebinding)");
  std::string secret_file, admin_token_file;
  start->add_option("--admin-token-file", admin_token_file,
                    "File holding the bearer token the admin API requires (or "
                    "KAIWA_ADMIN_TOKEN); needed off loopback");
  start->add_option("--secret-file", secret_file,
                    "File of KID=SECRET lines, keys for client tokens, the first signing (or "
                    "KAIWA_SECRET: one key)");
  add_refused_secret_option(start, "--admin-token");
  add_refused_secret_option(start, "--secret");
  start->add_option("--tls-cert", cfg.gateway.tls_cert,
                    "PEM certificate chain (leaf first): the public listener speaks only TLS "
                    "(wss://, https://); re-read on SIGHUP");
  start->add_option("--tls-key", cfg.gateway.tls_key,
                    "PEM private key of --tls-cert; re-read on SIGHUP");
  add_duration(start, "--tls-handshake-timeout", "Time a TLS client has to finish its handshake",
               cfg.gateway.tls_handshake_timeout, one_ms, one_hour);
  start
      ->add_option("--hsts-max-age", cfg.gateway.hsts_max_age,
                   "Strict-Transport-Security max-age (s) on HTTPS responses; 0: none")
      ->check(at_least(0))
      ->capture_default_str();
  // Bounded: an unbounded count (or -1, which CLI11 wraps to SIZE_MAX) would have the node
  // spawn threads until it is killed.
  start
      ->add_option("--io-threads", cfg.gateway.io_threads,
                   "I/O threads (0: one per CPU this process may use)")
      ->check(CLI::Range(std::size_t{0}, max_threads))
      ->capture_default_str();
  start
      ->add_option("--actor-threads", cfg.rooms.threads,
                   "Actor scheduler threads (0: one per CPU this process may use)")
      ->check(CLI::Range(std::size_t{0}, max_threads))
      ->capture_default_str();
  add_size(start, "--max-outbound-bytes",
           "Live-event bytes queued to a client before it is closed as a slow consumer",
           cfg.gateway.max_outbound_bytes, 1, std::uint64_t{1} << 40);
  add_size(start, "--max-queued-bytes",
           "Bytes queued to a client, replies included, before it is closed (4009)",
           cfg.gateway.max_queued_bytes, 1, std::uint64_t{1} << 40);
  add_size(start, "--max-message-bytes", "Largest client message; bigger ones get too_large",
           cfg.gateway.max_message_bytes, 1024, 64 << 10);
  start
      ->add_option("--max-pending-requests", cfg.gateway.max_pending_requests,
                   "Unanswered requests per connection before its input pauses")
      ->check(at_least(1))
      ->capture_default_str();
  start
      ->add_option("--max-pending-queries", cfg.gateway.max_pending_queries,
                   "Read queries (rooms, directory, search) per connection at once; more get "
                   "rate_limited")
      ->check(at_least(1))
      ->capture_default_str();
  start
      ->add_option("--max-rooms-per-connection", cfg.gateway.max_rooms_per_connection,
                   "Rooms one connection may be subscribed to")
      ->check(at_least(1))
      ->capture_default_str();
  start
      ->add_option("--max-connections-per-address", cfg.gateway.max_connections_per_address,
                   "Connections from one source address (IPv6: one /64) at once (0: no limit)")
      ->capture_default_str();
  start
      ->add_option("--address-limit-exempt", address_limit_exempt,
                   "CIDR[,...]: source networks the address limit doesn't apply to (a proxy "
                   "in front of the node, the bench tool); empty: none")
      ->capture_default_str();
  start
      ->add_option("--max-connections-per-user", cfg.gateway.max_connections_per_user,
                   "WebSocket sessions one user may hold at once (0: no limit)")
      ->capture_default_str();
  start
      ->add_option("--rate-limit", cfg.gateway.rate_limit,
                   "Requests/s per connection, pings and refused frames included (0: unlimited)")
      ->capture_default_str();
  start->add_option("--snapshot-every", cfg.rooms.snapshot_every, "Snapshot a room every N events")
      ->check(at_least(1))
      ->capture_default_str();
  add_duration(start, "--idle-timeout", "Time before an idle room is passivated",
               cfg.rooms.idle_timeout, one_ms, one_day);
  start
      ->add_option("--room-backlog", cfg.rooms.room_backlog,
                   "Commands queued to one room beyond which more get unavailable (0: no bound)")
      ->capture_default_str();
  start
      ->add_option("--room-creations-per-minute", cfg.rooms.room_creations_per_minute,
                   "Rooms one user may create per minute (0: no limit)")
      ->capture_default_str();
  std::string projections = "on";
  start
      ->add_option("--projections", projections,
                   "on: keep the read models (rooms, directory, search); off: none (their queries "
                   "answer unavailable), to measure the write path without them")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  start
      ->add_option("--query-threads", cfg.read.query_threads,
                   "Threads that answer rooms, directory and search queries")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  start
      ->add_option("--query-queue", cfg.read.query_queue,
                   "Queries waiting for a query thread beyond which more get rate_limited")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  start
      ->add_option("--search-max-steps", cfg.read.search_max_steps,
                   "Work one search may do (index seeks, access and text checks) before it "
                   "answers with what it found and more=true")
      ->check(CLI::Range(std::size_t{100}, std::size_t{10'000'000}))
      ->capture_default_str();
  add_duration(start, "--gather-timeout",
               "Time a query waits for other members' pages before it answers partial",
               cfg.read.gather_timeout, milliseconds(50), milliseconds(60'000));
  add_duration(start, "--hello-timeout", "Time a new connection has to send hello",
               cfg.gateway.hello_timeout, one_ms, one_hour);
  add_duration(start, "--handshake-timeout",
               "Time a client has to send its HTTP request (the WebSocket handshake)",
               cfg.gateway.handshake_timeout, one_ms, one_hour);
  add_duration(start, "--ping-interval", "Silence after which a connection gets a WebSocket ping",
               cfg.gateway.ping_interval, one_ms, one_hour);
  add_duration(start, "--ping-timeout",
               "Time a pinged connection has to send something before it is closed",
               cfg.gateway.ping_timeout, one_ms, one_hour);
  std::string log_level_name = "info", log_format_name = "text";
  std::int64_t slow_ms = 100;
  start->add_option("--log-level", log_level_name, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  start->add_option("--log-format", log_format_name, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  start
      ->add_option("--slow-ms", slow_ms, "Log journal writes and room activations slower than this")
      ->check(at_least(1))
      ->capture_default_str();
  bool print_config = false;
  start->add_flag("--print-config", print_config, "Print the effective configuration and exit");
  // Every option can also come from the --config file under its flag's name and from
  // KAIWA_<NAME> (e.g. KAIWA_DATA_DIR); the command line wins over the file, which wins over
  // the environment. A key the file doesn't know fails start-up.
  for (auto* opt : start->get_options()) {
    auto name = opt->get_single_name();
    if (name.empty() || name == "help" || name == "config" || name == "print-config" ||
        opt->get_group().empty() || !opt->get_envname().empty())
      continue;
    std::string env = "KAIWA_";
    for (char ch : name)
      env += ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    opt->envname(env);
  }
  app.allow_config_extras(CLI::config_extras_mode::error);
  start->callback([&] {
    refuse_secret_options(start);
    cfg.gateway.keys = token_keys_or_throw(secret_file);
    cfg.secret_file = secret_file;
    cfg.admin_token = admin_token_or_throw(admin_token_file);
    if (print_config) {
      // A file `--config` reads back. Secrets never appear in it (only the files' paths); a
      // comment says which are set.
      std::istringstream in(start->config_to_str(true, false));
      std::string line, out = "[start]\n";
      while (std::getline(in, line))
        if (!line.starts_with("print-config=") && !line.starts_with("secret=") &&
            !line.starts_with("admin-token="))
          out += line + "\n";
      auto& keys = cfg.gateway.keys;
      std::string kids;
      for (auto& k : keys) kids += (kids.empty() ? " " : ", ") + k.kid;
      out += keys.empty() ? "# token keys: none (dev mode)\n"
             : secret_file.empty()
                 ? "# token keys: 1, from KAIWA_SECRET (its tokens name no kid)\n"
                 : fmt::format("# token keys: {}, from secret-file:{} (the first signs)\n",
                               keys.size(), kids);
      out += cfg.admin_token.empty()    ? "# admin token: none\n"
             : admin_token_file.empty() ? "# admin token: set, from KAIWA_ADMIN_TOKEN\n"
                                        : "# admin token: set, from admin-token-file\n";
      fmt::print("{}", out);
      std::exit(0);
    }
    if (!parse_endpoint(listen, cfg.gateway.listen))
      throw CLI::ValidationError("--listen", "expected ADDR:PORT");
    if (!parse_endpoint(admin, cfg.gateway.admin))
      throw CLI::ValidationError("--admin", "expected ADDR:PORT");
    if (cfg.gateway.tls_cert.empty() != cfg.gateway.tls_key.empty())
      throw CLI::ValidationError("--tls-cert", "TLS needs both --tls-cert and --tls-key");
    if (auto w = app::permissions_warning(cfg.gateway.tls_key); !w.empty())
      fmt::print(stderr, "kaiwa: {}\n", w);
    if (!valid_name(cfg.gateway.node_id)) throw CLI::ValidationError("--node-id", name_rule);
    if (!join.empty() && cluster.empty())
      throw CLI::ValidationError("--join", "a member needs its own --cluster ADDR:PORT");
    if (!etcd.empty() && cluster.empty())
      throw CLI::ValidationError("--etcd", "a replicated member needs its own --cluster ADDR:PORT");
    if (!etcd.empty() && !join.empty())
      throw CLI::ValidationError("--join",
                                 "with --etcd, members find each other in etcd: no --join");
    if (min_insync > replication_factor)
      throw CLI::ValidationError("--min-insync",
                                 "can't exceed --replication-factor: no write would be acked");
    if (tls.enabled() && cluster.empty())
      throw CLI::ValidationError("--cluster-ca",
                                 "TLS is for a cluster member's --cluster ADDR:PORT");
    if (!cluster.empty()) {
      net::endpoint ep;
      if (!parse_endpoint(cluster, ep))
        throw CLI::ValidationError("--cluster", "expected ADDR:PORT");
      cluster_config cc;
      cc.node_id = cfg.gateway.node_id;
      cc.host = ep.host;
      cc.port = ep.port;
      cc.tls = tls;
      std::istringstream members(join);
      for (std::string m; std::getline(members, m, ',');) {
        net::endpoint j;
        if (!parse_endpoint(m, j)) throw CLI::ValidationError("--join", "expected HOST:PORT[,...]");
        cc.join.push_back(m);
      }
      std::istringstream etcd_endpoints(etcd);
      for (std::string e; std::getline(etcd_endpoints, e, ',');) {
        net::endpoint ep;
        if (!parse_endpoint(e, ep))
          throw CLI::ValidationError("--etcd", "expected HOST:PORT[,...]");
        cc.etcd.push_back(e);
      }
      if (etcd_prefix.empty() || etcd_prefix.front() != '/' || etcd_prefix.back() != '/' ||
          etcd_prefix.size() > 200)
        throw CLI::ValidationError("--etcd-prefix",
                                   "a key prefix starting and ending with '/', at most 200 bytes");
      cc.etcd_prefix = etcd_prefix;
      cc.replication_factor = replication_factor;
      cc.min_insync = min_insync;
      cc.log_retention_entries = log_retention_entries;
      cc.log_retention_bytes = log_retention_mib << 20;
      cc.public_address = listen;
      cc.failure_timeout = failure_timeout;
      cfg.rooms.cluster = std::move(cc);
    }
    if (cfg.gateway.keys.empty() && !is_loopback(cfg.gateway.listen.host))
      throw CLI::ValidationError(
          "--listen",
          "no secret is set, so kaiwa only listens on loopback (dev mode). To listen on " +
              cfg.gateway.listen.host + ", " + secret_instead);
    if (cfg.admin_token.empty() && !is_loopback(cfg.gateway.admin.host))
      throw CLI::ValidationError(
          "--admin",
          "the admin API listens beyond loopback only with an admin token: " + admin_token_instead);
    std::istringstream hosts(admin_hosts);
    for (std::string h; std::getline(hosts, h, ',');) {
      for (auto& ch : h) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (!h.empty()) cfg.admin_hosts.push_back(h);
    }
    cfg.gateway.address_limit_exempt.clear();
    std::istringstream exempt(address_limit_exempt);
    for (std::string n; std::getline(exempt, n, ',');)
      if (!n.empty()) cfg.gateway.address_limit_exempt.push_back(n);
    cfg.journal.sync = durability == "sync";
    cfg.journal.block_cache_bytes = block_cache_mib << 20;
    cfg.journal.memtable_bytes = memtable_mib << 20;
    cfg.journal.slow_write = cfg.rooms.slow_activation = std::chrono::milliseconds(slow_ms);
    log_level level{};
    log_format format{};
    parse_log_level(log_level_name, level);
    parse_log_format(log_format_name, format);
    configure_logging(level, format);
    cfg.read.projections = projections == "on";
    std::exit(run_node(cfg));
  });

  // -- kaiwa token --------------------------------------------------------------------------
  std::string user, token_secret_file, kid;
  milliseconds ttl = std::chrono::hours(24);
  auto* token = app.add_subcommand("token", "Print a client token for a user");
  token->add_option("--user", user, "User name")->required();
  add_duration(token, "--ttl", "Lifetime", ttl, one_ms, a_century);
  token->add_option("--secret-file", token_secret_file,
                    "The node's key file (KID=SECRET lines), or set KAIWA_SECRET");
  token->add_option("--kid", kid, "Sign with this key of the file (default: the first)");
  add_refused_secret_option(token, "--secret");
  token->callback([&] {
    refuse_secret_options(token);
    if (!valid_name(user)) throw CLI::ValidationError("--user", name_rule);
    auto keys = token_keys_or_throw(token_secret_file);
    if (keys.empty()) throw CLI::ValidationError("--secret-file", "no key: " + secret_instead);
    auto key = keys.begin();
    if (!kid.empty())
      key = std::find_if(keys.begin(), keys.end(), [&](auto& k) { return k.kid == kid; });
    if (key == keys.end()) throw CLI::ValidationError("--kid", "no key '" + kid + "' in the file");
    auto exp = std::chrono::system_clock::now() + ttl;
    auto exp_s = std::chrono::duration_cast<std::chrono::seconds>(exp.time_since_epoch()).count();
    fmt::print("{}\n", issue_token(*key, user_id{user}, exp_s));
  });

  // -- kaiwa cert ----------------------------------------------------------------------------
  std::string cert_out, cert_ca_dir, cert_name;
  int cert_days = 0;
  auto* cert = app.add_subcommand("cert", "Make the cluster's CA and its members' certificates");
  cert->require_subcommand(1);
  auto* cert_ca = cert->add_subcommand("ca", "Make a new cluster CA: DIR/ca.pem, DIR/ca-key.pem");
  cert_ca->add_option("--out", cert_out, "Directory to write to")->required();
  cert_ca->add_option("--days", cert_days, "Validity in days (default 3650)");
  cert_ca->callback(
      [&] { std::exit(app::cert_ca_command(cert_out, cert_days ? cert_days : 3650)); });
  auto* cert_node = cert->add_subcommand(
      "node", "Sign a member's certificate: OUT/NAME.pem, OUT/NAME-key.pem (and OUT/ca.pem)");
  cert_node->add_option("--ca", cert_ca_dir, "The CA's directory (from `kaiwa cert ca`)")
      ->required();
  cert_node->add_option("--name", cert_name, "The node's name (its --node-id, by convention)")
      ->required();
  cert_node->add_option("--out", cert_out, "Directory to write to")->required();
  cert_node->add_option("--days", cert_days, "Validity in days (default 825)");
  cert_node->callback([&] {
    std::exit(
        app::cert_node_command(cert_ca_dir, cert_name, cert_out, cert_days ? cert_days : 825));
  });

  // -- admin commands (over the admin API) ---------------------------------------------------
  std::string admin_url = "http://127.0.0.1:8081", admin_token_file_cli;
  bool admin_json = false;
  auto admin_opts = [&](CLI::App* s, bool json) {
    s->add_option("--admin", admin_url, "The node's admin API URL")->capture_default_str();
    s->add_option("--admin-token-file", admin_token_file_cli,
                  "File holding the admin bearer token (or set KAIWA_ADMIN_TOKEN)");
    add_refused_secret_option(s, "--admin-token");
    if (json) s->add_flag("--json", admin_json, "Print JSON");
  };
  auto admin_target_or_throw = [&] {
    for (auto* sub : app.get_subcommands()) refuse_secret_options(sub);
    auto t = app::parse_admin_url(admin_url);
    if (!t) throw CLI::ValidationError("--admin", "expected http://HOST:PORT");
    t->token = admin_token_or_throw(admin_token_file_cli);
    return *t;
  };
  auto* status_cmd = app.add_subcommand("status", "Show a node's status");
  admin_opts(status_cmd, true);
  status_cmd->callback(
      [&] { std::exit(app::status_command(admin_target_or_throw(), admin_json)); });

  std::string room_arg;
  auto* room_cmd = app.add_subcommand(
      "room", "Show a room's state (kaiwa room ROOM), or delete|archive|unarchive ROOM");
  admin_opts(room_cmd, true);
  room_cmd->add_option("room", room_arg, "Room name");
  room_cmd->callback([&] {
    if (room_arg.empty()) throw CLI::RequiredError("room");
    if (!valid_name(room_arg))
      throw CLI::ValidationError("room", "'" + room_arg + "' is not a room name: " + name_rule);
    std::exit(app::room_command(admin_target_or_throw(), room_arg, admin_json));
  });
  add_room_management(app, *room_cmd, admin_opts, admin_target_or_throw, admin_json);

  int top_iterations = 0;
  auto* top_cmd = app.add_subcommand("top", "A live view of a node, refreshed every second");
  admin_opts(top_cmd, true);
  top_cmd->add_option("--iterations", top_iterations, "Stop after N refreshes (0: never)")
      ->capture_default_str();
  top_cmd->callback(
      [&] { std::exit(app::top_command(admin_target_or_throw(), top_iterations, admin_json)); });

  milliseconds drain_grace{5000};
  std::string drain_node;
  auto* drain_cmd = app.add_subcommand(
      "drain",
      "Empty a node: in a cluster, move its shards to the others first; then stop accepting "
      "clients and close them with 4010");
  admin_opts(drain_cmd, true);
  drain_cmd->add_option("node", drain_node,
                        "The cluster member to drain (default: the node asked)");
  add_duration(drain_cmd, "--grace", "Time before sessions are closed", drain_grace,
               milliseconds(0), one_hour);
  drain_cmd->callback([&] {
    if (!drain_node.empty() && !valid_name(drain_node))
      throw CLI::ValidationError("node", "'" + drain_node + "' is not a node id: " + name_rule);
    std::exit(app::drain_command(admin_target_or_throw(), drain_node, drain_grace, admin_json));
  });

  auto* cluster_cmd =
      app.add_subcommand("cluster", "Show the cluster: members, their state, shards and load");
  admin_opts(cluster_cmd, true);
  cluster_cmd->require_subcommand(0, 1);
  std::string remove_node;
  auto* remove_cmd = cluster_cmd->add_subcommand(
      "remove",
      "With etcd: a member gone for good; its replicas are re-created on the live members "
      "(refused while it is live)");
  admin_opts(remove_cmd, true);
  remove_cmd->add_option("node", remove_node, "The member to remove")->required();
  remove_cmd->callback([&] {
    if (!valid_name(remove_node))
      throw CLI::ValidationError("node", "'" + remove_node + "' is not a node id: " + name_rule);
    std::exit(app::remove_command(admin_target_or_throw(), remove_node, admin_json));
  });
  cluster_cmd->callback([&] {
    if (remove_cmd->parsed()) return;
    std::exit(app::cluster_command(admin_target_or_throw(), admin_json));
  });

  auto* shards_cmd = app.add_subcommand("shards", "Show the shard map and its epoch");
  admin_opts(shards_cmd, true);
  shards_cmd->callback(
      [&] { std::exit(app::shards_command(admin_target_or_throw(), admin_json)); });

  unsigned move_shard = 0;
  std::string move_to;
  auto* move_cmd = app.add_subcommand("move", "Move one shard to another member");
  admin_opts(move_cmd, true);
  move_cmd->add_option("shard", move_shard, "Shard number")->required();
  move_cmd->add_option("node", move_to, "The member to move it to")->required();
  move_cmd->callback([&] {
    if (!valid_name(move_to))
      throw CLI::ValidationError("node", "'" + move_to + "' is not a node id: " + name_rule);
    std::exit(app::move_command(admin_target_or_throw(), move_shard, move_to, admin_json));
  });

  auto* projections_cmd = app.add_subcommand(
      "projections", "Show the read models: state, progress, pending events, lag, events applied");
  admin_opts(projections_cmd, true);
  projections_cmd->callback(
      [&] { std::exit(app::projections_command(admin_target_or_throw(), admin_json)); });

  std::string rebuild_name;
  auto* rebuild_cmd = app.add_subcommand(
      "rebuild", "Drop a read model and rebuild it from the log, printing progress until done");
  admin_opts(rebuild_cmd, false);
  rebuild_cmd->add_option("projection", rebuild_name, "rooms or search")->required();
  rebuild_cmd->callback([&] {
    if (!valid_name(rebuild_name))
      throw CLI::ValidationError("projection", "'" + rebuild_name + "' is not a projection name");
    std::exit(app::rebuild_command(admin_target_or_throw(), rebuild_name));
  });

  std::string backup_dir;
  auto* backup_cmd =
      app.add_subcommand("backup", "Copy a consistent checkpoint of a node's data into DIR");
  admin_opts(backup_cmd, true);
  backup_cmd->add_option("dir", backup_dir, "A new or empty directory")->required();
  backup_cmd->callback(
      [&] { std::exit(app::backup_command(admin_target_or_throw(), backup_dir, admin_json)); });

  std::string restore_dir, restore_data = "./kaiwa-data";
  auto* restore_cmd =
      app.add_subcommand("restore", "Restore a backup into an empty data directory");
  restore_cmd->add_option("dir", restore_dir, "The backup directory")->required();
  restore_cmd->add_option("--data-dir", restore_data, "The (empty) data directory to fill")
      ->capture_default_str();
  restore_cmd->add_flag("--json", admin_json, "Print JSON");
  restore_cmd->callback(
      [&] { std::exit(app::restore_command(restore_dir, restore_data, admin_json)); });

  // -- kaiwa bench ---------------------------------------------------------------------------
  bench::run_options run;
  std::string target = "127.0.0.1:8080", admin_target = "127.0.0.1:8081";
  auto* bench_cmd = app.add_subcommand("bench", "Load-test a node on this machine (loopback only)");
  bench_cmd->require_subcommand(1);
  auto common = [&](CLI::App* s) {
    s->add_option("--target", target,
                  "The node's public ADDR:PORT; several, comma-separated, spread the clients "
                  "over cluster members (client i connects to the i-th modulo their number)")
        ->capture_default_str();
    s->add_option("--admin", admin_target, "The node's admin ADDR:PORT (status, memory)")
        ->capture_default_str();
    s->add_option("--threads", run.threads, "Client worker threads")
        ->check(CLI::Range(std::size_t{1}, max_threads))
        ->capture_default_str();
    add_duration(s, "--duration", "Measured time", run.duration_s, one_ms, one_day);
    add_duration(s, "--warmup", "Time before measuring", run.warmup_s, milliseconds(0), one_day);
    s->add_flag("--json", run.json, "Print the summary as JSON");
    s->add_flag("--quiet", run.quiet, "No progress lines");
    s->add_flag("--tls", run.tls, "Connect with wss:// (the certificate is not verified)");
  };
  auto resolve = [&] {
    auto fix = [](const std::string& h) { return h == "localhost" ? std::string("127.0.0.1") : h; };
    run.servers.clear();
    std::istringstream targets(target);
    for (std::string t; std::getline(targets, t, ',');) {
      net::endpoint ep;
      if (!parse_endpoint(t, ep))
        throw CLI::ValidationError("--target", "expected ADDR:PORT[,ADDR:PORT...]");
      if (!is_loopback(ep.host))
        throw CLI::ValidationError("--target", "kaiwa bench only targets loopback addresses");
      run.servers.push_back({fix(ep.host), ep.port});
    }
    if (run.servers.empty()) throw CLI::ValidationError("--target", "expected ADDR:PORT");
    net::endpoint adm;
    if (!parse_endpoint(admin_target, adm))
      throw CLI::ValidationError("--admin", "expected ADDR:PORT");
    if (!is_loopback(adm.host))
      throw CLI::ValidationError("--target", "kaiwa bench only targets loopback addresses");
    run.admin = {fix(adm.host), adm.port};
  };

  // fanout's and rooms' shared load options, checked so that a run either can run or is refused.
  auto add_pubsub_load = [](CLI::App* s, bench::pubsub_config& c) {
    s->add_option("--payload", c.payload, "Text bytes")
        // No more than the protocol's largest text: the node would refuse every send.
        ->check(CLI::Range(std::size_t{0}, max_text_bytes))
        ->capture_default_str();
    s->add_option("--rate", c.rate, "Offered msgs/s in total (0: max)")
        ->check(offered_rate())
        ->capture_default_str();
    s->add_option("--window", c.window, "Sends in flight per publisher")
        ->check(CLI::Range(std::size_t{1}, max_bench_window))
        ->capture_default_str();
  };
  // Each count is bounded alone; their product, the connections, is bounded too (and can't
  // overflow: each factor is at most max_bench_connections).
  auto check_pubsub_connections = [](const bench::pubsub_config& c) {
    if (c.rooms * (c.publishers + c.subscribers) > max_bench_connections)
      throw CLI::ValidationError(
          "--subscribers",
          fmt::format("{} rooms x ({} publishers + {} subscribers) is more than {} connections",
                      c.rooms, c.publishers, c.subscribers, max_bench_connections));
  };
  bench::pubsub_config fanout_cfg;
  fanout_cfg.subscribers = 1000;
  fanout_cfg.publishers = 1;
  auto* fanout = bench_cmd->add_subcommand("fanout", "1 room, S subscribers, P publishers");
  common(fanout);
  fanout->add_option("--subscribers", fanout_cfg.subscribers, "Subscribers")
      ->check(CLI::Range(std::size_t{0}, max_bench_connections))
      ->capture_default_str();
  fanout->add_option("--publishers", fanout_cfg.publishers, "Publishers")
      ->check(CLI::Range(std::size_t{1}, max_bench_connections))
      ->capture_default_str();
  add_pubsub_load(fanout, fanout_cfg);
  fanout->callback([&] {
    check_pubsub_connections(fanout_cfg);
    resolve();
    std::exit(bench::run_pubsub(run, fanout_cfg, "fanout"));
  });

  bench::pubsub_config rooms_cfg;
  rooms_cfg.rooms = 1000;
  auto* rooms_cmd =
      bench_cmd->add_subcommand("rooms", "R rooms, each with its publishers and subscribers");
  common(rooms_cmd);
  rooms_cmd->add_option("--rooms", rooms_cfg.rooms, "Rooms")
      ->check(CLI::Range(std::size_t{1}, max_bench_connections))
      ->capture_default_str();
  rooms_cmd->add_option("--publishers", rooms_cfg.publishers, "Publishers per room")
      ->check(CLI::Range(std::size_t{1}, max_bench_connections))
      ->capture_default_str();
  rooms_cmd->add_option("--subscribers", rooms_cfg.subscribers, "Subscribers per room")
      ->check(CLI::Range(std::size_t{0}, max_bench_connections))
      ->capture_default_str();
  add_pubsub_load(rooms_cmd, rooms_cfg);
  // At most an hour: in nanoseconds it must fit the clock (2^64-1 overflowed to "at once",
  // and every send was retried every 5 ms).
  rooms_cmd
      ->add_option("--resend-after", rooms_cfg.resend_ms,
                   "Sends carry a cid; one answered timeout or unanswered after MS is sent again "
                   "(0: off)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{3'600'000}))
      ->capture_default_str();
  rooms_cmd->add_option("--acked-log", rooms_cfg.acked_log,
                        "Write every ack to FILE as 'room seq text' lines (for a checker)");
  rooms_cmd->callback([&] {
    check_pubsub_connections(rooms_cfg);
    resolve();
    std::exit(bench::run_pubsub(run, rooms_cfg, "rooms"));
  });

  bench::conns_config conns_cfg;
  auto* conns_cmd =
      bench_cmd->add_subcommand("conns", "N idle connections, then one broadcast per room");
  common(conns_cmd);
  conns_cmd->add_option("--connections", conns_cfg.connections, "Connections")
      ->capture_default_str();
  conns_cmd->add_option("--per-room", conns_cfg.per_room, "Connections joined to each room")
      ->capture_default_str();
  conns_cmd
      ->add_option("--procs", conns_cfg.procs, "Worker processes to spread the connections over")
      ->check(at_least(1))
      ->capture_default_str();
  conns_cmd->callback([&] {
    resolve();
    std::exit(bench::run_conns(run, conns_cfg));
  });

  bench::history_config history_cfg;
  auto* history_cmd =
      bench_cmd->add_subcommand("history", "Random history pages over rooms with long logs");
  common(history_cmd);
  history_cmd->add_option("--rooms", history_cfg.rooms, "Rooms")->capture_default_str();
  history_cmd->add_option("--events", history_cfg.events, "Log length per room (prefilled)")
      ->capture_default_str();
  history_cmd->add_option("--clients", history_cfg.clients, "Reading connections")
      ->capture_default_str();
  history_cmd->add_option("--limit", history_cfg.limit, "Events per page")->capture_default_str();
  history_cmd->add_option("--window", history_cfg.window, "Requests in flight per client")
      ->capture_default_str();
  history_cmd->callback([&] {
    resolve();
    std::exit(bench::run_history(run, history_cfg));
  });

  bench::resume_config resume_cfg;
  auto* resume_cmd = bench_cmd->add_subcommand(
      "resume", "A reconnect storm: all clients drop and rejoin with since");
  common(resume_cmd);
  // Bounded as fanout's and rooms' are: the clients' and rooms' tables are made before the
  // first connect (--rooms 2^64-1 threw, 5*10^7 took 409 MB).
  resume_cmd->add_option("--clients", resume_cfg.clients, "Clients")
      ->check(CLI::Range(std::size_t{1}, max_bench_connections - 1))  // and the publisher
      ->capture_default_str();
  resume_cmd->add_option("--rooms", resume_cfg.rooms, "Rooms")
      ->check(CLI::Range(std::size_t{1}, max_bench_connections))
      ->capture_default_str();
  resume_cmd->add_option("--rate", resume_cfg.rate, "Msgs/s published meanwhile")
      ->check(offered_rate())
      ->capture_default_str();
  add_duration(resume_cmd, "--away", "Time the clients stay away", resume_cfg.away_s,
               milliseconds(0), one_hour);
  resume_cmd->callback([&] {
    resolve();
    std::exit(bench::run_resume(run, resume_cfg));
  });

  bench::chat_config chat_cfg;
  auto* chat_cmd = bench_cmd->add_subcommand(
      "chat", "A realistic mix: Zipf rooms, typing, reads, history, edits");
  common(chat_cmd);
  chat_cmd->add_option("--users", chat_cfg.users, "Users (one connection each)")
      ->capture_default_str();
  chat_cmd->add_option("--rooms", chat_cfg.rooms, "Rooms")->capture_default_str();
  chat_cmd->add_option("--rooms-per-user", chat_cfg.rooms_per_user, "Rooms each user joins")
      ->capture_default_str();
  chat_cmd->add_option("--zipf", chat_cfg.zipf, "Room popularity exponent")->capture_default_str();
  chat_cmd->add_option("--send-rate", chat_cfg.sends_per_user_s, "Sends per user per second")
      ->capture_default_str();
  chat_cmd->callback([&] {
    resolve();
    std::exit(bench::run_chat(run, chat_cfg));
  });

  bench::search_config search_cfg;
  std::string groonga_target;
  auto* search_cmd = bench_cmd->add_subcommand(
      "search", "Index a generated Japanese + English chat corpus and time queries (vs Groonga)");
  common(search_cmd);
  search_cmd->add_option("--messages", search_cfg.corpus.messages, "Messages in the corpus")
      ->check(at_least(1))
      ->capture_default_str();
  search_cmd->add_option("--rooms", search_cfg.corpus.rooms, "Rooms they are spread over")
      ->check(at_least(1))
      ->capture_default_str();
  search_cmd->add_option("--users", search_cfg.corpus.users, "Users who write them")
      ->check(at_least(1))
      ->capture_default_str();
  search_cmd->add_option("--seed", search_cfg.corpus.seed, "The corpus's seed")
      ->capture_default_str();
  search_cmd
      ->add_option("--load", search_cfg.load,
                   "ws: send the corpus to the node; offline: write it into the stopped node's "
                   "--data-dir and exit; none: it is loaded already; groonga: print Groonga's "
                   "load command for it and exit")
      ->check(CLI::IsMember({"ws", "offline", "none", "groonga"}))
      ->capture_default_str();
  search_cmd->add_option("--data-dir", search_cfg.data_dir, "The node's data dir (--load offline)");
  search_cmd->add_option("--connections", search_cfg.connections, "Loading connections (ws)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  search_cmd
      ->add_option("--rate", search_cfg.rate,
                   "Offered msgs/s in all (ws; 0: as fast as acked, at most 9,000/s per "
                   "connection, under the node's default rate limit)")
      ->capture_default_str();
  search_cmd->add_option("--window", search_cfg.window, "Sends in flight per connection (ws)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  search_cmd
      ->add_option("--rounds", search_cfg.rounds,
                   "Measured passes over the query set (0: no queries, e.g. to time the load)")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  search_cmd->add_option("--limit", search_cfg.limit, "Hits per query")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  add_duration(search_cmd, "--index-timeout", "Time to wait for the search projection to catch up",
               search_cfg.index_timeout_s, one_ms, one_day);
  search_cmd->add_option("--groonga", groonga_target,
                         "A Groonga server (ADDR:PORT, `groonga -s --protocol gqtp`) loaded with "
                         "the same corpus, asked the same queries");
  search_cmd->callback([&] {
    if (search_cfg.load == "offline" && search_cfg.data_dir.empty())
      throw CLI::ValidationError("--data-dir", "--load offline writes into --data-dir");
    if (search_cfg.load != "offline" && search_cfg.load != "groonga") resolve();
    if (!groonga_target.empty()) {
      net::endpoint ep;
      if (!parse_endpoint(groonga_target, ep) || !is_loopback(ep.host))
        throw CLI::ValidationError("--groonga", "expected a loopback ADDR:PORT");
      search_cfg.groonga = bench::endpoint{ep.host == "localhost" ? "127.0.0.1" : ep.host, ep.port};
    }
    std::exit(bench::run_search(run, search_cfg));
  });

  // Exit codes (docs/operations.md): 0 success, 1 the operation failed, 2 a usage error.
  // Commands return 0 or 1 themselves (std::exit); what reaches here is usage, or a failure
  // nothing caught, which must not end as an abort.
  strict_integers(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    auto results = config_opt->results();
    if (auto better = explain_parse_error(app, e, results.empty() ? "" : results.front());
        !better.empty()) {
      fmt::print(stderr, "{}\n", better);
      return 2;
    }
    app.exit(e);  // the message and the hint to --help
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "kaiwa: {}\n", e.what());
    return 1;
  }
  return 0;
}

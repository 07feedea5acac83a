// The `rooms` load scenario: R rooms, one publisher each, sends pipelined up to a window,
// measuring acked msgs/s and ack latency. A lean client on raw Asio: it writes masked frames
// (with a zero mask, which RFC 6455 permits the server to accept and saves the client the
// XOR) and reads the server's unmasked frames.

#include "apps/bench.hpp"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace kaiwa::app {

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

/// A client text frame with a zero mask key.
std::string client_frame(std::string_view payload) {
  std::string f;
  f += static_cast<char>(0x81);
  if (payload.size() < 126) {
    f += static_cast<char>(0x80 | payload.size());
  } else if (payload.size() <= 0xffff) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size() & 0xff);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i)
      f += static_cast<char>((std::uint64_t{payload.size()} >> (8 * i)) & 0xff);
  }
  f.append(4, '\0');
  f += payload;
  return f;
}

std::int64_t field_int(std::string_view json, std::string_view key) {
  auto at = json.find(key);
  if (at == std::string_view::npos) return -1;
  std::int64_t v = -1;
  auto start = json.data() + at + key.size();
  std::from_chars(start, json.data() + json.size(), v);
  return v;
}

struct results {
  std::mutex mtx;
  std::vector<std::uint32_t> latencies_us;  // acks after warm-up
  std::uint64_t acked = 0;
  std::uint64_t errors = 0;
  std::uint64_t order_violations = 0;
};

class publisher : public std::enable_shared_from_this<publisher> {
 public:
  publisher(asio::io_context& ioc, const rooms_bench_config& cfg, std::string room,
            clock_type::time_point measure_from, clock_type::time_point stop_at, results& res,
            std::atomic<std::size_t>& ready)
      : socket_(ioc),
        cfg_(cfg),
        room_(std::move(room)),
        measure_from_(measure_from),
        stop_at_(stop_at),
        res_(res),
        ready_(ready),
        sent_at_(cfg.window * 4),
        pacer_(ioc) {
    text_.assign(cfg.payload, 'x');
  }

  void start(const tcp::endpoint& ep) {
    socket_.async_connect(ep, [self = shared_from_this()](error_code ec) {
      if (ec) return self->fail("connect", ec);
      self->socket_.set_option(tcp::no_delay(true));
      self->handshake();
    });
  }

  std::vector<std::uint32_t> take_latencies() { return std::move(latencies_); }
  std::uint64_t acked() const { return acked_; }

 private:
  void fail(const char* what, error_code ec) {
    if (!failed_) fmt::print(stderr, "bench: {} failed for {}: {}\n", what, room_, ec.message());
    failed_ = true;
    std::lock_guard lock(res_.mtx);
    res_.errors += 1;
  }

  void handshake() {
    auto req = std::make_shared<std::string>(fmt::format(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        cfg_.host));
    asio::async_write(
        socket_, asio::buffer(*req), [self = shared_from_this(), req](error_code ec, std::size_t) {
          if (ec) return self->fail("handshake", ec);
          asio::async_read_until(
              self->socket_, self->hs_buf_, "\r\n\r\n", [self](error_code ec, std::size_t n) {
                if (ec) return self->fail("handshake", ec);
                std::string head(asio::buffers_begin(self->hs_buf_.data()),
                                 asio::buffers_begin(self->hs_buf_.data()) + n);
                if (head.find(" 101 ") == std::string::npos)
                  return self->fail("upgrade", asio::error::connection_refused);
                // Bytes after the response head are frames already.
                self->hs_buf_.consume(n);
                auto rest = self->hs_buf_.data();
                self->rbuf_.assign(asio::buffers_begin(rest), asio::buffers_end(rest));
                self->write(client_frame(
                    fmt::format(R"({{"op":"hello","id":0,"user":"bench-{}"}})", self->room_)));
                self->read();
              });
        });
  }

  void write(std::string frame) {
    out_ += frame;
    if (!writing_) flush();
  }

  void flush() {
    if (out_.empty()) return;
    writing_ = true;
    wbuf_.swap(out_);
    out_.clear();
    asio::async_write(socket_, asio::buffer(wbuf_),
                      [self = shared_from_this()](error_code ec, std::size_t) {
                        self->writing_ = false;
                        if (ec) return self->fail("write", ec);
                        self->flush();
                      });
  }

  void read() {
    auto old = rbuf_.size();
    rbuf_.resize(old + 65536);
    socket_.async_read_some(asio::buffer(rbuf_.data() + old, 65536),
                            [self = shared_from_this(), old](error_code ec, std::size_t n) {
                              self->rbuf_.resize(old + n);
                              if (ec) {
                                if (clock_type::now() < self->stop_at_) self->fail("read", ec);
                                return;
                              }
                              self->parse();
                              if (!self->done_) self->read();
                            });
  }

  void parse() {
    std::size_t pos = 0;
    auto* b = reinterpret_cast<const unsigned char*>(rbuf_.data());
    while (rbuf_.size() - pos >= 2) {
      std::uint64_t len = b[pos + 1] & 0x7f;
      std::size_t hdr = 2;
      if (len == 126) hdr = 4;
      if (len == 127) hdr = 10;
      if (rbuf_.size() - pos < hdr) break;
      if (len == 126) len = (std::uint64_t{b[pos + 2]} << 8) | b[pos + 3];
      if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | b[pos + 2 + i];
      }
      if (rbuf_.size() - pos < hdr + len) break;
      on_message(std::string_view(rbuf_.data() + pos + hdr, len));
      pos += hdr + len;
    }
    rbuf_.erase(0, pos);
  }

  void on_message(std::string_view m) {
    if (m.starts_with(R"({"op":"welcome")")) {
      ready_ += 1;
      return send_more();
    }
    if (!m.starts_with(R"({"op":"ack")")) {
      if (m.starts_with(R"({"op":"error")")) {
        std::lock_guard lock(res_.mtx);
        res_.errors += 1;
      }
      return;
    }
    auto id = field_int(m, R"("id":)");
    auto seq = field_int(m, R"("seq":)");
    if (last_seq_ && seq != last_seq_ + 1) {
      std::lock_guard lock(res_.mtx);
      res_.order_violations += 1;
    }
    last_seq_ = seq;
    auto now = clock_type::now();
    if (now >= measure_from_ && now < stop_at_) {
      auto sent = sent_at_[static_cast<std::size_t>(id) % sent_at_.size()];
      latencies_.push_back(static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(now - sent).count()));
      ++acked_;
    }
    --in_flight_;
    send_more();
  }

  void send_more() {
    auto now = clock_type::now();
    if (now >= stop_at_) {
      if (in_flight_ == 0) {
        done_ = true;
        error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
      }
      return;
    }
    while (in_flight_ < cfg_.window) {
      if (cfg_.rate > 0) {
        // Paced: each publisher offers rate/rooms msgs/s.
        auto interval = std::chrono::duration<double>(cfg_.rooms / cfg_.rate);
        auto due = start_ + std::chrono::duration_cast<clock_type::duration>(interval * next_id_);
        if (next_id_ == 0) start_ = due = now;
        if (due > now) {
          if (!pacing_) {
            pacing_ = true;
            pacer_.expires_at(due);
            pacer_.async_wait([self = shared_from_this()](error_code) {
              self->pacing_ = false;
              self->send_more();
            });
          }
          break;
        }
      }
      auto id = next_id_++;
      sent_at_[id % sent_at_.size()] = clock_type::now();
      write(client_frame(
          fmt::format(R"({{"op":"send","id":{},"room":"{}","text":"{}"}})", id, room_, text_)));
      ++in_flight_;
    }
  }

  tcp::socket socket_;
  const rooms_bench_config& cfg_;
  std::string room_;
  clock_type::time_point measure_from_, stop_at_, start_;
  results& res_;
  std::atomic<std::size_t>& ready_;
  asio::streambuf hs_buf_;
  std::string rbuf_, out_, wbuf_, text_;
  bool writing_ = false, failed_ = false, done_ = false, pacing_ = false;
  std::vector<clock_type::time_point> sent_at_;
  std::vector<std::uint32_t> latencies_;
  std::uint64_t next_id_ = 0, in_flight_ = 0, acked_ = 0;
  std::int64_t last_seq_ = 0;
  asio::steady_timer pacer_;
};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int run_rooms_bench(const rooms_bench_config& cfg) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  std::vector<std::unique_ptr<asio::io_context>> iocs;
  for (std::size_t i = 0; i < std::max<std::size_t>(1, cfg.threads); ++i)
    iocs.push_back(std::make_unique<asio::io_context>(1));
  tcp::endpoint ep(asio::ip::make_address(cfg.host), cfg.port);
  auto connect_deadline = clock_type::now() + std::chrono::seconds(30);
  auto measure_from = connect_deadline;  // set once every publisher is connected
  auto begin = clock_type::now();
  auto warm =
      std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(cfg.warmup_s));
  auto run = std::chrono::duration_cast<clock_type::duration>(
      std::chrono::duration<double>(cfg.duration_s));
  measure_from = begin + warm;
  auto stop_at = measure_from + run;

  results res;
  std::atomic<std::size_t> ready{0};
  std::vector<std::shared_ptr<publisher>> pubs;
  for (std::size_t r = 0; r < cfg.rooms; ++r) {
    auto p =
        std::make_shared<publisher>(*iocs[r % iocs.size()], cfg, fmt::format("bench-room-{}", r),
                                    measure_from, stop_at, res, ready);
    p->start(ep);
    pubs.push_back(std::move(p));
  }
  double cpu0 = cpu_seconds();
  std::vector<std::thread> threads;
  for (auto& ioc : iocs) threads.emplace_back([&ioc] { ioc->run(); });
  // Progress once a second until the run ends (bounded by its duration).
  std::uint64_t last_acked = 0;
  while (clock_type::now() < stop_at) {
    std::this_thread::sleep_for(
        std::chrono::seconds(1));  // the report's cadence, not synchronization
    std::uint64_t acked = 0;
    for (auto& p : pubs) acked += p->acked();
    fmt::print(stderr, "bench: {:.0f}s connected {}/{} acked {}/s\n",
               std::chrono::duration<double>(clock_type::now() - begin).count(), ready.load(),
               cfg.rooms, acked - last_acked);
    last_acked = acked;
  }
  for (auto& t : threads) t.join();
  double cpu = cpu_seconds() - cpu0;

  std::vector<std::uint32_t> lat;
  std::uint64_t acked = 0;
  for (auto& p : pubs) {
    auto l = p->take_latencies();
    lat.insert(lat.end(), l.begin(), l.end());
    acked += p->acked();
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double q) -> double {
    if (lat.empty()) return 0;
    return lat[std::min(lat.size() - 1, static_cast<std::size_t>(q * lat.size()))] / 1000.0;
  };
  fmt::print("rooms={} window={} payload={} offered={} duration={}s\n", cfg.rooms, cfg.window,
             cfg.payload, cfg.rate > 0 ? fmt::format("{:.0f}/s", cfg.rate) : std::string("max"),
             cfg.duration_s);
  fmt::print("acked {:.0f} msgs/s ({} acks), errors {}, out-of-order acks {}\n",
             acked / cfg.duration_s, acked, res.errors, res.order_violations);
  fmt::print("ack latency ms: p50 {:.2f} p90 {:.2f} p99 {:.2f} p99.9 {:.2f} max {:.2f}\n", pct(0.5),
             pct(0.9), pct(0.99), pct(0.999), lat.empty() ? 0.0 : lat.back() / 1000.0);
  fmt::print("bench cpu {:.0f}% of one core\n",
             100 * cpu / std::chrono::duration<double>(clock_type::now() - begin).count());
  return res.errors == 0 && res.order_violations == 0 && acked > 0 ? 0 : 1;
}

}  // namespace kaiwa::app

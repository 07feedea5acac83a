#include "net/detail/ws_session.hpp"

#include <simdjson.h>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstring>

#include "actors/rooms.hpp"
#include "core/log.hpp"
#include "core/replies.hpp"
#include "core/token.hpp"
#include "net/detail/request.hpp"

namespace kaiwa::net::detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::size_t initial_read_bytes = 512;
constexpr std::size_t padding = simdjson::SIMDJSON_PADDING;
constexpr int max_consecutive_errors = 10;
constexpr int max_consecutive_limited = 100;
// How long a closing session waits for its close frame to be written and the client to hang up.
// Generous, because a slow consumer's close frame waits behind what it has not read yet.
constexpr auto close_handshake_limit = std::chrono::seconds(10);

std::int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

ws_session::ws_session(asio::ip::tcp::socket socket, struct io_lane& l, server_state& st,
                       std::string_view already_read)
    : socket_(std::move(socket)), lane_(l), st_(st), deadline_(l.ioc) {
  ensure_capacity(std::max(initial_read_bytes, already_read.size()));
  std::memcpy(rbuf_.get(), already_read.data(), already_read.size());
  rlen_ = already_read.size();
  tokens_milli_ = std::int64_t{st_.cfg.rate_limit} * 2000;
  last_refill_us_ = now_us();
  st_.connections += 1;
  st_.opened += 1;
}

ws_session::~ws_session() = default;

void ws_session::start() {
  lane_.sessions.insert(this);
  id_ = st_.next_conn_id.fetch_add(1, std::memory_order_relaxed);
  opened_at_ = std::chrono::steady_clock::now();
  if (log_enabled(log_level::info)) {
    boost::system::error_code ec;
    auto peer = socket_.remote_endpoint(ec);
    log(log_level::info, "connection_opened",
        {{"conn", id_},
         {"peer",
          ec ? std::string("?") : peer.address().to_string() + ":" + std::to_string(peer.port())}});
  }
  boost::system::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  deadline_.expires_after(st_.cfg.hello_timeout);
  deadline_.async_wait(
      [self = std::static_pointer_cast<ws_session>(shared_from_this())](error_code ec) {
        if (!ec && self->state_ == state::awaiting_hello)
          self->close(close_code::unauthorized, "no hello");
      });
  if (rlen_ > 0) process_frames();
  do_read();
}

void ws_session::post(std::function<void()> fn) { asio::post(lane_.ioc, std::move(fn)); }

// -- reading --------------------------------------------------------------------------------

void ws_session::ensure_capacity(std::size_t needed) {
  if (needed <= rcap_) return;
  std::size_t cap = std::max(needed, rcap_ * 2);
  auto buf = std::make_unique<char[]>(cap + padding);
  if (rlen_ > 0) std::memcpy(buf.get(), rbuf_.get(), rlen_);
  rbuf_ = std::move(buf);
  rcap_ = cap;
}

void ws_session::do_read() {
  if (rlen_ == rcap_) ensure_capacity(rcap_ * 2);
  socket_.async_read_some(asio::buffer(rbuf_.get() + rlen_, rcap_ - rlen_),
                          [self = std::static_pointer_cast<ws_session>(shared_from_this())](
                              error_code ec, std::size_t n) { self->on_read(ec, n); });
}

void ws_session::on_read(const error_code& ec, std::size_t n) {
  if (ec) return teardown();
  if (state_ == state::closed) return;
  rlen_ += n;
  if (state_ == state::closing) {
    rlen_ = 0;  // after our close frame: discard until the client hangs up
  } else {
    process_frames();
  }
  // A client that doesn't read its replies stops being read: its requests wait in TCP.
  if (state_ != state::closing && queued_bytes_ > st_.cfg.max_outbound_bytes) {
    read_paused_ = true;
    return;
  }
  do_read();
}

bool ws_session::process_frames() {
  auto* buf = reinterpret_cast<unsigned char*>(rbuf_.get());
  std::size_t pos = 0;
  auto done = [&](bool keep_reading) {
    if (pos > 0) {
      std::memmove(buf, buf + pos, rlen_ - pos);
      rlen_ -= pos;
    }
    return keep_reading;
  };
  while (pos < rlen_) {
    if (skip_ > 0) {
      auto n = std::min<std::uint64_t>(skip_, rlen_ - pos);
      skip_ -= n;
      pos += n;
      continue;
    }
    std::size_t avail = rlen_ - pos;
    if (avail < 2) break;
    unsigned char b0 = buf[pos], b1 = buf[pos + 1];
    bool fin = b0 & 0x80;
    unsigned opcode = b0 & 0x0f;
    std::size_t hdr = 2;
    std::uint64_t len = b1 & 0x7f;
    if (len == 126)
      hdr += 2;
    else if (len == 127)
      hdr += 8;
    hdr += 4;  // the mask key
    if (avail < hdr) break;
    if (len == 126) {
      len = (std::uint64_t{buf[pos + 2]} << 8) | buf[pos + 3];
    } else if (len == 127) {
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | buf[pos + 2 + i];
    }
    bool is_control = opcode & 0x8;
    if ((b0 & 0x70) || !(b1 & 0x80) || (is_control && (!fin || len > 125)) ||
        (opcode > 2 && opcode < 8) || opcode > 10) {
      close(close_code::protocol_error, "protocol error");
      return done(false);
    }
    if (!is_control) {
      std::uint64_t total = len + (opcode == 0 ? fragments_.size() : 0);
      if (total > st_.cfg.max_frame_bytes && !discard_message_) {
        reply_error("", errc::too_large, "frame is over the size limit");
        if (state_ == state::closing) return done(false);
        fragments_.clear();
        in_fragmented_ = false;
        discard_message_ = !fin;
        skip_ = len;
        pos += hdr;
        continue;
      }
    }
    if (avail < hdr + len) {
      ensure_capacity(hdr + len);
      buf = reinterpret_cast<unsigned char*>(rbuf_.get());
      break;
    }
    unsigned char* mask = buf + pos + hdr - 4;
    unsigned char* payload = buf + pos + hdr;
    for (std::uint64_t i = 0; i < len; ++i) payload[i] ^= mask[i & 3];
    std::string_view data(reinterpret_cast<char*>(payload), len);
    pos += hdr + len;
    lane_traffic::add(lane_.traffic.frames_in);

    switch (opcode) {
      case 0x0:  // continuation
        if (discard_message_) {
          discard_message_ = !fin;
          break;
        }
        if (!in_fragmented_) {
          close(close_code::protocol_error, "unexpected continuation frame");
          return done(false);
        }
        fragments_ += data;
        if (fin) {
          in_fragmented_ = false;
          std::string msg = std::move(fragments_);
          fragments_.clear();
          on_text(msg, false);
        }
        break;
      case 0x1:
      case 0x2:
        if (in_fragmented_ || discard_message_) {
          close(close_code::protocol_error, "expected a continuation frame");
          return done(false);
        }
        if (opcode == 0x2) {
          reply_error("", errc::bad_request, "binary frames are not supported; send JSON text");
          discard_message_ = !fin;
        } else if (fin) {
          on_text(data, true);  // rbuf_ always has SIMDJSON padding past its end
        } else {
          fragments_.assign(data);
          in_fragmented_ = true;
        }
        break;
      case 0x8:
        close(close_code::normal, "");
        return done(false);
      case 0x9:
        reply(pong_frame(data));
        break;
      default:  // pong
        break;
    }
    if (state_ == state::closing || state_ == state::closed) return done(false);
  }
  done(true);
  // Give back a buffer that grew for one large message once it is drained.
  if (rlen_ == 0 && rcap_ > 16 * 1024) {
    rbuf_.reset();
    rcap_ = 0;
    ensure_capacity(initial_read_bytes);
  }
  return true;
}

// -- requests -------------------------------------------------------------------------------

void ws_session::reply_error(std::string_view id, errc code, std::string_view message) {
  reply(error_frame(id, code, message));
  if (code == errc::bad_request || code == errc::too_large) {
    if (++consecutive_errors_ >= max_consecutive_errors)
      close(close_code::protocol_abuse, "too many bad requests");
  }
}

bool ws_session::take_token() {
  if (st_.cfg.rate_limit == 0) return true;
  auto now = now_us();
  std::int64_t cap = std::int64_t{st_.cfg.rate_limit} * 2000;
  tokens_milli_ =
      std::min(cap, tokens_milli_ + (now - last_refill_us_) * st_.cfg.rate_limit / 1000);
  last_refill_us_ = now;
  if (tokens_milli_ < 1000) return false;
  tokens_milli_ -= 1000;
  return true;
}

namespace {

std::size_t op_index(const request& r) {
  switch (r.op) {
    case session_op::hello:
      return 0;
    case session_op::ping:
      return 1;
    case session_op::rooms:
      return 2;
    case session_op::search:
      return 3;
    case session_op::room:  // join .. presence; the admin-only ops never come from a client
      return std::min<std::size_t>(4 + static_cast<std::size_t>(r.cmd.op), request_ops.size() - 1);
  }
  return request_ops.size() - 1;
}

std::size_t reason_index(close_code code) {
  switch (code) {
    case close_code::normal:
      return 1;
    case close_code::protocol_error:
      return 2;
    case close_code::protocol_abuse:
      return 3;
    case close_code::unauthorized:
      return 4;
    case close_code::rate_limited:
      return 5;
    case close_code::slow_consumer:
      return 6;
    case close_code::going_away:
      return 7;
  }
  return 0;
}

}  // namespace

void ws_session::on_text(std::string_view payload, bool padded) {
  auto parsed = parse_request(payload, padded);
  lane_traffic::add(
      lane_.traffic.requests_by_op[parsed.req ? op_index(*parsed.req) : request_ops.size() - 1]);
  if (parsed.err) return reply_error(parsed.err->id, parsed.err->code, parsed.err->message);
  auto& r = *parsed.req;
  if (!take_token()) {
    reply(error_frame(r.id, errc::rate_limited, "too many requests; slow down"));
    if (++consecutive_limited_ >= max_consecutive_limited)
      close(close_code::rate_limited, "rate limit exceeded repeatedly");
    return;
  }
  consecutive_limited_ = 0;
  consecutive_errors_ = 0;
  handle(r);
}

void ws_session::handle(request& r) {
  if (r.op == session_op::hello) return handle_hello(r);
  if (state_ != state::ready)
    return reply(error_frame(r.id, errc::unauthorized, "send hello first"));
  switch (r.op) {
    case session_op::ping: {
      frame_builder b;
      begin_reply(b, "pong", r.id).end_object();
      return reply(b.finish());
    }
    case session_op::rooms:
    case session_op::search:
      return reply(error_frame(r.id, errc::unavailable, "this node has no read models yet"));
    default:
      break;
  }
  auto& c = r.cmd;
  c.user = user_;
  c.link = shared_from_this();
  if (c.op == room_op::join) joined_.insert(c.room.str());
  if (c.op == room_op::leave) joined_.erase(c.room.str());
  st_.rooms.dispatch(std::move(c));
}

void ws_session::handle_hello(request& r) {
  if (state_ == state::ready) return reply_error(r.id, errc::bad_request, "already said hello");
  std::optional<user_id> user;
  if (!st_.cfg.secret.empty()) {
    if (r.token.empty()) return reply(error_frame(r.id, errc::unauthorized, "a token is required"));
    using namespace std::chrono;
    auto now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
    user = verify_token(st_.cfg.secret, r.token, now);
    if (!user) return reply(error_frame(r.id, errc::unauthorized, "invalid or expired token"));
  } else {
    if (r.dev_user.empty())
      return reply(error_frame(r.id, errc::unauthorized, "this node is in dev mode: send 'user'"));
    if (!valid_name(r.dev_user))
      return reply_error(r.id, errc::bad_request,
                         "'user' must be 1 to 128 chars of [A-Za-z0-9_.:@-]");
    user = user_id{r.dev_user};
  }
  user_ = std::move(*user);
  state_ = state::ready;
  deadline_.cancel();
  frame_builder b;
  begin_reply(b, "welcome", r.id)
      .field("user", user_.str())
      .field("node", st_.cfg.node_id)
      .field("server", "kaiwa/" + st_.cfg.version)
      .end_object();
  reply(b.finish());
}

void ws_session::subscription_ended(const room_id& room) {
  joined_.erase(room.str());
  frame_builder b;
  b.json()
      .begin_object()
      .field("op", "left")
      .field("room", room.str())
      .field("reason", "kicked")
      .end_object();
  push(b.finish());
}

void ws_session::subscription_lost(const room_id& room) {
  // Events may have been missed: the client reconnects and resumes with `since`, like after a
  // drain.
  close(close_code::going_away, "the node of room " + room.str() + " went away");
}

// -- writing --------------------------------------------------------------------------------

void ws_session::reply(const frame_ptr& f) {
  if (state_ == state::closed || close_queued_) return;
  enqueue(f);
  last_reply_end_ = enqueued_total_;
}

void ws_session::push(const frame_ptr& f) {
  if (state_ == state::closed || close_queued_) return;
  auto size = f->wire().size();
  auto exempt = last_reply_end_ > written_total_ ? last_reply_end_ - written_total_ : 0;
  if (queued_bytes_ - std::min<std::uint64_t>(exempt, queued_bytes_) + size >
      st_.cfg.max_outbound_bytes) {
    st_.slow_consumers += 1;
    queue_.clear();  // what is not yet written is dropped; the client resumes with `since`
    queued_bytes_ = 0;
    for (auto& w : writing_) queued_bytes_ += w->wire().size();
    close(close_code::slow_consumer, "slow consumer");
    return;
  }
  enqueue(f);
}

void ws_session::enqueue(const frame_ptr& f) {
  lane_traffic::add(lane_.traffic.out_by_op[f->op()]);
  queued_bytes_ += f->wire().size();
  enqueued_total_ += f->wire().size();
  queue_.push_back(f);
  if (writing_.empty()) schedule_write();
}

void ws_session::schedule_write() {
  if (write_scheduled_) return;
  write_scheduled_ = true;
  lane_.to_flush.push_back(std::static_pointer_cast<ws_session>(shared_from_this()));
  if (!lane_.flush_posted) {
    lane_.flush_posted = true;
    asio::post(lane_.ioc, [&lane = lane_] { flush_lane(lane); });
  }
}

void ws_session::flush_lane(io_lane& lane) {
  auto sessions = std::move(lane.to_flush);
  lane.to_flush.clear();
  lane.flush_posted = false;
  for (auto& s : sessions) {
    s->write_scheduled_ = false;
    if (s->state_ != state::closed && s->writing_.empty() && !s->queue_.empty()) s->do_write();
  }
}

void ws_session::do_write() {
  writing_.swap(queue_);
  iov_.clear();
  for (auto& f : writing_) iov_.emplace_back(f->wire().data(), f->wire().size());
  lane_traffic::add(lane_.traffic.frames_out, writing_.size());
  asio::async_write(socket_, iov_,
                    [self = std::static_pointer_cast<ws_session>(shared_from_this())](
                        error_code ec, std::size_t) { self->on_write(ec); });
}

void ws_session::on_write(const error_code& ec) {
  for (auto& f : writing_) {
    queued_bytes_ -= f->wire().size();
    written_total_ += f->wire().size();
  }
  writing_.clear();
  if (ec) return teardown();
  if (read_paused_ && queued_bytes_ <= st_.cfg.max_outbound_bytes && state_ != state::closed) {
    read_paused_ = false;
    do_read();
  }
  if (!queue_.empty()) return do_write();
  if (close_queued_) {
    // Half-close and keep reading until the client hangs up (or the deadline): closing with
    // unread input would send a reset, and the client could lose our close frame.
    error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
}

void ws_session::close(close_code code, std::string_view reason) {
  if (state_ == state::closing || state_ == state::closed) return;
  state_ = state::closing;
  closed_by_us_ = true;
  close_reason_ = static_cast<std::uint8_t>(reason_index(code));
  st_.closes_by_reason[close_reason_].fetch_add(1, std::memory_order_relaxed);
  enqueue(close_frame(code, reason));  // past the outbound bound: it must go out
  close_queued_ = true;
  if (writing_.empty() && queue_.empty()) return teardown();
  deadline_.expires_after(close_handshake_limit);
  deadline_.async_wait(
      [self = std::static_pointer_cast<ws_session>(shared_from_this())](error_code ec) {
        if (!ec) self->teardown();
      });
}

void ws_session::teardown() {
  if (state_ == state::closed) return;
  if (!closed_by_us_) st_.closes_by_reason[0].fetch_add(1, std::memory_order_relaxed);
  state_ = state::closed;
  log(log_level::info, "connection_closed",
      {{"conn", id_},
       {"user", user_.str()},
       {"reason", close_reasons[close_reason_]},
       {"seconds",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - opened_at_).count()}});
  deadline_.cancel();
  error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  for (auto& room : joined_) {
    command c;
    c.op = room_op::disconnect;
    c.room = room_id{room};
    c.user = user_;
    c.link = shared_from_this();
    st_.rooms.dispatch(std::move(c));
  }
  joined_.clear();
  queue_.clear();
  lane_.sessions.erase(this);
  st_.session_ended();
}

}  // namespace kaiwa::net::detail

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
#include "read/read_side.hpp"

namespace kaiwa::net::detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::size_t initial_read_bytes = 512;
// A client that fills its read buffer gets a bigger one, up to this; one that sends little gets
// the small one back.
constexpr std::size_t max_read_bytes = 64 * 1024;
// Before its hello a connection is a stranger's: the largest message it may send is a hello
// (a token is at most 1024 bytes), and its read buffer stays small, so that connections that
// never say hello cost little memory (they used to hold a 64 KiB message and a 64 KiB read
// buffer each until the hello timeout).
constexpr std::size_t max_hello_bytes = 4096;
constexpr std::size_t padding = simdjson::SIMDJSON_PADDING;
constexpr int max_consecutive_errors = 10;
constexpr int max_consecutive_limited = 100;
// A refused message is skipped (not read into memory) up to this many times the message limit;
// beyond, the connection fails with 1009.
constexpr std::uint64_t skip_factor = 16;
// How long a connection that missed its ping has to take our close before it is dropped: it has
// been silent for ping_interval + ping_timeout already.
constexpr auto unresponsive_close_limit = std::chrono::seconds(1);

std::int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

ws_parser_limits parser_limits(const gateway_config& cfg) {
  ws_parser_limits l;
  l.max_message_bytes = std::min(max_hello_bytes, cfg.max_message_bytes);
  l.max_skip_bytes = skip_factor * cfg.max_message_bytes;
  l.padding = padding;
  return l;
}

}  // namespace

ws_session::ws_session(stream socket, connection_counts::slot address_slot, struct io_lane& l,
                       server_state& st, std::string_view already_read)
    : socket_(std::move(socket)),
      address_slot_(std::move(address_slot)),
      lane_(l),
      st_(st),
      deadline_(l.ioc),
      liveness_(l.ioc),
      parser_(parser_limits(st.cfg)) {
  resize_read_buffer(std::max(initial_read_bytes, already_read.size()));
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
  opened_at_ = last_rx_ = std::chrono::steady_clock::now();
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
  arm_liveness(st_.cfg.ping_interval);
  pump();
}

void ws_session::post(std::function<void()> fn) { asio::post(lane_.ioc, std::move(fn)); }

// -- reading --------------------------------------------------------------------------------

void ws_session::resize_read_buffer(std::size_t cap) {
  // Only with nothing unparsed in it and no read in flight.
  rbuf_ = std::make_unique<char[]>(cap + padding);
  rcap_ = cap;
}

void ws_session::do_read() {
  if (rlen_ == 0) {
    if (last_read_ == rcap_ && rcap_ < max_read_bytes && state_ == state::ready)
      resize_read_buffer(std::min(rcap_ * 2, max_read_bytes));
    else if (rcap_ > initial_read_bytes && last_read_ < rcap_ / 8)
      resize_read_buffer(initial_read_bytes);
  }
  reading_ = true;
  socket_.async_read_some(asio::buffer(rbuf_.get() + rlen_, rcap_ - rlen_),
                          [self = std::static_pointer_cast<ws_session>(shared_from_this())](
                              error_code ec, std::size_t n) { self->on_read(ec, n); });
}

void ws_session::on_read(const error_code& ec, std::size_t n) {
  reading_ = false;
  if (ec) return teardown();
  if (state_ == state::closed) return;
  last_read_ = n;
  if (state_ == state::closing) {
    rlen_ = 0;  // after our close frame: discard until the client hangs up
    return do_read();
  }
  rlen_ += n;
  last_rx_ = std::chrono::steady_clock::now();
  pump();
}

bool ws_session::input_allowed() const noexcept {
  return queued_bytes_ <= st_.cfg.max_outbound_bytes && pending_ < st_.cfg.max_pending_requests;
}

void ws_session::pump() {
  if (reading_ || processing_ || state_ == state::closing || state_ == state::closed) return;
  if (rlen_ > 0 && input_allowed()) process_frames();
  if (state_ == state::closing || state_ == state::closed) return;
  if (!input_allowed()) {
    // A client that doesn't read its replies, or keeps too many requests pending, stops being
    // read: its requests wait in TCP, and in rbuf_ what was read already.
    if (!read_paused_) st_.read_pauses.fetch_add(1, std::memory_order_relaxed);
    read_paused_ = true;
    return;
  }
  read_paused_ = false;
  do_read();
}

void ws_session::process_frames() {
  processing_ = true;
  auto frames_before = parser_.frames();
  std::size_t pos = 0;
  while (pos < rlen_ && (state_ == state::awaiting_hello || state_ == state::ready) &&
         input_allowed()) {
    auto e = parser_.next(rbuf_.get() + pos, rlen_ - pos);
    pos += e.consumed;
    on_event(e);
  }
  lane_traffic::add(lane_.traffic.frames_in, parser_.frames() - frames_before);
  if (state_ == state::closing || state_ == state::closed) {
    rlen_ = 0;
  } else if (pos > 0) {
    std::memmove(rbuf_.get(), rbuf_.get() + pos, rlen_ - pos);
    rlen_ -= pos;
  }
  processing_ = false;
}

void ws_session::on_event(const ws_event& e) {
  switch (e.kind) {
    case ws_event_kind::need_more:
      return;
    case ws_event_kind::text:
      return on_text(e.payload);
    case ws_event_kind::ping:
      if (charge()) respond(pong_frame(e.payload));
      return;
    case ws_event_kind::pong:
      charge();  // liveness was noted when it was read
      return;
    case ws_event_kind::close:
      return close(close_code::normal, "");
    case ws_event_kind::rejected:
      return on_refused(e.rejection);
    case ws_event_kind::fail:
      switch (e.code) {
        case 1007:
          return close(close_code::invalid_payload, e.payload);
        case 1009:
          return close(close_code::message_too_big, e.payload);
        default:
          return close(close_code::protocol_error, e.payload);
      }
  }
}

void ws_session::on_refused(ws_rejection why) {
  st_.refused_messages[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
  if (why == ws_rejection::invalid_utf8) {
    // RFC 6455 (8.1) fails the connection on text that is not UTF-8, with 1007; PROTOCOL.md
    // promises the bad_request error, so it goes first and the client learns why.
    respond(error_frame("", errc::bad_request, "text is not valid UTF-8"));
    return close(close_code::invalid_payload, "text is not valid UTF-8");
  }
  if (!charge()) return;
  switch (why) {
    case ws_rejection::too_large:
      return reply_error("", errc::too_large, "message is over the size limit");
    case ws_rejection::binary:
      return reply_error("", errc::bad_request, "binary frames are not supported; send JSON text");
    case ws_rejection::invalid_utf8:
      break;  // above
  }
}

// -- liveness -------------------------------------------------------------------------------

void ws_session::arm_liveness(std::chrono::steady_clock::duration after) {
  liveness_.expires_after(after);
  liveness_.async_wait(
      [self = std::static_pointer_cast<ws_session>(shared_from_this())](error_code ec) {
        if (!ec) self->on_liveness();
      });
}

void ws_session::on_liveness() {
  if (state_ == state::closing || state_ == state::closed) return;
  const auto& cfg = st_.cfg;
  if (read_paused_) {
    // Not reading, we can't hear pongs. A client whose queue is over the bound and didn't
    // drain at all since the last check is not reading either: it is a slow consumer.
    if (queued_bytes_ > cfg.max_outbound_bytes && written_total_ == written_at_check_) {
      st_.slow_consumers += 1;
      return overflow("not reading");
    }
    // Paused by unanswered requests, and not one answer for a whole interval: the rooms lost
    // them (this should not happen). Reconnecting is the client's way out, as after a drain.
    if (pending_ >= cfg.max_pending_requests && answers_ == answers_at_check_) {
      log(log_level::warn, "requests_unanswered", {{"conn", id_}, {"pending", pending_}});
      return close(close_code::going_away, "requests unanswered");
    }
    written_at_check_ = written_total_;
    answers_at_check_ = answers_;
    ping_outstanding_ = false;
    return arm_liveness(cfg.ping_interval);
  }
  auto now = std::chrono::steady_clock::now();
  if (ping_outstanding_ && last_rx_ <= ping_sent_at_) {
    return close(close_code::ping_timeout, "no answer to ping",
                 std::min<std::chrono::milliseconds>(cfg.ping_timeout, unresponsive_close_limit));
  }
  ping_outstanding_ = false;
  auto idle = now - last_rx_;
  if (idle < cfg.ping_interval) return arm_liveness(cfg.ping_interval - idle);
  st_.pings_sent.fetch_add(1, std::memory_order_relaxed);
  respond(ping_frame());
  ping_outstanding_ = true;
  ping_sent_at_ = now;
  arm_liveness(cfg.ping_timeout);
}

// -- requests -------------------------------------------------------------------------------

void ws_session::reply_error(std::string_view id, errc code, std::string_view message) {
  respond(error_frame(id, code, message));
  if (code == errc::bad_request || code == errc::too_large) {
    if (++consecutive_errors_ >= max_consecutive_errors)
      close(close_code::protocol_abuse, "too many bad requests");
  }
}

bool ws_session::charge() {
  if (take_token()) return true;
  if (++consecutive_limited_ >= max_consecutive_limited)
    close(close_code::rate_limited, "rate limit exceeded repeatedly");
  return false;
}

bool ws_session::take_token() {
  if (st_.cfg.rate_limit == 0) return true;
  auto now = now_us();
  std::int64_t cap = std::int64_t{st_.cfg.rate_limit} * 2000;
  // Two seconds refill the bucket; counting no more keeps the product far from overflowing
  // (an hour's silence times a rate limit near 2^32 would not fit in 63 bits).
  auto elapsed_us = std::min<std::int64_t>(now - last_refill_us_, 2'000'000);
  tokens_milli_ = std::min(cap, tokens_milli_ + elapsed_us * st_.cfg.rate_limit / 1000);
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
    case session_op::directory:
      return 4;
    case session_op::room:  // join .. presence; the admin-only ops never come from a client
      return std::min<std::size_t>(5 + static_cast<std::size_t>(r.cmd.op), request_ops.size() - 1);
  }
  return request_ops.size() - 1;
}

/// The reply to a read query (docs/protocol.md): rooms, directory or results, or the error.
frame_ptr query_frame(std::string_view id, read::query_kind kind, const read::query_reply& r) {
  if (r.error) return error_frame(id, r.error->code, r.error->message);
  auto next = read::continue_key(r.result);
  if (r.result.more && !next)
    // A query that stopped at its work bound before it decided anything (a single CJK
    // character over many shards): an empty page would read as "nothing found".
    return error_frame(id, errc::timeout,
                       "the query stopped at its work bound before it could answer "
                       "(--search-max-steps): add characters or a room filter");
  const char* op = kind == read::query_kind::rooms       ? "rooms"
                   : kind == read::query_kind::directory ? "directory"
                                                         : "results";
  std::size_t bytes = 64;
  for (auto& it : r.result.items) bytes += it.json.size() + 1;
  frame_builder b(frame_builder::opcode::text, bytes);
  auto& w = begin_reply(b, op, id);
  w.key(kind == read::query_kind::search ? "hits" : "rooms").begin_array();
  for (auto& it : r.result.items) w.raw(it.json);
  w.end_array().field("more", next.has_value());
  if (next) w.field("next", read::encode_cursor(*next));
  if (r.partial) w.field("partial", true);
  w.end_object();
  return b.finish();
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
    case close_code::invalid_payload:
      return 8;
    case close_code::message_too_big:
      return 9;
    case close_code::ping_timeout:
      return 10;
  }
  return 0;
}

}  // namespace

void ws_session::on_text(std::string_view payload) {
  // The payload has SIMDJSON_PADDING readable bytes past its end: inside rbuf_ (allocated with
  // them) or in the parser's buffer.
  auto parsed = parse_request(payload, true);
  lane_traffic::add(
      lane_.traffic.requests_by_op[parsed.req ? op_index(*parsed.req) : request_ops.size() - 1]);
  if (parsed.err) return reply_error(parsed.err->id, parsed.err->code, parsed.err->message);
  auto& r = *parsed.req;
  if (!charge()) {
    respond(error_frame(r.id, errc::rate_limited, "too many requests; slow down"));
    return;
  }
  consecutive_limited_ = 0;
  consecutive_errors_ = 0;
  handle(r);
}

void ws_session::handle(request& r) {
  if (r.op == session_op::hello) return handle_hello(r);
  if (state_ != state::ready)
    return respond(error_frame(r.id, errc::unauthorized, "send hello first"));
  switch (r.op) {
    case session_op::ping: {
      frame_builder b;
      begin_reply(b, "pong", r.id).end_object();
      return respond(b.finish());
    }
    case session_op::rooms:
    case session_op::directory:
    case session_op::search: {
      // Answered on a query thread (they read RocksDB); the reply comes back to this lane like
      // a room's, and counts as pending like a room's request (--max-pending-requests), and as
      // one of the connection's queries (--max-pending-queries).
      if (queries_ >= st_.cfg.max_pending_queries)
        return respond(error_frame(r.id, errc::rate_limited,
                                   "this connection has " +
                                       std::to_string(st_.cfg.max_pending_queries) +
                                       " queries unanswered (--max-pending-queries): wait for "
                                       "their replies"));
      r.query.user = user_;
      pending_ += 1;
      queries_ += 1;
      auto kind = r.query.kind;
      auto self = std::static_pointer_cast<ws_session>(shared_from_this());
      st_.read.query(std::move(r.query),
                     [self = std::move(self), id = std::move(r.id), kind](read::query_reply q) {
                       self->post([self, f = query_frame(id, kind, q)] {
                         self->queries_ -= 1;
                         self->reply(f);
                       });
                     });
      return;
    }
    case session_op::hello:
    case session_op::room:
      break;
  }
  auto& c = r.cmd;
  if (c.op == room_op::join && joined_.size() >= st_.cfg.max_rooms_per_connection &&
      !joined_.contains(c.room.str())) {
    st_.joins_refused.fetch_add(1, std::memory_order_relaxed);
    return reply_error(r.id, errc::bad_request,
                       "this connection is subscribed to the most rooms it may be (" +
                           std::to_string(st_.cfg.max_rooms_per_connection) + ")");
  }
  c.user = user_;
  c.link = shared_from_this();
  if (c.op == room_op::join) joined_.insert(c.room.str());
  if (c.op == room_op::leave) joined_.erase(c.room.str());
  // Every room op but typing is answered exactly once (with a reply frame other than an event).
  if (c.op != room_op::typing) pending_ += 1;
  st_.rooms.dispatch(std::move(c));
}

void ws_session::handle_hello(request& r) {
  if (state_ == state::ready) return reply_error(r.id, errc::bad_request, "already said hello");
  std::optional<user_id> user;
  auto keys = st_.token_keys_now();
  if (!keys->empty()) {
    if (r.token.empty())
      return respond(error_frame(r.id, errc::unauthorized, "a token is required"));
    using namespace std::chrono;
    auto now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
    user = verify_token(*keys, r.token, now);
    if (!user) return respond(error_frame(r.id, errc::unauthorized, "invalid or expired token"));
  } else {
    if (r.dev_user.empty())
      return respond(
          error_frame(r.id, errc::unauthorized, "this node is in dev mode: send 'user'"));
    if (!valid_name(r.dev_user))
      return reply_error(r.id, errc::bad_request,
                         "'user' must be 1 to 128 chars of [A-Za-z0-9_.:@-]");
    user = user_id{r.dev_user};
  }
  auto slot = st_.by_user.take(user->str(), st_.cfg.max_connections_per_user);
  if (!slot) {
    st_.refused_by_user.fetch_add(1, std::memory_order_relaxed);
    respond(error_frame(r.id, errc::rate_limited,
                        "this user has the most connections a user may have (" +
                            std::to_string(st_.cfg.max_connections_per_user) +
                            "); close one first"));
    return close(close_code::rate_limited, "too many connections for this user");
  }
  user_slot_ = std::move(*slot);
  user_ = std::move(*user);
  state_ = state::ready;
  st_.sessions_by_user.add(user_.str(), shared_from_this());
  parser_.raise_max_message_bytes(st_.cfg.max_message_bytes);
  deadline_.cancel();
  frame_builder b;
  begin_reply(b, "welcome", r.id)
      .field("user", user_.str())
      .field("node", st_.cfg.node_id)
      .field("server", "kaiwa/" + st_.cfg.version)
      .end_object();
  respond(b.finish());
}

void ws_session::subscription_ended(const room_id& room, std::string_view reason) {
  joined_.erase(room.str());
  frame_builder b;
  b.json()
      .begin_object()
      .field("op", "left")
      .field("room", room.str())
      .field("reason", reason)
      .end_object();
  push(b.finish());
}

void ws_session::subscription_lost(const room_id& room) {
  // Events may have been missed: the client reconnects and resumes with `since`, like after a
  // drain.
  close(close_code::going_away, "the node of room " + room.str() + " went away");
}

// -- writing --------------------------------------------------------------------------------

static_assert(frame_ops[0] == "event");

void ws_session::reply(const frame_ptr& f) {
  // A room's answer: everything but the events of a join's backfill ends a pending request.
  if (f->op() != 0 && pending_ > 0) {
    pending_ -= 1;
    answers_ += 1;
  }
  respond(f);
  if (read_paused_) pump();
}

void ws_session::respond(const frame_ptr& f) {
  if (state_ == state::closed || close_queued_) return;
  if (queued_bytes_ + f->wire().size() > st_.cfg.max_queued_bytes) {
    st_.slow_consumers += 1;
    return overflow("slow consumer: too much queued");
  }
  enqueue(f);
  last_reply_end_ = enqueued_total_;
}

void ws_session::push(const frame_ptr& f) {
  if (state_ == state::closed || close_queued_) return;
  auto size = f->wire().size();
  auto exempt = last_reply_end_ > written_total_ ? last_reply_end_ - written_total_ : 0;
  if (queued_bytes_ - std::min<std::uint64_t>(exempt, queued_bytes_) + size >
          st_.cfg.max_outbound_bytes ||
      queued_bytes_ + size > st_.cfg.max_queued_bytes) {
    st_.slow_consumers += 1;
    return overflow("slow consumer");
  }
  enqueue(f);
}

void ws_session::overflow(std::string_view why) {
  queue_.clear();  // what is not yet written is dropped; the client resumes with `since`
  queued_bytes_ = 0;
  for (auto& w : writing_) queued_bytes_ += w->wire().size();
  close(close_code::slow_consumer, why);
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
  if (read_paused_) pump();
  if (!queue_.empty()) return do_write();
  if (close_queued_) {
    // Half-close and keep reading until the client hangs up (or the deadline): closing with
    // unread input would send a reset, and the client could lose our close frame.
    error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
}

void ws_session::close(close_code code, std::string_view reason, std::chrono::milliseconds limit) {
  if (state_ == state::closing || state_ == state::closed) return;
  state_ = state::closing;
  closed_by_us_ = true;
  close_reason_ = static_cast<std::uint8_t>(reason_index(code));
  st_.closes_by_reason[close_reason_].fetch_add(1, std::memory_order_relaxed);
  enqueue(close_frame(code, reason));  // past the outbound bound: it must go out
  close_queued_ = true;
  if (writing_.empty() && queue_.empty()) return teardown();
  liveness_.cancel();
  deadline_.expires_after(limit);
  deadline_.async_wait(
      [self = std::static_pointer_cast<ws_session>(shared_from_this())](error_code ec) {
        if (!ec) self->teardown();
      });
  // Read on (and discard) until the client hangs up, also when input was paused. Posted: this
  // may run inside process_frames, which still uses rbuf_.
  asio::post(lane_.ioc, [self = std::static_pointer_cast<ws_session>(shared_from_this())] {
    if (self->state_ == state::closing && !self->reading_) {
      self->rlen_ = 0;
      self->do_read();
    }
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
  liveness_.cancel();
  error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  address_slot_.release();
  user_slot_.release();
  if (!user_.empty()) st_.sessions_by_user.remove(user_.str(), this);
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

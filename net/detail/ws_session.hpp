#pragma once
// One client WebSocket connection after the handshake. Internal to net/.
//
// Kaiwa reads and writes RFC 6455 frames itself on the connection (Beast only does the HTTP
// upgrade): server frames are pre-encoded and shared (core/frame.hpp), and everything queued
// is written with one gather write, control frames (pong, close) in the same queue so they
// stay ordered with the data frames.
//
// Runs entirely on its lane's thread; owned by shared_ptrs held by its pending I/O handlers and
// by the rooms it is subscribed to (which drop it when it disconnects).

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "actors/client_link.hpp"
#include "core/errc.hpp"
#include "net/detail/server_state.hpp"
#include "net/detail/stream.hpp"
#include "net/ws_parser.hpp"

namespace kaiwa::net::detail {

struct request;

class ws_session final : public client_link {
 public:
  /// `address_slot`: the connection's place in its source address's count, held until teardown.
  ws_session(stream socket, connection_counts::slot address_slot, io_lane& l, server_state& st,
             std::string_view already_read);
  ~ws_session() override;

  /// Starts reading, the hello deadline and the liveness checks. Lane thread.
  void start();
  /// Queues a close frame and ends the connection once it is written and the client hung up,
  /// or after `limit`. Lane thread.
  void close(close_code code, std::string_view reason,
             std::chrono::milliseconds limit = std::chrono::seconds(10));

  // -- client_link ------------------------------------------------------------------------

  void post(std::function<void()> fn) override;
  const void* lane() const noexcept override { return &lane_; }
  void push(const frame_ptr& f) override;
  void reply(const frame_ptr& f) override;
  void subscription_ended(const room_id& room, std::string_view reason) override;
  void subscription_lost(const room_id& room) override;

 private:
  enum class state : std::uint8_t { awaiting_hello, ready, closing, closed };

  void do_read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  /// Parses the unparsed input and reads more, while the client's queue and pending requests
  /// allow (backpressure); otherwise leaves them waiting in the buffer and in TCP.
  void pump();
  bool input_allowed() const noexcept;
  /// Handles the events of the buffered input until it is used up or input is not allowed.
  void process_frames();
  void on_event(const ws_event& e);
  void on_text(std::string_view payload);
  void on_refused(ws_rejection why);
  void handle(request& r);
  void handle_hello(request& r);
  void reply_error(std::string_view id, errc code, std::string_view message);
  /// Charges one unit to the rate limit: false when over it (and close 4008 when that repeats).
  bool charge();
  bool take_token();
  void arm_liveness(std::chrono::steady_clock::duration after);
  void on_liveness();

  /// Queues what the session answers itself (not counted as a room's answer).
  void respond(const frame_ptr& f);
  /// Closes with 4009, dropping what is queued and not yet being written.
  void overflow(std::string_view why);
  void enqueue(const frame_ptr& f);
  void schedule_write();
  static void flush_lane(io_lane& lane);
  void do_write();
  void on_write(const boost::system::error_code& ec);
  void teardown();

  void resize_read_buffer(std::size_t cap);

  stream socket_;  // TCP, or TLS over it
  // Places in the per-address and per-user counts, given back at teardown (the object itself
  // may live on a little in the rooms' hands).
  connection_counts::slot address_slot_;
  connection_counts::slot user_slot_;
  io_lane& lane_;
  server_state& st_;
  boost::asio::steady_timer deadline_;  // hello timeout, then the close handshake limit
  boost::asio::steady_timer liveness_;  // ping when idle, close when the ping goes unanswered
  state state_ = state::awaiting_hello;
  user_id user_;

  // Read side: the parser unmasks in place; a whole text frame is handled inside rbuf_.
  ws_parser parser_;
  std::unique_ptr<char[]> rbuf_;
  std::size_t rcap_ = 0;        // usable bytes (the allocation has SIMDJSON padding beyond)
  std::size_t rlen_ = 0;        // bytes not yet parsed: non-zero only while input is paused
  std::size_t last_read_ = 0;   // size of the last read, to size the next
  bool reading_ = false;        // a read is in flight
  bool processing_ = false;     // inside process_frames (replies it makes must not re-enter)
  bool read_paused_ = false;    // input waits: the queue or the pending requests are too big
  std::uint32_t pending_ = 0;   // requests sent to rooms and not yet answered
  std::uint32_t queries_ = 0;   // read queries handed to the read side and not yet answered
  int consecutive_errors_ = 0;  // bad requests in a row, for close 4000

  // Liveness: any frame from the client counts.
  std::chrono::steady_clock::time_point last_rx_;
  std::chrono::steady_clock::time_point ping_sent_at_;
  bool ping_outstanding_ = false;
  std::uint64_t written_at_check_ = 0;  // written_total_ at the last check while paused
  std::uint64_t answers_ = 0;           // room answers received, and at the last check
  std::uint64_t answers_at_check_ = 0;

  // Rate limit: a token bucket in thousandths of a request.
  std::int64_t tokens_milli_ = 0;
  std::int64_t last_refill_us_ = 0;
  int consecutive_limited_ = 0;

  // Write side.
  std::vector<frame_ptr> queue_;    // waiting
  std::vector<frame_ptr> writing_;  // in the current gather write
  std::vector<boost::asio::const_buffer> iov_;
  std::size_t queued_bytes_ = 0;  // queue_ + writing_
  // Replies are exempt from the slow-consumer bound. Writes are FIFO, so the exempt bytes still
  // queued are at most those enqueued up to the last reply minus everything written since.
  std::uint64_t enqueued_total_ = 0;
  std::uint64_t written_total_ = 0;
  std::uint64_t last_reply_end_ = 0;  // enqueued_total_ just after the last reply
  bool close_queued_ = false;
  bool closed_by_us_ = false;      // close() ran: the close is counted under its reason
  std::uint8_t close_reason_ = 0;  // index into close_reasons
  std::uint64_t id_ = 0;           // for the logs
  std::chrono::steady_clock::time_point opened_at_;
  bool write_scheduled_ = false;  // in lane_.to_flush

  std::unordered_set<std::string> joined_;  // rooms this connection is subscribed to
};

}  // namespace kaiwa::net::detail

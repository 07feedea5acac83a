#pragma once
// One client WebSocket connection after the handshake. Internal to net/.
//
// Kaiwa reads and writes RFC 6455 frames itself on the TCP socket (Beast only does the HTTP
// upgrade): server frames are pre-encoded and shared (core/frame.hpp), and everything queued
// is written with one gather write, control frames (pong, close) in the same queue so they
// stay ordered with the data frames.
//
// Runs entirely on its lane's thread; owned by shared_ptrs held by its pending I/O handlers and
// by the rooms it is subscribed to (which drop it when it disconnects).

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "actors/client_link.hpp"
#include "core/errc.hpp"
#include "net/detail/server_state.hpp"

namespace kaiwa::net::detail {

struct request;

class ws_session final : public client_link {
 public:
  ws_session(boost::asio::ip::tcp::socket socket, io_lane& l, server_state& st,
             std::string_view already_read);
  ~ws_session() override;

  /// Starts reading and the hello deadline. Lane thread.
  void start();
  /// Queues a close frame and ends the connection once it is written. Lane thread.
  void close(close_code code, std::string_view reason);

  // -- client_link ------------------------------------------------------------------------

  void post(std::function<void()> fn) override;
  const void* lane() const noexcept override { return &lane_; }
  void push(const frame_ptr& f) override;
  void reply(const frame_ptr& f) override;
  void subscription_ended(const room_id& room) override;
  void subscription_lost(const room_id& room) override;

 private:
  enum class state : std::uint8_t { awaiting_hello, ready, closing, closed };

  void do_read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  /// Handles every complete frame in the read buffer; false when the session is closing.
  bool process_frames();
  void on_text(std::string_view payload, bool padded);
  void handle(request& r);
  void handle_hello(request& r);
  void reply_error(std::string_view id, errc code, std::string_view message);
  bool take_token();

  void enqueue(const frame_ptr& f);
  void schedule_write();
  static void flush_lane(io_lane& lane);
  void do_write();
  void on_write(const boost::system::error_code& ec);
  void teardown();

  void ensure_capacity(std::size_t needed);

  boost::asio::ip::tcp::socket socket_;
  io_lane& lane_;
  server_state& st_;
  boost::asio::steady_timer deadline_;  // hello timeout, then the close handshake limit
  state state_ = state::awaiting_hello;
  user_id user_;

  // Read side: frames are parsed and unmasked in place.
  std::unique_ptr<char[]> rbuf_;
  std::size_t rcap_ = 0;  // usable bytes (the allocation has SIMDJSON padding beyond)
  std::size_t rlen_ = 0;
  std::uint64_t skip_ = 0;  // payload bytes of an oversized frame still to discard
  std::string fragments_;   // a fragmented text message being assembled
  bool in_fragmented_ = false;
  bool discard_message_ = false;  // drop the continuation frames of a rejected message
  int consecutive_errors_ = 0;    // bad requests in a row, for close 4000

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
  bool read_paused_ = false;          // reading stops while replies pile up (backpressure)
  bool close_queued_ = false;
  bool closed_by_us_ = false;      // close() ran: the close is counted under its reason
  std::uint8_t close_reason_ = 0;  // index into close_reasons
  std::uint64_t id_ = 0;           // for the logs
  std::chrono::steady_clock::time_point opened_at_;
  bool write_scheduled_ = false;  // in lane_.to_flush

  std::unordered_set<std::string> joined_;  // rooms this connection is subscribed to
};

}  // namespace kaiwa::net::detail

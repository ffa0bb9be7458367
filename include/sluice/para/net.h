// para networking: the network partitioned by flow. Every reactor opens its own listening socket
// on the same port with SO_REUSEPORT, so the kernel spreads connections over the partitions by
// flow hash, and sets SO_INCOMING_CPU to its core so that, where the kernel honours it, a flow
// lands on the partition whose core handled its interrupts. accept, recv and send go through the
// reactor's io_uring; a connection never leaves the partition that accepted it.
//
//   SLUICE_CO_ASSIGN_OR_RETURN(para::TcpListener l, para::TcpListener::bind({.port = 8080}));
//   co_await para::serve_http(l, {}, &stats, &token);
//
// Thread safety: listeners and streams are reactor-local (created, used and closed on one
// reactor). HttpStats counters are written by one reactor and may be read from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "sluice/common/result.h"
#include "sluice/para/reactor.h"
#include "sluice/para/task.h"

namespace sluice::para {

struct ListenOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port (then every other partition binds the one chosen)
  bool reuse_port = true;
  int incoming_cpu = -1;  // set SO_INCOMING_CPU to this core (-1: this reactor's core)
  int backlog = 1024;
};

class TcpStream {
 public:
  TcpStream() = default;
  explicit TcpStream(int fd) : fd_(fd) {}
  TcpStream(TcpStream&& o) noexcept;
  TcpStream& operator=(TcpStream&& o) noexcept;
  ~TcpStream();

  // Bytes received (0 at end of stream) or an error; kCancelled on cancel / stop.
  Task<Result<size_t>> recv(std::span<std::byte> buf, CancelToken* token = nullptr);
  // Sends all of `buf` (several sends if the kernel takes less).
  Task<Status> send_all(std::span<const std::byte> buf, CancelToken* token = nullptr);
  int fd() const { return fd_; }
  void close();

 private:
  int fd_ = -1;
};

class TcpListener {
 public:
  TcpListener() = default;
  TcpListener(TcpListener&& o) noexcept;
  TcpListener& operator=(TcpListener&& o) noexcept;
  ~TcpListener();

  // socket + SO_REUSEPORT (+ SO_INCOMING_CPU) + bind + listen. Errors: address in use (another
  // program holds the port without SO_REUSEPORT), permission denied, bad address.
  static Result<TcpListener> bind(const ListenOptions& options);
  Task<Result<TcpStream>> accept(CancelToken* token = nullptr);

  uint16_t port() const { return port_; }
  bool incoming_cpu_set() const { return incoming_cpu_set_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  bool incoming_cpu_set_ = false;
};

struct HttpOptions {
  std::string body = "Hello from sluice para\n";
  size_t max_request = 16 * 1024;  // bytes of headers before the connection is closed
};

struct HttpStats {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> closed{0};  // connections whose task ended; open = connections - closed
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> bad_requests{0};
};

// An HTTP/1.1 keep-alive server returning `options.body` with 200 OK to every request (pipelined
// requests included); closes on "Connection: close", HTTP/1.0 without keep-alive, a malformed or
// oversized request, or end of stream. Runs until the token is cancelled or the runtime stops;
// each connection is a task on this reactor.
Task<void> serve_http(TcpListener& listener, const HttpOptions& options, HttpStats* stats,
                      CancelToken* token);

// Parses the head of one request at the start of `data`. Returns its length (through the blank
// line) and whether the connection stays open after it, 0 when incomplete, or an error.
struct HttpRequestHead {
  size_t length = 0;
  bool keep_alive = true;
};
Result<HttpRequestHead> parse_http_request(std::string_view data);

}  // namespace sluice::para

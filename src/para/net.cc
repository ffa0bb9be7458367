#include "sluice/para/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>
#include <vector>

#include "sluice/common/log.h"

namespace sluice::para {
namespace {

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size())
    return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

bool contains_token(std::string_view value, std::string_view token) {
  std::string lower(value);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find(token) != std::string::npos;
}

}  // namespace

// --- TcpStream ---

TcpStream::TcpStream(TcpStream&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
TcpStream& TcpStream::operator=(TcpStream&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}
TcpStream::~TcpStream() {
  close();
}
void TcpStream::close() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

Task<Result<size_t>> TcpStream::recv(std::span<std::byte> buf, CancelToken* token) {
  const int fd = fd_;
  void* p = buf.data();
  const size_t n = buf.size();
  const int32_t rc =
      co_await io([=](io_uring_sqe* sqe) { io_uring_prep_recv(sqe, fd, p, n, 0); }, token);
  if (rc == -ECANCELED)
    co_return cancelled("recv cancelled");
  if (rc < 0)
    co_return errno_status(-rc, "recv");
  co_return static_cast<size_t>(rc);
}

Task<Status> TcpStream::send_all(std::span<const std::byte> buf, CancelToken* token) {
  const int fd = fd_;
  size_t done = 0;
  while (done < buf.size()) {
    const void* p = buf.data() + done;
    const size_t n = buf.size() - done;
    const int32_t rc = co_await io(
        [=](io_uring_sqe* sqe) { io_uring_prep_send(sqe, fd, p, n, MSG_NOSIGNAL); }, token);
    if (rc == -ECANCELED)
      co_return cancelled("send cancelled");
    if (rc < 0)
      co_return errno_status(-rc, "send");
    done += static_cast<size_t>(rc);
  }
  co_return Status();
}

// --- TcpListener ---

TcpListener::TcpListener(TcpListener&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), port_(o.port_), incoming_cpu_set_(o.incoming_cpu_set_) {}
TcpListener& TcpListener::operator=(TcpListener&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    port_ = o.port_;
    incoming_cpu_set_ = o.incoming_cpu_set_;
  }
  return *this;
}
TcpListener::~TcpListener() {
  if (fd_ >= 0)
    ::close(fd_);
}

Result<TcpListener> TcpListener::bind(const ListenOptions& options) {
  TcpListener l;
  l.fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l.fd_ < 0)
    return errno_status(errno, "socket");
  int one = 1;
  setsockopt(l.fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (options.reuse_port && setsockopt(l.fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    return errno_status(errno, "setsockopt SO_REUSEPORT");
  }
  int cpu = options.incoming_cpu;
  if (cpu < 0) {
    Reactor* r = this_reactor();
    cpu = r != nullptr ? r->core() : -1;
  }
  if (cpu >= 0) {
    l.incoming_cpu_set_ = setsockopt(l.fd_, SOL_SOCKET, SO_INCOMING_CPU, &cpu, sizeof(cpu)) == 0;
    if (!l.incoming_cpu_set_) {
      SLUICE_LOG(debug, "para: SO_INCOMING_CPU {} refused: {}", cpu, std::strerror(errno));
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options.port);
  if (inet_pton(AF_INET, options.address.c_str(), &addr.sin_addr) != 1) {
    return invalid_argument("listen address '" + options.address + "' is not an IPv4 address");
  }
  if (::bind(l.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return errno_status(
        errno, "bind " + options.address + ":" + std::to_string(options.port) +
                   (errno == EADDRINUSE ? " (in use by a socket without SO_REUSEPORT?)" : ""));
  }
  if (::listen(l.fd_, options.backlog) != 0)
    return errno_status(errno, "listen");
  socklen_t len = sizeof(addr);
  getsockname(l.fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  l.port_ = ntohs(addr.sin_port);
  return l;
}

Task<Result<TcpStream>> TcpListener::accept(CancelToken* token) {
  const int fd = fd_;
  const int32_t rc = co_await io(
      [=](io_uring_sqe* sqe) { io_uring_prep_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC); },
      token);
  if (rc == -ECANCELED)
    co_return cancelled("accept cancelled");
  if (rc < 0)
    co_return errno_status(-rc, "accept");
  int one = 1;
  setsockopt(rc, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  co_return TcpStream(rc);
}

// --- HTTP ---

Result<HttpRequestHead> parse_http_request(std::string_view data) {
  const size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos)
    return HttpRequestHead{0, true};
  HttpRequestHead head;
  head.length = end + 4;
  const std::string_view block = data.substr(0, end);
  const size_t line_end = block.find("\r\n");
  const std::string_view request_line = block.substr(0, line_end);
  const size_t sp1 = request_line.find(' ');
  const size_t sp2 = request_line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) {
    return invalid_argument("malformed HTTP request line");
  }
  const std::string_view version = request_line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return invalid_argument("unsupported HTTP version");
  }
  head.keep_alive = version == "HTTP/1.1";
  size_t pos = line_end == std::string_view::npos ? block.size() : line_end + 2;
  while (pos < block.size()) {
    size_t next = block.find("\r\n", pos);
    if (next == std::string_view::npos)
      next = block.size();
    const std::string_view line = block.substr(pos, next - pos);
    if (iequals_prefix(line, "connection:")) {
      const std::string_view v = line.substr(11);
      if (contains_token(v, "close"))
        head.keep_alive = false;
      if (contains_token(v, "keep-alive"))
        head.keep_alive = true;
    } else if (iequals_prefix(line, "content-length:") ||
               iequals_prefix(line, "transfer-encoding:")) {
      // This server answers requests without bodies only.
      const std::string_view v = line.substr(line.find(':') + 1);
      if (v.find_first_not_of(" 0") != std::string_view::npos) {
        return invalid_argument("request bodies are not supported");
      }
    }
    pos = next + 2;
  }
  return head;
}

namespace {

// Sends `len` bytes at `src` with awaited sends until all went out; false on failure.
Task<bool> send_all_raw(int fd, const char* src, size_t len, CancelToken* token) {
  for (size_t sent = 0; sent < len;) {
    const char* p = src + sent;
    const size_t n = len - sent;
    const int32_t w = co_await io(
        [=](io_uring_sqe* sqe) { io_uring_prep_send(sqe, fd, p, n, MSG_NOSIGNAL); }, token);
    if (w <= 0)
      co_return false;
    sent += static_cast<size_t>(w);
  }
  co_return true;
}

Task<void> serve_connection(TcpStream stream, const std::string* response, size_t max_request,
                            HttpStats* stats, CancelToken* token) {
  std::vector<std::byte> buf(std::max<size_t>(max_request, 4096));
  size_t have = 0;
  std::string out;
  // The answer to the last batch of requests, sent linked ahead of the next recv: one
  // submission and one resume per request. One request's answer is the shared response
  // itself (no copy); a pipelined batch's is `out`, untouched until the recv completes.
  const char* reply = nullptr;
  size_t reply_len = 0;
  const int fd = stream.fd();
  for (;;) {
    // The ring operations directly (no Task frame per request).
    std::byte* dst = buf.data() + have;
    const size_t room = buf.size() - have;
    int32_t n = 0;
    if (reply_len > 0) {
      const char* src = reply;
      const size_t len = reply_len;
      n = co_await io_linked(
          fd,
          [=](io_uring_sqe* sqe) {
            io_uring_prep_send(sqe, fd, src, len, MSG_NOSIGNAL | MSG_WAITALL);
          },
          [=](io_uring_sqe* sqe) {
            io_uring_prep_recv(sqe, fd, dst, room, 0);
            // The client waits for our answer, so nothing is there to read yet.
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
          },
          token);
      reply_len = 0;
    } else {
      n = co_await io([=](io_uring_sqe* sqe) { io_uring_prep_recv(sqe, fd, dst, room, 0); }, token);
    }
    if (n <= 0)
      break;
    have += static_cast<size_t>(n);
    size_t consumed = 0;
    size_t answered = 0;
    bool keep = true;
    out.clear();
    while (keep) {
      std::string_view data(reinterpret_cast<const char*>(buf.data()) + consumed, have - consumed);
      Result<HttpRequestHead> head = parse_http_request(data);
      if (!head.is_ok()) {
        if (stats != nullptr)
          stats->bad_requests.fetch_add(1, std::memory_order_relaxed);
        keep = false;
        break;
      }
      if (head->length == 0)
        break;
      consumed += head->length;
      ++answered;
      if (stats != nullptr)
        stats->requests.fetch_add(1, std::memory_order_relaxed);
      keep = head->keep_alive;
    }
    if (answered == 1) {
      reply = response->data();
      reply_len = response->size();
    } else if (answered > 1) {
      for (size_t i = 0; i < answered; ++i)
        out += *response;
      reply = out.data();
      reply_len = out.size();
    }
    if (!keep) {
      if (reply_len > 0)
        co_await send_all_raw(fd, reply, reply_len, token);
      break;
    }
    if (consumed > 0) {
      std::memmove(buf.data(), buf.data() + consumed, have - consumed);
      have -= consumed;
    }
    if (have == buf.size()) {  // a head larger than max_request
      if (stats != nullptr)
        stats->bad_requests.fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
  if (stats != nullptr)
    stats->closed.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

Task<void> serve_http(TcpListener& listener, const HttpOptions& options, HttpStats* stats,
                      CancelToken* token) {
  const std::string response =
      "HTTP/1.1 200 OK\r\nServer: sluice-para\r\nContent-Type: "
      "text/plain\r\nContent-Length: " +
      std::to_string(options.body.size()) + "\r\n\r\n" + options.body;
  Reactor& r = local_reactor();
  // Connections live as tasks of this reactor; they must not outlive `response`, so this
  // coroutine waits for them (counted below) before it returns.
  size_t live = 0;
  std::coroutine_handle<> waiter;
  struct Counted {
    static Task<void> run(Task<void> body, size_t* live, std::coroutine_handle<>* waiter) {
      co_await std::move(body);
      if (--*live == 0 && *waiter) {
        local_reactor().schedule(std::exchange(*waiter, {}));
      }
    }
  };
  for (;;) {
    Result<TcpStream> s = co_await listener.accept(token);
    if (!s.is_ok()) {
      if (s.status().code() == StatusCode::kCancelled)
        break;
      SLUICE_LOG(warn, "para http on core {}: {}", r.core(), s.status().to_string());
      if (r.stopping())
        break;
      continue;
    }
    if (stats != nullptr)
      stats->connections.fetch_add(1, std::memory_order_relaxed);
    ++live;
    r.spawn(Counted::run(
        serve_connection(std::move(s).value(), &response, options.max_request, stats, token), &live,
        &waiter));
  }
  if (live > 0) {
    struct Wait {
      std::coroutine_handle<>* w;
      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<> h) const noexcept { *w = h; }
      void await_resume() const noexcept {}
    };
    co_await Wait{&waiter};
  }
}

}  // namespace sluice::para

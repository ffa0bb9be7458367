#include "sluice/para/net.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "sluice/para/runtime.h"
#include "sluice/para/testing.h"

namespace sluice::para {
namespace {

TEST(HttpParseTest, KeepAliveAndClose) {
  auto h = parse_http_request("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET");
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(h->length, 27u);
  EXPECT_TRUE(h->keep_alive);
  EXPECT_FALSE(parse_http_request("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n")->keep_alive);
  EXPECT_FALSE(parse_http_request("GET / HTTP/1.0\r\n\r\n")->keep_alive);
  EXPECT_TRUE(parse_http_request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")->keep_alive);
  EXPECT_EQ(parse_http_request("GET / HTTP/1.1\r\nHost: x\r\n")->length, 0u);  // incomplete
  EXPECT_FALSE(parse_http_request("garbage\r\n\r\n").is_ok());
  EXPECT_FALSE(parse_http_request("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").is_ok());
}

int connect_to(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until `count` responses (each ending with the body) arrived or the peer closed.
std::string read_responses(int fd, const std::string& body, int count, bool* closed) {
  std::string got;
  char buf[4096];
  *closed = false;
  auto responses = [&] {
    int n = 0;
    for (size_t p = got.find(body); p != std::string::npos; p = got.find(body, p + 1))
      ++n;
    return n;
  };
  while (responses() < count) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

struct Server {
  std::unique_ptr<Runtime> rt;
  HttpStats stats;
  uint16_t port = 0;
};

// Starts serve_http on every partition; partition 0 picks a free port, the others join it
// with SO_REUSEPORT.
void start_server(Server& srv, const HttpOptions& options) {
  auto started = Runtime::start(testing::testing_options());
  ASSERT_TRUE(started.is_ok());
  srv.rt = std::move(started).value();
  for (int core : srv.rt->cores()) {
    Result<uint16_t> port = srv.rt->run_on(core, [&srv, &options]() -> Result<uint16_t> {
      Result<TcpListener> l = TcpListener::bind({.port = srv.port});
      if (!l.is_ok())
        return l.status();
      const uint16_t p = l->port();
      local_reactor().spawn(
          [](TcpListener listener, const HttpOptions* o, HttpStats* stats) -> Task<void> {
            co_await serve_http(listener, *o, stats, nullptr);
          }(std::move(l).value(), &options, &srv.stats));
      return p;
    });
    ASSERT_TRUE(port.is_ok()) << port.status().to_string();
    srv.port = *port;
  }
}

// The exact bytes of `n` answers, each the full response head and body.
size_t response_bytes(const HttpOptions& options, size_t n) {
  const std::string one =
      "HTTP/1.1 200 OK\r\nServer: sluice-para\r\nContent-Type: text/plain\r\nContent-Length: " +
      std::to_string(options.body.size()) + "\r\n\r\n" + options.body;
  return n * one.size();
}

TEST(HttpServerTest, ServesKeepAliveAndPipelinedRequestsOnEveryPartition) {
  Server srv;
  static const HttpOptions options{.body = "para says hi\n"};
  start_server(srv, options);
  for (int conn = 0; conn < 8; ++conn) {
    int fd = connect_to(srv.port);
    ASSERT_GE(fd, 0);
    const std::string one = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    bool closed = false;
    // Three requests one after another on the same connection, then two pipelined.
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(send(fd, one.data(), one.size(), 0), static_cast<ssize_t>(one.size()));
      std::string r = read_responses(fd, options.body, 1, &closed);
      EXPECT_NE(r.find("HTTP/1.1 200 OK"), std::string::npos);
      EXPECT_NE(r.find("Content-Length: 13"), std::string::npos);
      ASSERT_FALSE(closed);
    }
    const std::string two = one + "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n";
    ASSERT_EQ(send(fd, two.data(), two.size(), 0), static_cast<ssize_t>(two.size()));
    read_responses(fd, options.body, 2, &closed);
    read_responses(fd, options.body, 3, &closed);  // the server closes after "close"
    EXPECT_TRUE(closed);
    close(fd);
  }
  srv.rt->stop();  // cancels the accepts in flight
  EXPECT_EQ(srv.stats.requests.load(), 8u * 5u);
  EXPECT_EQ(srv.stats.connections.load(), 8u);
  EXPECT_EQ(srv.stats.closed.load(), 8u);
}

// Single requests and pipelined batches of several sizes alternate on one keep-alive
// connection; each answer goes out linked ahead of the next read, and every byte of every
// answer must arrive, in order, with nothing extra.
TEST(HttpServerTest, AlternatingSingleAndPipelinedBatchesGetEveryAnswerWhole) {
  Server srv;
  static const HttpOptions options{.body = "whole answers\n"};
  start_server(srv, options);
  int fd = connect_to(srv.port);
  ASSERT_GE(fd, 0);
  const std::string one = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
  size_t total = 0;
  for (size_t batch : std::initializer_list<size_t>{1, 7, 1, 1, 32, 2, 1, 100, 1}) {
    std::string req;
    for (size_t i = 0; i < batch; ++i)
      req += one;
    ASSERT_EQ(send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
    std::string got;
    char buf[8192];
    while (got.size() < response_bytes(options, batch)) {
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      ASSERT_GT(n, 0) << "closed after " << got.size() << " bytes of batch " << batch;
      got.append(buf, static_cast<size_t>(n));
    }
    EXPECT_EQ(got.size(), response_bytes(options, batch)) << "batch " << batch;
    size_t bodies = 0;
    for (size_t p = got.find(options.body); p != std::string::npos;
         p = got.find(options.body, p + 1))
      ++bodies;
    EXPECT_EQ(bodies, batch);
    total += batch;
  }
  close(fd);
  srv.rt->stop();
  EXPECT_EQ(srv.stats.requests.load(), total);
  EXPECT_EQ(srv.stats.closed.load(), 1u);
}

// A client that sends but never reads fills both socket buffers until the server's answer
// waits on a full socket, with the next read linked behind it. Stopping the runtime must cancel
// that pair and end the connection's task rather than leak it at the shutdown timeout.
TEST(HttpServerTest, StopEndsAConnectionWhoseAnswerWaitsOnAFullSocket) {
  Server srv;
  static const HttpOptions options{.body = std::string(2000, 'x')};
  start_server(srv, options);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(srv.port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  const std::string one = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
  // Send until the server stops reading: our sends fail with EAGAIN for a while in a row.
  int refused_in_a_row = 0;
  while (refused_in_a_row < 200) {
    const ssize_t n = send(fd, one.data(), one.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ++refused_in_a_row;
      usleep(1000);
      continue;
    }
    ASSERT_GT(n, 0) << std::strerror(errno);
    refused_in_a_row = 0;
  }
  EXPECT_EQ(srv.stats.closed.load(), 0u);
  srv.rt->stop();
  EXPECT_EQ(srv.stats.connections.load(), 1u);
  EXPECT_EQ(srv.stats.closed.load(), 1u) << "the connection's task was leaked";
  close(fd);
}

}  // namespace
}  // namespace sluice::para

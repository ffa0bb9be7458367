#include "dbos/peers.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "echo.grpc.pb.h"

namespace sluice::bench {
namespace {

// --- TCP: 4-byte length, then the bytes; one writev per message ---

bool read_full(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r <= 0) {
      if (r < 0 && errno == EINTR)
        continue;
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool write_msg(int fd, const std::string& data) {
  uint32_t len = static_cast<uint32_t>(data.size());
  iovec iov[2] = {{&len, sizeof(len)}, {const_cast<char*>(data.data()), data.size()}};
  size_t total = sizeof(len) + data.size();
  while (total > 0) {
    ssize_t w = ::writev(fd, iov, 2);
    if (w <= 0) {
      if (w < 0 && errno == EINTR)
        continue;
      return false;
    }
    total -= static_cast<size_t>(w);
    size_t left = static_cast<size_t>(w);
    for (auto& v : iov) {
      size_t take = std::min(left, v.iov_len);
      v.iov_base = static_cast<char*>(v.iov_base) + take;
      v.iov_len -= take;
      left -= take;
    }
  }
  return true;
}

bool read_msg(int fd, std::string* data) {
  uint32_t len = 0;
  if (!read_full(fd, reinterpret_cast<char*>(&len), sizeof(len)))
    return false;
  data->resize(len);
  return read_full(fd, data->data(), len);
}

void nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

class TcpTransport final : public Transport {
 public:
  ~TcpTransport() override {
    for (int fd : client_)
      ::shutdown(fd, SHUT_RDWR);
    for (auto& t : servers_)
      t.join();
    for (int fd : client_)
      ::close(fd);
    if (listen_fd_ >= 0)
      ::close(listen_fd_);
  }
  const char* name() const override { return "tcp"; }

  Status init(int receivers) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 128) != 0) {
      return errno_status(errno, "tcp peer: bind/listen on loopback");
    }
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    for (int i = 0; i < receivers; ++i) {
      int c = ::socket(AF_INET, SOCK_STREAM, 0);
      if (::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        return errno_status(errno, "tcp peer: connect");
      }
      nodelay(c);
      int s = ::accept(listen_fd_, nullptr, nullptr);
      nodelay(s);
      client_.push_back(c);
      servers_.emplace_back([s] {
        std::string m;
        while (read_msg(s, &m) && write_msg(s, m)) {
        }
        ::close(s);
      });
    }
    return {};
  }
  Status send(int i, const std::string& data) override {
    return write_msg(client_[static_cast<size_t>(i)], data) ? Status() : io_error("tcp write");
  }
  Status recv(int i, std::string* data) override {
    return read_msg(client_[static_cast<size_t>(i)], data) ? Status() : io_error("tcp read");
  }

 private:
  int listen_fd_ = -1;
  std::vector<int> client_;
  std::vector<std::thread> servers_;
};

// --- gRPC: a sync server; one bidirectional stream per receiver ---

class EchoService final : public Echo::Service {
  grpc::Status Chat(grpc::ServerContext*, grpc::ServerReaderWriter<Msg, Msg>* stream) override {
    Msg m;
    while (stream->Read(&m)) {
      if (!stream->Write(m))
        break;
    }
    return grpc::Status::OK;
  }
};

class GrpcTransport final : public Transport {
 public:
  ~GrpcTransport() override {
    for (auto& s : streams_) {
      s->WritesDone();
      s->Finish();
    }
    streams_.clear();
    contexts_.clear();
    if (server_)
      server_->Shutdown();
  }
  const char* name() const override { return "grpc"; }

  Status init(int receivers) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 4);
    server_ = builder.BuildAndStart();
    if (!server_ || port == 0) {
      return unavailable("grpc peer: cannot start the server on loopback");
    }
    channel_ =
        grpc::CreateChannel(fmt::format("127.0.0.1:{}", port), grpc::InsecureChannelCredentials());
    stub_ = Echo::NewStub(channel_);
    for (int i = 0; i < receivers; ++i) {
      contexts_.push_back(std::make_unique<grpc::ClientContext>());
      streams_.push_back(stub_->Chat(contexts_.back().get()));
    }
    return {};
  }
  Status send(int i, const std::string& data) override {
    Msg m;
    m.set_data(data);
    return streams_[static_cast<size_t>(i)]->Write(m) ? Status() : io_error("grpc write");
  }
  Status recv(int i, std::string* data) override {
    Msg m;
    if (!streams_[static_cast<size_t>(i)]->Read(&m))
      return io_error("grpc read");
    *data = std::move(*m.mutable_data());
    return {};
  }

 private:
  EchoService service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Echo::Stub> stub_;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts_;
  std::vector<std::unique_ptr<grpc::ClientReaderWriter<Msg, Msg>>> streams_;
};

}  // namespace

Result<std::unique_ptr<Transport>> make_tcp_transport(int receivers) {
  auto t = std::make_unique<TcpTransport>();
  SLUICE_RETURN_IF_ERROR(t->init(receivers));
  return std::unique_ptr<Transport>(std::move(t));
}

Result<std::unique_ptr<Transport>> make_grpc_transport(int receivers) {
  auto t = std::make_unique<GrpcTransport>();
  SLUICE_RETURN_IF_ERROR(t->init(receivers));
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace sluice::bench

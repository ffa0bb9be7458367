// The peers of the dbos IPC benchmark: one echo "receiver" per endpoint, over TCP loopback
// sockets or gRPC bidirectional streams. A Transport sends a message to receiver i and reads the
// reply; the receivers echo every message back.
#pragma once

#include <memory>
#include <string>

#include "sluice/common/result.h"

namespace sluice::bench {

class Transport {
 public:
  virtual ~Transport() = default;
  virtual const char* name() const = 0;
  // Sends `data` to receiver i (no wait for the reply).
  virtual Status send(int i, const std::string& data) = 0;
  // Reads one reply from receiver i.
  virtual Status recv(int i, std::string* data) = 0;
  // Several messages to receiver i; a transport that can batch them does.
  virtual Status send_many(int i, const std::string& data, int count) {
    for (int k = 0; k < count; ++k) {
      SLUICE_RETURN_IF_ERROR(send(i, data));
    }
    return {};
  }
  // One message to receivers 0..n-1.
  virtual Status multicast(int n, const std::string& data) {
    for (int k = 0; k < n; ++k) {
      SLUICE_RETURN_IF_ERROR(send(k, data));
    }
    return {};
  }
};

// `receivers` echo endpoints, each served by its own thread (TCP) or server stream (gRPC).
Result<std::unique_ptr<Transport>> make_tcp_transport(int receivers);
Result<std::unique_ptr<Transport>> make_grpc_transport(int receivers);

}  // namespace sluice::bench

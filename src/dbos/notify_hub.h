// Internal: one LISTEN connection per process for PostgreSQL receivers.
//
// PostgreSQL 15 keeps no record of which backend listens on which channel: a committing NOTIFY
// signals every backend of the database that LISTENs on anything, and each of them reads the
// notification queue. With a LISTEN per receiver's connection, a multicast to 40 receivers and
// their 40 replies woke about 40 × 41 backends per round, and most of them only to learn that the
// notification was not theirs. The hub is the process's only listener: its thread LISTENs on the
// channels of every receiver of the process and, for each notification, bumps the receiver's
// word in an in-process WakeTable, where the receiver sleeps (or spins) as SQLite's receivers do.
// A sender in the same process bumps that word itself after its commit, so its receivers do not
// wait for the notification's trip through the server at all.
//
// No lost wake-up: listen() returns after the LISTEN committed (a later commit notifies the hub)
// or, while the connection is down, after recording the channel; a reconnect LISTENs again on
// every channel and then bumps every receiver's word, so each looks at its table after the gap.
//
// Sends notify only while some listener other than their own Database handle is registered
// (the dbos_listener table, schema version 3; dbos_others_listen in services.sql): the hub's
// connection joins in the transaction of its first LISTEN, again after a reconnect, and leaves
// when the hub stops. A process alone with its database makes no NOTIFY at all.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sluice/common/result.h"

typedef struct pg_conn PGconn;

namespace sluice::dbos {

class WakeTable;

class NotifyHub {
 public:
  // Connects to `conninfo` and starts the thread. `wake` outlives the hub. Notifications whose
  // payload is `origin` (non-empty) come from the sessions of this hub's own Database, whose
  // senders bumped the receivers' words after their commits: the hub skips them, or each
  // message would wake its receiver twice (the second time to an empty take).
  static Result<std::unique_ptr<NotifyHub>> start(std::string conninfo, WakeTable* wake,
                                                  std::string origin = {});
  ~NotifyHub();
  NotifyHub(const NotifyHub&) = delete;
  NotifyHub& operator=(const NotifyHub&) = delete;

  // Makes notifications on `receiver`'s channel bump its wake word; returns once the LISTEN has
  // committed, or once it is queued for the reconnect when the connection is down. Idempotent.
  Status listen(int64_t receiver);

  // The channel a send to `receiver` notifies.
  static std::string channel(int64_t receiver);

  // Notifications received and reconnects made (for tests and benchmarks).
  uint64_t notifications() const;
  uint64_t reconnects() const;

 private:
  struct Request {
    int64_t receiver = 0;
    bool done = false;
    Status status;
  };

  NotifyHub(std::string conninfo, WakeTable* wake, std::string origin);
  Status connect();
  Status run_listen(int64_t receiver);
  void run();
  void serve_requests();
  void drain();
  // After a lost connection: reconnect, LISTEN again on every channel, wake every receiver.
  void recover();
  // Removes this connection's row from the listeners (dbos_listener), before it closes.
  void leave();
  void disconnect();

  const std::string conninfo_;
  WakeTable* const wake_;
  const std::string origin_;
  // Its row in dbos_listener: the origin, or a token of its own when it has none.
  const std::string token_;
  PGconn* conn_ = nullptr;  // the thread's, after start()
  bool joined_ = false;     // the connection's row is in dbos_listener
  int event_fd_ = -1;       // listen() and the destructor kick the thread through it
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request*> pending_;  // guarded by mu_
  std::set<int64_t> receivers_;    // guarded by mu_: LISTENed, or queued for the reconnect
  bool stop_ = false;              // guarded by mu_
  std::atomic<uint64_t> notifications_{0};
  std::atomic<uint64_t> reconnects_{0};
};

}  // namespace sluice::dbos

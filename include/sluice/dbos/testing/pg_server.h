// For tests and benchmarks (sluice's and those of code built on it): a throw-away PostgreSQL 15
// server on a free loopback port.
//
// start() runs initdb into a fresh temporary directory and pg_ctl start, as the unprivileged
// `postgres` user when the process runs as root (PostgreSQL refuses root), stop() shuts it down
// and removes the directory (the destructor too). restart() stops and starts it on the same port,
// keeping the data: what a test of "server restarted mid-run" needs. A server is never left
// behind: a watchdog process shuts it down and removes its directory when this process ends
// without stop() (a static server never destroyed, a crash, kill -9).
#pragma once

#include <string>

#include "sluice/common/result.h"

namespace sluice::dbos::testing {

class PgServer {
 public:
  PgServer() = default;
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // `extra_conf` lines are appended to postgresql.conf (e.g. "synchronous_commit = off").
  Status start(const std::string& extra_conf = "");
  Status stop();
  Status restart();
  Status stop_keep_data();  // for tests: the server is down until start_again()
  Status start_again();

  // postgres://postgres@127.0.0.1:<port>/postgres
  std::string url() const;
  int port() const { return port_; }
  bool running() const { return running_; }

 private:
  Status run(const std::string& cmd);
  std::string as_user(const std::string& cmd) const;
  Status start_watchdog();
  void end_watchdog();

  std::string dir_;
  int port_ = 0;
  bool running_ = false;
  bool as_postgres_ = false;
  int watchdog_fd_ = -1;  // the write end of the watchdog's pipe
  int watchdog_pid_ = -1;
};

// Where initdb and pg_ctl live (PostgreSQL 15 on Debian); empty when not installed.
std::string pg_bin_dir();

}  // namespace sluice::dbos::testing

#include "dbos/notify_hub.h"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string_view>

#include "dbos/wake.h"

namespace sluice::dbos {
namespace {

constexpr std::string_view kChannelPrefix = "dbos_rx_";
constexpr int kReconnectPauseMs = 250;
constexpr const char* kApplicationName = "sluice-notify";

std::string trimmed_error(PGconn* conn) {
  std::string msg = PQerrorMessage(conn);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) {
    msg.pop_back();
  }
  return msg;
}

}  // namespace

std::string NotifyHub::channel(int64_t receiver) {
  return fmt::format("{}{}", kChannelPrefix, receiver);
}

namespace {

// A hub without an origin still needs a row of its own: a token no session carries.
std::string listener_token(const std::string& origin, const void* hub) {
  return origin.empty() ? fmt::format("hub{}x{}", ::getpid(), hub) : origin;
}

}  // namespace

NotifyHub::NotifyHub(std::string conninfo, WakeTable* wake, std::string origin)
    : conninfo_(std::move(conninfo)),
      wake_(wake),
      origin_(std::move(origin)),
      token_(listener_token(origin_, this)) {}

Result<std::unique_ptr<NotifyHub>> NotifyHub::start(std::string conninfo, WakeTable* wake,
                                                    std::string origin) {
  std::unique_ptr<NotifyHub> hub(new NotifyHub(std::move(conninfo), wake, std::move(origin)));
  SLUICE_RETURN_IF_ERROR(hub->connect());
  hub->event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (hub->event_fd_ < 0) {
    return errno_status(errno, "eventfd for the PostgreSQL notification thread");
  }
  hub->thread_ = std::thread([h = hub.get()] { h->run(); });
  return hub;
}

NotifyHub::~NotifyHub() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    const uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof(one));
    thread_.join();
  }
  {
    std::lock_guard lock(mu_);
    for (Request* r : pending_) {
      r->status = unavailable("the PostgreSQL notification thread stopped");
      r->done = true;
    }
    pending_.clear();
  }
  cv_.notify_all();
  leave();
  disconnect();
  if (event_fd_ >= 0) {
    ::close(event_fd_);
  }
}

uint64_t NotifyHub::notifications() const {
  return notifications_.load(std::memory_order_relaxed);
}

uint64_t NotifyHub::reconnects() const {
  return reconnects_.load(std::memory_order_relaxed);
}

Status NotifyHub::listen(int64_t receiver) {
  Request req;
  req.receiver = receiver;
  std::unique_lock lock(mu_);
  if (receivers_.count(receiver) != 0) {
    return {};
  }
  if (stop_) {
    return unavailable("the PostgreSQL notification thread stopped");
  }
  pending_.push_back(&req);
  const uint64_t one = 1;
  (void)!::write(event_fd_, &one, sizeof(one));
  cv_.wait(lock, [&] { return req.done; });
  return req.status;
}

Status NotifyHub::connect() {
  disconnect();
  // Named, so that an operator (and a test) can tell the process's listener in pg_stat_activity.
  const char* keys[] = {"dbname", "application_name", nullptr};
  const char* values[] = {conninfo_.c_str(), kApplicationName, nullptr};
  conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (PQstatus(conn_) != CONNECTION_OK) {
    Status s = unavailable(
        fmt::format("the PostgreSQL notification thread cannot connect: {}", trimmed_error(conn_)));
    disconnect();
    return s;
  }
  // The server's messages to this connection (its FATAL when it shuts down, say) are not the
  // program's to print: a lost connection is handled by reconnecting.
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
  PGresult* r = PQexec(conn_, "SET client_min_messages = warning");
  PQclear(r);
  return {};
}

void NotifyHub::leave() {
  if (conn_ == nullptr || !joined_ || PQstatus(conn_) != CONNECTION_OK) {
    return;
  }
  // Best effort: a row left behind costs other handles' sends a NOTIFY until the next listener
  // to join finds this connection gone.
  char* token = PQescapeLiteral(conn_, token_.c_str(), token_.size());
  if (token != nullptr) {
    PQclear(PQexec(conn_, fmt::format("SELECT dbos_listener_leave({})", token).c_str()));
    PQfreemem(token);
  }
  joined_ = false;
}

void NotifyHub::disconnect() {
  joined_ = false;
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

Status NotifyHub::run_listen(int64_t receiver) {
  std::string sql = fmt::format("LISTEN {}", channel(receiver));
  if (!joined_) {
    // The connection's first LISTEN joins the listeners in the same transaction (one query
    // string is one transaction): from its commit on, other handles' sends notify.
    char* token = PQescapeLiteral(conn_, token_.c_str(), token_.size());
    if (token == nullptr) {
      return internal_error(
          fmt::format("cannot quote the listener token: {}", trimmed_error(conn_)));
    }
    sql = fmt::format("SELECT dbos_listener_join({}); {}", token, sql);
    PQfreemem(token);
  }
  PGresult* res = PQexec(conn_, sql.c_str());
  Status s;
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    s = PQstatus(conn_) != CONNECTION_OK
            ? unavailable(fmt::format("lost the PostgreSQL connection: {}", trimmed_error(conn_)))
            : internal_error(fmt::format("{} failed: {}", sql, trimmed_error(conn_)));
  }
  PQclear(res);
  if (s.is_ok()) {
    joined_ = true;
  }
  // Notifications that came in with the answer wait in libpq's list.
  drain();
  return s;
}

void NotifyHub::serve_requests() {
  std::vector<Request*> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(pending_);
  }
  if (batch.empty()) {
    return;
  }
  for (Request* r : batch) {
    Status s;
    if (conn_ != nullptr) {
      s = run_listen(r->receiver);
      if (!s.is_ok() && PQstatus(conn_) != CONNECTION_OK) {
        // recover() LISTENs on it with the others and then wakes every receiver.
        disconnect();
        s = {};
      }
    }
    std::lock_guard lock(mu_);
    if (s.is_ok()) {
      receivers_.insert(r->receiver);
    }
    r->status = std::move(s);
    r->done = true;
  }
  cv_.notify_all();
}

void NotifyHub::drain() {
  if (conn_ == nullptr) {
    return;
  }
  while (PGnotify* n = PQnotifies(conn_)) {
    // Counted before the wake-up it causes: whoever the wake-up reaches sees it counted.
    notifications_.fetch_add(1, std::memory_order_relaxed);
    std::string_view name(n->relname);
    int64_t receiver = 0;
    const bool ours = !origin_.empty() && origin_ == n->extra;
    if (!ours && name.starts_with(kChannelPrefix)) {
      const char* first = name.data() + kChannelPrefix.size();
      const char* last = name.data() + name.size();
      if (std::from_chars(first, last, receiver).ec == std::errc{}) {
        wake_->notify(receiver);
      }
    }
    PQfreemem(n);
  }
}

void NotifyHub::recover() {
  if (!connect().is_ok()) {
    return;
  }
  std::set<int64_t> receivers;
  {
    std::lock_guard lock(mu_);
    receivers = receivers_;
  }
  for (int64_t r : receivers) {
    if (!run_listen(r).is_ok()) {
      disconnect();
      return;
    }
  }
  reconnects_.fetch_add(1, std::memory_order_relaxed);
  // Sends that committed while nobody listened notified nobody.
  for (int64_t r : receivers) {
    wake_->notify(r);
  }
}

void NotifyHub::run() {
  for (;;) {
    struct pollfd fds[2] = {};
    fds[0].fd = event_fd_;
    fds[0].events = POLLIN;
    fds[1].fd = conn_ != nullptr ? PQsocket(conn_) : -1;
    fds[1].events = POLLIN;
    const int rc = ::poll(fds, 2, conn_ != nullptr ? -1 : kReconnectPauseMs);
    if (rc < 0 && errno != EINTR) {
      ::poll(nullptr, 0, kReconnectPauseMs);
    }
    if ((fds[0].revents & POLLIN) != 0) {
      uint64_t n = 0;
      (void)!::read(event_fd_, &n, sizeof(n));
    }
    {
      std::lock_guard lock(mu_);
      if (stop_) {
        return;
      }
    }
    if (conn_ == nullptr) {
      recover();
    }
    serve_requests();
    if (conn_ != nullptr && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
      if (PQconsumeInput(conn_) == 0) {
        disconnect();
        continue;
      }
      drain();
    }
  }
}

}  // namespace sluice::dbos

#include "sluice/dbos/ipc.h"

#include <fmt/format.h>

#include <algorithm>

#include "dbos/connection.h"
#include "dbos/service_util.h"
#include "dbos/wake.h"
#include "sluice/common/knobs.h"

namespace sluice::dbos {
namespace {

const IntKnob kMaxMessageBytes({.name = "dbos.max_message_bytes",
                                .default_value = 1 << 20,
                                .min = 1,
                                .max = 1 << 30,
                                .stage = KnobStage::kRuntime,
                                .help = "largest IPC message accepted; bigger ones are refused"});

const IntKnob kRecheckMs({.name = "dbos.recv_recheck_ms",
                          .default_value = 1000,
                          .min = 1,
                          .max = 3600000,
                          .stage = KnobStage::kRuntime,
                          .help = "a blocked receiver looks at its table at least this often, "
                                  "in case a sender died between its commit and its wake-up"});

std::string channel_name(int64_t receiver) {
  return fmt::format("dbos_rx_{}", receiver);
}

}  // namespace

Status Ipc::create_endpoint(int64_t id, std::string_view name) {
  Arg args[] = {{"endpoint_id", id},
                {"name", name.empty() ? Value{} : Value{std::string(name)}},
                {"now_us", now_us()}};
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, session_->call("endpoint_create", args, true));
  (void)r;
  known_receivers_[id] = true;
  return {};
}

Status Ipc::check_receiver(int64_t receiver) {
  if (known_receivers_.count(receiver) != 0) {
    return {};
  }
  Arg args[] = {{"endpoint_id", receiver}, {"now_us", now_us()}};
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, session_->call("endpoint_known", args, true));
  if (r.rows.empty() || value_to_int(r.rows[0][0]).value_or(0) == 0) {
    return not_found(fmt::format("no IPC endpoint {}: create it first (`sluice ipc endpoint {}`)",
                                 receiver, receiver));
  }
  known_receivers_[receiver] = true;
  return {};
}

Result<int64_t> Ipc::last_sent(int64_t sender, int64_t receiver) {
  Arg args[] = {{"sender_id", sender}, {"receiver_id", receiver}, {"now_us", now_us()}};
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, session_->call("channel_last", args, true));
  return r.rows.empty() ? 0 : value_to_int(r.rows[0][0]).value_or(0);
}

Result<int64_t> Ipc::next_id(int64_t sender, int64_t receiver) {
  auto it = next_id_.find({sender, receiver});
  if (it != next_id_.end()) {
    return it->second;
  }
  SLUICE_ASSIGN_OR_RETURN(int64_t last, last_sent(sender, receiver));
  next_id_[{sender, receiver}] = last + 1;
  return last + 1;
}

void Ipc::wake(int64_t receiver) {
  if (WakeTable* w = session_->database().wake_table()) {
    // After the commit that made the message visible (at once outside a transaction).
    session_->after_commit([w, receiver] { w->notify(receiver); });
  }
}

// One send in the current transaction (or its own). `retry_seen` tells whether an earlier try of
// this same message may have committed (a lost connection): then a duplicate is our own.
Status Ipc::send_one(int64_t sender, int64_t receiver, std::string_view data,
                     std::optional<int64_t> message_id, SendOutcome* outcome, bool* retry_seen) {
  if (static_cast<int64_t>(data.size()) > kMaxMessageBytes.get()) {
    return invalid_argument(fmt::format(
        "message of {} bytes from {} to {} is over dbos.max_message_bytes ({}); split it or "
        "raise the knob",
        data.size(), sender, receiver, kMaxMessageBytes.get()));
  }
  const bool auto_id = !message_id.has_value();
  for (int resync = 0; resync < 3; ++resync) {
    int64_t id = 0;
    if (auto_id) {
      SLUICE_ASSIGN_OR_RETURN(id, next_id(sender, receiver));
    } else {
      id = *message_id;
      if (id <= 0) {
        return invalid_argument(fmt::format("message id {} must be positive", id));
      }
    }
    Arg args[] = {{"sender_id", sender},
                  {"receiver_id", receiver},
                  {"message_id", id},
                  {"data", Blob{std::string(data)}},
                  {"now_us", now_us()}};
    Result<QueryResult> r = session_->call("send", args, false);
    if (!r.is_ok() && !session_->in_transaction() &&
        r.status().code() == StatusCode::kUnavailable &&
        r.status().message().find("outcome is unknown") != std::string::npos) {
      // The connection was re-opened: repeating the same id is safe (duplicates are dropped).
      *retry_seen = true;
      r = session_->call("send", args, true);
    }
    SLUICE_RETURN_IF_ERROR(r.status());
    const std::string result = r->rows.empty() ? "" : value_to_text(r->rows[0][0]);
    if (result == "sent") {
      *outcome = SendOutcome::kSent;
      if (auto_id || next_id_.count({sender, receiver}) != 0) {
        next_id_[{sender, receiver}] = id + 1;
      }
      return {};
    }
    if (result == "unknown receiver") {
      known_receivers_.erase(receiver);
      return not_found(fmt::format("no IPC endpoint {}: create it first (`sluice ipc endpoint {}`)",
                                   receiver, receiver));
    }
    if (result == "unknown sender") {
      return not_found(
          fmt::format("no IPC endpoint {} (the sender): create it first (`sluice ipc endpoint {}`)",
                      sender, sender));
    }
    if (result != "duplicate") {
      return internal_error(fmt::format("the send procedure answered '{}'", result));
    }
    if (*retry_seen) {
      // Our own earlier try committed before the connection dropped.
      *outcome = SendOutcome::kSent;
      next_id_[{sender, receiver}] = id + 1;
      return {};
    }
    if (!auto_id) {
      *outcome = SendOutcome::kDuplicate;
      return {};
    }
    // Another handle sent on this pair: take the numbering from the table again.
    next_id_.erase({sender, receiver});
  }
  return failed_precondition(fmt::format(
      "sender {} is numbering messages to {} from several handles at once; use one handle per "
      "sender, or give message ids",
      sender, receiver));
}

Result<SendOutcome> Ipc::send(int64_t sender, int64_t receiver, std::string_view data,
                              std::optional<int64_t> message_id) {
  SendOutcome outcome = SendOutcome::kSent;
  bool retry_seen = false;
  SLUICE_RETURN_IF_ERROR(send_one(sender, receiver, data, message_id, &outcome, &retry_seen));
  if (outcome == SendOutcome::kSent) {
    wake(receiver);
  }
  return outcome;
}

Status Ipc::multicast(int64_t sender, std::span<const int64_t> receivers, std::string_view data) {
  // The ids this transaction assigns are committed only if it commits.
  auto saved = next_id_;
  Status s = session_->transact([&]() -> Status {
    next_id_ = saved;
    for (int64_t r : receivers) {
      SendOutcome o;
      bool retry_seen = false;
      SLUICE_RETURN_IF_ERROR(send_one(sender, r, data, std::nullopt, &o, &retry_seen));
      wake(r);
    }
    return {};
  });
  if (!s.is_ok()) {
    next_id_ = std::move(saved);
  }
  return s;
}

Status Ipc::send_batch(int64_t sender, int64_t receiver, std::span<const std::string> data) {
  auto saved = next_id_;
  Status s = session_->transact([&]() -> Status {
    next_id_ = saved;
    for (const std::string& d : data) {
      SendOutcome o;
      bool retry_seen = false;
      SLUICE_RETURN_IF_ERROR(send_one(sender, receiver, d, std::nullopt, &o, &retry_seen));
    }
    wake(receiver);
    return {};
  });
  if (!s.is_ok()) {
    next_id_ = std::move(saved);
  }
  return s;
}

Result<std::vector<Message>> Ipc::take(int64_t receiver, int max) {
  Arg args[] = {
      {"receiver_id", receiver}, {"max_count", static_cast<int64_t>(max)}, {"now_us", now_us()}};
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, session_->call("recv", args));
  std::vector<std::pair<int64_t, Message>> tmp;
  tmp.reserve(r.rows.size());
  for (Row& row : r.rows) {
    Message m;
    m.receiver_id = receiver;
    m.sender_id = value_to_int(row[1]).value_or(0);
    m.message_id = value_to_int(row[2]).value_or(0);
    if (auto* b = std::get_if<Blob>(&row[3])) {
      m.data = std::move(b->bytes);
    } else {
      m.data = value_to_text(row[3]);
    }
    tmp.emplace_back(value_to_int(row[0]).value_or(0), std::move(m));
  }
  // RETURNING gives no order: arrival order is seq.
  std::sort(tmp.begin(), tmp.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Message> out;
  out.reserve(tmp.size());
  for (auto& [_, m] : tmp) {
    out.push_back(std::move(m));
  }
  return out;
}

Result<bool> Ipc::has_mail(int64_t receiver) {
  if (session_->database().wake_table() == nullptr) {
    return true;  // PostgreSQL: the take itself is as cheap (row locks, no database lock)
  }
  Arg args[] = {{"receiver_id", receiver}, {"now_us", int64_t{0}}};
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, session_->read("has_mail", args));
  return !r.rows.empty() && value_to_int(r.rows[0][0]).value_or(0) != 0;
}

Result<std::vector<Message>> Ipc::try_recv(int64_t receiver, int max) {
  if (max <= 0) {
    return invalid_argument(fmt::format("max {} must be positive", max));
  }
  SLUICE_RETURN_IF_ERROR(check_receiver(receiver));
  return take(receiver, max);
}

Status Ipc::wait_for(int64_t receiver, uint32_t seen,
                     std::chrono::steady_clock::time_point deadline) {
  const auto now = std::chrono::steady_clock::now();
  if (now >= deadline) {
    return deadline_exceeded(
        fmt::format("no message for receiver {} before the timeout", receiver));
  }
  const auto left = std::min<int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now).count(),
      kRecheckMs.get() * 1'000'000);
  if (WakeTable* w = session_->database().wake_table()) {
    w->wait(receiver, seen, left);
    return {};
  }
  const int ms = static_cast<int>(std::min<int64_t>(left / 1'000'000 + 1, 1'000'000'000));
  Result<bool> r = session_->wait_notification(ms);
  if (!r.is_ok()) {
    // A lost connection: re-open it (LISTEN is re-issued) and look at the table again.
    SLUICE_RETURN_IF_ERROR(session_->connection().reconnect());
  }
  return {};
}

Result<std::vector<Message>> Ipc::recv(int64_t receiver, int max,
                                       std::chrono::milliseconds timeout) {
  if (max <= 0) {
    return invalid_argument(fmt::format("max {} must be positive", max));
  }
  SLUICE_RETURN_IF_ERROR(check_receiver(receiver));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  WakeTable* w = session_->database().wake_table();
  if (w == nullptr && listening_.count(receiver) == 0) {
    SLUICE_RETURN_IF_ERROR(session_->listen(channel_name(receiver)));
    listening_[receiver] = true;
  }
  for (;;) {
    const uint32_t seen = w != nullptr ? w->epoch(receiver) : 0;
    SLUICE_ASSIGN_OR_RETURN(bool any, has_mail(receiver));
    if (!any) {
      SLUICE_RETURN_IF_ERROR(wait_for(receiver, seen, deadline));
      continue;
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<Message> got, take(receiver, max));
    if (!got.empty()) {
      return got;
    }
    SLUICE_RETURN_IF_ERROR(wait_for(receiver, seen, deadline));
  }
}

Result<int> Ipc::recv_with(int64_t receiver, int max,
                           const std::function<Status(Session&, std::span<const Message>)>& fn,
                           std::chrono::milliseconds timeout) {
  if (max <= 0) {
    return invalid_argument(fmt::format("max {} must be positive", max));
  }
  SLUICE_RETURN_IF_ERROR(check_receiver(receiver));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  WakeTable* w = session_->database().wake_table();
  if (w == nullptr && listening_.count(receiver) == 0) {
    SLUICE_RETURN_IF_ERROR(session_->listen(channel_name(receiver)));
    listening_[receiver] = true;
  }
  for (;;) {
    const uint32_t seen = w != nullptr ? w->epoch(receiver) : 0;
    SLUICE_ASSIGN_OR_RETURN(bool any, has_mail(receiver));
    if (!any) {
      SLUICE_RETURN_IF_ERROR(wait_for(receiver, seen, deadline));
      continue;
    }
    int taken = 0;
    SLUICE_RETURN_IF_ERROR(session_->transact([&]() -> Status {
      SLUICE_ASSIGN_OR_RETURN(std::vector<Message> got, take(receiver, max));
      taken = static_cast<int>(got.size());
      if (got.empty()) {
        return {};
      }
      return fn(*session_, got);
    }));
    if (taken > 0) {
      return taken;
    }
    SLUICE_RETURN_IF_ERROR(wait_for(receiver, seen, deadline));
  }
}

}  // namespace sluice::dbos

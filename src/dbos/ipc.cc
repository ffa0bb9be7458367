#include "sluice/dbos/ipc.h"

#include <fmt/format.h>

#include <algorithm>

#include "dbos/connection.h"
#include "dbos/notify_hub.h"
#include "dbos/service_util.h"
#include "dbos/wake.h"
#include "sluice/common/knobs.h"

namespace sluice::dbos {
namespace {

// now + timeout, saturating: a timeout of centuries (or milliseconds::max()) waits "forever"
// instead of wrapping into the past.
std::chrono::steady_clock::time_point deadline_after(std::chrono::milliseconds timeout) {
  const auto now = std::chrono::steady_clock::now();
  const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::time_point::max() - now);
  return timeout >= room ? std::chrono::steady_clock::time_point::max() : now + timeout;
}

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

const IntKnob kRecvSpinUs({.name = "dbos.recv_spin_us",
                           .default_value = 250,
                           .min = 0,
                           .max = 100000,
                           .stage = KnobStage::kRuntime,
                           .help = "longest a blocked receiver spins on its wake-up word "
                                   "before it sleeps; it spins only while its recent waits were "
                                   "shorter than this (0: always sleep at once)"});

}  // namespace

Ipc::Ipc(Session& session) : session_(&session) {}
Ipc::~Ipc() = default;

SpinPolicy* Ipc::spin_policy(int64_t receiver) {
  auto& p = spin_[receiver];
  if (p == nullptr) {
    p = std::make_unique<SpinPolicy>(kRecvSpinUs.get() * 1000);
  }
  return p.get();
}

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
  SLUICE_RETURN_IF_ERROR(check_size(sender, receiver, data.size()));
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
    SLUICE_ASSIGN_OR_RETURN(QueryResult r, call_repeating_if_unknown("send", args, retry_seen));
    const std::string result = r.rows.empty() ? "" : value_to_text(r.rows[0][0]);
    if (result == "sent") {
      *outcome = SendOutcome::kSent;
      if (auto_id || next_id_.count({sender, receiver}) != 0) {
        next_id_[{sender, receiver}] = id + 1;
      }
      return {};
    }
    if (result != "duplicate") {
      return refused(result, sender, receiver);
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
  return numbering_conflict(sender, receiver);
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

Status Ipc::check_size(int64_t sender, int64_t receiver, size_t bytes) const {
  if (static_cast<int64_t>(bytes) > kMaxMessageBytes.get()) {
    return invalid_argument(fmt::format(
        "message of {} bytes from {} to {} is over dbos.max_message_bytes ({}); split it or "
        "raise the knob",
        bytes, sender, receiver, kMaxMessageBytes.get()));
  }
  return {};
}

// Calls a sending procedure. When the connection was lost and re-opened with the outcome
// unknown (outside a transaction), calls it once more with the same ids, which is safe: a
// duplicate is dropped, and `retry_seen` tells the caller that a duplicate is its own first try.
Result<QueryResult> Ipc::call_repeating_if_unknown(std::string_view procedure,
                                                   std::span<const Arg> args, bool* retry_seen) {
  Result<QueryResult> r = session_->call(procedure, args, false);
  if (!r.is_ok() && !session_->in_transaction() && r.status().code() == StatusCode::kUnavailable &&
      r.status().message().find("outcome is unknown") != std::string::npos) {
    *retry_seen = true;
    r = session_->call(procedure, args, true);
  }
  return r;
}

// Runs a batch procedure (send_batch, multicast): its outcome, and in `receiver` the receiver
// it names, if any.
Result<std::string> Ipc::call_batch(std::string_view procedure, std::span<const Arg> args,
                                    int64_t* receiver) {
  bool retry_seen = false;
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, call_repeating_if_unknown(procedure, args, &retry_seen));
  if (r.rows.empty()) {
    return internal_error(fmt::format("the {} procedure answered nothing", procedure));
  }
  const Row& row = r.rows[0];
  std::string outcome = value_to_text(row[0]);
  if (row.size() > 1) {
    *receiver = value_to_int(row[1]).value_or(*receiver);
  }
  if (outcome == "duplicate" && retry_seen) {
    outcome = "sent";
  }
  return outcome;
}

Status Ipc::refused(std::string_view outcome, int64_t sender, int64_t receiver) {
  if (outcome == "unknown receiver") {
    known_receivers_.erase(receiver);
    return not_found(fmt::format("no IPC endpoint {}: create it first (`sluice ipc endpoint {}`)",
                                 receiver, receiver));
  }
  if (outcome == "unknown sender") {
    return not_found(
        fmt::format("no IPC endpoint {} (the sender): create it first (`sluice ipc endpoint {}`)",
                    sender, sender));
  }
  return internal_error(fmt::format("the IPC procedure answered '{}'", outcome));
}

Status Ipc::numbering_conflict(int64_t sender, int64_t receiver) {
  return failed_precondition(fmt::format(
      "sender {} is numbering messages to {} from several handles at once; use one handle per "
      "sender, or give message ids",
      sender, receiver));
}

// One call for the whole multicast: the ids are the pairs' next ones, and a receiver named twice
// gets two messages.
Status Ipc::multicast(int64_t sender, std::span<const int64_t> receivers, std::string_view data) {
  SLUICE_RETURN_IF_ERROR(check_size(sender, receivers.empty() ? 0 : receivers[0], data.size()));
  if (receivers.empty()) {
    return {};
  }
  Arg args[] = {{"sender_id", sender},
                {"targets", Value{}},
                {"data", Blob{std::string(data)}},
                {"now_us", now_us()}};
  int64_t conflict = receivers[0];
  for (int resync = 0; resync < 3; ++resync) {
    std::map<int64_t, int64_t> ids;           // receiver → the id this call gives it next
    std::map<int64_t, int64_t> named_before;  // receiver → targets so far naming it
    std::string targets = "[";
    for (int64_t r : receivers) {
      auto it = ids.find(r);
      if (it == ids.end()) {
        SLUICE_ASSIGN_OR_RETURN(int64_t first, next_id(sender, r));
        it = ids.emplace(r, first).first;
      }
      fmt::format_to(std::back_inserter(targets), "{}[{},{},{}]", targets.size() > 1 ? "," : "", r,
                     it->second++, named_before[r]++);
    }
    targets.push_back(']');
    args[1].value = std::move(targets);
    int64_t named = receivers[0];
    SLUICE_ASSIGN_OR_RETURN(std::string outcome, call_batch("multicast", args, &named));
    if (outcome == "sent") {
      for (const auto& [r, next] : ids) {
        next_id_[{sender, r}] = next;
        wake(r);
      }
      return {};
    }
    if (outcome != "duplicate") {
      return refused(outcome, sender, named);
    }
    // Another handle sent on this pair: take the numbering from the table again.
    next_id_.erase({sender, named});
    conflict = named;
  }
  return numbering_conflict(sender, conflict);
}

// One call for the whole batch: the payloads travel as one blob and a list of pieces.
Status Ipc::send_batch(int64_t sender, int64_t receiver, std::span<const std::string> data) {
  if (data.empty()) {
    return {};
  }
  // One allocation: grown by appends, a batch of 8 KiB messages went through five, the last ones
  // above malloc's mmap threshold (a page fault per 4 KiB touched, every batch).
  size_t total = 0;
  for (const std::string& d : data) {
    total += d.size();
  }
  std::string blob;
  blob.reserve(total);
  std::string pieces = "[";
  for (const std::string& d : data) {
    SLUICE_RETURN_IF_ERROR(check_size(sender, receiver, d.size()));
    // offset from 1 << 32 | length: a plain integer per piece, which the SQL splits with two
    // integer operations where a pair needed two JSON extractions.
    fmt::format_to(std::back_inserter(pieces), "{}{}", pieces.size() > 1 ? "," : "",
                   (static_cast<uint64_t>(blob.size() + 1) << 32) | d.size());
    blob += d;
  }
  pieces.push_back(']');
  Arg args[] = {{"sender_id", sender},         {"receiver_id", receiver},
                {"first_id", int64_t{0}},      {"data", Blob{std::move(blob)}},
                {"pieces", std::move(pieces)}, {"now_us", now_us()}};
  for (int resync = 0; resync < 3; ++resync) {
    SLUICE_ASSIGN_OR_RETURN(int64_t first, next_id(sender, receiver));
    args[2].value = first;
    int64_t named = receiver;
    SLUICE_ASSIGN_OR_RETURN(std::string outcome, call_batch("send_batch", args, &named));
    if (outcome == "sent") {
      next_id_[{sender, receiver}] = first + static_cast<int64_t>(data.size());
      wake(receiver);
      return {};
    }
    if (outcome != "duplicate") {
      return refused(outcome, sender, receiver);
    }
    next_id_.erase({sender, receiver});
  }
  return numbering_conflict(sender, receiver);
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
  if (session_->database().dialect() == Dialect::kPostgres) {
    return true;  // the take itself is as cheap (row locks, no database lock)
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
  // Always reads the table (a poller also sees rows whose sender died before its wake-up).
  WakeTable* w = session_->database().wake_table();
  const uint32_t seen = w != nullptr ? w->epoch(receiver) : 0;
  SLUICE_ASSIGN_OR_RETURN(std::vector<Message> got, take(receiver, max));
  note_take(receiver, seen, got.size(), max);
  return got;
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
    w->wait(receiver, seen, left, spin_policy(receiver));
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

void Ipc::note_take(int64_t receiver, uint32_t seen, size_t got, int max) {
  if (session_->database().wake_table() == nullptr) {
    return;
  }
  if (session_->in_transaction()) {
    // The caller's transaction may still roll the take back and put the messages back.
    empty_at_.erase(receiver);
    return;
  }
  if (got < static_cast<size_t>(max)) {
    empty_at_[receiver] = seen;  // the take left nothing behind
  } else {
    empty_at_.erase(receiver);
  }
}

Result<bool> Ipc::may_have_mail(int64_t receiver, uint32_t seen) {
  auto it = empty_at_.find(receiver);
  if (it != empty_at_.end()) {
    // Every send commits before it bumps the epoch: an unchanged epoch means nothing new, and a
    // changed one almost always means mail, so the take itself looks.
    return it->second != seen;
  }
  SLUICE_ASSIGN_OR_RETURN(bool any, has_mail(receiver));
  if (!any && session_->database().wake_table() != nullptr) {
    empty_at_[receiver] = seen;
  }
  return any;
}

Status Ipc::wait_for_mail(int64_t receiver, uint32_t seen,
                          std::chrono::steady_clock::time_point deadline) {
  SLUICE_RETURN_IF_ERROR(wait_for(receiver, seen, deadline));
  WakeTable* w = session_->database().wake_table();
  if (w != nullptr && w->epoch(receiver) == seen) {
    // A timed-out recheck: a sender may have died between its commit and its wake-up, or a row
    // came in by plain SQL, so read the table itself next time.
    empty_at_.erase(receiver);
  }
  return {};
}

Status Ipc::start_receiving(int64_t receiver, int max) {
  if (max <= 0) {
    return invalid_argument(fmt::format("max {} must be positive", max));
  }
  SLUICE_RETURN_IF_ERROR(check_receiver(receiver));
  Database& db = session_->database();
  if (db.dialect() == Dialect::kPostgres && listening_.count(receiver) == 0) {
    // Before the first take: a send that commits after the take's snapshot then wakes us.
    if (db.wake_table() != nullptr) {
      SLUICE_RETURN_IF_ERROR(db.watch_receiver(receiver));
    } else {
      SLUICE_RETURN_IF_ERROR(session_->listen(NotifyHub::channel(receiver)));
    }
    listening_[receiver] = true;
  }
  return {};
}

Result<std::vector<Message>> Ipc::recv(int64_t receiver, int max,
                                       std::chrono::milliseconds timeout) {
  SLUICE_RETURN_IF_ERROR(start_receiving(receiver, max));
  const auto deadline = deadline_after(timeout);
  WakeTable* w = session_->database().wake_table();
  for (;;) {
    const uint32_t seen = w != nullptr ? w->epoch(receiver) : 0;
    SLUICE_ASSIGN_OR_RETURN(bool any, may_have_mail(receiver, seen));
    if (any) {
      SLUICE_ASSIGN_OR_RETURN(std::vector<Message> got, take(receiver, max));
      note_take(receiver, seen, got.size(), max);
      if (!got.empty()) {
        return got;
      }
    }
    SLUICE_RETURN_IF_ERROR(wait_for_mail(receiver, seen, deadline));
  }
}

Result<int> Ipc::recv_with(int64_t receiver, int max,
                           const std::function<Status(Session&, std::span<const Message>)>& fn,
                           std::chrono::milliseconds timeout) {
  SLUICE_RETURN_IF_ERROR(start_receiving(receiver, max));
  const auto deadline = deadline_after(timeout);
  WakeTable* w = session_->database().wake_table();
  for (;;) {
    const uint32_t seen = w != nullptr ? w->epoch(receiver) : 0;
    SLUICE_ASSIGN_OR_RETURN(bool any, may_have_mail(receiver, seen));
    if (any) {
      int taken = 0;
      Status s = session_->transact([&]() -> Status {
        SLUICE_ASSIGN_OR_RETURN(std::vector<Message> got, take(receiver, max));
        taken = static_cast<int>(got.size());
        if (got.empty()) {
          return {};
        }
        return fn(*session_, got);
      });
      if (!s.is_ok()) {
        empty_at_.erase(receiver);  // rolled back: the messages are still there
        return s;
      }
      note_take(receiver, seen, static_cast<size_t>(taken), max);
      if (taken > 0) {
        return taken;
      }
    }
    SLUICE_RETURN_IF_ERROR(wait_for_mail(receiver, seen, deadline));
  }
}

}  // namespace sluice::dbos

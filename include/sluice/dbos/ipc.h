// sluice::dbos::Ipc — messages through the Message table (DBOS §4.3).
//
// A message is a row (receiver_id, sender_id, message_id, data). Delivery is exactly once and in
// order per sender→receiver pair: the Channel table keeps, per pair, the highest message id ever
// sent, so a send that is retried (after a crash or a lost connection) with the same id is
// recognised and dropped; a receive deletes the rows it returns in the same transaction. Messages
// are durable rows: a sender or receiver killed with SIGKILL loses nothing.
//
// Waiting without polling: on SQLite a send bumps a futex word of the receiver's slot in a small
// shared file beside the database (`<db>-wake`), so a blocked receiver in any process sleeps in
// the kernel until then; on PostgreSQL the send function NOTIFYs the receiver's channel and the
// receiver LISTENs. A SQLite receiver whose messages come quickly (a request-reply partner) spins
// on its futex word for up to `dbos.recv_spin_us` before it sleeps (see dbos/wake.h).
//
// Ownership: one Ipc per Session (thread). A sender id should be used by one Ipc at a time: it
// numbers that sender's messages from the Channel table.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/dbos/database.h"

namespace sluice::dbos {

struct Message {
  int64_t sender_id = 0;
  int64_t receiver_id = 0;
  int64_t message_id = 0;  // per sender→receiver pair, increasing
  std::string data;
};

enum class SendOutcome { kSent, kDuplicate };

class SpinPolicy;

class Ipc {
 public:
  explicit Ipc(Session& session);
  ~Ipc();
  Ipc(const Ipc&) = delete;
  Ipc& operator=(const Ipc&) = delete;

  // Registers an endpoint (a receiver or sender id) with a name; idempotent.
  Status create_endpoint(int64_t id, std::string_view name = {});

  // Sends `data` from `sender` to `receiver`. The message id is the pair's next one, unless
  // `message_id` is given: an id not above the pair's highest is a duplicate and is dropped
  // (kDuplicate). Errors: not found (unknown receiver or sender), invalid argument (data over
  // `dbos.max_message_bytes`), unavailable (database locked or server gone after retries).
  Result<SendOutcome> send(int64_t sender, int64_t receiver, std::string_view data,
                           std::optional<int64_t> message_id = std::nullopt);
  // One transaction (one call) sending `data` to every receiver, all or nothing.
  Status multicast(int64_t sender, std::span<const int64_t> receivers, std::string_view data);
  // Several messages to one receiver in one transaction (one call), all or nothing.
  Status send_batch(int64_t sender, int64_t receiver, std::span<const std::string> data);

  // Takes up to `max` of the receiver's oldest messages, if any (never waits).
  Result<std::vector<Message>> try_recv(int64_t receiver, int max = 1);
  // Waits until at least one message is there or `timeout` passes (deadline exceeded).
  Result<std::vector<Message>> recv(int64_t receiver, int max = 1,
                                    std::chrono::milliseconds timeout = std::chrono::hours(24));
  // Takes up to `max` messages and runs `fn` on them inside the same transaction: if `fn` fails or
  // the process dies, the messages stay queued; `fn` may write its effects through the session, so
  // processing is exactly once too.
  Result<int> recv_with(int64_t receiver, int max,
                        const std::function<Status(Session&, std::span<const Message>)>& fn,
                        std::chrono::milliseconds timeout = std::chrono::hours(24));

  // The highest message id sent on a pair (0 if none): where a restarted sender resumes.
  Result<int64_t> last_sent(int64_t sender, int64_t receiver);

 private:
  Result<int64_t> next_id(int64_t sender, int64_t receiver);
  Status check_receiver(int64_t receiver);
  Status send_one(int64_t sender, int64_t receiver, std::string_view data,
                  std::optional<int64_t> message_id, SendOutcome* outcome, bool* retry_seen);
  Status check_size(int64_t sender, int64_t receiver, size_t bytes) const;
  Result<QueryResult> call_repeating_if_unknown(std::string_view procedure,
                                                std::span<const Arg> args, bool* retry_seen);
  Result<std::string> call_batch(std::string_view procedure, std::span<const Arg> args,
                                 int64_t* receiver);
  // The error for a procedure's answer other than sent or duplicate (an unknown endpoint).
  Status refused(std::string_view outcome, int64_t sender, int64_t receiver);
  static Status numbering_conflict(int64_t sender, int64_t receiver);
  Result<std::vector<Message>> take(int64_t receiver, int max);
  Result<bool> has_mail(int64_t receiver);
  Status wait_for(int64_t receiver, uint32_t seen, std::chrono::steady_clock::time_point deadline);
  // The blocking receives: a receiver whose take left its table empty sleeps on the wake table
  // without reading the table again until a sender bumps the receiver's epoch.
  Status start_receiving(int64_t receiver, int max);
  Result<bool> may_have_mail(int64_t receiver, uint32_t seen);
  void note_take(int64_t receiver, uint32_t seen, size_t got, int max);
  Status wait_for_mail(int64_t receiver, uint32_t seen,
                       std::chrono::steady_clock::time_point deadline);
  void wake(int64_t receiver);
  SpinPolicy* spin_policy(int64_t receiver);

  Session* session_;
  std::map<std::pair<int64_t, int64_t>, int64_t> next_id_;  // pair → next message id
  std::map<int64_t, bool> known_receivers_;
  std::map<int64_t, bool> listening_;
  std::map<int64_t, uint32_t> empty_at_;  // receiver → wake epoch at which its table was empty
  std::map<int64_t, std::unique_ptr<SpinPolicy>> spin_;  // receiver → how long it spins
};

}  // namespace sluice::dbos

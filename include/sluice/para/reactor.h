// para::Reactor: one partition of the runtime — a thread pinned to one core that owns, outright,
// that core's memory arena, io_uring, timer wheel, run queue and inbound message queue.
//
// Everything here is reactor-local: call it only from coroutines and callbacks running on the
// reactor (this_reactor() returns it there, nullptr elsewhere). Other threads reach a reactor
// only by message (Runtime::submit_to / run_on), never by touching its state. Nothing on a
// reactor blocks: I/O goes through the ring, waiting through timers, and blocking work is handed
// to the helper pool with offload() (runtime.h).
//
// I/O operations are awaitables that hold their state in the awaiting coroutine's frame: an
// operation costs one SQE and one CQE and no allocation. Each may take a CancelToken; cancelling
// it (on the same reactor) cancels every operation and timer registered with it, which then
// complete with Status code kCancelled. When the runtime stops, every operation in flight is
// cancelled the same way and new ones complete at once with kCancelled; the reactor keeps
// running until every task finished (or the shutdown timeout passed).
#pragma once

#include <liburing.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/oqueue/oqueue.h"
#include "sluice/para/arena.h"
#include "sluice/para/task.h"

namespace sluice::para {

class Runtime;
class Reactor;
class CancelToken;

// A unit of cross-partition work. It travels by pointer inside an OQueue message; whoever posts
// it keeps it alive until it ran (submit_to keeps it in the awaiting frame).
class WorkItem {
 public:
  virtual ~WorkItem() = default;
  virtual void run() = 0;
};

// What crosses partitions: a trivially copyable message on the target's inbound OQueue.
struct Message {
  WorkItem* item = nullptr;
  uint32_t from = 0;  // sender's reactor index, or kExternal
  uint32_t kind = 0;  // 0 request, 1 reply (for observers of the queue)
};
inline constexpr uint32_t kExternal = 0xffffffffu;

// Something a CancelToken can cancel. Intrusive: lives in the awaiting frame.
class Cancellable {
 public:
  virtual ~Cancellable() = default;
  virtual void on_cancel() = 0;

 private:
  friend class CancelToken;
  Cancellable* tprev_ = nullptr;
  Cancellable* tnext_ = nullptr;
  CancelToken* token_ = nullptr;
};

// Cancels a group of operations and timers on one reactor (like Seastar's abort_source).
// REQUIRES: used only on one reactor's thread; outlives the operations registered with it.
class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;
  ~CancelToken();

  // Cancels every registered operation now; later ones complete at once with kCancelled.
  void cancel();
  bool cancelled() const { return cancelled_; }

  void attach(Cancellable* c);
  void detach(Cancellable* c);

 private:
  Cancellable* head_ = nullptr;
  bool cancelled_ = false;
};

// One io_uring operation in flight. The CQE's user_data points at it.
class IoOp : public Cancellable {
 public:
  void on_cancel() override;

  std::coroutine_handle<> waiter;
  int32_t res = 0;
  uint32_t cqe_flags = 0;
  Reactor* reactor = nullptr;
  int cancel_fd = -1;   // ≥ 0: cancelling cancels every request on this fd (linked pairs)
  int fd_cancels = 0;   // cancel-by-fd sweeps issued for this operation
  bool device = false;  // a file read or write: completes soon, so the reactor polls for it
  // Set instead of `waiter` by code that keeps many operations in flight without a coroutine
  // frame each (a zicio channel's reads): called on the reactor with `res` and `cqe_flags`
  // filled, after the operation left the in-flight list.
  void (*on_complete)(IoOp*) = nullptr;
  IoOp* iprev = nullptr;  // the reactor's in-flight list
  IoOp* inext = nullptr;
};

// A timer on the reactor's wheel.
class TimerEntry : public Cancellable {
 public:
  void on_cancel() override;

  uint64_t expiry_tick = 0;
  std::coroutine_handle<> waiter;
  Reactor* reactor = nullptr;
  TimerEntry* prev = nullptr;
  TimerEntry* next = nullptr;
  bool armed = false;
  bool cancelled = false;
};

// Which io_uring features this reactor's ring got.
struct RingInfo {
  unsigned entries = 0;
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool coop_taskrun = false;
  bool sqpoll = false;
  bool registered_buffers = false;  // the arena is registered: reads into it use READ_FIXED
  bool registered_ring_fd = false;
  // The ring's buffer and file tables are sparse (kernel 5.19+), so register_buffers() and
  // register_files() can add entries while the reactor runs.
  bool buffer_table = false;
  bool file_table = false;
  std::string describe() const;  // "256 entries, SINGLE_ISSUER+DEFER_TASKRUN, arena registered"
};

struct ReactorStats {
  uint64_t io_submitted = 0;
  uint64_t io_completed = 0;
  uint64_t io_cancelled = 0;
  uint64_t messages_in = 0;
  uint64_t messages_out = 0;
  uint64_t timers_fired = 0;
  uint64_t tasks_spawned = 0;
  uint64_t sleeps = 0;  // times the loop slept in io_uring_enter
  uint64_t polls = 0;   // loop iterations
};

enum class IdleMode { kSleep, kPoll };

class Reactor {
 public:
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;
  ~Reactor();

  int core() const { return core_; }
  uint32_t index() const { return index_; }
  Runtime& runtime() { return *runtime_; }
  Arena& arena() { return *arena_; }
  const RingInfo& ring_info() const { return ring_info_; }
  const ReactorStats& stats() const { return stats_; }
  // True once the runtime began to stop: new I/O and sleeps complete at once with kCancelled.
  bool stopping() const { return stopping_; }

  // Runs `t` to completion as a detached task of this reactor. The runtime waits for detached
  // tasks when it stops.
  void spawn(Task<void> t);
  // Resumes `h` on this reactor soon (after the current callback).
  void schedule(std::coroutine_handle<> h) { ready_.push_back(h); }

  // A 4 KiB-aligned block of this partition's arena, fit for O_DIRECT. Empty when exhausted.
  Buffer allocate(size_t size);

  // --- internals for the awaitables in this header and file.h / net.h ---
  io_uring_sqe* get_sqe();
  // Two adjacent SQEs in one submission, for a linked pair.
  std::pair<io_uring_sqe*, io_uring_sqe*> get_sqe_pair();
  void track(IoOp* op);  // after the SQE is filled
  void untrack(IoOp* op);
  void cancel_op(IoOp* op);
  void add_timer(TimerEntry* t, std::chrono::nanoseconds d);
  void remove_timer(TimerEntry* t);
  bool arena_registered(const void* p, size_t n) const {
    return ring_info_.registered_buffers && arena_->contains(p, n);
  }
  // Memory and files of a user of this ring that reads on it with READ_FIXED and
  // IOSQE_FIXED_FILE (the arena is buffer 0). Each returns the index of the first of `n`
  // consecutive entries, or an error (no sparse tables on this kernel, the table full, or the
  // memory not pinnable under RLIMIT_MEMLOCK): the caller then uses plain reads. Call on this
  // reactor; unregister what you registered once none of your reads is in flight.
  Result<uint32_t> register_buffers(const iovec* iov, uint32_t n);
  void unregister_buffers(uint32_t first, uint32_t n);
  Result<uint32_t> register_files(const int* fds, uint32_t n);
  void unregister_files(uint32_t first, uint32_t n);
  // Sends `item` to reactor `target` (an index); never blocks: a full queue parks the message
  // until the loop can deliver it.
  void post(uint32_t target, Message m);

 private:
  friend class Runtime;
  friend class TimerEntry;
  struct Impl;

  Reactor(Runtime* rt, uint32_t index, int core);
  void thread_main();
  void loop();
  bool run_ready();
  bool drain_inbound();
  bool reap();
  void recancel_fd(int fd);  // a cancel-by-fd completed: sweep again if its pair is in flight
  bool fire_timers();
  bool flush_outbound();
  void idle_wait();
  void begin_stop();
  void wake();  // any thread
  void dispatch(Message m);
  uint64_t now_tick() const;
  Status setup();

  Runtime* runtime_;
  uint32_t index_;
  int core_;
  std::unique_ptr<Arena> arena_;
  std::unique_ptr<Impl> impl_;
  io_uring ring_{};
  bool ring_ok_ = false;
  RingInfo ring_info_;
  ReactorStats stats_;
  std::deque<std::coroutine_handle<>> ready_;
  IoOp* inflight_ = nullptr;
  uint64_t inflight_count_ = 0;
  bool stopping_ = false;
  IdleMode idle_ = IdleMode::kSleep;
  int64_t spin_ns_ = 0;     // keep polling this long after the last work
  int64_t io_spin_ns_ = 0;  // … while a device operation is in flight
  uint64_t device_inflight_ = 0;
  int64_t last_work_ns_ = 0;   // when the loop last found nothing to do (0: it just worked)
  int64_t idle_since_ns_ = 0;  // when the current idle stretch began (0: not idle)
  int64_t spin_next_ns_ = 0;   // the idle spin the next stretch gets: spin_ns_ or 0
  int event_fd_ = -1;
  std::atomic<bool> sleeping_{false};
  std::vector<bool> buffer_used_;  // entries of the sparse tables in use
  std::vector<bool> file_used_;
  std::atomic<bool> stop_requested_{false};
  Status start_status_;
  std::atomic<bool> started_{false};
};

// The reactor running the calling thread, or nullptr off-reactor.
Reactor* this_reactor();
// The same, asserting that the caller is on a reactor.
Reactor& local_reactor();

// What the ring awaitables share: the operation and its token, the early completion when the
// runtime stops or the token was cancelled, and the final result.
class IoAwaitableBase {
 public:
  bool await_ready() noexcept {
    if (op_.reactor->stopping() || (token_ != nullptr && token_->cancelled())) {
      op_.res = -ECANCELED;
      return true;
    }
    return false;
  }
  int32_t await_resume() noexcept {
    if (token_ != nullptr)
      token_->detach(&op_);
    return op_.res;
  }

 protected:
  IoAwaitableBase(Reactor& r, CancelToken* token) : token_(token) { op_.reactor = &r; }
  // `sqe`, already filled, is the one whose completion resumes `h`.
  void arm(std::coroutine_handle<> h, io_uring_sqe* sqe) {
    op_.waiter = h;
    io_uring_sqe_set_data(sqe, &op_);
    op_.reactor->track(&op_);
    if (token_ != nullptr)
      token_->attach(&op_);
  }

  CancelToken* token_;
  IoOp op_;
};

// The generic I/O awaitable: `prep` fills the SQE. Resumes with the CQE's res (≥ 0, or -errno;
// -ECANCELED when cancelled or the runtime is stopping).
template <typename Prep>
class IoAwaitable : public IoAwaitableBase {
 public:
  IoAwaitable(Reactor& r, Prep prep, CancelToken* token) : IoAwaitableBase(r, token), prep_(prep) {}
  void await_suspend(std::coroutine_handle<> h) {
    io_uring_sqe* sqe = op_.reactor->get_sqe();
    prep_(sqe);
    arm(h, sqe);
  }

 private:
  Prep prep_;
};

template <typename Prep>
IoAwaitable<Prep> io(Prep prep, CancelToken* token = nullptr) {
  return IoAwaitable<Prep>(local_reactor(), prep, token);
}

// Two operations on one fd submitted together, `then` starting only after `first` succeeded
// (IOSQE_IO_LINK): one submission and one coroutine resume where two awaited operations take
// two of each. `first` is not awaited; if it fails (a send: also when short, so pass
// MSG_WAITALL) the link breaks and the awaitable resumes with -ECANCELED. Cancelling (token,
// runtime stop) cancels every request on `fd`, and `then` completes only after `first` did, so
// memory `first` uses need only live until this resumes. (`first` keeps its completion:
// with IOSQE_CQE_SKIP_SUCCESS on a link's head the kernel drops the completions of the linked
// requests too when the head fails, and `then` would never resume.)
template <typename First, typename Then>
class LinkedIoAwaitable : public IoAwaitableBase {
 public:
  LinkedIoAwaitable(Reactor& r, int fd, First first, Then then, CancelToken* token)
      : IoAwaitableBase(r, token), first_(first), then_(then) {
    op_.cancel_fd = fd;
  }
  void await_suspend(std::coroutine_handle<> h) {
    auto [a, b] = op_.reactor->get_sqe_pair();
    first_(a);
    io_uring_sqe_set_data64(a, 0);  // its completion is dropped by the reactor
    a->flags |= IOSQE_IO_LINK;
    then_(b);
    arm(h, b);
  }

 private:
  First first_;
  Then then_;
};

template <typename First, typename Then>
LinkedIoAwaitable<First, Then> io_linked(int fd, First first, Then then,
                                         CancelToken* token = nullptr) {
  return LinkedIoAwaitable<First, Then>(local_reactor(), fd, first, then, token);
}

// Suspends for `d` on the reactor's timer wheel (resolution para::kTimerTick). Resumes with OK,
// or kCancelled when the token was cancelled or the runtime is stopping.
class SleepAwaitable {
 public:
  SleepAwaitable(Reactor& r, std::chrono::nanoseconds d, CancelToken* token)
      : d_(d), token_(token) {
    entry_.reactor = &r;
  }
  bool await_ready() noexcept {
    if (entry_.reactor->stopping() || (token_ != nullptr && token_->cancelled())) {
      entry_.cancelled = true;
      return true;
    }
    return false;
  }
  void await_suspend(std::coroutine_handle<> h) {
    entry_.waiter = h;
    entry_.reactor->add_timer(&entry_, d_);
    if (token_ != nullptr)
      token_->attach(&entry_);
  }
  Status await_resume() {
    if (token_ != nullptr)
      token_->detach(&entry_);
    if (entry_.cancelled)
      return cancelled("sleep cancelled");
    return {};
  }

 private:
  std::chrono::nanoseconds d_;
  CancelToken* token_;
  TimerEntry entry_;
};

inline constexpr std::chrono::nanoseconds kTimerTick = std::chrono::microseconds(100);

inline SleepAwaitable sleep_for(std::chrono::nanoseconds d, CancelToken* token = nullptr) {
  return SleepAwaitable(local_reactor(), d, token);
}

// Lets the other ready tasks of this reactor run, then resumes.
inline auto yield() {
  struct Yield {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) const { local_reactor().schedule(h); }
    void await_resume() const noexcept {}
  };
  return Yield{};
}

}  // namespace sluice::para

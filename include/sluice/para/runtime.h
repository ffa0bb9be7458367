// para::Runtime: the parakernel as a user-space runtime. It partitions what can be partitioned —
// cores, memory, I/O queues, network flows — by giving each allowed core one pinned Reactor that
// owns its arena, io_uring and timers outright, and multiplexes the rest by messages.
//
//   SLUICE_ASSIGN_OR_RETURN(auto rt, para::Runtime::start(para::RuntimeOptions::from_knobs()));
//   Result<int> r = rt->run_on(0, []() -> para::Task<int> {           // from a plain thread
//     int remote = (co_await para::submit_to(1, [] { return 42; })).value();  // core 0 → core 1
//     co_return remote;
//   });
//   rt->stop();
//
// Partitions talk only by messages: submit_to(core, fn) moves `fn` to the target reactor over
// that reactor's inbound OQueue<Message> (named "para.inbound.<core>", visible to `sluice oq
// stats`-style observers), runs it there, and sends the result back the same way. `fn` may return
// a value, a Status / Result, or a Task (then its value). There is no shared mutable state
// between reactors.
//
// Blocking work (a blocking syscall, a library without an async API) goes to a small helper
// pool with offload(fn); the awaiting coroutine resumes on its own reactor with fn's value.
//
// Thread safety: start(), stop(), run_on(), index_of() and the accessors may be called from any
// thread that is not a reactor of this runtime; submit_to() and offload() only from a coroutine
// on one of its reactors. Failure: start() returns invalid argument for a core that does not
// exist or is outside the process's affinity mask, resource exhausted when an arena or ring
// cannot be had, each with what to change.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/oqueue/oqueue.h"
#include "sluice/para/arena.h"
#include "sluice/para/reactor.h"
#include "sluice/para/task.h"

namespace sluice::para {

struct RuntimeOptions {
  std::vector<int> cores;  // empty: every core in the process's affinity mask
  size_t arena_size = size_t{64} << 20;
  HugePages huge_pages = HugePages::kAuto;
  bool simulate_no_hugetlb = false;  // tests: behave as if no explicit huge pages existed
  bool lock_memory = true;
  unsigned ring_depth = 256;
  bool sqpoll = false;
  IdleMode idle = IdleMode::kSleep;
  // With kSleep: keep polling this long after the last work before sleeping (a message or
  // completion that arrives meanwhile costs no wake-up).
  std::chrono::microseconds idle_spin{50};
  // With kSleep and a file read or write in flight: keep polling this long after the last work.
  // A device completes in tens to hundreds of µs, and a sleep and wake-up per completion (tens
  // of µs on a virtual machine) leaves the device's queue short for that long.
  std::chrono::microseconds io_spin{1000};
  int offload_threads = 2;
  size_t queue_capacity = 4096;  // slots of each inbound OQueue
  std::chrono::milliseconds shutdown_timeout{5000};

  // The knobs: para.cores, para.arena_size_mb, para.huge_pages, para.ring_depth, para.sqpoll,
  // para.idle, para.idle_spin_us, para.io_spin_us, para.offload_threads,
  // para.shutdown_timeout_ms. Errors: a
  // malformed para.cores.
  static Result<RuntimeOptions> from_knobs();
};

namespace detail {
template <typename X>
struct TaskValue {
  using type = X;
  static constexpr bool kIsTask = false;
};
template <typename X>
struct TaskValue<Task<X>> {
  using type = X;
  static constexpr bool kIsTask = true;
};
template <typename R>
struct Outcome {
  using type = Result<R>;
};
template <>
struct Outcome<void> {
  using type = Status;
};
template <>
struct Outcome<Status> {
  using type = Status;
};
template <typename X>
struct Outcome<Result<X>> {
  using type = Result<X>;
};
}  // namespace detail

// The value a cross-partition call of `F` yields: Result<R>, or Status for void / Status.
template <typename F>
using SubmitOutcome =
    typename detail::Outcome<typename detail::TaskValue<std::invoke_result_t<F&>>::type>::type;

class Runtime {
 public:
  // Starts one reactor per core and waits until all are running.
  static Result<std::unique_ptr<Runtime>> start(RuntimeOptions options);
  ~Runtime();  // stop()
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Stops every reactor: cancels the I/O and timers in flight, lets every task finish, then
  // joins the threads. Idempotent. REQUIRES: not called from a reactor.
  void stop();

  size_t size() const { return reactors_.size(); }
  const std::vector<int>& cores() const { return cores_; }
  // The reactor index serving `core`; invalid argument when no reactor runs there.
  Result<uint32_t> index_of(int core) const;
  // For inspection after stop() or from the reactor itself.
  Reactor& reactor(uint32_t index) { return *reactors_[index]; }
  const RuntimeOptions& options() const { return options_; }
  // Fallbacks taken while starting (huge pages, mlock, ring features), one line each.
  const std::vector<std::string>& notes() const { return notes_; }
  oq::OQueue<Message>& inbound(uint32_t index) { return *inbound_[index]; }

  // Runs `fn` on `core` and blocks the calling (non-reactor) thread until it finished.
  template <typename F>
  SubmitOutcome<F> run_on(int core, F fn);

  // --- internals used by the awaitables below ---
  void post_external(uint32_t target, Message m);
  void offload_post(WorkItem* item);
  void hold() { pending_.fetch_add(1, std::memory_order_relaxed); }
  void release() { pending_.fetch_sub(1, std::memory_order_acq_rel); }
  int64_t pending() const { return pending_.load(std::memory_order_acquire); }

 private:
  friend class Reactor;
  struct Pool;
  Runtime() = default;
  Status launch();

  RuntimeOptions options_;
  std::vector<int> cores_;
  std::vector<std::unique_ptr<oq::OQueue<Message>>> inbound_;
  std::vector<std::unique_ptr<Reactor>> reactors_;
  std::vector<std::string> notes_;
  std::unique_ptr<Pool> pool_;
  std::atomic<int64_t> pending_{0};
  std::atomic<int> started_{0};
  std::atomic<bool> stopped_{false};
};

namespace detail {

// The item that carries a call to another partition and its reply back.
template <typename F>
class CallItem : public WorkItem {
 public:
  using Ret = std::invoke_result_t<F&>;
  using Value = typename TaskValue<Ret>::type;
  using Out = SubmitOutcome<F>;

  explicit CallItem(F fn) : fn_(std::move(fn)) {}

  void run() override {
    if (!replied_) {
      if constexpr (TaskValue<Ret>::kIsTask) {
        local_reactor().spawn(run_task());
      } else {
        try {
          if constexpr (std::is_void_v<Value>) {
            fn_();
            out_.emplace(Status());
          } else {
            out_.emplace(fn_());
          }
        } catch (...) {
          error_ = std::current_exception();
        }
        reply();
      }
    } else {
      on_reply();
    }
  }

  Out take() {
    if (error_)
      std::rethrow_exception(error_);
    return std::move(*out_);
  }
  void fail(Status s) { out_.emplace(std::move(s)); }

  Runtime* runtime = nullptr;
  uint32_t origin = kExternal;
  uint32_t target = 0;

 protected:
  virtual void on_reply() = 0;

 private:
  Task<void> run_task() {
    try {
      if constexpr (std::is_void_v<Value>) {
        co_await fn_();
        out_.emplace(Status());
      } else {
        out_.emplace(co_await fn_());
      }
    } catch (...) {
      error_ = std::current_exception();
    }
    reply();
  }
  void reply() {
    replied_ = true;
    if (origin == kExternal) {
      on_reply();
    } else {
      local_reactor().post(origin, Message{this, target, 1});
    }
  }

  F fn_;
  std::optional<Out> out_;
  std::exception_ptr error_;
  bool replied_ = false;
};

template <typename F>
class AwaitCallItem final : public CallItem<F> {
 public:
  using CallItem<F>::CallItem;
  std::coroutine_handle<> waiter;

 private:
  void on_reply() override { waiter.resume(); }
};

template <typename F>
class BlockingCallItem final : public CallItem<F> {
 public:
  using CallItem<F>::CallItem;
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }

 private:
  // Notifies under the lock: the waiter may destroy the item as soon as it sees done_.
  void on_reply() override {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_one();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

template <typename F>
class SubmitAwaitable {
 public:
  SubmitAwaitable(Reactor& r, int core, F fn) : item_(std::move(fn)) {
    item_.runtime = &r.runtime();
    item_.origin = r.index();
    Result<uint32_t> idx = item_.runtime->index_of(core);
    if (!idx.is_ok()) {
      item_.fail(idx.status());
    } else {
      item_.target = *idx;
      ok_ = true;
    }
  }
  bool await_ready() const noexcept { return !ok_; }
  void await_suspend(std::coroutine_handle<> h) {
    item_.waiter = h;
    local_reactor().post(item_.target, Message{&item_, item_.origin, 0});
  }
  typename CallItem<F>::Out await_resume() { return item_.take(); }

 private:
  AwaitCallItem<F> item_;
  bool ok_ = false;
};

template <typename F>
class OffloadAwaitable {
 public:
  using Value = std::invoke_result_t<F&>;
  explicit OffloadAwaitable(F fn) : item_(std::move(fn)) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    Reactor& r = local_reactor();
    item_.waiter = h;
    item_.runtime = &r.runtime();
    item_.origin = r.index();
    item_.runtime->offload_post(&item_);
  }
  Value await_resume() {
    if constexpr (!std::is_void_v<Value>)
      return item_.take();
  }

 private:
  class Item final : public WorkItem {
   public:
    explicit Item(F f) : fn(std::move(f)) {}
    void run() override {
      if (!done) {  // on a helper thread
        if constexpr (std::is_void_v<Value>) {
          fn();
        } else {
          value.emplace(fn());
        }
        done = true;
        runtime->post_external(origin, Message{this, kExternal, 1});
      } else {  // back on the origin reactor
        waiter.resume();
      }
    }
    Value take() {
      if constexpr (!std::is_void_v<Value>)
        return std::move(*value);
    }
    F fn;
    std::optional<std::conditional_t<std::is_void_v<Value>, int, Value>> value;
    std::coroutine_handle<> waiter;
    Runtime* runtime = nullptr;
    uint32_t origin = 0;
    bool done = false;
  };
  Item item_;
};

}  // namespace detail

// Runs `fn` on the reactor of `core` and resumes the caller on its own reactor with the result
// (Result<R>, or Status for void): invalid argument for a core without a reactor. `fn` is moved
// into the awaiting frame and lives until the reply arrived, so a Task it returns may refer to
// its captures. REQUIRES: called on a reactor.
//
// With g++ 12, a lambda that captures something with a destructor (a std::string, a vector)
// must be named before the co_await — `auto f = [s] {…}; co_await submit_to(c, std::move(f));`
// — because that compiler destroys a capturing lambda temporary of a co_await expression twice.
// Lambdas without captures, or capturing only pointers and numbers, are safe inline.
template <typename F>
detail::SubmitAwaitable<F> submit_to(int core, F fn) {
  return detail::SubmitAwaitable<F>(local_reactor(), core, std::move(fn));
}

// Runs the blocking `fn` on a helper thread and resumes the caller on its reactor with fn's
// value. REQUIRES: called on a reactor; fn must not touch reactor-local state.
template <typename F>
detail::OffloadAwaitable<F> offload(F fn) {
  return detail::OffloadAwaitable<F>(std::move(fn));
}

template <typename F>
SubmitOutcome<F> Runtime::run_on(int core, F fn) {
  SLUICE_ASSERT(this_reactor() == nullptr,
                "Runtime::run_on called on a reactor; co_await "
                "submit_to() there instead");
  Result<uint32_t> idx = index_of(core);
  if (!idx.is_ok())
    return idx.status();
  if (stopped_.load(std::memory_order_acquire)) {
    return failed_precondition("para runtime is stopped; start a new one");
  }
  detail::BlockingCallItem<F> item(std::move(fn));
  item.runtime = this;
  item.origin = kExternal;
  item.target = *idx;
  hold();
  post_external(*idx, Message{&item, kExternal, 0});
  item.wait();
  release();
  return item.take();
}

}  // namespace sluice::para

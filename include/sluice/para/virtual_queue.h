// para::VirtualQueue<R>: multiplexing what cannot be partitioned. One partition (the owner) owns
// the resource R — a single file, a device handle, a connection — and the other partitions use
// it only by messages: call(fn) ships fn to the owner, which runs fn(resource) when the fair
// scheduler admits it and ships the result back.
//
// Fair service: requests wait in one FIFO per requesting partition; when a slot frees (at most
// max_inflight run at once) the owner takes the next request round-robin over the partitions
// that have one waiting, so a partition that floods the queue gets one turn per round like any
// other, and cannot starve a light user.
//
//   para::VirtualQueue<para::File> log(runtime, /*owner_core=*/0, &file, {.max_inflight = 4});
//   Result<size_t> n = co_await log.call([&](para::File& f) { return f.write_at(off, bytes); });
//
// Thread safety: call() from a coroutine on any reactor of the runtime. The scheduler state and
// the resource are touched only on the owner's reactor. REQUIRES: the VirtualQueue and the
// resource outlive every call; the resource is used only through call() once calls start.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/para/runtime.h"
#include "sluice/para/task.h"

namespace sluice::para {

struct VirtualQueueOptions {
  size_t max_inflight = 1;    // requests the owner runs on the resource at once
  bool record_order = false;  // keep the service order (tests, `sluice demo`)
};

// The owner-side scheduler, independent of the resource type.
class FairScheduler {
 public:
  struct Served {
    uint32_t source;
    uint64_t waiting_mask;  // sources (bit = reactor index, < 64) with a request waiting then
  };

  FairScheduler(size_t sources, VirtualQueueOptions options)
      : queues_(sources), served_(sources, 0), options_(options) {}

  // Waits for a turn on the resource. REQUIRES: on the owner reactor.
  auto admit(uint32_t source) {
    struct Admit {
      FairScheduler* s;
      uint32_t source;
      bool await_ready() {
        if (s->inflight_ < s->options_.max_inflight && s->waiting_ == 0) {
          s->grant(source, 0);
          return true;
        }
        return false;
      }
      void await_suspend(std::coroutine_handle<> h) {
        s->queues_[source].push_back(h);
        ++s->waiting_;
      }
      void await_resume() const noexcept {}
    };
    return Admit{this, source};
  }
  // Gives the slot back and admits the next request, if any. REQUIRES: on the owner reactor.
  void done() {
    --inflight_;
    dispatch();
  }

  const std::vector<uint64_t>& served() const { return served_; }
  // Requests of `source` waiting for a turn now.
  size_t waiting(uint32_t source) const { return queues_[source].size(); }
  const std::vector<Served>& order() const { return order_; }
  size_t inflight() const { return inflight_; }

 private:
  void grant(uint32_t source, uint64_t waiting_mask) {
    next_ = (source + 1) % queues_.size();  // the turn passes on, however it was granted
    ++inflight_;
    ++served_[source];
    if (options_.record_order)
      order_.push_back({source, waiting_mask});
  }
  void dispatch() {
    while (inflight_ < options_.max_inflight && waiting_ > 0) {
      uint64_t mask = 0;
      for (size_t i = 0; i < queues_.size() && i < 64; ++i) {
        if (!queues_[i].empty())
          mask |= uint64_t{1} << i;
      }
      for (size_t step = 0; step < queues_.size(); ++step) {
        const size_t i = (next_ + step) % queues_.size();
        if (queues_[i].empty())
          continue;
        std::coroutine_handle<> h = queues_[i].front();
        queues_[i].pop_front();
        --waiting_;
        grant(static_cast<uint32_t>(i), mask);
        local_reactor().schedule(h);
        break;
      }
    }
  }

  std::vector<std::deque<std::coroutine_handle<>>> queues_;
  std::vector<uint64_t> served_;
  std::vector<Served> order_;
  VirtualQueueOptions options_;
  size_t inflight_ = 0;
  size_t waiting_ = 0;
  size_t next_ = 0;
};

template <typename R>
class VirtualQueue {
  template <typename F>
  using FnValue = typename detail::TaskValue<std::invoke_result_t<F&, R&>>::type;

 public:
  // `resource` lives on (and is used only by) the reactor of `owner_core`.
  VirtualQueue(Runtime& runtime, int owner_core, R* resource, VirtualQueueOptions options = {})
      : runtime_(&runtime),
        owner_core_(owner_core),
        resource_(resource),
        scheduler_(runtime.size(), options) {}

  // Runs fn(R&) on the owner when the scheduler admits it. fn may return a value, a Status /
  // Result, or a Task of one. Resumes with the outcome (invalid argument when the
  // owner core has no reactor).
  template <typename F>
  Task<typename detail::Outcome<FnValue<F>>::type> call(F fn) {
    const uint32_t source = local_reactor().index();
    // Named, not a temporary inside the co_await: g++ 12 destroys a capturing lambda temporary
    // of a co_await expression twice (docs/para.md, "Coroutine lifetimes").
    auto on_owner = [this, source, fn = std::move(fn)]() mutable {
      return run_admitted(source, fn);
    };
    co_return co_await submit_to(owner_core_, std::move(on_owner));
  }

  int owner_core() const { return owner_core_; }
  // Scheduler statistics; read them on the owner reactor or after the runtime stopped.
  const FairScheduler& scheduler() const { return scheduler_; }

 private:
  template <typename F>
  Task<FnValue<F>> run_admitted(uint32_t source, F& fn) {
    co_await scheduler_.admit(source);
    struct Release {
      FairScheduler* s;
      ~Release() { s->done(); }
    } release{&scheduler_};
    if constexpr (detail::TaskValue<std::invoke_result_t<F&, R&>>::kIsTask) {
      co_return co_await fn(*resource_);
    } else if constexpr (std::is_void_v<FnValue<F>>) {
      fn(*resource_);
    } else {
      co_return fn(*resource_);
    }
  }

  Runtime* runtime_;
  int owner_core_;
  R* resource_;
  FairScheduler scheduler_;
};

}  // namespace sluice::para

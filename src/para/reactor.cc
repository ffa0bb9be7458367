// The reactor loop: one pinned thread per partition.
//
// Loop invariants:
//  * Only this thread touches ring_, ready_, the timer wheel, the arena and the Producer /
//    Consumer handles in impl_ (OQueue handles belong to one thread).
//  * Every IoOp between track() and its CQE is on the inflight_ list; its frame is suspended,
//    so the op's address (the CQE's user_data) stays valid. SQEs with user_data 0 are cancel
//    requests whose CQEs are ignored; &impl_->wake_op is the eventfd read that wakes a sleep.
//  * Wake-up pairing (Dekker): a sleeper stores sleeping_ = true, issues a seq_cst fence, then
//    checks its inbound queue; a sender puts the message, issues a seq_cst fence, then loads
//    sleeping_ and writes the eventfd if set. One of the two sees the other, so a message never
//    waits for a sleep to time out.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "sluice/common/clock.h"
#include "sluice/common/log.h"
#include "sluice/common/topology.h"
#include "sluice/para/runtime.h"

namespace sluice::para {
namespace {

thread_local Reactor* tls_reactor = nullptr;

constexpr size_t kWheelSlots = 1024;
constexpr int64_t kTickNs = kTimerTick.count();
constexpr unsigned kCqeBatch = 64;
constexpr uint64_t kWakeTag = 1;  // user_data of the eventfd read
// user_data of a cancel-by-fd request: the tag in the top bits (never set in a user-space
// pointer), the fd below.
constexpr uint64_t kFdCancelMask = uint64_t{0xff} << 56;
constexpr uint64_t kFdCancelTag = uint64_t{0xfc} << 56;
// A linked pair's second operation may start after a cancel-by-fd swept the fd (when the
// first completed just then), so the sweep repeats while the pair is in flight — at most this
// often per operation.
constexpr int kMaxFdCancels = 64;
// Entries of the ring's sparse buffer and file tables (registered on demand by its users).
constexpr uint32_t kBufferTableSize = 1024;
constexpr uint32_t kFileTableSize = 1024;

// The first run of `n` free entries of `used`, marked used; or used.size() when there is none.
uint32_t take_run(std::vector<bool>& used, uint32_t n) {
  uint32_t run = 0;
  for (uint32_t i = 0; i < used.size(); ++i) {
    run = used[i] ? 0 : run + 1;
    if (run == n) {
      const uint32_t first = i + 1 - n;
      for (uint32_t j = first; j <= i; ++j)
        used[j] = true;
      return first;
    }
  }
  return static_cast<uint32_t>(used.size());
}

struct Detached {
  struct promise_type {
    Detached get_return_object() const noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept {
      try {
        throw;
      } catch (const std::exception& e) {
        SLUICE_LOG(critical, "para: a detached task threw: {}", e.what());
      } catch (...) {
        SLUICE_LOG(critical, "para: a detached task threw a non-std exception");
      }
      std::abort();
    }
  };
};

Detached run_detached(Task<void> t, Runtime* rt) {
  co_await std::move(t);
  rt->release();
}

}  // namespace

struct Reactor::Impl {
  TimerEntry* wheel[kWheelSlots] = {};
  uint64_t current_tick = 0;
  size_t timers = 0;
  int64_t origin_ns = 0;
  std::vector<oq::OQueue<Message>::Producer> producers;  // one per target reactor
  oq::OQueue<Message>::Consumer consumer;
  std::deque<std::pair<uint32_t, Message>> parked;  // target queue was full
  uint64_t wake_buf = 0;
  bool wake_armed = false;
  int64_t stop_deadline_ns = 0;
};

Reactor* this_reactor() {
  return tls_reactor;
}

Reactor& local_reactor() {
  SLUICE_ASSERT(tls_reactor != nullptr,
                "para: a reactor-only call (io, sleep_for, submit_to, offload, spawn) was made "
                "off the reactor threads");
  return *tls_reactor;
}

std::string RingInfo::describe() const {
  std::string s = std::to_string(entries) + " entries";
  std::string f;
  auto add = [&](bool on, const char* name) {
    if (on)
      f += (f.empty() ? "" : "+") + std::string(name);
  };
  add(sqpoll, "SQPOLL");
  add(single_issuer, "SINGLE_ISSUER");
  add(defer_taskrun, "DEFER_TASKRUN");
  add(coop_taskrun, "COOP_TASKRUN");
  s += ", " + (f.empty() ? std::string("no setup flags") : f);
  s += registered_buffers ? ", arena registered" : ", arena not registered";
  if (!buffer_table || !file_table)
    s += ", no sparse buffer/file tables";
  return s;
}

// --- cancellation ---

CancelToken::~CancelToken() {
  while (head_ != nullptr)
    detach(head_);
}

void CancelToken::attach(Cancellable* c) {
  c->token_ = this;
  c->tprev_ = nullptr;
  c->tnext_ = head_;
  if (head_ != nullptr)
    head_->tprev_ = c;
  head_ = c;
}

void CancelToken::detach(Cancellable* c) {
  if (c->token_ != this)
    return;
  if (c->tprev_ != nullptr)
    c->tprev_->tnext_ = c->tnext_;
  if (c->tnext_ != nullptr)
    c->tnext_->tprev_ = c->tprev_;
  if (head_ == c)
    head_ = c->tnext_;
  c->tprev_ = c->tnext_ = nullptr;
  c->token_ = nullptr;
}

void CancelToken::cancel() {
  if (cancelled_)
    return;
  cancelled_ = true;
  for (Cancellable* c = head_; c != nullptr; c = c->tnext_)
    c->on_cancel();
}

void IoOp::on_cancel() {
  reactor->cancel_op(this);
}

void TimerEntry::on_cancel() {
  if (!armed)
    return;
  reactor->remove_timer(this);
  cancelled = true;
  reactor->schedule(waiter);
}

// --- construction and the thread ---

Reactor::Reactor(Runtime* rt, uint32_t index, int core)
    : runtime_(rt), index_(index), core_(core), impl_(std::make_unique<Impl>()) {}

Reactor::~Reactor() {
  if (event_fd_ >= 0)
    ::close(event_fd_);
}

uint64_t Reactor::now_tick() const {
  return static_cast<uint64_t>((monotonic_ns() - impl_->origin_ns) / kTickNs);
}

Status Reactor::setup() {
  const RuntimeOptions& o = runtime_->options();
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<size_t>(core_), &set);
  if (int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); err != 0) {
    return errno_status(err, "cannot pin reactor to core " + std::to_string(core_));
  }
  tls_reactor = this;
  impl_->origin_ns = monotonic_ns();
  idle_ = o.idle;
  spin_ns_ = o.idle == IdleMode::kPoll
                 ? 0
                 : std::chrono::duration_cast<std::chrono::nanoseconds>(o.idle_spin).count();
  io_spin_ns_ =
      std::max(spin_ns_, std::chrono::duration_cast<std::chrono::nanoseconds>(o.io_spin).count());
  spin_next_ns_ = spin_ns_;

  ArenaOptions ao;
  ao.size = o.arena_size;
  ao.huge_pages = o.huge_pages;
  ao.simulate_no_hugetlb = o.simulate_no_hugetlb;
  ao.lock = o.lock_memory;
  Result<CpuTopology> topo = CpuTopology::detect();
  ao.numa_node = topo.is_ok() ? topo->numa_node_of(core_) : 0;
  Result<Arena> arena = Arena::create(ao);
  if (!arena.is_ok()) {
    return arena.status().with_context("arena of core " + std::to_string(core_));
  }
  arena_ = std::make_unique<Arena>(std::move(arena).value());

  event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd_ < 0)
    return errno_status(errno, "eventfd for reactor wake-ups");

  // Ring: the most partitioned setup the kernel accepts, then weaker ones.
  struct Attempt {
    unsigned flags;
    const char* name;
  };
  std::vector<Attempt> attempts;
  if (o.sqpoll) {
    attempts.push_back({IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF | IORING_SETUP_SINGLE_ISSUER,
                        "SQPOLL+SQ_AFF+SINGLE_ISSUER"});
    attempts.push_back({IORING_SETUP_SQPOLL, "SQPOLL"});
  }
  attempts.push_back(
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "SINGLE_ISSUER+DEFER_TASKRUN"});
  attempts.push_back(
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN, "SINGLE_ISSUER+COOP_TASKRUN"});
  attempts.push_back({IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"});
  attempts.push_back({0, "no flags"});
  int last_err = 0;
  for (const Attempt& a : attempts) {
    io_uring_params p{};
    p.flags = a.flags;
    if ((a.flags & IORING_SETUP_SQ_AFF) != 0)
      p.sq_thread_cpu = static_cast<unsigned>(core_);
    if ((a.flags & IORING_SETUP_SQPOLL) != 0)
      p.sq_thread_idle = 100;
    const int rc = io_uring_queue_init_params(o.ring_depth, &ring_, &p);
    if (rc == 0) {
      ring_ok_ = true;
      ring_info_.entries = p.sq_entries;
      ring_info_.sqpoll = (a.flags & IORING_SETUP_SQPOLL) != 0;
      ring_info_.single_issuer = (a.flags & IORING_SETUP_SINGLE_ISSUER) != 0;
      ring_info_.defer_taskrun = (a.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
      ring_info_.coop_taskrun = (a.flags & IORING_SETUP_COOP_TASKRUN) != 0;
      if (&a != &attempts.front()) {
        SLUICE_LOG(info, "para core {}: io_uring setup with {} ({} refused: {})", core_, a.name,
                   attempts.front().name, std::strerror(-last_err));
      }
      break;
    }
    last_err = rc;
    if (rc != -EINVAL && rc != -EPERM)
      break;
  }
  if (!ring_ok_) {
    return errno_status(-last_err, "io_uring_setup on core " + std::to_string(core_) +
                                       " (raise `ulimit -l`, or lower para.ring_depth)");
  }
  // Sparse tables where the kernel has them, so that users of the ring (zicio channels) can
  // register their own buffers and files later; the arena is buffer 0 either way.
  iovec iov{arena_->base(), arena_->size()};
  ring_info_.buffer_table = io_uring_register_buffers_sparse(&ring_, kBufferTableSize) == 0;
  if (ring_info_.buffer_table)
    buffer_used_.assign(kBufferTableSize, false);
  if (arena_->size() <= (size_t{1} << 30)) {
    const int rc = ring_info_.buffer_table
                       ? io_uring_register_buffers_update_tag(&ring_, 0, &iov, nullptr, 1)
                       : io_uring_register_buffers(&ring_, &iov, 1);
    if (rc >= 0) {
      ring_info_.registered_buffers = true;
    } else {
      SLUICE_LOG(info,
                 "para core {}: arena not registered with io_uring ({}); reads use plain READ",
                 core_, std::strerror(-rc));
    }
  }
  if (ring_info_.buffer_table)
    buffer_used_[0] = true;  // the arena's, registered or not
  ring_info_.file_table = io_uring_register_files_sparse(&ring_, kFileTableSize) == 0;
  if (ring_info_.file_table)
    file_used_.assign(kFileTableSize, false);
  ring_info_.registered_ring_fd = io_uring_register_ring_fd(&ring_) == 1;

  // OQueue handles belong to this thread.
  impl_->consumer = runtime_->inbound(index_).attach_consumer(oq::WaitPolicy::kSpin);
  for (uint32_t t = 0; t < runtime_->size(); ++t) {
    impl_->producers.push_back(runtime_->inbound(t).attach_producer(oq::WaitPolicy::kSpin));
  }
  return {};
}

void Reactor::thread_main() {
  start_status_ = setup();
  const bool ok = start_status_.is_ok();
  started_.store(true, std::memory_order_release);
  started_.notify_all();
  if (ok) {
    // Wait until every reactor is up (or one failed), so no message goes to a queue without its
    // consumer. Asleep: the other reactors are locking their arenas meanwhile, which takes tens
    // of milliseconds each, and a yield loop would take a core from them on a small machine.
    runtime_->started_.wait(0, std::memory_order_acquire);
    if (runtime_->started_.load(std::memory_order_acquire) >= 0)
      loop();
  }
  impl_->producers.clear();
  impl_->consumer.detach();
  if (ring_ok_)
    io_uring_queue_exit(&ring_);
  ring_ok_ = false;
  tls_reactor = nullptr;
}

// --- the loop ---

void Reactor::loop() {
  for (;;) {
    bool work = drain_inbound();
    work = run_ready() || work;
    work = fire_timers() || work;
    work = flush_outbound() || work;
    work = reap() || work;
    ++stats_.polls;
    if (!stopping_ && stop_requested_.load(std::memory_order_acquire))
      begin_stop();
    if (stopping_) {
      if (runtime_->pending() == 0 && inflight_count_ == 0 && ready_.empty() &&
          impl_->parked.empty()) {
        break;
      }
      if (monotonic_ns() > impl_->stop_deadline_ns) {
        SLUICE_LOG(warn,
                   "para core {}: shutdown timeout with {} task(s) and {} I/O(s) still pending; "
                   "their frames are leaked",
                   core_, runtime_->pending(), inflight_count_);
        break;
      }
    }
    if (work) {
      if (idle_since_ns_ != 0) {
        // Spin before the next sleep only if this idle stretch was short enough for a spin to
        // have caught it: work that comes every half millisecond (a scan waiting on its reads)
        // finds the reactor asleep anyway, and 50 µs of polling per stretch is CPU for nothing
        // (as adaptive mutexes do). One short stretch turns the spin back on.
        spin_next_ns_ = monotonic_ns() - idle_since_ns_ <= 4 * spin_ns_ ? spin_ns_ : 0;
        idle_since_ns_ = 0;
      }
      last_work_ns_ = 0;  // read the clock only once idle
    } else {
      const int64_t now = monotonic_ns();
      if (last_work_ns_ == 0)
        last_work_ns_ = now;
      if (idle_since_ns_ == 0)
        idle_since_ns_ = now;
      if (now - last_work_ns_ >= (device_inflight_ > 0 ? io_spin_ns_ : spin_next_ns_)) {
        idle_wait();
        last_work_ns_ = 0;
      }
    }
  }
}

void Reactor::dispatch(Message m) {
  ++stats_.messages_in;
  m.item->run();
}

bool Reactor::drain_inbound() {
  bool any = false;
  for (int i = 0; i < 256; ++i) {
    std::optional<Message> m = impl_->consumer.try_take();
    if (!m)
      break;
    any = true;
    dispatch(*m);
  }
  return any;
}

bool Reactor::run_ready() {
  if (ready_.empty())
    return false;
  // Run what is ready now; handles scheduled meanwhile wait for the next round.
  size_t n = ready_.size();
  while (n-- > 0 && !ready_.empty()) {
    std::coroutine_handle<> h = ready_.front();
    ready_.pop_front();
    h.resume();
  }
  return true;
}

bool Reactor::flush_outbound() {
  bool any = false;
  auto& parked = impl_->parked;
  while (!parked.empty()) {
    auto [target, m] = parked.front();
    if (!impl_->producers[target].try_put(m))
      break;
    parked.pop_front();
    std::atomic_thread_fence(std::memory_order_seq_cst);
    Reactor& r = runtime_->reactor(target);
    if (r.sleeping_.load(std::memory_order_relaxed))
      r.wake();
    any = true;
  }
  return any;
}

void Reactor::post(uint32_t target, Message m) {
  ++stats_.messages_out;
  if (!impl_->parked.empty() || !impl_->producers[target].try_put(m)) {
    impl_->parked.emplace_back(target, m);
    return;
  }
  if (target == index_)
    return;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  Reactor& r = runtime_->reactor(target);
  if (r.sleeping_.load(std::memory_order_relaxed))
    r.wake();
}

void Reactor::wake() {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(event_fd_, &one, sizeof(one));
}

// --- io_uring ---

io_uring_sqe* Reactor::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  SLUICE_ASSERT(sqe != nullptr, "io_uring submission queue full after a submit");
  return sqe;
}

std::pair<io_uring_sqe*, io_uring_sqe*> Reactor::get_sqe_pair() {
  // A pair split across two submissions would lose its link.
  if (io_uring_sq_space_left(&ring_) < 2)
    io_uring_submit(&ring_);
  io_uring_sqe* a = io_uring_get_sqe(&ring_);
  io_uring_sqe* b = io_uring_get_sqe(&ring_);
  SLUICE_ASSERT(a != nullptr && b != nullptr, "io_uring submission queue full after a submit");
  return {a, b};
}

namespace {
// Takes a run of `n` entries of a sparse table for `update` (io_uring's update call for that
// table, returning < 0 on failure), giving them back when it fails.
template <typename Update>
Result<uint32_t> take_entries(std::vector<bool>& used, uint32_t n, int core, const char* table,
                              Update update) {
  const uint32_t first = take_run(used, n);
  if (first == used.size())
    return resource_exhausted("para core " + std::to_string(core) + ": no " + std::to_string(n) +
                              " free entries in the ring's " + table + " table");
  if (const int rc = update(first); rc < 0) {
    for (uint32_t i = first; i < first + n; ++i)
      used[i] = false;
    return errno_status(-rc, std::string("registering ") + table + "s with para core " +
                                 std::to_string(core) + "'s io_uring");
  }
  return first;
}
}  // namespace

Result<uint32_t> Reactor::register_buffers(const iovec* iov, uint32_t n) {
  if (!ring_info_.buffer_table)
    return unimplemented("this kernel's io_uring has no sparse buffer table (5.19+)");
  return take_entries(buffer_used_, n, core_, "buffer", [&](uint32_t first) {
    return io_uring_register_buffers_update_tag(&ring_, first, iov, nullptr, n);
  });
}

void Reactor::unregister_buffers(uint32_t first, uint32_t n) {
  // A null iovec empties an entry.
  const std::vector<iovec> empty(n, iovec{nullptr, 0});
  const int rc = io_uring_register_buffers_update_tag(&ring_, first, empty.data(), nullptr, n);
  SLUICE_ASSERT(rc >= 0, "emptying entries of the ring's buffer table failed");
  for (uint32_t i = first; i < first + n; ++i)
    buffer_used_[i] = false;
}

Result<uint32_t> Reactor::register_files(const int* fds, uint32_t n) {
  if (!ring_info_.file_table)
    return unimplemented("this kernel's io_uring has no sparse file table (5.19+)");
  return take_entries(file_used_, n, core_, "file", [&](uint32_t first) {
    return io_uring_register_files_update(&ring_, first, fds, n);
  });
}

void Reactor::unregister_files(uint32_t first, uint32_t n) {
  std::vector<int> none(n, -1);
  const int rc = io_uring_register_files_update(&ring_, first, none.data(), n);
  SLUICE_ASSERT(rc >= 0, "emptying entries of the ring's file table failed");
  for (uint32_t i = first; i < first + n; ++i)
    file_used_[i] = false;
}

void Reactor::track(IoOp* op) {
  op->iprev = nullptr;
  op->inext = inflight_;
  if (inflight_ != nullptr)
    inflight_->iprev = op;
  inflight_ = op;
  ++inflight_count_;
  device_inflight_ += op->device ? 1 : 0;
  ++stats_.io_submitted;
}

void Reactor::untrack(IoOp* op) {
  if (op->iprev != nullptr)
    op->iprev->inext = op->inext;
  if (op->inext != nullptr)
    op->inext->iprev = op->iprev;
  if (inflight_ == op)
    inflight_ = op->inext;
  op->iprev = op->inext = nullptr;
  --inflight_count_;
  device_inflight_ -= op->device ? 1 : 0;
}

void Reactor::cancel_op(IoOp* op) {
  io_uring_sqe* sqe = get_sqe();
  if (op->cancel_fd >= 0) {
    io_uring_prep_cancel_fd(sqe, op->cancel_fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, kFdCancelTag | static_cast<uint32_t>(op->cancel_fd));
    ++op->fd_cancels;
  } else {
    io_uring_prep_cancel64(sqe, reinterpret_cast<uint64_t>(op), 0);
    io_uring_sqe_set_data64(sqe, 0);
  }
  ++stats_.io_cancelled;
}

void Reactor::recancel_fd(int fd) {
  for (IoOp* op = inflight_; op != nullptr; op = op->inext) {
    if (op->cancel_fd == fd && op->fd_cancels > 0 && op->fd_cancels < kMaxFdCancels) {
      cancel_op(op);
      return;  // one sweep cancels every operation on the fd
    }
  }
}

bool Reactor::reap() {
  const bool pending_sqes = io_uring_sq_ready(&ring_) > 0;
  if (pending_sqes || (ring_info_.defer_taskrun && inflight_count_ > 0)) {
    io_uring_submit_and_get_events(&ring_);
  }
  io_uring_cqe* cqes[kCqeBatch];
  bool any = false;
  for (;;) {
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kCqeBatch);
    if (n == 0)
      break;
    struct Done {
      uint64_t data;
      int32_t res;
      uint32_t flags;
    } done[kCqeBatch];
    for (unsigned i = 0; i < n; ++i) {
      done[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
    }
    io_uring_cq_advance(&ring_, n);
    for (unsigned i = 0; i < n; ++i) {
      if (done[i].data == 0)
        continue;  // a cancel request's own completion, or the first of a linked pair
      if ((done[i].data & kFdCancelMask) == kFdCancelTag) {
        recancel_fd(static_cast<int>(done[i].data & ~kFdCancelMask));
        continue;
      }  // a cancel request's own completion
      if (done[i].data == kWakeTag) {
        impl_->wake_armed = false;
        continue;
      }
      auto* op = reinterpret_cast<IoOp*>(done[i].data);
      untrack(op);
      ++stats_.io_completed;
      op->res = done[i].res;
      op->cqe_flags = done[i].flags;
      if (op->on_complete != nullptr)
        op->on_complete(op);
      else
        op->waiter.resume();
    }
    any = true;
  }
  return any;
}

void Reactor::idle_wait() {
  if (idle_ == IdleMode::kPoll && !stopping_)
    return;
  if (!impl_->wake_armed) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_read(sqe, event_fd_, &impl_->wake_buf, sizeof(impl_->wake_buf), 0);
    io_uring_sqe_set_data64(sqe, kWakeTag);
    impl_->wake_armed = true;
  }
  int64_t timeout_ns = stopping_ ? 20'000'000 : 500'000'000;
  if (impl_->timers > 0) {
    uint64_t earliest = ~uint64_t{0};
    for (TimerEntry* head : impl_->wheel) {
      for (TimerEntry* t = head; t != nullptr; t = t->next)
        earliest = std::min(earliest, t->expiry_tick);
    }
    const uint64_t now = now_tick();
    const int64_t d = earliest > now ? static_cast<int64_t>(earliest - now) * kTickNs : 0;
    timeout_ns = std::min(timeout_ns, d);
  }
  sleeping_.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (std::optional<Message> m = impl_->consumer.try_take()) {
    sleeping_.store(false, std::memory_order_relaxed);
    dispatch(*m);
    return;
  }
  if (stop_requested_.load(std::memory_order_acquire) && !stopping_) {
    sleeping_.store(false, std::memory_order_relaxed);
    return;
  }
  if (timeout_ns > 0) {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    io_uring_cqe* cqe = nullptr;
    ++stats_.sleeps;
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  // No read of the eventfd here: the armed read consumes every count written while it is
  // pending, and a count written after it completed only makes the next sleep return at once.
  // A read per sleep would be a system call on every cross-core wake-up for that rare case.
  sleeping_.store(false, std::memory_order_relaxed);
}

void Reactor::begin_stop() {
  stopping_ = true;
  impl_->stop_deadline_ns = monotonic_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                 runtime_->options().shutdown_timeout)
                                                 .count();
  for (IoOp* op = inflight_; op != nullptr; op = op->inext)
    cancel_op(op);
  for (TimerEntry*& head : impl_->wheel) {
    while (head != nullptr) {
      TimerEntry* t = head;
      remove_timer(t);
      t->cancelled = true;
      schedule(t->waiter);
    }
  }
}

// --- timers: a hashed wheel of kWheelSlots slots of kTimerTick each ---

void Reactor::add_timer(TimerEntry* t, std::chrono::nanoseconds d) {
  const int64_t ticks = (std::max<int64_t>(d.count(), 0) + kTickNs - 1) / kTickNs;
  t->expiry_tick = now_tick() + static_cast<uint64_t>(ticks);
  TimerEntry*& head = impl_->wheel[t->expiry_tick % kWheelSlots];
  t->prev = nullptr;
  t->next = head;
  if (head != nullptr)
    head->prev = t;
  head = t;
  t->armed = true;
  ++impl_->timers;
}

void Reactor::remove_timer(TimerEntry* t) {
  if (!t->armed)
    return;
  TimerEntry*& head = impl_->wheel[t->expiry_tick % kWheelSlots];
  if (t->prev != nullptr)
    t->prev->next = t->next;
  if (t->next != nullptr)
    t->next->prev = t->prev;
  if (head == t)
    head = t->next;
  t->prev = t->next = nullptr;
  t->armed = false;
  --impl_->timers;
}

bool Reactor::fire_timers() {
  if (impl_->timers == 0) {
    impl_->current_tick = now_tick();
    return false;
  }
  const uint64_t now = now_tick();
  bool any = false;
  const uint64_t from =
      now - impl_->current_tick >= kWheelSlots ? now - kWheelSlots + 1 : impl_->current_tick;
  for (uint64_t tick = from; tick <= now; ++tick) {
    TimerEntry* t = impl_->wheel[tick % kWheelSlots];
    while (t != nullptr) {
      TimerEntry* next = t->next;
      if (t->expiry_tick <= now) {
        remove_timer(t);
        ++stats_.timers_fired;
        ready_.push_back(t->waiter);
        any = true;
      }
      t = next;
    }
  }
  impl_->current_tick = now;
  return any;
}

// --- tasks and memory ---

void Reactor::spawn(Task<void> t) {
  runtime_->hold();
  ++stats_.tasks_spawned;
  run_detached(std::move(t), runtime_);
}

Buffer Reactor::allocate(size_t size) {
  void* p = arena_->allocate(size, 4096);
  if (p == nullptr)
    return {};
  return Buffer(arena_.get(), static_cast<std::byte*>(p), size);
}

}  // namespace sluice::para

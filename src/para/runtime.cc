#include "sluice/para/runtime.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "sluice/common/knobs.h"
#include "sluice/common/log.h"
#include "sluice/common/topology.h"

namespace sluice::para {
namespace {

const StringKnob kCores({.name = "para.cores",
                         .default_value = "",
                         .stage = KnobStage::kStart,
                         .help = "cores to run reactors on, as a CPU list (0-3,6); empty: every "
                                 "core the process may run on"});
const IntKnob kArenaSize({.name = "para.arena_size_mb",
                          .default_value = 64,
                          .min = 2,
                          .max = 1 << 20,
                          .stage = KnobStage::kStart,
                          .help = "memory arena per partition, MiB (rounded up to 2 MiB)"});
const EnumKnob kHugePages({.name = "para.huge_pages",
                           .default_value = "auto",
                           .values = {"auto", "hugetlb", "thp", "off"},
                           .stage = KnobStage::kStart,
                           .help = "arena backing: explicit hugetlb pages, else transparent huge "
                                   "pages (auto); or only one kind; or 4 KiB pages"});
const IntKnob kRingDepth({.name = "para.ring_depth",
                          .default_value = 256,
                          .min = 8,
                          .max = 32768,
                          .stage = KnobStage::kStart,
                          .help = "io_uring submission queue entries per partition"});
const BoolKnob kSqpoll({.name = "para.sqpoll",
                        .default_value = false,
                        .stage = KnobStage::kStart,
                        .help = "kernel SQ polling thread per ring (burns a core; no submit "
                                "syscalls)"});
const EnumKnob kIdle({.name = "para.idle",
                      .default_value = "sleep",
                      .values = {"sleep", "poll"},
                      .stage = KnobStage::kStart,
                      .help = "an idle reactor sleeps in io_uring_enter, or busy-polls"});
const IntKnob kIdleSpin({.name = "para.idle_spin_us",
                         .default_value = 50,
                         .min = 0,
                         .max = 1'000'000,
                         .stage = KnobStage::kStart,
                         .help = "with para.idle=sleep, how long a reactor keeps polling after "
                                 "its last work before it sleeps"});
const IntKnob kIoSpin({.name = "para.io_spin_us",
                       .default_value = 1000,
                       .min = 0,
                       .max = 1'000'000,
                       .stage = KnobStage::kStart,
                       .help = "with para.idle=sleep and a file read or write in flight, how long "
                               "a reactor keeps polling after its last work before it sleeps"});
const IntKnob kOffloadThreads({.name = "para.offload_threads",
                               .default_value = 2,
                               .min = 1,
                               .max = 256,
                               .stage = KnobStage::kStart,
                               .help = "helper threads that run blocking work (para::offload)"});
const IntKnob kShutdownTimeout({.name = "para.shutdown_timeout_ms",
                                .default_value = 5000,
                                .min = 1,
                                .max = 3'600'000,
                                .stage = KnobStage::kStart,
                                .help = "how long stop() waits for tasks to finish after "
                                        "cancelling their I/O"});

}  // namespace

Result<RuntimeOptions> RuntimeOptions::from_knobs() {
  RuntimeOptions o;
  const std::string cores = kCores.get();
  if (!cores.empty()) {
    Result<std::vector<int>> list = parse_cpu_list(cores);
    if (!list.is_ok())
      return list.status().with_context("knob para.cores");
    o.cores = std::move(list).value();
  }
  o.arena_size = static_cast<size_t>(kArenaSize.get()) << 20;
  SLUICE_ASSIGN_OR_RETURN(o.huge_pages, parse_huge_pages(kHugePages.get()));
  o.ring_depth = static_cast<unsigned>(kRingDepth.get());
  o.sqpoll = kSqpoll.get();
  o.idle = kIdle.get() == "poll" ? IdleMode::kPoll : IdleMode::kSleep;
  o.offload_threads = static_cast<int>(kOffloadThreads.get());
  o.idle_spin = std::chrono::microseconds(kIdleSpin.get());
  o.io_spin = std::chrono::microseconds(kIoSpin.get());
  o.shutdown_timeout = std::chrono::milliseconds(kShutdownTimeout.get());
  return o;
}

// Helper threads for offload(), and the producers that non-reactor threads use to post.
struct Runtime::Pool {
  struct External {
    std::mutex mu;
    oq::OQueue<Message>::Producer producer;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<WorkItem*> jobs;
  bool stop = false;
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<External>> externals;
  std::vector<std::thread> reactor_threads;

  void worker() {
    for (;;) {
      WorkItem* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || !jobs.empty(); });
        if (jobs.empty())
          return;
        job = jobs.front();
        jobs.pop_front();
      }
      job->run();
    }
  }
};

Result<std::unique_ptr<Runtime>> Runtime::start(RuntimeOptions options) {
  SLUICE_ASSIGN_OR_RETURN(CpuTopology topo, CpuTopology::detect());
  const std::vector<int>& allowed = topo.allowed_cpus();
  std::vector<int> cores = options.cores.empty() ? allowed : options.cores;
  if (cores.empty())
    return invalid_argument("para: no cores to run on");
  std::set<int> seen;
  for (int c : cores) {
    if (std::find(allowed.begin(), allowed.end(), c) == allowed.end()) {
      return invalid_argument("para: core " + std::to_string(c) +
                              " is not one this process may run on (allowed: " +
                              format_cpu_list(allowed) + "); fix para.cores");
    }
    if (!seen.insert(c).second) {
      return invalid_argument("para: core " + std::to_string(c) +
                              " is listed twice; each core gets one partition");
    }
  }
  if (options.ring_depth < 8)
    return invalid_argument("para: ring depth must be at least 8");
  auto rt = std::unique_ptr<Runtime>(new Runtime());
  rt->options_ = std::move(options);
  rt->cores_ = std::move(cores);
  SLUICE_RETURN_IF_ERROR(rt->launch());
  return rt;
}

Status Runtime::launch() {
  // Build spdlog's registry here, before any reactor exists: reactors that log first (arena
  // setup) would otherwise race to construct it inside the library, which ThreadSanitizer
  // reports as a data race on the default logger's level.
  (void)spdlog::default_logger_raw();
  const size_t n = cores_.size();
  pool_ = std::make_unique<Pool>();
  for (size_t i = 0; i < n; ++i) {
    inbound_.push_back(std::make_unique<oq::OQueue<Message>>(
        "para.inbound." + std::to_string(cores_[i]), options_.queue_capacity));
  }
  for (size_t i = 0; i < n; ++i) {
    auto ext = std::make_unique<Pool::External>();
    ext->producer = inbound_[i]->attach_producer(oq::WaitPolicy::kYield);
    pool_->externals.push_back(std::move(ext));
    reactors_.push_back(
        std::unique_ptr<Reactor>(new Reactor(this, static_cast<uint32_t>(i), cores_[i])));
  }
  for (size_t i = 0; i < n; ++i) {
    pool_->reactor_threads.emplace_back([r = reactors_[i].get()] { r->thread_main(); });
  }
  Status failure;
  for (auto& r : reactors_) {
    r->started_.wait(false, std::memory_order_acquire);
    if (!r->start_status_.is_ok() && failure.is_ok())
      failure = r->start_status_;
  }
  if (!failure.is_ok()) {
    started_.store(-1, std::memory_order_release);
    started_.notify_all();
    for (auto& t : pool_->reactor_threads)
      t.join();
    pool_->reactor_threads.clear();
    stopped_.store(true);
    for (auto& e : pool_->externals)
      e->producer.detach();
    return failure;
  }
  for (auto& r : reactors_) {
    for (const std::string& note : r->arena().notes()) {
      notes_.push_back("core " + std::to_string(r->core()) + " arena: " + note);
    }
    if (!r->ring_info().registered_buffers) {
      notes_.push_back("core " + std::to_string(r->core()) +
                       " ring: arena not registered with io_uring (locked-memory limit?); "
                       "O_DIRECT reads use plain READ instead of READ_FIXED");
    }
    if (!r->ring_info().buffer_table || !r->ring_info().file_table) {
      notes_.push_back("core " + std::to_string(r->core()) +
                       " ring: no sparse buffer or file table (kernel before 5.19, or "
                       "RLIMIT_NOFILE below 1024); zicio channels hosted here read with plain "
                       "READ on unregistered files");
    }
    if (!r->ring_info().defer_taskrun) {
      notes_.push_back("core " + std::to_string(r->core()) + " ring: " + r->ring_info().describe());
    }
  }
  // One line per distinct fallback, not one per core.
  std::set<std::string> said;
  for (const std::string& note : notes_) {
    const std::string what = note.substr(note.find(':') + 2);
    if (said.insert(what).second)
      SLUICE_LOG(info, "para: {}", what);
  }
  for (int i = 0; i < options_.offload_threads; ++i) {
    pool_->threads.emplace_back([p = pool_.get()] { p->worker(); });
  }
  started_.store(static_cast<int>(n), std::memory_order_release);
  started_.notify_all();
  SLUICE_LOG(debug, "para: {} partitions on cores {}", n, format_cpu_list(cores_));
  return {};
}

Runtime::~Runtime() {
  stop();
}

void Runtime::stop() {
  if (stopped_.exchange(true))
    return;
  SLUICE_ASSERT(this_reactor() == nullptr, "Runtime::stop called on a reactor");
  for (auto& r : reactors_) {
    r->stop_requested_.store(true, std::memory_order_release);
    r->wake();
  }
  for (auto& t : pool_->reactor_threads)
    t.join();
  pool_->reactor_threads.clear();
  {
    std::lock_guard<std::mutex> lock(pool_->mu);
    pool_->stop = true;
  }
  pool_->cv.notify_all();
  for (auto& t : pool_->threads)
    t.join();
  pool_->threads.clear();
  for (auto& e : pool_->externals)
    e->producer.detach();
}

Result<uint32_t> Runtime::index_of(int core) const {
  for (size_t i = 0; i < cores_.size(); ++i) {
    if (cores_[i] == core)
      return static_cast<uint32_t>(i);
  }
  return invalid_argument("para: no partition runs on core " + std::to_string(core) +
                          " (partitions: " + format_cpu_list(cores_) + ")");
}

void Runtime::post_external(uint32_t target, Message m) {
  Pool::External& e = *pool_->externals[target];
  {
    std::lock_guard<std::mutex> lock(e.mu);
    e.producer.put(m);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  Reactor& r = *reactors_[target];
  if (r.sleeping_.load(std::memory_order_relaxed))
    r.wake();
}

void Runtime::offload_post(WorkItem* item) {
  {
    std::lock_guard<std::mutex> lock(pool_->mu);
    pool_->jobs.push_back(item);
  }
  pool_->cv.notify_one();
}

}  // namespace sluice::para

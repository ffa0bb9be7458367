// Channel: the worker side (get/put, measurement), the control loop (pacing, reads) and the
// plumbing between them. The switchboard (switchboard.h) is the only state the two sides share
// besides the immutable plan and buffers; its header comment holds the invariants.
#include "sluice/zicio/channel.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/stat.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <coroutine>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/common/clock.h"
#include "sluice/common/knobs.h"
#include "sluice/common/log.h"
#include "sluice/para/runtime.h"
#include "zicio/pacing.h"
#include "zicio/switchboard.h"

namespace sluice::zicio {

namespace {

const IntKnob kRingBuffers({.name = "zicio.ring_buffers",
                            .default_value = 16,
                            .min = 2,
                            .max = 512,
                            .stage = KnobStage::kStart,
                            .help = "2 MiB buffers in a channel's ring (16 = 32 MiB)"});
const IntKnob kPageKib({.name = "zicio.page_kib",
                        .default_value = 2048,
                        .min = 8,
                        .max = 2048,
                        .stage = KnobStage::kStart,
                        .help = "page size handed to the worker, KiB (a power of two, 8..2048)"});
const EnumKnob kHugePages({.name = "zicio.huge_pages",
                           .default_value = "auto",
                           .values = {"auto", "hugetlb", "thp", "off"},
                           .stage = KnobStage::kStart,
                           .help = "backing of the ring: hugetlb, else THP, else small pages"});
const BoolKnob kDirect({.name = "zicio.direct",
                        .default_value = true,
                        .stage = KnobStage::kStart,
                        .help = "read with O_DIRECT (falls back to buffered where refused)"});
const BoolKnob kRegister({.name = "zicio.register",
                          .default_value = true,
                          .stage = KnobStage::kStart,
                          .help = "register buffers and files with io_uring when memlock allows"});
const IntKnob kMaxInflight({.name = "zicio.max_inflight",
                            .default_value = 8,
                            .min = 1,
                            .max = 64,
                            .stage = KnobStage::kStart,
                            .help = "most reads in flight per channel, reward requests included"});
const IntKnob kEmaShift({.name = "zicio.ema_shift",
                         .default_value = 4,
                         .min = 0,
                         .max = 10,
                         .stage = KnobStage::kStart,
                         .help = "EMA weight 1/2^shift of S_u and S_d (4: the paper's 1/16)"});
const FloatKnob kReadSlack({.name = "zicio.read_slack",
                            .default_value = 0.5,
                            .min = 0,
                            .max = 100,
                            .stage = KnobStage::kStart,
                            .help = "release reads this many extra read times early"});
const FloatKnob kReadDeviations({.name = "zicio.read_deviations",
                                 .default_value = 16,
                                 .min = 0,
                                 .max = 100,
                                 .stage = KnobStage::kStart,
                                 .help = "release reads against the mean read time plus this "
                                         "many mean absolute deviations"});
const IntKnob kSpinUs(
    {.name = "zicio.spin_us",
     .default_value = 20,
     .min = 0,
     .max = 100000,
     .stage = KnobStage::kRuntime,
     .help = "get_page_wait spins this long before sleeping on a futex (not after a wait "
             "4x longer)"});
const IntKnob kIdlePollMs({.name = "zicio.idle_poll_ms",
                           .default_value = 50,
                           .min = 1,
                           .max = 10000,
                           .stage = KnobStage::kStart,
                           .help = "longest sleep of the control loop while the ring is full"});

const IntKnob kRingCacheMb(
    {.name = "zicio.ring_cache_mb",
     .default_value = 64,
     .min = 0,
     .max = 1 << 20,
     .stage = KnobStage::kRuntime,
     .help = "MiB of closed channels' rings the process keeps for the next open (0: unmap at "
             "close)"});

const BoolKnob kBypass({.name = "zicio.bypass",
                        .default_value = false,
                        .stage = KnobStage::kStart,
                        .help = "read the block device at the file's extents (FIEMAP; root only)"});

const IntKnob kControlCore(
    {.name = "zicio.control_core",
     .default_value = -1,
     .min = -1,
     .max = 4095,
     .stage = KnobStage::kStart,
     .help = "core the control loop's thread is pinned to (-1: not pinned)"});

// Tags of the control ring's entries that are not reads (reads carry their buffer's index).
constexpr uint64_t kKickTag = ~uint64_t{0};
constexpr uint64_t kTimerTag = ~uint64_t{0} - 1;
constexpr uint64_t kTimerUpdateTag = ~uint64_t{0} - 2;
// File-system bypass: the reads of a chunk whose extents need more device reads than this go
// through the file instead (a badly fragmented file gains nothing from the bypass).
constexpr size_t kMaxPiecesPerChunk = 64;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

uint64_t align_down(uint64_t v, uint64_t a) {
  return v / a * a;
}
uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

bool thp_disabled() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(f, line);
  return line.find("[never]") != std::string::npos;
}

// Rings of closed channels, kept for the next open in this process (zicio.ring_cache_mb). A new
// anonymous mapping is zeroed page by page, and in a VM that returns freed memory to its host
// each of those pages is a host fault as well: with scans 3 s apart, opening a channel with a
// new 32 MiB ring took about 100 ms of CPU on the 2-vCPU test VM, as much as scanning 1 GiB,
// and 1.5 ms with a kept one (docs/zicio.md). A kept ring is PROT_NONE while it waits, so a
// page used after its channel closed still faults, as it would after munmap, unless another
// channel has taken the ring since.
struct CachedRing {
  std::byte* base = nullptr;
  size_t bytes = 0;
  uint32_t backing = 0;
  HugePageMode mode = HugePageMode::kAuto;  // what the channel that mapped it asked for
  bool simulated_no_hugetlb = false;
};

class RingCache {
 public:
  static RingCache& instance() {
    static auto* cache = new RingCache;  // never destroyed: channels may close during exit
    return *cache;
  }

  // A ring of `bytes` mapped for the same request, read-write again; nullopt when none is kept.
  // Rings beyond `cap_bytes` (lowered since they were kept) are unmapped first.
  std::optional<CachedRing> take(size_t bytes, HugePageMode mode, bool simulated,
                                 size_t cap_bytes) {
    std::vector<CachedRing> evicted;
    std::optional<CachedRing> found;
    {
      std::lock_guard lock(mu_);
      trim_locked(cap_bytes, &evicted);
      for (size_t i = 0; i < rings_.size(); ++i) {
        const CachedRing r = rings_[i];
        if (r.bytes != bytes || r.mode != mode || r.simulated_no_hugetlb != simulated)
          continue;
        if (mprotect(r.base, r.bytes, PROT_READ | PROT_WRITE) != 0)
          continue;  // stays PROT_NONE in the list until evicted
        rings_.erase(rings_.begin() + static_cast<ptrdiff_t>(i));
        held_ -= r.bytes;
        found = r;
        break;
      }
    }
    for (const CachedRing& e : evicted)
      munmap(e.base, e.bytes);
    return found;
  }

  // Keeps `r` if it fits under `cap_bytes`, evicting the oldest rings to make room; otherwise,
  // or when it cannot be protected, unmaps it.
  void give(const CachedRing& r, size_t cap_bytes) {
    std::vector<CachedRing> evicted;
    {
      std::lock_guard lock(mu_);
      const bool keep = r.bytes <= cap_bytes && mprotect(r.base, r.bytes, PROT_NONE) == 0;
      trim_locked(keep ? cap_bytes - r.bytes : cap_bytes, &evicted);
      if (keep) {
        rings_.push_back(r);
        held_ += r.bytes;
      } else {
        evicted.push_back(r);
      }
    }
    for (const CachedRing& e : evicted)
      munmap(e.base, e.bytes);
  }

 private:
  // Moves the oldest rings to `evicted` until at most `bytes` are held (unmapped by the caller,
  // outside the lock).
  void trim_locked(size_t bytes, std::vector<CachedRing>* evicted) {
    while (!rings_.empty() && held_ > bytes) {
      evicted->push_back(rings_.front());
      held_ -= rings_.front().bytes;
      rings_.erase(rings_.begin());
    }
  }

  std::mutex mu_;
  std::vector<CachedRing> rings_;  // oldest first
  size_t held_ = 0;
};

// The ring's memory: one mapping of n × 2 MiB, new or from the RingCache.
struct Buffers {
  std::byte* base = nullptr;
  size_t bytes = 0;
  uint32_t backing = 0;  // as ControlMetrics::backing
  bool reused = false;   // taken from the RingCache
  HugePageMode mode = HugePageMode::kAuto;
  bool simulated_no_hugetlb = false;

  Buffers() = default;
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;
  ~Buffers() { release(); }

  void release() {
    if (base != nullptr)
      RingCache::instance().give({.base = base,
                                  .bytes = bytes,
                                  .backing = backing,
                                  .mode = mode,
                                  .simulated_no_hugetlb = simulated_no_hugetlb},
                                 static_cast<size_t>(kRingCacheMb.get()) << 20);
    base = nullptr;
  }

  Status create(size_t n, HugePageMode want, bool simulate_no_hugetlb,
                std::vector<std::string>* notes) {
    bytes = n * kChunkSize;
    mode = want;
    simulated_no_hugetlb = simulate_no_hugetlb;
    if (std::optional<CachedRing> r = RingCache::instance().take(
            bytes, want, simulate_no_hugetlb, static_cast<size_t>(kRingCacheMb.get()) << 20)) {
      base = r->base;
      backing = r->backing;
      reused = true;
      return Status::ok();
    }
    if (want == HugePageMode::kAuto || want == HugePageMode::kHugetlb) {
      void* p = simulate_no_hugetlb ? MAP_FAILED
                                    : mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
                                               (21 << MAP_HUGE_SHIFT) | MAP_POPULATE,
                                           -1, 0);
      if (p != MAP_FAILED) {
        base = static_cast<std::byte*>(p);
        backing = 2;
        return Status::ok();
      }
      if (want == HugePageMode::kHugetlb)
        return resource_exhausted(
            "cannot map " + std::to_string(bytes >> 20) +
            " MiB of explicit huge pages for the zicio ring: raise /proc/sys/vm/nr_hugepages or "
            "set zicio.huge_pages=auto");
      notes->push_back(
          "no explicit huge pages (vm.nr_hugepages is 0 or used up): ring buffers use " +
          std::string(thp_disabled() ? "small pages" : "transparent huge pages"));
    }
    // 2 MiB-aligned ordinary mapping: over-map, trim both ends.
    const size_t span = bytes + kChunkSize;
    void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
      return resource_exhausted("cannot map " + std::to_string(bytes >> 20) +
                                " MiB for the zicio ring: lower zicio.ring_buffers");
    const auto start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = align_up(start, kChunkSize);
    if (aligned > start)
      munmap(raw, aligned - start);
    const uintptr_t end = start + span;
    if (end > aligned + bytes)
      munmap(reinterpret_cast<void*>(aligned + bytes), end - (aligned + bytes));
    base = reinterpret_cast<std::byte*>(aligned);
    backing = 0;
    if (want != HugePageMode::kOff && !thp_disabled() && madvise(base, bytes, MADV_HUGEPAGE) == 0)
      backing = 1;
      // Fault the ring in now, not on the first read into each buffer.
#ifdef MADV_POPULATE_WRITE
    if (madvise(base, bytes, MADV_POPULATE_WRITE) != 0)
#endif
      std::memset(base, 0, bytes);
    return Status::ok();
  }

  std::byte* slot(uint32_t i) const {
    return base + size_t{i} * kChunkSize;
  }
};

// One extent of a file as FIEMAP reports it: `length` bytes at file offset `logical` lie at
// byte `physical` of the block device. `zero` marks preallocated (unwritten) extents, which
// read as zeros.
struct Extent {
  uint64_t logical = 0;
  uint64_t physical = 0;
  uint64_t length = 0;
  bool zero = false;
};

struct FileInfo {
  std::string path;
  int fd = -1;
  int dev_fd = -1;              // file-system bypass: the block device (owned by devices_)
  std::vector<Extent> extents;  // file-system bypass: sorted by logical offset
  uint64_t size = 0;
  uint64_t stream_base = 0;
  uint64_t align = 4096;
  bool direct = false;
};

// One read of the plan: [read_offset, read_offset + read_len) of `file`, aligned for O_DIRECT,
// lands at `buffer_offset` of its chunk's buffer; [skip, skip + len) of it is handed out.
struct PlanRead {
  uint64_t read_offset = 0;
  uint64_t stream_offset = 0;  // of the first handed-out byte
  uint32_t file = 0;
  uint32_t buffer_offset = 0;
  uint32_t read_len = 0;
  uint32_t skip = 0;
  uint32_t len = 0;
  bool last_of_file = false;
};

// One chunk of the plan: one buffer, filled by one read, or by several small ones packed back to
// back (range pieces, small files): a buffer per 64 KiB piece would cost a pass, a publish and a
// wake-up per 64 KiB.
struct PlanChunk {
  uint64_t before = 0;      // bytes handed out by all earlier chunks
  uint32_t first_read = 0;  // index of its first read in Plan::reads
  uint32_t num_reads = 0;
  uint32_t read_len = 0;  // bytes its reads cover
  uint32_t len = 0;       // bytes it hands out
};

struct Plan {
  std::vector<PlanChunk> chunks;
  std::vector<PlanRead> reads;
  uint64_t total_bytes = 0;

  const PlanRead& read(const PlanChunk& c, uint32_t i) const { return reads[c.first_read + i]; }
};

// The most reads packed into one chunk (32 × 64 KiB fill a buffer); fits the read index field of
// a read's io_uring tag.
constexpr uint32_t kMaxReadsPerChunk = 64;

void plan_piece(std::vector<PlanRead>* reads, const FileInfo& f, uint32_t file, uint64_t s,
                uint64_t e) {
  while (s < e) {
    // A read is at most a buffer long. Full scans and ranges on 2 MiB boundaries read 2 MiB
    // aligned chunks; a small range is one read wherever it lies.
    const uint64_t boundary = align_down(s, f.align) + kChunkSize;
    const uint64_t pe = std::min(e, boundary);
    PlanRead r;
    r.file = file;
    r.read_offset = align_down(s, f.align);
    r.read_len = static_cast<uint32_t>(std::min(align_up(pe, f.align), boundary) - r.read_offset);
    r.skip = static_cast<uint32_t>(s - r.read_offset);
    r.len = static_cast<uint32_t>(pe - s);
    r.stream_offset = f.stream_base + s;
    reads->push_back(r);
    s = pe;
  }
}

Plan build_plan(const std::vector<FileInfo>& files, const std::vector<Range>& ranges) {
  Plan plan;
  std::vector<PlanRead>& reads = plan.reads;
  if (ranges.empty()) {
    for (uint32_t i = 0; i < files.size(); ++i)
      plan_piece(&reads, files[i], i, 0, files[i].size);
  } else {
    for (const Range& r : ranges) {
      const uint64_t rs = r.offset, re = r.offset + r.length;
      for (uint32_t i = 0; i < files.size(); ++i) {
        const uint64_t fs = files[i].stream_base, fe = fs + files[i].size;
        const uint64_t s = std::max(rs, fs), e = std::min(re, fe);
        if (s < e)
          plan_piece(&reads, files[i], i, s - fs, e - fs);
      }
    }
  }
  // Pack consecutive reads into chunks while they fit one buffer, in stream order. Every read
  // is a multiple of its file's alignment long, so each one packed after it starts aligned.
  for (uint32_t i = 0; i < reads.size(); ++i) {
    PlanRead& r = reads[i];
    r.last_of_file = i + 1 == reads.size() || reads[i + 1].file != r.file;
    if (plan.chunks.empty() || plan.chunks.back().read_len + r.read_len > kChunkSize ||
        plan.chunks.back().num_reads == kMaxReadsPerChunk)
      plan.chunks.push_back({.before = plan.total_bytes, .first_read = i});
    PlanChunk& c = plan.chunks.back();
    r.buffer_offset = c.read_len;
    c.read_len += r.read_len;
    c.len += r.len;
    ++c.num_reads;
    plan.total_bytes += r.len;
  }
  return plan;
}

std::string backing_name(uint32_t b) {
  b &= ~detail::kBackingReused;
  return b == 2 ? "hugetlb" : b == 1 ? "thp" : "small pages";
}

std::string loop_state_name(uint32_t s) {
  switch (static_cast<detail::LoopState>(s)) {
    case detail::LoopState::kStarting: return "starting";
    case detail::LoopState::kRunning: return "running";
    case detail::LoopState::kFinished: return "finished";
    case detail::LoopState::kFailed: return "failed";
    case detail::LoopState::kStopped: return "stopped";
  }
  return "?";
}

ChannelStats stats_from(const detail::Switchboard& sb) {
  const auto r = std::memory_order_relaxed;
  const detail::Header& h = sb.header();
  const detail::WorkerMetrics& w = sb.worker();
  const detail::ControlMetrics& c = sb.control();
  ChannelStats s;
  s.name = std::string(h.name, strnlen(h.name, detail::kNameBytes));
  s.total_bytes = h.total_bytes;
  s.total_chunks = h.total_chunks;
  s.bytes_got = w.bytes_got.load(r);
  s.pages_got = w.pages_got.load(r);
  s.pages_put = w.pages_put.load(r);
  s.chunks_done = w.chunks_done.load(r);
  s.worker_wait_ns = w.wait_ns.load(r);
  s.worker_waits = w.waits.load(r);
  s.not_ready = w.not_ready.load(r);
  const double ucost = detail::bits_to_double(w.consume_cost_bits.load(r));
  const double dcost = detail::bits_to_double(c.read_cost_bits.load(r));
  s.su_bytes_per_s = ucost > 0 ? 1e9 / ucost : 0;
  s.sd_bytes_per_s = dcost > 0 ? 1e9 / dcost : 0;
  s.requests = c.submitted.load(r);
  s.completions = c.completed.load(r);
  s.device_reads = c.device_reads.load(r);
  s.bytes_read = c.bytes_read.load(r);
  s.max_inflight_seen = c.max_inflight_seen.load(r);
  s.reward_requests = c.reward_submits.load(r);
  s.paced_requests = c.paced_submits.load(r);
  const int64_t t0 = c.first_submit_ns.load(r), t1 = c.last_complete_ns.load(r);
  if (t1 > t0 && s.completions > 0)
    s.request_rate = static_cast<double>(s.completions) * 1e9 / static_cast<double>(t1 - t0);
  s.control_cpu_ns = c.cpu_ns.load(r);
  s.control_wakeups = c.wakeups.load(r);
  s.direct = (c.direct.load(r) & 1) != 0;
  s.bypass = (c.direct.load(r) & 2) != 0;
  s.registered_buffers = (c.registered.load(r) & 1) != 0;
  s.registered_files = (c.registered.load(r) & 2) != 0;
  s.buffer_backing = backing_name(c.backing.load(r));
  s.ring_reused = (c.backing.load(r) & detail::kBackingReused) != 0;
  s.state = loop_state_name(c.state.load(std::memory_order_acquire));
  const int core = c.host_core.load(r);
  if (c.host.load(r) == 1)
    s.control_host = "para reactor on core " + std::to_string(core);
  else
    s.control_host = core >= 0 ? "thread on core " + std::to_string(core) : "thread";
  return s;
}

}  // namespace

ChannelOptions ChannelOptions::from_knobs() {
  ChannelOptions o;
  o.ring_buffers = static_cast<size_t>(kRingBuffers.get());
  o.page_size = static_cast<size_t>(kPageKib.get()) << 10;
  static constexpr HugePageMode kModes[] = {HugePageMode::kAuto, HugePageMode::kHugetlb,
                                            HugePageMode::kThp, HugePageMode::kOff};
  o.huge_pages = kModes[std::min<size_t>(kHugePages.index(), 3)];
  o.direct = kDirect.get();
  o.bypass = kBypass.get();
  o.register_buffers = kRegister.get();
  o.max_inflight = static_cast<unsigned>(kMaxInflight.get());
  o.ema_shift = static_cast<unsigned>(kEmaShift.get());
  o.read_slack = kReadSlack.get();
  o.read_deviations = kReadDeviations.get();
  o.spin = std::chrono::microseconds(kSpinUs.get());
  o.idle_poll = std::chrono::milliseconds(kIdlePollMs.get());
  o.control_core = static_cast<int>(kControlCore.get());
  return o;
}

Status validate_ranges(const std::vector<Range>& ranges, uint64_t stream_bytes) {
  uint64_t prev_end = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const Range& r = ranges[i];
    const std::string which = "range " + std::to_string(i) + " [" + std::to_string(r.offset) +
                              ", +" + std::to_string(r.length) + ")";
    if (r.length == 0)
      return invalid_argument(which + " is empty; give only non-empty ranges");
    if (r.offset + r.length < r.offset || r.offset + r.length > stream_bytes)
      return invalid_argument(which + " ends past the stream's " + std::to_string(stream_bytes) +
                              " bytes");
    if (i > 0 && r.offset < prev_end)
      return invalid_argument(which + " overlaps or precedes range " + std::to_string(i - 1) +
                              " (ending at " + std::to_string(prev_end) +
                              "); ranges must be sorted and disjoint");
    prev_end = r.offset + r.length;
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------

class Channel::Impl : public std::enable_shared_from_this<Channel::Impl> {
 public:
  enum class Outcome { kPage, kNotReady, kEnd, kAllHeld, kFailed };

  Impl(ChannelOptions o)
      : opt_(std::move(o)),
        clock_(TscClock::global()),
        page_q_("zicio." + opt_.name + ".pages", 0, {.single_producer = true}),
        io_q_("zicio." + opt_.name + ".io", 0, {.single_producer = true}) {}

  ~Impl() { (void)close(); }

  Status open(std::vector<std::string> paths, std::vector<Range> ranges) {
    const size_t ps = opt_.page_size;
    if (ps < kMinPageSize || ps > kChunkSize || (ps & (ps - 1)) != 0)
      return invalid_argument("page size " + std::to_string(ps) +
                              " is not a power of two between 8 KiB and 2 MiB (zicio.page_kib)");
    if (opt_.ring_buffers < 2 || opt_.ring_buffers > 512)
      return invalid_argument("zicio.ring_buffers must be 2..512, not " +
                              std::to_string(opt_.ring_buffers));
    if (opt_.max_inflight == 0)
      return invalid_argument("max_inflight must be at least 1");
    if (paths.empty())
      return invalid_argument("a zicio channel needs at least one file");
    n_ = static_cast<uint32_t>(opt_.ring_buffers);
    spin_next_ns_ = std::chrono::nanoseconds(opt_.spin).count();
    not_ready_status_ = unavailable("zicio channel '" + opt_.name +
                                    "': no page ready yet; call again or use get_page_wait");
    end_status_ = out_of_range("zicio channel '" + opt_.name + "': end of the stream");
    SLUICE_RETURN_IF_ERROR(open_files(std::move(paths)));
    uint64_t stream = 0;
    for (const FileInfo& f : files_)
      stream = std::max(stream, f.stream_base + f.size);
    stream_bytes_ = stream;
    SLUICE_RETURN_IF_ERROR(validate_ranges(ranges, stream_bytes_));
    plan_ = build_plan(files_, ranges);
    SLUICE_ASSIGN_OR_RETURN(
        sb_, detail::Switchboard::create({.name = opt_.name,
                                          .num_slots = n_,
                                          .chunk_size = kChunkSize,
                                          .page_size = ps,
                                          .total_chunks = plan_.chunks.size(),
                                          .total_bytes = plan_.total_bytes,
                                          .num_files = static_cast<uint32_t>(files_.size())}));
    SLUICE_RETURN_IF_ERROR(buffers_.create(n_, opt_.huge_pages, opt_.simulate_no_hugetlb, &notes_));
    SLUICE_RETURN_IF_ERROR(setup_ring());
    bool direct = !files_.empty();
    for (const FileInfo& f : files_)
      direct = direct && f.direct;
    sb_.control().direct.store((direct ? 1u : 0u) | (opt_.bypass ? 2u : 0u),
                               std::memory_order_relaxed);
    sb_.control().backing.store(buffers_.backing | (buffers_.reused ? detail::kBackingReused : 0u),
                                std::memory_order_relaxed);
    slots_.assign(n_, WorkerSlot{});
    // Reading through the page cache changes what a scan costs: say so loudly. The other
    // fallbacks (page size of the ring, registration) only change constants.
    for (const std::string& note : notes_) {
      if (note.find("O_DIRECT") != std::string::npos)
        SLUICE_LOG(warn, "zicio channel '{}': {}", opt_.name, note);
      else
        SLUICE_LOG(info, "zicio channel '{}': {}", opt_.name, note);
    }
    page_producer_ = page_q_.attach_producer(oq::WaitPolicy::kSpin);
    SLUICE_RETURN_IF_ERROR(start_loop());
    open_ = true;
    return Status::ok();
  }

  // Also cleans up after an open() that failed half-way: every step is idempotent.
  Status close() {
    if (loop_runs_on_this_thread()) {
      // A worker task closing on the hosting reactor: waiting for the loop here would wait
      // for this very thread. The loop drains the reads in flight and then releases the rest
      // (reactor_loop holds a reference to this Impl until it has).
      open_ = false;
      teardown_pending_ = true;
      page_producer_.detach();
      request_stop();
      return Status::ok();
    }
    stop_loop();
    release_resources();
    return Status::ok();
  }

  // What close() frees once the loop is gone and no read is in flight.
  void release_resources() {
    page_producer_.detach();
    if (ring_ready_) {
      io_uring_queue_exit(&ring_);
      ring_ready_ = false;
    }
    if (kick_fd_ >= 0) {
      ::close(kick_fd_);
      kick_fd_ = -1;
    }
    for (FileInfo& f : files_) {
      if (f.fd >= 0)
        ::close(f.fd);
      f.fd = -1;
      f.dev_fd = -1;
    }
    for (auto& [dev, fd] : devices_)
      ::close(fd);
    devices_.clear();
    // The loop is gone and no read is in flight: the ring's memory can go (pages still held by
    // the worker become invalid, as documented). The switchboard stays for stats().
    buffers_.release();
    open_ = false;
  }

  bool loop_runs_on_this_thread() {
    if (!on_host_reactor())
      return false;
    std::lock_guard<std::mutex> lock(host_mu_);
    return hosted_running_;
  }

  // ---- worker side ----

  Outcome try_get(Page* out) {
    const detail::Switchboard& sb = sb_;
    if (!has_current_) {
      if (claimed_ == plan_.chunks.size())
        return Outcome::kEnd;
      uint64_t chunk = 0;
      uint32_t bytes = 0;
      uint32_t slot = 0;
      bool got = false;
      if (!opt_.any_order) {
        slot = static_cast<uint32_t>(next_claim_ % n_);
        got = sb.acquire(slot, next_claim_, &chunk, &bytes);
      } else {
        for (uint32_t i = 0; i < n_ && !got; ++i) {
          slot = (scan_from_ + i) % n_;
          got = sb.acquire(slot, detail::Switchboard::kAnyChunk, &chunk, &bytes);
        }
        if (got)
          scan_from_ = (slot + 1) % n_;
      }
      if (!got)
        return not_ready_outcome();
      SLUICE_ASSERT(chunk < plan_.chunks.size() && bytes == plan_.chunks[chunk].len,
                    "a zicio buffer was published with a chunk or size the plan does not have");
      const int64_t now = clock_.now_ns();
      sb.slot(slot).first_access_ns.store(now, std::memory_order_relaxed);
      detail::WorkerMetrics& w = sb.worker();
      w.current_chunk.store(chunk + 1, std::memory_order_relaxed);
      w.current_start_ns.store(now, std::memory_order_relaxed);
      bump(w.chunks_got);
      WorkerSlot& ws = slots_[slot];
      ws.chunk = chunk;
      ws.outstanding = 0;
      ws.handed_all = false;
      has_current_ = true;
      cur_slot_ = slot;
      cur_read_ = 0;
      cur_page_ = 0;
      ++claimed_;
      if (!opt_.any_order)
        ++next_claim_;
      ++held_;
      (void)page_producer_.try_put(
          {.time_ns = now, .chunk = chunk, .bytes = bytes, .slot = slot, .kind = ChunkEvent::kGet});
    }
    WorkerSlot& ws = slots_[cur_slot_];
    const PlanChunk& c = plan_.chunks[ws.chunk];
    // Pages are cut per read: one never spans two packed reads, whose bytes are not adjacent in
    // the stream.
    const PlanRead& r = plan_.read(c, cur_read_);
    const uint64_t off = cur_page_ * opt_.page_size;
    const size_t size = std::min<uint64_t>(opt_.page_size, r.len - off);
    out->data = buffers_.slot(cur_slot_) + r.buffer_offset + r.skip + off;
    out->size = size;
    out->stream_offset = r.stream_offset + off;
    out->file_index = r.file;
    out->file_offset = r.read_offset + r.skip + off;
    out->chunk = ws.chunk;
    out->slot = cur_slot_;
    ++ws.outstanding;
    ++cur_page_;
    if (off + size >= r.len) {
      cur_page_ = 0;
      if (++cur_read_ == c.num_reads) {
        ws.handed_all = true;
        has_current_ = false;
      }
    }
    detail::WorkerMetrics& w = sb_.worker();
    bump(w.pages_got);
    bump(w.bytes_got, size);
    return Outcome::kPage;
  }

  Outcome not_ready_outcome() {
    const detail::Switchboard& sb = sb_;
    // The ring maps chunk k to buffer k mod n and the control loop reads in plan order, so the
    // scan stalls for good when the buffer of the next chunk to hand out (in order) or of the
    // next chunk to read (any order) is one the worker holds.
    const auto held_by_worker = [&](uint64_t chunk) {
      const auto slot = static_cast<uint32_t>(chunk % n_);
      return slots_[slot].outstanding > 0 && sb.state(slot) == detail::SlotState::kInUse;
    };
    if (held_ == n_ || (held_ > 0 && !opt_.any_order && held_by_worker(next_claim_)))
      return Outcome::kAllHeld;
    if (held_ > 0 && opt_.any_order) {
      // Any order: stuck only when the loop waits for a held buffer, has nothing in flight, and
      // nothing is ready (re-checked after reading `inflight`, which drops after a publish).
      const uint64_t to_read = sb.control().next_chunk.load(std::memory_order_acquire);
      if (to_read < plan_.chunks.size() && held_by_worker(to_read) &&
          sb.control().inflight.load(std::memory_order_acquire) == 0) {
        bool any_ready = false;
        for (uint32_t i = 0; i < n_ && !any_ready; ++i)
          any_ready = sb.state(i) == detail::SlotState::kReady;
        if (!any_ready)
          return Outcome::kAllHeld;
      }
    }
    // After a failure, reads already in flight still complete (and are handed out in order):
    // report the failure only once none is left.
    const detail::ControlMetrics& c = sb.control();
    if (c.state.load(std::memory_order_acquire) ==
            static_cast<uint32_t>(detail::LoopState::kFailed) &&
        c.inflight.load(std::memory_order_acquire) == 0)
      return Outcome::kFailed;
    // A worker task on the hosting reactor is resumed by the loop's next pass; while reads are
    // in flight a completion brings that pass, and otherwise it resumes the loop itself: no
    // eventfd write (a system call) either way.
    if (!awaiting_worker_)
      kick_control();
    else if (inflight_count_ == 0 && loop_waiter_)
      host_->schedule(std::exchange(loop_waiter_, {}));
    return Outcome::kNotReady;
  }

  void count_not_ready() { bump(sb_.worker().not_ready); }

  Status outcome_status(Outcome o) const {
    switch (o) {
      case Outcome::kPage: return Status::ok();
      case Outcome::kNotReady:
        return not_ready_status_;  // made once: polling costs a reference count, not a string
      case Outcome::kEnd: return end_status_;
      case Outcome::kAllHeld:
        return resource_exhausted(
            "zicio channel '" + opt_.name +
            "': the worker holds the buffer the next chunk needs (" + std::to_string(held_) +
            " of " + std::to_string(n_) +
            " buffers held); put pages back before asking for more, or raise zicio.ring_buffers");
      case Outcome::kFailed: return loop_error();
    }
    return internal_error("unknown outcome");
  }

  Outcome wait_get(Page* out, std::chrono::nanoseconds timeout, bool* timed_out) {
    *timed_out = false;
    Outcome o = try_get(out);
    if (o != Outcome::kNotReady)
      return o;
    detail::WorkerMetrics& w = sb_.worker();
    detail::SyncWords& sync = sb_.sync();
    const int64_t start = clock_.now_ns();
    const int64_t deadline = timeout.count() < 0 ? INT64_MAX : start + timeout.count();
    const int64_t spin_until = start + spin_next_ns_;
    bump(w.waits);
    for (;;) {
      int64_t now = clock_.now_ns();
      if (now < spin_until) {
        for (int i = 0; i < 64; ++i)
          cpu_relax();
      } else {
        const uint32_t epoch = sync.epoch.load(std::memory_order_seq_cst);
        sync.worker_sleeping.store(1, std::memory_order_seq_cst);
        o = try_get(out);
        if (o != Outcome::kNotReady) {
          sync.worker_sleeping.store(0, std::memory_order_relaxed);
          break;
        }
        now = clock_.now_ns();
        if (now >= deadline) {
          sync.worker_sleeping.store(0, std::memory_order_relaxed);
          *timed_out = true;
          break;
        }
        detail::futex_wait(&sync.epoch, epoch, std::min<int64_t>(deadline - now, 1000000000));
        sync.worker_sleeping.store(0, std::memory_order_relaxed);
      }
      o = try_get(out);
      if (o != Outcome::kNotReady)
        break;
      if (clock_.now_ns() >= deadline) {
        *timed_out = true;
        break;
      }
    }
    const int64_t waited = clock_.now_ns() - start;
    bump(w.wait_ns, static_cast<uint64_t>(waited));
    // Spin next time only if this wait was short enough for a spin to have caught it: a worker
    // faster than the device waits a read's time for every chunk, and spinning through the
    // start of each of those waits only burns CPU (adaptive, as adaptive mutexes do).
    const int64_t spin_ns = std::chrono::nanoseconds(opt_.spin).count();
    spin_next_ns_ = waited < 4 * spin_ns ? spin_ns : 0;
    return o;
  }

  // Whether the calling thread is the para reactor that hosts this channel's control loop.
  bool on_host_reactor() const {
    para::Reactor* r = para::this_reactor();
    return r != nullptr && opt_.runtime != nullptr && &r->runtime() == opt_.runtime &&
           r->core() == opt_.control_core;
  }

  // next_page for a worker task on the hosting reactor: a look, and when nothing is ready the
  // task parks its awaiter here; each pass of the loop looks again for it (resume_page_waiter)
  // and resumes it once it has a page, an end or a failure, or its deadline passed. A deadline
  // other than "never" keeps the loop's timer armed no later than it.
  bool begin_page_wait(Channel::NextPage& w) {
    awaiting_worker_ = true;
    const Outcome o = try_get(&w.page_);
    if (o != Outcome::kNotReady) {
      w.outcome_ = static_cast<int>(o);
      return true;
    }
    bump(sb_.worker().waits);
    w.waited_ = true;
    w.start_ns_ = clock_.now_ns();
    w.deadline_ns_ = w.timeout_.count() < 0 ? INT64_MAX : w.start_ns_ + w.timeout_.count();
    if (w.start_ns_ >= w.deadline_ns_) {
      w.timed_out_ = true;
      w.outcome_ = static_cast<int>(o);
      return true;
    }
    return false;
  }
  void park_page_waiter(Channel::NextPage& w) {
    if (w.deadline_ns_ != INT64_MAX)
      arm_timer(w.deadline_ns_ - clock_.now_ns());
    page_waiter_ = &w;
  }
  Result<Page> finish_page_wait(Channel::NextPage& w) {
    awaiting_worker_ = false;
    if (w.waited_)
      bump(sb_.worker().wait_ns, static_cast<uint64_t>(clock_.now_ns() - w.start_ns_));
    const auto o = static_cast<Outcome>(w.outcome_);
    if (o == Outcome::kPage)
      return w.page_;
    if (w.timed_out_)
      return deadline_exceeded("no page arrived within " +
                               std::to_string(w.timeout_.count() / 1000000) + " ms");
    return outcome_status(o);
  }

  Status put(const Page& p) {
    if (!open_)
      return failed_precondition("zicio channel '" + opt_.name + "' is closed");
    if (p.slot >= n_ || slots_[p.slot].outstanding == 0 || slots_[p.slot].chunk != p.chunk)
      return invalid_argument("zicio channel '" + opt_.name + "': page of chunk " +
                              std::to_string(p.chunk) + " in buffer " + std::to_string(p.slot) +
                              " is not held by the worker (returned twice, or from another "
                              "channel)");
    WorkerSlot& ws = slots_[p.slot];
    --ws.outstanding;
    detail::WorkerMetrics& w = sb_.worker();
    bump(w.pages_put);
    if (ws.outstanding == 0 && ws.handed_all) {
      const int64_t now = clock_.now_ns();
      const int64_t first = sb_.slot(p.slot).first_access_ns.load(std::memory_order_relaxed);
      const uint64_t bytes = plan_.chunks[ws.chunk].len;
      consumption_.record_consumption(bytes, static_cast<double>(now - first));
      w.consume_cost_bits.store(detail::double_to_bits(consumption_.consumption_cost()),
                                std::memory_order_relaxed);
      const bool ok = sb_.release(p.slot);
      SLUICE_ASSERT(ok, "a buffer the worker held was not in-use");
      --held_;
      bump(w.chunks_done);
      (void)page_producer_.try_put({.time_ns = now,
                                    .chunk = ws.chunk,
                                    .bytes = bytes,
                                    .slot = p.slot,
                                    .kind = ChunkEvent::kPut});
    }
    return Status::ok();
  }

  Status notify_ranges(std::vector<Range> ranges) {
    if (!open_)
      return failed_precondition("zicio channel '" + opt_.name + "' is closed");
    if (sb_.worker().pages_got.load(std::memory_order_relaxed) > 0)
      return failed_precondition("zicio channel '" + opt_.name +
                                 "': ranges can be given only before the first page; open a new "
                                 "channel for another plan");
    SLUICE_RETURN_IF_ERROR(validate_ranges(ranges, stream_bytes_));
    if (loop_runs_on_this_thread())
      return failed_precondition("zicio channel '" + opt_.name +
                                 "': notify_ranges waits for the control loop, which runs on "
                                 "this reactor; give the ranges to open() instead");
    stop_loop();
    for (uint32_t i = 0; i < n_; ++i)
      (void)sb_.revoke(i);
    plan_ = build_plan(files_, ranges);
    auto& h = const_cast<detail::Header&>(sb_.header());
    h.total_chunks = plan_.chunks.size();
    h.total_bytes = plan_.total_bytes;
    detail::ControlMetrics& c = sb_.control();
    c.next_chunk.store(0, std::memory_order_relaxed);
    return start_loop();
  }

  ChannelStats stats() const { return stats_from(sb_); }

  // ---- control loop ----

  // Starts the control loop on its host: a thread of its own, or a task of a para reactor.
  Status start_loop() {
    stop_.store(false, std::memory_order_relaxed);
    detail::ControlMetrics& m = sb_.control();
    m.state.store(static_cast<uint32_t>(detail::LoopState::kStarting), std::memory_order_release);
    m.host.store(opt_.runtime != nullptr ? 1u : 0u, std::memory_order_relaxed);
    m.host_core.store(opt_.control_core, std::memory_order_relaxed);
    if (opt_.runtime == nullptr) {
      if (opt_.control_core >= CPU_SETSIZE)
        return invalid_argument("zicio.control_core " + std::to_string(opt_.control_core) +
                                " is not a core of this machine");
      loop_ = std::thread([this] { thread_loop(); });
      if (opt_.control_core >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(static_cast<size_t>(opt_.control_core), &set);
        const int rc = pthread_setaffinity_np(loop_.native_handle(), sizeof set, &set);
        if (rc != 0) {
          stop_loop();
          return invalid_argument("zicio.control_core " + std::to_string(opt_.control_core) +
                                  " is not among this process's cores (" + std::strerror(rc) +
                                  "; see `nproc`, taskset)");
        }
      }
      return Status::ok();
    }
    para::Runtime& rt = *opt_.runtime;
    if (!rt.index_of(opt_.control_core).is_ok())
      return invalid_argument("zicio channel '" + opt_.name +
                              "': the para runtime has no reactor on core " +
                              std::to_string(opt_.control_core) + " to host its control loop");
    {
      std::lock_guard<std::mutex> lock(host_mu_);
      hosted_running_ = true;
    }
    host_ = &rt.reactor(*rt.index_of(opt_.control_core));
    para::Reactor* here = para::this_reactor();
    if (here != nullptr && &here->runtime() == &rt && here->core() == opt_.control_core) {
      here->spawn(reactor_loop(shared_from_this()));
      return Status::ok();
    }
    if (here != nullptr) {
      std::lock_guard<std::mutex> lock(host_mu_);
      hosted_running_ = false;
      return failed_precondition(
          "zicio channel '" + opt_.name +
          "': open it off the para reactors or on the reactor that hosts its control loop (core " +
          std::to_string(opt_.control_core) + ")");
    }
    Status s = rt.run_on(opt_.control_core, [self = shared_from_this()] {
      para::local_reactor().spawn(self->reactor_loop(self));
    });
    if (!s.is_ok()) {
      std::lock_guard<std::mutex> lock(host_mu_);
      hosted_running_ = false;
      return s;
    }
    return Status::ok();
  }

  void stop_loop() {
    const bool thread = loop_.joinable();
    bool hosted = false;
    {
      std::lock_guard<std::mutex> lock(host_mu_);
      hosted = hosted_running_;
    }
    if (!thread && !hosted)
      return;
    request_stop();
    if (thread) {
      loop_.join();
      return;
    }
    std::unique_lock<std::mutex> lock(host_mu_);
    host_cv_.wait(lock, [this] { return !hosted_running_; });
  }

  void request_stop() {
    stop_.store(true, std::memory_order_seq_cst);
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(kick_fd_, &one, sizeof one);
  }

  void kick_control() {
    detail::SyncWords& s = sb_.sync();
    // Orders this worker's earlier buffer returns (release stores) before the flag load: with
    // the loop's fence after it sets ctrl_sleeping, either the loop sees the returned buffer or
    // the worker sees the flag. Only on the slow path (nothing ready).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (s.ctrl_sleeping.load(std::memory_order_seq_cst) != 0 &&
        s.kick_pending.exchange(1, std::memory_order_acq_rel) == 0) {
      const uint64_t one = 1;
      [[maybe_unused]] ssize_t w = ::write(kick_fd_, &one, sizeof one);
    }
  }

  // The control loop, as passes over the ring, the switchboard and the plan; its hosts only sleep
  // between passes (see loop_begin's comment).
  enum class LoopNext { kSleep, kAgain, kExit };
  void loop_begin();
  LoopNext loop_pass(int64_t* timeout_ns);
  void loop_woke();
  void loop_end();
  void thread_loop();
  // `self` keeps the Impl alive while the task runs (a close on this reactor returns first).
  para::Task<void> reactor_loop(std::shared_ptr<Impl> self);
  void arm_timer(int64_t timeout_ns);
  // In a pass, after the completions: a worker task parked in next_page looks again, and is
  // resumed (after the pass) once it has an outcome.
  void resume_page_waiter() {
    Channel::NextPage* w = page_waiter_;
    if (w == nullptr)
      return;
    const Outcome o = try_get(&w->page_);
    if (o == Outcome::kNotReady) {
      const int64_t now = clock_.now_ns();
      if (now < w->deadline_ns_) {
        if (w->deadline_ns_ != INT64_MAX)
          arm_timer(w->deadline_ns_ - now);
        return;
      }
      w->timed_out_ = true;
    }
    w->outcome_ = static_cast<int>(o);
    page_waiter_ = nullptr;
    para::local_reactor().schedule(w->waiter_);
  }

  oq::OQueue<ChunkEvent>& page_q() { return page_q_; }
  oq::OQueue<ChunkEvent>& io_q() { return io_q_; }
  const std::vector<std::string>& notes() const { return notes_; }
  int switchboard_fd() const { return sb_.fd(); }
  bool is_open() const { return open_; }

 private:
  struct WorkerSlot {
    uint64_t chunk = 0;
    uint32_t outstanding = 0;  // pages handed out and not yet back
    bool handed_all = false;   // every page of the chunk was handed out
  };
  struct Inflight {
    bool busy = false;
    uint64_t chunk = 0;
    int64_t submit_ns = 0;
    uint32_t pending = 0;  // reads of the chunk not yet completed
    uint64_t bytes = 0;    // bytes placed in the buffer so far
    // The first of the chunk's reads to fail, and how: reported once all its reads are back.
    enum class Failure : uint8_t { kNone, kErrno, kShortDeviceRead, kShrunk };
    Failure failure = Failure::kNone;
    uint32_t failed_read = 0;  // its plan read
    int error = 0;             // kErrno: the errno
    uint64_t short_got = 0;    // kShrunk: the bytes it returned
  };

  static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  Status open_files(std::vector<std::string> paths) {
    uint64_t base = 0;
    for (std::string& path : paths) {
      FileInfo f;
      f.path = std::move(path);
      // Refused before the open as well as after it: opening a FIFO blocks until a writer
      // comes, and a device may do anything on open.
      struct stat pre {};
      if (::stat(f.path.c_str(), &pre) != 0)
        return errno_status(errno, "cannot open " + f.path + " for a zicio scan");
      if (!S_ISREG(pre.st_mode))
        return invalid_argument(f.path + " is not a regular file; zicio scans regular files");
      const bool want_direct = opt_.direct;
      int fd = -1;
      if (want_direct) {
        if (opt_.simulate_no_direct) {
          fd = -1;
          errno = EINVAL;
        } else {
          fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
        }
        if (fd >= 0) {
          f.direct = true;
        } else if (errno == EINVAL) {
          if (opt_.require_direct)
            return unimplemented("the filesystem of " + f.path +
                                 " refuses O_DIRECT (tmpfs before Linux 6.6?); move the data or "
                                 "allow the buffered fallback (require_direct off)");
          notes_.push_back("the filesystem of " + f.path +
                           " refuses O_DIRECT: reading it through the page cache");
        } else {
          return errno_status(errno, "cannot open " + f.path + " for a zicio scan");
        }
      }
      if (fd < 0) {
        fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
          return errno_status(errno, "cannot open " + f.path + " for a zicio scan");
      }
      f.fd = fd;
      files_.push_back(f);
      struct statx stx {};
      if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_DIOALIGN, &stx) != 0)
        return errno_status(errno, "statx " + files_.back().path);
      if (!S_ISREG(stx.stx_mode))
        return invalid_argument(files_.back().path +
                                " is not a regular file; zicio scans regular files");
      FileInfo& fb = files_.back();
      fb.size = stx.stx_size;
      fb.stream_base = base;
      if ((stx.stx_mask & STATX_DIOALIGN) != 0 && stx.stx_dio_offset_align > fb.align &&
          stx.stx_dio_offset_align <= kChunkSize)
        fb.align = stx.stx_dio_offset_align;
      base += fb.size;
      if (opt_.bypass)
        SLUICE_RETURN_IF_ERROR(map_extents(fb, makedev(stx.stx_dev_major, stx.stx_dev_minor)));
    }
    return Status::ok();
  }

  // File-system bypass: the block device holding `dev`, opened once per device.
  Result<int> device_fd(dev_t dev) {
    if (auto it = devices_.find(dev); it != devices_.end())
      return it->second;
    if (!opt_.bypass_device_for_testing.empty())
      return open_device(dev, opt_.bypass_device_for_testing);
    const std::string uevent = "/sys/dev/block/" + std::to_string(major(dev)) + ":" +
                               std::to_string(minor(dev)) + "/uevent";
    std::ifstream in(uevent);
    std::string line, name;
    while (std::getline(in, line))
      if (line.rfind("DEVNAME=", 0) == 0)
        name = line.substr(8);
    if (name.empty())
      return unimplemented("file-system bypass: no block device behind device " +
                           std::to_string(major(dev)) + ":" + std::to_string(minor(dev)) + " (" +
                           uevent +
                           " unreadable: a network or virtual file system?); set "
                           "zicio.bypass=false");
    const std::string path = "/dev/" + name;
    return open_device(dev, path);
  }

  Result<int> open_device(dev_t dev, const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0)
      return errno_status(errno, "cannot open block device " + path +
                                     " for the file-system bypass; run as root or set "
                                     "zicio.bypass=false");
    devices_[dev] = fd;
    return fd;
  }

  Status map_extents(FileInfo& f, dev_t dev) {
    if (geteuid() != 0)
      return permission_denied(
          "the file-system bypass (zicio.bypass) reads the block device "
          "under " +
          f.path + " and needs root; run as root or set zicio.bypass=false");
    SLUICE_ASSIGN_OR_RETURN(f.dev_fd, device_fd(dev));
    constexpr uint32_t kBatch = 256;
    std::vector<uint64_t> storage((sizeof(fiemap) + kBatch * sizeof(fiemap_extent)) / 8 + 1);
    auto* fm = reinterpret_cast<fiemap*>(storage.data());
    uint64_t start = 0;
    bool last = f.size == 0;
    while (!last && start < f.size) {
      std::memset(storage.data(), 0, storage.size() * 8);
      fm->fm_start = start;
      fm->fm_length = f.size - start;
      fm->fm_flags = FIEMAP_FLAG_SYNC;  // flush delayed allocation so every extent has a place
      fm->fm_extent_count = kBatch;
      if (ioctl(f.fd, FS_IOC_FIEMAP, fm) != 0)
        return errno_status(
            errno, "FIEMAP of " + f.path + " for the file-system bypass; set zicio.bypass=false");
      if (fm->fm_mapped_extents == 0)
        break;
      for (uint32_t i = 0; i < fm->fm_mapped_extents; ++i) {
        const fiemap_extent& e = fm->fm_extents[i];
        constexpr uint32_t kUnreadable = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
                                         FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_ENCRYPTED |
                                         FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DATA_INLINE |
                                         FIEMAP_EXTENT_DATA_TAIL;
        if ((e.fe_flags & kUnreadable) != 0 || e.fe_physical % f.align != 0 ||
            e.fe_logical % f.align != 0)
          return unimplemented("the extent at offset " + std::to_string(e.fe_logical) + " of " +
                               f.path + " cannot be read from the device (FIEMAP flags " +
                               std::to_string(e.fe_flags) +
                               ": inline, encoded or unaligned data); set zicio.bypass=false");
        f.extents.push_back({.logical = e.fe_logical,
                             .physical = e.fe_physical,
                             .length = e.fe_length,
                             .zero = (e.fe_flags & FIEMAP_EXTENT_UNWRITTEN) != 0});
        last = (e.fe_flags & FIEMAP_EXTENT_LAST) != 0;
        start = e.fe_logical + e.fe_length;
      }
    }
    return Status::ok();
  }

  // One read of a chunk into its buffer: from the device (file-system bypass), through the file,
  // or a zero fill.
  struct Piece {
    uint64_t buffer_offset = 0;
    uint64_t physical = 0;  // the device's offset, or the file's when through_file
    uint64_t length = 0;
    bool zero = false;  // a hole or a preallocated extent: fill with zeros
    uint32_t read = 0;  // the plan read it belongs to, within its chunk
    bool through_file = false;
  };
  // The pieces of [offset, offset + length) of `f`; false when there are too many.
  static bool pieces_of(const FileInfo& f, uint64_t offset, uint64_t length,
                        std::vector<Piece>* out) {
    out->clear();
    const uint64_t end = offset + length;
    uint64_t pos = offset;
    auto it = std::upper_bound(f.extents.begin(), f.extents.end(), offset,
                               [](uint64_t v, const Extent& e) { return v < e.logical; });
    if (it != f.extents.begin())
      --it;
    while (pos < end && out->size() <= kMaxPiecesPerChunk) {
      if (it == f.extents.end() || it->logical >= end) {
        out->push_back({.buffer_offset = pos - offset, .length = end - pos, .zero = true});
        break;
      }
      if (it->logical + it->length <= pos) {
        ++it;
        continue;
      }
      if (it->logical > pos) {
        out->push_back({.buffer_offset = pos - offset, .length = it->logical - pos, .zero = true});
        pos = it->logical;
      }
      const uint64_t e = std::min(end, it->logical + it->length);
      out->push_back({.buffer_offset = pos - offset,
                      .physical = it->physical + (pos - it->logical),
                      .length = e - pos,
                      .zero = it->zero});
      pos = e;
      ++it;
    }
    return out->size() <= kMaxPiecesPerChunk;
  }

  Status setup_ring() {
    kick_fd_ = eventfd(0, EFD_CLOEXEC);
    if (kick_fd_ < 0)
      return errno_status(errno, "eventfd for the zicio control loop");
    if (opt_.runtime != nullptr)
      return Status::ok();  // the hosting reactor's ring; registered by the loop (host_register)
    // The reads of several chunks (a chunk of packed range pieces has up to 64, the bypass more),
    // the wake-up read and a timer.
    const unsigned depth = std::max(opt_.bypass ? 1024u : 2 * kMaxReadsPerChunk, n_ + 4);
    const int rc = io_uring_queue_init(depth, &ring_, 0);
    if (rc < 0)
      return errno_status(-rc, "io_uring_queue_init for a zicio channel");
    ring_ready_ = true;
    uint32_t registered = 0;
    if (opt_.register_buffers) {
      std::vector<iovec> iov(n_);
      for (uint32_t i = 0; i < n_; ++i)
        iov[i] = {buffers_.slot(i), kChunkSize};
      const int b = io_uring_register_buffers(&ring_, iov.data(), n_);
      if (b == 0)
        registered |= 1;
      else
        note_unregistered_buffers(errno_status(-b, "io_uring_register_buffers"));
      std::vector<int> fds;
      for (const FileInfo& f : files_)
        fds.push_back(f.fd);
      const int r = io_uring_register_files(&ring_, fds.data(), static_cast<unsigned>(fds.size()));
      if (r == 0)
        registered |= 2;
      else
        note_unregistered_files(errno_status(-r, "io_uring_register_files"));
    }
    sb_.control().registered.store(registered, std::memory_order_relaxed);
    return Status::ok();
  }

  void note_unregistered_buffers(const Status& why) {
    if (std::exchange(noted_unregistered_buffers_, true))
      return;  // a loop restarted by notify_ranges says it once
    rlimit rl{};
    getrlimit(RLIMIT_MEMLOCK, &rl);
    // The limit binds only below the ring's size and without CAP_IPC_LOCK (root has it).
    const bool limited =
        rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < buffers_.bytes && geteuid() != 0;
    notes_.push_back("cannot register the ring's buffers with io_uring (" + why.message() +
                     "; RLIMIT_MEMLOCK " + std::to_string(rl.rlim_cur >> 10) + " KiB, ring " +
                     std::to_string(buffers_.bytes >> 10) + " KiB): plain reads instead" +
                     (limited ? "; raise `ulimit -l` to register them" : ""));
  }
  void note_unregistered_files(const Status& why) {
    if (std::exchange(noted_unregistered_files_, true))
      return;
    notes_.push_back("cannot register files with io_uring (" + why.message() +
                     "): plain descriptors instead");
  }

  // Reactor host: the channel's buffers and files join the hosting reactor's tables, so its
  // reads are READ_FIXED on registered files there, as on a ring of its own. On the reactor,
  // before the loop's first pass; host_unregister after its last read.
  void host_register() {
    uint32_t registered = 0;
    if (opt_.register_buffers) {
      std::vector<iovec> iov(n_);
      for (uint32_t i = 0; i < n_; ++i)
        iov[i] = {buffers_.slot(i), kChunkSize};
      Result<uint32_t> b = host_->register_buffers(iov.data(), n_);
      if (b.is_ok()) {
        buf_base_ = *b;
        host_buffers_ = true;
        registered |= 1;
      } else {
        note_unregistered_buffers(b.status());
      }
      std::vector<int> fds;
      for (const FileInfo& f : files_)
        fds.push_back(f.fd);
      Result<uint32_t> f = host_->register_files(fds.data(), static_cast<uint32_t>(fds.size()));
      if (f.is_ok()) {
        file_base_ = *f;
        host_files_ = true;
        registered |= 2;
      } else {
        note_unregistered_files(f.status());
      }
    }
    sb_.control().registered.store(registered, std::memory_order_relaxed);
  }
  void host_unregister() {
    if (std::exchange(host_buffers_, false))
      host_->unregister_buffers(buf_base_, n_);
    if (std::exchange(host_files_, false))
      host_->unregister_files(file_base_, static_cast<uint32_t>(files_.size()));
  }

  void fail(Status s) {
    {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (error_.is_ok())
        error_ = std::move(s);
    }
    detail::ControlMetrics& c = sb_.control();
    c.error_code.store(static_cast<uint32_t>(error_.code()), std::memory_order_relaxed);
    c.state.store(static_cast<uint32_t>(detail::LoopState::kFailed), std::memory_order_release);
    notify_worker();
  }

  Status loop_error() const {
    std::lock_guard<std::mutex> lock(error_mu_);
    if (error_.is_ok())
      return internal_error("zicio channel failed without a recorded error");
    return error_;
  }

  void notify_worker() {
    detail::SyncWords& s = sb_.sync();
    s.epoch.fetch_add(1, std::memory_order_seq_cst);
    if (s.worker_sleeping.load(std::memory_order_seq_cst) != 0)
      detail::futex_wake_all(&s.epoch);
  }

  void arm_kick() {
    if (kick_armed_)
      return;
    kick_armed_ = true;
    io_uring_sqe* sqe = ring_sqe();
    io_uring_prep_read(sqe, kick_fd_, &kick_buf_, sizeof kick_buf_, 0);
    tag_sqe(sqe, kKickTag);
  }

  // The channel's requests go into its own ring (thread host) or the hosting reactor's (host_):
  // there each is an IoOp whose completion the reactor hands to on_host_completion, and the
  // reactor submits them with its own next system call.
  struct HostOp : para::IoOp {
    Impl* channel = nullptr;
    uint64_t tag = 0;
  };
  struct Reaped {
    uint64_t tag;
    int32_t res;
  };
  io_uring_sqe* ring_sqe() {
    if (host_ != nullptr)
      return host_->get_sqe();
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    SLUICE_ASSERT(sqe != nullptr, "zicio control ring has no free entry after a submit");
    return sqe;
  }
  // After the prep: the tag comes back with the completion.
  void tag_sqe(io_uring_sqe* sqe, uint64_t tag) {
    if (host_ == nullptr) {
      io_uring_sqe_set_data64(sqe, tag);
      return;
    }
    HostOp* op = nullptr;
    if (tag == kKickTag) {
      op = &kick_op_;
    } else if (tag == kTimerTag) {
      op = &timer_op_;
    } else {
      if (free_ops_.empty()) {
        op_store_.push_back(std::make_unique<HostOp>());
        free_ops_.push_back(op_store_.back().get());
      }
      op = free_ops_.back();
      free_ops_.pop_back();
      ++ops_out_;
    }
    op->channel = this;
    op->tag = tag;
    op->reactor = host_;
    op->on_complete = &Impl::on_host_completion;
    io_uring_sqe_set_data(sqe, op);
    host_->track(op);
  }
  static void on_host_completion(para::IoOp* io) {
    auto* op = static_cast<HostOp*>(io);
    Impl* ch = op->channel;
    ch->reaped_.push_back({op->tag, op->res});
    if (op != &ch->kick_op_ && op != &ch->timer_op_) {
      ch->free_ops_.push_back(op);
      --ch->ops_out_;
    }
    if (ch->loop_waiter_)
      ch->host_->schedule(std::exchange(ch->loop_waiter_, {}));
  }
  // A completion of the channel's ring or the host's, by tag. Returns nothing; reads update
  // the in-flight counts.
  void handle_completion(uint64_t tag, int32_t res, int64_t now);

  bool submit_read(uint64_t k, int64_t now);
  // Returns true when the read finished its chunk (every read of it completed).
  bool complete_read(uint64_t tag, int32_t res, int64_t now);

  ChannelOptions opt_;
  const TscClock& clock_;
  uint32_t n_ = 0;
  std::vector<FileInfo> files_;
  std::map<dev_t, int> devices_;  // file-system bypass: block device descriptors
  std::vector<Piece> pieces_;     // scratch for submit_read: one read's extents
  std::vector<Piece> ops_;        // scratch for submit_read: the chunk's reads
  uint64_t stream_bytes_ = 0;
  Plan plan_;  // fixed while the loop runs
  detail::Switchboard sb_;
  Buffers buffers_;
  std::vector<std::string> notes_;
  oq::OQueue<ChunkEvent> page_q_;
  oq::OQueue<ChunkEvent> io_q_;
  oq::OQueue<ChunkEvent>::Producer page_producer_;
  bool open_ = false;
  Status not_ready_status_;
  Status end_status_;

  // Worker side (the worker's thread only).
  std::vector<WorkerSlot> slots_;
  uint64_t next_claim_ = 0;  // in order: the next chunk to hand out
  uint64_t claimed_ = 0;     // chunks handed out (at least their first page)
  uint32_t scan_from_ = 0;   // any order: where the next search starts
  uint32_t held_ = 0;        // buffers in use by the worker
  bool has_current_ = false;
  uint32_t cur_slot_ = 0;
  uint32_t cur_read_ = 0;  // of the current chunk
  uint64_t cur_page_ = 0;  // of that read
  detail::Pacer consumption_{detail::PacerConfig{}};
  int64_t spin_next_ns_ = 0;  // how long get_page_wait spins next (opt_.spin or 0)
  // A worker task on the hosting reactor: inside next_page, and suspended there (the loop's
  // passes run on the same thread, so neither needs to be atomic).
  bool awaiting_worker_ = false;
  Channel::NextPage* page_waiter_ = nullptr;
  bool teardown_pending_ = false;  // closed on the hosting reactor: the loop frees the rest

  // Control side (the loop's thread, plus open/close while it is not running).
  io_uring ring_{};  // thread host only
  bool ring_ready_ = false;
  para::Reactor* host_ = nullptr;  // reactor host: the reactor whose ring the reads use
  uint32_t buf_base_ = 0;          // … and where the ring's buffers and files are in its tables
  uint32_t file_base_ = 0;
  bool host_buffers_ = false;  // entries of the host's tables to give back when the loop ends
  bool host_files_ = false;
  bool noted_unregistered_buffers_ = false;
  bool noted_unregistered_files_ = false;
  HostOp kick_op_;
  HostOp timer_op_;
  std::vector<std::unique_ptr<HostOp>> op_store_;  // reads' ops, reused
  std::vector<HostOp*> free_ops_;
  unsigned ops_out_ = 0;                   // reads' ops (and timer moves) in the host's ring
  std::vector<Reaped> reaped_;             // completions since the last pass
  std::coroutine_handle<> loop_waiter_{};  // the loop task, suspended between passes
  unsigned host_entries_ = 0;              // the host ring's submission queue
  int kick_fd_ = -1;
  uint64_t kick_buf_ = 0;
  std::thread loop_;
  std::atomic<bool> stop_{false};
  std::vector<Inflight> inflight_;
  unsigned inflight_count_ = 0;  // chunks
  unsigned inflight_sqes_ = 0;   // their entries in the ring
  uint64_t inflight_bytes_ = 0;
  unsigned unwoken_ = 0;  // chunks published since the worker was last woken
  uint64_t next_ = 0;     // the next chunk of the plan to read
  bool finished_ = false;
  bool kick_armed_ = false;
  bool timer_armed_ = false;  // reactor host: a timeout entry is pending in the ring
  int64_t timer_due_ = INT64_MAX;
  __kernel_timespec timer_ts_{};
  uint64_t hosted_cpu_ns_ = 0;  // reactor host: time of the passes (they never block)
  std::mutex host_mu_;
  std::condition_variable host_cv_;
  bool hosted_running_ = false;  // a reactor task runs the loop
  bool paced_wait_ = false;      // the next chunk waited for its release time
  detail::Pacer pacer_{detail::PacerConfig{}};
  oq::OQueue<ChunkEvent>::Producer io_producer_;
  mutable std::mutex error_mu_;
  Status error_;
};

namespace {
// A read's io_uring tag: its buffer (bits 0–31) and the index of its plan read within the chunk
// (32–37); a device read of the file-system bypass adds its length (38–61) and bit 62.
constexpr uint64_t kDeviceReadBit = uint64_t{1} << 62;
static_assert(kMaxReadsPerChunk == 64, "the read index has 6 bits of a tag");
static_assert(kChunkSize < (uint64_t{1} << 24), "a device read's length has 24 bits of a tag");

uint64_t file_read_tag(uint32_t slot, uint32_t read) {
  return slot | (uint64_t{read} << 32);
}
uint64_t device_read_tag(uint32_t slot, uint32_t read, uint64_t length) {
  return slot | (uint64_t{read} << 32) | (length << 38) | kDeviceReadBit;
}
}  // namespace

// Every read of chunk k goes into the ring, or none does: false when the ring has no room for
// all of them now (the loop tries again after completions).
bool Channel::Impl::submit_read(uint64_t k, int64_t now) {
  const PlanChunk& c = plan_.chunks[k];
  const auto slot = static_cast<uint32_t>(k % n_);
  ops_.clear();
  size_t device_pieces = 0;
  for (uint32_t i = 0; i < c.num_reads; ++i) {
    const PlanRead& r = plan_.read(c, i);
    const FileInfo& f = files_[r.file];
    // File-system bypass: the read's extents, from the device. A chunk spread over too many
    // extents reads the rest through the file.
    if (opt_.bypass && !f.extents.empty() && pieces_of(f, r.read_offset, r.read_len, &pieces_) &&
        device_pieces + pieces_.size() <= kMaxPiecesPerChunk) {
      device_pieces += pieces_.size();
      for (Piece p : pieces_) {
        p.buffer_offset += r.buffer_offset;
        p.read = i;
        ops_.push_back(p);
      }
    } else {
      ops_.push_back({.buffer_offset = r.buffer_offset,
                      .physical = r.read_offset,
                      .length = r.read_len,
                      .read = i,
                      .through_file = true});
    }
  }
  unsigned sqes = 0;
  for (const Piece& p : ops_)
    sqes += p.zero ? 0 : 1;
  // Room for them, a no-op (a chunk of holes) and the wake-up read; and no more entries in
  // flight than the completion queue holds (the wake-up read and a timer are in flight too).
  // On a reactor's ring, which others share, at most its submission queue's size.
  if (host_ == nullptr ? io_uring_sq_space_left(&ring_) < sqes + 2 ||
                             inflight_sqes_ + sqes + 3 > ring_.cq.ring_entries
                       : inflight_sqes_ > 0 && inflight_sqes_ + sqes + 2 > host_entries_)
    return false;
  const uint32_t reg = sb_.control().registered.load(std::memory_order_relaxed);
  const bool fixed_buffers = (reg & 1) != 0;
  const bool fixed_files = (reg & 2) != 0;
  std::byte* buffer = buffers_.slot(slot);
  Inflight in{.busy = true, .chunk = k, .submit_ns = now};
  for (const Piece& p : ops_) {
    std::byte* dst = buffer + p.buffer_offset;
    if (p.zero) {
      std::memset(dst, 0, p.length);
      in.bytes += p.length;
      continue;
    }
    io_uring_sqe* sqe = ring_sqe();
    const uint32_t file = plan_.read(c, p.read).file;
    int fd = files_[file].dev_fd;
    if (p.through_file)
      fd = fixed_files ? static_cast<int>(file_base_ + file) : files_[file].fd;
    const auto len = static_cast<unsigned>(p.length);
    if (fixed_buffers)
      io_uring_prep_read_fixed(sqe, fd, dst, len, p.physical, static_cast<int>(buf_base_ + slot));
    else
      io_uring_prep_read(sqe, fd, dst, len, p.physical);
    if (p.through_file && fixed_files)
      sqe->flags |= IOSQE_FIXED_FILE;
    tag_sqe(sqe,
            p.through_file ? file_read_tag(slot, p.read) : device_read_tag(slot, p.read, p.length));
    ++in.pending;
  }
  if (in.pending == 0) {
    // Only holes: complete through the same path as a read, with a no-op.
    io_uring_sqe* sqe = ring_sqe();
    io_uring_prep_nop(sqe);
    tag_sqe(sqe, device_read_tag(slot, 0, 0));
    in.pending = 1;
  }
  inflight_[slot] = in;
  inflight_sqes_ += in.pending;
  bump(sb_.control().device_reads, in.pending);
  return true;
}

bool Channel::Impl::complete_read(uint64_t tag, int32_t res, int64_t now) {
  const auto slot = static_cast<uint32_t>(tag & 0xffffffffu);
  const auto index = static_cast<uint32_t>((tag >> 32) & (kMaxReadsPerChunk - 1));
  Inflight& in = inflight_[slot];
  SLUICE_ASSERT(in.busy && in.pending > 0,
                "a zicio read completed for a buffer with no read in flight");
  --inflight_sqes_;
  const PlanChunk& c = plan_.chunks[in.chunk];
  const auto failed_as = [&](Inflight::Failure f) {
    if (in.failure != Inflight::Failure::kNone)
      return;
    in.failure = f;
    in.failed_read = index;
    in.error = res < 0 ? -res : 0;
    in.short_got = res < 0 ? 0 : static_cast<uint64_t>(res);
  };
  if (res < 0) {
    failed_as(Inflight::Failure::kErrno);
  } else {
    const auto got = static_cast<uint64_t>(res);
    in.bytes += got;
    if ((tag & kDeviceReadBit) != 0) {
      if (got < ((tag >> 38) & 0xffffff))
        failed_as(Inflight::Failure::kShortDeviceRead);
    } else {
      const PlanRead& r = plan_.read(c, index);
      const uint64_t want =
          std::min<uint64_t>(r.read_offset + r.read_len, files_[r.file].size) - r.read_offset;
      if (got < want)
        failed_as(Inflight::Failure::kShrunk);
    }
  }
  if (--in.pending > 0)
    return false;
  in.busy = false;
  const uint64_t k = in.chunk;
  detail::ControlMetrics& m = sb_.control();
  bump(m.completed);
  m.last_complete_ns.store(now, std::memory_order_relaxed);
  // The worker reads `inflight` to tell "failed, but more data is coming" from "failed": it
  // drops only after this read's buffer is published or its failure recorded.
  const auto done_inflight = [&m] {
    m.inflight.store(m.inflight.load(std::memory_order_relaxed) - 1, std::memory_order_release);
  };
  const PlanRead& failed = plan_.read(c, in.failed_read);
  const FileInfo& ff = files_[failed.file];
  if (in.failure == Inflight::Failure::kErrno) {
    done_inflight();
    fail(errno_status(in.error, "read of " + ff.path + " at offset " +
                                    std::to_string(failed.read_offset) + " (" +
                                    std::to_string(failed.read_len) + " bytes)"));
    return true;
  }
  if (in.failure == Inflight::Failure::kShortDeviceRead) {
    done_inflight();
    fail(io_error("a read of the block device under " + ff.path +
                  " came back short (the device is smaller than FIEMAP said?); set "
                  "zicio.bypass=false"));
    return true;
  }
  if (in.failure == Inflight::Failure::kShrunk) {
    const uint64_t want =
        std::min<uint64_t>(failed.read_offset + failed.read_len, ff.size) - failed.read_offset;
    done_inflight();
    fail(data_loss(ff.path + " shrank while scanned: a read at offset " +
                   std::to_string(failed.read_offset) + " returned " +
                   std::to_string(in.short_got) + " of " + std::to_string(want) +
                   " bytes; zicio assumes read-only data, rescan it once "
                   "writers are done"));
    return true;
  }
  for (uint32_t i = 0; i < c.num_reads; ++i) {
    const PlanRead& r = plan_.read(c, i);
    if (!r.last_of_file)
      continue;
    const FileInfo& f = files_[r.file];
    struct stat st {};
    if (fstat(f.fd, &st) == 0 && static_cast<uint64_t>(st.st_size) != f.size) {
      done_inflight();
      fail(data_loss(f.path + " changed size while scanned (" + std::to_string(f.size) + " → " +
                     std::to_string(st.st_size) +
                     " bytes); zicio assumes read-only data, rescan it once writers are done"));
      return true;
    }
  }
  const uint64_t got = in.bytes;
  bump(m.bytes_read, got);
  pacer_.record_read(got, static_cast<double>(now - in.submit_ns));
  m.read_cost_bits.store(detail::double_to_bits(pacer_.read_cost()), std::memory_order_relaxed);
  const bool ok = sb_.publish(slot, k, c.len);
  SLUICE_ASSERT(ok, "a zicio buffer was not empty when its read completed");
  done_inflight();
  (void)io_producer_.try_put(
      {.time_ns = now, .chunk = k, .bytes = got, .slot = slot, .kind = ChunkEvent::kComplete});
  // While more reads are in flight (reward requests: the worker is faster than the device), a
  // sleeping worker is woken for every second chunk, not each: it processes both at once, and
  // the device-bound scan costs half the cross-core wake-ups. The last read in flight always
  // wakes it, so a paced scan (one read in flight) and the end of a stream never wait.
  ++unwoken_;
  if (unwoken_ >= 2 || inflight_count_ <= 1) {
    unwoken_ = 0;
    notify_worker();
  }
  return true;
}

// The control loop is a sequence of passes: each reaps completions (publishing buffers), recycles
// buffers the worker returned and submits the reads whose release time has come, then says how
// long its host may sleep. Its host is a thread of its own (thread_loop: it sleeps in
// io_uring_wait_cqe_timeout on the channel's ring) or a para reactor (reactor_loop: the reads
// go into the reactor's ring, and a completion or a timeout entry there resumes the loop).
// Either way the loop sleeps only between passes, so it never spins a core for nothing.
void Channel::Impl::loop_begin() {
  io_producer_ = io_q_.attach_producer(oq::WaitPolicy::kSpin);
  pacer_ = detail::Pacer({.ema_shift = opt_.ema_shift,
                          .max_inflight = opt_.max_inflight,
                          .read_slack = opt_.read_slack,
                          .read_deviations = opt_.read_deviations});
  inflight_.assign(n_, Inflight{});
  inflight_count_ = 0;
  inflight_sqes_ = 0;
  inflight_bytes_ = 0;
  unwoken_ = 0;
  paced_wait_ = false;
  next_ = 0;
  finished_ = false;
  arm_kick();
  sb_.control().state.store(static_cast<uint32_t>(detail::LoopState::kRunning),
                            std::memory_order_release);
}

Channel::Impl::LoopNext Channel::Impl::loop_pass(int64_t* timeout_ns) {
  detail::ControlMetrics& m = sb_.control();
  detail::SyncWords& sync = sb_.sync();
  const detail::WorkerMetrics& w = sb_.worker();
  const auto rlx = std::memory_order_relaxed;
  const int64_t idle_poll_ns = std::chrono::nanoseconds(opt_.idle_poll).count();
  const int64_t now = clock_.now_ns();
  // 1. Completions: reads (publish their buffers), the wake-up eventfd, the timer.
  if (host_ == nullptr) {
    io_uring_cqe* cqe = nullptr;
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      handle_completion(io_uring_cqe_get_data64(cqe), cqe->res, now);
    }
    io_uring_cq_advance(&ring_, seen);
  } else {
    for (const Reaped& r : reaped_)
      handle_completion(r.tag, r.res, now);
    reaped_.clear();
  }
  resume_page_waiter();  // it runs after this pass, on this reactor
  // Finished as soon as the last chunk is published, before looking at a stop request: a
  // worker that read everything and closed at once sees "finished", not "stopped".
  if (!finished_ && next_ == plan_.chunks.size() && inflight_count_ == 0 &&
      m.state.load(rlx) != static_cast<uint32_t>(detail::LoopState::kFailed)) {
    finished_ = true;
    m.state.store(static_cast<uint32_t>(detail::LoopState::kFinished), std::memory_order_release);
    notify_worker();
  }
  const bool stopping = stop_.load(std::memory_order_seq_cst);
  if (stopping && inflight_count_ == 0)
    return LoopNext::kExit;
  if (!stopping)
    arm_kick();
  const bool failed = m.state.load(rlx) == static_cast<uint32_t>(detail::LoopState::kFailed);
  // 2. Recycle buffers the worker is done with.
  for (uint32_t i = 0; i < n_; ++i)
    if (!inflight_[i].busy)
      (void)sb_.recycle(i);
  // 3. Issue the reads whose release time has come, up to R reads' worth of bytes in flight
  // (R 2 MiB reads, or more smaller ones: a 64 KiB range piece should not take a 2 MiB read's
  // share of the device's queue).
  const double ucost = detail::bits_to_double(w.consume_cost_bits.load(rlx));
  if (ucost > 0)
    pacer_.set_consumption_cost(ucost);
  const unsigned allowed = pacer_.allowed_inflight();
  m.allowed_inflight.store(allowed, rlx);
  const uint64_t allowed_bytes = uint64_t{allowed} * kChunkSize;
  int64_t wake_at = INT64_MAX;
  bool ring_full = false;
  const std::vector<PlanChunk>& chunks = plan_.chunks;
  while (!stopping && !failed && next_ < chunks.size() &&
         (inflight_count_ == 0 || inflight_bytes_ + chunks[next_].read_len <= allowed_bytes)) {
    const auto slot = static_cast<uint32_t>(next_ % n_);
    if (inflight_[slot].busy || sb_.state(slot) != detail::SlotState::kEmpty) {
      ring_full = true;
      break;
    }
    const uint64_t cur1 = w.current_chunk.load(rlx);
    if (cur1 > 0 && pacer_.has_consumption()) {
      const PlanChunk& cur = chunks[std::min<uint64_t>(cur1 - 1, chunks.size() - 1)];
      const uint64_t ahead =
          chunks[next_].before > cur.before ? chunks[next_].before - cur.before : 0;
      const int64_t release =
          pacer_.release_time_ns(w.current_start_ns.load(rlx), ahead, chunks[next_].read_len);
      if (release > now) {
        if (!paced_wait_)
          m.last_delay_ns.store(release - now, rlx);
        paced_wait_ = true;
        wake_at = release;
        break;
      }
    }
    if (!submit_read(next_, now))
      break;
    ++inflight_count_;
    inflight_bytes_ += chunks[next_].read_len;
    bump(m.submitted);
    if (m.first_submit_ns.load(rlx) == 0)
      m.first_submit_ns.store(now, rlx);
    if (allowed > 1 && pacer_.has_consumption() && pacer_.has_read())
      bump(m.reward_submits);
    if (paced_wait_) {
      bump(m.paced_submits);
      paced_wait_ = false;
    }
    (void)io_producer_.try_put({.time_ns = now,
                                .chunk = next_,
                                .bytes = chunks[next_].read_len,
                                .slot = slot,
                                .kind = ChunkEvent::kSubmit});
    ++next_;
    m.next_chunk.store(next_, rlx);
  }
  if (host_ == nullptr)
    io_uring_submit(&ring_);  // a reactor submits with its next system call
  m.inflight.store(inflight_count_, std::memory_order_release);
  if (inflight_count_ > m.max_inflight_seen.load(rlx))
    m.max_inflight_seen.store(inflight_count_, rlx);
  // 4. How long to sleep: until a completion, a release time, a wake-up from the worker or
  // close. While the ring is full ahead of the worker, look again after about a quarter of a
  // chunk's consumption time (the worker does not announce its puts: that would put a system
  // call on its path).
  *timeout_ns = -1;
  if (!stopping) {
    if (wake_at != INT64_MAX) {
      *timeout_ns = std::max<int64_t>(wake_at - now, 1000);
    } else if (ring_full) {
      const double chunk_ns = ucost * static_cast<double>(kChunkSize) / 4;
      *timeout_ns = ucost > 0
                        ? std::clamp<int64_t>(static_cast<int64_t>(chunk_ns), 50000, idle_poll_ns)
                        : idle_poll_ns;
    }
  }
  sync.ctrl_sleeping.store(1, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (ring_full && sb_.state(static_cast<uint32_t>(next_ % n_)) == detail::SlotState::kDone &&
      !inflight_[next_ % n_].busy) {
    sync.ctrl_sleeping.store(0, std::memory_order_relaxed);
    return LoopNext::kAgain;
  }
  return LoopNext::kSleep;
}

void Channel::Impl::handle_completion(uint64_t tag, int32_t res, int64_t now) {
  if (tag == kKickTag) {
    kick_armed_ = false;
    return;
  }
  if (tag == kTimerTag) {
    timer_armed_ = false;
    timer_due_ = INT64_MAX;
    return;
  }
  if (tag == kTimerUpdateTag)
    return;
  const auto slot = static_cast<uint32_t>(tag & 0xffffffffu);
  if (complete_read(tag, res, now)) {
    --inflight_count_;
    inflight_bytes_ -= plan_.chunks[inflight_[slot].chunk].read_len;
  }
}

void Channel::Impl::loop_woke() {
  detail::SyncWords& sync = sb_.sync();
  sync.ctrl_sleeping.store(0, std::memory_order_relaxed);
  sync.kick_pending.store(0, std::memory_order_release);
  bump(sb_.control().wakeups);
}

void Channel::Impl::loop_end() {
  detail::ControlMetrics& m = sb_.control();
  const uint32_t st = m.state.load(std::memory_order_relaxed);
  if (st != static_cast<uint32_t>(detail::LoopState::kFinished) &&
      st != static_cast<uint32_t>(detail::LoopState::kFailed))
    m.state.store(static_cast<uint32_t>(detail::LoopState::kStopped), std::memory_order_release);
  io_producer_.detach();
}

namespace {
constexpr int64_t kCpuClockPeriodNs = 1'000'000;

uint64_t thread_cpu_ns() {
  timespec cpu{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
  return static_cast<uint64_t>(cpu.tv_sec) * 1000000000u + static_cast<uint64_t>(cpu.tv_nsec);
}
}  // namespace

void Channel::Impl::thread_loop() {
  detail::ControlMetrics& m = sb_.control();
  loop_begin();
  // The thread's CPU clock is a system call (no vDSO for it): read it at most once a
  // millisecond, not once a pass, and once more at the end.
  int64_t cpu_read_at = 0;
  for (;;) {
    int64_t timeout_ns = -1;
    const LoopNext next = loop_pass(&timeout_ns);
    if (const int64_t now = clock_.now_ns(); now - cpu_read_at >= kCpuClockPeriodNs) {
      m.cpu_ns.store(thread_cpu_ns(), std::memory_order_relaxed);
      cpu_read_at = now;
    }
    if (next == LoopNext::kExit)
      break;
    if (next == LoopNext::kAgain)
      continue;
    io_uring_cqe* cqe = nullptr;
    if (timeout_ns < 0) {
      (void)io_uring_wait_cqe(&ring_, &cqe);
    } else {
      __kernel_timespec ts{.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
      (void)io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
    }
    loop_woke();
  }
  m.cpu_ns.store(thread_cpu_ns(), std::memory_order_relaxed);
  loop_end();
}

// Reactor host: the reads, the wake-up read and a timeout entry (a release time, or a worker
// task's deadline) are all requests in the hosting reactor's ring, whose completions resume the
// loop task. At most one timer is pending: an earlier release time moves it, a later one waits
// for it to fire.
void Channel::Impl::arm_timer(int64_t timeout_ns) {
  const int64_t due = clock_.now_ns() + timeout_ns;
  if (timer_armed_ && timer_due_ <= due)
    return;
  io_uring_sqe* sqe = ring_sqe();
  timer_ts_ = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
  if (timer_armed_) {
    io_uring_prep_timeout_update(sqe, &timer_ts_, reinterpret_cast<uint64_t>(&timer_op_), 0);
    tag_sqe(sqe, kTimerUpdateTag);
  } else {
    io_uring_prep_timeout(sqe, &timer_ts_, 0, 0);
    tag_sqe(sqe, kTimerTag);
    timer_armed_ = true;
  }
  timer_due_ = due;
}

namespace {
// The loop task between passes: resumed by the next completion of one of its requests.
struct LoopWait {
  std::coroutine_handle<>* slot;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const noexcept { *slot = h; }
  void await_resume() const noexcept {}
};
}  // namespace

para::Task<void> Channel::Impl::reactor_loop(std::shared_ptr<Impl> self) {
  (void)self;
  detail::ControlMetrics& m = sb_.control();
  host_entries_ = host_->ring_info().entries;
  host_register();
  // A pass never blocks, so its time on the TSC clock is its CPU time (but for preemption):
  // the thread's CPU clock would be two system calls per pass on the worker's own core.
  int64_t pass_start = clock_.now_ns();
  loop_begin();
  for (;;) {
    int64_t timeout_ns = -1;
    const LoopNext next = loop_pass(&timeout_ns);
    if (next == LoopNext::kExit)
      break;
    if (next == LoopNext::kAgain)
      continue;
    if (timeout_ns >= 0)
      arm_timer(timeout_ns);
    hosted_cpu_ns_ += static_cast<uint64_t>(clock_.now_ns() - pass_start);
    m.cpu_ns.store(hosted_cpu_ns_, std::memory_order_relaxed);
    if (reaped_.empty())
      co_await LoopWait{&loop_waiter_};
    pass_start = clock_.now_ns();
    loop_woke();
    if (host_->stopping() && !stop_.load(std::memory_order_relaxed)) {
      // The runtime is stopping under the channel (it cancelled the requests in flight): fail
      // it, and let the passes wait for the reads in flight, whose buffers must not be reused
      // while the device may still write them.
      if (!finished_)
        fail(cancelled("the para runtime hosting zicio channel '" + opt_.name +
                       "' stopped; the channel cannot read further"));
      stop_.store(true, std::memory_order_seq_cst);
    }
  }
  // The wake-up read, the timer and any move of it hold pointers into this Impl: take them out
  // of the ring and wait for their completions (the reads have all come back).
  if (kick_armed_) {
    host_->cancel_op(&kick_op_);
  }
  if (timer_armed_) {
    io_uring_sqe* sqe = ring_sqe();
    io_uring_prep_timeout_remove(sqe, reinterpret_cast<uint64_t>(&timer_op_), 0);
    io_uring_sqe_set_data64(sqe, 0);  // its own completion is ignored
  }
  while (kick_armed_ || timer_armed_ || ops_out_ > 0) {
    if (reaped_.empty())
      co_await LoopWait{&loop_waiter_};
    for (const Reaped& r : reaped_)
      handle_completion(r.tag, r.res, clock_.now_ns());
    reaped_.clear();
  }
  host_unregister();
  hosted_cpu_ns_ += static_cast<uint64_t>(clock_.now_ns() - pass_start);
  m.cpu_ns.store(hosted_cpu_ns_, std::memory_order_relaxed);
  loop_end();
  {
    std::lock_guard<std::mutex> lock(host_mu_);
    hosted_running_ = false;
    host_cv_.notify_all();
  }
  if (teardown_pending_)  // closed by a task on this reactor: the rest of its close()
    release_resources();
}

// ---------------------------------------------------------------------------------------------

Channel::Channel() = default;
Channel::Channel(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Channel::Channel(Channel&&) noexcept = default;
// The reactor-hosted loop shares the Impl, so dropping a reference is not closing: close first.
Channel& Channel::operator=(Channel&& o) noexcept {
  if (this != &o) {
    if (impl_)
      (void)impl_->close();
    impl_ = std::move(o.impl_);
  }
  return *this;
}
Channel::~Channel() {
  if (impl_)
    (void)impl_->close();
}

Result<Channel> Channel::open(std::vector<std::string> paths, std::vector<Range> ranges,
                              ChannelOptions options) {
  auto impl = std::make_shared<Impl>(std::move(options));
  SLUICE_RETURN_IF_ERROR(impl->open(std::move(paths), std::move(ranges)));
  return Channel(std::move(impl));
}

namespace {
Status closed_error() {
  return failed_precondition("the zicio channel is closed (or was moved from)");
}
}  // namespace

Result<Page> Channel::get_page() {
  if (!impl_ || !impl_->is_open())
    return closed_error();
  Page p;
  const Impl::Outcome o = impl_->try_get(&p);
  if (o == Impl::Outcome::kPage)
    return p;
  if (o == Impl::Outcome::kNotReady)
    impl_->count_not_ready();
  return impl_->outcome_status(o);
}

Result<Page> Channel::get_page_wait(std::chrono::nanoseconds timeout) {
  if (!impl_ || !impl_->is_open())
    return closed_error();
  Page p;
  bool timed_out = false;
  const Impl::Outcome o = impl_->wait_get(&p, timeout, &timed_out);
  if (o == Impl::Outcome::kPage)
    return p;
  if (timed_out)
    return deadline_exceeded("no page arrived within " + std::to_string(timeout.count() / 1000000) +
                             " ms");
  return impl_->outcome_status(o);
}

Channel::NextPage Channel::next_page(std::chrono::nanoseconds timeout) {
  return NextPage(impl_.get(), timeout);
}

bool Channel::NextPage::await_ready() {
  if (impl_ == nullptr || !impl_->is_open()) {
    refused_ = closed_error();
    return true;
  }
  if (!impl_->on_host_reactor()) {
    refused_ = failed_precondition(
        "zicio next_page must be awaited by a task on the para reactor that hosts the "
        "channel's control loop (options.runtime, options.control_core); elsewhere use "
        "get_page_wait");
    return true;
  }
  return impl_->begin_page_wait(*this);
}

void Channel::NextPage::await_suspend(std::coroutine_handle<> h) {
  waiter_ = h;
  impl_->park_page_waiter(*this);
}

Result<Page> Channel::NextPage::await_resume() {
  if (!refused_.is_ok())
    return refused_;
  return impl_->finish_page_wait(*this);
}

Status Channel::put_page(const Page& page) {
  if (!impl_)
    return closed_error();
  return impl_->put(page);
}

Status Channel::notify_ranges(std::vector<Range> ranges) {
  if (!impl_)
    return closed_error();
  return impl_->notify_ranges(std::move(ranges));
}

Status Channel::close() {
  return impl_ ? impl_->close() : Status::ok();
}
bool Channel::is_open() const {
  return impl_ && impl_->is_open();
}
ChannelStats Channel::stats() const {
  return impl_ ? impl_->stats() : ChannelStats{};
}
const std::vector<std::string>& Channel::notes() const {
  static const std::vector<std::string> kNone;
  return impl_ ? impl_->notes() : kNone;
}
int Channel::switchboard_fd() const {
  return impl_ ? impl_->switchboard_fd() : -1;
}
oq::OQueue<ChunkEvent>& Channel::page_events() {
  return impl_->page_q();
}
oq::OQueue<ChunkEvent>& Channel::io_events() {
  return impl_->io_q();
}

Result<ChannelStats> read_switchboard(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(detail::Switchboard sb, detail::Switchboard::open_readonly(path));
  return stats_from(sb);
}

}  // namespace sluice::zicio

#include "sluice/para/arena.h"

#include <linux/mempolicy.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "sluice/common/log.h"

namespace sluice::para {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kMinBlock = 64;

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string mib(size_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

}  // namespace

const char* huge_pages_name(HugePages h) {
  switch (h) {
    case HugePages::kAuto: return "auto";
    case HugePages::kHugetlb: return "hugetlb";
    case HugePages::kThp: return "thp";
    case HugePages::kOff: return "off";
  }
  return "?";
}

Result<HugePages> parse_huge_pages(std::string_view text) {
  for (HugePages h : {HugePages::kAuto, HugePages::kHugetlb, HugePages::kThp, HugePages::kOff}) {
    if (text == huge_pages_name(h))
      return h;
  }
  return invalid_argument("huge pages '" + std::string(text) +
                          "' is not one of auto, hugetlb, thp, off");
}

const char* arena_backing_name(ArenaBacking b) {
  switch (b) {
    case ArenaBacking::kHugetlb: return "hugetlb 2 MiB pages";
    case ArenaBacking::kThp: return "transparent huge pages";
    case ArenaBacking::kSmallPages: return "4 KiB pages";
  }
  return "?";
}

Result<Arena> Arena::create(const ArenaOptions& options) {
  if (options.size == 0)
    return invalid_argument("arena size must be > 0");
  Arena a;
  a.size_ = (options.size + kHugePage - 1) / kHugePage * kHugePage;
  const bool want_hugetlb =
      options.huge_pages == HugePages::kAuto || options.huge_pages == HugePages::kHugetlb;
  const bool want_thp = options.huge_pages != HugePages::kOff;

  void* p = MAP_FAILED;
  if (want_hugetlb) {
    const std::string reserved = read_first_line("/proc/sys/vm/nr_hugepages");
    if (options.simulate_no_hugetlb || reserved == "0") {
      a.notes_.push_back("hugetlb: no explicit huge pages reserved (vm.nr_hugepages = " +
                         (options.simulate_no_hugetlb ? std::string("0, simulated") : reserved) +
                         "); reserve " + std::to_string(a.size_ / kHugePage) +
                         " per core with `sysctl vm.nr_hugepages=N` to use them");
    } else {
      p = mmap(nullptr, a.size_, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), -1, 0);
      if (p == MAP_FAILED) {
        a.notes_.push_back("hugetlb: mmap of " + mib(a.size_) + " failed (" + std::strerror(errno) +
                           "); too few free pages in vm.nr_hugepages");
      } else {
        a.backing_ = ArenaBacking::kHugetlb;
      }
    }
  }
  if (p == MAP_FAILED) {
    // Over-map by one huge page so the region can start on a 2 MiB boundary (THP needs it).
    const size_t span = a.size_ + kHugePage;
    void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
      return resource_exhausted("cannot map a " + mib(a.size_) + " arena: " + std::strerror(errno) +
                                "; lower para.arena_size_mb");
    }
    const auto addr = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (addr + kHugePage - 1) & ~(kHugePage - 1);
    if (aligned > addr)
      munmap(raw, aligned - addr);
    const uintptr_t end = addr + span;
    if (end > aligned + a.size_)
      munmap(reinterpret_cast<void*>(aligned + a.size_), end - aligned - a.size_);
    p = reinterpret_cast<void*>(aligned);
    a.backing_ = ArenaBacking::kSmallPages;
    if (want_thp) {
      const std::string thp = read_first_line("/sys/kernel/mm/transparent_hugepage/enabled");
      if (thp.find("[never]") != std::string::npos) {
        a.notes_.push_back(
            "THP: disabled by the kernel (transparent_hugepage/enabled = never); "
            "using 4 KiB pages");
      } else if (madvise(p, a.size_, MADV_HUGEPAGE) != 0) {
        a.notes_.push_back(std::string("THP: madvise(MADV_HUGEPAGE) failed (") +
                           std::strerror(errno) + "); using 4 KiB pages");
      } else {
        a.backing_ = ArenaBacking::kThp;
      }
    }
  }
  if (options.require_huge_pages && a.backing_ == ArenaBacking::kSmallPages) {
    munmap(p, a.size_);
    return resource_exhausted("huge pages are required but none could be had: " +
                              (a.notes_.empty() ? std::string("huge pages off") : a.notes_.back()));
  }
  if (options.require_huge_pages && options.huge_pages == HugePages::kHugetlb &&
      a.backing_ != ArenaBacking::kHugetlb) {
    munmap(p, a.size_);
    return resource_exhausted("hugetlb pages are required: " + a.notes_.front());
  }
  a.base_ = static_cast<std::byte*>(p);
  a.bump_ = a.base_;

  if (options.numa_node >= 0) {
    unsigned long mask[16] = {};  // NOLINT(runtime/int): the kernel's type
    const auto node = static_cast<size_t>(options.numa_node);
    if (node < sizeof(mask) * 8) {
      mask[node / 64] |= 1ul << (node % 64);
      const long rc = syscall(SYS_mbind, p, a.size_, MPOL_BIND, mask, sizeof(mask) * 8, 0);
      if (rc == 0) {
        a.bound_ = true;
      } else {
        a.notes_.push_back("mbind to node " + std::to_string(node) + " failed (" +
                           std::strerror(errno) + "); memory follows first touch");
      }
    }
  }

  if (options.lock) {
    if (mlock(p, a.size_) == 0) {
      a.locked_ = true;
    } else {
      const int err = errno;
      rlimit lim{};
      getrlimit(RLIMIT_MEMLOCK, &lim);
      const std::string limit = lim.rlim_cur == RLIM_INFINITY ? "unlimited" : mib(lim.rlim_cur);
      std::string note = "mlock of " + mib(a.size_) + " failed (" + std::strerror(err) +
                         "; RLIMIT_MEMLOCK " + limit +
                         "); the arena may be swapped. Raise it with `ulimit -l` or grant "
                         "CAP_IPC_LOCK";
      if (options.require_lock) {
        munmap(p, a.size_);
        a.base_ = nullptr;
        return resource_exhausted(note);
      }
      a.notes_.push_back(std::move(note));
      // Fault the pages in now so the first O_DIRECT read does not pay for it.
      madvise(p, a.size_, MADV_WILLNEED);
    }
  }
  for (const std::string& n : a.notes_)
    SLUICE_LOG(debug, "para arena: {}", n);
  return a;
}

Arena::Arena(Arena&& o) noexcept {
  *this = std::move(o);
}

Arena& Arena::operator=(Arena&& o) noexcept {
  if (this != &o) {
    release();
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    bump_ = std::exchange(o.bump_, nullptr);
    backing_ = o.backing_;
    locked_ = o.locked_;
    bound_ = o.bound_;
    in_use_ = std::exchange(o.in_use_, 0);
    std::memcpy(free_lists_, o.free_lists_, sizeof(free_lists_));
    std::memset(o.free_lists_, 0, sizeof(o.free_lists_));
    notes_ = std::move(o.notes_);
  }
  return *this;
}

Arena::~Arena() {
  release();
}

void Arena::release() {
  if (base_ != nullptr) {
    if (locked_)
      munlock(base_, size_);
    munmap(base_, size_);
    base_ = nullptr;
  }
}

bool Arena::contains(const void* p, size_t n) const {
  const auto* b = static_cast<const std::byte*>(p);
  return b >= base_ && b + n <= base_ + size_;
}

std::string Arena::describe() const {
  std::string s = mib(size_) + ", " + arena_backing_name(backing_);
  s += bound_ ? ", NUMA-bound" : ", not NUMA-bound";
  s += locked_ ? ", locked" : ", not locked";
  return s;
}

int Arena::size_class(size_t size) {
  const size_t s = std::bit_ceil(std::max(size, kMinBlock));
  return std::countr_zero(s);
}

void* Arena::allocate(size_t size, size_t align) {
  if (size == 0 || align > 4096 || !std::has_single_bit(align))
    return nullptr;
  const int cls = size_class(std::max(size, align));
  if (cls >= kClasses)
    return nullptr;
  const size_t block = size_t{1} << cls;
  if (free_lists_[cls] != nullptr) {
    void* p = free_lists_[cls];
    free_lists_[cls] = *static_cast<void**>(p);
    in_use_ += block;
    return p;
  }
  // Blocks are aligned to their own size up to 4 KiB; a block is at least `align` bytes, so
  // every alignment asked for holds.
  const size_t need_align = std::min(block, size_t{4096});
  const auto cur = reinterpret_cast<uintptr_t>(bump_);
  const uintptr_t start = (cur + need_align - 1) & ~(need_align - 1);
  if (start + block > reinterpret_cast<uintptr_t>(base_ + size_))
    return nullptr;
  bump_ = base_ + (start - reinterpret_cast<uintptr_t>(base_)) + block;
  in_use_ += block;
  return reinterpret_cast<void*>(start);
}

void Arena::free(void* p, size_t size, size_t align) {
  if (p == nullptr)
    return;
  const int cls = size_class(std::max(size, align));
  const size_t block = size_t{1} << cls;
  *static_cast<void**>(p) = free_lists_[cls];
  free_lists_[cls] = p;
  in_use_ -= block;
}

}  // namespace sluice::para

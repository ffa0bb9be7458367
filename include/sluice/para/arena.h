// para::Arena: one partition's memory. A single mmap'd region, backed by huge pages when the
// machine has them, bound to the NUMA node of the partition's core and locked in RAM, with a
// size-class allocator for the partition's own buffers (O_DIRECT targets among them).
//
// Backing, in order of preference (HugePages::kAuto):
//   1. explicit hugetlb pages (MAP_HUGETLB, 2 MiB): needs /proc/sys/vm/nr_hugepages > 0;
//   2. transparent huge pages: an ordinary mapping with madvise(MADV_HUGEPAGE);
//   3. ordinary 4 KiB pages (THP disabled, or HugePages::kOff).
// Then mbind(MPOL_BIND) to the core's node and mlock(). Every step that cannot be done is a
// fallback with a note (notes()) and a log line saying what to change, never a failure, unless
// the options require it (require_huge_pages, require_lock).
//
// Thread safety: an Arena and its allocator belong to one thread (the partition's reactor):
// allocate()/free() are not synchronised. REQUIRES: memory is freed on the thread that owns the
// arena; a block freed on another partition must travel back by message (submit_to).
// Ownership: the Arena owns the mapping; Buffer owns one block and returns it when destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sluice/common/result.h"

namespace sluice::para {

enum class HugePages { kAuto, kHugetlb, kThp, kOff };

// "auto", "hugetlb", "thp", "off".
const char* huge_pages_name(HugePages h);
Result<HugePages> parse_huge_pages(std::string_view text);

enum class ArenaBacking { kHugetlb, kThp, kSmallPages };
const char* arena_backing_name(ArenaBacking b);

struct ArenaOptions {
  size_t size = size_t{64} << 20;  // rounded up to 2 MiB
  HugePages huge_pages = HugePages::kAuto;
  bool require_huge_pages = false;  // fail instead of falling back to small pages
  int numa_node = -1;               // -1: do not bind
  bool lock = true;                 // mlock the region
  bool require_lock = false;        // fail instead of running unlocked
  // For tests: pretend the machine has no explicit huge pages (as if nr_hugepages were 0).
  bool simulate_no_hugetlb = false;
};

class Arena {
 public:
  // Maps and prepares the region. Errors: resource exhausted (no memory, or a required huge-page
  // backing or lock that cannot be had, with what to change), invalid argument (size 0).
  static Result<Arena> create(const ArenaOptions& options);

  Arena(Arena&& o) noexcept;
  Arena& operator=(Arena&& o) noexcept;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();

  std::byte* base() const { return base_; }
  size_t size() const { return size_; }
  bool contains(const void* p, size_t n = 0) const;
  ArenaBacking backing() const { return backing_; }
  bool locked() const { return locked_; }
  bool numa_bound() const { return bound_; }
  // One line per fallback taken ("hugetlb: none reserved (vm.nr_hugepages = 0); using THP").
  const std::vector<std::string>& notes() const { return notes_; }
  // "64 MiB, THP, node 0, locked".
  std::string describe() const;

  // Allocates `size` bytes aligned to `align` (a power of two ≤ 4096; blocks of 4 KiB and up are
  // always 4 KiB aligned, fit for O_DIRECT). Returns nullptr when the arena is exhausted.
  void* allocate(size_t size, size_t align = 64);
  // REQUIRES: p came from allocate() with this `size` and `align` on this arena.
  void free(void* p, size_t size, size_t align = 64);
  size_t bytes_in_use() const { return in_use_; }
  size_t bytes_reserved() const { return static_cast<size_t>(bump_ - base_); }

 private:
  Arena() = default;
  void release();
  static int size_class(size_t size);

  static constexpr int kClasses = 48;
  std::byte* base_ = nullptr;
  size_t size_ = 0;
  std::byte* bump_ = nullptr;
  ArenaBacking backing_ = ArenaBacking::kSmallPages;
  bool locked_ = false;
  bool bound_ = false;
  size_t in_use_ = 0;
  void* free_lists_[kClasses] = {};
  std::vector<std::string> notes_;
};

// One block of an arena, returned when destroyed. Move-only.
class Buffer {
 public:
  Buffer() = default;
  // `size` is the size asked for; the block is returned with max(size, 4096) as its size, which
  // covers every alignment Reactor::allocate() hands out.
  Buffer(Arena* arena, std::byte* data, size_t size) : arena_(arena), data_(data), size_(size) {}
  Buffer(Buffer&& o) noexcept
      : arena_(std::exchange(o.arena_, nullptr)),
        data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      arena_ = std::exchange(o.arena_, nullptr);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~Buffer() { reset(); }

  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<std::byte> span() const { return {data_, size_}; }
  explicit operator bool() const { return data_ != nullptr; }

 private:
  void reset() {
    if (data_ != nullptr)
      arena_->free(data_, size_, 4096);
    data_ = nullptr;
  }
  Arena* arena_ = nullptr;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace sluice::para

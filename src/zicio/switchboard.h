// The switchboard (the paper's MEMSB): one memfd-backed region per channel holding the metric
// variables and the buffer status table. The worker side and the control loop talk only through
// it, and because it is a memfd the same layout can be mapped by another process (`sluice zicio
// stats PID` maps a running channel's switchboard read-only through /proc/PID/fd).
//
// Layout (all offsets fixed by the structs below, version kVersion):
//   Header          magic, version, geometry, name, owner pid: fixed at creation, except the
//                   plan totals, which notify_ranges() rewrites before the first page
//   WorkerMetrics   written only by the worker thread (relaxed stores, single writer)
//   SyncWords       the futex word (epoch) and the two wake-up flags
//   ControlMetrics  written only by the control loop (relaxed stores, single writer)
//   Slot[n]         one per 2 MiB buffer: status word, chunk id, first-access stamp
//
// Slot status word (32 bits): bits 0..29 the byte count of valid data in the buffer, bits 30..31
// the state. States and who may move them (docs/zicio.md draws the machine):
//   empty  → ready    control loop, after its read completed: publish() stores the chunk id,
//                     then CASes the word from empty to ready|bytes (release)
//   ready  → in-use   worker, acquire(): CAS (acquire). A CAS, not a store, because a control
//                     loop may take a ready buffer back (revoke) at the same instant
//   in-use → done     worker, release(): only the worker holds in-use buffers, a release store
//   done   → empty    control loop, recycle(): CAS; the buffer may then be read into again
//   ready  → empty    control loop, revoke(): CAS; used when a channel is closed or restarted,
//                     and by the shared pools of §4 for a worker that lags
// Invariants: a buffer is read into only while empty and owned by the control loop's in-flight
// table; the worker dereferences a buffer only between its successful acquire and its release;
// the chunk id is written before the release CAS that makes the buffer ready, so a worker whose
// acquire CAS succeeded reads the matching id. A reader in another process sees each word whole
// (naturally aligned atomics) but the words of a snapshot need not be from one instant.
//
// Waiting: the worker announces sleep by setting worker_sleeping (seq_cst), re-checks its
// condition, then sleeps on `epoch` with the value it read before the re-check. The control loop
// bumps epoch (seq_cst) after every publish and on error or end, then loads worker_sleeping
// (seq_cst) and calls FUTEX_WAKE only when it is set: the Dekker pairing guarantees that either
// the worker's re-check sees the publish or the control loop sees the flag. The reverse
// direction: the control loop sets ctrl_sleeping before it sleeps; the worker writes the control
// loop's eventfd only from its slow path (nothing ready) and only when it wins kick_pending.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>

#include "sluice/common/result.h"

namespace sluice::zicio::detail {

enum class SlotState : uint32_t { kEmpty = 0, kReady = 1, kInUse = 2, kDone = 3 };
const char* slot_state_name(SlotState s);

inline constexpr uint32_t kStateShift = 30;
inline constexpr uint32_t kCountMask = (uint32_t{1} << kStateShift) - 1;

constexpr uint32_t pack_status(SlotState s, uint32_t bytes) {
  return (static_cast<uint32_t>(s) << kStateShift) | (bytes & kCountMask);
}
constexpr SlotState status_state(uint32_t word) {
  return static_cast<SlotState>(word >> kStateShift);
}
constexpr uint32_t status_bytes(uint32_t word) {
  return word & kCountMask;
}

inline double bits_to_double(uint64_t b) {
  return std::bit_cast<double>(b);
}
inline uint64_t double_to_bits(double d) {
  return std::bit_cast<uint64_t>(d);
}

inline constexpr uint64_t kMagic = 0x5a49434953425331ull;  // "ZICISBS1"
inline constexpr uint32_t kVersion = 1;
inline constexpr size_t kNameBytes = 96;
inline constexpr uint32_t kBackingReused = 0x100;  // ControlMetrics::backing flag

struct alignas(64) Header {
  uint64_t magic;
  uint32_t version;
  uint32_t num_slots;
  uint64_t chunk_size;
  uint64_t page_size;
  uint64_t total_chunks;
  uint64_t total_bytes;  // bytes the worker will be handed (the ranges' sum, or the files')
  uint64_t layout_bytes;
  int32_t pid;
  uint32_t num_files;
  char name[kNameBytes];
};

struct alignas(64) WorkerMetrics {
  std::atomic<uint64_t> pages_got{0};
  std::atomic<uint64_t> pages_put{0};
  std::atomic<uint64_t> chunks_got{0};
  std::atomic<uint64_t> chunks_done{0};
  std::atomic<uint64_t> bytes_got{0};
  std::atomic<uint64_t> wait_ns{0};            // time spent in get_page_wait without a page
  std::atomic<uint64_t> waits{0};              // get_page_wait calls that had to wait
  std::atomic<uint64_t> not_ready{0};          // non-blocking get_page calls that found nothing
  std::atomic<uint64_t> consume_cost_bits{0};  // EMA, ns per byte, as double bits; 0 unknown
  std::atomic<uint64_t> current_chunk{0};      // 1 + the chunk the worker is on; 0 none yet
  std::atomic<int64_t> current_start_ns{0};    // its first access
};

struct alignas(64) SyncWords {
  std::atomic<uint32_t> epoch{0};            // futex word: bumped by the control loop
  std::atomic<uint32_t> worker_sleeping{0};  // the worker is (about to be) asleep on epoch
  std::atomic<uint32_t> ctrl_sleeping{0};    // the control loop is (about to be) asleep
  std::atomic<uint32_t> kick_pending{0};     // a wake-up of the control loop is under way
};

// Channel life, in ControlMetrics::state.
enum class LoopState : uint32_t {
  kStarting = 0,
  kRunning = 1,
  kFinished = 2,
  kFailed = 3,
  kStopped = 4
};

struct alignas(64) ControlMetrics {
  std::atomic<uint32_t> state{0};
  std::atomic<uint32_t> error_code{0};  // a StatusCode once state is kFailed
  std::atomic<uint64_t> next_chunk{0};  // the next chunk to read
  std::atomic<uint64_t> submitted{0};   // chunk requests (a buffer's fill)
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> device_reads{0};  // the I/O requests they were made of
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> inflight{0};
  std::atomic<uint64_t> allowed_inflight{0};
  std::atomic<uint64_t> max_inflight_seen{0};
  std::atomic<uint64_t> reward_submits{0};  // submissions made while R > 1
  std::atomic<uint64_t> paced_submits{0};   // submissions that waited for their release time
  std::atomic<uint64_t> read_cost_bits{0};  // EMA, ns per byte, as double bits
  std::atomic<int64_t> last_delay_ns{0};    // last release delay chosen (≥ 0)
  std::atomic<uint64_t> wakeups{0};
  std::atomic<uint64_t> sleeps{0};
  std::atomic<uint64_t> cpu_ns{0};  // the control thread's CPU time; a reactor's: its passes' time
  std::atomic<int64_t> first_submit_ns{0};
  std::atomic<int64_t> last_complete_ns{0};
  std::atomic<uint32_t> direct{0};      // bit 0: O_DIRECT reads; bit 1: file system bypassed
  std::atomic<uint32_t> registered{0};  // bit 0: buffers, bit 1: files
  std::atomic<uint32_t> backing{0};     // 0 small pages, 1 transparent huge pages, 2 hugetlb;
                                        // | kBackingReused: a closed channel's ring
  std::atomic<uint32_t> host{0};        // 0 a thread of its own, 1 a para reactor
  std::atomic<int32_t> host_core{-1};   // the core the loop is pinned to (-1: not pinned)
};

struct alignas(64) Slot {
  std::atomic<uint32_t> status{0};
  std::atomic<uint64_t> chunk{0};
  std::atomic<int64_t> first_access_ns{0};  // worker: its first get of this chunk
};

struct Geometry {
  std::string name;
  uint32_t num_slots = 16;
  uint64_t chunk_size = 2u << 20;
  uint64_t page_size = 2u << 20;
  uint64_t total_chunks = 0;
  uint64_t total_bytes = 0;
  uint32_t num_files = 0;
};

class Switchboard {
 public:
  // Creates the memfd ("sluice-zicio:<name>") and maps it read-write.
  static Result<Switchboard> create(const Geometry& g);
  // Maps an existing switchboard read-only (e.g. /proc/PID/fd/N). Errors: not a switchboard,
  // another version, unreadable.
  static Result<Switchboard> open_readonly(const std::string& path);

  Switchboard() = default;
  Switchboard(Switchboard&& o) noexcept;
  Switchboard& operator=(Switchboard&& o) noexcept;
  Switchboard(const Switchboard&) = delete;
  Switchboard& operator=(const Switchboard&) = delete;
  ~Switchboard();

  const Header& header() const { return *header_; }
  WorkerMetrics& worker() const { return *worker_; }
  SyncWords& sync() const { return *sync_; }
  ControlMetrics& control() const { return *control_; }
  Slot& slot(uint32_t i) const { return slots_[i]; }
  uint32_t num_slots() const { return header_->num_slots; }
  int fd() const { return fd_; }

  // Transitions (see the header comment). Each returns false when the slot was not in the
  // state the transition starts from.
  bool publish(uint32_t i, uint64_t chunk, uint32_t bytes) const;
  // ready → in-use, only if the slot holds `chunk` (any chunk when `chunk` is kAnyChunk).
  static constexpr uint64_t kAnyChunk = ~uint64_t{0};
  bool acquire(uint32_t i, uint64_t chunk, uint64_t* got_chunk, uint32_t* bytes) const;
  bool release(uint32_t i) const;
  bool recycle(uint32_t i) const;
  bool revoke(uint32_t i) const;
  SlotState state(uint32_t i) const {
    return status_state(slots_[i].status.load(std::memory_order_acquire));
  }

 private:
  static size_t layout_bytes(uint32_t num_slots);
  Status map(int fd, size_t bytes, bool writable);

  int fd_ = -1;
  void* base_ = nullptr;
  size_t bytes_ = 0;
  Header* header_ = nullptr;
  WorkerMetrics* worker_ = nullptr;
  SyncWords* sync_ = nullptr;
  ControlMetrics* control_ = nullptr;
  Slot* slots_ = nullptr;
};

// FUTEX_WAIT / FUTEX_WAKE on a 32-bit word of a shared mapping (not the private form, so the
// word works across processes). wait returns on wake, on a value change, on timeout or signal.
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns);
void futex_wake_all(std::atomic<uint32_t>* word);

}  // namespace sluice::zicio::detail

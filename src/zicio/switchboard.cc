#include "zicio/switchboard.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <new>
#include <utility>

namespace sluice::zicio::detail {

const char* slot_state_name(SlotState s) {
  switch (s) {
    case SlotState::kEmpty: return "empty";
    case SlotState::kReady: return "ready";
    case SlotState::kInUse: return "in-use";
    case SlotState::kDone: return "done";
  }
  return "?";
}

size_t Switchboard::layout_bytes(uint32_t num_slots) {
  return sizeof(Header) + sizeof(WorkerMetrics) + sizeof(SyncWords) + sizeof(ControlMetrics) +
         sizeof(Slot) * num_slots;
}

Status Switchboard::map(int fd, size_t bytes, bool writable) {
  void* p = mmap(nullptr, bytes, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return errno_status(errno, "mmap of the zicio switchboard");
  fd_ = fd;
  base_ = p;
  bytes_ = bytes;
  auto* b = static_cast<char*>(p);
  header_ = reinterpret_cast<Header*>(b);
  b += sizeof(Header);
  worker_ = reinterpret_cast<WorkerMetrics*>(b);
  b += sizeof(WorkerMetrics);
  sync_ = reinterpret_cast<SyncWords*>(b);
  b += sizeof(SyncWords);
  control_ = reinterpret_cast<ControlMetrics*>(b);
  b += sizeof(ControlMetrics);
  slots_ = reinterpret_cast<Slot*>(b);
  return Status::ok();
}

Result<Switchboard> Switchboard::create(const Geometry& g) {
  if (g.num_slots == 0)
    return invalid_argument("a zicio switchboard needs at least one buffer slot");
  const std::string memfd_name = "sluice-zicio:" + g.name;
  const int fd = memfd_create(memfd_name.c_str(), MFD_CLOEXEC);
  if (fd < 0)
    return errno_status(errno, "memfd_create for the zicio switchboard");
  const size_t bytes = layout_bytes(g.num_slots);
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int err = errno;
    close(fd);
    return errno_status(err, "ftruncate of the zicio switchboard");
  }
  Switchboard sb;
  if (Status s = sb.map(fd, bytes, true); !s.is_ok()) {
    close(fd);
    return s;
  }
  // The memfd is zero-filled, which is every atomic's initial value; placement-new makes the
  // objects' lifetimes begin formally.
  new (sb.header_) Header{};
  new (sb.worker_) WorkerMetrics{};
  new (sb.sync_) SyncWords{};
  new (sb.control_) ControlMetrics{};
  for (uint32_t i = 0; i < g.num_slots; ++i)
    new (&sb.slots_[i]) Slot{};
  Header& h = *sb.header_;
  h.magic = kMagic;
  h.version = kVersion;
  h.num_slots = g.num_slots;
  h.chunk_size = g.chunk_size;
  h.page_size = g.page_size;
  h.total_chunks = g.total_chunks;
  h.total_bytes = g.total_bytes;
  h.layout_bytes = bytes;
  h.pid = static_cast<int32_t>(getpid());
  h.num_files = g.num_files;
  std::strncpy(h.name, g.name.c_str(), kNameBytes - 1);
  return sb;
}

Result<Switchboard> Switchboard::open_readonly(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno_status(errno, "open " + path);
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < sizeof(Header)) {
    close(fd);
    return invalid_argument(path + " is not a zicio switchboard (too small)");
  }
  Switchboard sb;
  if (Status s = sb.map(fd, static_cast<size_t>(st.st_size), false); !s.is_ok()) {
    close(fd);
    return s;
  }
  if (sb.header_->magic != kMagic)
    return invalid_argument(path + " is not a zicio switchboard (bad magic)");
  if (sb.header_->version != kVersion)
    return failed_precondition(path + " is a zicio switchboard of layout version " +
                               std::to_string(sb.header_->version) + ", this program reads " +
                               std::to_string(kVersion));
  if (layout_bytes(sb.header_->num_slots) > sb.bytes_)
    return invalid_argument(path + " is a truncated zicio switchboard");
  return sb;
}

Switchboard::Switchboard(Switchboard&& o) noexcept {
  *this = std::move(o);
}

Switchboard& Switchboard::operator=(Switchboard&& o) noexcept {
  if (this != &o) {
    this->~Switchboard();
    fd_ = std::exchange(o.fd_, -1);
    base_ = std::exchange(o.base_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    header_ = std::exchange(o.header_, nullptr);
    worker_ = std::exchange(o.worker_, nullptr);
    sync_ = std::exchange(o.sync_, nullptr);
    control_ = std::exchange(o.control_, nullptr);
    slots_ = std::exchange(o.slots_, nullptr);
  }
  return *this;
}

Switchboard::~Switchboard() {
  if (base_ != nullptr)
    munmap(base_, bytes_);
  if (fd_ >= 0)
    close(fd_);
  base_ = nullptr;
  fd_ = -1;
}

bool Switchboard::publish(uint32_t i, uint64_t chunk, uint32_t bytes) const {
  Slot& s = slots_[i];
  // Only the control loop leaves the empty state, so once it sees empty the slot stays empty
  // until its own CAS below: writing the id first cannot clobber a buffer someone else holds.
  if (status_state(s.status.load(std::memory_order_acquire)) != SlotState::kEmpty)
    return false;
  s.chunk.store(chunk, std::memory_order_relaxed);
  s.first_access_ns.store(0, std::memory_order_relaxed);
  uint32_t expected = pack_status(SlotState::kEmpty, 0);
  return s.status.compare_exchange_strong(expected, pack_status(SlotState::kReady, bytes),
                                          std::memory_order_release, std::memory_order_relaxed);
}

bool Switchboard::acquire(uint32_t i, uint64_t chunk, uint64_t* got_chunk, uint32_t* bytes) const {
  Slot& s = slots_[i];
  uint32_t word = s.status.load(std::memory_order_acquire);
  if (status_state(word) != SlotState::kReady)
    return false;
  const uint64_t c = s.chunk.load(std::memory_order_relaxed);
  if (chunk != kAnyChunk && c != chunk)
    return false;
  if (!s.status.compare_exchange_strong(word, pack_status(SlotState::kInUse, status_bytes(word)),
                                        std::memory_order_acquire, std::memory_order_relaxed))
    return false;
  *got_chunk = c;
  *bytes = status_bytes(word);
  return true;
}

bool Switchboard::release(uint32_t i) const {
  Slot& s = slots_[i];
  const uint32_t word = s.status.load(std::memory_order_relaxed);
  if (status_state(word) != SlotState::kInUse)
    return false;
  s.status.store(pack_status(SlotState::kDone, status_bytes(word)), std::memory_order_release);
  return true;
}

bool Switchboard::recycle(uint32_t i) const {
  Slot& s = slots_[i];
  uint32_t word = s.status.load(std::memory_order_acquire);
  if (status_state(word) != SlotState::kDone)
    return false;
  return s.status.compare_exchange_strong(word, pack_status(SlotState::kEmpty, 0),
                                          std::memory_order_acq_rel, std::memory_order_relaxed);
}

bool Switchboard::revoke(uint32_t i) const {
  Slot& s = slots_[i];
  uint32_t word = s.status.load(std::memory_order_acquire);
  if (status_state(word) != SlotState::kReady)
    return false;
  return s.status.compare_exchange_strong(word, pack_status(SlotState::kEmpty, 0),
                                          std::memory_order_acq_rel, std::memory_order_relaxed);
}

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout_ns >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout_ns / 1000000000);
    ts.tv_nsec = static_cast<long>(timeout_ns % 1000000000);
    tsp = &ts;
  }
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, tsp, nullptr, 0);
}

void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

}  // namespace sluice::zicio::detail

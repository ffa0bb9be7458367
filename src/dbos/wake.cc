#include "dbos/wake.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace sluice::dbos {

Result<std::unique_ptr<WakeTable>> WakeTable::open(const std::string& path) {
  const size_t bytes = kSlots * sizeof(Slot);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return errno_status(errno, fmt::format("cannot open the wake-up file {}", path));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < bytes) {
    // Growing is idempotent: every process sets the same size, new bytes read as zero.
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      int err = errno;
      ::close(fd);
      return errno_status(err, fmt::format("cannot size the wake-up file {}", path));
    }
  }
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  ::close(fd);
  if (base == MAP_FAILED) {
    return errno_status(err, fmt::format("cannot map the wake-up file {}", path));
  }
  return std::unique_ptr<WakeTable>(new WakeTable(base, bytes));
}

WakeTable::~WakeTable() {
  ::munmap(slots_, bytes_);
}

WakeTable::Slot& WakeTable::slot(int64_t key) const {
  uint64_t h = static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ULL;
  return slots_[(h >> 32) % kSlots];
}

uint32_t WakeTable::epoch(int64_t key) const {
  return slot(key).epoch.load(std::memory_order_seq_cst);
}

void WakeTable::notify(int64_t key) {
  Slot& s = slot(key);
  s.epoch.fetch_add(1, std::memory_order_seq_cst);
  if (s.waiters.load(std::memory_order_seq_cst) > 0) {
    ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&s.epoch), FUTEX_WAKE, INT_MAX, nullptr,
              nullptr, 0);
  }
}

bool WakeTable::wait(int64_t key, uint32_t seen, int64_t timeout_ns) {
  Slot& s = slot(key);
  s.waiters.fetch_add(1, std::memory_order_seq_cst);
  bool woke = true;
  if (s.epoch.load(std::memory_order_seq_cst) == seen) {
    struct timespec ts {};
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    long rc = ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&s.epoch), FUTEX_WAIT, seen, &ts,
                        nullptr, 0);
    if (rc != 0 && errno == ETIMEDOUT) {
      woke = false;
    }
  }
  s.waiters.fetch_sub(1, std::memory_order_seq_cst);
  return woke;
}

}  // namespace sluice::dbos

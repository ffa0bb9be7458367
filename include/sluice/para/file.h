// para::File: a file read and written through the reactor's io_uring, with O_DIRECT by default —
// the device transfers straight into the buffer (best: a block of the partition's arena, which is
// registered with the ring so reads use READ_FIXED), and the page cache is not involved.
//
//   SLUICE_CO_ASSIGN_OR_RETURN(para::File f, co_await para::File::open(path, {}));
//   para::Buffer buf = para::local_reactor().allocate(4096);
//   SLUICE_CO_ASSIGN_OR_RETURN(size_t n, co_await f.read_at(0, buf.span()));
//
// O_DIRECT needs the buffer address, the offset and the length to be multiples of the file's
// direct-I/O alignment (dio_align(), from statx where the kernel reports it, else 4096); a
// misaligned request fails with invalid argument and says so. A filesystem without O_DIRECT
// (tmpfs) makes open() fall back to buffered I/O with a warning; direct() then says false, and
// OpenOptions::require_direct turns the fallback into an error.
//
// Thread safety: a File may be used from one reactor at a time (its operations run on the calling
// reactor's ring). Closing is synchronous (close(2) on a regular file does not wait for I/O).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "sluice/common/result.h"
#include "sluice/para/reactor.h"
#include "sluice/para/task.h"

namespace sluice::para {

struct OpenOptions {
  bool write = false;
  bool create = false;
  bool truncate = false;
  bool direct = true;
  bool require_direct = false;  // fail instead of falling back to buffered I/O
  mode_t mode = 0644;
  // Tests: behave as if the filesystem refused O_DIRECT with EINVAL (tmpfs before Linux 6.6).
  bool simulate_no_direct = false;
};

class File {
 public:
  File() = default;
  File(File&& o) noexcept;
  File& operator=(File&& o) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  // Opens through the ring (IORING_OP_OPENAT). Must run on a reactor.
  static Task<Result<File>> open(std::string path, OpenOptions options);
  // Opens with open(2); for setup code that does not run on a reactor.
  static Result<File> open_blocking(const std::string& path, OpenOptions options);

  // The awaitable of one read or write: resumes with the bytes transferred, or an error
  // (kCancelled when cancelled or the runtime stops, kInvalidArgument when misaligned for
  // O_DIRECT, kIoError and friends from the kernel's errno).
  class IoAwaitable {
   public:
    IoAwaitable(const File* f, bool write, uint64_t offset, std::byte* buf, size_t len,
                CancelToken* token);
    bool await_ready() noexcept;
    void await_suspend(std::coroutine_handle<> h);
    Result<size_t> await_resume();

   private:
    const File* file_;
    bool write_;
    uint64_t offset_;
    std::byte* buf_;
    size_t len_;
    CancelToken* token_;
    Reactor* reactor_;
    Status early_;  // an error found before submission
    bool submitted_ = false;
    IoOp op_;
  };

  IoAwaitable read_at(uint64_t offset, std::span<std::byte> buf,
                      CancelToken* token = nullptr) const {
    return IoAwaitable(this, false, offset, buf.data(), buf.size(), token);
  }
  IoAwaitable write_at(uint64_t offset, std::span<const std::byte> buf,
                       CancelToken* token = nullptr) const {
    return IoAwaitable(this, true, offset, const_cast<std::byte*>(buf.data()), buf.size(), token);
  }
  // fdatasync through the ring.
  Task<Status> sync() const;

  int fd() const { return fd_; }
  bool direct() const { return direct_; }
  size_t dio_align() const { return dio_align_; }
  const std::string& path() const { return path_; }
  // st_size, via fstat (a cheap syscall that does not wait for the device).
  Result<uint64_t> size() const;
  void close();

 private:
  static Result<File> finish_open(int fd, std::string path, bool direct);
  int fd_ = -1;
  bool direct_ = false;
  size_t dio_align_ = 4096;
  std::string path_;
};

}  // namespace sluice::para

#include "sluice/para/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "sluice/common/log.h"

namespace sluice::para {
namespace {

int open_flags(const OpenOptions& o, bool direct) {
  int flags = O_CLOEXEC;
  flags |= o.write ? O_RDWR : O_RDONLY;
  if (o.create)
    flags |= O_CREAT;
  if (o.truncate)
    flags |= O_TRUNC;
  if (direct)
    flags |= O_DIRECT;
  return flags;
}

size_t query_dio_align(int fd) {
#ifdef STATX_DIOALIGN
  struct statx sx {};
  if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
      (sx.stx_mask & STATX_DIOALIGN) != 0 && sx.stx_dio_offset_align != 0) {
    return std::max<size_t>(sx.stx_dio_offset_align, sx.stx_dio_mem_align);
  }
#else
  (void)fd;
#endif
  return 4096;
}

Status no_direct_status(const std::string& path) {
  return invalid_argument("cannot open " + path +
                          " with O_DIRECT: the filesystem does not support it (tmpfs?); put the "
                          "file on ext4/xfs or allow buffered I/O");
}

}  // namespace

File::File(File&& o) noexcept {
  *this = std::move(o);
}

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    direct_ = o.direct_;
    dio_align_ = o.dio_align_;
    path_ = std::move(o.path_);
  }
  return *this;
}

File::~File() {
  close();
}

void File::close() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

Result<File> File::finish_open(int fd, std::string path, bool direct) {
  File f;
  f.fd_ = fd;
  f.direct_ = direct;
  f.path_ = std::move(path);
  f.dio_align_ = direct ? query_dio_align(fd) : 1;
  return f;
}

Result<File> File::open_blocking(const std::string& path, OpenOptions options) {
  int fd = -1;
  if (options.direct && options.simulate_no_direct) {
    errno = EINVAL;
  } else {
    fd = ::open(path.c_str(), open_flags(options, options.direct), options.mode);
  }
  bool direct = options.direct;
  if (fd < 0 && errno == EINVAL && options.direct) {
    if (options.require_direct)
      return no_direct_status(path);
    SLUICE_LOG(warn, "para: {} does not support O_DIRECT; using buffered I/O", path);
    fd = ::open(path.c_str(), open_flags(options, false), options.mode);
    direct = false;
  }
  if (fd < 0)
    return errno_status(errno, "cannot open " + path);
  return finish_open(fd, path, direct);
}

Task<Result<File>> File::open(std::string path, OpenOptions options) {
  const auto attempt = [&](bool direct) {
    const int flags = open_flags(options, direct);
    const char* p = path.c_str();
    const mode_t mode = options.mode;
    return io([=](io_uring_sqe* sqe) { io_uring_prep_openat(sqe, AT_FDCWD, p, flags, mode); });
  };
  int32_t rc =
      options.direct && options.simulate_no_direct ? -EINVAL : co_await attempt(options.direct);
  bool direct = options.direct;
  if (rc == -EINVAL && options.direct) {
    if (options.require_direct)
      co_return no_direct_status(path);
    SLUICE_LOG(warn, "para: {} does not support O_DIRECT; using buffered I/O", path);
    rc = co_await attempt(false);
    direct = false;
  }
  if (rc == -ECANCELED)
    co_return cancelled("open " + path + " cancelled");
  if (rc < 0)
    co_return errno_status(-rc, "cannot open " + path);
  co_return finish_open(rc, path, direct);
}

Result<uint64_t> File::size() const {
  struct stat st {};
  if (fstat(fd_, &st) != 0)
    return errno_status(errno, "fstat " + path_);
  return static_cast<uint64_t>(st.st_size);
}

Task<Status> File::sync() const {
  const int fd = fd_;
  const int32_t rc =
      co_await io([fd](io_uring_sqe* sqe) { io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC); });
  if (rc == -ECANCELED)
    co_return cancelled("fdatasync " + path_ + " cancelled");
  if (rc < 0)
    co_return errno_status(-rc, "fdatasync " + path_);
  co_return Status();
}

File::IoAwaitable::IoAwaitable(const File* f, bool write, uint64_t offset, std::byte* buf,
                               size_t len, CancelToken* token)
    : file_(f),
      write_(write),
      offset_(offset),
      buf_(buf),
      len_(len),
      token_(token),
      reactor_(&local_reactor()) {
  op_.reactor = reactor_;
}

bool File::IoAwaitable::await_ready() noexcept {
  if (reactor_->stopping() || (token_ != nullptr && token_->cancelled())) {
    op_.res = -ECANCELED;
    return true;
  }
  if (file_->fd_ < 0) {
    early_ = failed_precondition("file is not open");
    return true;
  }
  if (len_ > 0x7fffffffu) {
    early_ = invalid_argument("single I/O larger than 2 GiB on " + file_->path_);
    return true;
  }
  if (file_->direct_) {
    const size_t a = file_->dio_align_;
    if (reinterpret_cast<uintptr_t>(buf_) % a != 0 || offset_ % a != 0 || len_ % a != 0) {
      early_ = invalid_argument("O_DIRECT " + std::string(write_ ? "write" : "read") + " on " +
                                file_->path_ + " must be aligned to " + std::to_string(a) +
                                " bytes (buffer, offset and length); use an arena Buffer");
      return true;
    }
  }
  return false;
}

void File::IoAwaitable::await_suspend(std::coroutine_handle<> h) {
  op_.waiter = h;
  io_uring_sqe* sqe = reactor_->get_sqe();
  const auto n = static_cast<unsigned>(len_);
  if (reactor_->arena_registered(buf_, len_)) {
    if (write_) {
      io_uring_prep_write_fixed(sqe, file_->fd_, buf_, n, offset_, 0);
    } else {
      io_uring_prep_read_fixed(sqe, file_->fd_, buf_, n, offset_, 0);
    }
  } else if (write_) {
    io_uring_prep_write(sqe, file_->fd_, buf_, n, offset_);
  } else {
    io_uring_prep_read(sqe, file_->fd_, buf_, n, offset_);
  }
  io_uring_sqe_set_data(sqe, &op_);
  op_.device = true;
  reactor_->track(&op_);
  submitted_ = true;
  if (token_ != nullptr)
    token_->attach(&op_);
}

Result<size_t> File::IoAwaitable::await_resume() {
  if (token_ != nullptr)
    token_->detach(&op_);
  if (!early_.is_ok())
    return early_;
  const char* what = write_ ? "write" : "read";
  if (op_.res == -ECANCELED) {
    return cancelled(std::string(what) + " of " + file_->path_ + " cancelled");
  }
  if (op_.res < 0) {
    return errno_status(-op_.res, std::string(what) + " " + std::to_string(len_) + " bytes at " +
                                      std::to_string(offset_) + " of " + file_->path_);
  }
  return static_cast<size_t>(op_.res);
}

}  // namespace sluice::para

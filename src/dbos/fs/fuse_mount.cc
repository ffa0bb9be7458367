#define FUSE_USE_VERSION 31
#include "dbos/fs/fuse_mount.h"

#include <fmt/format.h>
#include <fuse.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <vector>

namespace sluice::dbos {
namespace {

struct MountState {
  std::function<Result<std::unique_ptr<FileSystem>>()> open_fs;
  std::mutex mu;
  std::vector<std::unique_ptr<FileSystem>> idle;  // handles no request is using now
  uid_t uid = 0;
  gid_t gid = 0;
};

MountState& state() {
  return *static_cast<MountState*>(fuse_get_context()->private_data);
}

int fail(const Status& s) {
  return -error_number(s);
}

// The FileSystem (one database session) that serves the current request. Requests run on
// libfuse's worker threads at once and a session serves one thread at a time, so each takes a
// handle from the pool and gives it back when done: there are as many handles as requests ever
// ran at once, whatever threads libfuse starts and stops.
class Lease {
 public:
  Lease() : state_(state()) {
    {
      std::lock_guard lock(state_.mu);
      if (!state_.idle.empty()) {
        fs_ = std::move(state_.idle.back());
        state_.idle.pop_back();
      }
    }
    if (fs_ == nullptr) {
      auto opened = state_.open_fs();
      if (opened.is_ok()) {
        fs_ = std::move(*opened);
      } else {
        status_ = opened.status();
      }
    }
  }
  ~Lease() {
    if (fs_ != nullptr) {
      std::lock_guard lock(state_.mu);
      state_.idle.push_back(std::move(fs_));
    }
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  explicit operator bool() const { return fs_ != nullptr; }
  const Status& status() const { return status_; }
  FileSystem& operator*() const { return *fs_; }

 private:
  MountState& state_;
  std::unique_ptr<FileSystem> fs_;
  Status status_;
};

// Runs `fn` on a leased FileSystem; the errno of the failure to open one when none is free.
template <typename Fn>
int with_fs(Fn&& fn) {
  Lease fs;
  if (!fs) {
    return fail(fs.status());
  }
  return fn(*fs);
}

timespec to_timespec(int64_t us) {
  timespec t{};
  t.tv_sec = static_cast<time_t>(us / 1'000'000);
  t.tv_nsec = static_cast<long>((us % 1'000'000) * 1000);
  return t;
}

int64_t to_us(const timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * 1'000'000 + t.tv_nsec / 1000;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void* op_init(fuse_conn_info*, fuse_config* cfg) {
  // No kernel caching of names or attributes: `sluice fs put` and other mounts change the
  // tables behind this one's back.
  cfg->entry_timeout = 0;
  cfg->attr_timeout = 0;
  cfg->negative_timeout = 0;
  return fuse_get_context()->private_data;
}

int op_getattr(const char* path, struct stat* st, fuse_file_info*) {
  return with_fs([&](FileSystem& fs) {
    auto r = fs.stat(path);
    if (!r.is_ok()) {
      return fail(r.status());
    }
    std::memset(st, 0, sizeof(*st));
    const bool dir = r->type == FileType::kDirectory;
    st->st_mode = (dir ? S_IFDIR : S_IFREG) | static_cast<mode_t>(r->mode & 07777);
    st->st_nlink = dir ? 2 : 1;
    st->st_uid = state().uid;
    st->st_gid = state().gid;
    st->st_size = static_cast<off_t>(r->size);
    st->st_blksize = static_cast<blksize_t>(r->block_size > 0 ? r->block_size : 4096);
    st->st_blocks = static_cast<blkcnt_t>((r->size + 511) / 512);
    st->st_atim = to_timespec(r->atime_us);
    st->st_mtim = to_timespec(r->mtime_us);
    st->st_ctim = to_timespec(r->ctime_us);
    return 0;
  });
}

int op_readdir(const char* path, void* buf, fuse_fill_dir_t filler, off_t, fuse_file_info*,
               fuse_readdir_flags) {
  return with_fs([&](FileSystem& fs) {
    auto r = fs.readdir(path);
    if (!r.is_ok()) {
      return fail(r.status());
    }
    filler(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    filler(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    for (const DirEntry& e : *r) {
      if (filler(buf, e.name.c_str(), nullptr, 0, static_cast<fuse_fill_dir_flags>(0)) != 0) {
        break;
      }
    }
    return 0;
  });
}

int op_mkdir(const char* path, mode_t mode) {
  return with_fs([&](FileSystem& fs) { return fail(fs.mkdir(path, mode & 07777)); });
}
int op_rmdir(const char* path) {
  return with_fs([&](FileSystem& fs) { return fail(fs.rmdir(path)); });
}
int op_unlink(const char* path) {
  return with_fs([&](FileSystem& fs) { return fail(fs.unlink(path)); });
}

int op_rename(const char* from, const char* to, unsigned int flags) {
  return with_fs([&](FileSystem& fs) {
    if (flags & RENAME_EXCHANGE) {
      return -EINVAL;
    }
    if (flags & RENAME_NOREPLACE) {
      auto st = fs.stat(to);
      if (st.is_ok()) {
        return -EEXIST;
      }
    }
    return fail(fs.rename(from, to));
  });
}

int op_create(const char* path, mode_t mode, fuse_file_info* fi) {
  return with_fs([&](FileSystem& fs) {
    return fail(fs.create(path, mode & 07777, (fi->flags & O_EXCL) != 0));
  });
}

int op_open(const char* path, fuse_file_info* fi) {
  return with_fs([&](FileSystem& fs) {
    SLUICE_ASSERT(fi != nullptr, "FUSE open without file info");
    Status s = fs.open_file(path);
    if (s.is_ok() && (fi->flags & O_TRUNC) != 0) {
      s = fs.truncate(path, 0);
    }
    return fail(s);
  });
}

int op_read(const char* path, char* buf, size_t size, off_t offset, fuse_file_info*) {
  return with_fs([&](FileSystem& fs) {
    auto r = fs.read(path, offset, static_cast<int64_t>(size));
    if (!r.is_ok()) {
      return fail(r.status());
    }
    std::memcpy(buf, r->data(), r->size());
    return static_cast<int>(r->size());
  });
}

int op_write(const char* path, const char* buf, size_t size, off_t offset, fuse_file_info*) {
  return with_fs([&](FileSystem& fs) {
    auto r = fs.write(path, offset, std::string_view(buf, size));
    if (!r.is_ok()) {
      return fail(r.status());
    }
    return static_cast<int>(*r);
  });
}

int op_truncate(const char* path, off_t size, fuse_file_info*) {
  return with_fs([&](FileSystem& fs) { return fail(fs.truncate(path, size)); });
}

int op_chmod(const char* path, mode_t mode, fuse_file_info*) {
  return with_fs([&](FileSystem& fs) { return fail(fs.chmod(path, mode & 07777)); });
}

// Owners are dbos users; the mount shows every entry as the mounting user's, so a chown to that
// user (cp -p, rsync -a as that user) is a no-op and any other is refused.
int op_chown(const char* path, uid_t uid, gid_t gid, fuse_file_info*) {
  return with_fs([&](FileSystem& fs) {
    auto st = fs.stat(path);
    if (!st.is_ok()) {
      return fail(st.status());
    }
    const bool same_uid = uid == static_cast<uid_t>(-1) || uid == state().uid;
    const bool same_gid = gid == static_cast<gid_t>(-1) || gid == state().gid;
    return same_uid && same_gid ? 0 : -EPERM;
  });
}

int op_utimens(const char* path, const timespec tv[2], fuse_file_info*) {
  return with_fs([&](FileSystem& fs) {
    auto pick = [](const timespec* t) -> int64_t {
      if (t == nullptr || t->tv_nsec == UTIME_NOW) {
        return now_us();
      }
      if (t->tv_nsec == UTIME_OMIT) {
        return -1;
      }
      return to_us(*t);
    };
    return fail(fs.set_times(path, pick(tv ? &tv[0] : nullptr), pick(tv ? &tv[1] : nullptr)));
  });
}

int op_statfs(const char*, struct statvfs* st) {
  std::memset(st, 0, sizeof(*st));
  st->f_bsize = 4096;
  st->f_frsize = 4096;
  // The database grows as needed: report a large, mostly free device.
  st->f_blocks = 1ULL << 30;
  st->f_bfree = 1ULL << 30;
  st->f_bavail = 1ULL << 30;
  st->f_files = 1ULL << 30;
  st->f_ffree = 1ULL << 30;
  st->f_namemax = 255;
  return 0;
}

// Every write is already committed: nothing to flush.
int op_flush(const char*, fuse_file_info*) {
  return 0;
}
int op_release(const char*, fuse_file_info*) {
  return 0;
}
int op_fsync(const char*, int, fuse_file_info*) {
  return 0;
}

fuse_operations make_ops() {
  fuse_operations ops{};
  ops.init = op_init;
  ops.getattr = op_getattr;
  ops.readdir = op_readdir;
  ops.mkdir = op_mkdir;
  ops.rmdir = op_rmdir;
  ops.unlink = op_unlink;
  ops.rename = op_rename;
  ops.create = op_create;
  ops.open = op_open;
  ops.read = op_read;
  ops.write = op_write;
  ops.truncate = op_truncate;
  ops.chmod = op_chmod;
  ops.chown = op_chown;
  ops.utimens = op_utimens;
  ops.statfs = op_statfs;
  ops.flush = op_flush;
  ops.release = op_release;
  ops.fsync = op_fsync;
  return ops;
}

}  // namespace

Status serve_fuse(const MountOptions& options,
                  const std::function<Result<std::unique_ptr<FileSystem>>()>& open_fs) {
  std::vector<std::string> argv_store = {"sluice-fs", "-o", "fsname=sluice-dbos,subtype=dbos"};
  if (options.debug) {
    argv_store.emplace_back("-d");
  }
  std::vector<char*> argv;
  for (auto& a : argv_store) {
    argv.push_back(a.data());
  }
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  MountState mount_state;
  mount_state.open_fs = open_fs;
  mount_state.uid = ::getuid();
  mount_state.gid = ::getgid();
  const fuse_operations ops = make_ops();
  fuse* f = fuse_new(&args, &ops, sizeof(ops), &mount_state);
  fuse_opt_free_args(&args);
  if (f == nullptr) {
    return failed_precondition("cannot set up FUSE (libfuse3 refused the options)");
  }
  if (fuse_mount(f, options.mountpoint.c_str()) != 0) {
    fuse_destroy(f);
    return failed_precondition(fmt::format(
        "cannot mount on {}: is it an existing empty directory, is /dev/fuse there, and may "
        "this user mount (root, or fusermount3 installed)?",
        options.mountpoint));
  }
  fuse_session* se = fuse_get_session(f);
  Status result;
  if (fuse_set_signal_handlers(se) != 0) {
    result = failed_precondition("cannot install the FUSE signal handlers");
  } else {
    if (fuse_daemonize(options.foreground || options.debug ? 1 : 0) != 0) {
      result = failed_precondition("cannot detach from the terminal");
    } else {
      auto fs = open_fs();
      if (!fs.is_ok()) {
        result = fs.status();
      } else {
        mount_state.idle.push_back(std::move(*fs));
        const int served = options.single_thread ? fuse_loop(f) : fuse_loop_mt(f, 0);
        if (served < 0) {
          result = io_error(fmt::format("serving {} ended with an error", options.mountpoint));
        }
      }
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_unmount(f);
  fuse_destroy(f);
  return result;
}

}  // namespace sluice::dbos

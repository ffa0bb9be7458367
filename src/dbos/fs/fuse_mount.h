// Internal: serves a dbos FileSystem through FUSE 3 (`sluice fs mount`). Path-based: the kernel
// hands over fully qualified names, which are the keys of `Directory`, so every FUSE call is one
// FileSystem call and one transaction.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "sluice/common/result.h"
#include "sluice/dbos/fs.h"

namespace sluice::dbos {

struct MountOptions {
  std::string mountpoint;
  bool foreground = false;     // false: detach once mounted (like mount(8))
  bool debug = false;          // libfuse's request trace on stderr (implies foreground)
  bool single_thread = false;  // serve one request at a time, on one session (libfuse's -s)
};

// Mounts, detaches unless foreground, then opens the filesystem with `open_fs` (after the fork,
// so no database connection crosses it) and serves requests on libfuse's worker threads until
// unmounted (`fusermount3 -u DIR`) or sent SIGINT/SIGTERM/SIGHUP. Requests in flight at once get
// a FileSystem each, opened with `open_fs` when none is free, so `open_fs` is called from those
// threads too.
Status serve_fuse(const MountOptions& options,
                  const std::function<Result<std::unique_ptr<FileSystem>>()>& open_fs);

}  // namespace sluice::dbos

// Test support shared by the channel tests: files of a known byte pattern, and a worker that
// drains a channel checking every byte.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "sluice/zicio/channel.h"

namespace sluice::zicio::test_support {

inline constexpr uint64_t kMiB = uint64_t{1} << 20;
inline constexpr long kTmpfsMagic = 0x01021994;

// The byte at `offset` of test file `file`: differs between files, pages and neighbours.
inline uint8_t pattern(uint32_t file, uint64_t offset) {
  return static_cast<uint8_t>((offset * 131) ^ (offset >> 11) ^ (file * 77 + 1));
}

class TempFiles {
 public:
  explicit TempFiles(std::string dir) : dir_(std::move(dir)) {}
  ~TempFiles() { remove_all(); }
  // Unlinks every file made so far. A process that will not run destructors (a death test's
  // child) calls it once its channels hold the files open.
  void remove_all() {
    for (const std::string& p : paths_) {
      chmod(p.c_str(), 0600);
      unlink(p.c_str());
    }
    paths_.clear();
  }
  std::string make(uint32_t file, uint64_t size) {
    std::string path =
        dir_ + "/sluice_zicio_test_" + std::to_string(getpid()) + "_" + std::to_string(counter_++);
    FILE* f = std::fopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr) << path;
    std::vector<uint8_t> buf(kMiB);
    for (uint64_t off = 0; off < size; off += buf.size()) {
      const uint64_t n = std::min<uint64_t>(buf.size(), size - off);
      for (uint64_t i = 0; i < n; ++i)
        buf[i] = pattern(file, off + i);
      EXPECT_EQ(std::fwrite(buf.data(), 1, n, f), n);
    }
    std::fclose(f);
    paths_.push_back(path);
    return path;
  }

 private:
  std::string dir_;
  std::vector<std::string> paths_;
  int counter_ = 0;
};

inline std::string disk_dir() {
  return "/var/tmp";
}
inline bool is_tmpfs(const std::string& dir) {
  struct statfs s {};
  return statfs(dir.c_str(), &s) == 0 && static_cast<long>(s.f_type) == kTmpfsMagic;
}

inline ChannelOptions small_options() {
  ChannelOptions o;
  o.ring_buffers = 4;
  o.idle_poll = std::chrono::milliseconds(5);
  return o;
}

// Reads the whole channel, checking every byte against the pattern, and returns the pages'
// stream offsets in the order received.
inline std::vector<uint64_t> drain(Channel& ch, uint64_t* bytes) {
  std::vector<uint64_t> offsets;
  *bytes = 0;
  for (;;) {
    Result<Page> p = ch.get_page_wait(std::chrono::seconds(20));
    if (!p.is_ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kOutOfRange) << p.status().to_string();
      break;
    }
    for (size_t i = 0; i < p->size; ++i) {
      const auto got = static_cast<uint8_t>(p->data[i]);
      if (got != pattern(p->file_index, p->file_offset + i)) {
        ADD_FAILURE() << "byte " << i << " of page at file " << p->file_index << " offset "
                      << p->file_offset;
        return offsets;
      }
    }
    offsets.push_back(p->stream_offset);
    *bytes += p->size;
    EXPECT_TRUE(ch.put_page(*p).is_ok());
  }
  return offsets;
}

}  // namespace sluice::zicio::test_support

#include "sluice/zicio/channel.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "zicio/channel_test_support.h"

namespace sluice::zicio {
namespace {

using namespace test_support;  // NOLINT(google-build-using-namespace): shared fixtures

TEST(ChannelTest, FullScanHandsOutExactlyTheFilesBytesInOrder) {
  TempFiles tf(disk_dir());
  const uint64_t size = 5 * kMiB + 123;
  const std::string a = tf.make(0, size);
  auto ch = Channel::open({a}, {}, small_options());
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  uint64_t bytes = 0;
  std::vector<uint64_t> offs = drain(*ch, &bytes);
  EXPECT_EQ(bytes, size);
  ASSERT_EQ(offs.size(), 3u);  // 2 MiB, 2 MiB, 1 MiB + 123
  EXPECT_EQ(offs[0], 0u);
  EXPECT_EQ(offs[1], 2 * kMiB);
  EXPECT_EQ(offs[2], 4 * kMiB);
  ChannelStats s = ch->stats();
  EXPECT_EQ(s.bytes_got, size);
  EXPECT_EQ(s.total_chunks, 3u);
  EXPECT_EQ(s.requests, 3u);
  EXPECT_EQ(s.completions, 3u);
  EXPECT_EQ(s.chunks_done, 3u);
  EXPECT_EQ(s.pages_got, s.pages_put);
  EXPECT_GT(s.su_bytes_per_s, 0);
  EXPECT_GT(s.sd_bytes_per_s, 0);
  if (!is_tmpfs(disk_dir())) {
    EXPECT_TRUE(s.direct) << "O_DIRECT expected on " << disk_dir();
  }
  // End of stream stays the end.
  EXPECT_EQ(ch->get_page().status().code(), StatusCode::kOutOfRange);
  EXPECT_TRUE(ch->close().is_ok());
  EXPECT_TRUE(ch->close().is_ok());  // idempotent
  EXPECT_EQ(ch->get_page().status().code(), StatusCode::kFailedPrecondition);
}

TEST(ChannelTest, SegmentFilesAreOneStream) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 3 * kMiB);
  const std::string empty = tf.make(1, 0);
  const std::string c = tf.make(2, kMiB + 5);
  auto ch = Channel::open({a, empty, c}, {}, small_options());
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  uint64_t expect = 0;
  std::set<uint32_t> files;
  for (;;) {
    Result<Page> p = ch->get_page_wait();
    if (!p.is_ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kOutOfRange);
      break;
    }
    EXPECT_EQ(p->stream_offset, expect);  // contiguous across the file boundary
    files.insert(p->file_index);
    for (size_t i = 0; i < p->size; ++i)
      ASSERT_EQ(static_cast<uint8_t>(p->data[i]), pattern(p->file_index, p->file_offset + i));
    expect += p->size;
    ASSERT_TRUE(ch->put_page(*p).is_ok());
  }
  EXPECT_EQ(expect, 4 * kMiB + 5);
  EXPECT_EQ(files, (std::set<uint32_t>{0, 2}));
}

TEST(ChannelTest, SmallPagesSplitEachChunk) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 2 * kMiB + 10000);
  ChannelOptions o = small_options();
  o.page_size = 64 << 10;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  uint64_t bytes = 0;
  std::vector<uint64_t> offs = drain(*ch, &bytes);
  EXPECT_EQ(bytes, 2 * kMiB + 10000);
  EXPECT_EQ(offs.size(), 32u + 1u);  // 32 pages of 64 KiB, then 10000 bytes
  for (size_t i = 1; i < offs.size(); ++i)
    EXPECT_EQ(offs[i], offs[i - 1] + (64 << 10));
  EXPECT_EQ(ch->stats().chunks_done, 2u);
}

TEST(ChannelTest, PagesOfAChunkMayBeReturnedOutOfOrder) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 2 * kMiB);
  ChannelOptions o = small_options();
  o.page_size = 8 << 10;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok());
  std::vector<Page> held;
  for (int i = 0; i < 256; ++i) {
    auto p = ch->get_page_wait();
    ASSERT_TRUE(p.is_ok()) << p.status().to_string();
    held.push_back(*p);
  }
  EXPECT_EQ(ch->get_page_wait().status().code(), StatusCode::kOutOfRange);
  for (auto it = held.rbegin(); it != held.rend(); ++it)
    ASSERT_TRUE(ch->put_page(*it).is_ok());
  EXPECT_EQ(ch->stats().chunks_done, 1u);
}

TEST(ChannelTest, RangesHandOutOnlyTheirBytesInOrder) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 5 * kMiB);
  const std::string b = tf.make(1, 3 * kMiB);
  // Unaligned, crossing a 2 MiB boundary, crossing the file boundary, and a tiny one.
  const std::vector<Range> ranges = {{.offset = 100, .length = 5000},
                                     {.offset = 2 * kMiB - 7, .length = 70000},
                                     {.offset = 5 * kMiB - 4096 - 3, .length = 10000},
                                     {.offset = 7 * kMiB + 1, .length = 1}};
  auto ch = Channel::open({a, b}, ranges, small_options());
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  std::vector<std::pair<uint64_t, uint64_t>> got;  // stream offset, size
  uint64_t bytes = 0;
  for (;;) {
    Result<Page> p = ch->get_page_wait();
    if (!p.is_ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kOutOfRange);
      break;
    }
    for (size_t i = 0; i < p->size; ++i)
      ASSERT_EQ(static_cast<uint8_t>(p->data[i]), pattern(p->file_index, p->file_offset + i));
    const uint64_t base = p->file_index == 0 ? 0 : 5 * kMiB;
    EXPECT_EQ(p->stream_offset, base + p->file_offset);
    got.emplace_back(p->stream_offset, p->size);
    bytes += p->size;
    ASSERT_TRUE(ch->put_page(*p).is_ok());
  }
  EXPECT_EQ(bytes, 5000u + 70000u + 10000u + 1u);
  // Merge adjacent pieces and compare with the ranges.
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (auto [off, len] : got) {
    if (!merged.empty() && merged.back().first + merged.back().second == off)
      merged.back().second += len;
    else
      merged.emplace_back(off, len);
  }
  ASSERT_EQ(merged.size(), ranges.size());
  for (size_t i = 0; i < ranges.size(); ++i) {
    EXPECT_EQ(merged[i].first, ranges[i].offset);
    EXPECT_EQ(merged[i].second, ranges[i].length);
  }
}

// Small range pieces share buffers: a chunk is as many packed reads as fit 2 MiB, and its
// pages are cut per read, so none spans two ranges.
TEST(ChannelTest, SmallRangePiecesArePackedIntoSharedBuffers) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 8 * kMiB);
  std::vector<Range> ranges;
  for (uint64_t i = 0; i < 80; ++i)  // unaligned: each is read as 68 KiB, 30 to a buffer
    ranges.push_back({.offset = i * (96 << 10) + 512, .length = 64 << 10});
  auto ch = Channel::open({a}, ranges, small_options());
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  EXPECT_EQ(ch->stats().total_chunks, 3u);
  size_t next_range = 0;
  std::set<uint64_t> chunks;
  for (;;) {
    Result<Page> p = ch->get_page_wait(std::chrono::seconds(20));
    if (!p.is_ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kOutOfRange) << p.status().to_string();
      break;
    }
    ASSERT_LT(next_range, ranges.size());
    EXPECT_EQ(p->stream_offset, ranges[next_range].offset);  // one page per range, in order
    EXPECT_EQ(p->size, ranges[next_range].length);
    EXPECT_EQ(p->file_offset, p->stream_offset);
    for (size_t i = 0; i < p->size; ++i)
      ASSERT_EQ(static_cast<uint8_t>(p->data[i]), pattern(0, p->file_offset + i));
    chunks.insert(p->chunk);
    ++next_range;
    ASSERT_TRUE(ch->put_page(*p).is_ok());
  }
  EXPECT_EQ(next_range, ranges.size());
  EXPECT_EQ(chunks, (std::set<uint64_t>{0, 1, 2}));
  const ChannelStats s = ch->stats();
  EXPECT_EQ(s.requests, 3u);
  EXPECT_EQ(s.completions, 3u);
  EXPECT_EQ(s.device_reads, 80u);
  EXPECT_EQ(s.chunks_done, 3u);
  EXPECT_EQ(s.bytes_got, 80u * (64 << 10));
  EXPECT_EQ(s.pages_got, 80u);
}

// A table of many small segment files is packed the same way, across file boundaries.
TEST(ChannelTest, SmallSegmentFilesShareABuffer) {
  TempFiles tf(disk_dir());
  std::vector<std::string> files;
  for (uint32_t i = 0; i < 12; ++i)
    files.push_back(tf.make(i, i == 5 ? 0 : (100 << 10) + i));
  ChannelOptions o = small_options();
  o.page_size = 32 << 10;
  auto ch = Channel::open(files, {}, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  EXPECT_EQ(ch->stats().total_chunks, 1u);
  uint64_t expect = 0;
  std::set<uint32_t> seen;
  for (;;) {
    Result<Page> p = ch->get_page_wait(std::chrono::seconds(20));
    if (!p.is_ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kOutOfRange) << p.status().to_string();
      break;
    }
    EXPECT_EQ(p->stream_offset, expect);  // contiguous across every file boundary
    EXPECT_EQ(p->chunk, 0u);
    EXPECT_LE(p->file_offset + p->size, (100u << 10) + p->file_index);  // within its file
    seen.insert(p->file_index);
    for (size_t i = 0; i < p->size; ++i)
      ASSERT_EQ(static_cast<uint8_t>(p->data[i]), pattern(p->file_index, p->file_offset + i));
    expect += p->size;
    ASSERT_TRUE(ch->put_page(*p).is_ok());
  }
  uint64_t total = 0;
  for (uint32_t i = 0; i < 12; ++i)
    total += i == 5 ? 0 : (100 << 10) + i;
  EXPECT_EQ(expect, total);
  EXPECT_EQ(seen.size(), 11u);
  EXPECT_EQ(ch->stats().chunks_done, 1u);
}

TEST(ChannelTest, AnyOrderFullScanCoversEveryChunkOnce) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 9 * kMiB);
  ChannelOptions o = small_options();
  o.any_order = true;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok());
  std::set<uint64_t> offsets;
  uint64_t bytes = 0;
  for (uint64_t off : drain(*ch, &bytes))
    EXPECT_TRUE(offsets.insert(off).second) << "offset " << off << " twice";
  EXPECT_EQ(bytes, 9 * kMiB);
  EXPECT_EQ(offsets.size(), 5u);
}

TEST(ChannelTest, InvalidOrOverlappingRangesAreRefused) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 4 * kMiB);
  const auto code = [&](std::vector<Range> r) {
    return Channel::open({a}, std::move(r), small_options()).status().code();
  };
  EXPECT_EQ(code({{0, 100}, {50, 100}}), StatusCode::kInvalidArgument);    // overlap
  EXPECT_EQ(code({{500, 10}, {0, 10}}), StatusCode::kInvalidArgument);     // unsorted
  EXPECT_EQ(code({{0, 0}}), StatusCode::kInvalidArgument);                 // empty
  EXPECT_EQ(code({{4 * kMiB - 1, 2}}), StatusCode::kInvalidArgument);      // past the end
  EXPECT_EQ(code({{~uint64_t{0} - 1, 5}}), StatusCode::kInvalidArgument);  // wraps
  EXPECT_EQ(code({{0, 10}, {10, 10}}), StatusCode::kOk);                   // adjacent is fine
  auto s = Channel::open({a}, {{0, 100}, {99, 1}}, small_options()).status();
  EXPECT_NE(s.message().find("overlaps"), std::string::npos) << s.message();
}

TEST(ChannelTest, BadOptionsAreRefused) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, kMiB);
  ChannelOptions o = small_options();
  o.page_size = 12 << 10;
  EXPECT_EQ(Channel::open({a}, {}, o).status().code(), StatusCode::kInvalidArgument);
  o.page_size = 4 << 10;
  EXPECT_EQ(Channel::open({a}, {}, o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Channel::open({}, {}, small_options()).status().code(), StatusCode::kInvalidArgument);
}

TEST(ChannelTest, MissingFileIsAClearError) {
  auto r = Channel::open({"/var/tmp/sluice_zicio_no_such_file"}, {}, small_options());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("sluice_zicio_no_such_file"), std::string::npos);
}

size_t open_descriptors() {
  size_t n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr)
      ++n;
    closedir(d);
  }
  return n;
}

TEST(ChannelTest, OpenAndCloseLeakNoDescriptors) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 3 * kMiB);
  const size_t before = open_descriptors();
  for (int i = 0; i < 20; ++i) {
    // The second file is missing: the first is already open when open() fails.
    EXPECT_EQ(
        Channel::open({a, "/var/tmp/sluice_zicio_missing"}, {}, small_options()).status().code(),
        StatusCode::kNotFound);
    EXPECT_EQ(Channel::open({a}, {{0, 10}, {5, 10}}, small_options()).status().code(),
              StatusCode::kInvalidArgument);
    auto ch = Channel::open({a}, {}, small_options());
    ASSERT_TRUE(ch.is_ok());
    ASSERT_TRUE(ch->get_page_wait().is_ok());
  }
  EXPECT_EQ(open_descriptors(), before);
}

TEST(ChannelTest, UnreadableFileIsAClearError) {
  if (geteuid() == 0)
    GTEST_SKIP() << "root reads any file";
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, kMiB);
  ASSERT_EQ(chmod(a.c_str(), 0), 0);
  EXPECT_EQ(Channel::open({a}, {}, small_options()).status().code(), StatusCode::kPermissionDenied);
}

TEST(ChannelTest, DirectoryIsRefused) {
  auto r = Channel::open({"/var/tmp"}, {}, small_options());
  EXPECT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("/var/tmp"), std::string::npos);
}

// A FIFO would block the open until a writer came; it is refused before the open instead.
TEST(ChannelTest, FifoIsRefusedWithoutWaitingForAWriter) {
  const std::string fifo = "/var/tmp/sluice_zicio_fifo_" + std::to_string(getpid());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  auto r = Channel::open({fifo}, {}, small_options());
  unlink(fifo.c_str());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos)
      << r.status().to_string();
}

TEST(ChannelTest, EmptyStreamEndsAtOnce) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 0);
  auto ch = Channel::open({a}, {}, small_options());
  ASSERT_TRUE(ch.is_ok());
  EXPECT_EQ(ch->get_page().status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(ch->get_page_wait().status().code(), StatusCode::kOutOfRange);
}

TEST(ChannelTest, TmpfsScanIsCorrect) {
  if (!is_tmpfs("/dev/shm"))
    GTEST_SKIP() << "/dev/shm is not tmpfs here";
  TempFiles tf("/dev/shm");
  const std::string a = tf.make(0, 3 * kMiB + 1);
  auto ch = Channel::open({a}, {}, small_options());
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  uint64_t bytes = 0;
  drain(*ch, &bytes);
  EXPECT_EQ(bytes, 3 * kMiB + 1);
}

TEST(ChannelTest, NoDirectIoFallsBackToBufferedReadsWithANote) {
  TempFiles tf(is_tmpfs("/dev/shm") ? "/dev/shm" : disk_dir());
  const std::string a = tf.make(0, 3 * kMiB);
  ChannelOptions o = small_options();
  o.simulate_no_direct = true;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  EXPECT_FALSE(ch->stats().direct);
  bool noted = false;
  for (const std::string& n : ch->notes())
    noted = noted || n.find("O_DIRECT") != std::string::npos;
  EXPECT_TRUE(noted);
  uint64_t bytes = 0;
  drain(*ch, &bytes);
  EXPECT_EQ(bytes, 3 * kMiB);

  o.require_direct = true;
  EXPECT_EQ(Channel::open({a}, {}, o).status().code(), StatusCode::kUnimplemented);
}

TEST(ChannelTest, NoHugetlbFallsBackToOtherPages) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, kMiB);
  ChannelOptions o = small_options();
  o.simulate_no_hugetlb = true;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok());
  EXPECT_NE(ch->stats().buffer_backing, "hugetlb");
  o.huge_pages = HugePageMode::kHugetlb;
  EXPECT_EQ(Channel::open({a}, {}, o).status().code(), StatusCode::kResourceExhausted);
}

TEST(ChannelTest, FileThatShrinksWhileScannedIsReported) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 16 * kMiB);
  ChannelOptions o = small_options();
  o.ring_buffers = 2;
  o.max_inflight = 1;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok());
  auto first = ch->get_page_wait();
  ASSERT_TRUE(first.is_ok());
  ASSERT_EQ(truncate(a.c_str(), static_cast<off_t>(kMiB)), 0);
  ASSERT_TRUE(ch->put_page(*first).is_ok());
  Status end;
  for (int i = 0; i < 16; ++i) {
    auto p = ch->get_page_wait(std::chrono::seconds(20));
    if (!p.is_ok()) {
      end = p.status();
      break;
    }
    ASSERT_TRUE(ch->put_page(*p).is_ok());
  }
  EXPECT_EQ(end.code(), StatusCode::kDataLoss) << end.to_string();
  EXPECT_NE(end.message().find("read-only"), std::string::npos);
  EXPECT_EQ(ch->stats().state, "failed");
  EXPECT_TRUE(ch->close().is_ok());
}

// A packed chunk checks each of its reads: the short one is named, not the chunk's first file.
TEST(ChannelTest, FileThatShrinksUnderAPackedChunkIsReported) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 8 * kMiB);
  const std::string b = tf.make(1, 2 * kMiB);
  std::vector<Range> ranges = {{.offset = 0, .length = 2 * kMiB},
                               {.offset = 2 * kMiB, .length = 2 * kMiB},
                               {.offset = 4 * kMiB, .length = 2 * kMiB}};
  for (uint64_t i = 0; i < 8; ++i)  // 8 pieces of a, then one of b: one packed chunk
    ranges.push_back({.offset = 6 * kMiB + i * (256 << 10), .length = 64 << 10});
  ranges.push_back({.offset = 8 * kMiB + kMiB, .length = 64 << 10});
  ChannelOptions o = small_options();
  o.ring_buffers = 2;
  o.max_inflight = 1;
  auto ch = Channel::open({a, b}, ranges, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  ASSERT_EQ(ch->stats().total_chunks, 4u);
  // Holding chunk 0 keeps the loop from reading past chunk 1 until b has shrunk.
  auto first = ch->get_page_wait(std::chrono::seconds(20));
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  ASSERT_EQ(truncate(b.c_str(), static_cast<off_t>(kMiB / 2)), 0);
  ASSERT_TRUE(ch->put_page(*first).is_ok());
  Status end;
  for (int i = 0; i < 64; ++i) {
    auto p = ch->get_page_wait(std::chrono::seconds(20));
    if (!p.is_ok()) {
      end = p.status();
      break;
    }
    EXPECT_LT(p->chunk, 3u);  // nothing of the packed chunk is handed out
    ASSERT_TRUE(ch->put_page(*p).is_ok());
  }
  EXPECT_EQ(end.code(), StatusCode::kDataLoss) << end.to_string();
  EXPECT_NE(end.message().find(b), std::string::npos) << end.to_string();
  EXPECT_TRUE(ch->close().is_ok());
}

TEST(ChannelTest, FileThatGrowsWhileScannedIsReported) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 6 * kMiB);
  ChannelOptions o = small_options();
  o.ring_buffers = 2;
  o.max_inflight = 1;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok());
  auto first = ch->get_page_wait();
  ASSERT_TRUE(first.is_ok());
  {
    FILE* f = std::fopen(a.c_str(), "ab");
    ASSERT_NE(f, nullptr);
    std::fputs("appended", f);
    std::fclose(f);
  }
  ASSERT_TRUE(ch->put_page(*first).is_ok());
  Status end;
  for (int i = 0; i < 8; ++i) {
    auto p = ch->get_page_wait(std::chrono::seconds(20));
    if (!p.is_ok()) {
      end = p.status();
      break;
    }
    ASSERT_TRUE(ch->put_page(*p).is_ok());
  }
  EXPECT_EQ(end.code(), StatusCode::kDataLoss) << end.to_string();
  EXPECT_NE(end.message().find("changed size"), std::string::npos) << end.message();
}

TEST(ChannelTest, WorkerThatNeverReturnsPagesGetsAnErrorNotAHang) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 12 * kMiB);
  ChannelOptions o = small_options();
  o.ring_buffers = 2;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok());
  auto p0 = ch->get_page_wait();
  auto p1 = ch->get_page_wait();
  ASSERT_TRUE(p0.is_ok());
  ASSERT_TRUE(p1.is_ok());
  EXPECT_EQ(ch->get_page().status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(ch->get_page_wait(std::chrono::seconds(30)).status().code(),
            StatusCode::kResourceExhausted);
  // Returning one buffer lets the scan go on.
  ASSERT_TRUE(ch->put_page(*p0).is_ok());
  auto p2 = ch->get_page_wait();
  ASSERT_TRUE(p2.is_ok()) << p2.status().to_string();
  EXPECT_EQ(p2->stream_offset, 4 * kMiB);
  // Close with pages still held: the loop stops, nothing leaks or hangs.
  EXPECT_TRUE(ch->close().is_ok());
}

TEST(ChannelTest, AnyOrderWorkerHoldingEveryBufferGetsAnError) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 12 * kMiB);
  ChannelOptions o = small_options();
  o.ring_buffers = 2;
  o.any_order = true;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok());
  ASSERT_TRUE(ch->get_page_wait().is_ok());
  ASSERT_TRUE(ch->get_page_wait().is_ok());
  EXPECT_EQ(ch->get_page_wait().status().code(), StatusCode::kResourceExhausted);
}

// Any order, one buffer held: the others keep cycling until the loop needs the held one.
TEST(ChannelTest, AnyOrderWorkerHoldingOneBufferStallsWithAnErrorNotAHang) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 12 * kMiB);
  ChannelOptions o = small_options();
  o.ring_buffers = 2;
  o.any_order = true;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok());
  auto held = ch->get_page_wait();
  ASSERT_TRUE(held.is_ok());
  Status end;
  for (int i = 0; i < 8; ++i) {
    auto p = ch->get_page_wait(std::chrono::seconds(30));
    if (!p.is_ok()) {
      end = p.status();
      break;
    }
    ASSERT_TRUE(ch->put_page(*p).is_ok());
  }
  EXPECT_EQ(end.code(), StatusCode::kResourceExhausted) << end.to_string();
  ASSERT_TRUE(ch->put_page(*held).is_ok());
  uint64_t bytes = 0;
  drain(*ch, &bytes);
  EXPECT_GT(bytes, 0u);
}

TEST(ChannelTest, PageReturnedTwiceIsRefused) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 4 * kMiB);
  auto ch = Channel::open({a}, {}, small_options());
  ASSERT_TRUE(ch.is_ok());
  auto p = ch->get_page_wait();
  ASSERT_TRUE(p.is_ok());
  ASSERT_TRUE(ch->put_page(*p).is_ok());
  EXPECT_EQ(ch->put_page(*p).code(), StatusCode::kInvalidArgument);
  Page bogus = *p;
  bogus.slot = 99;
  EXPECT_EQ(ch->put_page(bogus).code(), StatusCode::kInvalidArgument);
}

TEST(ChannelTest, NotifyRangesReplacesThePlanBeforeTheFirstPage) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 6 * kMiB);
  auto ch = Channel::open({a}, {}, small_options());
  ASSERT_TRUE(ch.is_ok());
  EXPECT_EQ(ch->notify_ranges({{10, 5}, {1, 1}}).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(ch->notify_ranges({{3 * kMiB, 100}, {5 * kMiB, 200}}).is_ok());
  uint64_t bytes = 0;
  std::vector<uint64_t> offs = drain(*ch, &bytes);
  EXPECT_EQ(bytes, 300u);
  ASSERT_EQ(offs.size(), 2u);
  EXPECT_EQ(offs[0], 3 * kMiB);
  EXPECT_EQ(offs[1], 5 * kMiB);
  EXPECT_EQ(ch->notify_ranges({{0, 1}}).code(), StatusCode::kFailedPrecondition);
}

TEST(ChannelTest, EventsArePublishedOnObservableQueues) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 7 * kMiB);
  auto ch = Channel::open({a}, {}, small_options());
  ASSERT_TRUE(ch.is_ok());
  // Observers attach after open: the first reads may already be under way, so count from the
  // worker's side, which has not started.
  auto pages = ch->page_events().attach_weak_observer(64);
  uint64_t bytes = 0;
  drain(*ch, &bytes);
  std::vector<ChunkEvent> h = pages.history(64);
  size_t gets = 0, puts = 0;
  for (const ChunkEvent& e : h) {
    gets += e.kind == ChunkEvent::kGet;
    puts += e.kind == ChunkEvent::kPut;
  }
  EXPECT_EQ(gets, 4u);
  EXPECT_EQ(puts, 4u);
  EXPECT_EQ(ch->page_events().name(), "zicio.scan.pages");
  EXPECT_EQ(ch->io_events().name(), "zicio.scan.io");
  pages.detach();
}

TEST(ChannelTest, StatsAreReadableFromTheSwitchboardMemfd) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 3 * kMiB);
  ChannelOptions o = small_options();
  o.name = "memfd-check";
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok());
  uint64_t bytes = 0;
  drain(*ch, &bytes);
  // The loop marks the stream finished right after publishing the last chunk; close() waits
  // for it, so the state read below is settled.
  ASSERT_TRUE(ch->close().is_ok());
  auto s = read_switchboard("/proc/self/fd/" + std::to_string(ch->switchboard_fd()));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->name, "memfd-check");
  EXPECT_EQ(s->bytes_got, 3 * kMiB);
  EXPECT_EQ(s->requests, 2u);
  EXPECT_EQ(s->state, "finished");
}

TEST(ChannelTest, MovedChannelKeepsWorkingAndDestructorCloses) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 3 * kMiB);
  auto ch = Channel::open({a}, {}, small_options());
  ASSERT_TRUE(ch.is_ok());
  Channel moved = std::move(ch).value();
  auto p = moved.get_page_wait();
  ASSERT_TRUE(p.is_ok());
  // Destroyed while holding a page and with reads possibly in flight.
}

}  // namespace
}  // namespace sluice::zicio

namespace {
// The extents of `path` as (logical, physical, length), from FIEMAP after a sync.
std::vector<std::array<uint64_t, 3>> file_extents(const std::string& path) {
  std::vector<std::array<uint64_t, 3>> out;
  const int fd = open(path.c_str(), O_RDONLY);
  std::vector<uint64_t> storage((sizeof(fiemap) + 512 * sizeof(fiemap_extent)) / 8 + 1);
  auto* fm = reinterpret_cast<fiemap*>(storage.data());
  fm->fm_length = ~uint64_t{0};
  fm->fm_flags = FIEMAP_FLAG_SYNC;
  fm->fm_extent_count = 512;
  if (ioctl(fd, FS_IOC_FIEMAP, fm) == 0) {
    for (uint32_t i = 0; i < fm->fm_mapped_extents; ++i)
      out.push_back({fm->fm_extents[i].fe_logical, fm->fm_extents[i].fe_physical,
                     fm->fm_extents[i].fe_length});
  }
  close(fd);
  return out;
}
}  // namespace

namespace sluice::zicio {
namespace {

TEST(ChannelBypassTest, FileSystemBypassHandsOutTheFilesBytes) {
  if (geteuid() != 0)
    GTEST_SKIP() << "the file-system bypass reads the block device and needs root";
  TempFiles tf(disk_dir());
  const uint64_t size = 5 * kMiB + 777;
  const std::string a = tf.make(0, size);
  const std::string b = tf.make(1, 3 * kMiB);
  ChannelOptions o = small_options();
  o.bypass = true;
  auto ch = Channel::open({a, b}, {}, o);
  if (!ch.is_ok())
    GTEST_SKIP() << "no readable block device under " << disk_dir() << ": "
                 << ch.status().to_string();
  EXPECT_TRUE(ch->stats().bypass);
  uint64_t bytes = 0;
  drain(*ch, &bytes);
  EXPECT_EQ(bytes, size + 3 * kMiB);
  ASSERT_TRUE(ch->close().is_ok());
  EXPECT_EQ(ch->stats().state, "finished");

  auto ranged = Channel::open(
      {a, b}, {{.offset = 4097, .length = 3 * kMiB}, {.offset = size - 10, .length = 20}}, o);
  ASSERT_TRUE(ranged.is_ok()) << ranged.status().to_string();
  drain(*ranged, &bytes);
  EXPECT_EQ(bytes, 3 * kMiB + 20);
}

// Where the real device cannot be opened (a container), the bypass still runs end to end
// against a sparse image that holds each file's blocks at their physical offsets: FIEMAP, the
// extent walk, holes, several device reads per chunk, and the bytes that arrive.
TEST(ChannelBypassTest, FileSystemBypassOverADeviceImage) {
  if (geteuid() != 0)
    GTEST_SKIP() << "the file-system bypass needs root";
  TempFiles tf(disk_dir());
  // A fragmented file with a hole: written in slices interleaved with another file, each synced.
  const std::string a = tf.make(0, 0);
  const std::string filler = tf.make(1, 0);
  {
    const int fa = open(a.c_str(), O_WRONLY);
    const int fb = open(filler.c_str(), O_WRONLY);
    std::vector<uint8_t> buf(256 << 10);
    for (uint64_t off = 0; off < 6 * kMiB; off += buf.size()) {
      if (off >= 2 * kMiB && off < 3 * kMiB)
        continue;  // leave a 1 MiB hole
      for (size_t i = 0; i < buf.size(); ++i)
        buf[i] = pattern(0, off + i);
      ASSERT_EQ(pwrite(fa, buf.data(), buf.size(), static_cast<off_t>(off)),
                static_cast<ssize_t>(buf.size()));
      fsync(fa);
      ASSERT_EQ(write(fb, buf.data(), 64 << 10), 64 << 10);
      fsync(fb);
    }
    ASSERT_EQ(ftruncate(fa, static_cast<off_t>(6 * kMiB + 1000)), 0);  // a hole at the end
    close(fa);
    close(fb);
  }
  const auto extents = file_extents(a);
  ASSERT_FALSE(extents.empty());
  const std::string image = tf.make(2, 0);
  {
    const int fa = open(a.c_str(), O_RDONLY);
    const int img = open(image.c_str(), O_WRONLY);
    for (const auto& [logical, physical, length] : extents) {
      std::vector<uint8_t> buf(length);
      const ssize_t n = pread(fa, buf.data(), length, static_cast<off_t>(logical));
      ASSERT_GT(n, 0);
      ASSERT_EQ(pwrite(img, buf.data(), static_cast<size_t>(n), static_cast<off_t>(physical)), n);
    }
    close(fa);
    close(img);
  }
  ChannelOptions o = small_options();
  o.bypass = true;
  o.bypass_device_for_testing = image;
  o.page_size = 256 << 10;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  EXPECT_TRUE(ch->stats().bypass);
  const int fa = open(a.c_str(), O_RDONLY);
  uint64_t bytes = 0;
  std::vector<uint8_t> want(256 << 10);
  for (;;) {
    auto p = ch->get_page_wait(std::chrono::seconds(20));
    if (!p.is_ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kOutOfRange) << p.status().to_string();
      break;
    }
    ASSERT_EQ(pread(fa, want.data(), p->size, static_cast<off_t>(p->file_offset)),
              static_cast<ssize_t>(p->size));
    ASSERT_EQ(std::memcmp(want.data(), p->data, p->size), 0) << "at " << p->file_offset;
    bytes += p->size;
    ASSERT_TRUE(ch->put_page(*p).is_ok());
  }
  close(fa);
  EXPECT_EQ(bytes, 6 * kMiB + 1000);
  RecordProperty("extents", static_cast<int>(extents.size()));

  // Small ranges packed into shared buffers, some in the holes: device reads and zero fills of
  // several plan reads land in one buffer.
  std::vector<Range> ranges;
  for (uint64_t i = 0; i < 40; ++i)
    ranges.push_back({.offset = i * (150 << 10) + 300, .length = 20 << 10});
  ranges.push_back({.offset = 6 * kMiB + 10, .length = 900});
  auto ranged = Channel::open({a}, ranges, o);
  ASSERT_TRUE(ranged.is_ok()) << ranged.status().to_string();
  EXPECT_LT(ranged->stats().total_chunks, ranges.size());
  const int fr = open(a.c_str(), O_RDONLY);
  size_t next = 0;
  for (;;) {
    auto p = ranged->get_page_wait(std::chrono::seconds(20));
    if (!p.is_ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kOutOfRange) << p.status().to_string();
      break;
    }
    ASSERT_LT(next, ranges.size());
    EXPECT_EQ(p->file_offset, ranges[next].offset);
    ASSERT_EQ(p->size, ranges[next].length);
    ASSERT_EQ(pread(fr, want.data(), p->size, static_cast<off_t>(p->file_offset)),
              static_cast<ssize_t>(p->size));
    ASSERT_EQ(std::memcmp(want.data(), p->data, p->size), 0) << "at " << p->file_offset;
    ++next;
    ASSERT_TRUE(ranged->put_page(*p).is_ok());
  }
  close(fr);
  EXPECT_EQ(next, ranges.size());
}

TEST(ChannelBypassTest, FileSystemBypassNeedsRoot) {
  if (geteuid() == 0)
    GTEST_SKIP() << "running as root";
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, kMiB);
  ChannelOptions o = small_options();
  o.bypass = true;
  auto r = Channel::open({a}, {}, o);
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(r.status().message().find("zicio.bypass=false"), std::string::npos);
}

}  // namespace
}  // namespace sluice::zicio

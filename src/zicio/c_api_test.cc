#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "sluice/zicio/zicio.h"

namespace {

std::string make_file(size_t size) {
  std::string path = "/var/tmp/sluice_zicio_c_" + std::to_string(getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  std::vector<unsigned char> buf(size);
  for (size_t i = 0; i < size; ++i)
    buf[i] = static_cast<unsigned char>(i * 7);
  std::fwrite(buf.data(), 1, size, f);
  std::fclose(f);
  return path;
}

TEST(ZicioCApiTest, OpenGetPutClose) {
  const std::string path = make_file(3 << 20);
  const char* paths[] = {path.c_str()};
  zicio_open_args args{};
  args.paths = paths;
  args.num_paths = 1;
  args.page_size = 1 << 20;
  args.ring_buffers = 4;
  zicio_channel* ch = nullptr;
  ASSERT_EQ(zicio_open(&args, &ch), ZICIO_OK) << zicio_last_error();
  zicio_page page{};
  size_t total = 0;
  int rc = 0;
  while ((rc = zicio_get_page_wait(ch, &page, -1)) == ZICIO_OK) {
    const auto* d = static_cast<const unsigned char*>(page.data);
    for (size_t i = 0; i < page.size; ++i)
      ASSERT_EQ(d[i], static_cast<unsigned char>((page.file_offset + i) * 7));
    total += page.size;
    ASSERT_EQ(zicio_put_page(ch, &page), ZICIO_OK);
  }
  EXPECT_EQ(rc, ZICIO_END);
  EXPECT_EQ(total, size_t{3} << 20);
  zicio_stats st{};
  ASSERT_EQ(zicio_get_stats(ch, &st), ZICIO_OK);
  EXPECT_EQ(st.bytes_got, total);
  EXPECT_EQ(st.pages_got, 3u);
  EXPECT_EQ(zicio_put_page(ch, &page), ZICIO_EINVAL);  // the last page again
  EXPECT_EQ(zicio_close(ch), ZICIO_OK);
  unlink(path.c_str());
}

TEST(ZicioCApiTest, ErrorsHaveCodesAndMessages) {
  const char* paths[] = {"/var/tmp/sluice_zicio_c_missing"};
  zicio_open_args args{};
  args.paths = paths;
  args.num_paths = 1;
  zicio_channel* ch = nullptr;
  EXPECT_EQ(zicio_open(&args, &ch), ZICIO_ENOENT);
  EXPECT_NE(std::string(zicio_last_error()).find("sluice_zicio_c_missing"), std::string::npos);
  EXPECT_EQ(zicio_open(nullptr, &ch), ZICIO_EINVAL);
  uint64_t key = 0;
  EXPECT_EQ(zicio_create_pool(paths, 1, &key), ZICIO_ENOTSUP);
  EXPECT_STREQ(zicio_strerror(ZICIO_ENOTSUP), "not supported");
}

TEST(ZicioCApiTest, RangesAndNotifyRanges) {
  const std::string path = make_file(4 << 20);
  const char* paths[] = {path.c_str()};
  const zicio_range bad[] = {{100, 10}, {105, 10}};
  zicio_open_args args{};
  args.paths = paths;
  args.num_paths = 1;
  args.ranges = bad;
  args.num_ranges = 2;
  zicio_channel* ch = nullptr;
  EXPECT_EQ(zicio_open(&args, &ch), ZICIO_EINVAL);
  args.ranges = nullptr;
  args.num_ranges = 0;
  ASSERT_EQ(zicio_open(&args, &ch), ZICIO_OK);
  const zicio_range good[] = {{1000, 10}};
  ASSERT_EQ(zicio_notify_ranges(ch, good, 1), ZICIO_OK);
  zicio_page page{};
  ASSERT_EQ(zicio_get_page_wait(ch, &page, -1), ZICIO_OK);
  EXPECT_EQ(page.size, 10u);
  EXPECT_EQ(page.stream_offset, 1000u);
  EXPECT_EQ(zicio_notify_ranges(ch, good, 1), ZICIO_ESTATE);
  EXPECT_EQ(zicio_close(ch), ZICIO_OK);  // with the page still held
  unlink(path.c_str());
}

}  // namespace

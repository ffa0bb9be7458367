/* A C program (compiled as C, not C++) that scans a file through zicio.h: the header must stay
 * valid C, and the API must work from C. Exit status 0 on success; each failure prints why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/zicio/zicio.h"

static int failures = 0;

#define CHECK(cond, ...)                                         \
  do {                                                           \
    if (!(cond)) {                                               \
      fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                              \
      fprintf(stderr, "\n");                                     \
      ++failures;                                                \
    }                                                            \
  } while (0)

static uint8_t pattern(uint64_t offset) {
  return (uint8_t)((offset * 2654435761u) >> 13);
}

int main(void) {
  char path[] = "/var/tmp/sluice-zicio-c-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) {
    perror("mkstemp");
    return 1;
  }
  /* 5 MiB + 123 bytes: two whole chunks and a short tail. */
  const uint64_t size = (UINT64_C(5) << 20) + 123;
  uint8_t* data = malloc(size);
  for (uint64_t i = 0; i < size; ++i)
    data[i] = pattern(i);
  if (write(fd, data, size) != (ssize_t)size) {
    perror("write");
    return 1;
  }
  close(fd);

  const char* files[] = {path};
  zicio_open_args args = {.paths = files, .num_paths = 1, .page_size = 64 * 1024, .name = "c"};
  zicio_channel* ch = NULL;
  int rc = zicio_open(&args, &ch);
  CHECK(rc == ZICIO_OK, "open: %s", zicio_last_error());
  if (rc == ZICIO_OK) {
    uint64_t seen = 0;
    zicio_page page;
    while ((rc = zicio_get_page_wait(ch, &page, -1)) == ZICIO_OK) {
      CHECK(page.stream_offset == seen, "page at %llu, expected %llu",
            (unsigned long long)page.stream_offset, (unsigned long long)seen);
      CHECK(memcmp(page.data, data + page.stream_offset, page.size) == 0, "bytes differ at %llu",
            (unsigned long long)page.stream_offset);
      seen += page.size;
      CHECK(zicio_put_page(ch, &page) == ZICIO_OK, "put: %s", zicio_last_error());
    }
    CHECK(rc == ZICIO_END, "scan ended with %s: %s", zicio_strerror(rc), zicio_last_error());
    CHECK(seen == size, "saw %llu of %llu bytes", (unsigned long long)seen,
          (unsigned long long)size);
    zicio_stats st;
    CHECK(zicio_get_stats(ch, &st) == ZICIO_OK, "stats");
    CHECK(st.bytes_got == size, "stats count %llu bytes", (unsigned long long)st.bytes_got);
    CHECK(zicio_close(ch) == ZICIO_OK, "close: %s", zicio_last_error());
  }

  /* Bad input gets a code and a message. */
  const zicio_range overlapping[] = {{0, 100}, {50, 100}};
  zicio_open_args bad = {.paths = files, .num_paths = 1, .ranges = overlapping, .num_ranges = 2};
  rc = zicio_open(&bad, &ch);
  CHECK(rc == ZICIO_EINVAL, "overlapping ranges gave %s", zicio_strerror(rc));
  CHECK(strlen(zicio_last_error()) > 0, "no message for overlapping ranges");
  const char* missing[] = {"/var/tmp/sluice-zicio-c-does-not-exist"};
  zicio_open_args gone = {.paths = missing, .num_paths = 1};
  rc = zicio_open(&gone, &ch);
  CHECK(rc == ZICIO_ENOENT, "missing file gave %s", zicio_strerror(rc));
  uint64_t key = 0;
  CHECK(zicio_create_pool(files, 1, &key) == ZICIO_ENOTSUP, "create_pool is not built yet");

  unlink(path);
  free(data);
  if (failures == 0)
    printf("zicio C program: all checks passed\n");
  return failures == 0 ? 0 : 1;
}

/* zicio: the C API of just-in-time ingestion channels (Table 1 of the zicIO paper). For C
 * programs and for database engines that call from C; C++ code uses sluice::zicio::Channel
 * (sluice/zicio/channel.h), which this API wraps and whose comment explains the model.
 *
 *   const char* files[] = {"/data/lineitem.0", "/data/lineitem.1"};
 *   zicio_open_args args = {.paths = files, .num_paths = 2};
 *   zicio_channel* ch;
 *   if (zicio_open(&args, &ch) != ZICIO_OK) { fprintf(stderr, "%s\n", zicio_last_error()); }
 *   zicio_page page;
 *   int rc;
 *   while ((rc = zicio_get_page_wait(ch, &page, -1)) == ZICIO_OK) {
 *     process(page.data, page.size);
 *     zicio_put_page(ch, &page);
 *   }
 *   // rc == ZICIO_END at the end of the stream
 *   zicio_close(ch);
 *
 * Every call is non-blocking except zicio_get_page_wait. Return codes are ZICIO_* below; the
 * message of the last failure of the calling thread is zicio_last_error(). A channel belongs to
 * one thread at a time. No exception leaves these functions.
 */
#ifndef SLUICE_ZICIO_ZICIO_H_
#define SLUICE_ZICIO_ZICIO_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  ZICIO_OK = 0,
  ZICIO_AGAIN = 1,     /* no page ready yet; call again (get_page never waits) */
  ZICIO_END = 2,       /* the stream is finished */
  ZICIO_TIMEOUT = 3,   /* zicio_get_page_wait's timeout ran out */
  ZICIO_EINVAL = -1,   /* bad argument: ranges, page size, a page not from this channel */
  ZICIO_ENOENT = -2,   /* a file does not exist */
  ZICIO_EACCES = -3,   /* a file cannot be read by this process */
  ZICIO_ENOMEM = -4,   /* buffers or io_uring could not be had; or all buffers are held */
  ZICIO_EIO = -5,      /* a read failed */
  ZICIO_ECHANGED = -6, /* a file changed size while scanned (data must be read-only) */
  ZICIO_ENOTSUP = -7,  /* not supported (shared pools; O_DIRECT when it was required) */
  ZICIO_ESTATE = -8,   /* not allowed now (ranges after the first page) */
  ZICIO_EINTERNAL = -9
};

typedef struct zicio_channel zicio_channel;

typedef struct zicio_range {
  uint64_t offset; /* in the stream: the files concatenated in the order given */
  uint64_t length;
} zicio_range;

typedef struct zicio_open_args {
  const char* const* paths; /* the files of one stream, in order */
  size_t num_paths;
  const zicio_range* ranges; /* sorted, disjoint; NULL/0: the whole stream */
  size_t num_ranges;
  uint32_t page_size;    /* 0: knob zicio.page_kib; else 8 KiB … 2 MiB, a power of two */
  uint32_t ring_buffers; /* 0: knob zicio.ring_buffers */
  int any_order;         /* nonzero: a full scan may return chunks in any order */
  const char* name;      /* NULL: "scan" */
} zicio_open_args;

typedef struct zicio_page {
  const void* data;
  size_t size;
  uint64_t stream_offset;
  uint64_t file_offset;
  uint32_t file_index;
  uint32_t slot;
  uint64_t chunk;
} zicio_page;

typedef struct zicio_stats {
  uint64_t bytes_got, pages_got, pages_put;
  uint64_t worker_wait_ns; /* time zicio_get_page_wait spent without a page */
  uint64_t requests, bytes_read, reward_requests;
  uint64_t control_cpu_ns;
  double su_bytes_per_s, sd_bytes_per_s, request_rate;
} zicio_stats;

int zicio_open(const zicio_open_args* args, zicio_channel** out);
int zicio_close(zicio_channel* ch); /* frees ch; pages still held become invalid */
int zicio_get_page(zicio_channel* ch, zicio_page* out);
/* timeout_ns < 0: wait until a page, the end or an error */
int zicio_get_page_wait(zicio_channel* ch, zicio_page* out, int64_t timeout_ns);
int zicio_put_page(zicio_channel* ch, const zicio_page* page);
/* Before the first page only: replaces the plan with these ranges. */
int zicio_notify_ranges(zicio_channel* ch, const zicio_range* ranges, size_t num_ranges);
/* Shared pools (the paper's SKzicIO) are not built yet: returns ZICIO_ENOTSUP. */
int zicio_create_pool(const char* const* paths, size_t num_paths, uint64_t* key_out);
int zicio_get_stats(const zicio_channel* ch, zicio_stats* out);
/* The message of the calling thread's last failure ("" if none); valid until its next call. */
const char* zicio_last_error(void);
const char* zicio_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_ZICIO_ZICIO_H_ */

// The C API (sluice/zicio/zicio.h) over sluice::zicio::Channel. No exception leaves it; the
// message of a failure stays in a thread-local string for zicio_last_error().
#include <new>
#include <string>
#include <vector>

#include "sluice/zicio/channel.h"
#include "sluice/zicio/zicio.h"

struct zicio_channel {
  sluice::zicio::Channel channel;
};

namespace {

thread_local std::string g_last_error;

int code_of(const sluice::Status& s) {
  using sluice::StatusCode;
  switch (s.code()) {
    case StatusCode::kOk: return ZICIO_OK;
    case StatusCode::kUnavailable: return ZICIO_AGAIN;
    case StatusCode::kOutOfRange: return ZICIO_END;
    case StatusCode::kDeadlineExceeded: return ZICIO_TIMEOUT;
    case StatusCode::kInvalidArgument: return ZICIO_EINVAL;
    case StatusCode::kNotFound: return ZICIO_ENOENT;
    case StatusCode::kPermissionDenied: return ZICIO_EACCES;
    case StatusCode::kResourceExhausted: return ZICIO_ENOMEM;
    case StatusCode::kDataLoss: return ZICIO_ECHANGED;
    case StatusCode::kUnimplemented: return ZICIO_ENOTSUP;
    case StatusCode::kFailedPrecondition: return ZICIO_ESTATE;
    case StatusCode::kIoError: return ZICIO_EIO;
    default: return ZICIO_EINTERNAL;
  }
}

int record(const sluice::Status& s) {
  const int code = code_of(s);
  if (code < 0)
    g_last_error = s.message();
  return code;
}

void to_c(const sluice::zicio::Page& p, zicio_page* out) {
  out->data = p.data;
  out->size = p.size;
  out->stream_offset = p.stream_offset;
  out->file_offset = p.file_offset;
  out->file_index = p.file_index;
  out->slot = p.slot;
  out->chunk = p.chunk;
}

std::vector<sluice::zicio::Range> to_ranges(const zicio_range* r, size_t n) {
  std::vector<sluice::zicio::Range> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i)
    out.push_back({.offset = r[i].offset, .length = r[i].length});
  return out;
}

int invalid(const char* what) {
  g_last_error = what;
  return ZICIO_EINVAL;
}

}  // namespace

extern "C" {

int zicio_open(const zicio_open_args* args, zicio_channel** out) {
  if (args == nullptr || out == nullptr || args->paths == nullptr)
    return invalid("zicio_open: args, args->paths and out must not be NULL");
  if (args->ranges == nullptr && args->num_ranges != 0)
    return invalid("zicio_open: num_ranges is set but ranges is NULL");
  try {
    std::vector<std::string> paths;
    for (size_t i = 0; i < args->num_paths; ++i) {
      if (args->paths[i] == nullptr)
        return invalid("zicio_open: a path is NULL");
      paths.emplace_back(args->paths[i]);
    }
    sluice::zicio::ChannelOptions o = sluice::zicio::ChannelOptions::from_knobs();
    if (args->page_size != 0)
      o.page_size = args->page_size;
    if (args->ring_buffers != 0)
      o.ring_buffers = args->ring_buffers;
    o.any_order = args->any_order != 0;
    if (args->name != nullptr)
      o.name = args->name;
    auto ch = sluice::zicio::Channel::open(std::move(paths),
                                           to_ranges(args->ranges, args->num_ranges), o);
    if (!ch.is_ok())
      return record(ch.status());
    *out = new zicio_channel{std::move(ch).value()};
    return ZICIO_OK;
  } catch (const std::bad_alloc&) {
    g_last_error = "zicio_open: out of memory";
    return ZICIO_ENOMEM;
  }
}

int zicio_close(zicio_channel* ch) {
  if (ch == nullptr)
    return ZICIO_OK;
  const int rc = record(ch->channel.close());
  delete ch;
  return rc;
}

int zicio_get_page(zicio_channel* ch, zicio_page* out) {
  if (ch == nullptr || out == nullptr)
    return invalid("zicio_get_page: NULL argument");
  auto p = ch->channel.get_page();
  if (!p.is_ok())
    return record(p.status());
  to_c(*p, out);
  return ZICIO_OK;
}

int zicio_get_page_wait(zicio_channel* ch, zicio_page* out, int64_t timeout_ns) {
  if (ch == nullptr || out == nullptr)
    return invalid("zicio_get_page_wait: NULL argument");
  auto p = ch->channel.get_page_wait(std::chrono::nanoseconds(timeout_ns));
  if (!p.is_ok())
    return record(p.status());
  to_c(*p, out);
  return ZICIO_OK;
}

int zicio_put_page(zicio_channel* ch, const zicio_page* page) {
  if (ch == nullptr || page == nullptr)
    return invalid("zicio_put_page: NULL argument");
  sluice::zicio::Page p;
  p.data = static_cast<const std::byte*>(page->data);
  p.size = page->size;
  p.stream_offset = page->stream_offset;
  p.file_offset = page->file_offset;
  p.file_index = page->file_index;
  p.slot = page->slot;
  p.chunk = page->chunk;
  return record(ch->channel.put_page(p));
}

int zicio_notify_ranges(zicio_channel* ch, const zicio_range* ranges, size_t num_ranges) {
  if (ch == nullptr || (ranges == nullptr && num_ranges != 0))
    return invalid("zicio_notify_ranges: NULL argument");
  return record(ch->channel.notify_ranges(to_ranges(ranges, num_ranges)));
}

int zicio_create_pool(const char* const* /*paths*/, size_t /*num_paths*/, uint64_t* /*key_out*/) {
  g_last_error =
      "zicio_create_pool: shared pools (the paper's SKzicIO) are not supported yet; open one "
      "channel per worker";
  return ZICIO_ENOTSUP;
}

int zicio_get_stats(const zicio_channel* ch, zicio_stats* out) {
  if (ch == nullptr || out == nullptr)
    return invalid("zicio_get_stats: NULL argument");
  const sluice::zicio::ChannelStats s = ch->channel.stats();
  out->bytes_got = s.bytes_got;
  out->pages_got = s.pages_got;
  out->pages_put = s.pages_put;
  out->worker_wait_ns = s.worker_wait_ns;
  out->requests = s.requests;
  out->bytes_read = s.bytes_read;
  out->reward_requests = s.reward_requests;
  out->control_cpu_ns = s.control_cpu_ns;
  out->su_bytes_per_s = s.su_bytes_per_s;
  out->sd_bytes_per_s = s.sd_bytes_per_s;
  out->request_rate = s.request_rate;
  return ZICIO_OK;
}

const char* zicio_last_error(void) {
  return g_last_error.c_str();
}

const char* zicio_strerror(int code) {
  switch (code) {
    case ZICIO_OK: return "ok";
    case ZICIO_AGAIN: return "no page ready yet";
    case ZICIO_END: return "end of the stream";
    case ZICIO_TIMEOUT: return "timed out waiting for a page";
    case ZICIO_EINVAL: return "invalid argument";
    case ZICIO_ENOENT: return "file not found";
    case ZICIO_EACCES: return "permission denied";
    case ZICIO_ENOMEM: return "out of buffers or memory";
    case ZICIO_EIO: return "I/O error";
    case ZICIO_ECHANGED: return "a file changed while scanned";
    case ZICIO_ENOTSUP: return "not supported";
    case ZICIO_ESTATE: return "not allowed in this state";
    default: return "internal error";
  }
}

}  // extern "C"

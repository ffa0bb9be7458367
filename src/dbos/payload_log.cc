#include "dbos/payload_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "sluice/common/knobs.h"

namespace sluice::dbos {
namespace {

const IntKnob kSpillBytes({.name = "dbos.sqlite.spill_bytes",
                           .default_value = 1024,
                           .min = 0,
                           .max = 1 << 30,
                           .stage = KnobStage::kStart,
                           .help = "IPC payloads of at least this many bytes are kept in a log "
                                   "beside the SQLite file, the row holding a reference (a larger "
                                   "row spills into overflow pages that every send, take and "
                                   "checkpoint writes again); 0: every payload in its row"});
const IntKnob kSpillSegmentMb({.name = "dbos.sqlite.spill_segment_mb",
                               .default_value = 64,
                               .min = 1,
                               .max = 1024,
                               .stage = KnobStage::kStart,
                               .help = "size of a segment file of the payload log, MiB; a "
                                       "segment is deleted once no message refers to it"});

constexpr uint64_t kHeaderMagic = 0x31474f4c44415950ULL;  // "PYADLOG1" in memory
constexpr uint32_t kRefMagic = 0x31505344;                // "DSP1"
constexpr size_t kHeaderFileBytes = 4096;

uint64_t pack(uint32_t segment, uint32_t offset) {
  return (static_cast<uint64_t>(segment) << 32) | offset;
}

// Segment files are "seg-" and eight hex digits.
bool parse_segment_name(const char* name, uint32_t* segment) {
  if (std::strncmp(name, "seg-", 4) != 0 || std::strlen(name) != 12) {
    return false;
  }
  uint32_t v = 0;
  for (const char* p = name + 4; *p != '\0'; ++p) {
    const char c = *p;
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) {
      return false;
    }
    v = v * 16 + static_cast<uint32_t>(d);
  }
  *segment = v;
  return true;
}

std::vector<uint32_t> list_segments(const std::string& dir) {
  std::vector<uint32_t> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return out;
  }
  while (dirent* e = ::readdir(d)) {
    uint32_t s = 0;
    if (parse_segment_name(e->d_name, &s)) {
      out.push_back(s);
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

struct PayloadLog::Header {
  std::atomic<uint64_t> magic;
  // (segment << 32) | offset of the next append. Written only under the database's write lock.
  std::atomic<uint64_t> head;
};

Result<std::unique_ptr<PayloadLog>> PayloadLog::open_with_knobs(const std::string& dir) {
  return open(dir, kSpillBytes.get(), kSpillSegmentMb.get() << 20);
}

Result<std::unique_ptr<PayloadLog>> PayloadLog::open(const std::string& dir, int64_t min_bytes,
                                                     int64_t segment_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return errno_status(ec.value(), fmt::format("cannot create the payload log {}", dir));
  }
  const std::string head_path = dir + "/head";
  const int fd = ::open(head_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return errno_status(errno, fmt::format("cannot open the payload log's head {}", head_path));
  }
  auto fail = [&](int err, std::string what) {
    ::close(fd);
    return errno_status(err, what);
  };
  // Another process may be creating the same head at once.
  if (::flock(fd, LOCK_EX) != 0) {
    return fail(errno, fmt::format("cannot lock {}", head_path));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return fail(errno, fmt::format("cannot stat {}", head_path));
  }
  if (st.st_size < static_cast<off_t>(kHeaderFileBytes) && ::ftruncate(fd, kHeaderFileBytes) != 0) {
    return fail(errno, fmt::format("cannot size {}", head_path));
  }
  void* p = ::mmap(nullptr, kHeaderFileBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    return fail(errno, fmt::format("cannot map {}", head_path));
  }
  auto* header = static_cast<Header*>(p);
  if (header->magic.load(std::memory_order_acquire) != kHeaderMagic) {
    // A new log, or one whose head was lost: start after every segment present, so that no
    // payload a row still refers to is written over.
    const std::vector<uint32_t> present = list_segments(dir);
    const uint32_t first = present.empty() ? 0 : present.back() + 1;
    header->head.store(pack(first, 0), std::memory_order_relaxed);
    header->magic.store(kHeaderMagic, std::memory_order_release);
  }
  ::flock(fd, LOCK_UN);
  return std::unique_ptr<PayloadLog>(new PayloadLog(dir, min_bytes, segment_bytes, fd, header));
}

PayloadLog::~PayloadLog() {
  ::munmap(header_, kHeaderFileBytes);
  ::close(head_fd_);
}

std::string PayloadLog::segment_path(uint32_t segment) const {
  return fmt::format("{}/seg-{:08x}", dir_, segment);
}

PayloadLog::SegmentFile::~SegmentFile() {
  ::close(fd);
}

Result<std::shared_ptr<PayloadLog::SegmentFile>> PayloadLog::segment_file(uint32_t segment,
                                                                          bool create) {
  std::lock_guard lock(mu_);
  auto it = files_.find(segment);
  if (it != files_.end()) {
    return it->second;
  }
  const std::string path = segment_path(segment);
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
  if (fd < 0) {
    return errno_status(errno, fmt::format("cannot open the payload segment {}", path));
  }
  auto file = std::make_shared<SegmentFile>(fd);
  // A process keeps few segments open: the head and the ones its receivers still read.
  if (files_.size() >= 16) {
    files_.erase(files_.begin());
  }
  files_.emplace(segment, file);
  return file;
}

uint32_t PayloadLog::head_segment() const {
  return static_cast<uint32_t>(header_->head.load(std::memory_order_acquire) >> 32);
}

std::vector<uint32_t> PayloadLog::segments() const {
  return list_segments(dir_);
}

Result<PayloadLog::Ref> PayloadLog::append(std::string_view bytes, int64_t* rolled_from) {
  if (bytes.size() > (1u << 30)) {
    return invalid_argument(
        fmt::format("a payload of {} bytes is over the payload log's 1 GiB limit", bytes.size()));
  }
  const uint64_t head = header_->head.load(std::memory_order_acquire);
  uint32_t segment = static_cast<uint32_t>(head >> 32);
  uint64_t offset = head & 0xffffffffu;
  if (offset > 0 && offset + bytes.size() > static_cast<uint64_t>(segment_bytes_)) {
    *rolled_from = segment;
    ++segment;
    offset = 0;
  }
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<SegmentFile> file, segment_file(segment, true));
  const int fd = file->fd;
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_status(
          errno, fmt::format("cannot write the payload segment {}", segment_path(segment)));
    }
    done += static_cast<size_t>(n);
  }
  uint64_t end = offset + bytes.size();
  if (end >= static_cast<uint64_t>(segment_bytes_)) {
    // A payload as large as a segment has the segment to itself; the next append opens another.
    end = static_cast<uint64_t>(segment_bytes_);
  }
  header_->head.store(pack(segment, static_cast<uint32_t>(end)), std::memory_order_release);
  return Ref{segment, static_cast<uint32_t>(offset), static_cast<uint32_t>(bytes.size()),
             XXH3_64bits(bytes.data(), bytes.size())};
}

Status PayloadLog::read(const Ref& ref, std::string* out) {
  out->resize(ref.length);
  return read(ref, out->data());
}

Status PayloadLog::read(const Ref& ref, char* out) {
  auto lost = [&](std::string why) {
    return data_loss(fmt::format(
        "the payload of a message ({} bytes at offset {} of {}) is {}: the payload log lost it "
        "(a power loss with dbos.sqlite.synchronous below full, or a file removed by hand); "
        "delete the message with `sluice sql` to go on",
        ref.length, ref.offset, segment_path(ref.segment), why));
  };
  Result<std::shared_ptr<SegmentFile>> file = segment_file(ref.segment, false);
  if (!file.is_ok()) {
    return lost(file.status().message());
  }
  const int fd = (*file)->fd;
  size_t done = 0;
  while (done < ref.length) {
    const ssize_t n =
        ::pread(fd, out + done, ref.length - done, static_cast<off_t>(ref.offset + done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errno_status(
          errno, fmt::format("cannot read the payload segment {}", segment_path(ref.segment)));
    }
    if (n == 0) {
      return lost("cut short");
    }
    done += static_cast<size_t>(n);
  }
  if (XXH3_64bits(out, ref.length) != ref.hash) {
    return lost("not what was written (its hash differs)");
  }
  return {};
}

Status PayloadLog::sync(const std::set<uint32_t>& segments) {
  for (uint32_t s : segments) {
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<SegmentFile> file, segment_file(s, false));
    if (::fdatasync(file->fd) != 0) {
      return errno_status(errno, fmt::format("cannot sync {}", segment_path(s)));
    }
  }
  return {};
}

std::set<uint32_t> PayloadLog::live_segments(const QueryResult& rows) {
  std::set<uint32_t> out;
  for (const Row& r : rows.rows) {
    out.insert(static_cast<uint32_t>(value_to_int(r.at(0)).value_or(0)));
  }
  return out;
}

Status PayloadLog::reclaim(uint32_t limit, const std::set<uint32_t>& live) {
  for (uint32_t s : list_segments(dir_)) {
    if (s >= limit || live.count(s) != 0) {
      continue;
    }
    {
      std::lock_guard lock(mu_);
      files_.erase(s);
    }
    const std::string path = segment_path(s);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return errno_status(errno, fmt::format("cannot delete the payload segment {}", path));
    }
  }
  return {};
}

std::string PayloadLog::encode(const Ref& ref) {
  std::string out(kRefBytes, '\0');
  const uint32_t words[4] = {kRefMagic, ref.segment, ref.offset, ref.length};
  std::memcpy(out.data(), words, sizeof(words));
  std::memcpy(out.data() + sizeof(words), &ref.hash, sizeof(ref.hash));
  return out;
}

Result<PayloadLog::Ref> PayloadLog::decode(std::string_view blob) {
  uint32_t words[4];
  if (blob.size() != kRefBytes) {
    return invalid_argument(
        fmt::format("a payload reference is {} bytes, not {}", blob.size(), kRefBytes));
  }
  std::memcpy(words, blob.data(), sizeof(words));
  if (words[0] != kRefMagic) {
    return invalid_argument("not a payload reference (its magic number differs)");
  }
  Ref ref{words[1], words[2], words[3], 0};
  std::memcpy(&ref.hash, blob.data() + sizeof(words), sizeof(ref.hash));
  return ref;
}

// --- SQL functions ---

namespace {

PayloadLogSession* session_of(sqlite3_context* ctx) {
  return static_cast<PayloadLogSession*>(sqlite3_user_data(ctx));
}

void result_status(sqlite3_context* ctx, const Status& s) {
  const std::string msg = s.to_string();
  sqlite3_result_error(ctx, msg.c_str(), static_cast<int>(msg.size()));
}

// The reference in `v` into `ref`; false when the result is already set (NULL for a NULL
// reference, an error for a malformed one).
bool ref_arg(sqlite3_context* ctx, sqlite3_value* v, PayloadLog::Ref* ref) {
  if (sqlite3_value_type(v) == SQLITE_NULL) {
    sqlite3_result_null(ctx);
    return false;
  }
  Result<PayloadLog::Ref> r =
      sqlite3_value_type(v) != SQLITE_BLOB
          ? Result<PayloadLog::Ref>(invalid_argument("a payload reference is a blob"))
          : PayloadLog::decode(std::string_view(static_cast<const char*>(sqlite3_value_blob(v)),
                                                static_cast<size_t>(sqlite3_value_bytes(v))));
  if (!r.is_ok()) {
    result_status(ctx, r.status());
    return false;
  }
  *ref = *r;
  return true;
}

void fn_spill(sqlite3_context* ctx, int /*argc*/, sqlite3_value** argv) {
  PayloadLogSession* s = session_of(ctx);
  const int type = sqlite3_value_type(argv[0]);
  if (type == SQLITE_NULL) {
    sqlite3_result_null(ctx);
    return;
  }
  const auto* p = static_cast<const char*>(
      type == SQLITE_TEXT ? static_cast<const void*>(sqlite3_value_text(argv[0]))
                          : sqlite3_value_blob(argv[0]));
  const auto n = static_cast<size_t>(sqlite3_value_bytes(argv[0]));
  if (!s->log->spills(n)) {
    sqlite3_result_null(ctx);
    return;
  }
  sqlite3* db = sqlite3_context_db_handle(ctx);
  if (sqlite3_txn_state(db, "main") != SQLITE_TXN_WRITE) {
    // The log's order comes from the write lock.
    sqlite3_result_error(ctx,
                         "dbos_spill runs only in a statement that writes (under the "
                         "database's write lock)",
                         -1);
    return;
  }
  int64_t rolled_from = -1;
  Result<PayloadLog::Ref> ref =
      s->log->append(std::string_view(p != nullptr ? p : "", n), &rolled_from);
  if (!ref.is_ok()) {
    result_status(ctx, ref.status());
    return;
  }
  s->written.insert(ref->segment);
  if (rolled_from >= 0) {
    // Every writer into segments up to the one just closed has ended once this transaction has.
    s->reclaim_limit = std::max(s->reclaim_limit, rolled_from + 1);
  }
  const std::string blob = PayloadLog::encode(*ref);
  sqlite3_result_blob(ctx, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
}

void fn_spill_min(sqlite3_context* ctx, int /*argc*/, sqlite3_value** /*argv*/) {
  PayloadLogSession* s = session_of(ctx);
  if (s->log->min_bytes() <= 0) {
    sqlite3_result_null(ctx);
  } else {
    sqlite3_result_int64(ctx, s->log->min_bytes());
  }
}

void fn_payload(sqlite3_context* ctx, int /*argc*/, sqlite3_value** argv) {
  PayloadLog::Ref ref;
  if (!ref_arg(ctx, argv[0], &ref)) {
    return;
  }
  // Read straight into memory SQLite takes over: no copy of the payload on the way.
  auto* bytes = static_cast<char*>(sqlite3_malloc64(std::max<uint64_t>(ref.length, 1)));
  if (bytes == nullptr) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  Status st = session_of(ctx)->log->read(ref, bytes);
  if (!st.is_ok()) {
    sqlite3_free(bytes);
    result_status(ctx, st);
    if (st.code() == StatusCode::kDataLoss) {
      sqlite3_result_error_code(ctx, SQLITE_CORRUPT);
    }
    return;
  }
  sqlite3_result_blob64(ctx, bytes, ref.length, sqlite3_free);
}

// dbos_spill_length and dbos_spill_segment: one field of a reference.
template <uint32_t PayloadLog::Ref::*Field>
void fn_ref_field(sqlite3_context* ctx, int /*argc*/, sqlite3_value** argv) {
  PayloadLog::Ref ref;
  if (ref_arg(ctx, argv[0], &ref)) {
    sqlite3_result_int64(ctx, ref.*Field);
  }
}

}  // namespace

Status install_payload_functions(sqlite3* db, PayloadLogSession* session) {
  struct Fn {
    const char* name;
    int argc;
    int flags;
    void (*fn)(sqlite3_context*, int, sqlite3_value**);
  };
  // dbos_spill writes: not deterministic, and never to be run by a trigger or view of a schema
  // someone else wrote (DIRECTONLY).
  const Fn fns[] = {
      {"dbos_spill", 1, SQLITE_UTF8 | SQLITE_DIRECTONLY, fn_spill},
      {"dbos_spill_min", 0, SQLITE_UTF8 | SQLITE_DETERMINISTIC, fn_spill_min},
      {"dbos_payload", 1, SQLITE_UTF8, fn_payload},
      {"dbos_spill_length", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
       fn_ref_field<&PayloadLog::Ref::length>},
      {"dbos_spill_segment", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
       fn_ref_field<&PayloadLog::Ref::segment>},
  };
  for (const Fn& f : fns) {
    const int rc = sqlite3_create_function_v2(db, f.name, f.argc, f.flags, session, f.fn, nullptr,
                                              nullptr, nullptr);
    if (rc != SQLITE_OK) {
      return internal_error(
          fmt::format("cannot register the SQL function {}: {}", f.name, sqlite3_errmsg(db)));
    }
  }
  return {};
}

}  // namespace sluice::dbos

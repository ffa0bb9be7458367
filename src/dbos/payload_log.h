// Internal (SQLite): large IPC payloads kept beside the database file instead of in its pages.
//
// An 8 KiB message stored in a SQLite row spills into overflow pages: a send writes three page
// frames (12 KiB and their headers) to the WAL, the take frees them (more frames), and the
// checkpoint copies them back: 60 µs per message on the VMs of docs/dbos.md, where the rest of a
// send and take costs 7. Here a payload of at least `dbos.sqlite.spill_bytes` is appended to a
// segment file of the log and the row keeps a 24-byte reference (segment, offset, length and an
// XXH3 hash of the bytes); the take reads the bytes back by the reference.
//
// Appends happen inside the SQL statement that inserts the row (the function `dbos_spill`), so
// they run under SQLite's write lock: one writer at a time across every thread and process, which
// is what orders the log. Its head (segment, offset) lives in a small file every process maps
// shared. A transaction that rolls back leaves its bytes behind as garbage; a segment file is
// deleted once no row refers to it (`reclaim`). Durability is the rows': a process killed after
// its commit loses nothing (the bytes are in the page cache, written before the commit); with
// dbos.sqlite.synchronous = full the segments written by a transaction are synced before its
// commit. After a power loss with `normal` a row may outlive its bytes: the hash then fails the
// take loudly (data loss, naming the message's place) instead of handing out other bytes.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/dbos/database.h"

namespace sluice::dbos {

class PayloadLog {
 public:
  struct Ref {
    uint32_t segment = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
    uint64_t hash = 0;
  };
  static constexpr size_t kRefBytes = 24;

  // Opens (creating) the log in directory `dir`. `min_bytes`: payloads of at least this many
  // bytes go to the log (0: none do). `segment_bytes`: a segment is closed once it holds this
  // much.
  static Result<std::unique_ptr<PayloadLog>> open(const std::string& dir, int64_t min_bytes,
                                                  int64_t segment_bytes);
  // With the knobs dbos.sqlite.spill_bytes and dbos.sqlite.spill_segment_mb.
  static Result<std::unique_ptr<PayloadLog>> open_with_knobs(const std::string& dir);
  ~PayloadLog();
  PayloadLog(const PayloadLog&) = delete;
  PayloadLog& operator=(const PayloadLog&) = delete;

  const std::string& dir() const { return dir_; }
  bool spills(size_t bytes) const {
    return min_bytes_ > 0 && static_cast<int64_t>(bytes) >= min_bytes_;
  }
  int64_t min_bytes() const { return min_bytes_; }

  // Appends `bytes` at the head. The caller holds the database's write lock. `rolled_from` is set
  // to the segment the head left, if the append closed one.
  Result<Ref> append(std::string_view bytes, int64_t* rolled_from);
  // The bytes of `ref`, checked against its hash, into `out` (resized; or of ref.length bytes).
  Status read(const Ref& ref, std::string* out);
  Status read(const Ref& ref, char* out);
  // fdatasync of the given segments.
  Status sync(const std::set<uint32_t>& segments);
  // Deletes every segment file numbered below `limit` that is not in `live`. The caller knows
  // that every transaction that wrote into those segments has ended and read `live` after that.
  Status reclaim(uint32_t limit, const std::set<uint32_t>& live);

  uint32_t head_segment() const;
  // The segment files present, in order.
  std::vector<uint32_t> segments() const;

  // The segments the rows of Message refer to: run kLiveSegmentsSql, read its rows with
  // live_segments.
  static constexpr const char* kLiveSegmentsSql =
      "SELECT DISTINCT dbos_spill_segment(spill) FROM Message WHERE spill IS NOT NULL";
  static std::set<uint32_t> live_segments(const QueryResult& rows);

  static std::string encode(const Ref& ref);
  static Result<Ref> decode(std::string_view blob);

 private:
  struct Header;
  PayloadLog(std::string dir, int64_t min_bytes, int64_t segment_bytes, int head_fd, Header* header)
      : dir_(std::move(dir)),
        min_bytes_(min_bytes),
        segment_bytes_(segment_bytes),
        head_fd_(head_fd),
        header_(header) {}
  // An open segment file, closed when its last user lets go: a reader keeps its descriptor
  // while the cache drops it (another thread's open, a reclaim), so the number is never reused
  // under a pread.
  struct SegmentFile {
    explicit SegmentFile(int f) : fd(f) {}
    ~SegmentFile();
    SegmentFile(const SegmentFile&) = delete;
    SegmentFile& operator=(const SegmentFile&) = delete;
    const int fd;
  };
  Result<std::shared_ptr<SegmentFile>> segment_file(uint32_t segment, bool create);
  std::string segment_path(uint32_t segment) const;

  const std::string dir_;
  const int64_t min_bytes_;
  const int64_t segment_bytes_;
  const int head_fd_;
  Header* const header_;  // mapped shared
  mutable std::mutex mu_;
  std::map<uint32_t, std::shared_ptr<SegmentFile>> files_;  // under mu_
};

// What one SQLite connection keeps for the log's SQL functions: the log, the segments its open
// transaction wrote (to sync before a full-sync commit) and the lowest segment it may reclaim
// below once that transaction ends.
struct PayloadLogSession {
  PayloadLog* log = nullptr;
  std::set<uint32_t> written;
  int64_t reclaim_limit = -1;  // -1: nothing to reclaim
};

// Registers on `db`: dbos_spill(blob) → a reference, or NULL for a payload under the threshold
// (an error outside a write transaction); dbos_spill_min() → the threshold (NULL when nothing
// spills); dbos_payload(ref) → the bytes; dbos_spill_length(ref) and dbos_spill_segment(ref).
// `session` outlives the connection's statements.
Status install_payload_functions(sqlite3* db, PayloadLogSession* session);

}  // namespace sluice::dbos

// The payload log: large SQLite IPC payloads in segment files beside the database.
#include "dbos/payload_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "sluice/common/knobs.h"
#include "sluice/dbos/database.h"
#include "sluice/dbos/ipc.h"

namespace sluice::dbos {
namespace {

namespace fs = std::filesystem;

std::string pattern(size_t n, int salt) {
  std::string d(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    d[i] = static_cast<char>((i * 37 + static_cast<size_t>(salt) * 101) ^ (i >> 8));
  }
  return d;
}

class PayloadLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KnobRegistry::global().reset_for_testing();
    char tmpl[] = "/tmp/sluice-payload-log-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    KnobRegistry::global().reset_for_testing();
  }

  std::unique_ptr<PayloadLog> open_log(int64_t min_bytes, int64_t segment_bytes) {
    auto log = PayloadLog::open(dir_ + "/log", min_bytes, segment_bytes);
    EXPECT_TRUE(log.is_ok()) << log.status().to_string();
    return log.is_ok() ? std::move(*log) : nullptr;
  }

  // Overwrites bytes at `offset` of a segment file of the log in `log_dir`.
  void scribble(const std::string& log_dir, uint32_t segment, off_t offset,
                const std::string& bytes) {
    const std::string path = fmt::format("{}/seg-{:08x}", log_dir, segment);
    const int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), offset), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }

  std::string dir_;
};

TEST_F(PayloadLogTest, PayloadsReadBackExactAndTheirReferencesRoundTrip) {
  auto log = open_log(16, 1 << 20);
  ASSERT_NE(log, nullptr);
  EXPECT_FALSE(log->spills(15));
  EXPECT_TRUE(log->spills(16));
  std::vector<std::pair<PayloadLog::Ref, std::string>> written;
  for (int i = 0; i < 20; ++i) {
    std::string d = pattern(16 + static_cast<size_t>(i) * 997, i);
    int64_t rolled = -1;
    auto ref = log->append(d, &rolled);
    ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
    EXPECT_EQ(rolled, -1);
    EXPECT_EQ(ref->length, d.size());
    written.emplace_back(*ref, std::move(d));
  }
  for (const auto& [ref, want] : written) {
    auto decoded = PayloadLog::decode(PayloadLog::encode(ref));
    ASSERT_TRUE(decoded.is_ok());
    EXPECT_EQ(decoded->segment, ref.segment);
    EXPECT_EQ(decoded->offset, ref.offset);
    EXPECT_EQ(decoded->length, ref.length);
    EXPECT_EQ(decoded->hash, ref.hash);
    std::string got;
    ASSERT_TRUE(log->read(*decoded, &got).is_ok());
    EXPECT_EQ(got, want);
  }
  EXPECT_EQ(PayloadLog::decode("short").status().code(), StatusCode::kInvalidArgument);
  std::string bad = PayloadLog::encode(written[0].first);
  bad[0] ^= 1;
  EXPECT_EQ(PayloadLog::decode(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PayloadLogTest, ADamagedTruncatedOrMissingPayloadIsDataLossNotOtherBytes) {
  auto log = open_log(1, 1 << 20);
  ASSERT_NE(log, nullptr);
  int64_t rolled = -1;
  auto a = log->append(pattern(5000, 1), &rolled);
  auto b = log->append(pattern(5000, 2), &rolled);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  scribble(dir_ + "/log", a->segment, a->offset + 4000, "x");
  std::string got;
  Status s = log->read(*a, &got);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.to_string();
  EXPECT_NE(s.message().find("hash"), std::string::npos) << s.message();
  EXPECT_TRUE(log->read(*b, &got).is_ok());  // its neighbour is untouched
  ASSERT_EQ(::truncate(fmt::format("{}/log/seg-{:08x}", dir_, b->segment).c_str(), b->offset + 100),
            0);
  EXPECT_EQ(log->read(*b, &got).code(), StatusCode::kDataLoss);
  PayloadLog::Ref elsewhere = *a;
  elsewhere.segment = 77;
  s = log->read(elsewhere, &got);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("seg-0000004d"), std::string::npos) << s.message();
}

TEST_F(PayloadLogTest, AFullSegmentRollsOverAndAPayloadLargerThanASegmentHasOneToItself) {
  auto log = open_log(1, 64 << 10);
  ASSERT_NE(log, nullptr);
  int64_t rolled = -1;
  auto a = log->append(pattern(40 << 10, 1), &rolled);
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->segment, 0u);
  auto b = log->append(pattern(40 << 10, 2), &rolled);  // does not fit behind a
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(rolled, 0);
  EXPECT_EQ(b->segment, 1u);
  EXPECT_EQ(b->offset, 0u);
  rolled = -1;
  auto huge = log->append(pattern(200 << 10, 3), &rolled);  // three segments' worth
  ASSERT_TRUE(huge.is_ok());
  EXPECT_EQ(rolled, 1);
  EXPECT_EQ(huge->segment, 2u);
  EXPECT_EQ(huge->offset, 0u);
  rolled = -1;
  auto after = log->append(pattern(10, 4), &rolled);
  ASSERT_TRUE(after.is_ok());
  EXPECT_EQ(rolled, 2);
  EXPECT_EQ(after->segment, 3u);
  EXPECT_EQ(log->head_segment(), 3u);
  std::string got;
  ASSERT_TRUE(log->read(*huge, &got).is_ok());
  EXPECT_EQ(got, pattern(200 << 10, 3));
  EXPECT_EQ(log->segments(), (std::vector<uint32_t>{0, 1, 2, 3}));
}

TEST_F(PayloadLogTest, AReopenedLogGoesOnAtItsHeadAndALostHeadStartsPastEverySegment) {
  PayloadLog::Ref first;
  {
    auto log = open_log(1, 64 << 10);
    ASSERT_NE(log, nullptr);
    int64_t rolled = -1;
    auto r = log->append(pattern(50 << 10, 1), &rolled);
    ASSERT_TRUE(r.is_ok());
    r = log->append(pattern(30 << 10, 2), &rolled);  // segment 1
    ASSERT_TRUE(r.is_ok());
    first = *r;
  }
  {
    auto log = open_log(1, 64 << 10);
    ASSERT_NE(log, nullptr);
    int64_t rolled = -1;
    auto r = log->append(pattern(100, 3), &rolled);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->segment, 1u);
    EXPECT_EQ(r->offset, first.offset + first.length);  // behind, not over, the last payload
  }
  fs::remove(dir_ + "/log/head");
  auto log = open_log(1, 64 << 10);
  ASSERT_NE(log, nullptr);
  int64_t rolled = -1;
  auto r = log->append(pattern(100, 4), &rolled);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->segment, 2u);
  EXPECT_EQ(r->offset, 0u);
  std::string got;
  ASSERT_TRUE(log->read(first, &got).is_ok());
  EXPECT_EQ(got, pattern(30 << 10, 2));
}

// More segments than a process keeps open, read by several threads at once: a descriptor one
// thread reads through stays open while another thread's open drops it from the cache.
TEST_F(PayloadLogTest, ThreadsReadingManySegmentsAtOnceAlwaysGetTheirBytes) {
  auto log = open_log(1, 4096);
  ASSERT_NE(log, nullptr);
  std::vector<PayloadLog::Ref> refs;
  for (int i = 0; i < 64; ++i) {
    int64_t rolled = -1;
    auto r = log->append(pattern(3000, i), &rolled);  // one segment each
    ASSERT_TRUE(r.is_ok());
    refs.push_back(*r);
  }
  ASSERT_EQ(log->segments().size(), 64u);
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      std::string got;
      for (int k = 0; k < 3000; ++k) {
        const size_t i = static_cast<size_t>((k * 7 + t * 13) % 64);
        if (!log->read(refs[i], &got).is_ok() || got != pattern(3000, static_cast<int>(i))) {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (auto& r : readers) {
    r.join();
  }
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(PayloadLogTest, ReclaimDeletesOnlyUnreferencedSegmentsBelowItsLimit) {
  auto log = open_log(1, 64 << 10);
  ASSERT_NE(log, nullptr);
  int64_t rolled = -1;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(log->append(pattern(60 << 10, i), &rolled).is_ok());
  }
  ASSERT_EQ(log->segments(), (std::vector<uint32_t>{0, 1, 2, 3, 4}));
  ASSERT_TRUE(log->reclaim(3, {1}).is_ok());
  EXPECT_EQ(log->segments(), (std::vector<uint32_t>{1, 3, 4}));
}

// --- through the database (SQLite) ---

class PayloadLogDatabaseTest : public PayloadLogTest {
 protected:
  void SetUp() override {
    PayloadLogTest::SetUp();
    url_ = "sqlite:" + dir_ + "/os.db";
  }
  void TearDown() override {
    session_.reset();
    db_.reset();
    PayloadLogTest::TearDown();
  }
  void open_db() {
    session_.reset();
    db_.reset();
    auto db = Database::open(url_);
    ASSERT_TRUE(db.is_ok()) << db.status().to_string();
    db_ = *db;
    auto s = db_->connect();
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    session_ = std::move(*s);
  }
  int64_t scalar(const std::string& sql) {
    auto r = session_->query(sql);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() && !r->rows.empty() ? value_to_int(r->rows[0][0]).value_or(-1) : -1;
  }
  std::vector<uint32_t> segments() { return db_->payload_log()->segments(); }

  std::string url_;
  std::shared_ptr<Database> db_;
  std::unique_ptr<Session> session_;
};

TEST_F(PayloadLogDatabaseTest, LargePayloadsLiveInTheLogAndTheViewsCountAndShowThem) {
  open_db();
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  ASSERT_TRUE(ipc.send(1, 2, pattern(8192, 1)).is_ok());
  ASSERT_TRUE(ipc.send(1, 2, "small").is_ok());
  ASSERT_TRUE(ipc.send(1, 2, pattern(1024, 2)).is_ok());  // the threshold spills
  ASSERT_TRUE(ipc.send(1, 2, pattern(1023, 3)).is_ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM Message WHERE spill IS NOT NULL"), 2);
  EXPECT_EQ(scalar("SELECT sum(length(data)) FROM Message"), 5 + 1023);
  EXPECT_EQ(scalar("SELECT bytes FROM Mailbox WHERE receiver_id = 2"), 8192 + 5 + 1024 + 1023);
  EXPECT_EQ(fs::file_size(dir_ + "/os.db-payloads/seg-00000000"), 8192u + 1024u);
  auto shown = session_->query("SELECT data FROM MessageData ORDER BY seq");
  ASSERT_TRUE(shown.is_ok()) << shown.status().to_string();
  ASSERT_EQ(shown->rows.size(), 4u);
  EXPECT_EQ(std::get<Blob>(shown->rows[0][0]).bytes, pattern(8192, 1));
  EXPECT_EQ(std::get<Blob>(shown->rows[2][0]).bytes, pattern(1024, 2));
}

TEST_F(PayloadLogDatabaseTest, AMulticastWritesItsPayloadOnceForEveryReceiver) {
  open_db();
  Ipc ipc(*session_);
  std::vector<int64_t> to;
  ASSERT_TRUE(ipc.create_endpoint(100).is_ok());
  for (int64_t e = 1; e <= 5; ++e) {
    ASSERT_TRUE(ipc.create_endpoint(e).is_ok());
    to.push_back(e);
  }
  ASSERT_TRUE(ipc.multicast(100, to, pattern(8192, 7)).is_ok());
  EXPECT_EQ(fs::file_size(dir_ + "/os.db-payloads/seg-00000000"), 8192u);
  EXPECT_EQ(scalar("SELECT count(DISTINCT spill) FROM Message"), 1);
  // A refused multicast writes nothing to the log either.
  const int64_t with_unknown[] = {1, 77};
  EXPECT_EQ(ipc.multicast(100, with_unknown, pattern(8192, 8)).code(), StatusCode::kNotFound);
  EXPECT_EQ(fs::file_size(dir_ + "/os.db-payloads/seg-00000000"), 8192u);
  for (int64_t e : to) {
    auto got = ipc.try_recv(e, 5);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ((*got)[0].data, pattern(8192, 7));
  }
}

TEST_F(PayloadLogDatabaseTest, SegmentsNoMessageRefersToAreDeletedAsTheLogMovesOn) {
  ASSERT_TRUE(KnobRegistry::global().set("dbos.sqlite.spill_segment_mb", "1").is_ok());
  open_db();
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(3).is_ok());
  // Receiver 3 keeps one message of segment 0; receiver 2 takes everything it gets.
  ASSERT_TRUE(ipc.send(1, 3, pattern(8192, 0)).is_ok());
  auto send_mib = [&](int salt) {
    for (int i = 0; i < 128; ++i) {
      ASSERT_TRUE(ipc.send(1, 2, pattern(8192, salt + i)).is_ok());
    }
  };
  auto take_all = [&](int salt) {
    int n = 0;
    for (;;) {
      auto got = ipc.try_recv(2, 64);
      ASSERT_TRUE(got.is_ok()) << got.status().to_string();
      if (got->empty()) {
        break;
      }
      for (const Message& m : *got) {
        ASSERT_EQ(m.data, pattern(8192, salt + n)) << "message " << n;
        ++n;
      }
    }
    EXPECT_EQ(n, 128);
  };
  // 128 payloads of 8 KiB fill a segment of 1 MiB; each batch below closes one segment, and the
  // commit that closes it deletes the ones before it that no row refers to any more.
  send_mib(1000);  // closes 0 (receiver 3 and this batch refer to it)
  take_all(1000);
  EXPECT_EQ(segments(), (std::vector<uint32_t>{0, 1}));
  send_mib(2000);  // closes 1, still referred to by this batch
  take_all(2000);
  EXPECT_EQ(segments(), (std::vector<uint32_t>{0, 1, 2}));
  send_mib(3000);  // closes 2: segment 1 goes
  take_all(3000);
  EXPECT_EQ(segments(), (std::vector<uint32_t>{0, 2, 3}));
  send_mib(4000);  // closes 3: segment 2 goes, 0 stays for receiver 3
  EXPECT_EQ(segments(), (std::vector<uint32_t>{0, 3, 4}));
  auto kept = ipc.try_recv(3, 5);
  ASSERT_TRUE(kept.is_ok());
  ASSERT_EQ(kept->size(), 1u);
  EXPECT_EQ((*kept)[0].data, pattern(8192, 0));
  take_all(4000);
  // Opening the database cleans up whatever no row refers to below the head.
  open_db();
  EXPECT_EQ(segments(), std::vector<uint32_t>{db_->payload_log()->head_segment()});
}

// Processes append to one log: the write lock orders them, the shared head keeps them apart.
TEST_F(PayloadLogDatabaseTest, SendersInSeveralProcessesNeverWriteOverEachOthersPayloads) {
  ASSERT_TRUE(KnobRegistry::global().set("dbos.sqlite.spill_segment_mb", "1").is_ok());
  open_db();
  {
    Ipc ipc(*session_);
    for (int64_t e : {1, 2, 3, 9}) {
      ASSERT_TRUE(ipc.create_endpoint(e).is_ok());
    }
  }
  constexpr int kEach = 300;
  auto payload_of = [](int64_t sender, int64_t id) {
    return pattern(1500 + static_cast<size_t>((id * 37) % 3000),
                   static_cast<int>(sender * 1000 + id));
  };
  std::vector<pid_t> children;
  for (int64_t sender : {1, 2, 3}) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      auto db = Database::open(url_);
      if (!db.is_ok()) {
        ::_exit(3);
      }
      auto s = (*db)->connect();
      if (!s.is_ok()) {
        ::_exit(3);
      }
      Ipc ipc(**s);
      for (int64_t id = 1; id <= kEach; ++id) {
        if (!ipc.send(sender, 9, payload_of(sender, id), id).is_ok()) {
          ::_exit(4);
        }
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  Ipc ipc(*session_);
  std::map<int64_t, int64_t> next = {{1, 1}, {2, 1}, {3, 1}};
  int got = 0;
  while (got < 3 * kEach) {
    auto r = ipc.recv(9, 50, std::chrono::seconds(30));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    for (const Message& m : *r) {
      ASSERT_EQ(m.message_id, next[m.sender_id]++) << "from " << m.sender_id;
      ASSERT_EQ(m.data, payload_of(m.sender_id, m.message_id))
          << "from " << m.sender_id << ", message " << m.message_id;
      ++got;
    }
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_GT(db_->payload_log()->head_segment(), 0u);  // several segments were filled
}

TEST_F(PayloadLogDatabaseTest, ALostPayloadFailsTheTakeLoudlyAndLeavesTheMessageQueued) {
  open_db();
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.send(1, 1, pattern(4096, 1)).is_ok());
  ASSERT_TRUE(ipc.send(1, 1, pattern(4096, 2)).is_ok());
  scribble(dir_ + "/os.db-payloads", 0, 10, "damage");
  auto got = ipc.try_recv(1, 5);
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss) << got.status().to_string();
  EXPECT_NE(got.status().message().find("sluice sql"), std::string::npos) << got.status().message();
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 2);  // nothing taken
  ASSERT_TRUE(session_->query("DELETE FROM Message WHERE message_id = 1").is_ok());
  got = ipc.try_recv(1, 5);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].data, pattern(4096, 2));
}

// With synchronous = full each commit first syncs the segments its transaction wrote.
TEST_F(PayloadLogDatabaseTest, FullSyncCommitsSendsBatchesAndMulticastsWhole) {
  ASSERT_TRUE(KnobRegistry::global().set("dbos.sqlite.synchronous", "full").is_ok());
  open_db();
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  ASSERT_TRUE(ipc.send(1, 2, pattern(8192, 1)).is_ok());
  std::vector<std::string> batch = {pattern(2000, 2), pattern(3000, 3)};
  ASSERT_TRUE(ipc.send_batch(1, 2, batch).is_ok());
  const int64_t both[] = {1, 2};
  ASSERT_TRUE(ipc.multicast(1, both, pattern(5000, 4)).is_ok());
  auto got = ipc.try_recv(2, 10);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  ASSERT_EQ(got->size(), 4u);
  EXPECT_EQ((*got)[0].data, pattern(8192, 1));
  EXPECT_EQ((*got)[1].data, pattern(2000, 2));
  EXPECT_EQ((*got)[2].data, pattern(3000, 3));
  EXPECT_EQ((*got)[3].data, pattern(5000, 4));
  EXPECT_EQ(scalar("SELECT count(*) FROM Message WHERE spill IS NOT NULL"), 1);  // receiver 1's
}

TEST_F(PayloadLogDatabaseTest, SpillingOutsideAWriteIsRefusedAndTheKnobAtZeroKeepsPayloadsInRows) {
  open_db();
  auto r = session_->query("SELECT dbos_spill(zeroblob(4096))");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("write lock"), std::string::npos) << r.status().message();
  ASSERT_TRUE(KnobRegistry::global().set("dbos.sqlite.spill_bytes", "0").is_ok());
  open_db();
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.send(1, 1, pattern(100000, 3)).is_ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM Message WHERE spill IS NULL AND length(data) = 100000"),
            1);
  EXPECT_TRUE(segments().empty());
  auto got = ipc.try_recv(1);
  ASSERT_TRUE(got.is_ok());
  EXPECT_EQ((*got)[0].data, pattern(100000, 3));
}

}  // namespace
}  // namespace sluice::dbos

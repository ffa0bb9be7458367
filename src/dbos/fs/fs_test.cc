// The shared filesystem suite: both layouts (localized, parallel) on SQLite (dbos_fs_test, label
// unit) and on a PostgreSQL server the binary starts itself (dbos_fs_pg_test, label server).
#include "sluice/dbos/fs.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include "dbos/connection.h"
#include "sluice/common/knobs.h"
#include "sluice/dbos/database.h"
#include "sluice/dbos/testing/pg_server.h"

namespace sluice::dbos {
namespace {

namespace stdfs = std::filesystem;

testing::PgServer* pg_server() {
  static testing::PgServer* server = [] {
    auto* s = new testing::PgServer();
    Status st = s->start("fsync = off\nsynchronous_commit = off");
    if (!st.is_ok()) {
      ADD_FAILURE() << st.to_string();
    }
    return s;
  }();
  return server;
}

#ifdef SLUICE_DBOS_TEST_POSTGRES
constexpr Dialect kDialect = Dialect::kPostgres;
#else
constexpr Dialect kDialect = Dialect::kSqlite;
#endif

constexpr int64_t kBlock = 64;  // small blocks: many of them per test file

class FsTest : public ::testing::TestWithParam<FileLayout> {
 protected:
  void SetUp() override {
    KnobRegistry::global().reset_for_testing();
    char tmpl[] = "/tmp/sluice-fs-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    if (kDialect == Dialect::kPostgres) {
      testing::PgServer* s = pg_server();
      ASSERT_TRUE(s->running());
      url_ = s->url();
      auto conn = open_pg_connection(url_, nullptr);
      ASSERT_TRUE(conn.is_ok()) << conn.status().to_string();
      ASSERT_TRUE(
          (*conn)->execute_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;").is_ok());
    } else {
      url_ = "sqlite:" + dir_ + "/os.db";
    }
    auto db = Database::open(url_);
    ASSERT_TRUE(db.is_ok()) << db.status().to_string();
    db_ = *db;
    fs_ = open_fs("alice");
    ASSERT_NE(fs_, nullptr);
  }
  void TearDown() override {
    fs_.reset();
    db_.reset();
    std::error_code ec;
    stdfs::remove_all(dir_, ec);
    KnobRegistry::global().reset_for_testing();
  }

  std::unique_ptr<FileSystem> open_fs(const std::string& user, int64_t block = kBlock) {
    auto fs = FileSystem::open(db_, {.user = user, .layout = GetParam(), .block_size = block});
    EXPECT_TRUE(fs.is_ok()) << fs.status().to_string();
    return fs.is_ok() ? std::move(*fs) : nullptr;
  }

  int64_t scalar(const std::string& sql) {
    auto r = fs_->session().query(sql);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    if (!r.is_ok() || r->rows.empty()) {
      return -1;
    }
    return value_to_int(r->rows[0][0]).value_or(-1);
  }

  std::string read_all(const std::string& path) {
    auto st = fs_->stat(path);
    EXPECT_TRUE(st.is_ok()) << st.status().to_string();
    auto r = fs_->read(path, 0, st.is_ok() ? st->size : 0);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::string();
  }

  // Eight threads, each on its own handle, run `batch(fs, thread, i)` for i < `per_thread`;
  // returns how many failed (each one reported).
  int run_batches_on_8_threads(int per_thread,
                               const std::function<Status(FileSystem&, int, int)>& batch) {
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        auto fs = open_fs("alice");
        for (int i = 0; i < per_thread && fs != nullptr; ++i) {
          const Status s = batch(*fs, t, i);
          if (!s.is_ok()) {
            ADD_FAILURE() << "thread " << t << " batch " << i << ": " << s.to_string();
            ++failures;
          }
        }
      });
    }
    for (auto& th : threads) {
      th.join();
    }
    return failures.load();
  }

  std::string dir_;
  std::string url_;
  std::shared_ptr<Database> db_;
  std::unique_ptr<FileSystem> fs_;
};

#define EXPECT_ERRNO(expr, e)                                              \
  do {                                                                     \
    ::sluice::Status st_ = (expr);                                         \
    EXPECT_EQ(error_number(st_), e) << #expr << " -> " << st_.to_string(); \
  } while (false)

std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) {
    c = static_cast<char>(rng() % 256);
  }
  return s;
}

// --- data ---

TEST_P(FsTest, RandomWritesTruncatesAndReadsMatchAByteStringModel) {
  ASSERT_TRUE(fs_->create("/f").is_ok());
  std::string model;
  std::mt19937 rng(7);
  for (int step = 0; step < 150; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 6) {
      // Writes anywhere, often past the end (holes), spanning blocks.
      const auto off = static_cast<int64_t>(rng() % 1500);
      const std::string data = pattern(1 + rng() % 400, static_cast<unsigned>(step));
      auto w = fs_->write("/f", off, data);
      ASSERT_TRUE(w.is_ok()) << w.status().to_string();
      if (model.size() < static_cast<size_t>(off) + data.size()) {
        model.resize(static_cast<size_t>(off) + data.size(), '\0');
      }
      model.replace(static_cast<size_t>(off), data.size(), data);
    } else if (op < 8) {
      const auto size = static_cast<int64_t>(rng() % 1600);
      ASSERT_TRUE(fs_->truncate("/f", size).is_ok());
      model.resize(static_cast<size_t>(size), '\0');
    } else {
      const auto off = static_cast<int64_t>(rng() % 1700);
      const auto len = static_cast<int64_t>(rng() % 700);
      auto r = fs_->read("/f", off, len);
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      const std::string want =
          static_cast<size_t>(off) >= model.size()
              ? std::string()
              : model.substr(static_cast<size_t>(off), static_cast<size_t>(len));
      ASSERT_EQ(*r, want) << "step " << step << " read " << off << "+" << len;
    }
  }
  ASSERT_EQ(read_all("/f"), model);
  auto st = fs_->stat("/f");
  ASSERT_TRUE(st.is_ok());
  EXPECT_EQ(st->size, static_cast<int64_t>(model.size()));
}

TEST_P(FsTest, HolesReadAsZerosAndOnlyWrittenBlocksAreStored) {
  ASSERT_TRUE(fs_->create("/sparse").is_ok());
  ASSERT_TRUE(fs_->write("/sparse", 10 * kBlock + 5, "xyz").is_ok());
  auto r = fs_->read("/sparse", 0, 20 * kBlock);
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->size(), static_cast<size_t>(10 * kBlock + 8));
  EXPECT_EQ(*r, std::string(10 * kBlock + 5, '\0') + "xyz");
  const char* table = GetParam() == FileLayout::kParallel ? "Parallel_file" : "Localized_file";
  EXPECT_EQ(scalar(std::string("SELECT count(*) FROM ") + table), 1);
  // Shrinking cuts the last block, so growing again reads zeros, not the old bytes.
  ASSERT_TRUE(fs_->truncate("/sparse", 10 * kBlock + 6).is_ok());
  ASSERT_TRUE(fs_->truncate("/sparse", 10 * kBlock + 8).is_ok());
  EXPECT_EQ(*fs_->read("/sparse", 10 * kBlock, 8), std::string(5, '\0') + "x" + '\0' + '\0');
  EXPECT_EQ(fs_->read("/sparse", 1'000'000, 10)->size(), 0u);
}

TEST_P(FsTest, BlocksLiveOnTheLayoutsPartitions) {
  ASSERT_TRUE(fs_->create("/data").is_ok());
  ASSERT_TRUE(fs_->write("/data", 0, pattern(20 * kBlock, 1)).is_ok());
  const int64_t parts = scalar("SELECT count(*) FROM Map");
  ASSERT_GT(parts, 1);
  if (GetParam() == FileLayout::kParallel) {
    EXPECT_EQ(scalar("SELECT count(*) FROM Parallel_file"), 20);
    EXPECT_EQ(scalar("SELECT count(*) FROM Localized_file"), 0);
    EXPECT_EQ(scalar("SELECT count(*) FROM Parallel_file WHERE p_key <> block_no % " +
                     std::to_string(parts)),
              0);
    EXPECT_EQ(scalar("SELECT count(DISTINCT p_key) FROM Parallel_file"),
              std::min<int64_t>(20, parts));
  } else {
    EXPECT_EQ(scalar("SELECT count(*) FROM Localized_file"), 20);
    EXPECT_EQ(scalar("SELECT count(DISTINCT p_key) FROM Localized_file"), 1);
    EXPECT_EQ(scalar("SELECT count(*) FROM Localized_file l JOIN Users u ON u.user_name = 'alice' "
                     "WHERE l.p_key = u.home_partition"),
              20);
  }
}

TEST_P(FsTest, PartitionsAreTheRowsOfMapWhateverTheirKeys) {
  ASSERT_TRUE(fs_->session()
                  .execute_script("DELETE FROM Map; INSERT INTO Map (p_key, "
                                  "partition_id) VALUES (10, 1), (20, 2), (30, 3)")
                  .is_ok());
  auto carol = open_fs("carol");
  ASSERT_TRUE(carol->put("/c", pattern(9 * kBlock, 8)).is_ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM Users WHERE user_name = 'carol' AND home_partition IN "
                   "(10, 20, 30)"),
            1);
  EXPECT_EQ(scalar("SELECT count(*) FROM Localized_file WHERE p_key NOT IN (10, 20, 30) AND "
                   "f_id = (SELECT f_id FROM Directory WHERE content = '/c')") +
                scalar("SELECT count(*) FROM Parallel_file WHERE p_key NOT IN (10, 20, 30)"),
            0);
  if (GetParam() == FileLayout::kParallel) {
    EXPECT_EQ(scalar("SELECT count(DISTINCT p_key) FROM Parallel_file"), 3);
  }
  EXPECT_EQ(read_all("/c"), pattern(9 * kBlock, 8));
}

TEST_P(FsTest, BlockSizeIsKeptPerFile) {
  ASSERT_TRUE(fs_->create("/small").is_ok());
  auto big = open_fs("alice", 1024);
  ASSERT_TRUE(big->create("/big").is_ok());
  const std::string data = pattern(3000, 2);
  ASSERT_TRUE(big->write("/big", 0, data).is_ok());
  ASSERT_TRUE(big->write("/small", 0, data).is_ok());  // written by either handle: its own size
  EXPECT_EQ(big->stat("/big")->block_size, 1024);
  EXPECT_EQ(big->stat("/small")->block_size, kBlock);
  EXPECT_EQ(scalar("SELECT count(*) FROM Directory d JOIN Localized_file l ON l.f_id = d.f_id "
                   "WHERE d.content = '/big'") +
                scalar("SELECT count(*) FROM Directory d JOIN Parallel_file l ON l.f_id = d.f_id "
                       "WHERE d.content = '/big'"),
            3);
  EXPECT_EQ(read_all("/big"), data);
  EXPECT_EQ(read_all("/small"), data);
  // The knob decides for handles that do not choose.
  ASSERT_TRUE(KnobRegistry::global().set("dbos.fs_block_size", "512").is_ok());
  auto by_knob = FileSystem::open(db_, {.user = "alice", .layout = GetParam()});
  ASSERT_TRUE(by_knob.is_ok());
  ASSERT_TRUE((*by_knob)->create("/k").is_ok());
  EXPECT_EQ((*by_knob)->stat("/k")->block_size, 512);
}

// --- metadata ---

TEST_P(FsTest, DirectoriesFilesAndTheirErrors) {
  ASSERT_TRUE(fs_->mkdir("/a").is_ok());
  ASSERT_TRUE(fs_->mkdir("/a/b", 0700).is_ok());
  ASSERT_TRUE(fs_->create("/a/b/f", 0600).is_ok());
  EXPECT_ERRNO(fs_->mkdir("/a"), EEXIST);
  EXPECT_ERRNO(fs_->create("/a/b/f"), EEXIST);
  EXPECT_TRUE(fs_->create("/a/b/f", 0644, false).is_ok());
  EXPECT_ERRNO(fs_->create("/a"), EISDIR);
  EXPECT_ERRNO(fs_->mkdir("/missing/x"), ENOENT);
  EXPECT_ERRNO(fs_->create("/missing/deeper/x"), ENOENT);
  EXPECT_ERRNO(fs_->create("/a/b/f/x"), ENOTDIR);
  EXPECT_ERRNO(fs_->stat("/a/b/f/x").status(), ENOTDIR);
  EXPECT_ERRNO(fs_->stat("/nope").status(), ENOENT);
  EXPECT_ERRNO(fs_->rmdir("/a"), ENOTEMPTY);
  EXPECT_ERRNO(fs_->rmdir("/a/b/f"), ENOTDIR);
  EXPECT_ERRNO(fs_->rmdir("/"), EBUSY);
  EXPECT_ERRNO(fs_->unlink("/a/b"), EISDIR);
  EXPECT_ERRNO(fs_->read("/a", 0, 1).status(), EISDIR);
  EXPECT_ERRNO(fs_->write("/a", 0, "x").status(), EISDIR);
  EXPECT_ERRNO(fs_->readdir("/a/b/f").status(), ENOTDIR);
  EXPECT_ERRNO(fs_->open_file("/a"), EISDIR);
  EXPECT_TRUE(fs_->open_file("/a/b/f").is_ok());

  auto st = fs_->stat("/a/b/f");
  ASSERT_TRUE(st.is_ok());
  EXPECT_EQ(st->type, FileType::kFile);
  EXPECT_EQ(st->mode, 0600u);
  EXPECT_EQ(st->owner, "alice");
  EXPECT_EQ(st->layout, GetParam());
  EXPECT_GT(st->mtime_us, 0);
  auto d = fs_->stat("/a/b");
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->type, FileType::kDirectory);
  EXPECT_EQ(d->mode, 0700u);
  ASSERT_TRUE(fs_->chmod("/a/b/f", 0640).is_ok());
  ASSERT_TRUE(fs_->set_times("/a/b/f", 1'000'000, 2'000'000).is_ok());
  st = fs_->stat("/a/b/f");
  EXPECT_EQ(st->mode, 0640u);
  EXPECT_EQ(st->atime_us, 1'000'000);
  EXPECT_EQ(st->mtime_us, 2'000'000);

  ASSERT_TRUE(fs_->create("/a/z").is_ok());
  auto ls = fs_->readdir("/a");
  ASSERT_TRUE(ls.is_ok());
  ASSERT_EQ(ls->size(), 2u);
  EXPECT_EQ((*ls)[0].name, "b");
  EXPECT_EQ((*ls)[0].type, FileType::kDirectory);
  EXPECT_EQ((*ls)[1].name, "z");
  ASSERT_TRUE(fs_->unlink("/a/b/f").is_ok());
  ASSERT_TRUE(fs_->rmdir("/a/b").is_ok());
  EXPECT_ERRNO(fs_->unlink("/a/b/f"), ENOENT);
  EXPECT_EQ(fs_->readdir("/a")->size(), 1u);
}

TEST_P(FsTest, UnlinkRemovesBlocksAndReturnsTheBytesToTheUser) {
  ASSERT_TRUE(fs_->put("/x", pattern(10 * kBlock, 3)).is_ok());
  EXPECT_EQ(scalar("SELECT used_bytes FROM Users WHERE user_name = 'alice'"), 10 * kBlock);
  ASSERT_TRUE(fs_->unlink("/x").is_ok());
  EXPECT_EQ(scalar("SELECT (SELECT count(*) FROM Localized_file) + "
                   "(SELECT count(*) FROM Parallel_file)"),
            0);
  EXPECT_EQ(scalar("SELECT used_bytes FROM Users WHERE user_name = 'alice'"), 0);
}

TEST_P(FsTest, RenameMovesFilesAndWholeSubtreesAtomically) {
  ASSERT_TRUE(fs_->mkdir("/src").is_ok());
  ASSERT_TRUE(fs_->mkdir("/src/sub").is_ok());
  ASSERT_TRUE(fs_->put("/src/sub/f", "deep").is_ok());
  ASSERT_TRUE(fs_->put("/src/g", "top").is_ok());
  // Neighbours whose names sort next to /src's subtree stay put.
  ASSERT_TRUE(fs_->put("/src.txt", "n1").is_ok());
  ASSERT_TRUE(fs_->put("/src0", "n2").is_ok());
  ASSERT_TRUE(fs_->mkdir("/dst").is_ok());
  ASSERT_TRUE(fs_->rename("/src", "/dst/moved").is_ok());
  EXPECT_EQ(read_all("/dst/moved/sub/f"), "deep");
  EXPECT_EQ(read_all("/dst/moved/g"), "top");
  EXPECT_EQ(read_all("/src.txt"), "n1");
  EXPECT_EQ(read_all("/src0"), "n2");
  EXPECT_ERRNO(fs_->stat("/src/g").status(), ENOENT);
  EXPECT_EQ(fs_->readdir("/dst/moved/sub")->size(), 1u);
  EXPECT_EQ(scalar("SELECT count(*) FROM Directory WHERE content LIKE '/src/%'"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM Directory WHERE d_name = '/dst/moved/sub'"), 1);

  // File over file replaces it; errors for the mismatched kinds.
  ASSERT_TRUE(fs_->put("/dst/a", "A").is_ok());
  ASSERT_TRUE(fs_->put("/dst/b", "B").is_ok());
  ASSERT_TRUE(fs_->rename("/dst/a", "/dst/b").is_ok());
  EXPECT_EQ(read_all("/dst/b"), "A");
  EXPECT_EQ(scalar("SELECT used_bytes FROM Users WHERE user_name = 'alice'"),
            static_cast<int64_t>(std::string("deeptopn1n2A").size()));
  EXPECT_ERRNO(fs_->rename("/dst/b", "/dst/moved"), EISDIR);
  EXPECT_ERRNO(fs_->rename("/dst/moved", "/dst/b"), ENOTDIR);
  EXPECT_ERRNO(fs_->rename("/dst", "/dst/moved/sub/x"), EINVAL);
  EXPECT_ERRNO(fs_->rename("/nothing", "/dst/x"), ENOENT);
  EXPECT_ERRNO(fs_->rename("/dst/b", "/no/such/dir"), ENOENT);
  ASSERT_TRUE(fs_->mkdir("/empty").is_ok());
  EXPECT_ERRNO(fs_->rename("/empty", "/dst"), ENOTEMPTY);
  ASSERT_TRUE(fs_->rename("/dst/moved", "/empty").is_ok());  // an empty dir is replaced
  EXPECT_EQ(read_all("/empty/sub/f"), "deep");
  EXPECT_TRUE(fs_->rename("/empty", "/empty").is_ok());
}

TEST_P(FsTest, OddNamesAreKeptExactlyAndAreNotPatterns) {
  const std::vector<std::string> names = {"with space", "quote'd",   "dq\"x",      "100%",
                                          "a_b",        "ünïcødé ✓", "semi;colon", "back\\slash"};
  for (const auto& n : names) {
    ASSERT_TRUE(fs_->mkdir("/" + n).is_ok()) << n;
    ASSERT_TRUE(fs_->put("/" + n + "/f", n).is_ok()) << n;
  }
  // '%' and '_' would match other names in a LIKE pattern.
  ASSERT_TRUE(fs_->mkdir("/a%").is_ok());
  ASSERT_TRUE(fs_->put("/a%/x", "pct").is_ok());
  ASSERT_TRUE(fs_->mkdir("/ab").is_ok());
  ASSERT_TRUE(fs_->put("/ab/x", "ab").is_ok());
  ASSERT_TRUE(fs_->rename("/a_b", "/renamed_a_b").is_ok());
  ASSERT_TRUE(fs_->rename("/a%", "/renamed%").is_ok());
  EXPECT_EQ(read_all("/ab/x"), "ab");
  EXPECT_EQ(read_all("/renamed_a_b/f"), "a_b");
  EXPECT_EQ(read_all("/renamed%/x"), "pct");
  for (const auto& n : names) {
    if (n != "a_b") {
      EXPECT_EQ(read_all("/" + n + "/f"), n);
    }
  }
  auto ls = fs_->readdir("/");
  ASSERT_TRUE(ls.is_ok());
  EXPECT_EQ(ls->size(), names.size() + 2);

  EXPECT_ERRNO(fs_->create("/" + std::string(256, 'n')), ENAMETOOLONG);
  EXPECT_TRUE(fs_->create("/" + std::string(255, 'n')).is_ok());
  std::string long_path;
  while (long_path.size() < 5000) {
    long_path += "/" + std::string(200, 'd');
  }
  EXPECT_ERRNO(fs_->mkdir(long_path), ENAMETOOLONG);
  EXPECT_ERRNO(fs_->create("relative"), EINVAL);
  EXPECT_ERRNO(fs_->create(""), EINVAL);
  EXPECT_ERRNO(fs_->create("/bad\xff\xfe"), EINVAL);
  EXPECT_ERRNO(fs_->create(std::string("/nul\0x", 6)), EINVAL);
  EXPECT_EQ(*FileSystem::normalize_path("//a/./b/../c/"), "/a/c");
  EXPECT_ERRNO(fs_->write("/with space/f", -1, "x").status(), EINVAL);
}

// --- limits ---

TEST_P(FsTest, QuotasAndTheFileSizeLimitRefuseWritesAndChangeNothing) {
  ASSERT_TRUE(fs_->set_quota("alice", 1000).is_ok());
  ASSERT_TRUE(fs_->put("/q", pattern(900, 4)).is_ok());
  EXPECT_ERRNO(fs_->write("/q", 850, pattern(200, 5)).status(), EDQUOT);
  EXPECT_ERRNO(fs_->truncate("/q", 5000), EDQUOT);
  EXPECT_EQ(read_all("/q"), pattern(900, 4));
  EXPECT_TRUE(fs_->write("/q", 850, pattern(150, 5)).is_ok());  // exactly at the quota
  ASSERT_TRUE(fs_->set_quota("alice", 0).is_ok());

  ASSERT_TRUE(KnobRegistry::global().set("dbos.fs_max_file_bytes", "2000").is_ok());
  EXPECT_ERRNO(fs_->write("/q", 1990, pattern(20, 6)).status(), EFBIG);
  EXPECT_ERRNO(fs_->truncate("/q", 2001), EFBIG);
  EXPECT_ERRNO(fs_->write("/q", INT64_MAX - 1, "xyz").status(), EFBIG);
  EXPECT_TRUE(fs_->truncate("/q", 2000).is_ok());
  EXPECT_EQ(fs_->stat("/q")->size, 2000);
}

TEST_P(FsTest, AQuotaHoldsAgainstWritersOfOneUserAtOnce) {
  // Eight handles of one user append to their own files until the quota refuses: every write is
  // whole or refused, and the user's total is the sum of the sizes, never past the quota.
  constexpr int64_t kQuota = 40 * kBlock;
  ASSERT_TRUE(fs_->set_quota("alice", kQuota).is_ok());
  const int failures = run_batches_on_8_threads(1, [&](FileSystem& fs, int t, int) -> Status {
    const std::string path = "/q" + std::to_string(t);
    SLUICE_RETURN_IF_ERROR(fs.create(path));
    for (int64_t written = 0;; written += kBlock / 2) {
      const Status s = fs.write(path, written, std::string(kBlock / 2, 'q')).status();
      if (error_number(s) == EDQUOT) {
        return {};
      }
      SLUICE_RETURN_IF_ERROR(s);
    }
  });
  EXPECT_EQ(failures, 0);
  int64_t sizes = 0;
  for (int t = 0; t < 8; ++t) {
    auto st = fs_->stat("/q" + std::to_string(t));
    ASSERT_TRUE(st.is_ok());
    EXPECT_EQ(st->size % (kBlock / 2), 0);
    sizes += st->size;
  }
  EXPECT_LE(sizes, kQuota);
  EXPECT_GT(sizes, kQuota - 8 * kBlock / 2);
  EXPECT_EQ(scalar("SELECT used_bytes FROM Users WHERE user_name = 'alice'"), sizes);
}

// --- analytics ---

TEST_P(FsTest, AnalyticsAnswerInOneQueryEach) {
  auto bob = open_fs("bob");
  ASSERT_TRUE(fs_->mkdir("/home").is_ok());
  ASSERT_TRUE(fs_->mkdir("/home/alice").is_ok());
  ASSERT_TRUE(bob->mkdir("/home/bob").is_ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(fs_->put("/home/alice/f" + std::to_string(i),
                         std::string(static_cast<size_t>(100 * (i + 1)), 'a'))
                    .is_ok());
    ASSERT_TRUE(bob->put("/home/bob/f" + std::to_string(i), std::string(50, 'b')).is_ok());
  }
  // The paper's query: per user, files of at least 300 bytes.
  auto usage = fs_->usage_by_user(300);
  ASSERT_TRUE(usage.is_ok()) << usage.status().to_string();
  ASSERT_EQ(usage->rows.size(), 1u);
  EXPECT_EQ(value_to_text(usage->rows[0][0]), "alice");
  EXPECT_EQ(value_to_int(usage->rows[0][1]), 3);
  EXPECT_EQ(value_to_int(usage->rows[0][2]), 300 + 400 + 500);
  // And the same through plain SQL.
  EXPECT_EQ(scalar("SELECT sum(f_size) FROM Directory WHERE user_name = 'alice' AND "
                   "content_type = 'file' AND f_size >= 300"),
            1200);

  auto largest = fs_->largest_files(0, 2);
  ASSERT_TRUE(largest.is_ok());
  ASSERT_EQ(largest->rows.size(), 2u);
  EXPECT_EQ(value_to_text(largest->rows[0][0]), "/home/alice/f4");
  EXPECT_EQ(value_to_text(largest->rows[1][0]), "/home/alice/f3");

  ASSERT_TRUE(bob->set_times("/home/bob/f0", -1, 1).is_ok());
  const int64_t since = fs_->stat("/home/alice/f0")->mtime_us;
  auto newer = fs_->changed_since(since);
  ASSERT_TRUE(newer.is_ok());
  EXPECT_EQ(newer->rows.size(), 9u);  // all but bob's f0

  auto sizes = fs_->directory_sizes("/home");
  ASSERT_TRUE(sizes.is_ok()) << sizes.status().to_string();
  ASSERT_EQ(sizes->rows.size(), 3u);
  EXPECT_EQ(value_to_text(sizes->rows[0][0]), "/home");
  EXPECT_EQ(value_to_int(sizes->rows[0][1]), 10);
  EXPECT_EQ(value_to_int(sizes->rows[0][2]), 1500 + 250);
  EXPECT_EQ(value_to_text(sizes->rows[2][0]), "/home/bob");
  EXPECT_EQ(value_to_int(sizes->rows[2][2]), 250);
  auto all = fs_->directory_sizes("/");
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(value_to_int(all->rows[0][2]), 1750);
  EXPECT_EQ(scalar("SELECT bytes FROM DirectorySizes WHERE directory = '/home/alice'"), 1500);
  EXPECT_EQ(scalar("SELECT count(*) FROM Files WHERE owner = 'bob'"), 5);
}

// --- concurrency and crashes ---

TEST_P(FsTest, ConcurrentWritersToOneFileNeverMix) {
  constexpr size_t kSize = 16 * kBlock;
  ASSERT_TRUE(fs_->put("/shared", std::string(kSize, 'a')).is_ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      auto fs = open_fs(t == 0 ? "alice" : "bob");
      if (fs == nullptr) {
        ++failures;
        return;
      }
      for (int i = 0; i < 25; ++i) {
        const char c = static_cast<char>('b' + t * 10 + i % 10);
        if (!fs->write("/shared", 0, std::string(kSize, c)).is_ok()) {
          ++failures;
        }
        auto r = fs->read("/shared", 0, static_cast<int64_t>(kSize));
        if (!r.is_ok() || r->size() != kSize ||
            r->find_first_not_of((*r)[0]) != std::string::npos) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  const std::string end = read_all("/shared");
  ASSERT_EQ(end.size(), kSize);
  EXPECT_EQ(end.find_first_not_of(end[0]), std::string::npos);
}

TEST_P(FsTest, BatchesOverTheSameFilesInOtherOrdersAllLand) {
  // Each batch writes a block of each of four files, every thread in another order: on
  // PostgreSQL the batches deadlock, and with a single retry allowed each must land anyway.
  ASSERT_TRUE(KnobRegistry::global().set("dbos.txn_retries", "1").is_ok());
  constexpr int kFiles = 4;
  for (int f = 0; f < kFiles; ++f) {
    ASSERT_TRUE(fs_->put("/b" + std::to_string(f), std::string(4 * kBlock, '.')).is_ok());
  }
  const int failures = run_batches_on_8_threads(6, [&](FileSystem& fs, int t, int i) {
    const std::string block(kBlock, static_cast<char>('a' + t));
    return fs.batch([&]() -> Status {
      for (int k = 0; k < kFiles; ++k) {
        const int f = (t % 2 == 0) ? (t / 2 + k) % kFiles : (t / 2 + kFiles - k) % kFiles;
        SLUICE_RETURN_IF_ERROR(
            fs.write("/b" + std::to_string(f), (i % 4) * kBlock, block).status());
      }
      return {};
    });
  });
  EXPECT_EQ(failures, 0);
  for (int f = 0; f < kFiles; ++f) {
    const std::string all = read_all("/b" + std::to_string(f));
    ASSERT_EQ(all.size(), 4 * kBlock);
    for (size_t b = 0; b < 4; ++b) {  // each block whole: one batch's letter
      const std::string one = all.substr(b * kBlock, kBlock);
      EXPECT_EQ(one.find_first_not_of(one[0]), std::string::npos) << "file " << f << " block " << b;
    }
  }
}

TEST_P(FsTest, BatchesThatNameTheirFilesNeverDeadlock) {
  // As above, with readers among the writers, but each batch names its files: with no retry
  // allowed every batch must land the first time.
  ASSERT_TRUE(KnobRegistry::global().set("dbos.txn_retries", "0").is_ok());
  constexpr int kFiles = 4;
  std::vector<std::string> files;
  for (int f = 0; f < kFiles; ++f) {
    files.push_back("/b" + std::to_string(f));
    ASSERT_TRUE(fs_->put(files.back(), std::string(4 * kBlock, '.')).is_ok());
  }
  const int failures = run_batches_on_8_threads(12, [&](FileSystem& fs, int t, int i) {
    const bool write = (t + i) % 3 != 0;
    const std::string block(kBlock, static_cast<char>('a' + t));
    return fs.batch(files, write, [&]() -> Status {
      for (int k = 0; k < kFiles; ++k) {
        const int f = (t % 2 == 0) ? (t / 2 + k) % kFiles : (t / 2 + kFiles - k) % kFiles;
        const std::string& path = files[static_cast<size_t>(f)];
        if (write) {
          SLUICE_RETURN_IF_ERROR(fs.write(path, (i % 4) * kBlock, block).status());
        } else {
          SLUICE_RETURN_IF_ERROR(fs.read(path, 0, 4 * kBlock).status());
        }
      }
      return {};
    });
  });
  EXPECT_EQ(failures, 0);
  for (const std::string& f : files) {
    EXPECT_EQ(read_all(f).size(), 4 * kBlock);
  }
  EXPECT_ERRNO(fs_->batch(std::vector<std::string>{"relative/path"}, true, [] { return Status(); }),
               EINVAL);
}

TEST_P(FsTest, ConcurrentCreatesAndRemovesInOneDirectoryAllLand) {
  ASSERT_TRUE(fs_->mkdir("/dir").is_ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      auto fs = open_fs("alice");
      for (int i = 0; i < 40 && fs != nullptr; ++i) {
        const std::string p = "/dir/t" + std::to_string(t) + "_" + std::to_string(i);
        if (!fs->create(p).is_ok() || !fs->write(p, 0, "x").is_ok()) {
          ++failures;
        }
        if (i % 2 == 1 && !fs->unlink(p).is_ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(fs_->readdir("/dir")->size(), 40u);
  EXPECT_EQ(scalar("SELECT used_bytes FROM Users WHERE user_name = 'alice'"), 40);
}

TEST_P(FsTest, AKilledWriterLeavesTheOldOrTheNewContentsNeverAMix) {
  constexpr size_t kSize = 64 * kBlock;  // 64 blocks per write
  ASSERT_TRUE(fs_->put("/victim", std::string(kSize, 'A')).is_ok());
  const std::string url = url_;
  const FileLayout layout = GetParam();
  std::mt19937 rng(99);
  int kills = 0;
  for (int round = 0; round < 6; ++round) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto db = Database::open(url);
      if (!db.is_ok()) {
        ::_exit(3);
      }
      auto fs = FileSystem::open(*db, {.user = "alice", .layout = layout, .block_size = kBlock});
      if (!fs.is_ok()) {
        ::_exit(3);
      }
      for (int i = 0;; ++i) {
        const auto c = static_cast<char>('B' + (round * 7 + i) % 25);
        // Half the rounds write in place over the existing blocks, half replace (truncate+write).
        Status s = round % 2 == 0 ? (*fs)->write("/victim", 0, std::string(kSize, c)).status()
                                  : (*fs)->put("/victim", std::string(kSize, c));
        if (!s.is_ok()) {
          ::_exit(4);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 100));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited with " << WEXITSTATUS(status);
    ++kills;
    const std::string now = read_all("/victim");
    ASSERT_EQ(now.size(), kSize) << "round " << round;
    ASSERT_EQ(now.find_first_not_of(now[0]), std::string::npos)
        << "mixed contents, round " << round;
  }
  EXPECT_EQ(kills, 6);
}

TEST_P(FsTest, AFailureMidBatchUndoesEveryStatementBeforeIt) {
  ASSERT_TRUE(fs_->mkdir("/d").is_ok());
  ASSERT_TRUE(fs_->put("/d/f", std::string(10 * kBlock, 'o')).is_ok());
  // Writes to many blocks, a rename, a new file, then a failing statement: none of it stays.
  Status s = fs_->batch([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(fs_->write("/d/f", 3, std::string(8 * kBlock, 'n')).status());
    SLUICE_RETURN_IF_ERROR(fs_->create("/d/g"));
    SLUICE_RETURN_IF_ERROR(fs_->rename("/d", "/e"));
    return fs_->mkdir("/missing/dir");
  });
  EXPECT_ERRNO(s, ENOENT);
  EXPECT_EQ(read_all("/d/f"), std::string(10 * kBlock, 'o'));
  EXPECT_ERRNO(fs_->stat("/d/g").status(), ENOENT);
  EXPECT_ERRNO(fs_->stat("/e").status(), ENOENT);
  EXPECT_EQ(scalar("SELECT used_bytes FROM Users WHERE user_name = 'alice'"), 10 * kBlock);
  // Reads batch too: one transaction, one consistent view.
  std::string a;
  std::string b;
  ASSERT_TRUE(fs_->batch([&]() -> Status {
                   SLUICE_ASSIGN_OR_RETURN(a, fs_->read("/d/f", 0, kBlock));
                   SLUICE_ASSIGN_OR_RETURN(b, fs_->read("/d/f", 5 * kBlock, kBlock));
                   return {};
                 })
                  .is_ok());
  EXPECT_EQ(a + b, std::string(2 * kBlock, 'o'));
}

// An operation that fails inside a batch changes nothing and leaves the batch going: the batch
// may look before it leaps (stat, create without O_EXCL) and commit the rest.
TEST_P(FsTest, AFailedOperationInsideABatchLeavesTheRestOfTheBatch) {
  ASSERT_TRUE(fs_->mkdir("/d").is_ok());
  ASSERT_TRUE(fs_->put("/d/old", "old").is_ok());
  ASSERT_TRUE(fs_->set_quota("alice", 3 + 10).is_ok());
  ASSERT_TRUE(fs_->batch([&]() -> Status {
                   EXPECT_ERRNO(fs_->stat("/d/new").status(), ENOENT);
                   EXPECT_ERRNO(fs_->create("/d/old"), EEXIST);
                   EXPECT_ERRNO(fs_->mkdir("/missing/x"), ENOENT);
                   EXPECT_ERRNO(fs_->read("/d", 0, 1).status(), EISDIR);
                   // Creates the file, then runs past the quota: neither stays.
                   EXPECT_ERRNO(fs_->put("/d/big", std::string(11, 'b')), EDQUOT);
                   SLUICE_RETURN_IF_ERROR(fs_->create("/d/new"));
                   return fs_->write("/d/new", 0, "0123456789").status();
                 })
                  .is_ok());
  EXPECT_EQ(read_all("/d/new"), "0123456789");
  EXPECT_EQ(read_all("/d/old"), "old");
  EXPECT_ERRNO(fs_->stat("/d/big").status(), ENOENT);
  EXPECT_EQ(scalar("SELECT used_bytes FROM Users WHERE user_name = 'alice'"), 13);
}

// Both engines give the same status for the same mistake: PostgreSQL finds it in a PL/pgSQL
// function, SQLite in C++.
TEST_P(FsTest, ErrorsReadTheSameOnBothEngines) {
  ASSERT_TRUE(fs_->mkdir("/a").is_ok());
  ASSERT_TRUE(fs_->create("/a/f").is_ok());
  ASSERT_TRUE(fs_->set_quota("alice", 100).is_ok());
  struct Case {
    Status got;
    StatusCode code;
    std::string message;
  };
  const Case cases[] = {
      {fs_->mkdir("/missing/x"), StatusCode::kNotFound,
       "ENOENT: no such file or directory: /missing"},
      {fs_->create("/missing/deeper/x"), StatusCode::kNotFound,
       "ENOENT: /missing/deeper: directory /missing does not exist; create it first (mkdir)"},
      {fs_->stat("/a/f/x").status(), StatusCode::kFailedPrecondition,
       "ENOTDIR: /a/f/x: /a/f is a file, not a directory"},
      {fs_->create("/a/f"), StatusCode::kAlreadyExists, "EEXIST: /a/f already exists"},
      {fs_->unlink("/a"), StatusCode::kFailedPrecondition, "EISDIR: /a is a directory"},
      {fs_->rmdir("/a"), StatusCode::kFailedPrecondition, "ENOTEMPTY: directory /a is not empty"},
      {fs_->rmdir("/a/f"), StatusCode::kFailedPrecondition,
       "ENOTDIR: /a/f is a file, not a directory (use unlink)"},
      {fs_->write("/a/f", 0, std::string(101, 'x')).status(), StatusCode::kResourceExhausted,
       "EDQUOT: /a/f: user alice would use 101 bytes, over the quota of 100 bytes (set_quota)"},
      {fs_->put("/a/g", std::string(101, 'x')), StatusCode::kResourceExhausted,
       "EDQUOT: /a/g: user alice would use 101 bytes, over the quota of 100 bytes (set_quota)"},
      {fs_->put("/a", "x"), StatusCode::kFailedPrecondition, "EISDIR: /a is a directory"},
      {fs_->rename("/a/f", "/a"), StatusCode::kFailedPrecondition,
       "EISDIR: cannot replace directory /a with file /a/f"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.got.code(), c.code) << c.got.to_string();
    EXPECT_EQ(c.got.message(), c.message);
  }
  ASSERT_TRUE(KnobRegistry::global().set("dbos.fs_max_file_bytes", "50").is_ok());
  const Status past_limit[] = {fs_->write("/a/f", 40, std::string(20, 'x')).status(),
                               fs_->put("/a/f", std::string(51, 'x')), fs_->truncate("/a/f", 51)};
  const std::string want[] = {
      "EFBIG: /a/f: a write of 20 bytes at offset 40 ends past dbos.fs_max_file_bytes = 50",
      "EFBIG: /a/f: a write of 51 bytes at offset 0 ends past dbos.fs_max_file_bytes = 50",
      "EFBIG: /a/f would grow to 51 bytes, past dbos.fs_max_file_bytes = 50"};
  for (size_t i = 0; i < std::size(want); ++i) {
    EXPECT_EQ(past_limit[i].code(), StatusCode::kResourceExhausted);
    EXPECT_EQ(past_limit[i].message(), want[i]);
  }
  EXPECT_ERRNO(fs_->stat("/a/g").status(), ENOENT);
}

#ifdef SLUICE_DBOS_TEST_POSTGRES
// On PostgreSQL the operations are the functions of fs_functions.sql: without one, its operation
// fails; FileSystem::open installs them again only when the installed digest differs.
TEST_P(FsTest, PostgresRunsEachOperationAsAFunctionInstalledWhenItChanged) {
  ASSERT_TRUE(fs_->create("/f").is_ok());
  ASSERT_TRUE(fs_->session().execute_script("DROP FUNCTION dbos_fs_stat(text)").is_ok());
  EXPECT_FALSE(fs_->stat("/f").is_ok());
  // The digest still matches: a second open leaves the functions as they are.
  auto again = open_fs("alice");
  ASSERT_NE(again, nullptr);
  EXPECT_FALSE(again->stat("/f").is_ok());
  ASSERT_TRUE(again->session()
                  .execute_script("UPDATE dbos_meta SET value = 'old' "
                                  "WHERE key = 'fs_functions_digest'")
                  .is_ok());
  auto fresh = open_fs("alice");
  ASSERT_NE(fresh, nullptr);
  EXPECT_TRUE(fresh->stat("/f").is_ok());
  EXPECT_TRUE(fs_->stat("/f").is_ok());
}
#endif

// Distinct names per engine: ctest lists both binaries' tests side by side.
#ifdef SLUICE_DBOS_TEST_POSTGRES
#define SLUICE_FS_SUITE Postgres
#else
#define SLUICE_FS_SUITE Sqlite
#endif
INSTANTIATE_TEST_SUITE_P(SLUICE_FS_SUITE, FsTest,
                         ::testing::Values(FileLayout::kLocalized, FileLayout::kParallel),
                         [](const auto& layout_info) {
                           return std::string(file_layout_name(layout_info.param));
                         });

}  // namespace
}  // namespace sluice::dbos

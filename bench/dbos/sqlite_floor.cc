// dbos_sqlite_floor: what SQLite itself costs for the IPC tables, with no dbos layer, no second
// thread and no wake-ups: the floor under dbos IPC on this machine. Three measures:
//
//   connections  a transaction that takes a receiver's rows and sends one message, alternating
//                between two connections (each begins with the cache the other one emptied),
//                against one connection (the process writer's case);
//   layout       the same on one connection, Message kept by seq with an index by receiver
//                (schema 2) against one B-tree keyed by (receiver_id, seq) (schema 3);
//   payload      batches of N messages of S bytes sent in one transaction and taken in the next:
//                µs per message sent and taken, for 64 B and 8 KiB, with synchronous normal and
//                off (what the checkpoints' fsyncs cost), and 8 KiB payloads kept in dbos's
//                payload log beside the file (src/dbos/payload_log.h) instead of in the rows.
//
// usage: dbos_sqlite_floor [--dir DIR] [--reps N] [--json FILE]
// The settings of each measure run in turn, repetition by repetition; the table gives the median
// and min–max of the repetitions.
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dbos/payload_log.h"

namespace {

namespace fs = std::filesystem;

[[noreturn]] void die(sqlite3* db, const std::string& what) {
  std::fprintf(stderr, "dbos_sqlite_floor: %s: %s\n", what.c_str(),
               db != nullptr ? sqlite3_errmsg(db) : "");
  std::exit(1);
}

void exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "";
    sqlite3_free(err);
    std::fprintf(stderr, "dbos_sqlite_floor: %s: %s\n", sql.c_str(), msg.c_str());
    std::exit(1);
  }
}

// The path of a database file that does not exist yet.
std::string fresh(const std::string& dir) {
  const std::string path = dir + "/floor.db";
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::error_code ec;
    fs::remove(path + suffix, ec);
  }
  return path;
}

// A connection with dbos's SQLite settings (the defaults of src/dbos/sqlite_connection.cc).
sqlite3* open(const std::string& path, const char* synchronous) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    die(db, "open " + path);
  }
  sqlite3_busy_timeout(db, 5000);
  exec(db, std::string("PRAGMA journal_mode=wal; PRAGMA synchronous=") + synchronous +
               "; PRAGMA cache_size=-65536; PRAGMA mmap_size=0; PRAGMA wal_autocheckpoint=4000;");
  return db;
}

// The tables and statements of a dbos send and take (src/dbos/sql/sqlite/services.sql), cut to
// what touches pages: both endpoints looked up, the pair's Channel row advanced, the message
// inserted; the receiver's oldest rows read and deleted.
struct Statements {
  sqlite3_stmt* known = nullptr;
  sqlite3_stmt* channel = nullptr;
  sqlite3_stmt* insert = nullptr;
  sqlite3_stmt* select = nullptr;
  sqlite3_stmt* remove = nullptr;
  // spill: payloads through the payload log's SQL functions, as dbos's send and recv do.
  void prepare(sqlite3* db, bool by_receiver, bool spill = false) {
    const char* ins =
        spill ? "INSERT INTO Message (receiver_id, seq, data, spill) VALUES (?1, coalesce((SELECT "
                "seq FROM Message WHERE receiver_id = ?1 ORDER BY seq DESC LIMIT 1), 0) + 1, "
                "iif(length(?2) >= dbos_spill_min(), X'', ?2), dbos_spill(?2))"
        : by_receiver
            ? "INSERT INTO Message (receiver_id, seq, data) VALUES (?1, coalesce((SELECT seq FROM "
              "Message WHERE receiver_id = ?1 ORDER BY seq DESC LIMIT 1), 0) + 1, ?2)"
            : "INSERT INTO Message (receiver_id, data) VALUES (?1, ?2)";
    const char* sel = spill ? "SELECT seq, iif(spill IS NULL, data, dbos_payload(spill)) FROM "
                              "Message WHERE receiver_id = ?1 ORDER BY seq LIMIT 64"
                            : "SELECT seq, data FROM Message WHERE receiver_id = ?1 ORDER BY seq "
                              "LIMIT 64";
    if (sqlite3_prepare_v2(db,
                           "SELECT (SELECT 1 FROM Endpoint WHERE endpoint_id = ?1), (SELECT 1 FROM "
                           "Endpoint WHERE endpoint_id = ?2)",
                           -1, &known, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO Channel (sender_id, receiver_id, last_sent_id) VALUES (?1, "
                           "?2, ?3) ON CONFLICT (sender_id, receiver_id) DO UPDATE SET "
                           "last_sent_id = excluded.last_sent_id WHERE excluded.last_sent_id > "
                           "Channel.last_sent_id",
                           -1, &channel, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db, ins, -1, &insert, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sel, -1, &select, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "DELETE FROM Message WHERE receiver_id = ?1 AND seq <= ?2", -1,
                           &remove, nullptr) != SQLITE_OK) {
      die(db, "prepare");
    }
  }
  ~Statements() {
    sqlite3_finalize(known);
    sqlite3_finalize(channel);
    sqlite3_finalize(insert);
    sqlite3_finalize(select);
    sqlite3_finalize(remove);
  }
};

void create_tables(sqlite3* db, bool by_receiver) {
  exec(db,
       "CREATE TABLE Endpoint (endpoint_id INTEGER PRIMARY KEY, name TEXT, created_us INTEGER);"
       "INSERT INTO Endpoint (endpoint_id) VALUES (1), (2);"
       "CREATE TABLE Channel (sender_id INTEGER NOT NULL, receiver_id INTEGER NOT NULL, "
       "last_sent_id INTEGER NOT NULL, PRIMARY KEY (sender_id, receiver_id)) WITHOUT ROWID");
  exec(db, by_receiver ? "CREATE TABLE Message (receiver_id INTEGER NOT NULL, seq INTEGER NOT "
                         "NULL, data BLOB NOT NULL, spill BLOB, PRIMARY KEY (receiver_id, seq)) "
                         "WITHOUT ROWID"
                       : "CREATE TABLE Message (seq INTEGER PRIMARY KEY, receiver_id INTEGER NOT "
                         "NULL, data BLOB NOT NULL); CREATE INDEX message_by_receiver ON Message "
                         "(receiver_id, seq)");
}

// Both endpoints checked and the pair's Channel row advanced to `id`: once per send or batch.
void advance(sqlite3* db, Statements& s, int64_t sender, int64_t receiver, int64_t id) {
  sqlite3_bind_int64(s.known, 1, receiver);
  sqlite3_bind_int64(s.known, 2, sender);
  if (sqlite3_step(s.known) != SQLITE_ROW) {
    die(db, "endpoints");
  }
  sqlite3_reset(s.known);
  sqlite3_bind_int64(s.channel, 1, sender);
  sqlite3_bind_int64(s.channel, 2, receiver);
  sqlite3_bind_int64(s.channel, 3, id);
  if (sqlite3_step(s.channel) != SQLITE_DONE) {
    die(db, "channel");
  }
  sqlite3_reset(s.channel);
}

void insert(sqlite3* db, Statements& s, int64_t receiver, const std::string& data) {
  sqlite3_bind_int64(s.insert, 1, receiver);
  sqlite3_bind_blob(s.insert, 2, data.data(), static_cast<int>(data.size()), SQLITE_STATIC);
  if (sqlite3_step(s.insert) != SQLITE_DONE) {
    die(db, "insert");
  }
  sqlite3_reset(s.insert);
}

// Takes up to 64 of the receiver's rows; returns how many.
int take(sqlite3* db, Statements& s, int64_t receiver) {
  sqlite3_bind_int64(s.select, 1, receiver);
  int64_t last = -1;
  int n = 0;
  for (int rc; (rc = sqlite3_step(s.select)) != SQLITE_DONE;) {
    if (rc != SQLITE_ROW) {
      die(db, "select");
    }
    last = sqlite3_column_int64(s.select, 0);
    (void)sqlite3_column_blob(s.select, 1);
    ++n;
  }
  sqlite3_reset(s.select);
  if (n > 0) {
    sqlite3_bind_int64(s.remove, 1, receiver);
    sqlite3_bind_int64(s.remove, 2, last);
    if (sqlite3_step(s.remove) != SQLITE_DONE) {
      die(db, "delete");
    }
    sqlite3_reset(s.remove);
  }
  return n;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// µs per transaction of an echo (take what came, send one message back), two receivers taking
// turns, on `conns` connections (1 or 2).
double echo(const std::string& dir, int conns, bool by_receiver, int txns) {
  const std::string path = fresh(dir);
  sqlite3* first = open(path, "normal");
  create_tables(first, by_receiver);
  sqlite3* second = conns == 2 ? open(path, "normal") : first;
  double us = 0;
  {
    Statements st[2];
    st[0].prepare(first, by_receiver);
    st[1].prepare(second, by_receiver);
    sqlite3* db[2] = {first, second};
    const std::string data(64, 'x');
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < txns; ++i) {
      const int side = i & 1;
      exec(db[side], "BEGIN IMMEDIATE");
      (void)take(db[side], st[side], side + 1);
      advance(db[side], st[side], side + 1, 2 - side, i + 1);
      insert(db[side], st[side], 2 - side, data);
      exec(db[side], "COMMIT");
    }
    us = seconds_since(t0) / txns * 1e6;
  }
  if (second != first) {
    sqlite3_close(second);
  }
  sqlite3_close(first);
  return us;
}

// µs per message sent (in batches of `batch`, one transaction each) and taken (the next
// transaction), one connection.
// `spill`: the payloads go to a payload log beside the file (every payload of 1 KiB or more).
double payload(const std::string& dir, size_t size, int batch, const char* synchronous,
               int messages, bool spill = false) {
  const std::string path = fresh(dir);
  sqlite3* db = open(path, synchronous);
  create_tables(db, true);
  std::unique_ptr<sluice::dbos::PayloadLog> log;
  sluice::dbos::PayloadLogSession session;
  if (spill) {
    std::error_code ec;
    fs::remove_all(path + "-payloads", ec);
    auto opened = sluice::dbos::PayloadLog::open(path + "-payloads", 1024, 64 << 20);
    if (!opened.is_ok()) {
      die(db, "payload log: " + opened.status().to_string());
    }
    log = std::move(*opened);
    session.log = log.get();
    if (!sluice::dbos::install_payload_functions(db, &session).is_ok()) {
      die(db, "payload log functions");
    }
  }
  double us = 0;
  {
    Statements s;
    s.prepare(db, true, spill);
    const std::string data(size, 'x');
    const int rounds = std::max(1, messages / batch);
    int64_t id = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < rounds; ++r) {
      exec(db, "BEGIN IMMEDIATE");
      id += batch;
      advance(db, s, 2, 1, id);
      for (int i = 0; i < batch; ++i) {
        insert(db, s, 1, data);
      }
      exec(db, "COMMIT");
      int left = batch;
      while (left > 0) {
        exec(db, "BEGIN IMMEDIATE");
        left -= take(db, s, 1);
        exec(db, "COMMIT");
      }
    }
    us = seconds_since(t0) / (rounds * static_cast<double>(batch)) * 1e6;
  }
  sqlite3_close(db);
  return us;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty()      ? 0
         : v.size() % 2 ? v[v.size() / 2]
                        : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/var/tmp/sluice-sqlite-floor";
  std::string json_out;
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--json" && i + 1 < argc) {
      json_out = argv[++i];
    } else {
      std::fprintf(stderr, "usage: dbos_sqlite_floor [--dir DIR] [--reps N] [--json FILE]\n");
      return 2;
    }
  }
  fs::create_directories(dir);
  struct Case {
    std::string measure, setting;
    std::function<double()> run;
  };
  const std::vector<Case> cases = {
      {"echo transaction, µs", "two connections taking turns, schema 3",
       [&] { return echo(dir, 2, true, 20000); }},
      {"echo transaction, µs", "one connection, schema 3",
       [&] { return echo(dir, 1, true, 20000); }},
      {"echo transaction, µs", "one connection, schema 2 (index by receiver)",
       [&] { return echo(dir, 1, false, 20000); }},
      {"µs per message sent and taken", "64 B, batches of 20, synchronous normal",
       [&] { return payload(dir, 64, 20, "normal", 60000); }},
      {"µs per message sent and taken", "8 KiB, batches of 20, synchronous normal",
       [&] { return payload(dir, 8192, 20, "normal", 20000); }},
      {"µs per message sent and taken", "8 KiB, batches of 20, synchronous off",
       [&] { return payload(dir, 8192, 20, "off", 20000); }},
      {"µs per message sent and taken", "8 KiB, one per transaction, synchronous normal",
       [&] { return payload(dir, 8192, 1, "normal", 10000); }},
      {"µs per message sent and taken",
       "8 KiB in the payload log, batches of 20, synchronous normal",
       [&] { return payload(dir, 8192, 20, "normal", 20000, true); }},
      {"µs per message sent and taken",
       "8 KiB in the payload log, one per transaction, synchronous normal",
       [&] { return payload(dir, 8192, 1, "normal", 10000, true); }},
  };
  std::map<size_t, std::vector<double>> got;
  nlohmann::json out = nlohmann::json::array();
  for (int rep = 0; rep < reps; ++rep) {
    for (size_t c = 0; c < cases.size(); ++c) {
      const double v = cases[c].run();
      got[c].push_back(v);
      out.push_back({{"measure", cases[c].measure},
                     {"setting", cases[c].setting},
                     {"rep", rep},
                     {"value", v}});
      std::printf("rep %d  %-32s %-48s %8.2f\n", rep, cases[c].measure.c_str(),
                  cases[c].setting.c_str(), v);
      std::fflush(stdout);
    }
  }
  std::printf("\n| measure | setting | median | min–max |\n| --- | --- | ---: | ---: |\n");
  for (size_t c = 0; c < cases.size(); ++c) {
    const auto& v = got[c];
    std::printf("| %s | %s | %.1f | %.1f–%.1f |\n", cases[c].measure.c_str(),
                cases[c].setting.c_str(), median(v), *std::min_element(v.begin(), v.end()),
                *std::max_element(v.begin(), v.end()));
  }
  if (!json_out.empty()) {
    std::ofstream(json_out) << out.dump(1) << "\n";
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}

#!/usr/bin/env python3
"""SQLite insert benchmark (after LevelDB's db_bench_sqlite3 fillseq): N rows of 100-byte values
in transactions of BATCH rows, with the pragmas given on the command line. Prints one JSON line:
{"us_per_insert": ..., "rows": N}."""
import json
import os
import sqlite3
import sys
import time

args = dict(a.split("=", 1) for a in sys.argv[1:])
rows = int(args.pop("rows", "5000"))
batch = int(args.pop("batch", "10"))
path = args.pop("db", "inserts.db")
for suffix in ("", "-wal", "-shm", "-journal"):
    if os.path.exists(path + suffix):
        os.remove(path + suffix)
db = sqlite3.connect(path, isolation_level=None)
# page_size must come before the first table; the rest in the order given.
if "page_size" in args:
    db.execute(f"PRAGMA page_size = {int(args.pop('page_size'))}")
for name, value in args.items():
    db.execute(f"PRAGMA {name} = {value}")
db.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB)")
value = os.urandom(100)
t0 = time.perf_counter()
for i in range(0, rows, batch):
    db.execute("BEGIN")
    db.executemany("INSERT INTO kv VALUES (?, ?)", ((k, value) for k in range(i, i + batch)))
    db.execute("COMMIT")
elapsed = time.perf_counter() - t0
count = db.execute("SELECT count(*) FROM kv").fetchone()[0]
if count != rows:
    sys.exit(f"expected {rows} rows, found {count}")
db.close()
print(json.dumps({"us_per_insert": elapsed * 1e6 / rows, "rows": rows}))

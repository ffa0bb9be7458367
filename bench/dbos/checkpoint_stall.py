#!/usr/bin/env python3
"""How long an SQLite WAL checkpoint holds writers off, on this machine's disk.

A checkpoint thread beside the writers (PASSIVE) copies the WAL back without blocking them, but
the WAL only restarts once every frame is copied and the database file synced, which under
sustained writes needs a RESTART checkpoint: it blocks writers while it copies what was written
since the last PASSIVE one and fsyncs. This measures both, with the settings sluice's SQLite
backend uses (WAL, synchronous=normal), on 3-row update transactions over a 200,000-row table.

  checkpoint_stall.py [DIR] [--rounds N]      # DIR: where the database goes (default /var/tmp)

Prints one line per round: PASSIVE time after 3000 transactions, RESTART time after 300 more
(the stall a writer would see), then a RESTART of 3000 transactions' frames alone.
"""

import argparse
import os
import random
import sqlite3
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dir", nargs="?", default="/var/tmp")
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()
    path = os.path.join(a.dir, f"sluice-checkpoint-stall-{os.getpid()}.db")
    try:
        run(path, a.rounds)
    finally:
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(path + suffix)
            except FileNotFoundError:
                pass


def run(path: str, rounds: int) -> None:
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("pragma journal_mode=wal")
    writer.execute("pragma synchronous=normal")
    writer.execute("pragma wal_autocheckpoint=0")  # only the checkpointer below checkpoints
    writer.execute("create table t(id integer primary key, a int, b text)")
    writer.execute("begin")
    rows = 200_000
    writer.executemany("insert into t values(?, ?, ?)", ((i, i, "x" * 40) for i in range(rows)))
    writer.execute("commit")
    writer.execute("pragma wal_checkpoint(truncate)")
    checkpointer = sqlite3.connect(path, isolation_level=None)
    checkpointer.execute("pragma synchronous=normal")
    rng = random.Random(1)

    def transactions(n: int) -> None:
        for _ in range(n):
            writer.execute("begin immediate")
            for _ in range(3):
                writer.execute("update t set a = a + 1 where id = ?", (rng.randrange(rows),))
            writer.execute("commit")

    def checkpoint(mode: str) -> tuple[float, int]:
        t = time.perf_counter()
        _, frames, _ = checkpointer.execute(f"pragma wal_checkpoint({mode})").fetchone()
        return (time.perf_counter() - t) * 1e3, frames

    for r in range(rounds):
        transactions(3000)
        p_ms, p_frames = checkpoint("passive")
        transactions(300)
        r_ms, r_frames = checkpoint("restart")
        print(f"round {r}: passive {p_ms:.1f} ms ({p_frames} frames), "
              f"then restart {r_ms:.1f} ms ({r_frames} frames)")
    transactions(3000)
    ms, frames = checkpoint("restart")
    print(f"restart alone: {ms:.1f} ms ({frames} frames)")


if __name__ == "__main__":
    main()

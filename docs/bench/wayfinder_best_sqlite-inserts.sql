# Best configuration found by `sluice tune` for job 'sqlite-inserts'.
PRAGMA synchronous = OFF;
PRAGMA journal_mode = WAL;
PRAGMA page_size = 8192;
PRAGMA cache_size = 4602;
PRAGMA temp_store = FILE;
PRAGMA locking_mode = NORMAL;
PRAGMA mmap_size = 120032506;
PRAGMA trusted_schema = OFF;

#!/usr/bin/env bash
# The dbos filesystems as a user meets them: `sluice fs` commands without a mount, then ordinary
# tools (ls, cp, cat, find, du, rsync, mv, rm, mkdir, dd, truncate) on a FUSE mount of each layout.
# Usage: fs_mount_test.sh path/to/sluice. Exits 77 (skipped) when FUSE cannot be used here.
set -u
sluice=$(realpath "$1")
tmp=$(mktemp -d /tmp/sluice-fs-mount-XXXXXX)
mnt=$tmp/mnt
mkdir -p "$mnt"
pid=
failed=0
passed=0

cleanup() {
  if mountpoint -q "$mnt" 2>/dev/null; then
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null
  fi
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# check <description> -- command...: the command must succeed.
check() {
  local what=$1
  shift 2
  local out
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
  else
    echo "FAIL: $what: $* ->"
    echo "$out" | head -10 | sed 's/^/    /'
    failed=$((failed + 1))
  fi
}

# expect_fail <text the output must contain> -- command...: the command must fail saying so.
expect_fail() {
  local needle=$1
  shift 2
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [[ $rc -ne 0 && $out == *"$needle"* ]]; then
    passed=$((passed + 1))
  else
    echo "FAIL: $* -> exit $rc, wanted a failure saying '$needle':"
    echo "$out" | head -10 | sed 's/^/    /'
    failed=$((failed + 1))
  fi
}

# --- without a mount ---
db="sqlite:$tmp/cli.db"
fs=("$sluice" fs --backend "$db")
printf 'hello, tables\n' >"$tmp/hello.txt"
head -c 100000 /dev/urandom >"$tmp/rand.bin"
check "mkdir -p" -- "${fs[@]}" mkdir -p "/docs/deep/er"
check "put" -- "${fs[@]}" put "$tmp/hello.txt" "/docs/hello.txt"
check "put a parallel file" -- "${fs[@]}" --layout parallel put "$tmp/rand.bin" "/docs/rand.bin"
check "get" -- "${fs[@]}" get "/docs/rand.bin" "$tmp/rand.back"
check "get returns the bytes" -- cmp "$tmp/rand.bin" "$tmp/rand.back"
check "get to stdout" -- bash -c "[[ \$('${sluice}' fs --backend '$db' get /docs/hello.txt) == 'hello, tables' ]]"
check "ls" -- bash -c "'${sluice}' fs --backend '$db' ls /docs | grep -qx 'rand.bin'"
check "stat shows the layout" -- bash -c "'${sluice}' fs --backend '$db' stat /docs/rand.bin --json | grep -q '\"layout\": \"parallel\"'"
check "du" -- bash -c "'${sluice}' fs --backend '$db' du /docs | grep -q 100014"
check "du --by-user (the paper's query)" -- bash -c "'${sluice}' fs --backend '$db' du --by-user --min-size 20K | grep -q 100000"
check "find --larger" -- bash -c "'${sluice}' fs --backend '$db' find --larger 1K | grep -q /docs/rand.bin"
check "find --newer" -- bash -c "'${sluice}' fs --backend '$db' find --newer 1h / | grep -q /docs/hello.txt"
check "plain sluice sql" -- bash -c "'${sluice}' sql --backend '$db' \"SELECT sum(f_size) FROM Directory WHERE content_type = 'file' AND f_size >= 20000\" | grep -q 100000"
check "mv" -- "${fs[@]}" mv /docs /papers
expect_fail "ENOENT" -- "${fs[@]}" stat /docs/hello.txt
expect_fail "ENOTEMPTY" -- "${fs[@]}" rm /papers
expect_fail "ENOENT" -- "${fs[@]}" mkdir /no/such/parent
expect_fail "ENAMETOOLONG" -- "${fs[@]}" mkdir "/$(printf 'n%.0s' {1..300})"
check "rm -r" -- "${fs[@]}" rm -r /papers
check "quota" -- "${fs[@]}" quota "$(id -un)" 1K
expect_fail "EDQUOT" -- "${fs[@]}" put "$tmp/rand.bin" /big
check "quota off" -- "${fs[@]}" quota "$(id -un)" 0

# --- on a mount ---
if [[ ! -e /dev/fuse ]] || ! command -v fusermount3 >/dev/null; then
  echo "$passed passed, $failed failed; FUSE not usable here (no /dev/fuse or fusermount3)"
  [[ $failed -eq 0 ]] && exit 77
  exit 1
fi

wait_mounted() {
  for _ in $(seq 1 100); do
    mountpoint -q "$mnt" && return 0
    sleep 0.1
  done
  return 1
}

for layout in localized parallel; do
  db="sqlite:$tmp/$layout.db"
  if [[ $layout == localized ]]; then
    "$sluice" fs --backend "$db" --layout "$layout" --block-size 2048 mount "$mnt" -f \
      2>"$tmp/mount.log" &
    pid=$!
  else
    # Detached, like mount(8): the command returns once the filesystem is mounted.
    check "mount detached" -- "$sluice" fs --backend "$db" --layout "$layout" mount "$mnt"
    pid=
  fi
  if ! wait_mounted; then
    echo "FAIL: $layout: $mnt not mounted:"
    sed 's/^/    /' "$tmp/mount.log" 2>/dev/null
    if grep -q "fuse: device not found\|Operation not permitted\|cannot mount" "$tmp/mount.log" 2>/dev/null; then
      exit 77
    fi
    exit 1
  fi
  src=$tmp/src
  rm -rf "$src"
  mkdir -p "$src/sub dir/üñí" "$src/100%_x"
  printf 'one\n' >"$src/sub dir/a.txt"
  head -c 70000 /dev/urandom >"$src/sub dir/üñí/blob"
  printf "quote'd\n" >"$src/100%_x/it's"
  head -c 5000 /dev/urandom >"$src/top.bin"

  check "$layout: mkdir -p" -- mkdir -p "$mnt/a/b/c"
  check "$layout: echo >" -- bash -c "echo hello >'$mnt/a/b/c/hello.txt'"
  check "$layout: cat" -- bash -c "[[ \$(cat '$mnt/a/b/c/hello.txt') == hello ]]"
  check "$layout: cp" -- cp "$src/top.bin" "$mnt/a/top.bin"
  check "$layout: cp round trip" -- cmp "$src/top.bin" "$mnt/a/top.bin"
  if command -v rsync >/dev/null; then
    check "$layout: rsync" -- rsync -r "$src/" "$mnt/synced/"
  else
    echo "note: rsync not installed; copying with cp -r"
    check "$layout: cp -r" -- cp -r "$src" "$mnt/synced"
  fi
  check "$layout: rsync copy is exact" -- diff -r "$src" "$mnt/synced"
  check "$layout: ls" -- bash -c "ls '$mnt/a' | tr '\n' ' ' | grep -qx 'b top.bin '"
  printf '%s\n' "./a/b/c/hello.txt" "./a/top.bin" "./synced/100%_x/it's" "./synced/sub dir/a.txt" \
    "./synced/sub dir/üñí/blob" "./synced/top.bin" >"$tmp/want_files"
  check "$layout: find" -- bash -c "cd '$mnt' && find . -type f | LC_ALL=C sort | diff - '$tmp/want_files'"
  check "$layout: du --apparent-size" -- bash -c "[[ \$(du -sb --apparent-size '$mnt/synced/sub dir/üñí/blob' | cut -f1) == 70000 ]]"
  check "$layout: dd into a hole" -- bash -c "printf XY | dd of='$mnt/a/sparse' bs=1 seek=10000 conv=notrunc status=none"
  check "$layout: a hole reads zeros" -- bash -c "cmp <(head -c 10000 /dev/zero; printf XY) '$mnt/a/sparse'"
  check "$layout: truncate" -- truncate -s 5 "$mnt/a/top.bin"
  check "$layout: size after truncate" -- bash -c "[[ \$(stat -c %s '$mnt/a/top.bin') == 5 ]]"
  check "$layout: append" -- bash -c "printf 'more' >>'$mnt/a/b/c/hello.txt' && [[ \$(cat '$mnt/a/b/c/hello.txt') == \$'hello\nmore' ]]"
  check "$layout: chmod" -- bash -c "chmod 600 '$mnt/a/sparse' && [[ \$(stat -c %a '$mnt/a/sparse') == 600 ]]"
  check "$layout: touch -d" -- bash -c "touch -d '2001-02-03 04:05:06 UTC' '$mnt/a/sparse' && [[ \$(stat -c %Y '$mnt/a/sparse') == 981173106 ]]"
  check "$layout: mv a directory" -- mv "$mnt/a" "$mnt/moved"
  check "$layout: its files moved" -- bash -c "[[ -f '$mnt/moved/b/c/hello.txt' && ! -e '$mnt/a' ]]"
  check "$layout: seen without the mount" -- bash -c "'${sluice}' fs --backend '$db' stat /moved/b/c/hello.txt | grep -q 'size:   10'"
  check "$layout: put without the mount, read on it" -- bash -c "printf outside | '${sluice}' fs --backend '$db' put - /moved/outside && [[ \$(cat '$mnt/moved/outside') == outside ]]"
  check "$layout: the layout of new files" -- bash -c "'${sluice}' fs --backend '$db' stat /moved/sparse | grep -q 'layout: $layout'"
  expect_fail "not empty" -- rmdir "$mnt/moved"
  expect_fail "No such file" -- cat "$mnt/nothing"
  expect_fail "No such file" -- mkdir "$mnt/no/such"
  expect_fail "Not a directory" -- ls "$mnt/moved/sparse/x"
  expect_fail "too long" -- touch "$mnt/$(printf 'n%.0s' {1..256})"
  # Requests run on several server threads, each with its own database session.
  head -c 300000 /dev/urandom >"$tmp/par.bin"
  check "$layout: 8 writers and readers at once" -- bash -c "mkdir '$mnt/par' && pids=() &&
    for i in \$(seq 1 8); do
      (cp '$tmp/par.bin' '$mnt/par'/\$i.bin && cat '$mnt/par'/\$i.bin >/dev/null && ls '$mnt/par' >/dev/null) &
      pids+=(\$!)
    done && for p in \"\${pids[@]}\"; do wait \$p || exit 1; done"
  check "$layout: every concurrent copy is exact" -- bash -c "for i in \$(seq 1 8); do cmp '$tmp/par.bin' '$mnt/par'/\$i.bin || exit 1; done"
  check "$layout: rm -r" -- rm -r "$mnt/moved" "$mnt/synced" "$mnt/par"
  check "$layout: empty again" -- bash -c "[[ -z \$(ls -A '$mnt') ]]"
  check "$layout: tables empty" -- bash -c "[[ \$('${sluice}' sql --backend '$db' --json \"SELECT count(*) AS n FROM Directory\" | grep -c '\"n\": 1') == 1 ]]"
  check "$layout: unmount" -- fusermount3 -u "$mnt"
  if [[ -n $pid ]]; then
    if wait "$pid"; then
      passed=$((passed + 1))
    else
      echo "FAIL: $layout: the foreground server exited with an error:"
      sed 's/^/    /' "$tmp/mount.log"
      failed=$((failed + 1))
    fi
    pid=
  fi
  check "$layout: unmounted" -- bash -c "! mountpoint -q '$mnt'"
done

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

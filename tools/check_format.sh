#!/usr/bin/env bash
# Fails when a C++ file in the tree is not formatted by the project's .clang-format.
# Usage: check_format.sh [--fix]
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find include src bench -name '*.h' -o -name '*.cc' | sort)
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  printf 'not formatted (run tools/check_format.sh --fix):\n'
  printf '  %s\n' "${bad[@]}"
  echo "format: 0 passed, ${#bad[@]} failed"
  exit 1
fi
echo "format: ${#files[@]} files formatted"

#!/usr/bin/env bash
# Prints one closing line, "tests: N passed, N failed, N skipped", from a CTest log, so that the
# counts stand last in the output of `make test`.
#   scripts/ctest_summary.sh build/ctest.log
set -euo pipefail
log="$1"
total=$(grep -oE "tests failed out of [0-9]+" "$log" | tail -1 | grep -oE "[0-9]+$" || echo 0)
failed=$(grep -oE "[0-9]+ tests failed out of" "$log" | tail -1 | grep -oE "^[0-9]+" || echo 0)
skipped=$(grep -cE "^[[:space:]]+[0-9]+ - .* \(Skipped\)$" "$log" || true)
echo "tests: $((total - failed - skipped)) passed, ${failed} failed, ${skipped} skipped"

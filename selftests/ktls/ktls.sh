#!/bin/bash
# kTLS with rpctls's own key code (test_ktls), and one test per kernel fact
# the design relies on (facts).
. "$RPCTLS_TOP/selftests/lib/lib.sh"
pki=$RPCTLS_BUILD/tests/pki
"$RPCTLS_TOP/selftests/lib/mkcerts.sh" "$pki"
"$T/test_ktls" "$pki" | sed 's/^\(PASS\|FAIL\): /\1: ktls-/'
"$T/facts" "$pki" "$(cgroup2_root)" | sed 's/^\(PASS\|FAIL\): /\1: fact-/'

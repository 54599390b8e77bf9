#!/bin/bash
# Fuzz the shared parsers for RPCTLS_FUZZ_SECONDS (default 20) from a seed
# corpus of real probes, replies and TLS records.
. "$RPCTLS_TOP/selftests/lib/lib.sh"
corpus=$RPCTLS_BUILD/tests/fuzz-corpus
mkdir -p "$corpus"
# Seeds: a probe, a STARTTLS reply, a call with a credential, a TLS header.
printf '\x80\x00\x00\x28\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01\x86\xa0\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' > "$corpus/probe"
printf '\x80\x00\x00\x20\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08STARTTLS\x00\x00\x00\x00' > "$corpus/starttls"
printf '\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00\x17\x03\x03\x00\x02ab' > "$corpus/tls"
printf '\x00\x00\x00\x04abcd\x80\x00\x00\x02xy' > "$corpus/frags"
secs=${RPCTLS_FUZZ_SECONDS:-20}
if "$RPCTLS_BUILD/tests/fuzz_parse" -max_total_time="$secs" -max_len=8192 -print_final_stats=1 \
	-artifact_prefix="$RPCTLS_BUILD/tests/" "$corpus" > "$RPCTLS_BUILD/tests/fuzz.log" 2>&1; then
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$RPCTLS_BUILD/tests/fuzz.log" | grep -o '[0-9]*$')
	pass "libfuzzer ${secs}s, ${runs:-?} inputs, no crash, framing independent of splits"
else
	fail libfuzzer "crash or invariant broken; see $RPCTLS_BUILD/tests/fuzz.log and the crash-* file there"
	tail -n 30 "$RPCTLS_BUILD/tests/fuzz.log"
fi
finish

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A minimal test harness for C tests. Each test prints one line
 * "PASS: name" or "FAIL: name: why"; selftests/run counts those lines.
 * CHECK() records the first failure of the current test and goes on.
 */
#ifndef RPCTLS_CHECK_H
#define RPCTLS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failed_tests, check_passed_tests;
static const char *check_cur;
static char check_why[512];

#define CHECK(cond, ...)                                                                     \
	do {                                                                                 \
		if (!(cond) && !check_why[0]) {                                              \
			int n_ = snprintf(check_why, sizeof(check_why), "%s:%d: ", __FILE__, __LINE__); \
			snprintf(check_why + n_, sizeof(check_why) - n_, __VA_ARGS__);     \
		}                                                                            \
	} while (0)

static inline void test_begin(const char *name)
{
	check_cur = name;
	check_why[0] = 0;
}

static inline void test_end(void)
{
	if (check_why[0]) {
		printf("FAIL: %s: %s\n", check_cur, check_why);
		check_failed_tests++;
	} else {
		printf("PASS: %s\n", check_cur);
		check_passed_tests++;
	}
	fflush(stdout);
}

#define RUN(fn)                  \
	do {                     \
		test_begin(#fn); \
		fn();            \
		test_end();      \
	} while (0)

static inline int check_exit(void)
{
	return check_failed_tests ? 1 : 0;
}

#endif

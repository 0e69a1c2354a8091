/*
 * The C tests' one assertion: counts every check, reports a failing one with its file, line,
 * condition and a printf-style message, and keeps going; a test program prints `checks` and
 * `failures` at the end and exits non-zero when `failures` is not 0.
 */
#ifndef CONSENTD_TESTS_CHECK_H
#define CONSENTD_TESTS_CHECK_H

#include <stdio.h>

static int failures = 0;
static int checks = 0;

#define CHECK(condition, ...)                                                    \
    do {                                                                         \
        checks++;                                                                \
        if (!(condition)) {                                                      \
            failures++;                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #condition); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)

#endif

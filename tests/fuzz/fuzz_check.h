// What the fuzz targets (tests/fuzz/*_fuzz.cc) share: a property check
// that says which property failed and aborts, so that libFuzzer keeps the
// input as a crash and the replay test (replay_main.cc) fails.
#ifndef MERIDIAN_TESTS_FUZZ_FUZZ_CHECK_H_
#define MERIDIAN_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                           \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                \
    }                                                                              \
  } while (0)

#endif  // MERIDIAN_TESTS_FUZZ_FUZZ_CHECK_H_

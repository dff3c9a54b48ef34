// Which sanitizer this test binary was built with, for tests that cannot work under one and must say so.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define FIBERSCOPE_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBERSCOPE_TEST_UNDER_ASAN 1
#endif
#endif
#ifndef FIBERSCOPE_TEST_UNDER_ASAN
#define FIBERSCOPE_TEST_UNDER_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define FIBERSCOPE_TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FIBERSCOPE_TEST_UNDER_TSAN 1
#endif
#endif
#ifndef FIBERSCOPE_TEST_UNDER_TSAN
#define FIBERSCOPE_TEST_UNDER_TSAN 0
#endif

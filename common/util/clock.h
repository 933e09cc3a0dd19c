// Time: the monotonic clock for elapsed time, the wall clock for stored times.
#pragma once

#include <chrono>

namespace util {

using Clock = std::chrono::steady_clock;

// Seconds elapsed since `start` on the monotonic clock.
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The monotonic clock in seconds (from an arbitrary origin): for deadlines and intervals.
inline double monotonic_seconds() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

// Wall-clock time as unix seconds: the unit of every time the tracker stores.
inline double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace util

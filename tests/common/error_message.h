// Test helper: the message of the c10::Error a call throws (without the backtrace), or
// "no error", so tests can assert on what a user would read.
#pragma once

#include <c10/util/Exception.h>

#include <functional>
#include <string>

namespace pixelfly::testing {

inline std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "no error";
}

}  // namespace pixelfly::testing

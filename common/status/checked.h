// Checked arithmetic for sizes computed from outside numbers (requests, plans, files): a
// product that would wrap is no answer, never a small one.
//
//   auto bytes = CheckedProduct({w, h, planes, elem});
//   if (!bytes || *bytes > limit) return Error(StatusCode::kResourceExhausted, ...);
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>

namespace tessera {

/// The product of `factors`, or std::nullopt when it exceeds uint64_t.
inline std::optional<uint64_t> CheckedProduct(std::initializer_list<uint64_t> factors) {
  uint64_t p = 1;
  for (uint64_t f : factors) {
    if (__builtin_mul_overflow(p, f, &p)) return std::nullopt;
  }
  return p;
}

/// The sum of `terms`, or std::nullopt when it exceeds uint64_t.
inline std::optional<uint64_t> CheckedSum(std::initializer_list<uint64_t> terms) {
  uint64_t s = 0;
  for (uint64_t t : terms) {
    if (__builtin_add_overflow(s, t, &s)) return std::nullopt;
  }
  return s;
}

}  // namespace tessera

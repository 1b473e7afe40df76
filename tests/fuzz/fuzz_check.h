// What every fuzz target asserts with: a broken contract stops the run, as a crash does, even
// in builds where assert() is compiled away.
#pragma once

namespace tessera::fuzz {

inline void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace tessera::fuzz

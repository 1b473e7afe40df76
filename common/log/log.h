// Logging: one named spdlog logger per component, key=value fields, quiet by default.
//
//   log::Init(log::Level::kInfo);                 // once, in main
//   auto logger = log::Get("writer");
//   logger->info("slide={} frames={} synced", id, n);
#pragma once

#include <memory>
#include <string>

#include <spdlog/fwd.h>

namespace tessera::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kOff };

/// Sets the level of every logger (existing and future); logs go to stderr.
/// Reads TESSERA_LOG (trace|debug|info|warn|error|off) when `from_env` and it is set.
void Init(Level level, bool from_env = true);

/// The logger named `component` (created on first use, thread-safe).
std::shared_ptr<spdlog::logger> Get(const std::string& component);

}  // namespace tessera::log

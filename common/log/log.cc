#include "common/log/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>

namespace tessera::log {
namespace {

std::mutex mu;
spdlog::level::level_enum current = spdlog::level::warn;

spdlog::level::level_enum ToSpd(Level l) {
  switch (l) {
    case Level::kTrace: return spdlog::level::trace;
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
    case Level::kOff: return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

void Init(Level level, bool from_env) {
  std::lock_guard lock(mu);
  current = ToSpd(level);
  if (const char* env = std::getenv("TESSERA_LOG"); from_env && env != nullptr && *env != 0) {
    current = spdlog::level::from_str(env);
  }
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n pid=%P %v");
  spdlog::set_level(current);
}

std::shared_ptr<spdlog::logger> Get(const std::string& component) {
  std::lock_guard lock(mu);
  if (auto existing = spdlog::get(component)) return existing;
  auto logger = spdlog::stderr_logger_mt(component);
  logger->set_level(current);
  return logger;
}

}  // namespace tessera::log

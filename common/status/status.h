// Status and Result<T>: the one error model of Tessera.
//
// Missing slides, corrupt chunks and full disks are normal outcomes that cross
// the wire: a Status carries a code (mapped 1:1 onto the protocol's StatusCode
// and onto HTTP) and a message that names the cause and what to do.
//
//   Result<SlideInfo> info = client.Info("s-1");
//   if (!info.ok()) return info.status();
//   Use(*info);
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace tessera {

// Values equal the wire protocol's StatusCode (proto/tessera.proto).
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kAlreadyExists = 3,
  kFailedPrecondition = 4,
  kResourceExhausted = 5,
  kDataLoss = 6,
  kUnavailable = 7,
  kInternal = 8,
  kUnimplemented = 9,
  kVersionMismatch = 10,
  kOutOfRange = 11,
  kDeadlineExceeded = 12,
  kCancelled = 13,          ///< the caller asked to stop (SIGINT, SIGTERM)
  kPermissionDenied = 14,   ///< known peer, but its role may not do this
  kUnauthenticated = 15,    ///< no, an unknown or a revoked credential
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  /// "NOT_FOUND: slide s-7 is not in the catalog"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return {}; }

template <typename... Args>
Status Error(StatusCode code, fmt::format_string<Args...> format, Args&&... args) {
  return Status(code, fmt::format(format, std::forward<Args>(args)...));
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok() && "a Result is built from an error status only");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace tessera

#define TESSERA_CONCAT_INNER(a, b) a##b
#define TESSERA_CONCAT(a, b) TESSERA_CONCAT_INNER(a, b)

/// Returns the status from the enclosing function when it is an error.
#define TESSERA_RETURN_IF_ERROR(expr)            \
  do {                                           \
    ::tessera::Status _st = (expr);              \
    if (!_st.ok()) return _st;                   \
  } while (0)

/// `TESSERA_ASSIGN_OR_RETURN(auto x, MakeX());`
#define TESSERA_ASSIGN_OR_RETURN(lhs, expr) \
  TESSERA_ASSIGN_OR_RETURN_IMPL(TESSERA_CONCAT(_result_, __LINE__), lhs, expr)
#define TESSERA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()

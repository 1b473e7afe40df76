#include "common/durable/durable.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace tessera::durable {
namespace {

Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Error(StatusCode::kInternal, "cannot open {} to sync it: {}", path, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) {
    return Error(err == ENOSPC ? StatusCode::kResourceExhausted : StatusCode::kInternal, "fsync of {} failed: {}",
                 path, std::strerror(err));
  }
  return OkStatus();
}

}  // namespace

Status SyncFile(const std::string& path) { return SyncPath(path, O_RDONLY); }

Status SyncParent(const std::string& path) {
  const auto dir = std::filesystem::path(path).parent_path();
  return SyncPath(dir.empty() ? "." : dir.string(), O_RDONLY | O_DIRECTORY);
}

Status Rename(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    return Error(StatusCode::kInternal, "cannot rename {} to {}: {}", from, to, std::strerror(errno));
  }
  return SyncParent(to);
}

Status WriteFile(const std::string& path, std::string_view bytes, unsigned mode) {
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());  // a leftover of a crash may have another mode
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) return Error(StatusCode::kInternal, "cannot create {}: {}", tmp, std::strerror(errno));
  size_t done = 0;
  int err = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = errno;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (err == 0 && ::fchmod(fd, static_cast<mode_t>(mode)) != 0) err = errno;  // past the umask
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  ::close(fd);
  if (err != 0) {
    ::unlink(tmp.c_str());
    return Error(err == ENOSPC ? StatusCode::kResourceExhausted : StatusCode::kInternal, "cannot write {}: {}", tmp,
                 std::strerror(err));
  }
  Status s = Rename(tmp, path);
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

}  // namespace tessera::durable

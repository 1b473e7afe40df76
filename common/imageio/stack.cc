#include "common/imageio/stack.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "common/imageio/dcimg.h"

namespace tessera::imageio {
namespace {

class TiffReader : public StackReader {
 public:
  explicit TiffReader(TiffStack stack) : stack_(std::move(stack)) {}
  const TiffInfo& info() const override { return stack_.info(); }
  Status ReadPlane(uint32_t z, std::span<uint8_t> out) override { return stack_.ReadPlane(z, out); }
  std::string format() const override { return "TIFF"; }

 private:
  TiffStack stack_;
};

class DcimgReader : public StackReader {
 public:
  static Result<std::unique_ptr<StackReader>> Open(const std::string& path, int fd) {
    auto r = std::unique_ptr<DcimgReader>(new DcimgReader(path, fd));
    struct stat st {};
    if (::fstat(fd, &st) != 0) return Error(StatusCode::kDataLoss, "{}: {}", path, std::strerror(errno));
    auto layout = ParseDcimg(static_cast<uint64_t>(st.st_size), r->read_);
    if (!layout.ok()) return Status(layout.status().code(), fmt::format("{}: {}", path, layout.status().message()));
    r->layout_ = *layout;
    r->info_ = {.width = layout->width, .height = layout->height, .planes = layout->frames, .dtype = layout->dtype};
    return std::unique_ptr<StackReader>(std::move(r));
  }
  ~DcimgReader() override { ::close(fd_); }
  const TiffInfo& info() const override { return info_; }
  Status ReadPlane(uint32_t z, std::span<uint8_t> out) override { return ReadDcimgFrame(layout_, z, read_, out); }
  std::string format() const override { return fmt::format("DCIMG 0x{:x}", layout_.version); }

 private:
  DcimgReader(std::string path, int fd) : path_(std::move(path)), fd_(fd) {
    read_ = [this](uint64_t offset, std::span<uint8_t> out) -> Status {
      size_t done = 0;
      while (done < out.size()) {
        const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          return Error(StatusCode::kDataLoss, "{}: cannot read {} bytes at {}: {}", path_, out.size(), offset,
                       n < 0 ? std::strerror(errno) : "the file ends there");
        }
        done += static_cast<size_t>(n);
      }
      return OkStatus();
    };
  }
  std::string path_;
  int fd_;
  ReadAt read_;
  DcimgLayout layout_;
  TiffInfo info_;
};

}  // namespace

Result<std::unique_ptr<StackReader>> StackReader::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(StatusCode::kNotFound, "{}: {}", path, std::strerror(errno));
  char magic[8] = {};
  const ssize_t n = ::pread(fd, magic, sizeof magic, 0);
  if (n == 8 && std::memcmp(magic, "DCIMG\0\0\0", 8) == 0) return DcimgReader::Open(path, fd);
  ::close(fd);
  const bool tiff = n >= 4 && (std::memcmp(magic, "II", 2) == 0 || std::memcmp(magic, "MM", 2) == 0);
  if (!tiff) {
    return Error(StatusCode::kInvalidArgument, "{}: neither a TIFF nor a DCIMG file (tiles are multi-page TIFF or "
                 "Hamamatsu .dcimg stacks)", path);
  }
  TESSERA_ASSIGN_OR_RETURN(TiffStack stack, TiffStack::Open(path));
  return std::unique_ptr<StackReader>(new TiffReader(std::move(stack)));
}

}  // namespace tessera::imageio

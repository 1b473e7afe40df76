// tessera: the one executable of the stack. `tessera --help` lists the commands.
#include <malloc.h>
#include <unistd.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "client/client.h"
#include "common/log/log.h"

namespace tessera::cli {

std::atomic<bool>& StopFlag() {
  static std::atomic<bool> stop{false};
  return stop;
}

int Fail(const std::string& what) {
  fmt::print(stderr, "error: {}\n", what);
  return 1;
}

namespace {
// Comma-separated integers, exactly `out.size()` of them, the last `sizes` above 0.
bool ParseInts(const std::string& text, std::span<int64_t> out, size_t sizes) {
  std::string_view rest = text;
  for (size_t i = 0; i < out.size(); ++i) {
    const size_t comma = i + 1 < out.size() ? rest.find(',') : rest.size();
    if (comma == std::string_view::npos) return false;
    const std::string_view part = rest.substr(0, comma);
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), out[i]);
    if (ec != std::errc() || end != part.data() + part.size() || part.empty()) return false;
    if (i >= out.size() - sizes && out[i] <= 0) return false;
    // Far beyond any mosaic (positions are bounded by 2^30), far inside int64's range.
    if (out[i] > (int64_t{1} << 40) || out[i] < -(int64_t{1} << 40)) return false;
    rest = comma < rest.size() ? rest.substr(comma + 1) : std::string_view();
  }
  return rest.empty();
}
}  // namespace

Result<std::array<int64_t, 4>> ParseRegion(const std::string& text) {
  std::array<int64_t, 4> r{};
  if (!ParseInts(text, r, 2)) {
    return Error(StatusCode::kInvalidArgument, "--region '{}' is not x,y,w,h (four integers, w and h above 0)", text);
  }
  return r;
}

Result<std::array<int64_t, 6>> ParseBox(const std::string& text) {
  std::array<int64_t, 6> b{};
  if (!ParseInts(text, b, 3)) {
    return Error(StatusCode::kInvalidArgument, "--box '{}' is not x,y,z,w,h,d (six integers, w, h and d above 0)", text);
  }
  return b;
}

void AddServerOption(CLI::App* cmd, std::string& server) {
  cmd->add_option("--server", server,
                  fmt::format("The manager's endpoint (default: env TESSERA_SERVER, else the credential's, else {})",
                              kDefaultServer));
}

}  // namespace tessera::cli

int main(int argc, char** argv) {
  using namespace tessera;
  std::signal(SIGINT, [](int) { cli::StopFlag() = true; });
  std::signal(SIGTERM, [](int) { cli::StopFlag() = true; });
  std::signal(SIGPIPE, SIG_IGN);
  // Frames and chunks are large, short-lived buffers: keep freed memory in the heap rather
  // than returning it to the kernel and faulting it in again for the next frame.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_ARENA_MAX, 1);  // ZeroMQ's I/O thread allocates every received chunk: one arena keeps it warm

  CLI::App app{
      "Tessera: stores a microscope's frames as they are acquired, in compressed HDF5 slides,\n"
      "and serves them. Run `tessera up` for the whole stack on this machine, then `tessera scan`\n"
      "to push a scan, `tessera ls` and `tessera info ID` to see what is stored.",
      "tessera"};
  app.require_subcommand(1);
  app.fallthrough();
  int verbosity = 0;
  app.add_flag("-v,--verbose", verbosity, "More log output (-v info, -vv debug); TESSERA_LOG=level also works");
  app.set_version_flag("--version", "tessera 0.1.0");
  std::string credential;
  app.add_option("--credential", credential,
                 "The credential file a client command connects with (from `tessera credential new`, or the "
                 "credential= of `tessera up`); default: ./data/security/admin.credential if it exists")
      ->envname("TESSERA_CREDENTIAL");
  int exit_code = 0;
  cli::AddServerCommands(app, exit_code);
  cli::AddScanCommand(app, exit_code);
  cli::AddSlideCommands(app, exit_code);
  cli::AddExportCommand(app, exit_code);
  cli::AddStitchCommands(app, exit_code);
  cli::AddCredentialCommands(app, exit_code);
  app.parse_complete_callback([&] {
    log::Init(verbosity >= 2 ? log::Level::kDebug : verbosity == 1 ? log::Level::kInfo : log::Level::kWarn);
    // The stack's own processes hold the stack's keys (`serve ROLE --security DIR`, `up`), or
    // none when it runs --insecure: never a client's credential from the environment. A role
    // that only connects (a worker on another host) may be given one with --credential.
    if (app.got_subcommand("up") || app.got_subcommand("serve")) {
      const char* env = std::getenv("TESSERA_CREDENTIAL");
      const bool from_env = env != nullptr && credential == env;
      ::unsetenv("TESSERA_CREDENTIAL");  // nor the client library's Clients inside them
      if (from_env || app.got_subcommand("up")) return;
    } else {
      const std::string local = "data/security/admin.credential";
      if (credential.empty() && ::access(local.c_str(), R_OK) == 0) credential = local;
    }
    if (credential.empty()) return;
    if (Status s = UseCredential(credential); !s.ok()) {
      cli::Fail(s.ToString());
      throw CLI::RuntimeError(1);
    }
  });
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}

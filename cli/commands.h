// The `tessera` command line: one function per command group, registered on a CLI11 app.
// Each returns the process exit code through the `exit_code` it is given.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include <optional>

#include "common/correct/destripe.h"
#include "common/status/status.h"

namespace CLI {
class App;
}

namespace tessera::cli {

/// Set by SIGINT / SIGTERM; every long-running command checks it.
std::atomic<bool>& StopFlag();

/// up, serve ROLE
void AddServerCommands(CLI::App& app, int& exit_code);
/// scan
void AddScanCommand(CLI::App& app, int& exit_code);
/// ls, info, close, get
void AddSlideCommands(CLI::App& app, int& exit_code);

/// export (OME-Zarr, OME-TIFF)
void AddExportCommand(CLI::App& app, int& exit_code);

/// stitch, ps
void AddStitchCommands(CLI::App& app, int& exit_code);

/// credential new, revoke, ls
void AddCredentialCommands(CLI::App& app, int& exit_code);

/// Prints "error: <status>" to stderr and returns the exit code for it.
int Fail(const std::string& what);

/// --region x,y,w,h and --box x,y,z,w,h,d: integers, the sizes above 0; INVALID_ARGUMENT
/// naming the option and the form otherwise.
Result<std::array<int64_t, 4>> ParseRegion(const std::string& text);
Result<std::array<int64_t, 6>> ParseBox(const std::string& text);

/// pystripe's options (--destripe METHOD, --sigma1, --sigma2, --wavelet, --wavelet-level,
/// --threshold, --crossover, --artifact-length, --background-window, --percentile,
/// --lightsheet-vs-background, --stripes-along-y) into `options`, the method's name into `method`
/// ("" when not asked); the caller turns it into options->method.
struct DestripeArgs {
  std::string method;
  correct::DestripeOptions options;
};
void AddDestripeOptions(CLI::App* cmd, DestripeArgs& args);
/// The options given, or nothing when --destripe was not; INVALID_ARGUMENT for bad ones.
Result<std::optional<correct::DestripeOptions>> DestripeOf(const DestripeArgs& args);

/// --server on a client command: empty means DefaultServer() (TESSERA_SERVER, else the
/// credential's endpoint, else the default).
void AddServerOption(CLI::App* cmd, std::string& server);

}  // namespace tessera::cli

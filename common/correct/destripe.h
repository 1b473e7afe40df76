// Destripe: stripes removed from one light-sheet plane, by either of pystripe's methods.
//
// Absorbing and scattering structures in the sheet's path cast stripes along its direction.
// Two methods, with pystripe's parameters and defaults, each equal (within a grey level) to
// pystripe's own (tests/destripe_reference.py):
// - wavelet (`filter_streaks`): log(1 + I), a 2-D wavelet decomposition (PyWavelets'
//   symmetric mode), a Gaussian notch on the Fourier transform along the stripes of each
//   horizontal detail band, back, exp(.) - 1. `sigma_foreground` filters the pixels above the
//   threshold (Otsu's by default), `sigma_background` those below, blended over `crossover`
//   grey levels; equal sigmas filter the plane as one band, a zero sigma leaves its part alone.
// - lightsheet (`correct_lightsheet`, after ClearMap): a low percentile along the stripes over
//   `artifact_length` pixels, capped at `lightsheet_vs_background` times the same percentile
//   over a `background_window` square, subtracted.
// The input is never changed; the result is a new plane of the same size.
//
//   DestripeOptions o{.sigma_foreground = 256, .sigma_background = 256};
//   std::vector<uint16_t> out(w * h);
//   TESSERA_RETURN_IF_ERROR(Destripe({pixels, w, h}, o, out));
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status/status.h"
#include "common/stitch/register.h"

namespace tessera::correct {

enum class DestripeMethod { kWavelet, kLightsheet };

struct DestripeOptions {
  DestripeMethod method = DestripeMethod::kWavelet;
  bool along_y = false;            ///< stripes run down the columns (pystripe's --rotate) rather than along rows
  // The wavelet method (pystripe's -s1, -s2, -l, -w, -t, -x).
  double sigma_foreground = 0;     ///< px of the notch's width for pixels above the threshold; 0: left alone
  double sigma_background = 0;     ///< ... for pixels below it
  int level = 0;                   ///< wavelet levels; 0: as many as the plane allows
  std::string wavelet = "db3";     ///< haar, db1-db10, sym2-sym10, coif1-coif5
  double threshold = -1;           ///< grey level between background and foreground; -1: Otsu's
  double crossover = 10;           ///< grey levels over which the two bands blend
  // The lightsheet method (pystripe's --artifact-length, --background-window-size, --percentile,
  // --lightsheet-vs-background).
  int artifact_length = 150;       ///< px along the stripes
  int background_window = 200;     ///< px, a square
  double percentile = 0.25;        ///< in [0, 1]
  double lightsheet_vs_background = 2.0;
};

/// INVALID_ARGUMENT, naming the option, for options out of their ranges (checked where options
/// enter: the plan, the command line, a task).
Status CheckDestripeOptions(const DestripeOptions& options);
/// "wavelet" or "lightsheet" (the command line's and the plan's words).
Result<DestripeMethod> DestripeMethodNamed(const std::string& name);
const char* DestripeMethodName(DestripeMethod method);

/// Destripes `in` into `out` (in.width * in.height samples, row-major). Single-threaded;
/// memory about 40 bytes a pixel while it runs.
Status Destripe(const stitch::ImageView& in, const DestripeOptions& options, std::span<uint16_t> out);

/// skimage's threshold_otsu for an integer image (one bin per grey level from its least to
/// its greatest; a plane of one value gives that value).
double OtsuThreshold(const stitch::ImageView& in);

}  // namespace tessera::correct

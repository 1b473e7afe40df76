#include "common/correct/internal/wavelet.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <string>
#include <thread>
#include <utility>

namespace tessera::correct::internal {
namespace {

struct Named {
  const char* name;
  std::vector<double> dec_lo;
};

// PyWavelets' decomposition low-pass filters; the other three follow from them.
const std::vector<Named>& Filters() {
  static const std::vector<Named> filters = {
    {"haar", {0.7071067811865476, 0.7071067811865476}},
    {"db1", {0.7071067811865476, 0.7071067811865476}},
    {"db2", {-0.12940952255126037, 0.2241438680420134, 0.8365163037378079, 0.48296291314453416}},
    {"db3", {0.03522629188570953, -0.08544127388202666, -0.13501102001025458, 0.45987750211849154, 0.8068915093110925, 0.33267055295008263}},
    {"db4", {-0.010597401785069032, 0.0328830116668852, 0.030841381835560764, -0.18703481171909309, -0.027983769416859854, 0.6308807679298589, 0.7148465705529157, 0.2303778133088965}},
    {"db5", {0.0033357252854737712, -0.012580751999081999, -0.006241490212798274, 0.07757149384004572, -0.032244869584638375, -0.24229488706638203, 0.13842814590132074, 0.7243085284377729, 0.6038292697971896, 0.16010239797419293}},
    {"db6", {-0.0010773010853084796, 0.004777257510945511, 0.0005538422011614961, -0.03158203931748603, 0.027522865530305727, 0.09750160558732304, -0.12976686756726194, -0.22626469396543983, 0.31525035170919763, 0.7511339080210954, 0.49462389039845306, 0.11154074335010947}},
    {"db7", {0.00035371379997452024, -0.0018016407040474908, 0.0004295779729213665, 0.01255099855609984, -0.01657454163066688, -0.03802993693501441, 0.08061260915108308, 0.07130921926683026, -0.22403618499387498, -0.14390600392856498, 0.4697822874051931, 0.7291320908462351, 0.3965393194819173, 0.07785205408500918}},
    {"db8", {-0.00011747678412476953, 0.0006754494064505693, -0.00039174037337694705, -0.004870352993451574, 0.008746094047405777, 0.013981027917398282, -0.044088253930794755, -0.017369301001807547, 0.12874742662047847, 0.0004724845739132828, -0.2840155429615469, -0.015829105256349306, 0.5853546836542067, 0.6756307362972898, 0.31287159091429995, 0.05441584224310401}},
    {"db9", {3.93473203162716e-05, -0.0002519631889427101, 0.00023038576352319597, 0.0018476468830562265, -0.00428150368246343, -0.004723204757751397, 0.022361662123679096, 0.00025094711483145197, -0.06763282906132997, 0.03072568147933338, 0.14854074933810638, -0.09684078322297646, -0.2932737832791749, 0.13319738582500756, 0.6572880780513005, 0.6048231236901112, 0.24383467461259034, 0.038077947363878345}},
    {"db10", {-1.3264202894521244e-05, 9.358867032006959e-05, -0.00011646685512928545, -0.0006858566949597116, 0.001992405295185056, 0.001395351747052901, -0.010733175483330575, 0.0036065535669561697, 0.033212674059341, -0.029457536821875813, -0.07139414716639708, 0.09305736460357235, 0.12736934033579325, -0.19594627437737705, -0.24984642432731538, 0.2811723436605775, 0.6884590394536035, 0.5272011889317256, 0.1881768000776915, 0.026670057900555554}},
    {"sym2", {-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025}},
    {"sym3", {0.035226291882100656, -0.08544127388224149, -0.13501102001039084, 0.4598775021193313, 0.8068915093133388, 0.3326705529509569}},
    {"sym4", {-0.07576571478927333, -0.02963552764599851, 0.49761866763201545, 0.8037387518059161, 0.29785779560527736, -0.09921954357684722, -0.012603967262037833, 0.0322231006040427}},
    {"sym5", {0.027333068345077982, 0.029519490925774643, -0.039134249302383094, 0.1993975339773936, 0.7234076904024206, 0.6339789634582119, 0.01660210576452232, -0.17532808990845047, -0.021101834024758855, 0.019538882735286728}},
    {"sym6", {0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633, 0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252, -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148}},
    {"sym7", {0.002681814568257878, -0.0010473848886829163, -0.01263630340325193, 0.03051551316596357, 0.0678926935013727, -0.049552834937127255, 0.017441255086855827, 0.5361019170917628, 0.767764317003164, 0.2886296317515146, -0.14004724044296152, -0.10780823770381774, 0.004010244871533663, 0.010268176708511255}},
    {"sym8", {-0.0033824159510061256, -0.0005421323317911481, 0.03169508781149298, 0.007607487324917605, -0.1432942383508097, -0.061273359067658524, 0.4813596512583722, 0.7771857517005235, 0.3644418948353314, -0.05194583810770904, -0.027219029917056003, 0.049137179673607506, 0.003808752013890615, -0.01495225833704823, -0.0003029205147213668, 0.0018899503327594609}},
    {"sym9", {0.0014009155259146807, 0.0006197808889855868, -0.013271967781817119, -0.01152821020767923, 0.03022487885827568, 0.0005834627461258068, -0.05456895843083407, 0.238760914607303, 0.717897082764412, 0.6173384491409358, 0.035272488035271894, -0.19155083129728512, -0.018233770779395985, 0.06207778930288603, 0.008859267493400484, -0.010264064027633142, -0.0004731544986800831, 0.0010694900329086053}},
    {"sym10", {0.0007701598091144901, 9.563267072289475e-05, -0.008641299277022422, -0.0014653825813050513, 0.0459272392310922, 0.011609893903711381, -0.15949427888491757, -0.07088053578324385, 0.47169066693843925, 0.7695100370211071, 0.38382676106708546, -0.03553674047381755, -0.0319900568824278, 0.04999497207737669, 0.005764912033581909, -0.02035493981231129, -0.0008043589320165449, 0.004593173585311828, 5.7036083618494284e-05, -0.0004593294210046588}},
    {"coif1", {-0.015655728135791993, -0.07273261951252645, 0.3848648468648578, 0.8525720202116004, 0.3378976624574818, -0.07273261951252645}},
    {"coif2", {-0.000720549445520347, -0.0018232088709110323, 0.005611434819368834, 0.02368017194684777, -0.05943441864643109, -0.07648859907828076, 0.4170051844232391, 0.8127236354494135, 0.3861100668227629, -0.0673725547237256, -0.04146493678687178, 0.01638733646320364}},
    {"coif3", {-3.459977319727278e-05, -7.0983302506379e-05, 0.0004662169598204029, 0.0011175187708306303, -0.0025745176881367972, -0.009007976136730624, 0.015880544863669452, 0.03455502757329774, -0.08230192710629983, -0.07179982161915484, 0.42848347637737, 0.7937772226260872, 0.40517690240911824, -0.06112339000297255, -0.06577191128146936, 0.023452696142077168, 0.007782596425672746, -0.003793512864380802}},
    {"coif4", {-1.7849909144933469e-06, -3.259647940030751e-06, 3.1229861599195265e-05, 6.233885431278719e-05, -0.0002599743371222568, -0.0005890202246332165, 0.0012665610789256603, 0.0037514346971460866, -0.0056582838001308835, -0.015211728187697211, 0.02508225333794961, 0.03933442260558915, -0.09622042453595264, -0.06662747236681717, 0.43438603311435653, 0.7822389344242826, 0.41530842700068227, -0.05607731960356926, -0.08126671024919373, 0.02668230466960483, 0.01606894713157503, -0.007346167936268051, -0.001629492425226786, 0.000892313902537003}},
    {"coif5", {-9.604010112767894e-08, -1.6237995172048338e-07, 2.0612203985788783e-06, 3.7007277113394796e-06, -2.1270221672515614e-05, -4.12198619242655e-05, 0.00014035632812373243, 0.0003018579416682448, -0.0006375589261258812, -0.0016616273039298788, 0.0024315754425382886, 0.006761520220620417, -0.009159507338676163, -0.019758391600965465, 0.032674799467057355, 0.041287530472117834, -0.10556315130733723, -0.06203775157498196, 0.4379823066591634, 0.7742936228603274, 0.42157126673075435, -0.052046670253554764, -0.09192158806008609, 0.028169744270532353, 0.023408322118927783, -0.010131584846900276, -0.00415931262757864, 0.0021782943778456947, 0.0003585777411617577, -0.000212081862067494}},
  };
  return filters;
}

// Along y: rows 2o + 1 - j of `in`, weighted by the filters, into rows o of `lo` and `hi`.
void ForwardY(const Plane& in, const Wavelet& w, Plane& lo, Plane& hi) {
  const auto f = static_cast<int64_t>(w.dec_lo.size());
  const int64_t m = (in.height + f - 1) / 2, width = in.width;
  lo = Plane(width, m);
  hi = Plane(width, m);
  ParallelFor(m, [&](int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; ++o) {
    double* a = lo.row(o);
    double* d = hi.row(o);
    for (int64_t j = 0; j < f; ++j) {
      const double* src = in.row(Mirror(2 * o + 1 - j, in.height));
      const double cl = w.dec_lo[j], ch = w.dec_hi[j];
      for (int64_t x = 0; x < width; ++x) {
        a[x] += cl * src[x];
        d[x] += ch * src[x];
      }
    }
  }
  });
}

// Along x, row by row: the mirrored row split into its even and odd samples, so that each tap
// is a contiguous run of them.
void ForwardX(const Plane& in, const Wavelet& w, Plane& lo, Plane& hi) {
  const auto f = static_cast<int64_t>(w.dec_lo.size());
  const int64_t n = in.width, m = (n + f - 1) / 2;
  lo = Plane(m, in.height);
  hi = Plane(m, in.height);
  // ext[k] is sample k - f; output o takes samples 2o + 1 - j, j < f.
  const int64_t ext_len = n + 2 * f + 2;
  ParallelFor(in.height, [&](int64_t y0, int64_t y1) {
  std::vector<double> even((ext_len + 1) / 2), odd((ext_len + 1) / 2);
  for (int64_t y = y0; y < y1; ++y) {
    const double* src = in.row(y);
    for (int64_t k = 0; k < ext_len; ++k) {
      const double v = src[Mirror(k - f, n)];
      (k % 2 == 0 ? even : odd)[static_cast<size_t>(k / 2)] = v;
    }
    double* a = lo.row(y);
    double* d = hi.row(y);
    for (int64_t j = 0; j < f; ++j) {
      // sample 2o + 1 - j is ext[2o + 1 - j + f]
      const int64_t k0 = 1 - j + f;
      const double* s = (k0 % 2 == 0 ? even.data() : odd.data()) + k0 / 2;
      const double cl = w.dec_lo[j], ch = w.dec_hi[j];
      for (int64_t o = 0; o < m; ++o) {
        a[o] += cl * s[o];
        d[o] += ch * s[o];
      }
    }
  }
  });
}

// The inverse along y: output row t is y[t + f - 2] of the upsampled rows convolved with the
// reconstruction filters, every term inside the coefficients for even filter lengths.
Plane InverseY(const Plane& lo, const Plane& hi, const Wavelet& w) {
  const auto f = static_cast<int64_t>(w.rec_lo.size());
  const int64_t n = lo.height, out_h = 2 * n - f + 2, width = lo.width;
  Plane out(width, out_h);
  ParallelFor(out_h, [&](int64_t t0, int64_t t1) {
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t yn = t + f - 2;
    double* dst = out.row(t);
    for (int64_t j = yn % 2; j < f; j += 2) {
      const int64_t k = (yn - j) / 2;
      if (k < 0 || k >= n) continue;
      const double* a = lo.row(k);
      const double* d = hi.row(k);
      const double cl = w.rec_lo[j], ch = w.rec_hi[j];
      for (int64_t x = 0; x < width; ++x) dst[x] += cl * a[x] + ch * d[x];
    }
  }
  });
  return out;
}

Plane InverseX(const Plane& lo, const Plane& hi, const Wavelet& w) {
  const auto f = static_cast<int64_t>(w.rec_lo.size());
  const int64_t n = lo.width, out_w = 2 * n - f + 2;
  Plane out(out_w, lo.height);
  const int64_t half = f / 2;
  ParallelFor(lo.height, [&](int64_t y0, int64_t y1) {
  for (int64_t y = y0; y < y1; ++y) {
    const double* a = lo.row(y);
    const double* d = hi.row(y);
    double* dst = out.row(y);
    // Output t is y[t + f - 2]: even t + f - 2 = 2p takes the even taps 2i at k = p - i, odd
    // ones the odd taps.
    for (int64_t i = 0; i < half; ++i) {
      for (int parity = 0; parity < 2; ++parity) {
        const int64_t j = 2 * i + parity;
        const double cl = w.rec_lo[j], ch = w.rec_hi[j];
        // t = 2p + parity - (f - 2) for p with k = p - i in [0, n)
        for (int64_t p = i; p < n + i; ++p) {
          const int64_t t = 2 * p + parity - (f - 2);
          if (t < 0 || t >= out_w) continue;
          dst[t] += cl * a[p - i] + ch * d[p - i];
        }
      }
    }
  }
  });
  return out;
}

Plane Trimmed(Plane p, int64_t width, int64_t height) {
  assert(p.width >= width && p.height >= height);
  if (p.width == width && p.height == height) return p;
  Plane out(width, height);
  for (int64_t y = 0; y < height; ++y) std::copy_n(p.row(y), width, out.row(y));
  return out;
}

}  // namespace

namespace {
struct Pool {
  std::vector<std::pair<size_t, void*>> free;
  size_t held = 0;
  ~Pool() {
    for (auto& [bytes, p] : free) ::operator delete(p);
  }
};
thread_local Pool pool;
constexpr size_t kPooledFrom = size_t{64} << 10;
}  // namespace

void* PoolAllocate(size_t bytes) {
  if (bytes >= kPooledFrom) {
    for (size_t i = 0; i < pool.free.size(); ++i) {
      if (pool.free[i].first != bytes) continue;
      void* p = pool.free[i].second;
      pool.held -= bytes;
      pool.free[i] = pool.free.back();
      pool.free.pop_back();
      return p;
    }
  }
  return ::operator new(bytes);
}

void PoolFree(void* p, size_t bytes) {
  if (bytes >= kPooledFrom && pool.held + bytes <= kPoolBytes) {
    pool.free.emplace_back(bytes, p);
    pool.held += bytes;
    return;
  }
  ::operator delete(p);
}

void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  static const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  const int64_t parts = std::min(cores, n / 16 + 1);
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> helpers;
  for (int64_t k = 1; k < parts; ++k) helpers.emplace_back([&, k] { fn(n * k / parts, n * (k + 1) / parts); });
  fn(0, n / parts);
  for (auto& t : helpers) t.join();
}

Result<Wavelet> WaveletNamed(std::string_view name) {
  for (const auto& f : Filters()) {
    if (name != f.name) continue;
    Wavelet w;
    w.dec_lo = f.dec_lo;
    const size_t n = w.dec_lo.size();
    w.dec_hi.resize(n);
    for (size_t k = 0; k < n; ++k) w.dec_hi[k] = (k % 2 == 0 ? -1.0 : 1.0) * w.dec_lo[n - 1 - k];
    w.rec_lo.assign(w.dec_lo.rbegin(), w.dec_lo.rend());
    w.rec_hi.assign(w.dec_hi.rbegin(), w.dec_hi.rend());
    return w;
  }
  std::string known;
  for (const auto& f : Filters()) known += (known.empty() ? "" : ", ") + std::string(f.name);
  return Error(StatusCode::kInvalidArgument, "wavelet '{}': not one of {}", name, known);
}

int MaxLevel(int64_t length, size_t filter_length) {
  if (filter_length < 2 || length < static_cast<int64_t>(filter_length - 1)) return 0;
  return static_cast<int>(std::floor(std::log2(static_cast<double>(length) / static_cast<double>(filter_length - 1))));
}

Decomposition Decompose(Plane image, const Wavelet& w, int levels) {
  Decomposition out;
  Plane a = std::move(image);
  for (int l = 0; l < levels; ++l) {
    Plane ylo, yhi, aa, ad, da, dd;
    ForwardY(a, w, ylo, yhi);
    ForwardX(ylo, w, aa, ad);
    ForwardX(yhi, w, da, dd);
    out.details.push_back({std::move(da), std::move(ad), std::move(dd)});
    a = std::move(aa);
  }
  std::reverse(out.details.begin(), out.details.end());
  out.approx = std::move(a);
  return out;
}

Plane Reconstruct(Decomposition d, const Wavelet& w) {
  Plane a = std::move(d.approx);
  for (auto& b : d.details) {
    a = Trimmed(std::move(a), b.h.width, b.h.height);
    Plane lo = InverseX(a, b.v, w), hi = InverseX(b.h, b.d, w);
    a = InverseY(lo, hi, w);
  }
  return a;
}

}  // namespace tessera::correct::internal

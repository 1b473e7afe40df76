#include "common/correct/gains.h"

#include <Eigen/SparseCholesky>
#include <Eigen/SparseCore>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace tessera::correct {

Result<TileGains> SolveGains(uint32_t fields, std::span<const OverlapMeans> overlaps, const GainOptions& o) {
  TileGains out;
  out.gain.assign(fields, 1.0);
  out.residual.assign(overlaps.size(), 0.0);
  out.dropped.assign(overlaps.size(), "");
  std::vector<double> measured(overlaps.size(), 0.0);
  for (size_t k = 0; k < overlaps.size(); ++k) {
    const OverlapMeans& m = overlaps[k];
    if (m.a >= fields || m.b >= fields || m.a == m.b || !std::isfinite(m.mean_a) || !std::isfinite(m.mean_b) ||
        !(m.weight >= 0 && std::isfinite(m.weight))) {
      return Error(StatusCode::kInvalidArgument, "overlap {}: fields {} and {} of {}, means {} and {}, weight {}", k, m.a,
                   m.b, fields, m.mean_a, m.mean_b, m.weight);
    }
    if (m.mean_a < o.min_mean || m.mean_b < o.min_mean || m.weight == 0) {
      out.dropped[k] = fmt::format("too dark to compare (means {:.1f} and {:.1f})", m.mean_a, m.mean_b);
      continue;
    }
    measured[k] = std::log(m.mean_b / m.mean_a);  // log g_b - log g_a
  }
  if (fields == 0) return out;
  const auto n = static_cast<Eigen::Index>(fields);
  Eigen::VectorXd x = Eigen::VectorXd::Zero(n);
  for (int round = 0; round < 64; ++round) {
    std::vector<Eigen::Triplet<double>> t;
    Eigen::VectorXd rhs = Eigen::VectorXd::Zero(n);
    double total = 0;
    for (size_t k = 0; k < overlaps.size(); ++k) {
      if (!out.dropped[k].empty()) continue;
      const auto a = static_cast<Eigen::Index>(overlaps[k].a), b = static_cast<Eigen::Index>(overlaps[k].b);
      const double w = overlaps[k].weight;
      t.emplace_back(a, a, w);
      t.emplace_back(b, b, w);
      t.emplace_back(a, b, -w);
      t.emplace_back(b, a, -w);
      rhs(b) += w * measured[k];
      rhs(a) -= w * measured[k];
      total += w;
    }
    const double pull = o.pull * std::max(total / static_cast<double>(fields), 1e-12);
    for (Eigen::Index i = 0; i < n; ++i) t.emplace_back(i, i, pull);
    Eigen::SparseMatrix<double> m(n, n);
    m.setFromTriplets(t.begin(), t.end());
    Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> solver(m);
    if (solver.info() != Eigen::Success) return Error(StatusCode::kInternal, "tile gains: the system could not be factored");
    x = solver.solve(rhs);
    // The worst overlap over both bounds goes, and the rest is solved again.
    std::vector<double> used;
    for (size_t k = 0; k < overlaps.size(); ++k) {
      out.residual[k] = std::abs(x(overlaps[k].b) - x(overlaps[k].a) - measured[k]);
      if (out.dropped[k].empty()) used.push_back(out.residual[k]);
    }
    if (used.empty()) break;
    std::nth_element(used.begin(), used.begin() + static_cast<ptrdiff_t>(used.size() / 2), used.end());
    const double median = used[used.size() / 2];
    size_t worst = overlaps.size();
    for (size_t k = 0; k < overlaps.size(); ++k) {
      if (!out.dropped[k].empty() || out.residual[k] <= o.max_log_residual || out.residual[k] <= o.relative * median) continue;
      if (worst == overlaps.size() || out.residual[k] > out.residual[worst]) worst = k;
    }
    if (worst == overlaps.size()) break;
    out.dropped[worst] = fmt::format("disagrees with the others by {:.1f} %", 100 * (std::exp(out.residual[worst]) - 1));
  }
  for (Eigen::Index i = 0; i < n; ++i) out.gain[static_cast<size_t>(i)] = std::exp(x(i));
  return out;
}

}  // namespace tessera::correct

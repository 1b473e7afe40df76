#include "common/stitch/solve.h"

#include <Eigen/SparseCholesky>
#include <Eigen/SparseCore>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tessera::stitch {
namespace {

// Groups of tiles joined by the links in use (union-find); -1 for a tile with none.
std::vector<int> Groups(size_t tiles, const std::vector<TileLink>& links, const std::vector<bool>& used) {
  std::vector<size_t> parent(tiles);
  std::iota(parent.begin(), parent.end(), size_t{0});
  auto find = [&](size_t i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
  };
  std::vector<bool> linked(tiles, false);
  for (size_t l = 0; l < links.size(); ++l) {
    if (!used[l]) continue;
    parent[find(links[l].a)] = find(links[l].b);
    linked[links[l].a] = linked[links[l].b] = true;
  }
  std::vector<int> group(tiles, -1);
  std::vector<int> id_of_root(tiles, -1);
  int next = 0;
  for (size_t i = 0; i < tiles; ++i) {
    if (!linked[i]) continue;
    const size_t r = find(i);
    if (id_of_root[r] < 0) id_of_root[r] = next++;
    group[i] = id_of_root[r];
  }
  return group;
}

}  // namespace

Result<Solution> SolvePositions(const std::vector<std::array<double, 2>>& stage, const std::vector<TileLink>& links,
                                const SolveOptions& o, const std::vector<double>& stage_z) {
  const auto n = static_cast<Eigen::Index>(stage.size());
  const bool solve_z = !stage_z.empty();
  if (solve_z && stage_z.size() != stage.size()) {
    return Error(StatusCode::kInvalidArgument, "{} stage z for {} tiles", stage_z.size(), stage.size());
  }
  for (const TileLink& l : links) {
    if (l.a >= stage.size() || l.b >= stage.size() || l.a == l.b) {
      return Error(StatusCode::kInvalidArgument, "link {}-{} names no pair of the {} tiles", l.a, l.b, stage.size());
    }
  }
  Solution s;
  s.used.resize(links.size());
  s.dropped.assign(links.size(), "");
  for (size_t l = 0; l < links.size(); ++l) {
    s.used[l] = links[l].reliable && links[l].weight > 0;
    if (!s.used[l]) s.dropped[l] = "unreliable";
  }
  s.residual.assign(links.size(), 0);
  while (true) {
    ++s.iterations;
    // Normal equations: the graph Laplacian (weights) plus the stage pull; x, y and z share it.
    std::vector<Eigen::Triplet<double>> t;
    Eigen::VectorXd bx = Eigen::VectorXd::Zero(n), by = Eigen::VectorXd::Zero(n), bz = Eigen::VectorXd::Zero(n);
    for (Eigen::Index i = 0; i < n; ++i) {
      t.emplace_back(i, i, o.stage_weight);
      bx[i] = o.stage_weight * stage[static_cast<size_t>(i)][0];
      by[i] = o.stage_weight * stage[static_cast<size_t>(i)][1];
      if (solve_z) bz[i] = o.stage_weight * stage_z[static_cast<size_t>(i)];
    }
    for (size_t l = 0; l < links.size(); ++l) {
      if (!s.used[l]) continue;
      const TileLink& k = links[l];
      const auto a = static_cast<Eigen::Index>(k.a), b = static_cast<Eigen::Index>(k.b);
      t.emplace_back(a, a, k.weight);
      t.emplace_back(b, b, k.weight);
      t.emplace_back(a, b, -k.weight);
      t.emplace_back(b, a, -k.weight);
      bx[a] -= k.weight * k.dx;
      bx[b] += k.weight * k.dx;
      by[a] -= k.weight * k.dy;
      by[b] += k.weight * k.dy;
      bz[a] -= k.weight * k.dz;
      bz[b] += k.weight * k.dz;
    }
    Eigen::SparseMatrix<double> A(n, n);
    A.setFromTriplets(t.begin(), t.end());
    Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> solver(A);
    if (solver.info() != Eigen::Success) return Error(StatusCode::kInternal, "the tile graph's system is singular");
    const Eigen::VectorXd x = solver.solve(bx), y = solver.solve(by);
    const Eigen::VectorXd z = solve_z ? Eigen::VectorXd(solver.solve(bz)) : Eigen::VectorXd::Zero(n);
    s.positions.resize(stage.size());
    for (Eigen::Index i = 0; i < n; ++i) s.positions[static_cast<size_t>(i)] = {x[i], y[i]};
    if (solve_z) s.z.assign(z.data(), z.data() + n);

    // Residuals; the worst link in use goes if it disagrees with the rest.
    std::vector<double> in_use;
    size_t worst = links.size();
    for (size_t l = 0; l < links.size(); ++l) {
      const TileLink& k = links[l];
      s.residual[l] = std::hypot(x[k.b] - x[k.a] - k.dx, y[k.b] - y[k.a] - k.dy, solve_z ? z[k.b] - z[k.a] - k.dz : 0.0);
      if (!s.used[l]) continue;
      in_use.push_back(s.residual[l]);
      if (worst == links.size() || s.residual[l] > s.residual[worst]) worst = l;
    }
    if (worst == links.size()) break;
    std::nth_element(in_use.begin(), in_use.begin() + static_cast<std::ptrdiff_t>(in_use.size() / 2), in_use.end());
    const double median = in_use[in_use.size() / 2], r = s.residual[worst];
    if (r > o.max_residual_px) {
      s.dropped[worst] = fmt::format("disagrees with the other links by {:.2f} px (limit {:.2f})", r, o.max_residual_px);
    } else if (r > o.min_outlier_px && r > o.relative * median) {
      s.dropped[worst] = fmt::format("disagrees with the other links by {:.2f} px, {:.1f} x their median", r,
                                     median > 0 ? r / median : INFINITY);
    } else {
      break;
    }
    s.used[worst] = false;
  }
  s.group = Groups(stage.size(), links, s.used);
  return s;
}

}  // namespace tessera::stitch

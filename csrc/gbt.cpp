// Gradient-boosted classification trees with scikit-learn's semantics (see gbt.h).
//
// The model (Friedman 2001, "Greedy function approximation"; scikit-learn's GradientBoostingClassifier):
//   raw_0 = prior log-odds: K = 2: log(p / (1 - p)) with p the frequency of class 1; K > 2: log(p_k) - mean log p
//   stage m, tree k: g = y_k - softmax(raw)_k (K > 2) or y - expit(raw) (K = 2), the negative gradient;
//     grow a regression tree on g (squared error, exact best split, depth 3);
//     leaf value = Newton step  sum(g) / sum(p (1 - p))  over the leaf, times (K - 1) / K for K > 2;
//     raw_k += 0.1 * leaf value.
//   Feature importance: each split adds W_node * imp_node - W_left * imp_left - W_right * imp_right (imp = the
//   node's variance of g) divided by the root weight; summed over all trees and normalised to sum 1.
//
// Split search, as scikit-learn's BestSplitter with max_features = all: for every feature, visit the node's
// samples in increasing feature value; a split position lies between consecutive values v_prev < v only if
// v > v_prev + 1e-7 in float32 arithmetic (scikit-learn's FEATURE_THRESHOLD); the threshold is
// v_prev / 2 + v / 2 in double; the criterion is the MSE proxy  S_L^2 / W_L + S_R^2 / W_R  (friedman_mse is a
// positive multiple of it plus a constant, so both pick the same split), and a candidate must beat the best so
// far strictly. scikit-learn visits the features in a random order drawn from the tree's seed, which decides
// exact ties (frequent in small nodes, where several features can cut off the same samples), and its sums
// run in the order its `samples` array holds; both are emulated (TreeGrower), so trees agree bit for bit on
// distinct feature values. A node is a leaf at max depth, below min_samples_split, when its impurity is
// <= DBL_EPSILON, when no feature has a split position, or when the split's weighted impurity decrease is below
// -DBL_EPSILON.
//
// Implementation: features are sorted once (shared by every factor, class and stage); each node keeps its
// samples sorted by every feature by stable partitioning at each split (no per-node sort), so a depth-3 tree
// costs about 3 * D * N scan steps plus 2 * D * N partition moves. The trees of one stage are independent
// (scikit-learn computes the gradient for all classes before growing them), so all trees of a stage, over every
// factor, run in parallel; sums run in a fixed order, so results do not depend on the thread count.
#include "gbt.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "common.h"

namespace fastrepr {
namespace {

constexpr double kEpsilon = std::numeric_limits<double>::epsilon();
constexpr float kFeatureThreshold = 1e-7f;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Sorted {
  std::vector<int32_t> order;  // [D][N] sample ids by increasing value (stable: ties by sample id)
  std::vector<float> values;   // [D][N] the values in that order
};

Sorted presort(const float* X, int64_t N, int64_t D, int threads) {
  Sorted s;
  s.order.resize(static_cast<size_t>(N * D));
  s.values.resize(static_cast<size_t>(N * D));
  ParallelGuard guard;
  (void)threads;
#ifdef FASTREPR_OPENMP
#pragma omp parallel for schedule(dynamic) num_threads(clamp_threads(threads))
#endif
  for (int64_t d = 0; d < D; ++d) {
    guard.run([&] {  // stable_sort may allocate its merge buffer
      int32_t* o = s.order.data() + d * N;
      std::iota(o, o + N, 0);
      std::stable_sort(o, o + N, [&](int32_t a, int32_t b) { return X[a * D + d] < X[b * D + d]; });
      float* v = s.values.data() + d * N;
      for (int64_t j = 0; j < N; ++j) v[j] = X[static_cast<int64_t>(o[j]) * D + d];
    });
  }
  guard.rethrow();
  return s;
}

// numpy's pairwise summation (np.add.reduce over a contiguous float64 array), so that leaf values, which
// scikit-learn computes with np.average, match it bit for bit.
double pairwise_sum(const double* a, int64_t n) {
  if (n < 8) {
    double res = 0.0;
    for (int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

// scikit-learn's rand_r replacement (xorshift) and rand_int, used to visit features in a random order.
inline uint32_t our_rand_r(uint32_t& seed) {
  if (seed == 0) seed = 1;
  seed ^= seed << 13;
  seed ^= seed >> 17;
  seed ^= seed << 5;
  return seed % (static_cast<uint32_t>(2147483647) + 1u);
}

struct Node {
  int32_t feature = -1, left = -1, right = -1;
  double threshold = 0.0, impurity = 0.0, weight = 0.0, value = 0.0;
  int64_t start = 0, end = 0, fill = 0;
};

struct Split {
  int32_t feature = -1;
  int64_t pos = 0;
  double threshold = 0.0, proxy = kNegInf, improvement = 0.0, impurity_left = 0.0, impurity_right = 0.0;
};

// Grows one tree the way scikit-learn's DepthFirstTreeBuilder + BestSplitter do, emulating its state: the
// `samples` array (each node's samples in the order scikit-learn holds them, which fixes the order of every
// floating-point sum), the feature permutation drawn from the tree's seed, and the constant-feature
// bookkeeping. Per-feature sorted orders are kept per node by stable partitioning (no per-node sorting): for
// distinct values they are exactly the orders scikit-learn's sort produces.
class TreeGrower {
 public:
  TreeGrower(const float* X, int64_t N, int64_t D, const Sorted& sorted, const GbtParams& p)
      : X_(X), N_(N), D_(D), sorted_(sorted), p_(p), ord_{std::vector<int32_t>(N * D), std::vector<int32_t>(N * D)},
        val_{std::vector<float>(N * D), std::vector<float>(N * D)}, samples_(N), tmp_i_(N),
        mark_(N), leaf_of_(N), features_(D), constant_(D), leaf_buf_(N), inv_(N + 1),
        block_(kBlock) {
    visit_.reserve(D);
    for (int64_t k = 1; k <= N; ++k) inv_[k] = 1.0 / static_cast<double>(k);
  }

  std::vector<Node> nodes;

  int32_t leaf_of(int64_t n) const { return leaf_of_[n]; }

  double predict(const float* x) const {
    int32_t i = 0;
    while (nodes[i].left >= 0) i = static_cast<double>(x[nodes[i].feature]) <= nodes[i].threshold ? nodes[i].left : nodes[i].right;
    return nodes[i].value;
  }

  // Grows a tree on targets g (the negative gradient) for the class indicator yk; sets Newton leaf values
  // (times newton_scale); adds the tree's importances (scikit-learn's compute_feature_importances(normalize=
  // False)) to imp[D]. Returns true if the root was split.
  bool grow(const double* g, const double* yk, double newton_scale, uint32_t seed, double* imp) {
    std::iota(samples_.begin(), samples_.end(), 0);
    std::iota(features_.begin(), features_.end(), 0);
    nodes.clear();
    seed_ = seed;
    struct Record {
      int64_t start, end;
      int depth;
      int32_t parent;
      bool is_left;
      double impurity;
      int64_t n_constant;
    };
    std::vector<Record> stack{{0, N_, 0, -1, false, std::numeric_limits<double>::infinity(), 0}};
    bool first = true;
    while (!stack.empty()) {
      const Record rec = stack.back();
      stack.pop_back();
      // criterion.init over the node's samples, in scikit-learn's order
      double w = 0.0, s = 0.0, q = 0.0;
      for (int64_t i = rec.start; i < rec.end; ++i) {
        const double y = g[samples_[i]];
        s += y;
        q += y * y;
        w += 1.0;
      }
      if (first) w_root_ = w;
      const int64_t n_node = rec.end - rec.start;
      bool is_leaf = rec.depth >= p_.max_depth || n_node < p_.min_samples_split || n_node < 2 * p_.min_samples_leaf;
      double impurity = rec.impurity;
      if (first) {
        impurity = q / w - (s / w) * (s / w);
        first = false;
      }
      is_leaf = is_leaf || impurity <= kEpsilon;
      Split split;
      split.pos = rec.end;
      int64_t n_constant = rec.n_constant;
      if (!is_leaf) {
        split = node_split(g, rec.start, rec.end, w, s, q, impurity, n_constant, rec.depth);
        is_leaf = split.pos >= rec.end || split.improvement + kEpsilon < 0.0;  // min_impurity_decrease = 0
      }
      const int32_t id = static_cast<int32_t>(nodes.size());
      Node node;
      node.impurity = impurity;
      node.weight = w;
      node.start = rec.start;
      node.end = rec.end;
      if (!is_leaf) {
        node.feature = split.feature;
        node.threshold = split.threshold;
      }
      nodes.push_back(node);
      if (rec.parent >= 0) (rec.is_left ? nodes[rec.parent].left : nodes[rec.parent].right) = id;
      if (!is_leaf) {
        stack.push_back({split.pos, rec.end, rec.depth + 1, id, false, split.impurity_right, n_constant});
        stack.push_back({rec.start, split.pos, rec.depth + 1, id, true, split.impurity_left, n_constant});
      }
    }
    // importances, in node order as scikit-learn sums them, then divided by the root weight
    std::vector<double> acc(D_, 0.0);
    for (const Node& nd : nodes) {
      if (nd.left < 0) continue;
      const Node &l = nodes[nd.left], &r = nodes[nd.right];
      acc[nd.feature] += nd.weight * nd.impurity - l.weight * l.impurity - r.weight * r.impurity;
    }
    for (int64_t d = 0; d < D_; ++d) imp[d] += acc[d] / nodes[0].weight;
    // Newton leaf values over each leaf's samples in increasing sample index, summed like np.average
    for (int32_t id = 0; id < static_cast<int32_t>(nodes.size()); ++id)
      if (nodes[id].left < 0)
        for (int64_t k = nodes[id].start; k < nodes[id].end; ++k) leaf_of_[samples_[k]] = id;
    // bucket the samples by leaf, keeping increasing sample order (a counting sort)
    for (Node& nd : nodes) nd.fill = nd.start;
    for (int64_t n = 0; n < N_; ++n) tmp_i_[nodes[leaf_of_[n]].fill++] = static_cast<int32_t>(n);
    for (Node& nd : nodes) {
      if (nd.left >= 0) continue;
      const int32_t* idx = tmp_i_.data() + nd.start;
      const int64_t m = nd.end - nd.start;
      for (int64_t i = 0; i < m; ++i) leaf_buf_[i] = g[idx[i]];
      double num = pairwise_sum(leaf_buf_.data(), m) / static_cast<double>(m);
      num *= newton_scale;
      for (int64_t i = 0; i < m; ++i) {
        const double prob = yk[idx[i]] - g[idx[i]];
        leaf_buf_[i] = prob * (1.0 - prob);
      }
      const double den = pairwise_sum(leaf_buf_.data(), m) / static_cast<double>(m);
      nd.value = std::abs(den) < 1e-150 ? 0.0 : num / den;
    }
    return nodes.size() > 1;
  }

 private:
  // scikit-learn's node_split_best with max_features = n_features, for the node samples_[start:end).
  // depth: the node's depth, which says where its per-feature orders are (see order()).
  Split node_split(const double* g, int64_t start, int64_t end, double w, double s, double q, double impurity,
                   int64_t& n_constant, int depth) {
    // 1. The features scikit-learn visits, in its order (the draws depend only on which features are
    //    constant in the node, not on what the scans find).
    const int64_t n_known = n_constant;
    int64_t f_i = D_, n_visited = 0, n_found = 0, n_drawn = 0, n_total = n_known;
    int32_t last_sorted = -1;
    visit_.clear();
    while (f_i > n_total && (n_visited < D_ || n_visited <= n_found + n_drawn)) {
      ++n_visited;
      int64_t f_j = n_drawn + static_cast<int64_t>(our_rand_r(seed_) % static_cast<uint32_t>(f_i - n_found - n_drawn));
      if (f_j < n_known) {
        std::swap(features_[n_drawn], features_[f_j]);
        ++n_drawn;
        continue;
      }
      f_j += n_found;
      const int32_t f = features_[f_j];
      last_sorted = f;
      const float* v = values(depth, f);
      if (v[end - 1] <= v[start] + kFeatureThreshold) {  // constant in this node (float32 arithmetic)
        std::swap(features_[f_j], features_[n_total]);
        ++n_found;
        ++n_total;
        continue;
      }
      --f_i;
      std::swap(features_[f_i], features_[f_j]);
      visit_.push_back(f);
    }
    // 2. Scan them in that order for the first strictly best split.
    Split best;
    best.pos = end;
    for (const int32_t f : visit_) scan(g, order(depth, f), values(depth, f), f, start, end, w, s, best);
    if (best.pos < end) {
      // samples_ as scikit-learn leaves them: sorted by the last feature it sorted, then partition_samples_final
      const int32_t* o = order(depth, last_sorted);
      std::copy(o + start, o + end, samples_.begin() + start);
      int64_t ps = start, pe = end;
      while (ps < pe) {
        if (static_cast<double>(X_[static_cast<int64_t>(samples_[ps]) * D_ + best.feature]) <= best.threshold) {
          ++ps;
        } else {
          --pe;
          std::swap(samples_[ps], samples_[pe]);
        }
      }
      // criterion.reset(); update(best.pos); children_impurity(); impurity_improvement()
      double sl = 0.0, wl = 0.0;
      if (best.pos - start <= end - best.pos) {
        for (int64_t k = start; k < best.pos; ++k) {
          sl += g[samples_[k]];
          wl += 1.0;
        }
      } else {
        sl = s;
        wl = w;
        for (int64_t k = end - 1; k >= best.pos; --k) {
          sl -= g[samples_[k]];
          wl -= 1.0;
        }
      }
      double sq_left = 0.0;
      for (int64_t k = start; k < best.pos; ++k) sq_left += g[samples_[k]] * g[samples_[k]];
      const double wr = w - wl, sr = s - sl;
      best.impurity_left = sq_left / wl - (sl / wl) * (sl / wl);
      best.impurity_right = (q - sq_left) / wr - (sr / wr) * (sr / wr);
      best.improvement = (w / w_root_) * (impurity - wr / w * best.impurity_right - wl / w * best.impurity_left);
      // every feature's order, sorted within each child, for the children: a stable partition by side
      if (depth + 1 < p_.max_depth) {
        for (int64_t k = start; k < best.pos; ++k) mark_[samples_[k]] = 1;
        for (int64_t k = best.pos; k < end; ++k) mark_[samples_[k]] = 0;
        for (int64_t f = 0; f < D_; ++f) partition(depth, f, start, best.pos, end);
      }
    }
    // constant-feature bookkeeping, as scikit-learn keeps it for the children
    std::copy(constant_.begin(), constant_.begin() + n_known, features_.begin());
    std::copy(features_.begin() + n_known, features_.begin() + n_known + n_found, constant_.begin() + n_known);
    n_constant = n_total;
    return best;
  }

  // The split positions of feature f, scanned as scikit-learn does: a running sum that moves forward one sample
  // at a time (criterion.update going forward), recomputed from the right when update takes the shorter way
  // (after a long run of tied values); best is replaced by any strictly better candidate.
  //
  // Blocks of kBlock positions without ties are first summed, and skipped when an upper bound of their proxies
  // is below the best so far: for left counts nl in [a, b] and left sums sl in [lo, hi],
  //   sl^2 / nl + (s - sl)^2 / (n - nl)  <=  max(lo^2, hi^2) / a + max((s - lo)^2, (s - hi)^2) / (n - b).
  // The sums are the same either way, so the result is too; only the evaluation work is saved. A block with a
  // tie is done sample by sample; after a block with several, so is the rest of the scan (discrete codes).
  static constexpr int64_t kBlock = 32;

  void scan(const double* g, const int32_t* o, const float* v, int32_t f, int64_t start, int64_t end, double w,
            double s, Split& best) {
    const int64_t n = end - start, msl = p_.min_samples_leaf;
    // Cheap screen with reciprocals: within 4 ulp of the exact proxy, so against the best lowered by a relative
    // 1e-14 it never rejects a candidate that the exact comparison would accept; the exact expression decides.
    double bar = best.proxy * (1.0 - 1e-14);
    auto consider = [&](int64_t p, double sl) {
      const int64_t nl = p - start;
      const double sr = s - sl;
      if (sl * sl * inv_[nl] + sr * sr * inv_[n - nl] < bar) return;
      const double wl = static_cast<double>(nl), wr = w - wl;
      const double proxy = sl * sl / wl + sr * sr / wr;
      if (proxy > best.proxy) {
        best.proxy = proxy;
        best.feature = f;
        best.pos = p;
        best.threshold = static_cast<double>(v[p - 1]) / 2.0 + static_cast<double>(v[p]) / 2.0;
        bar = proxy * (1.0 - 1e-14);
      }
    };
    bool blocks = msl == 1;
    int64_t pos = start;
    double sl = 0.0;
    double* sums = block_.data();
    for (int64_t k = start; k + 1 < end;) {
      if (!blocks) {  // the general rule for the whole scan
        for (int64_t j = k; j + 1 < end; ++j) {
          sl += g[o[j]];
          if (v[j + 1] <= v[j] + kFeatureThreshold) continue;  // not a split position
          const int64_t p = j + 1, nl = p - start;
          if (msl > 1 && (nl < msl || n - nl < msl)) continue;
          if (p - pos > end - p) {  // criterion.update from the right
            sl = s;
            for (int64_t r = end - 1; r >= p; --r) sl -= g[o[r]];
          }
          pos = p;
          consider(p, sl);
        }
        break;
      }
      const int64_t stop = std::min(k + kBlock, end - 1);  // adds samples k..stop-1; positions k+1..stop
      const double before = sl;
      double lo = std::numeric_limits<double>::infinity(), hi = -lo;
      int64_t ties = 0;
      for (int64_t j = k; j < stop; ++j) {
        sl += g[o[j]];
        sums[j - k] = sl;
        lo = std::min(lo, sl);
        hi = std::max(hi, sl);
        ties += v[j + 1] <= v[j] + kFeatureThreshold ? 1 : 0;  // float32 arithmetic
      }
      if (ties == 0 && pos == k) {  // every position a candidate, reached going forward
        const double bound = std::max(lo * lo, hi * hi) * inv_[k + 1 - start] +
                             std::max((s - lo) * (s - lo), (s - hi) * (s - hi)) * inv_[n - (stop - start)];
        if (bound * (1.0 + 1e-13) >= bar)
          for (int64_t j = k; j < stop; ++j) consider(j + 1, sums[j - k]);
        pos = stop;
      } else {  // the general rule, sample by sample, from the state before the block
        sl = before;
        for (int64_t j = k; j < stop; ++j) {
          sl += g[o[j]];
          if (v[j + 1] <= v[j] + kFeatureThreshold) continue;  // not a split position
          const int64_t p = j + 1;
          if (p - pos > end - p) {  // criterion.update from the right
            sl = s;
            for (int64_t r = end - 1; r >= p; --r) sl -= g[o[r]];
          }
          pos = p;
          consider(p, sl);
        }
        blocks = ties < 2;  // isolated equal values (float duplicates) keep the blocks; runs of ties do not
      }
      k = stop;
    }
  }

  // Per-feature orders of a node's samples: the presorted ones at the root; below, the children's orders are
  // written by their parent's split into the buffer of their depth (alternating, so a node's orders stay intact
  // while its descendants, whose ranges are inside its own, write theirs).
  const int32_t* order(int depth, int64_t f) const {
    return (depth == 0 ? sorted_.order.data() : ord_[(depth - 1) & 1].data()) + f * N_;
  }
  const float* values(int depth, int64_t f) const {
    return (depth == 0 ? sorted_.values.data() : val_[(depth - 1) & 1].data()) + f * N_;
  }

  // Stable partition of feature f's order over [start, end) into the next depth's buffer: the samples marked
  // left (there are pos - start of them) to [start, pos), the others to [pos, end). Branch-free.
  void partition(int depth, int64_t f, int64_t start, int64_t pos, int64_t end) {
    const int32_t* src_o = order(depth, f);
    const float* src_v = values(depth, f);
    int32_t* dst_o = ord_[depth & 1].data() + f * N_;
    float* dst_v = val_[depth & 1].data() + f * N_;
    int64_t left = start, right = pos;
    for (int64_t k = start; k < end; ++k) {
      const int32_t id = src_o[k];
      const int64_t goes_left = mark_[id];
      const int64_t to = goes_left ? left : right;
      dst_o[to] = id;
      dst_v[to] = src_v[k];
      left += goes_left;
      right += 1 - goes_left;
    }
  }

  const float* X_;
  int64_t N_, D_;
  const Sorted& sorted_;
  GbtParams p_;
  std::vector<int32_t> ord_[2];  // per-feature orders of depth 1, 3, ... and depth 2, 4, ... nodes
  std::vector<float> val_[2];
  std::vector<int32_t> samples_, tmp_i_;
  std::vector<uint8_t> mark_;
  std::vector<int32_t> leaf_of_;
  std::vector<int32_t> features_, constant_;
  std::vector<double> leaf_buf_, inv_;  // inv_[k] = 1 / k
  std::vector<double> block_;          // running sums of one scan block
  std::vector<int32_t> visit_;          // features of the current node, in scikit-learn's visit order
  uint32_t seed_ = 0;
  double w_root_ = 0.0;
};

struct Factor {
  int64_t K, columns, offset;  // classes, raw columns, first raw column
};

// Negative gradient of the log loss for samples [lo, hi) of one factor, into g[columns][N].
void negative_gradient(const int64_t* labels, int64_t N, int64_t F, int64_t f, const Factor& fac,
                       const double* raw, double* g, int64_t lo, int64_t hi) {
  if (fac.K == 2) {
    for (int64_t n = lo; n < hi; ++n) {
      const double y = labels[n * F + f] == 1 ? 1.0 : 0.0, r = raw[n];
      // scikit-learn's stable expit(r) - y, negated
      g[n] = r > -37.0 ? -(((1.0 - y) - y * std::exp(-r)) / (1.0 + std::exp(-r))) : -(std::exp(r) - y);
    }
    return;
  }
  const int64_t K = fac.K;
  std::vector<double> e(K);
  for (int64_t n = lo; n < hi; ++n) {
    double mx = raw[n];
    for (int64_t k = 1; k < K; ++k) mx = std::max(mx, raw[k * N + n]);
    double total = 0.0;
    for (int64_t k = 0; k < K; ++k) {
      e[k] = std::exp(raw[k * N + n] - mx);
      total += e[k];
    }
    const int64_t y = labels[n * F + f];
    for (int64_t k = 0; k < K; ++k) g[k * N + n] = -(e[k] / total - (y == k ? 1.0 : 0.0));
  }
}

}  // namespace

void gbt_fit_predict(const float* X, int64_t N, int64_t D, const int64_t* labels, int64_t F,
                     const int64_t* n_classes, const double* init, const uint32_t* seeds, const float* Xt, int64_t M,
                     const GbtParams& params, double* importances, double* raw_train, double* raw_test,
                     int num_threads) {
  int threads = clamp_threads(num_threads);
  std::vector<Factor> factors(F);
  int64_t C = 0;
  for (int64_t f = 0; f < F; ++f) {
    factors[f] = {n_classes[f], gbt_columns(n_classes[f]), C};
    C += factors[f].columns;
  }
  // (factor, column) pairs that grow trees, and (factor, sample block) pairs for the gradients
  std::vector<std::pair<int64_t, int64_t>> tasks, blocks;
  constexpr int64_t kBlock = 2048;
  for (int64_t f = 0; f < F; ++f) {
    if (factors[f].K < 2) continue;
    for (int64_t t = 0; t < factors[f].columns; ++t) tasks.emplace_back(f, t);
    for (int64_t lo = 0; lo < N; lo += kBlock) blocks.emplace_back(f, lo);
  }
  for (int64_t c = 0; c < C; ++c) {
    std::fill(raw_train + c * N, raw_train + (c + 1) * N, init[c]);
    std::fill(raw_test + c * M, raw_test + (c + 1) * M, init[c]);
  }
  std::fill(importances, importances + F * D, 0.0);
  if (tasks.empty() || N == 0) return;

  const Sorted sorted = presort(X, N, D, threads);
  std::vector<double> grad(static_cast<size_t>(C * N), 0.0);
  const int64_t n_tasks = static_cast<int64_t>(tasks.size()), n_blocks = static_cast<int64_t>(blocks.size());
  // importances of every tree, summed in (stage, factor, class) order at the end: no serial step per stage
  std::vector<double> tree_imp(static_cast<size_t>(params.n_estimators * n_tasks * D), 0.0);
  std::vector<char> tree_split(static_cast<size_t>(params.n_estimators * n_tasks), 0);
  // A stage costs about n_tasks * 3 * N * D steps; below ~1e6 a thread team costs more than it saves (and
  // each barrier can stall for a scheduler tick on a busy machine).
  if (static_cast<double>(n_tasks) * 3.0 * static_cast<double>(N * D) < 1e6) threads = 1;

  // Each thread's TreeGrower allocates O(N * D) scratch inside the region: failures are kept by the guard and
  // rethrown after it (an exception escaping an OpenMP region would terminate the process).
  ParallelGuard guard;
#ifdef FASTREPR_OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    std::unique_ptr<TreeGrower> grower;
    std::vector<double> yk;
    guard.run([&] {
      grower = std::make_unique<TreeGrower>(X, N, D, sorted, params);
      yk.resize(N);
    });
    for (int64_t stage = 0; stage < params.n_estimators; ++stage) {
#ifdef FASTREPR_OPENMP
#pragma omp for schedule(dynamic)
#endif
      for (int64_t b = 0; b < n_blocks; ++b) {
        guard.run([&] {
          const auto [f, lo] = blocks[b];
          const Factor& fac = factors[f];
          negative_gradient(labels, N, F, f, fac, raw_train + fac.offset * N, grad.data() + fac.offset * N, lo,
                            std::min(lo + kBlock, N));
        });
      }
      // (implicit barrier: every gradient of the stage is ready before any tree grows)
#ifdef FASTREPR_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
      for (int64_t task = 0; task < n_tasks; ++task) {
        if (!grower) continue;  // this thread's scratch failed to allocate: the guard holds the error
        guard.run([&] {
          const auto [f, t] = tasks[task];
          const Factor& fac = factors[f];
          const int64_t target = fac.K == 2 ? 1 : t;
          for (int64_t n = 0; n < N; ++n) yk[n] = labels[n * F + f] == target ? 1.0 : 0.0;
          double* imp = tree_imp.data() + (stage * n_tasks + task) * D;
          const double* g = grad.data() + (fac.offset + t) * N;
          const double scale = fac.K > 2 ? static_cast<double>(fac.K - 1) / static_cast<double>(fac.K) : 1.0;
          tree_split[stage * n_tasks + task] =
              grower->grow(g, yk.data(), scale, seeds[stage * C + fac.offset + t], imp);
          double* raw = raw_train + (fac.offset + t) * N;
          for (int64_t n = 0; n < N; ++n) raw[n] += params.learning_rate * grower->nodes[grower->leaf_of(n)].value;
          double* rt = raw_test + (fac.offset + t) * M;
          for (int64_t m = 0; m < M; ++m) rt[m] += params.learning_rate * grower->predict(Xt + m * D);
        });
      }
    }
  }
  guard.rethrow();
  std::vector<double> imp_sum(F * D, 0.0);
  for (int64_t tree = 0; tree < params.n_estimators * n_tasks; ++tree) {
    if (!tree_split[tree]) continue;
    const int64_t f = tasks[tree % n_tasks].first;
    for (int64_t d = 0; d < D; ++d) imp_sum[f * D + d] += tree_imp[tree * D + d];
  }
  for (int64_t f = 0; f < F; ++f) {
    double total = 0.0;
    for (int64_t d = 0; d < D; ++d) total += imp_sum[f * D + d];
    if (total > 0.0)
      for (int64_t d = 0; d < D; ++d) importances[f * D + d] = imp_sum[f * D + d] / total;
  }
}

}  // namespace fastrepr

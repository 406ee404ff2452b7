// fastrepr._C: disentanglement evaluation (issue 6): histogram mutual information (csrc/mutual_info.h),
// scikit-learn-equivalent gradient boosting (csrc/gbt.h), the dSprites renderer (csrc/dsprites.h) and numpy's
// legacy randint replayed from raw draws (csrc/sampling.h); and one tile of the fused silhouette of the
// representation-diagnostics issue (csrc/silhouette.h).
#include <algorithm>
#include <cmath>
#include <limits>

#include "bind_areas.h"
#include "bind_common.h"
#include "dsprites.h"
#include "gbt.h"
#include "mutual_info.h"
#include "sampling.h"
#include "silhouette.h"

namespace fastrepr::bind {
namespace {

template <typename T>
bool all_finite(const T* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

void histogram_mi(const py::buffer& x, const py::buffer& edges, const py::object& labels, const py::buffer& out_,
                  int64_t num_labels, const std::string& dtype, int threads) {
  check_threads(threads);
  dispatch<Float32, Float64>(dtype, [&](auto d) {
    using T = typename decltype(d)::T;
    View xv = in<T>(x, "x", 2), ev = in<T>(edges, "edges", 2), ov = out<double>(out_, "out", 2);
    const int64_t N = xv.shape[0], D = xv.shape[1], B = ev.shape[1];
    require(ev.shape[0] == D, "edges must have shape [D, B] with D = x.shape[1]");
    View lv{nullptr, {0, D}};
    const int64_t* lp =
        optional_in<int64_t>(labels, "labels", 2, N, "labels must have shape [N, F] with N = x.shape[0]", &lv);
    const int64_t F = lv.shape[1];
    require(!lp || num_labels >= 1, "num_labels must be at least 1");
    require(ov.shape[0] == D && ov.shape[1] == F, "out must have shape [D, F]");
    // Sizes that allocate: one (B + 1) x K count table per thread, K = num_labels (or B + 1 without labels).
    require(B <= kHistogramMaxBins, [&] {
      return "edges: at most " + std::to_string(kHistogramMaxBins) + " bins per column, got " + std::to_string(B);
    });
    const int64_t K = lp ? num_labels : B + 1;
    require(K <= kHistogramMaxTable / (B + 1), [&] {
      return "num_labels: the (B + 1) x num_labels count table would exceed " + std::to_string(kHistogramMaxTable) +
             " entries (B = " + std::to_string(B) + ", num_labels = " + std::to_string(K) +
             "); relabel the labels densely";
    });
    run_checked([&] {
      return histogram_mutual_info<T>(xv.as<const T>(), N, D, ev.as<const T>(), B, lp, F, num_labels,
                                      ov.as<double>(), threads);
    }, "labels outside [0, num_labels)");
  });
}

void gbt_fit_predict(const py::buffer& x, const py::buffer& labels, const py::buffer& n_classes,
                     const py::buffer& init, const py::buffer& seeds, const py::buffer& x_test,
                     const py::buffer& importances, const py::buffer& raw_train, const py::buffer& raw_test,
                     int64_t n_estimators, double learning_rate, int max_depth, int64_t min_samples_split,
                     int64_t min_samples_leaf, int threads) {
  check_threads(threads);
  View xv = in<float>(x, "x", 2), lv = in<int64_t>(labels, "labels", 2);
  View kv = in<int64_t>(n_classes, "n_classes", 1), tv = in<float>(x_test, "x_test", 2);
  View iv = out<double>(importances, "importances", 2);
  View rv = out<double>(raw_train, "raw_train", 2), sv = out<double>(raw_test, "raw_test", 2);
  const int64_t N = xv.shape[0], D = xv.shape[1], F = lv.shape[1], M = tv.shape[0];
  require(lv.shape[0] == N, "labels must have shape [N, F]");
  require(kv.shape[0] == F, "n_classes must have shape [F]");
  require(tv.shape[1] == D, "x_test must have shape [M, D]");
  require(max_depth >= 1 && max_depth <= 14, "max_depth must be in [1, 14]");
  require(n_estimators >= 0 && min_samples_split >= 2 && min_samples_leaf >= 1,
          "need n_estimators >= 0, min_samples_split >= 2, min_samples_leaf >= 1");
  require(learning_rate > 0 && std::isfinite(learning_rate),
          [&] { return "learning_rate must be finite and > 0, got " + std::to_string(learning_rate); });
  require(N <= std::numeric_limits<int32_t>::max(), "x: at most 2**31 - 1 samples (int32 ids)");
  // Values beyond N + 1 mean the same as N + 1 (no node can be split), and keep 2 * min_samples_leaf from
  // overflowing in the tree builder.
  min_samples_split = std::min<int64_t>(min_samples_split, N + 1);
  min_samples_leaf = std::min<int64_t>(min_samples_leaf, N + 1);
  // NaN breaks the strict weak ordering std::stable_sort needs (undefined behaviour), so features are checked.
  require(all_finite(xv.as<const float>(), N * D), "x contains NaN or Inf");
  require(all_finite(tv.as<const float>(), M * D), "x_test contains NaN or Inf");
  const int64_t* k = kv.as<const int64_t>();
  const int64_t* y = lv.as<const int64_t>();
  int64_t C = 0;
  for (int64_t f = 0; f < F; ++f) {
    // labels are encoded 0..K-1 of the classes present, so K <= N; the bound also keeps C from overflowing
    require(k[f] >= 1 && k[f] <= std::max<int64_t>(N, 1), [&] {
      return "n_classes must lie in [1, N] (N = " + std::to_string(N) + "), got " + std::to_string(k[f]);
    });
    C += gbt_columns(k[f]);
  }
  for (int64_t i = 0; i < N * F; ++i) require(y[i] >= 0 && y[i] < k[i % F], "labels outside [0, n_classes)");
  require(iv.shape[0] == F && iv.shape[1] == D, "importances must have shape [F, D]");
  require(rv.shape[0] == C && rv.shape[1] == N, "raw_train must have shape [C, N]");
  View initv = in<double>(init, "init", 1), seedv = in<uint32_t>(seeds, "seeds", 2);
  require(initv.shape[0] == C, "init must have shape [C]");
  require(all_finite(initv.as<const double>(), C), "init contains NaN or Inf");
  require(seedv.shape[0] == n_estimators && seedv.shape[1] == C, "seeds must have shape [n_estimators, C]");
  require(sv.shape[0] == C && sv.shape[1] == M, "raw_test must have shape [C, M]");
  GbtParams p;
  p.n_estimators = n_estimators;
  p.learning_rate = learning_rate;
  p.max_depth = max_depth;
  p.min_samples_split = min_samples_split;
  p.min_samples_leaf = min_samples_leaf;
  without_gil([&] {
    fastrepr::gbt_fit_predict(xv.as<const float>(), N, D, y, F, k, initv.as<const double>(),
                              seedv.as<const uint32_t>(), tv.as<const float>(), M, p, iv.as<double>(),
                              rv.as<double>(), sv.as<double>(), threads);
  });
}

void dsprites_render(const py::buffer& patches, const py::buffer& patch, const py::buffer& row0,
                     const py::buffer& col0, const py::buffer& out_, const std::string& dtype, int threads) {
  check_threads(threads);
  View pv = in<uint8_t>(patches, "patches", 3);
  View iv = in<int64_t>(patch, "patch", 1), rv = in<int64_t>(row0, "row0", 1), cv = in<int64_t>(col0, "col0", 1);
  const int64_t n = iv.shape[0];
  require(rv.shape[0] == n && cv.shape[0] == n, "patch, row0 and col0 must have the same length");
  dispatch<UInt8, Float32>(dtype, [&](auto d) {
    using T = typename decltype(d)::T;
    View ov = out<T>(out_, "out", 3);
    require(ov.shape[0] == n, "out must have shape [n, H, W]");
    require(pv.shape[1] == pv.shape[2], "patches must have shape [P, S, S]");
    // Offsets are clipped to the canvas; beyond [-S, H] x [-S, W] a patch cannot touch it, and offsets near
    // +-2**63 would overflow the clipping arithmetic (row0 = -2**63 wrote outside the image).
    const int64_t S = pv.shape[1], H = ov.shape[1], W = ov.shape[2];
    const int64_t* r = rv.as<const int64_t>();
    const int64_t* c = cv.as<const int64_t>();
    auto outside = [&](const char* name, int64_t i, int64_t v, const char* hi, int64_t bound) {
      return std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(v) + " lies outside [-S, " + hi +
             "] = [" + std::to_string(-S) + ", " + std::to_string(bound) + "]";
    };
    for (int64_t i = 0; i < n; ++i) {
      require(r[i] >= -S && r[i] <= H, [&] { return outside("row0", i, r[i], "H", H); });
      require(c[i] >= -S && c[i] <= W, [&] { return outside("col0", i, c[i], "W", W); });
    }
    run_checked([&] {
      return fastrepr::dsprites_render<T>(pv.as<const uint8_t>(), pv.shape[0], pv.shape[1], iv.as<const int64_t>(),
                                          r, c, n, ov.as<T>(), ov.shape[1], ov.shape[2], threads);
    }, [&] { return "patch index out of range [0, " + std::to_string(pv.shape[0]) + ")"; });
  });
}

int64_t legacy_randint(const py::buffer& raw, const py::buffer& highs, const py::buffer& counts,
                       const py::buffer& out_) {
  View rv = in<uint32_t>(raw, "raw", 1), hv = in<int64_t>(highs, "highs", 1);
  View cv = in<int64_t>(counts, "counts", 1), ov = out<int64_t>(out_, "out", 1);
  require(cv.shape[0] == hv.shape[0], "highs and counts must have the same length");
  const int64_t* h = hv.as<const int64_t>();
  const int64_t* c = cv.as<const int64_t>();
  const int64_t capacity = ov.shape[0];
  int64_t total = 0;
  for (int64_t i = 0; i < hv.shape[0]; ++i) {
    require(h[i] >= 1 && h[i] <= (int64_t(1) << 32), "highs must lie in [1, 2**32]");
    require(c[i] >= 0, "counts must be non-negative");
    // compared before adding, so that huge counts cannot wrap the sum around to len(out)
    require(c[i] <= capacity - total, "out must have sum(counts) entries (counts sum to more)");
    total += c[i];
  }
  require(capacity == total, "out must have sum(counts) entries");
  return without_gil([&] {
    return fastrepr::legacy_randint(rv.as<const uint32_t>(), rv.shape[0], h, c, hv.shape[0], ov.as<int64_t>());
  });
}

}  // namespace

void silhouette_sums_binding(const py::buffer& z, const py::buffer& order, const py::buffer& labels,
                             const py::buffer& groups, const py::buffer& sums, double exact_below, int64_t block,
                             int blas, int threads) {
  check_threads(threads);
  View zv = in<float>(z, "z", 2), ov = in<int64_t>(order, "order", 1), lv = in<int64_t>(labels, "labels", 1);
  View gv = in<int64_t>(groups, "groups", 2), sv = out<double>(sums, "sums", 2);
  const int64_t N = zv.shape[0];
  require(ov.shape[0] == N && lv.shape[0] == N, "order [N] and labels [N] must have the N rows of z [N, D]");
  require(sv.shape[0] == N, "sums [N, C] must have the N rows of z");
  require(gv.shape[1] == 3, "groups must have shape [G, 3] (start, end, label)");
  require(block >= 1, "block must be >= 1");
  require(std::isfinite(exact_below) && exact_below >= 0, "exact_below must be finite and >= 0");
  fastrepr::SilhouetteGemm g;
  if (blas != 0) {
    fastrepr::ScanPlan plan{};
    require(fastrepr::topk_blas_lookup(blas, plan) && plan.gemm != nullptr,
            [&] { return "blas: no registered float32 sgemm with handle " + std::to_string(blas); });
    g.gemm = plan.gemm;
    g.set_threads = plan.set_threads;
  }
  const fastrepr::SilhouetteProblem p{zv.as<const float>(), N, zv.shape[1], ov.as<const int64_t>(),
                                      lv.as<const int64_t>(), sv.shape[1], block, gv.as<const int64_t>(),
                                      gv.shape[0], static_cast<float>(exact_below)};
  const char* why = "";
  without_gil([&] { why = fastrepr::silhouette_sums(p, g, sv.as<double>(), threads); });
  require(*why == '\0', why);
}

void register_disentanglement(py::module_& m) {
  m.def("histogram_mutual_info", &histogram_mi, py::arg("x"), py::arg("edges"), py::arg("labels"), py::arg("out"),
        py::arg("num_labels"), py::arg("dtype"), py::arg("threads") = 0,
        "out[d, f] = MI(digitize(x[:, d], edges[d]), labels[:, f]) in nats (labels None: the bins of column f)");
  m.def("gbt_fit_predict", &gbt_fit_predict, py::arg("x"), py::arg("labels"), py::arg("n_classes"),
        py::arg("init"), py::arg("seeds"), py::arg("x_test"), py::arg("importances"), py::arg("raw_train"),
        py::arg("raw_test"), py::arg("n_estimators") = 100, py::arg("learning_rate") = 0.1, py::arg("max_depth") = 3,
        py::arg("min_samples_split") = 2, py::arg("min_samples_leaf") = 1, py::arg("threads") = 0,
        "scikit-learn-equivalent gradient-boosted classifiers, one per label column: importances and raw scores");
  m.def("dsprites_render", &dsprites_render, py::arg("patches"), py::arg("patch"), py::arg("row0"), py::arg("col0"),
        py::arg("out"), py::arg("dtype"), py::arg("threads") = 0,
        "out[i] = zeros with patches[patch[i]] copied at (row0[i], col0[i]) (out: [n, H, W] uint8 or float32)");
  m.def("silhouette_sums", &silhouette_sums_binding, py::arg("z"), py::arg("order"), py::arg("labels"),
        py::arg("groups"), py::arg("sums"), py::arg("exact_below"), py::arg("block"), py::arg("blas") = 0,
        py::arg("threads") = 0,
        "sums [N, C] (label order) += the euclidean distance sums of the fused silhouette (csrc/silhouette.h); "
        "blas: a topk_blas_register handle, 0: loops");
  m.attr("HISTOGRAM_MAX_BINS") = kHistogramMaxBins;
  m.attr("HISTOGRAM_MAX_TABLE") = kHistogramMaxTable;
  m.def("legacy_randint", &legacy_randint, py::arg("raw"), py::arg("highs"), py::arg("counts"), py::arg("out"),
        "numpy RandomState.randint(highs[c], size=counts[c]) for every c, replayed from raw 32-bit draws; "
        "returns the number of draws used, or -1 if raw ran out");
}

}  // namespace fastrepr::bind

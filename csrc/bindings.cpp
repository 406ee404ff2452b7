// The single pybind11 module fastrepr._C: one m.def per native entry point.
// Arguments are buffers (numpy arrays over torch tensors' memory, no copies); 16-bit floats come as their raw
// int16 bits with the real dtype named in `dtype`. Shapes, item sizes and contiguity are checked here, so a
// direct caller gets a ValueError rather than an out-of-bounds read. Kernels run with the GIL released.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common.h"
#include "dsprites.h"
#include "gbt.h"
#include "mutual_info.h"
#include "pairwise.h"
#include "topk.h"
#include "sampling.h"
#include "hierarchical_softmax.h"
#include "negative_sampling.h"
#include "word2vec.h"

namespace py = pybind11;
using fastrepr::bf16;
using fastrepr::fp16;

namespace {

struct View {
  void* ptr;
  std::vector<py::ssize_t> shape;
};

View view(const py::buffer& buf, const char* name, py::ssize_t itemsize, int ndim, bool writable) {
  py::buffer_info info = buf.request(writable);
  if (info.itemsize != itemsize)
    throw py::value_error(std::string(name) + ": expected items of " + std::to_string(itemsize) + " bytes, got " +
                          std::to_string(info.itemsize));
  if (info.ndim != ndim)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(ndim) + " dimensions, got " +
                          std::to_string(info.ndim));
  py::ssize_t expected = itemsize;
  for (int k = ndim - 1; k >= 0; --k) {
    if (info.shape[k] > 1 && info.strides[k] != expected)
      throw py::value_error(std::string(name) + ": must be C-contiguous");
    expected *= info.shape[k];
  }
  return {info.ptr, info.shape};
}

// Calls f(T*, Acc*) tag objects for the storage type named by `dtype`.
template <typename F>
void dispatch_float(const std::string& dtype, F&& f) {
  if (dtype == "float32") f(static_cast<float*>(nullptr), static_cast<float*>(nullptr));
  else if (dtype == "float64") f(static_cast<double*>(nullptr), static_cast<double*>(nullptr));
  else if (dtype == "bfloat16") f(static_cast<bf16*>(nullptr), static_cast<float*>(nullptr));
  else if (dtype == "float16") f(static_cast<fp16*>(nullptr), static_cast<float*>(nullptr));
  else throw py::type_error("unsupported dtype '" + dtype + "' (expected float32, float64, bfloat16 or float16)");
}

void require_same(const View& a, const View& b, const char* na, const char* nb) {
  if (a.shape != b.shape) throw py::value_error(std::string(na) + " and " + nb + " must have the same shape");
}

// threads: 0 means OpenMP's default. A count beyond kMaxThreads is a caller's bug, not a request: OpenMP would
// try to start that many threads (each with its own stack) and abort when it cannot.
constexpr int kMaxThreads = 1024;

void check_threads(int threads) {
  if (threads < 0 || threads > kMaxThreads)
    throw py::value_error("threads must lie in [0, " + std::to_string(kMaxThreads) + "] (0: OpenMP's default), got " +
                          std::to_string(threads));
}

template <typename T>
bool all_finite(const T* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

void pairwise_dense(const py::buffer& z1, const py::buffer& z2, const py::buffer& out, const std::string& dtype,
                    int threads) {
  check_threads(threads);
  dispatch_float(dtype, [&](auto* t_tag, auto* acc_tag) {
    using T = std::remove_pointer_t<decltype(t_tag)>;
    using Acc = std::remove_pointer_t<decltype(acc_tag)>;
    View a = view(z1, "z1", sizeof(T), 3, false), b = view(z2, "z2", sizeof(T), 3, false);
    View o = view(out, "out", sizeof(Acc), 2, true);
    require_same(a, b, "z1", "z2");
    const int64_t P = a.shape[0], B = a.shape[1], D = a.shape[2];
    if (o.shape[0] != P || o.shape[1] != D) throw py::value_error("out must have shape [P, D]");
    if (B == 0) throw py::value_error("z1: B (pairs per point) must be at least 1");
    py::gil_scoped_release nogil;
    fastrepr::pairwise_abs_diff_mean_dense<T, Acc>(static_cast<const T*>(a.ptr), static_cast<const T*>(b.ptr),
                                                   static_cast<Acc*>(o.ptr), P, B, D, threads);
  });
}

void pairwise_index(const py::buffer& z, const py::buffer& i, const py::buffer& j, const py::buffer& out,
                    const std::string& dtype, int threads) {
  check_threads(threads);
  dispatch_float(dtype, [&](auto* t_tag, auto* acc_tag) {
    using T = std::remove_pointer_t<decltype(t_tag)>;
    using Acc = std::remove_pointer_t<decltype(acc_tag)>;
    View zv = view(z, "z", sizeof(T), 2, false);
    View iv = view(i, "i", sizeof(int64_t), 2, false), jv = view(j, "j", sizeof(int64_t), 2, false);
    View o = view(out, "out", sizeof(Acc), 2, true);
    require_same(iv, jv, "i", "j");
    const int64_t N = zv.shape[0], D = zv.shape[1], P = iv.shape[0], B = iv.shape[1];
    if (o.shape[0] != P || o.shape[1] != D) throw py::value_error("out must have shape [P, D]");
    if (B == 0) throw py::value_error("i: B (pairs per point) must be at least 1");
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = fastrepr::pairwise_abs_diff_mean_index<T, Acc>(
          static_cast<const T*>(zv.ptr), N, D, static_cast<const int64_t*>(iv.ptr),
          static_cast<const int64_t*>(jv.ptr), P, B, static_cast<Acc*>(o.ptr), threads);
    }
    if (!ok) throw py::value_error("pair index out of range [0, " + std::to_string(N) + ")");
  });
}

void topk_merge(const py::buffer& S, const py::buffer& rows, const py::buffer& scale, int mode,
                const py::buffer& excl, int64_t col0, const py::buffer& top_v, const py::buffer& top_i, int threads) {
  View s = view(S, "S", sizeof(float), 2, false), r = view(rows, "rows", sizeof(int64_t), 2, false);
  View sc = view(scale, "scale", sizeof(float), 1, false), ex = view(excl, "excl", sizeof(int64_t), 2, false);
  View tv = view(top_v, "top_v", sizeof(float), 2, true), ti = view(top_i, "top_i", sizeof(int64_t), 2, true);
  const int64_t Q = r.shape[0], K = tv.shape[1];
  if (r.shape[1] != 3) throw py::value_error("rows must have shape [Q, 3]");
  if (sc.shape[0] != Q || ex.shape[0] != Q || tv.shape[0] != Q || ti.shape != tv.shape)
    throw py::value_error("scale [Q], excl [Q, E], top_v and top_i [Q, K] must agree with rows [Q, 3]");
  if (K < 1) throw py::value_error("top_v: K must be at least 1");
  if (mode < 0 || mode > 2) throw py::value_error("mode must be 0 (search), 1 (3CosAdd) or 2 (3CosMul)");
  bool ok;
  {
    py::gil_scoped_release nogil;
    ok = fastrepr::topk_merge(static_cast<const float*>(s.ptr), s.shape[0], s.shape[1],
                              static_cast<const int64_t*>(r.ptr), static_cast<const float*>(sc.ptr), mode,
                              static_cast<const int64_t*>(ex.ptr), ex.shape[1], col0, Q, K,
                              static_cast<float*>(tv.ptr), static_cast<int64_t*>(ti.ptr), threads);
  }
  if (!ok) throw py::value_error("rows: an entry is outside [0, " + std::to_string(s.shape[0]) + ") (rows of S)");
}

// Exact search (topk.h): candidate scan, float64 refinement, BLAS registry. Sizes are checked against the
// data before anything is allocated: K <= R, tiles and lists below fixed bounds.
void topk_scan(const py::buffer& q, const py::buffer& v, const py::object& vsq, int64_t K, int blas,
               int64_t block_q, int64_t block_v, const py::buffer& out_v, const py::buffer& out_i, int threads) {
  View qv = view(q, "queries", sizeof(float), 2, false), vv = view(v, "vectors", sizeof(float), 2, false);
  View ov = view(out_v, "out_v", sizeof(float), 2, true), oi = view(out_i, "out_i", sizeof(int64_t), 2, true);
  const int64_t Q = qv.shape[0], D = qv.shape[1], R = vv.shape[0];
  if (vv.shape[1] != D) throw py::value_error("vectors must have as many columns as queries");
  if (R < 1 || D < 1) throw py::value_error("vectors must have shape [R, D] with R, D >= 1");
  if (K < 1 || K > R) throw py::value_error("K must lie in [1, R] (R = rows of vectors)");
  if (ov.shape[0] != Q || ov.shape[1] != K || oi.shape != ov.shape)
    throw py::value_error("out_v and out_i must have shape [Q, K]");
  if (block_q < 1 || block_v < 1 || block_q > (1 << 16) || block_v > (1 << 16) || block_q * block_v > (1 << 24))
    throw py::value_error("block_q and block_v must lie in [1, 65536] with block_q * block_v <= 2^24");
  // lists: Q x (row ranges, at most 2 * threads) x 2K entries of 16 bytes, at most 2^30 entries (16 GB)
  const int64_t ranges = 2 * fastrepr::clamp_threads(threads);
  if (Q > 0 && 2 * K > (int64_t(1) << 30) / (Q * ranges))
    throw py::value_error("K: Q * K * threads is too large for one call (lists of 16 GB): split the queries");
  const float* vsq_ptr = nullptr;
  if (!vsq.is_none()) {
    View sv = view(vsq.cast<py::buffer>(), "vsq", sizeof(float), 1, false);
    if (sv.shape[0] != R) throw py::value_error("vsq must have shape [R]");
    vsq_ptr = static_cast<const float*>(sv.ptr);
  }
  fastrepr::ScanPlan plan{nullptr, nullptr, nullptr, block_q, block_v, threads};
  if (blas != 0 && !fastrepr::topk_blas_lookup(blas, plan))
    throw py::value_error("blas: unknown handle " + std::to_string(blas) + " (0 = built-in kernel)");
  fastrepr::ScanProblem prob{static_cast<const float*>(qv.ptr), Q, D, static_cast<const float*>(vv.ptr), R, D, D,
                             vsq_ptr, K};
  py::gil_scoped_release nogil;
  if (Q > 0) fastrepr::topk_scan(prob, plan, static_cast<float*>(ov.ptr), static_cast<int64_t*>(oi.ptr));
}

void topk_refine(const py::buffer& x, const py::buffer& v, const py::buffer& cand, const py::object& scale,
                 const py::buffer& approx, const py::buffer& bound, const py::buffer& excl, bool l2,
                 const py::buffer& out_v, const py::buffer& out_i, const py::buffer& ok, int threads) {
  View xv = view(x, "x", sizeof(double), 2, false), vv = view(v, "vectors", sizeof(float), 2, false);
  View cv = view(cand, "cand", sizeof(int64_t), 2, false), ev = view(excl, "excl", sizeof(int64_t), 2, false);
  View av = view(approx, "approx", sizeof(double), 2, false), bv = view(bound, "bound", sizeof(double), 1, false);
  View ov = view(out_v, "out_v", sizeof(float), 2, true), oi = view(out_i, "out_i", sizeof(int64_t), 2, true);
  View okv = view(ok, "ok", 1, 1, true);
  const int64_t Q = xv.shape[0], D = xv.shape[1], R = vv.shape[0], k = ov.shape[1];
  if (vv.shape[1] != D || R < 1) throw py::value_error("vectors must have shape [R, D] with D = x.shape[1]");
  if (cv.shape[0] != Q || cv.shape[1] < 1) throw py::value_error("cand must have shape [Q, Kc] with Kc >= 1");
  if (ev.shape[0] != Q || av.shape != cv.shape || bv.shape[0] != Q || okv.shape[0] != Q)
    throw py::value_error("excl [Q, E], approx [Q, Kc], bound [Q] and ok [Q] must agree with x [Q, D], cand [Q, Kc]");
  if (k < 1 || ov.shape[0] != Q || oi.shape != ov.shape)
    throw py::value_error("out_v and out_i must have shape [Q, k] with k >= 1");
  const double* scale_ptr = nullptr;
  if (!scale.is_none()) {
    View sv = view(scale.cast<py::buffer>(), "scale", sizeof(double), 1, false);
    if (sv.shape[0] != Q) throw py::value_error("scale must have shape [Q]");
    scale_ptr = static_cast<const double*>(sv.ptr);
  }
  fastrepr::RefineProblem prob{static_cast<const double*>(xv.ptr), Q, D, static_cast<const float*>(vv.ptr), R, D,
                               static_cast<const int64_t*>(cv.ptr), cv.shape[1], scale_ptr,
                               static_cast<const double*>(av.ptr), static_cast<const double*>(bv.ptr),
                               static_cast<const int64_t*>(ev.ptr), ev.shape[1], l2, k};
  bool good;
  {
    py::gil_scoped_release nogil;
    good = fastrepr::topk_refine(prob, static_cast<float*>(ov.ptr), static_cast<int64_t*>(oi.ptr),
                                 static_cast<uint8_t*>(okv.ptr), threads);
  }
  if (!good) throw py::value_error("cand: an entry is outside [-1, " + std::to_string(R) + ")");
}

py::tuple topk_blas_register(const std::string& library, bool bf16) {
  std::string why;
  const int handle = fastrepr::topk_blas_register(library, bf16, why);
  return py::make_tuple(handle, why);
}

// ---- disentanglement evaluation (issue 6): histogram mutual information, gradient boosting, dSprites ----

void histogram_mi(const py::buffer& x, const py::buffer& edges, const py::object& labels, const py::buffer& out,
                  int64_t num_labels, const std::string& dtype, int threads) {
  check_threads(threads);
  auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    View xv = view(x, "x", sizeof(T), 2, false), ev = view(edges, "edges", sizeof(T), 2, false);
    View ov = view(out, "out", sizeof(double), 2, true);
    const int64_t N = xv.shape[0], D = xv.shape[1], B = ev.shape[1];
    if (ev.shape[0] != D) throw py::value_error("edges must have shape [D, B] with D = x.shape[1]");
    const int64_t* lp = nullptr;
    int64_t F = D;
    if (!labels.is_none()) {
      View lv = view(labels.cast<py::buffer>(), "labels", sizeof(int64_t), 2, false);
      if (lv.shape[0] != N) throw py::value_error("labels must have shape [N, F] with N = x.shape[0]");
      lp = static_cast<const int64_t*>(lv.ptr);
      F = lv.shape[1];
      if (num_labels < 1) throw py::value_error("num_labels must be at least 1");
    }
    if (ov.shape[0] != D || ov.shape[1] != F) throw py::value_error("out must have shape [D, F]");
    // Sizes that allocate: one (B + 1) x K count table per thread, K = num_labels (or B + 1 without labels).
    if (B > fastrepr::kHistogramMaxBins)
      throw py::value_error("edges: at most " + std::to_string(fastrepr::kHistogramMaxBins) + " bins per column, got " +
                            std::to_string(B));
    const int64_t K = lp ? num_labels : B + 1;
    if (K > fastrepr::kHistogramMaxTable / (B + 1))
      throw py::value_error("num_labels: the (B + 1) x num_labels count table would exceed " +
                            std::to_string(fastrepr::kHistogramMaxTable) + " entries (B = " + std::to_string(B) +
                            ", num_labels = " + std::to_string(K) + "); relabel the labels densely");
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = fastrepr::histogram_mutual_info<T>(static_cast<const T*>(xv.ptr), N, D, static_cast<const T*>(ev.ptr), B,
                                              lp, F, num_labels, static_cast<double*>(ov.ptr), threads);
    }
    if (!ok) throw py::value_error("labels outside [0, num_labels)");
  };
  if (dtype == "float32") run(static_cast<float*>(nullptr));
  else if (dtype == "float64") run(static_cast<double*>(nullptr));
  else throw py::type_error("unsupported dtype '" + dtype + "' (expected float32 or float64)");
}

void gbt_fit_predict(const py::buffer& x, const py::buffer& labels, const py::buffer& n_classes,
                     const py::buffer& init, const py::buffer& seeds, const py::buffer& x_test, const py::buffer& importances, const py::buffer& raw_train,
                     const py::buffer& raw_test, int64_t n_estimators, double learning_rate, int max_depth,
                     int64_t min_samples_split, int64_t min_samples_leaf, int threads) {
  check_threads(threads);
  View xv = view(x, "x", sizeof(float), 2, false), lv = view(labels, "labels", sizeof(int64_t), 2, false);
  View kv = view(n_classes, "n_classes", sizeof(int64_t), 1, false), tv = view(x_test, "x_test", sizeof(float), 2, false);
  View iv = view(importances, "importances", sizeof(double), 2, true);
  View rv = view(raw_train, "raw_train", sizeof(double), 2, true), sv = view(raw_test, "raw_test", sizeof(double), 2, true);
  const int64_t N = xv.shape[0], D = xv.shape[1], F = lv.shape[1], M = tv.shape[0];
  if (lv.shape[0] != N) throw py::value_error("labels must have shape [N, F]");
  if (kv.shape[0] != F) throw py::value_error("n_classes must have shape [F]");
  if (tv.shape[1] != D) throw py::value_error("x_test must have shape [M, D]");
  if (max_depth < 1 || max_depth > 14) throw py::value_error("max_depth must be in [1, 14]");
  if (n_estimators < 0 || min_samples_split < 2 || min_samples_leaf < 1)
    throw py::value_error("need n_estimators >= 0, min_samples_split >= 2, min_samples_leaf >= 1");
  if (!(learning_rate > 0) || !std::isfinite(learning_rate))
    throw py::value_error("learning_rate must be finite and > 0, got " + std::to_string(learning_rate));
  if (N > std::numeric_limits<int32_t>::max()) throw py::value_error("x: at most 2**31 - 1 samples (int32 ids)");
  // Values beyond N + 1 mean the same as N + 1 (no node can be split), and keep 2 * min_samples_leaf from
  // overflowing in the tree builder.
  min_samples_split = std::min<int64_t>(min_samples_split, N + 1);
  min_samples_leaf = std::min<int64_t>(min_samples_leaf, N + 1);
  // NaN breaks the strict weak ordering std::stable_sort needs (undefined behaviour), so features are checked.
  if (!all_finite(static_cast<const float*>(xv.ptr), N * D)) throw py::value_error("x contains NaN or Inf");
  if (!all_finite(static_cast<const float*>(tv.ptr), M * D)) throw py::value_error("x_test contains NaN or Inf");
  const int64_t* k = static_cast<const int64_t*>(kv.ptr);
  const int64_t* y = static_cast<const int64_t*>(lv.ptr);
  int64_t C = 0;
  for (int64_t f = 0; f < F; ++f) {
    // labels are encoded 0..K-1 of the classes present, so K <= N; the bound also keeps C from overflowing
    if (k[f] < 1 || k[f] > std::max<int64_t>(N, 1))
      throw py::value_error("n_classes must lie in [1, N] (N = " + std::to_string(N) + "), got " + std::to_string(k[f]));
    C += fastrepr::gbt_columns(k[f]);
  }
  for (int64_t i = 0; i < N * F; ++i)
    if (y[i] < 0 || y[i] >= k[i % F]) throw py::value_error("labels outside [0, n_classes)");
  if (iv.shape[0] != F || iv.shape[1] != D) throw py::value_error("importances must have shape [F, D]");
  if (rv.shape[0] != C || rv.shape[1] != N) throw py::value_error("raw_train must have shape [C, N]");
  View initv = view(init, "init", sizeof(double), 1, false), seedv = view(seeds, "seeds", sizeof(uint32_t), 2, false);
  if (initv.shape[0] != C) throw py::value_error("init must have shape [C]");
  if (!all_finite(static_cast<const double*>(initv.ptr), C)) throw py::value_error("init contains NaN or Inf");
  if (seedv.shape[0] != n_estimators || seedv.shape[1] != C) throw py::value_error("seeds must have shape [n_estimators, C]");
  if (sv.shape[0] != C || sv.shape[1] != M) throw py::value_error("raw_test must have shape [C, M]");
  fastrepr::GbtParams p;
  p.n_estimators = n_estimators;
  p.learning_rate = learning_rate;
  p.max_depth = max_depth;
  p.min_samples_split = min_samples_split;
  p.min_samples_leaf = min_samples_leaf;
  py::gil_scoped_release nogil;
  fastrepr::gbt_fit_predict(static_cast<const float*>(xv.ptr), N, D, y, F, k, static_cast<const double*>(initv.ptr),
                            static_cast<const uint32_t*>(seedv.ptr), static_cast<const float*>(tv.ptr), M, p,
                            static_cast<double*>(iv.ptr), static_cast<double*>(rv.ptr), static_cast<double*>(sv.ptr),
                            threads);
}

void dsprites_render(const py::buffer& patches, const py::buffer& patch, const py::buffer& row0,
                     const py::buffer& col0, const py::buffer& out, const std::string& dtype, int threads) {
  check_threads(threads);
  View pv = view(patches, "patches", 1, 3, false);
  View iv = view(patch, "patch", sizeof(int64_t), 1, false), rv = view(row0, "row0", sizeof(int64_t), 1, false);
  View cv = view(col0, "col0", sizeof(int64_t), 1, false);
  const int64_t n = iv.shape[0];
  if (rv.shape[0] != n || cv.shape[0] != n) throw py::value_error("patch, row0 and col0 must have the same length");
  auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    View ov = view(out, "out", sizeof(T), 3, true);
    if (ov.shape[0] != n) throw py::value_error("out must have shape [n, H, W]");
    if (pv.shape[1] != pv.shape[2]) throw py::value_error("patches must have shape [P, S, S]");
    // Offsets are clipped to the canvas; beyond [-S, H] x [-S, W] a patch cannot touch it, and offsets near
    // +-2**63 would overflow the clipping arithmetic (row0 = -2**63 wrote outside the image).
    const int64_t S = pv.shape[1], H = ov.shape[1], W = ov.shape[2];
    const int64_t* r = static_cast<const int64_t*>(rv.ptr);
    const int64_t* c = static_cast<const int64_t*>(cv.ptr);
    for (int64_t i = 0; i < n; ++i) {
      if (r[i] < -S || r[i] > H)
        throw py::value_error("row0[" + std::to_string(i) + "] = " + std::to_string(r[i]) + " lies outside [-S, H] = [" +
                              std::to_string(-S) + ", " + std::to_string(H) + "]");
      if (c[i] < -S || c[i] > W)
        throw py::value_error("col0[" + std::to_string(i) + "] = " + std::to_string(c[i]) + " lies outside [-S, W] = [" +
                              std::to_string(-S) + ", " + std::to_string(W) + "]");
    }
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = fastrepr::dsprites_render<T>(static_cast<const uint8_t*>(pv.ptr), pv.shape[0], pv.shape[1],
                                        static_cast<const int64_t*>(iv.ptr), static_cast<const int64_t*>(rv.ptr),
                                        static_cast<const int64_t*>(cv.ptr), n, static_cast<T*>(ov.ptr),
                                        ov.shape[1], ov.shape[2], threads);
    }
    if (!ok) throw py::value_error("patch index out of range [0, " + std::to_string(pv.shape[0]) + ")");
  };
  if (dtype == "uint8") run(static_cast<uint8_t*>(nullptr));
  else if (dtype == "float32") run(static_cast<float*>(nullptr));
  else throw py::type_error("unsupported dtype '" + dtype + "' (expected uint8 or float32)");
}

int64_t legacy_randint(const py::buffer& raw, const py::buffer& highs, const py::buffer& counts,
                       const py::buffer& out) {
  View rv = view(raw, "raw", sizeof(uint32_t), 1, false), hv = view(highs, "highs", sizeof(int64_t), 1, false);
  View cv = view(counts, "counts", sizeof(int64_t), 1, false), ov = view(out, "out", sizeof(int64_t), 1, true);
  if (cv.shape[0] != hv.shape[0]) throw py::value_error("highs and counts must have the same length");
  const int64_t* h = static_cast<const int64_t*>(hv.ptr);
  const int64_t* c = static_cast<const int64_t*>(cv.ptr);
  const int64_t capacity = ov.shape[0];
  int64_t total = 0;
  for (int64_t i = 0; i < hv.shape[0]; ++i) {
    if (h[i] < 1 || h[i] > (int64_t(1) << 32)) throw py::value_error("highs must lie in [1, 2**32]");
    if (c[i] < 0) throw py::value_error("counts must be non-negative");
    // compared before adding, so that huge counts cannot wrap the sum around to len(out)
    if (c[i] > capacity - total) throw py::value_error("out must have sum(counts) entries (counts sum to more)");
    total += c[i];
  }
  if (capacity != total) throw py::value_error("out must have sum(counts) entries");
  py::gil_scoped_release nogil;
  return fastrepr::legacy_randint(static_cast<const uint32_t*>(rv.ptr), rv.shape[0], h, c, hv.shape[0],
                                  static_cast<int64_t*>(ov.ptr));
}

// ---- word2vec: negative-sampling and hierarchical-softmax losses, and the CPU trainer ----------------------
// Optional buffers (mask; the trainer's tables) are passed as arrays with zero elements when absent.

const uint8_t* optional_mask(const py::buffer& mask, py::ssize_t B, py::ssize_t C) {
  View m = view(mask, "mask", 1, 2, false);
  if (m.shape[0] * m.shape[1] == 0) return nullptr;
  if (m.shape[0] != B || m.shape[1] != C) throw py::value_error("mask must have the shape [B, C] of inputs");
  return static_cast<const uint8_t*>(m.ptr);
}

// The tables and index arrays of a negative-sampling call, checked against each other.
struct NSArgs {
  View wi, wo, x, t, n;
  fastrepr::NegativeSamplingShape s;
  const uint8_t* mask;
  const int64_t* inputs() const { return static_cast<const int64_t*>(x.ptr); }
  const int64_t* targets() const { return static_cast<const int64_t*>(t.ptr); }
  const int64_t* negatives() const { return static_cast<const int64_t*>(n.ptr); }
};

NSArgs ns_args(const py::buffer& w_in, const py::buffer& w_out, const py::buffer& inputs, const py::buffer& mask,
               const py::buffer& targets, const py::buffer& negatives, py::ssize_t itemsize, bool writable) {
  NSArgs a{view(w_in, "w_in", itemsize, 2, writable), view(w_out, "w_out", itemsize, 2, writable),
           view(inputs, "inputs", 8, 2, false), view(targets, "targets", 8, 1, false),
           view(negatives, "negatives", 8, 2, false), {}, nullptr};
  if (a.wi.shape[1] != a.wo.shape[1]) throw py::value_error("w_in and w_out must have the same number of columns D");
  if (a.t.shape[0] != a.x.shape[0] || a.n.shape[0] != a.x.shape[0])
    throw py::value_error("inputs, targets and negatives must have the same number of rows B");
  a.s = {a.wi.shape[0], a.wo.shape[0], a.wi.shape[1], a.x.shape[0], a.x.shape[1], a.n.shape[1]};
  a.mask = optional_mask(mask, a.s.B, a.s.C);
  return a;
}

const char* const kNsIndexError = "an index lies outside its table (inputs < V_in, targets/negatives < V_out)";

void ns_forward(const py::buffer& w_in, const py::buffer& w_out, const py::buffer& inputs, const py::buffer& mask,
                const py::buffer& targets, const py::buffer& negatives, const py::buffer& loss,
                const std::string& dtype, int threads) {
  check_threads(threads);
  dispatch_float(dtype, [&](auto* t_tag, auto* acc_tag) {
    using T = std::remove_pointer_t<decltype(t_tag)>;
    using Acc = std::remove_pointer_t<decltype(acc_tag)>;
    NSArgs a = ns_args(w_in, w_out, inputs, mask, targets, negatives, sizeof(T), false);
    View l = view(loss, "loss", sizeof(Acc), 1, true);
    if (l.shape[0] != a.s.B) throw py::value_error("loss must have shape [B]");
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = fastrepr::negative_sampling_forward<T, Acc>(static_cast<const T*>(a.wi.ptr), static_cast<const T*>(a.wo.ptr),
                                                       a.inputs(), a.mask, a.targets(), a.negatives(), a.s,
                                                       static_cast<Acc*>(l.ptr), threads);
    }
    if (!ok) throw py::value_error(kNsIndexError);
  });
}

void ns_backward(const py::buffer& w_in, const py::buffer& w_out, const py::buffer& inputs, const py::buffer& mask,
                 const py::buffer& targets, const py::buffer& negatives, const py::buffer& grad,
                 const py::buffer& d_in, const py::buffer& d_out, bool sparse, const std::string& dtype,
                 int threads) {
  check_threads(threads);
  dispatch_float(dtype, [&](auto* t_tag, auto* acc_tag) {
    using T = std::remove_pointer_t<decltype(t_tag)>;
    using Acc = std::remove_pointer_t<decltype(acc_tag)>;
    NSArgs a = ns_args(w_in, w_out, inputs, mask, targets, negatives, sizeof(T), false);
    const auto& s = a.s;
    View g = view(grad, "grad", sizeof(Acc), 1, false);
    View di = view(d_in, "d_in", sizeof(Acc), sparse ? 3 : 2, true);
    View dout = view(d_out, "d_out", sizeof(Acc), sparse ? 3 : 2, true);
    using Shape = std::vector<py::ssize_t>;
    const bool shapes_ok = g.shape[0] == s.B &&
        (sparse ? di.shape == Shape{s.B, s.C, s.D} && dout.shape == Shape{s.B, s.K + 1, s.D}
                : di.shape == Shape{s.V_in, s.D} && dout.shape == Shape{s.V_out, s.D});
    if (!shapes_ok) throw py::value_error("grad, d_in or d_out has the wrong shape");
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = fastrepr::negative_sampling_backward<T, Acc>(
          static_cast<const T*>(a.wi.ptr), static_cast<const T*>(a.wo.ptr), a.inputs(), a.mask, a.targets(),
          a.negatives(), s, static_cast<const Acc*>(g.ptr), static_cast<Acc*>(di.ptr), static_cast<Acc*>(dout.ptr),
          sparse, threads);
    }
    if (!ok) throw py::value_error(kNsIndexError);
  });
}

void ns_step(const py::buffer& w_in, const py::buffer& w_out, const py::buffer& inputs, const py::buffer& mask,
             const py::buffer& targets, const py::buffer& negatives, const py::buffer& loss, double lr,
             bool mean_grad, const std::string& dtype, int threads) {
  check_threads(threads);
  if (!std::isfinite(lr)) throw py::value_error("lr must be finite, got " + std::to_string(lr));
  auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    NSArgs a = ns_args(w_in, w_out, inputs, mask, targets, negatives, sizeof(T), true);
    View l = view(loss, "loss", sizeof(T), 1, true);
    if (l.shape[0] != a.s.B) throw py::value_error("loss must have shape [B]");
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = fastrepr::negative_sampling_step<T>(static_cast<T*>(a.wi.ptr), static_cast<T*>(a.wo.ptr), a.inputs(),
                                               a.mask, a.targets(), a.negatives(), a.s, static_cast<T>(lr), mean_grad,
                                               static_cast<T*>(l.ptr), threads);
    }
    if (!ok) throw py::value_error(kNsIndexError);
  };
  if (dtype == "float32") run(static_cast<float*>(nullptr));
  else if (dtype == "float64") run(static_cast<double*>(nullptr));
  else throw py::type_error("negative_sampling_step takes float32 or float64 tables, got " + dtype);
}

fastrepr::HierarchicalSoftmaxShape hs_shape(const View& h, const View& w, const View& t, const View& p,
                                            const View& c, const View& len) {
  if (h.shape[1] != w.shape[1]) throw py::value_error("h and w_nodes must have the same number of columns D");
  if (t.shape[0] != h.shape[0]) throw py::value_error("targets must have one entry per row of h");
  if (c.shape != p.shape || len.shape[0] != p.shape[0])
    throw py::value_error("points, codes ([V, L]) and lengths ([V]) disagree in shape");
  return {w.shape[0], h.shape[1], h.shape[0], p.shape[0], p.shape[1]};
}

void hs_forward(const py::buffer& h, const py::buffer& w_nodes, const py::buffer& targets, const py::buffer& points,
                const py::buffer& codes, const py::buffer& lengths, const py::buffer& loss,
                const std::string& dtype, int threads) {
  check_threads(threads);
  dispatch_float(dtype, [&](auto* t_tag, auto* acc_tag) {
    using T = std::remove_pointer_t<decltype(t_tag)>;
    using Acc = std::remove_pointer_t<decltype(acc_tag)>;
    View hv = view(h, "h", sizeof(T), 2, false), wv = view(w_nodes, "w_nodes", sizeof(T), 2, false);
    View t = view(targets, "targets", 8, 1, false), p = view(points, "points", 8, 2, false);
    View c = view(codes, "codes", 1, 2, false), len = view(lengths, "lengths", 8, 1, false);
    View l = view(loss, "loss", sizeof(Acc), 1, true);
    auto s = hs_shape(hv, wv, t, p, c, len);
    if (l.shape[0] != s.B) throw py::value_error("loss must have shape [B]");
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = fastrepr::hierarchical_softmax_forward<T, Acc>(
          static_cast<const T*>(hv.ptr), static_cast<const T*>(wv.ptr), static_cast<const int64_t*>(t.ptr),
          static_cast<const int64_t*>(p.ptr), static_cast<const uint8_t*>(c.ptr),
          static_cast<const int64_t*>(len.ptr), s, static_cast<Acc*>(l.ptr), threads);
    }
    if (!ok) throw py::value_error("a target, path length or path node lies outside its range, or a code is not 0/1");
  });
}

void hs_backward(const py::buffer& h, const py::buffer& w_nodes, const py::buffer& targets, const py::buffer& points,
                 const py::buffer& codes, const py::buffer& lengths, const py::buffer& grad, const py::buffer& d_h,
                 const py::buffer& d_nodes, bool sparse, const std::string& dtype, int threads) {
  check_threads(threads);
  dispatch_float(dtype, [&](auto* t_tag, auto* acc_tag) {
    using T = std::remove_pointer_t<decltype(t_tag)>;
    using Acc = std::remove_pointer_t<decltype(acc_tag)>;
    View hv = view(h, "h", sizeof(T), 2, false), wv = view(w_nodes, "w_nodes", sizeof(T), 2, false);
    View t = view(targets, "targets", 8, 1, false), p = view(points, "points", 8, 2, false);
    View c = view(codes, "codes", 1, 2, false), len = view(lengths, "lengths", 8, 1, false);
    View g = view(grad, "grad", sizeof(Acc), 1, false), dh = view(d_h, "d_h", sizeof(Acc), 2, true);
    View dn = view(d_nodes, "d_nodes", sizeof(Acc), sparse ? 3 : 2, true);
    auto s = hs_shape(hv, wv, t, p, c, len);
    using Shape = std::vector<py::ssize_t>;
    const bool shapes_ok = g.shape[0] == s.B && dh.shape == hv.shape &&
                           (sparse ? dn.shape == Shape{s.B, s.L, s.D} : dn.shape == wv.shape);
    if (!shapes_ok) throw py::value_error("grad, d_h or d_nodes has the wrong shape");
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = fastrepr::hierarchical_softmax_backward<T, Acc>(
          static_cast<const T*>(hv.ptr), static_cast<const T*>(wv.ptr), static_cast<const int64_t*>(t.ptr),
          static_cast<const int64_t*>(p.ptr), static_cast<const uint8_t*>(c.ptr),
          static_cast<const int64_t*>(len.ptr), s, static_cast<const Acc*>(g.ptr), static_cast<Acc*>(dh.ptr),
          static_cast<Acc*>(dn.ptr), sparse, threads);
    }
    if (!ok) throw py::value_error("a target, path length or path node lies outside its range, or a code is not 0/1");
  });
}

template <typename Ptr>
Ptr optional_table(const py::buffer& buf, const char* name, py::ssize_t itemsize, py::ssize_t rows,
                   py::ssize_t cols, int ndim, bool writable) {
  View v = view(buf, name, itemsize, ndim, writable);
  py::ssize_t n = 1;
  for (auto e : v.shape) n *= e;
  if (n == 0) return nullptr;
  if (v.shape[0] != rows || (ndim == 2 && cols >= 0 && v.shape[1] != cols))
    throw py::value_error(std::string(name) + " has the wrong shape");
  return static_cast<Ptr>(v.ptr);
}

// Returns (status, words, alpha) of fastrepr::Word2VecResult: 0 done, 1 stopped, 2 a non-finite score met at
// learning rate alpha, 3 the loss diverged (clamp); the caller raises.
py::tuple w2v_train(const py::buffer& tokens, const py::buffer& offsets, const py::buffer& keep,
                    const py::buffer& noise_prob, const py::buffer& noise_alias, const py::buffer& points,
                    const py::buffer& codes, const py::buffer& lengths, const py::buffer& syn0,
                    const py::buffer& syn1neg, const py::buffer& syn1, const py::buffer& progress,
                    const py::buffer& stop, int sg, int hs, int negative, int window, int cbow_mean,
                    int shrink_windows, int epochs, double alpha, double min_alpha, uint64_t seed, int threads,
                    int window_update, int clamp, int smooth_sigmoid) {
  fastrepr::Word2VecParams p;
  fastrepr::Word2VecData d;
  View w0 = view(syn0, "syn0", 4, 2, true), tok = view(tokens, "tokens", 4, 1, false);
  View off = view(offsets, "offsets", 8, 1, false);
  p.V = w0.shape[0];
  p.D = w0.shape[1];
  p.sg = sg, p.hs = hs, p.negative = negative, p.window = window, p.cbow_mean = cbow_mean;
  p.shrink_windows = shrink_windows, p.epochs = epochs, p.alpha = alpha, p.min_alpha = min_alpha, p.seed = seed;
  p.threads = threads > 0 ? threads : 1;
  p.window_update = window_update != 0, p.clamp = clamp != 0, p.smooth_sigmoid = smooth_sigmoid != 0;
  if (p.V < 1 || p.D < 1 || window < 1 || epochs < 0 || negative < 0 || (hs == 0 && negative == 0))
    throw py::value_error("word2vec_train: need V, D, window >= 1, epochs >= 0, and hs or negative > 0");
  if (!std::isfinite(alpha) || !std::isfinite(min_alpha) || alpha <= 0 || min_alpha < 0)
    throw py::value_error("word2vec_train: alpha must be finite and > 0, min_alpha finite and >= 0");
  // The scratch space of a thread holds 2·window context rows and (window + 1)·negative noise words.
  if (window > (1 << 20) || negative > (1 << 20))
    throw py::value_error("word2vec_train: window and negative must be at most 2^20");
  d.tokens = static_cast<const int32_t*>(tok.ptr);
  d.N = tok.shape[0];
  d.offsets = static_cast<const int64_t*>(off.ptr);
  d.S = off.shape[0] - 1;
  if (d.S < 0) throw py::value_error("offsets must hold at least one entry");
  for (int64_t s = 0; s < d.S; ++s)
    if (d.offsets[s] < 0 || d.offsets[s] > d.offsets[s + 1]) throw py::value_error("offsets must be non-decreasing");
  if (d.offsets[0] != 0 || d.offsets[d.S] != d.N) throw py::value_error("offsets must run from 0 to len(tokens)");
  for (int64_t i = 0; i < d.N; ++i)
    if (d.tokens[i] < 0 || d.tokens[i] >= p.V) throw py::value_error("tokens must lie in [0, V)");
  d.syn0 = static_cast<float*>(w0.ptr);
  d.keep = optional_table<const uint32_t*>(keep, "keep", 4, p.V, -1, 1, false);
  if (negative > 0) {
    d.noise_prob = optional_table<const uint32_t*>(noise_prob, "noise_prob", 4, p.V, -1, 1, false);
    d.noise_alias = optional_table<const int32_t*>(noise_alias, "noise_alias", 4, p.V, -1, 1, false);
    d.syn1neg = optional_table<float*>(syn1neg, "syn1neg", 4, p.V, p.D, 2, true);
    if (!d.noise_prob || !d.noise_alias || !d.syn1neg)
      throw py::value_error("negative > 0 needs noise_prob, noise_alias and syn1neg");
    for (int64_t w = 0; w < p.V; ++w)
      if (d.noise_alias[w] < 0 || d.noise_alias[w] >= p.V) throw py::value_error("noise_alias must lie in [0, V)");
  }
  if (hs) {
    View pv = view(points, "points", 4, 2, false);
    d.L = pv.shape[1];
    d.points = optional_table<const int32_t*>(points, "points", 4, p.V, d.L, 2, false);
    d.codes = optional_table<const uint8_t*>(codes, "codes", 1, p.V, d.L, 2, false);
    d.lengths = optional_table<const int32_t*>(lengths, "lengths", 4, p.V, -1, 1, false);
    if (p.V > 1) d.syn1 = optional_table<float*>(syn1, "syn1", 4, p.V - 1, p.D, 2, true);
    if (!d.points || !d.codes || !d.lengths || (p.V > 1 && !d.syn1))
      throw py::value_error("hs needs points, codes, lengths and syn1 [V - 1, D]");
    for (int64_t w = 0; w < p.V; ++w) {
      if (d.lengths[w] < 0 || d.lengths[w] > d.L) throw py::value_error("lengths must lie in [0, L]");
      for (int64_t j = 0; j < d.lengths[w]; ++j)
        if (d.points[w * d.L + j] < 0 || d.points[w * d.L + j] >= p.V - 1)
          throw py::value_error("points must lie in [0, V - 1)");
    }
  }
  View pr = view(progress, "progress", 8, 2, true);
  if (pr.shape[0] != p.threads || pr.shape[1] != 3) throw py::value_error("progress must have shape [threads, 3]");
  d.progress = static_cast<double*>(pr.ptr);
  View st = view(stop, "stop", 4, 1, false);
  d.stop = st.shape[0] > 0 ? static_cast<const int32_t*>(st.ptr) : nullptr;
  fastrepr::Word2VecResult r;
  {
    py::gil_scoped_release nogil;
    r = fastrepr::word2vec_train(p, d);
  }
  return py::make_tuple(r.status, r.words, r.alpha);
}

int64_t w2v_subsample(const py::buffer& tokens, const py::buffer& keep, uint64_t seed, const py::buffer& out) {
  View t = view(tokens, "tokens", 4, 1, false), k = view(keep, "keep", 4, 1, false), o = view(out, "out", 4, 1, true);
  if (o.shape[0] < t.shape[0]) throw py::value_error("out must hold len(tokens) entries");
  const int32_t* tp = static_cast<const int32_t*>(t.ptr);
  for (py::ssize_t i = 0; i < t.shape[0]; ++i)
    if (tp[i] < 0 || tp[i] >= k.shape[0]) throw py::value_error("tokens must lie in [0, len(keep))");
  py::gil_scoped_release nogil;
  return fastrepr::word2vec_subsample(tp, t.shape[0], static_cast<const uint32_t*>(k.ptr), seed,
                                      static_cast<int32_t*>(o.ptr));
}

void w2v_sigmoid(const py::buffer& f, const py::buffer& out, int smooth) {
  View fv = view(f, "f", 4, 1, false), o = view(out, "out", 4, 1, true);
  if (o.shape[0] != fv.shape[0]) throw py::value_error("out must have the length of f");
  fastrepr::word2vec_sigmoid(static_cast<const float*>(fv.ptr), fv.shape[0], smooth != 0, static_cast<float*>(o.ptr));
}

void w2v_draw_noise(const py::buffer& prob, const py::buffer& alias, uint64_t seed, const py::buffer& out) {
  View p = view(prob, "prob", 4, 1, false), a = view(alias, "alias", 4, 1, false), o = view(out, "out", 4, 1, true);
  if (a.shape[0] != p.shape[0] || p.shape[0] == 0) throw py::value_error("prob and alias must have the same length V >= 1");
  const int32_t* ap = static_cast<const int32_t*>(a.ptr);
  for (py::ssize_t i = 0; i < a.shape[0]; ++i)
    if (ap[i] < 0 || ap[i] >= a.shape[0]) throw py::value_error("alias must lie in [0, V)");
  py::gil_scoped_release nogil;
  fastrepr::word2vec_draw_noise(static_cast<const uint32_t*>(p.ptr), ap, p.shape[0], o.shape[0], seed,
                                static_cast<int32_t*>(o.ptr));
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastrepr native CPU kernels";
#ifdef FASTREPR_OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  m.def("pairwise_abs_diff_mean_dense", &pairwise_dense, py::arg("z1"), py::arg("z2"), py::arg("out"),
        py::arg("dtype"), py::arg("threads") = 0,
        "out[p, d] = mean_b |z1[p, b, d] - z2[p, b, d]| (z1, z2: [P, B, D]; out: [P, D], float32 or float64)");
  m.def("pairwise_abs_diff_mean_index", &pairwise_index, py::arg("z"), py::arg("i"), py::arg("j"),
        py::arg("out"), py::arg("dtype"), py::arg("threads") = 0,
        "out[p, d] = mean_b |z[i[p, b], d] - z[j[p, b], d]| (z: [N, D]; i, j: [P, B] int64; out: [P, D])");
  m.def("topk_merge", &topk_merge, py::arg("S"), py::arg("rows"), py::arg("scale"), py::arg("mode"),
        py::arg("excl"), py::arg("col0"), py::arg("top_v"), py::arg("top_i"), py::arg("threads") = 0,
        "fold the scores of columns [col0, col0 + C) of S [U, C] into sorted per-row top-k lists (in place)");
  m.def("topk_scan", &topk_scan, py::arg("queries"), py::arg("vectors"), py::arg("vsq"), py::arg("K"),
        py::arg("blas"), py::arg("block_q"), py::arg("block_v"), py::arg("out_v"), py::arg("out_i"),
        py::arg("threads") = 0,
        "the K best rows per query by float32 score (l2 when vsq is given: 2 q.v - |v|^2) into out_v/out_i "
        "[Q, K], sorted; blas: a topk_blas_register handle, or 0 for the built-in kernel");
  m.def("topk_refine", &topk_refine, py::arg("x"), py::arg("vectors"), py::arg("cand"), py::arg("scale"), py::arg("approx"),
        py::arg("bound"), py::arg("excl"), py::arg("l2"), py::arg("out_v"), py::arg("out_i"), py::arg("ok"),
        py::arg("threads") = 0,
        "float64 scores of the candidate rows, the k best into out_v/out_i, and ok[q] = 1 when certified");
  m.def("topk_blas_register", &topk_blas_register, py::arg("library"), py::arg("bf16") = false,
        "(handle, reason): an ILP64 sgemm (bf16: MKL's gemm_bf16bf16f32) from a library already loaded here, "
        "self-tested; handle 0 = unusable");
  m.def("topk_isa", &fastrepr::topk_isa, "instruction set of the built-in search kernel here");
  // disentanglement evaluation (issue 6)
  m.def("histogram_mutual_info", &histogram_mi, py::arg("x"), py::arg("edges"), py::arg("labels"), py::arg("out"),
        py::arg("num_labels"), py::arg("dtype"), py::arg("threads") = 0,
        "out[d, f] = MI(digitize(x[:, d], edges[d]), labels[:, f]) in nats (labels None: the bins of column f)");
  m.def("gbt_fit_predict", &gbt_fit_predict, py::arg("x"), py::arg("labels"), py::arg("n_classes"),
        py::arg("init"), py::arg("seeds"), py::arg("x_test"), py::arg("importances"), py::arg("raw_train"), py::arg("raw_test"),
        py::arg("n_estimators") = 100, py::arg("learning_rate") = 0.1, py::arg("max_depth") = 3,
        py::arg("min_samples_split") = 2, py::arg("min_samples_leaf") = 1, py::arg("threads") = 0,
        "scikit-learn-equivalent gradient-boosted classifiers, one per label column: importances and raw scores");
  m.def("dsprites_render", &dsprites_render, py::arg("patches"), py::arg("patch"), py::arg("row0"), py::arg("col0"),
        py::arg("out"), py::arg("dtype"), py::arg("threads") = 0,
        "out[i] = zeros with patches[patch[i]] copied at (row0[i], col0[i]) (out: [n, H, W] uint8 or float32)");
  m.attr("HISTOGRAM_MAX_BINS") = fastrepr::kHistogramMaxBins;
  m.attr("HISTOGRAM_MAX_TABLE") = fastrepr::kHistogramMaxTable;
  m.def("legacy_randint", &legacy_randint, py::arg("raw"), py::arg("highs"), py::arg("counts"), py::arg("out"),
        "numpy RandomState.randint(highs[c], size=counts[c]) for every c, replayed from raw 32-bit draws; "
        "returns the number of draws used, or -1 if raw ran out");

  // word2vec
  m.def("negative_sampling_forward", &ns_forward, py::arg("w_in"), py::arg("w_out"), py::arg("inputs"),
        py::arg("mask"), py::arg("targets"), py::arg("negatives"), py::arg("loss"), py::arg("dtype"),
        py::arg("threads") = 0, "per-example negative-sampling loss (see csrc/negative_sampling.h)");
  m.def("negative_sampling_backward", &ns_backward, py::arg("w_in"), py::arg("w_out"), py::arg("inputs"),
        py::arg("mask"), py::arg("targets"), py::arg("negatives"), py::arg("grad"), py::arg("d_in"),
        py::arg("d_out"), py::arg("sparse"), py::arg("dtype"), py::arg("threads") = 0,
        "gradients of the negative-sampling loss, dense [V, D] or one row per index");
  m.def("negative_sampling_step", &ns_step, py::arg("w_in"), py::arg("w_out"), py::arg("inputs"), py::arg("mask"),
        py::arg("targets"), py::arg("negatives"), py::arg("loss"), py::arg("lr"), py::arg("mean_grad"),
        py::arg("dtype"), py::arg("threads") = 0, "fused Hogwild SGD step of the negative-sampling loss, in place");
  m.def("hierarchical_softmax_forward", &hs_forward, py::arg("h"), py::arg("w_nodes"), py::arg("targets"),
        py::arg("points"), py::arg("codes"), py::arg("lengths"), py::arg("loss"), py::arg("dtype"),
        py::arg("threads") = 0, "per-example hierarchical-softmax loss (see csrc/hierarchical_softmax.h)");
  m.def("hierarchical_softmax_backward", &hs_backward, py::arg("h"), py::arg("w_nodes"), py::arg("targets"),
        py::arg("points"), py::arg("codes"), py::arg("lengths"), py::arg("grad"), py::arg("d_h"),
        py::arg("d_nodes"), py::arg("sparse"), py::arg("dtype"), py::arg("threads") = 0,
        "gradients of the hierarchical-softmax loss");
  m.def("word2vec_train", &w2v_train, py::arg("tokens"), py::arg("offsets"), py::arg("keep"),
        py::arg("noise_prob"), py::arg("noise_alias"), py::arg("points"), py::arg("codes"), py::arg("lengths"),
        py::arg("syn0"), py::arg("syn1neg"), py::arg("syn1"), py::arg("progress"), py::arg("stop"), py::arg("sg"),
        py::arg("hs"), py::arg("negative"), py::arg("window"), py::arg("cbow_mean"), py::arg("shrink_windows"),
        py::arg("epochs"), py::arg("alpha"), py::arg("min_alpha"), py::arg("seed"), py::arg("threads"),
        py::arg("window_update") = 0, py::arg("clamp") = 0, py::arg("smooth_sigmoid") = 0,
        "Hogwild word2vec training on C++ threads, GIL released (see csrc/word2vec.h); returns (status, words, "
        "alpha): status 0 done, 1 stopped, 2 a non-finite score met at learning rate alpha, 3 loss diverged (clamp)");
  m.def("word2vec_subsample", &w2v_subsample, py::arg("tokens"), py::arg("keep"), py::arg("seed"), py::arg("out"),
        "the trainer's subsampling of int32 tokens (kept tokens to out; returns their count)");
  m.def("word2vec_draw_noise", &w2v_draw_noise, py::arg("prob"), py::arg("alias"), py::arg("seed"), py::arg("out"),
        "len(out) draws from the trainer's noise alias table");
  m.def("word2vec_sigmoid", &w2v_sigmoid, py::arg("f"), py::arg("out"), py::arg("smooth") = 0,
        "the trainer's sigmoid of float32 scores (the references' table, or interpolated; NaN where a score is "
        "NaN or saturated, |f| >= 6)");
  m.def("word2vec_isa", &fastrepr::word2vec_isa, "instruction set the word2vec trainer runs with here");
}

// fastrepr._C: exact top-k search (csrc/topk.h): the running top-k merge of fastrepr.ops.topk_search and
// analogy_topk, the candidate scan, the float64 refinement and the BLAS registry. Sizes are checked against
// the data before anything is allocated: K <= R, tiles and lists below fixed bounds.
#include "bind_areas.h"
#include "bind_common.h"
#include "topk.h"

namespace fastrepr::bind {
namespace {

void topk_merge(const py::buffer& S, const py::buffer& rows, const py::buffer& scale, int mode,
                const py::buffer& excl, int64_t col0, const py::buffer& top_v, const py::buffer& top_i, int threads) {
  check_threads(threads);
  View s = in<float>(S, "S", 2), r = in<int64_t>(rows, "rows", 2);
  View sc = in<float>(scale, "scale", 1), ex = in<int64_t>(excl, "excl", 2);
  View tv = out<float>(top_v, "top_v", 2), ti = out<int64_t>(top_i, "top_i", 2);
  const int64_t Q = r.shape[0], K = tv.shape[1];
  require(r.shape[1] == 3, "rows must have shape [Q, 3]");
  require(sc.shape[0] == Q && ex.shape[0] == Q && tv.shape[0] == Q && ti.shape == tv.shape,
          "scale [Q], excl [Q, E], top_v and top_i [Q, K] must agree with rows [Q, 3]");
  require(K >= 1, "top_v: K must be at least 1");
  require(mode >= 0 && mode <= 2, "mode must be 0 (search), 1 (3CosAdd) or 2 (3CosMul)");
  run_checked([&] {
    return fastrepr::topk_merge(s.as<const float>(), s.shape[0], s.shape[1], r.as<const int64_t>(),
                                sc.as<const float>(), mode, ex.as<const int64_t>(), ex.shape[1], col0, Q, K,
                                tv.as<float>(), ti.as<int64_t>(), threads);
  }, [&] { return "rows: an entry is outside [0, " + std::to_string(s.shape[0]) + ") (rows of S)"; });
}

// an int8 table for R rows of D columns (topk_int8_table's layout, 64-byte aligned): ceil(R/16) panels, or at
// least that many when it may hold more rows than are searched
void check_int8_table(const View& t, const char* name, int64_t R, int64_t D, bool exact) {
  const int64_t np = (R + 15) / 16;
  require((exact ? t.shape[0] == np : t.shape[0] >= np) && t.shape[1] == fastrepr::int8_table_bytes(D),
          [&] { return std::string(name) + " must have shape [" + (exact ? "" : ">= ") + std::to_string(np) + ", " +
                       std::to_string(fastrepr::int8_table_bytes(D)) + "] (topk_int8_table of " +
                       std::to_string(R) + " rows)"; });
  require(reinterpret_cast<uintptr_t>(t.ptr) % 64 == 0, [&] { return std::string(name) + " must be 64-byte aligned"; });
}

void topk_int8_table(const py::buffer& v, const py::buffer& table, int threads) {
  check_threads(threads);
  View vv = in<float>(v, "vectors", 2);
  View t = out<uint8_t>(table, "table", 2);
  const int64_t R = vv.shape[0], D = vv.shape[1];
  require(fastrepr::int8_supported(), "the int8 filter needs an x86 CPU with AVX2");
  require(R >= 1 && D >= 1 && D <= 65536, "vectors must have shape [R, D] with R >= 1 and 1 <= D <= 65536");
  check_int8_table(t, "table", R, D, true);
  without_gil([&] { fastrepr::int8_pack_table(vv.as<const float>(), D, R, D, t.as<uint8_t>(), threads); });
}

// a bf16 table for R rows of D columns (topk_bf16_table's layout): at least R rows (exact: R) of D + 2
void check_bf16_table(const View& t, const char* name, int64_t R, int64_t D, bool exact) {
  require((exact ? t.shape[0] == R : t.shape[0] >= R) && t.shape[1] == fastrepr::bf16_table_cols(D),
          [&] { return std::string(name) + " must have shape [" + (exact ? "" : ">= ") + std::to_string(R) + ", " +
                       std::to_string(fastrepr::bf16_table_cols(D)) + "] (topk_bf16_table of " +
                       std::to_string(R) + " rows)"; });
}

void topk_bf16_table(const py::buffer& v, const py::buffer& table, int threads) {
  check_threads(threads);
  View vv = in<float>(v, "vectors", 2);
  View t = out<uint16_t>(table, "table", 2);
  const int64_t R = vv.shape[0], D = vv.shape[1];
  require(R >= 1 && D >= 1, "vectors must have shape [R, D] with R, D >= 1");
  check_bf16_table(t, "table", R, D, true);
  without_gil([&] { fastrepr::bf16_pack_table(vv.as<const float>(), D, R, D, t.as<uint16_t>(), threads); });
}

double topk_scan(const py::buffer& q, const py::buffer& v, const py::object& vsq, int64_t K, int blas,
                 int64_t block_q, int64_t block_v, const py::buffer& out_v, const py::buffer& out_i, int threads,
                 const py::object& filter_stats, const py::object& int8_table, const py::object& bf16_table) {
  check_threads(threads);
  View qv = in<float>(q, "queries", 2), vv = in<float>(v, "vectors", 2);
  View ov = out<float>(out_v, "out_v", 2), oi = out<int64_t>(out_i, "out_i", 2);
  const int64_t Q = qv.shape[0], D = qv.shape[1], R = vv.shape[0];
  require(vv.shape[1] == D, "vectors must have as many columns as queries");
  require(R >= 1 && D >= 1, "vectors must have shape [R, D] with R, D >= 1");
  require(K >= 1 && K <= R, "K must lie in [1, R] (R = rows of vectors)");
  require(ov.shape[0] == Q && ov.shape[1] == K && oi.shape == ov.shape, "out_v and out_i must have shape [Q, K]");
  require(block_q >= 1 && block_v >= 1 && block_q <= (1 << 16) && block_v <= (1 << 16) &&
              block_q * block_v <= (1 << 24),
          "block_q and block_v must lie in [1, 65536] with block_q * block_v <= 2^24");
  // lists: Q x (row ranges, at most 2 * threads) x 2K entries of 20 bytes (16, and a 4-byte key), at most
  // 2^30 entries (20 GB)
  const int64_t ranges = 2 * clamp_threads(threads);
  require(Q == 0 || 2 * K <= (int64_t(1) << 30) / (Q * ranges),
          "K: Q * K * threads is too large for one call (lists of 20 GB): split the queries");
  const float* vsq_ptr = optional_in<float>(vsq, "vsq", 1, R, "vsq must have shape [R]");
  ScanPlan plan{nullptr, nullptr, nullptr, block_q, block_v, threads};
  require(blas == 0 || topk_blas_lookup(blas, plan),
          [&] { return "blas: unknown handle " + std::to_string(blas) + " (0 = built-in kernel)"; });
  // a filter (the int8 filter: blas 0; the bf16 filter: a bf16 handle) reports its copies' errors in
  // filter_stats [2, Q] float64 (the queries' copy errors and norms) and returns the rows' largest error
  FilterStats stats{nullptr, nullptr, 0.0};
  if (!filter_stats.is_none()) {
    View st = out<double>(filter_stats.cast<py::buffer>(), "filter_stats", 2);
    require(st.shape[0] == 2 && st.shape[1] == Q, "filter_stats must have shape [2, Q]");
    require(blas == 0 || plan.gemm_bf16,
            "filter_stats: blas must be 0 (the int8 filter) or a bf16 handle (the bf16 filter), not a float32 sgemm");
    stats = {st.as<double>(), st.as<double>() + Q, 0.0};
    plan.stats = &stats;
    plan.int8 = blas == 0;
  } else {
    require(!plan.gemm_bf16, "blas: a bf16 handle needs filter_stats (the bf16 filter's bound is measured)");
  }
  if (plan.gemm_bf16) {
    require(!bf16_table.is_none(), "blas: a bf16 handle needs bf16_table (topk_bf16_table of the rows)");
    View t = in<uint16_t>(bf16_table.cast<py::buffer>(), "bf16_table", 2);
    check_bf16_table(t, "bf16_table", R, D, false);
    stats.bf16_table = t.as<const uint16_t>();
  } else {
    require(bf16_table.is_none(), "bf16_table needs a bf16 handle (blas) and filter_stats");
  }
  if (plan.int8) {
    require(fastrepr::int8_supported(), "filter_stats: the int8 filter needs an x86 CPU with AVX2");
    require(D <= 65536, "the int8 filter takes at most 65536 columns (its int32 sums could overflow)");
    require((block_v + 15) / 16 * fastrepr::int8_panel_bytes(D) <= (int64_t(1) << 28),
            "block_v: the int8 filter's panels would exceed 256 MB");
    if (!int8_table.is_none()) {
      View t = in<uint8_t>(int8_table.cast<py::buffer>(), "int8_table", 2);
      check_int8_table(t, "int8_table", R, D, false);
      stats.table = t.as<const uint8_t>();
    }
    require(!stats.table || block_v % 16 == 0, "block_v must be a multiple of 16 with int8_table");
  } else {
    require(int8_table.is_none(), "int8_table needs the int8 filter (blas 0 and filter_stats)");
  }
  ScanProblem prob{qv.as<const float>(), Q, D, vv.as<const float>(), R, D, D, vsq_ptr, K};
  without_gil([&] {
    if (Q > 0) fastrepr::topk_scan(prob, plan, ov.as<float>(), oi.as<int64_t>());
  });
  return stats.emax;
}

void topk_refine(const py::buffer& x, const py::buffer& v, const py::buffer& cand, const py::object& scale,
                 const py::buffer& approx, const py::buffer& bound, const py::buffer& excl, bool l2,
                 const py::buffer& out_v, const py::buffer& out_i, const py::buffer& ok, int threads) {
  check_threads(threads);
  View xv = in<double>(x, "x", 2), vv = in<float>(v, "vectors", 2);
  View cv = in<int64_t>(cand, "cand", 2), ev = in<int64_t>(excl, "excl", 2);
  View av = in<double>(approx, "approx", 2), bv = in<double>(bound, "bound", 1);
  View ov = out<float>(out_v, "out_v", 2), oi = out<int64_t>(out_i, "out_i", 2);
  View okv = out<uint8_t>(ok, "ok", 1);
  const int64_t Q = xv.shape[0], D = xv.shape[1], R = vv.shape[0], k = ov.shape[1];
  require(vv.shape[1] == D && R >= 1, "vectors must have shape [R, D] with D = x.shape[1]");
  require(cv.shape[0] == Q && cv.shape[1] >= 1, "cand must have shape [Q, Kc] with Kc >= 1");
  require(ev.shape[0] == Q && av.shape == cv.shape && bv.shape[0] == Q && okv.shape[0] == Q,
          "excl [Q, E], approx [Q, Kc], bound [Q] and ok [Q] must agree with x [Q, D], cand [Q, Kc]");
  require(k >= 1 && ov.shape[0] == Q && oi.shape == ov.shape, "out_v and out_i must have shape [Q, k] with k >= 1");
  const double* scale_ptr = optional_in<double>(scale, "scale", 1, Q, "scale must have shape [Q]");
  RefineProblem prob{xv.as<const double>(), Q, D, vv.as<const float>(), R, D, cv.as<const int64_t>(), cv.shape[1],
                     scale_ptr, av.as<const double>(), bv.as<const double>(), ev.as<const int64_t>(), ev.shape[1],
                     l2, k};
  run_checked([&] { return fastrepr::topk_refine(prob, ov.as<float>(), oi.as<int64_t>(), okv.as<uint8_t>(), threads); },
              [&] { return "cand: an entry is outside [-1, " + std::to_string(R) + ")"; });
}

py::tuple topk_blas_register(const std::string& library, bool bf16) {
  std::string why;
  const int handle = fastrepr::topk_blas_register(library, bf16, why);
  return py::make_tuple(handle, why);
}

}  // namespace

void register_search(py::module_& m) {
  m.def("topk_merge", &topk_merge, py::arg("S"), py::arg("rows"), py::arg("scale"), py::arg("mode"),
        py::arg("excl"), py::arg("col0"), py::arg("top_v"), py::arg("top_i"), py::arg("threads") = 0,
        "fold the scores of columns [col0, col0 + C) of S [U, C] into sorted per-row top-k lists (in place)");
  m.def("topk_scan", &topk_scan, py::arg("queries"), py::arg("vectors"), py::arg("vsq"), py::arg("K"),
        py::arg("blas"), py::arg("block_q"), py::arg("block_v"), py::arg("out_v"), py::arg("out_i"),
        py::arg("threads") = 0, py::arg("filter_stats") = py::none(), py::arg("int8_table") = py::none(),
        py::arg("bf16_table") = py::none(),
        "the K best rows per query by float32 score (l2 when vsq is given: 2 q.v - |v|^2) into out_v/out_i "
        "[Q, K], sorted; blas: a topk_blas_register handle, or 0 for the built-in kernel. filter_stats [2, Q] "
        "float64, for a filter (blas 0: the int8 filter, scores of 8-bit copies, AVX2; a bf16 handle: the bf16 "
        "filter, where it is required): receives the queries' copy errors |q - q~| and norms |q~|; returns the "
        "largest row error |v - v~| (else 0); "
        "int8_table: the rows' copies made "
        "beforehand by topk_int8_table (else each chunk is copied as it is scanned); bf16_table: the bf16 "
        "filter's copies of the rows (topk_bf16_table; required with a bf16 handle)");
  m.def("topk_bf16_table", &topk_bf16_table, py::arg("vectors"), py::arg("table"), py::arg("threads") = 0,
        "the bf16 filter's copy of the rows [R, D] into table [R, D + 2] (16-bit items): each row's bfloat16 "
        "bits, then its error |v - v~| as a float32 (rounded up)");
  m.def("topk_int8_table", &topk_int8_table, py::arg("vectors"), py::arg("table"),
        py::arg("threads") = 0,
        "the int8 filter's copy of the rows [R, D] into table [ceil(R/16), bytes per panel] uint8, 64-byte "
        "aligned (topk_int8_table_bytes)");
  m.def("topk_int8_table_bytes", &fastrepr::int8_table_bytes, py::arg("D"),
        "bytes per panel of 16 rows in an int8 table");
  m.def("topk_int8_supported", &fastrepr::int8_supported, "whether the int8 filter runs on this CPU (x86, AVX2)");
  m.def("topk_int8_isa", &fastrepr::int8_isa,
        "the int8 filter's micro kernel here: avx512-vnni, avx2 (FASTREPR_TOPK_ISA=avx2 forces it), or empty");
  m.def("topk_refine", &topk_refine, py::arg("x"), py::arg("vectors"), py::arg("cand"), py::arg("scale"),
        py::arg("approx"), py::arg("bound"), py::arg("excl"), py::arg("l2"), py::arg("out_v"), py::arg("out_i"),
        py::arg("ok"), py::arg("threads") = 0,
        "float64 scores of the candidate rows, the k best into out_v/out_i, and ok[q] = 1 when certified");
  m.def("topk_blas_register", &topk_blas_register, py::arg("library"), py::arg("bf16") = false,
        "(handle, reason): an ILP64 sgemm (bf16: MKL's gemm_bf16bf16f32) from a library already loaded here, "
        "self-tested; handle 0 = unusable");
  m.def("topk_isa", &fastrepr::topk_isa, "instruction set of the built-in search kernel here");
}

}  // namespace fastrepr::bind

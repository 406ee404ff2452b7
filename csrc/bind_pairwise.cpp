// fastrepr._C: pairwise latent differences (csrc/pairwise.h), the native implementation of
// fastrepr.ops.pairwise.
#include "bind_areas.h"
#include "bind_common.h"
#include "pairwise.h"

namespace fastrepr::bind {
namespace {

void pairwise_dense(const py::buffer& z1, const py::buffer& z2, const py::buffer& out_, const std::string& dtype,
                    int threads) {
  dispatch_float(dtype, threads, [&](auto d) {
    using T = typename decltype(d)::T; using Acc = typename decltype(d)::Acc;  // storage, accumulation
    View a = in<T>(z1, "z1", 3), b = in<T>(z2, "z2", 3), o = out<Acc>(out_, "out", 2);
    require_same(a, b, "z1", "z2");
    const int64_t P = a.shape[0], B = a.shape[1], D = a.shape[2];
    require(o.shape[0] == P && o.shape[1] == D, "out must have shape [P, D]");
    require(B != 0, "z1: B (pairs per point) must be at least 1");
    without_gil([&] {
      pairwise_abs_diff_mean_dense<T, Acc>(a.as<const T>(), b.as<const T>(), o.as<Acc>(), P, B, D, threads);
    });
  });
}

void pairwise_index(const py::buffer& z, const py::buffer& i, const py::buffer& j, const py::buffer& out_,
                    const std::string& dtype, int threads) {
  dispatch_float(dtype, threads, [&](auto d) {
    using T = typename decltype(d)::T; using Acc = typename decltype(d)::Acc;  // storage, accumulation
    View zv = in<T>(z, "z", 2), iv = in<int64_t>(i, "i", 2), jv = in<int64_t>(j, "j", 2);
    View o = out<Acc>(out_, "out", 2);
    require_same(iv, jv, "i", "j");
    const int64_t N = zv.shape[0], D = zv.shape[1], P = iv.shape[0], B = iv.shape[1];
    require(o.shape[0] == P && o.shape[1] == D, "out must have shape [P, D]");
    require(B != 0, "i: B (pairs per point) must be at least 1");
    run_checked([&] {
      return pairwise_abs_diff_mean_index<T, Acc>(zv.as<const T>(), N, D, iv.as<const int64_t>(),
                                                  jv.as<const int64_t>(), P, B, o.as<Acc>(), threads);
    }, [&] { return "pair index out of range [0, " + std::to_string(N) + ")"; });
  });
}

}  // namespace

void register_pairwise(py::module_& m) {
  m.def("pairwise_abs_diff_mean_dense", &pairwise_dense, py::arg("z1"), py::arg("z2"), py::arg("out"),
        py::arg("dtype"), py::arg("threads") = 0,
        "out[p, d] = mean_b |z1[p, b, d] - z2[p, b, d]| (z1, z2: [P, B, D]; out: [P, D], float32 or float64)");
  m.def("pairwise_abs_diff_mean_index", &pairwise_index, py::arg("z"), py::arg("i"), py::arg("j"),
        py::arg("out"), py::arg("dtype"), py::arg("threads") = 0,
        "out[p, d] = mean_b |z[i[p, b], d] - z[j[p, b], d]| (z: [N, D]; i, j: [P, B] int64; out: [P, D])");
}

}  // namespace fastrepr::bind

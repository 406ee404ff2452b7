// The single pybind11 module fastrepr._C: one m.def per native entry point.
// Arguments are buffers (numpy arrays over torch tensors' memory, no copies); 16-bit floats come as their raw
// int16 bits with the real dtype named in `dtype`. Shapes, item sizes and contiguity are checked here, so a
// direct caller gets a ValueError rather than an out-of-bounds read. Kernels run with the GIL released.
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "common.h"
#include "pairwise.h"
#include "topk.h"

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

void pairwise_dense(const py::buffer& z1, const py::buffer& z2, const py::buffer& out, const std::string& dtype,
                    int threads) {
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
}

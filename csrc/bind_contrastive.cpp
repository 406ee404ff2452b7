// fastrepr._C: contrastive-loss kernels, the native implementations of fastrepr.ops.queue_lse (csrc/queue_lse.h).
#include <cmath>

#include "bind_areas.h"
#include "bind_common.h"
#include "queue_lse.h"
#include "topk.h"

namespace fastrepr::bind {
namespace {

void queue_lse(const py::buffer& qh_, const py::buffer& queue_, const py::buffer& rq_, double inv_t,
               const py::buffer& lse_, const py::buffer& wmean_, const std::string& dtype, int blas, int threads) {
  dispatch_float(dtype, threads, [&](auto d) {
    using T = typename decltype(d)::T; using Acc = typename decltype(d)::Acc;  // queue storage, accumulation
    View qh = in<Acc>(qh_, "qh", 2), queue = in<T>(queue_, "queue", 2), rq = in<Acc>(rq_, "rq", 1);
    View lse = out<Acc>(lse_, "lse", 1), wmean = out<Acc>(wmean_, "wmean", 2);
    const int64_t N = qh.shape[0], D = qh.shape[1], K = queue.shape[0];
    require(queue.shape[1] == D, "queue must have D columns like qh");
    require(K > 0, "queue: K (rows) must be at least 1");
    require(rq.shape[0] == K, "rq must have shape [K] (one inverse norm per queue row)");
    require(lse.shape[0] == N, "lse must have shape [N]");
    require(wmean.shape[0] == N && wmean.shape[1] == D, "wmean must have shape [N, D]");
    require(std::isfinite(inv_t) && inv_t > 0, "inv_t must be finite and > 0");
    QueueLseGemm g;
    if (blas != 0) {
      ScanPlan plan{};
      require(topk_blas_lookup(blas, plan) && plan.gemm != nullptr,
              [&] { return "blas: no registered float32 sgemm with handle " + std::to_string(blas); });
      g.gemm = plan.gemm;
      g.set_threads = plan.set_threads;
    }
    without_gil([&] {
      queue_lse_forward<T, Acc>(qh.as<const Acc>(), N, D, queue.as<const T>(), K, rq.as<const Acc>(),
                                static_cast<Acc>(inv_t), lse.as<Acc>(), wmean.as<Acc>(), g, threads);
    });
  });
}

}  // namespace

void register_contrastive(py::module_& m) {
  m.def("queue_lse", &queue_lse, py::arg("qh"), py::arg("queue"), py::arg("rq"), py::arg("inv_t"), py::arg("lse"),
        py::arg("wmean"), py::arg("dtype"), py::arg("blas") = 0, py::arg("threads") = 0,
        "lse[i] = log sum_j exp(qh_i . queue_j rq_j inv_t), wmean[i] = sum_j softmax_j rq_j queue_j (qh [N, D] and "
        "rq [K] in the accumulation dtype, queue [K, D] in `dtype`; blas: a topk_blas_register handle, 0: loops)");
}

}  // namespace fastrepr::bind

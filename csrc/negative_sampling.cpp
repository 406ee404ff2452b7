#include "negative_sampling.h"

#include <cmath>
#include <limits>
#include <vector>

#include "common.h"
#include "scatter.h"
#include "w2v_math.h"

namespace fastrepr {

namespace {

bool indices_ok(const int64_t* inputs, const int64_t* targets, const int64_t* negatives,
                const NegativeSamplingShape& s) {
  for (int64_t i = 0; i < s.B * s.C; ++i)
    if (inputs[i] < 0 || inputs[i] >= s.V_in) return false;
  for (int64_t i = 0; i < s.B; ++i)
    if (targets[i] < 0 || targets[i] >= s.V_out) return false;
  for (int64_t i = 0; i < s.B * s.K; ++i)
    if (negatives[i] < 0 || negatives[i] >= s.V_out) return false;
  return true;
}

// A non-finite score (a NaN or Inf in a row the example reads, or a dot product that overflows) makes the
// example's loss NaN: log sigmoid(+inf) = 0 would otherwise report a plausible finite loss. The caller's
// finiteness check then raises and names the cause (fastrepr/ops/negative_sampling.py).

inline int64_t out_row(const int64_t* targets, const int64_t* negatives, int64_t K, int64_t b, int64_t j) {
  return j == 0 ? targets[b] : negatives[b * K + j - 1];
}

// h = masked mean of the input rows of example b; returns false when no input is used (then h = 0).
template <typename T, typename Acc>
inline Acc input_mean(const T* w_in, const int64_t* inputs, const uint8_t* mask, const NegativeSamplingShape& s,
                      int64_t b, Acc* h) {
  for (int64_t d = 0; d < s.D; ++d) h[d] = Acc(0);
  Acc n = Acc(0);
  for (int64_t c = 0; c < s.C; ++c) {
    if (mask && !mask[b * s.C + c]) continue;
    const T* w = w_in + inputs[b * s.C + c] * s.D;
    for (int64_t d = 0; d < s.D; ++d) h[d] += static_cast<Acc>(to_float(w[d]));
    n += Acc(1);
  }
  const Acc inv = n > Acc(0) ? Acc(1) / n : Acc(0);
  for (int64_t d = 0; d < s.D; ++d) h[d] *= inv;
  return inv;
}

}  // namespace

template <typename T, typename Acc>
bool negative_sampling_forward(const T* w_in, const T* w_out, const int64_t* inputs, const uint8_t* mask,
                               const int64_t* targets, const int64_t* negatives, NegativeSamplingShape s,
                               Acc* loss, int num_threads) {
  if (!indices_ok(inputs, targets, negatives, s)) return false;
  ParallelGuard guard;
  (void)num_threads;
#ifdef FASTREPR_OPENMP
#pragma omp parallel num_threads(clamp_threads(num_threads))
#endif
  {
    std::vector<Acc> h;
    guard.run([&] { h.resize(s.D); });
#ifdef FASTREPR_OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t b = 0; b < s.B; ++b) {
      if (guard.failed()) continue;
      input_mean(w_in, inputs, mask, s, b, h.data());
      Acc l = Acc(0);
      bool finite = true;
      for (int64_t j = 0; j <= s.K; ++j) {
        const Acc sc = dot_row<T, Acc>(w_out + out_row(targets, negatives, s.K, b, j) * s.D, h.data(), s.D);
        finite &= std::isfinite(sc);
        l -= log_sigmoid(j == 0 ? sc : -sc);
      }
      loss[b] = finite ? l : std::numeric_limits<Acc>::quiet_NaN();
    }
  }
  guard.rethrow();
  return true;
}

template <typename T, typename Acc>
bool negative_sampling_backward(const T* w_in, const T* w_out, const int64_t* inputs, const uint8_t* mask,
                                const int64_t* targets, const int64_t* negatives, NegativeSamplingShape s,
                                const Acc* grad, Acc* d_in, Acc* d_out, bool sparse, int num_threads) {
  if (!indices_ok(inputs, targets, negatives, s)) return false;
  const int64_t D = s.D, J = s.K + 1;
  // Phase 1, per example: h_b, e_bj, and dh_b = (1/n_b) sum_j e_bj w_out[o_bj].
  std::vector<Acc> h(s.B * D), dh(s.B * D), e(s.B * J), inv_n(s.B);
  (void)num_threads;
#ifdef FASTREPR_OPENMP
#pragma omp parallel for schedule(static) num_threads(clamp_threads(num_threads))
#endif
  for (int64_t b = 0; b < s.B; ++b) {
    Acc* hb = h.data() + b * D;
    Acc* dhb = dh.data() + b * D;
    inv_n[b] = input_mean(w_in, inputs, mask, s, b, hb);
    for (int64_t d = 0; d < D; ++d) dhb[d] = Acc(0);
    for (int64_t j = 0; j < J; ++j) {
      const T* w = w_out + out_row(targets, negatives, s.K, b, j) * D;
      const Acc ebj = grad[b] * (sigmoid(dot_row<T, Acc>(w, hb, D)) - (j == 0 ? Acc(1) : Acc(0)));
      e[b * J + j] = ebj;
      for (int64_t d = 0; d < D; ++d) dhb[d] += ebj * static_cast<Acc>(to_float(w[d]));
    }
    for (int64_t d = 0; d < D; ++d) dhb[d] *= inv_n[b];
  }
  if (sparse) {
    // Phase 2: one row per index, in the order of the indices.
#ifdef FASTREPR_OPENMP
#pragma omp parallel for schedule(static) num_threads(clamp_threads(num_threads))
#endif
    for (int64_t b = 0; b < s.B; ++b) {
      for (int64_t c = 0; c < s.C; ++c) {
        Acc* o = d_in + (b * s.C + c) * D;
        const bool used = !mask || mask[b * s.C + c];
        for (int64_t d = 0; d < D; ++d) o[d] = used ? dh[b * D + d] : Acc(0);
      }
      for (int64_t j = 0; j < J; ++j) {
        Acc* o = d_out + (b * J + j) * D;
        for (int64_t d = 0; d < D; ++d) o[d] = e[b * J + j] * h[b * D + d];
      }
    }
    return true;
  }
  // Phase 2, dense: scatter into the touched rows only, each row owned by one thread.
  scatter_add_rows(
      d_out, D, s.B * J, [&](int64_t i) { return out_row(targets, negatives, s.K, i / J, i % J); },
      [&](int64_t i) { return e[i]; }, [&](int64_t i) { return h.data() + (i / J) * D; }, num_threads);
  scatter_add_rows(
      d_in, D, s.B * s.C, [&](int64_t i) { return inputs[i]; },
      [&](int64_t i) { return (!mask || mask[i]) ? Acc(1) : Acc(0); },
      [&](int64_t i) { return dh.data() + (i / s.C) * D; }, num_threads);
  return true;
}


template <typename T>
bool negative_sampling_step(T* w_in, T* w_out, const int64_t* inputs, const uint8_t* mask, const int64_t* targets,
                            const int64_t* negatives, NegativeSamplingShape s, T lr, bool mean_grad, T* loss,
                            int num_threads) {
  if (!indices_ok(inputs, targets, negatives, s)) return false;
  const int64_t D = s.D, J = s.K + 1;
  ParallelGuard guard;
  (void)num_threads;
#ifdef FASTREPR_OPENMP
#pragma omp parallel num_threads(clamp_threads(num_threads))
#endif
  {
    std::vector<T> h, dh, e;
    guard.run([&] {
      h.resize(D);
      dh.resize(D);
      e.resize(J);
    });
#ifdef FASTREPR_OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t b = 0; b < s.B; ++b) {
      if (guard.failed()) continue;
      const T inv_n = input_mean(w_in, inputs, mask, s, b, h.data());
      T l = T(0);
      bool finite = true;
      for (int64_t j = 0; j < J; ++j) {
        const T sc = dot_row<T, T>(w_out + out_row(targets, negatives, s.K, b, j) * D, h.data(), D);
        finite &= std::isfinite(sc);
        l -= log_sigmoid(j == 0 ? sc : -sc);
        e[j] = -lr * (sigmoid(sc) - (j == 0 ? T(1) : T(0)));
      }
      loss[b] = finite ? l : std::numeric_limits<T>::quiet_NaN();
      for (int64_t d = 0; d < D; ++d) dh[d] = T(0);
      for (int64_t j = 0; j < J; ++j) {  // every score is read before any output row changes
        T* w = w_out + out_row(targets, negatives, s.K, b, j) * D;
        for (int64_t d = 0; d < D; ++d) dh[d] += e[j] * w[d];
      }
      for (int64_t j = 0; j < J; ++j) {
        T* w = w_out + out_row(targets, negatives, s.K, b, j) * D;
        for (int64_t d = 0; d < D; ++d) w[d] += e[j] * h[d];
      }
      const T scale = mean_grad ? inv_n : T(1);
      for (int64_t c = 0; c < s.C; ++c) {
        if (mask && !mask[b * s.C + c]) continue;
        T* w = w_in + inputs[b * s.C + c] * D;
        for (int64_t d = 0; d < D; ++d) w[d] += scale * dh[d];
      }
    }
  }
  guard.rethrow();
  return true;
}

#define FASTREPR_INSTANTIATE(T, Acc)                                                                          \
  template bool negative_sampling_forward<T, Acc>(const T*, const T*, const int64_t*, const uint8_t*,          \
                                                  const int64_t*, const int64_t*, NegativeSamplingShape, Acc*, \
                                                  int);                                                        \
  template bool negative_sampling_backward<T, Acc>(const T*, const T*, const int64_t*, const uint8_t*,         \
                                                   const int64_t*, const int64_t*, NegativeSamplingShape,      \
                                                   const Acc*, Acc*, Acc*, bool, int);
FASTREPR_FOR_EACH_FLOAT(FASTREPR_INSTANTIATE)
#undef FASTREPR_INSTANTIATE
template bool negative_sampling_step<float>(float*, float*, const int64_t*, const uint8_t*, const int64_t*,
                                            const int64_t*, NegativeSamplingShape, float, bool, float*, int);
template bool negative_sampling_step<double>(double*, double*, const int64_t*, const uint8_t*, const int64_t*,
                                             const int64_t*, NegativeSamplingShape, double, bool, double*, int);

}  // namespace fastrepr

#include "dsprites.h"

#include <algorithm>

#include "common.h"

namespace fastrepr {

template <typename T>
bool dsprites_render(const uint8_t* patches, int64_t P, int64_t S, const int64_t* patch, const int64_t* row0,
                     const int64_t* col0, int64_t n, T* out, int64_t H, int64_t W, int num_threads) {
  int bad = 0;
  (void)num_threads;
#ifdef FASTREPR_OPENMP
#pragma omp parallel for schedule(static) num_threads(clamp_threads(num_threads)) reduction(| : bad)
#endif
  for (int64_t i = 0; i < n; ++i) {
    T* img = out + i * H * W;
    std::fill(img, img + H * W, T(0));
    const int64_t k = patch[i];
    if (k < 0 || k >= P) { bad = 1; continue; }
    const uint8_t* src = patches + k * S * S;
    const int64_t r_lo = std::max<int64_t>(0, -row0[i]), r_hi = std::min<int64_t>(S, H - row0[i]);
    const int64_t c_lo = std::max<int64_t>(0, -col0[i]), c_hi = std::min<int64_t>(S, W - col0[i]);
    for (int64_t r = r_lo; r < r_hi; ++r) {
      const uint8_t* s = src + r * S;
      T* d = img + (row0[i] + r) * W + col0[i];
      for (int64_t c = c_lo; c < c_hi; ++c) d[c] = static_cast<T>(s[c]);
    }
  }
  return bad == 0;
}

template bool dsprites_render<uint8_t>(const uint8_t*, int64_t, int64_t, const int64_t*, const int64_t*,
                                       const int64_t*, int64_t, uint8_t*, int64_t, int64_t, int);
template bool dsprites_render<float>(const uint8_t*, int64_t, int64_t, const int64_t*, const int64_t*,
                                     const int64_t*, int64_t, float*, int64_t, int64_t, int);

}  // namespace fastrepr

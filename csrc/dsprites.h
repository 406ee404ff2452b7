// Batch rendering of procedural dSprites (fastrepr/data/dsprites.py): every image is a zero canvas with one
// pre-rendered S x S binary patch (one per shape, scale and orientation) copied at a pixel offset given by the
// position factors. out: [n, H, W] of T (uint8 or float); patches: [P, S, S] uint8 in {0, 1}.
// The copy is clipped to the canvas. Extra memory: none. Returns false if a patch index is outside [0, P).
#pragma once
#include <cstdint>

namespace fastrepr {

template <typename T>
bool dsprites_render(const uint8_t* patches, int64_t P, int64_t S, const int64_t* patch, const int64_t* row0,
                     const int64_t* col0, int64_t n, T* out, int64_t H, int64_t W, int num_threads);

}  // namespace fastrepr

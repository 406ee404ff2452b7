// The areas of the module fastrepr._C: each csrc/bind_<area>.cpp defines one register_<area>(m), which
// bindings.cpp calls. The m.def()s inside go through the checked-call helper of bind_common.h.
#pragma once
#include <pybind11/pybind11.h>

namespace fastrepr::bind {

void register_pairwise(pybind11::module_& m);          // pairwise latent differences (BetaVAE score)
void register_contrastive(pybind11::module_& m);       // queue (memory-bank) log-sum-exp of contrastive losses
void register_search(pybind11::module_& m);            // exact top-k search, analogies, BLAS registry
void register_disentanglement(pybind11::module_& m);   // histogram MI, gradient boosting, dSprites, sampling
void register_word2vec(pybind11::module_& m);          // NS / HS losses and the CPU trainer

}  // namespace fastrepr::bind

// The pybind11 module fastrepr._C. Each area registers its own entry points (csrc/bind_<area>.cpp, through
// the one checked-call helper of bind_common.h); kernels live in csrc/<kernel>.cpp on raw pointers and sizes.
#include <pybind11/pybind11.h>

#include "bind_areas.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastrepr native CPU kernels";
#ifdef FASTREPR_OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  fastrepr::bind::register_pairwise(m);
  fastrepr::bind::register_contrastive(m);
  fastrepr::bind::register_search(m);
  fastrepr::bind::register_disentanglement(m);
  fastrepr::bind::register_word2vec(m);
}

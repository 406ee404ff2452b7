// Gradient-boosted trees for classification, reproducing scikit-learn's GradientBoostingClassifier with its
// defaults (log loss, prior init, squared-error / friedman_mse regression trees of depth 3 grown depth-first
// with exact best splits, one tree per class per stage for K > 2 and one tree for K = 2, Newton leaf values,
// learning rate 0.1, 100 stages) and its impurity-based feature importances. Used by the DCI disentanglement
// score, which fits one classifier per ground-truth factor on the same codes: all factors are fitted in one
// call, sharing the per-feature sort, and the trees of a stage (over every factor and class) run in parallel.
#pragma once
#include <cstdint>

namespace fastrepr {

struct GbtParams {
  int64_t n_estimators = 100;
  double learning_rate = 0.1;
  int max_depth = 3;
  int64_t min_samples_split = 2;
  int64_t min_samples_leaf = 1;
};

// Number of raw-score columns (trees per stage) for a factor with K classes: 1 for K <= 2, K otherwise.
inline int64_t gbt_columns(int64_t K) { return K > 2 ? K : 1; }

// X: [N, D] float32; labels: [N, F] int64, column f in [0, n_classes[f]); Xt: [M, D] float32 (M may be 0).
// init: [C] prior raw scores (computed by the caller with numpy, as scikit-learn does); seeds: [n_estimators, C]
// the uint32 seed of each tree (scikit-learn draws random_state.randint(0, 2**31 - 1) per tree, in fit order).
// Outputs: importances [F, D] (each row sums to 1, or is all zero when no tree of that factor split);
// raw_train [C, N] and raw_test [C, M] decision values, C = sum_f gbt_columns(n_classes[f]), factor f's
// columns following those of factors 0..f-1. A factor with one class gets a zero column and no trees.
// Extra memory: O(N * D) for the sorted features plus O(N * C). Deterministic for any thread count.
void gbt_fit_predict(const float* X, int64_t N, int64_t D, const int64_t* labels, int64_t F,
                     const int64_t* n_classes, const double* init, const uint32_t* seeds, const float* Xt, int64_t M,
                     const GbtParams& params, double* importances, double* raw_train, double* raw_test,
                     int num_threads);

}  // namespace fastrepr

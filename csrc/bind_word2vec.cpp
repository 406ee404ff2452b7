// fastrepr._C: word2vec: the negative-sampling and hierarchical-softmax losses (csrc/negative_sampling.h,
// csrc/hierarchical_softmax.h) behind fastrepr.ops, and the CPU trainer (csrc/word2vec.h) with the pieces of it
// that tests replay (subsampling, noise draws, sigmoid). Optional buffers (mask; the trainer's tables) are
// passed as arrays with zero elements when absent.
#include <cmath>

#include "bind_areas.h"
#include "bind_common.h"
#include "hierarchical_softmax.h"
#include "negative_sampling.h"
#include "word2vec.h"

namespace fastrepr::bind {
namespace {

// What a kernel's false result means (an index found out of range during its pass).
const char* const kNsIndexError = "an index lies outside its table (inputs < V_in, targets/negatives < V_out)";
const char* const kHsIndexError = "a target, path length or path node lies outside its range, or a code is not 0/1";

// nullptr for a buffer with zero elements; else its data, after checking that it has `rows` rows (and `cols`
// columns, for cols >= 0 in 2 dimensions).
template <typename T>
T* optional_table(const py::buffer& buf, const char* name, py::ssize_t rows, py::ssize_t cols, int ndim,
                  bool writable) {
  View v = view(buf, name, sizeof(T), ndim, writable);
  if (v.size() == 0) return nullptr;
  require(v.shape[0] == rows && (ndim != 2 || cols < 0 || v.shape[1] == cols),
          [&] { return std::string(name) + " has the wrong shape"; });
  return v.as<T>();
}

const uint8_t* optional_mask(const py::buffer& mask, py::ssize_t B, py::ssize_t C) {
  View m = in<uint8_t>(mask, "mask", 2);
  if (m.size() == 0) return nullptr;
  require(m.shape[0] == B && m.shape[1] == C, "mask must have the shape [B, C] of inputs");
  return m.as<const uint8_t>();
}

// The tables and index arrays of a negative-sampling call, checked against each other.
struct NSArgs {
  View wi, wo, x, t, n;
  NegativeSamplingShape s;
  const uint8_t* mask;
};

NSArgs ns_args(const py::buffer& w_in, const py::buffer& w_out, const py::buffer& inputs, const py::buffer& mask,
               const py::buffer& targets, const py::buffer& negatives, py::ssize_t itemsize, bool writable) {
  NSArgs a{view(w_in, "w_in", itemsize, 2, writable), view(w_out, "w_out", itemsize, 2, writable),
           in<int64_t>(inputs, "inputs", 2), in<int64_t>(targets, "targets", 1),
           in<int64_t>(negatives, "negatives", 2), {}, nullptr};
  require(a.wi.shape[1] == a.wo.shape[1], "w_in and w_out must have the same number of columns D");
  require(a.t.shape[0] == a.x.shape[0] && a.n.shape[0] == a.x.shape[0],
          "inputs, targets and negatives must have the same number of rows B");
  a.s = {a.wi.shape[0], a.wo.shape[0], a.wi.shape[1], a.x.shape[0], a.x.shape[1], a.n.shape[1]};
  a.mask = optional_mask(mask, a.s.B, a.s.C);
  return a;
}

// The buffers of a hierarchical-softmax call, checked against each other.
struct HSArgs {
  View h, w, t, p, c, len;
  HierarchicalSoftmaxShape s;
};

template <typename T>
HSArgs hs_args(const py::buffer& h, const py::buffer& w_nodes, const py::buffer& targets, const py::buffer& points,
               const py::buffer& codes, const py::buffer& lengths) {
  HSArgs a{in<T>(h, "h", 2), in<T>(w_nodes, "w_nodes", 2), in<int64_t>(targets, "targets", 1),
           in<int64_t>(points, "points", 2), in<uint8_t>(codes, "codes", 2), in<int64_t>(lengths, "lengths", 1), {}};
  require(a.h.shape[1] == a.w.shape[1], "h and w_nodes must have the same number of columns D");
  require(a.t.shape[0] == a.h.shape[0], "targets must have one entry per row of h");
  require(a.c.shape == a.p.shape && a.len.shape[0] == a.p.shape[0],
          "points, codes ([V, L]) and lengths ([V]) disagree in shape");
  a.s = {a.w.shape[0], a.h.shape[1], a.h.shape[0], a.p.shape[0], a.p.shape[1]};
  return a;
}

void ns_forward(const py::buffer& w_in, const py::buffer& w_out, const py::buffer& inputs, const py::buffer& mask,
                const py::buffer& targets, const py::buffer& negatives, const py::buffer& loss,
                const std::string& dtype, int threads) {
  dispatch_float(dtype, threads, [&](auto d) {
    using T = typename decltype(d)::T; using Acc = typename decltype(d)::Acc;  // storage, accumulation
    NSArgs a = ns_args(w_in, w_out, inputs, mask, targets, negatives, sizeof(T), false);
    View l = out<Acc>(loss, "loss", 1);
    require(l.shape[0] == a.s.B, "loss must have shape [B]");
    run_checked([&] {
      return negative_sampling_forward<T, Acc>(a.wi.as<const T>(), a.wo.as<const T>(), a.x.as<const int64_t>(),
                                               a.mask, a.t.as<const int64_t>(), a.n.as<const int64_t>(), a.s,
                                               l.as<Acc>(), threads);
    }, kNsIndexError);
  });
}

void ns_backward(const py::buffer& w_in, const py::buffer& w_out, const py::buffer& inputs, const py::buffer& mask,
                 const py::buffer& targets, const py::buffer& negatives, const py::buffer& grad,
                 const py::buffer& d_in, const py::buffer& d_out, bool sparse, const std::string& dtype,
                 int threads) {
  dispatch_float(dtype, threads, [&](auto d) {
    using T = typename decltype(d)::T; using Acc = typename decltype(d)::Acc;  // storage, accumulation
    NSArgs a = ns_args(w_in, w_out, inputs, mask, targets, negatives, sizeof(T), false);
    const auto& s = a.s;
    View g = in<Acc>(grad, "grad", 1);
    View di = out<Acc>(d_in, "d_in", sparse ? 3 : 2), dout = out<Acc>(d_out, "d_out", sparse ? 3 : 2);
    require(g.shape[0] == s.B && (sparse ? di.shape == Shape{s.B, s.C, s.D} && dout.shape == Shape{s.B, s.K + 1, s.D}
                                         : di.shape == Shape{s.V_in, s.D} && dout.shape == Shape{s.V_out, s.D}),
            "grad, d_in or d_out has the wrong shape");
    run_checked([&] {
      return negative_sampling_backward<T, Acc>(a.wi.as<const T>(), a.wo.as<const T>(), a.x.as<const int64_t>(),
                                                a.mask, a.t.as<const int64_t>(), a.n.as<const int64_t>(), s,
                                                g.as<const Acc>(), di.as<Acc>(), dout.as<Acc>(), sparse, threads);
    }, kNsIndexError);
  });
}

void ns_step(const py::buffer& w_in, const py::buffer& w_out, const py::buffer& inputs, const py::buffer& mask,
             const py::buffer& targets, const py::buffer& negatives, const py::buffer& loss, double lr,
             bool mean_grad, const std::string& dtype, int threads) {
  check_threads(threads);
  require(std::isfinite(lr), [&] { return "lr must be finite, got " + std::to_string(lr); });
  const bool known = try_dispatch<Float32, Float64>(dtype, [&](auto d) {
    using T = typename decltype(d)::T;
    NSArgs a = ns_args(w_in, w_out, inputs, mask, targets, negatives, sizeof(T), true);
    View l = out<T>(loss, "loss", 1);
    require(l.shape[0] == a.s.B, "loss must have shape [B]");
    run_checked([&] {
      return negative_sampling_step<T>(a.wi.as<T>(), a.wo.as<T>(), a.x.as<const int64_t>(), a.mask,
                                       a.t.as<const int64_t>(), a.n.as<const int64_t>(), a.s, static_cast<T>(lr),
                                       mean_grad, l.as<T>(), threads);
    }, kNsIndexError);
  });
  if (!known) throw py::type_error("negative_sampling_step takes float32 or float64 tables, got " + dtype);
}

void hs_forward(const py::buffer& h, const py::buffer& w_nodes, const py::buffer& targets, const py::buffer& points,
                const py::buffer& codes, const py::buffer& lengths, const py::buffer& loss,
                const std::string& dtype, int threads) {
  dispatch_float(dtype, threads, [&](auto d) {
    using T = typename decltype(d)::T; using Acc = typename decltype(d)::Acc;  // storage, accumulation
    HSArgs a = hs_args<T>(h, w_nodes, targets, points, codes, lengths);
    View l = out<Acc>(loss, "loss", 1);
    require(l.shape[0] == a.s.B, "loss must have shape [B]");
    run_checked([&] {
      return hierarchical_softmax_forward<T, Acc>(a.h.as<const T>(), a.w.as<const T>(), a.t.as<const int64_t>(),
                                                  a.p.as<const int64_t>(), a.c.as<const uint8_t>(),
                                                  a.len.as<const int64_t>(), a.s, l.as<Acc>(), threads);
    }, kHsIndexError);
  });
}

void hs_backward(const py::buffer& h, const py::buffer& w_nodes, const py::buffer& targets, const py::buffer& points,
                 const py::buffer& codes, const py::buffer& lengths, const py::buffer& grad, const py::buffer& d_h,
                 const py::buffer& d_nodes, bool sparse, const std::string& dtype, int threads) {
  dispatch_float(dtype, threads, [&](auto d) {
    using T = typename decltype(d)::T; using Acc = typename decltype(d)::Acc;  // storage, accumulation
    HSArgs a = hs_args<T>(h, w_nodes, targets, points, codes, lengths);
    View g = in<Acc>(grad, "grad", 1), dh = out<Acc>(d_h, "d_h", 2);
    View dn = out<Acc>(d_nodes, "d_nodes", sparse ? 3 : 2);
    const auto& s = a.s;
    require(g.shape[0] == s.B && dh.shape == a.h.shape && (sparse ? dn.shape == Shape{s.B, s.L, s.D}
                                                                  : dn.shape == a.w.shape),
            "grad, d_h or d_nodes has the wrong shape");
    run_checked([&] {
      return hierarchical_softmax_backward<T, Acc>(a.h.as<const T>(), a.w.as<const T>(), a.t.as<const int64_t>(),
                                                   a.p.as<const int64_t>(), a.c.as<const uint8_t>(),
                                                   a.len.as<const int64_t>(), s, g.as<const Acc>(), dh.as<Acc>(),
                                                   dn.as<Acc>(), sparse, threads);
    }, kHsIndexError);
  });
}

// Returns (status, words, alpha) of fastrepr::Word2VecResult: 0 done, 1 stopped, 2 a non-finite score met at
// learning rate alpha, 3 the loss diverged (clamp); the caller raises.
py::tuple w2v_train(const py::buffer& tokens, const py::buffer& offsets, const py::buffer& keep,
                    const py::buffer& noise_prob, const py::buffer& noise_alias, const py::buffer& points,
                    const py::buffer& codes, const py::buffer& lengths, const py::buffer& syn0,
                    const py::buffer& syn1neg, const py::buffer& syn1, const py::buffer& progress,
                    const py::buffer& stop, int sg, int hs, int negative, int window, int cbow_mean,
                    int shrink_windows, int epochs, double alpha, double min_alpha, uint64_t seed, int threads,
                    int window_update, int clamp, int smooth_sigmoid) {
  Word2VecParams p;
  Word2VecData d;
  View w0 = out<float>(syn0, "syn0", 2), tok = in<int32_t>(tokens, "tokens", 1);
  View off = in<int64_t>(offsets, "offsets", 1);
  p.V = w0.shape[0];
  p.D = w0.shape[1];
  p.sg = sg, p.hs = hs, p.negative = negative, p.window = window, p.cbow_mean = cbow_mean;
  p.shrink_windows = shrink_windows, p.epochs = epochs, p.alpha = alpha, p.min_alpha = min_alpha, p.seed = seed;
  p.threads = threads > 0 ? threads : 1;
  p.window_update = window_update != 0, p.clamp = clamp != 0, p.smooth_sigmoid = smooth_sigmoid != 0;
  require(p.V >= 1 && p.D >= 1 && window >= 1 && epochs >= 0 && negative >= 0 && (hs != 0 || negative != 0),
          "word2vec_train: need V, D, window >= 1, epochs >= 0, and hs or negative > 0");
  require(std::isfinite(alpha) && std::isfinite(min_alpha) && alpha > 0 && min_alpha >= 0,
          "word2vec_train: alpha must be finite and > 0, min_alpha finite and >= 0");
  // The scratch space of a thread holds 2·window context rows and (window + 1)·negative noise words.
  require(window <= (1 << 20) && negative <= (1 << 20), "word2vec_train: window and negative must be at most 2^20");
  d.tokens = tok.as<const int32_t>();
  d.N = tok.shape[0];
  d.offsets = off.as<const int64_t>();
  d.S = off.shape[0] - 1;
  require(d.S >= 0, "offsets must hold at least one entry");
  for (int64_t s = 0; s < d.S; ++s)
    require(d.offsets[s] >= 0 && d.offsets[s] <= d.offsets[s + 1], "offsets must be non-decreasing");
  require(d.offsets[0] == 0 && d.offsets[d.S] == d.N, "offsets must run from 0 to len(tokens)");
  for (int64_t i = 0; i < d.N; ++i) require(d.tokens[i] >= 0 && d.tokens[i] < p.V, "tokens must lie in [0, V)");
  d.syn0 = w0.as<float>();
  d.keep = optional_table<const uint32_t>(keep, "keep", p.V, -1, 1, false);
  if (negative > 0) {
    d.noise_prob = optional_table<const uint32_t>(noise_prob, "noise_prob", p.V, -1, 1, false);
    d.noise_alias = optional_table<const int32_t>(noise_alias, "noise_alias", p.V, -1, 1, false);
    d.syn1neg = optional_table<float>(syn1neg, "syn1neg", p.V, p.D, 2, true);
    require(d.noise_prob && d.noise_alias && d.syn1neg, "negative > 0 needs noise_prob, noise_alias and syn1neg");
    for (int64_t w = 0; w < p.V; ++w)
      require(d.noise_alias[w] >= 0 && d.noise_alias[w] < p.V, "noise_alias must lie in [0, V)");
  }
  if (hs) {
    d.L = in<int32_t>(points, "points", 2).shape[1];
    d.points = optional_table<const int32_t>(points, "points", p.V, d.L, 2, false);
    d.codes = optional_table<const uint8_t>(codes, "codes", p.V, d.L, 2, false);
    d.lengths = optional_table<const int32_t>(lengths, "lengths", p.V, -1, 1, false);
    if (p.V > 1) d.syn1 = optional_table<float>(syn1, "syn1", p.V - 1, p.D, 2, true);
    require(d.points && d.codes && d.lengths && (p.V == 1 || d.syn1), "hs needs points, codes, lengths and syn1 [V - 1, D]");
    for (int64_t w = 0; w < p.V; ++w) {
      require(d.lengths[w] >= 0 && d.lengths[w] <= d.L, "lengths must lie in [0, L]");
      for (int64_t j = 0; j < d.lengths[w]; ++j)
        require(d.points[w * d.L + j] >= 0 && d.points[w * d.L + j] < p.V - 1, "points must lie in [0, V - 1)");
    }
  }
  View pr = out<double>(progress, "progress", 2);
  require(pr.shape[0] == p.threads && pr.shape[1] == 3, "progress must have shape [threads, 3]");
  d.progress = pr.as<double>();
  View st = in<int32_t>(stop, "stop", 1);
  d.stop = st.shape[0] > 0 ? st.as<const int32_t>() : nullptr;
  const Word2VecResult r = without_gil([&] { return word2vec_train(p, d); });
  return py::make_tuple(r.status, r.words, r.alpha);
}

int64_t w2v_subsample(const py::buffer& tokens, const py::buffer& keep, uint64_t seed, const py::buffer& out_) {
  View t = in<int32_t>(tokens, "tokens", 1), k = in<uint32_t>(keep, "keep", 1), o = out<int32_t>(out_, "out", 1);
  require(o.shape[0] >= t.shape[0], "out must hold len(tokens) entries");
  const int32_t* tp = t.as<const int32_t>();
  for (py::ssize_t i = 0; i < t.shape[0]; ++i)
    require(tp[i] >= 0 && tp[i] < k.shape[0], "tokens must lie in [0, len(keep))");
  return without_gil([&] { return word2vec_subsample(tp, t.shape[0], k.as<const uint32_t>(), seed, o.as<int32_t>()); });
}

void w2v_sigmoid(const py::buffer& f, const py::buffer& out_, int smooth) {
  View fv = in<float>(f, "f", 1), o = out<float>(out_, "out", 1);
  require(o.shape[0] == fv.shape[0], "out must have the length of f");
  without_gil([&] { word2vec_sigmoid(fv.as<const float>(), fv.shape[0], smooth != 0, o.as<float>()); });
}

void w2v_draw_noise(const py::buffer& prob, const py::buffer& alias, uint64_t seed, const py::buffer& out_) {
  View p = in<uint32_t>(prob, "prob", 1), a = in<int32_t>(alias, "alias", 1), o = out<int32_t>(out_, "out", 1);
  require(a.shape[0] == p.shape[0] && p.shape[0] != 0, "prob and alias must have the same length V >= 1");
  const int32_t* ap = a.as<const int32_t>();
  for (py::ssize_t i = 0; i < a.shape[0]; ++i) require(ap[i] >= 0 && ap[i] < a.shape[0], "alias must lie in [0, V)");
  without_gil([&] { word2vec_draw_noise(p.as<const uint32_t>(), ap, p.shape[0], o.shape[0], seed, o.as<int32_t>()); });
}

}  // namespace

void register_word2vec(py::module_& m) {
  m.def("negative_sampling_forward", &ns_forward, py::arg("w_in"), py::arg("w_out"), py::arg("inputs"),
        py::arg("mask"), py::arg("targets"), py::arg("negatives"), py::arg("loss"), py::arg("dtype"),
        py::arg("threads") = 0, "per-example negative-sampling loss (see csrc/negative_sampling.h)");
  m.def("hierarchical_softmax_forward", &hs_forward, py::arg("h"), py::arg("w_nodes"), py::arg("targets"),
        py::arg("points"), py::arg("codes"), py::arg("lengths"), py::arg("loss"), py::arg("dtype"),
        py::arg("threads") = 0, "per-example hierarchical-softmax loss (see csrc/hierarchical_softmax.h)");
  m.def("negative_sampling_backward", &ns_backward, py::arg("w_in"), py::arg("w_out"), py::arg("inputs"),
        py::arg("mask"), py::arg("targets"), py::arg("negatives"), py::arg("grad"), py::arg("d_in"),
        py::arg("d_out"), py::arg("sparse"), py::arg("dtype"), py::arg("threads") = 0,
        "gradients of the negative-sampling loss, dense [V, D] or one row per index");
  m.def("hierarchical_softmax_backward", &hs_backward, py::arg("h"), py::arg("w_nodes"), py::arg("targets"),
        py::arg("points"), py::arg("codes"), py::arg("lengths"), py::arg("grad"), py::arg("d_h"),
        py::arg("d_nodes"), py::arg("sparse"), py::arg("dtype"), py::arg("threads") = 0,
        "gradients of the hierarchical-softmax loss");
  m.def("negative_sampling_step", &ns_step, py::arg("w_in"), py::arg("w_out"), py::arg("inputs"), py::arg("mask"),
        py::arg("targets"), py::arg("negatives"), py::arg("loss"), py::arg("lr"), py::arg("mean_grad"),
        py::arg("dtype"), py::arg("threads") = 0, "fused Hogwild SGD step of the negative-sampling loss, in place");
  m.def("word2vec_train", &w2v_train, py::arg("tokens"), py::arg("offsets"), py::arg("keep"),
        py::arg("noise_prob"), py::arg("noise_alias"), py::arg("points"), py::arg("codes"), py::arg("lengths"),
        py::arg("syn0"), py::arg("syn1neg"), py::arg("syn1"), py::arg("progress"), py::arg("stop"), py::arg("sg"),
        py::arg("hs"), py::arg("negative"), py::arg("window"), py::arg("cbow_mean"), py::arg("shrink_windows"),
        py::arg("epochs"), py::arg("alpha"), py::arg("min_alpha"), py::arg("seed"), py::arg("threads"),
        py::arg("window_update") = 0, py::arg("clamp") = 0, py::arg("smooth_sigmoid") = 0,
        "Hogwild word2vec training on C++ threads, GIL released (see csrc/word2vec.h); returns (status, words, "
        "alpha): status 0 done, 1 stopped, 2 a non-finite score met at learning rate alpha, 3 loss diverged (clamp)");
  m.def("word2vec_subsample", &w2v_subsample, py::arg("tokens"), py::arg("keep"), py::arg("seed"), py::arg("out"),
        "the trainer's subsampling of int32 tokens (kept tokens to out; returns their count)");
  m.def("word2vec_draw_noise", &w2v_draw_noise, py::arg("prob"), py::arg("alias"), py::arg("seed"), py::arg("out"),
        "len(out) draws from the trainer's noise alias table");
  m.def("word2vec_sigmoid", &w2v_sigmoid, py::arg("f"), py::arg("out"), py::arg("smooth") = 0,
        "the trainer's sigmoid of float32 scores (the references' table, or interpolated; NaN where a score is "
        "NaN or saturated, |f| >= 6)");
  m.def("word2vec_isa", &fastrepr::word2vec_isa, "instruction set the word2vec trainer runs with here");
}

}  // namespace fastrepr::bind

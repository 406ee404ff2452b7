// The one checked-call path from Python buffers to a CPU kernel, shared by every csrc/bind_<area>.cpp.
//
// Arguments arrive as buffers (numpy arrays over torch tensors' memory, no copies); 16-bit floats come as their
// raw int16 bits with the real dtype named in a `dtype` string. Every call goes the same way:
//   1. view():       item size, number of dimensions and C-contiguity of each buffer, named in the message;
//   2. require():    the shapes and sizes agree with each other (ValueError naming the argument), checked
//                    before the kernel allocates or reads anything;
//   3. dispatch():   the storage and accumulation types for `dtype` (TypeError for any other dtype);
//   4. run_checked() / without_gil(): the kernel with the GIL released. A kernel that finds a bad index
//                    during its pass returns false and run_checked raises ValueError with the caller's message.
// C++ exceptions: an exception thrown by a kernel (a std::bad_alloc from a per-thread table, rethrown after the
// OpenMP region by ParallelGuard in common.h) unwinds through the GIL release, which takes the GIL back, and
// pybind11 translates it: std::bad_alloc -> MemoryError, std::invalid_argument / std::length_error /
// std::domain_error -> ValueError, any other std::exception -> RuntimeError. py::value_error / py::type_error
// thrown by the checks here become ValueError / TypeError.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common.h"

namespace fastrepr::bind {

namespace py = pybind11;
using Shape = std::vector<py::ssize_t>;

// ---- buffers -------------------------------------------------------------------------------------------

struct View {
  void* ptr;
  Shape shape;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr); }
  py::ssize_t size() const {
    py::ssize_t n = 1;
    for (auto e : shape) n *= e;
    return n;
  }
};

inline View view(const py::buffer& buf, const char* name, py::ssize_t itemsize, int ndim, bool writable) {
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

// A read-only (in) or writable (out) buffer of T items in ndim dimensions.
template <typename T>
View in(const py::buffer& buf, const char* name, int ndim) { return view(buf, name, sizeof(T), ndim, false); }
template <typename T>
View out(const py::buffer& buf, const char* name, int ndim) { return view(buf, name, sizeof(T), ndim, true); }

// A buffer that may be None: nullptr when it is, else its data after the same checks as in<T>, and the check
// that it has `rows` rows (message `shape_error`).
template <typename T>
const T* optional_in(const py::object& obj, const char* name, int ndim, py::ssize_t rows, const char* shape_error,
                     View* got = nullptr) {
  if (obj.is_none()) return nullptr;
  View v = in<T>(obj.cast<py::buffer>(), name, ndim);
  if (v.shape[0] != rows) throw py::value_error(shape_error);
  if (got) *got = v;
  return v.as<const T>();
}

// ---- checks --------------------------------------------------------------------------------------------

// message: a C string, or a callable returning the message (built only when the check fails).
template <typename M>
[[noreturn]] void raise_value_error(M&& message) {
  if constexpr (std::is_invocable_v<M>) throw py::value_error(message());
  else throw py::value_error(message);
}

template <typename M>
void require(bool ok, M&& message) {
  if (!ok) raise_value_error(std::forward<M>(message));
}

inline void require_same(const View& a, const View& b, const char* na, const char* nb) {
  if (a.shape != b.shape) throw py::value_error(std::string(na) + " and " + nb + " must have the same shape");
}

// threads: 0 means OpenMP's default. A count beyond kMaxThreads is a caller's bug, not a request: OpenMP would
// try to start that many threads (each with its own stack) and abort when it cannot.
constexpr int kMaxThreads = 1024;

inline void check_threads(int threads) {
  if (threads < 0 || threads > kMaxThreads)
    throw py::value_error("threads must lie in [0, " + std::to_string(kMaxThreads) + "] (0: OpenMP's default), got " +
                          std::to_string(threads));
}

// ---- dtypes --------------------------------------------------------------------------------------------

// The storage type T of a `dtype` string and the type the kernel accumulates (and writes results) in.
template <typename Storage, typename Accumulate = Storage>
struct DType {
  using T = Storage;
  using Acc = Accumulate;
};
using Float32 = DType<float>;
using Float64 = DType<double>;
using BFloat16 = DType<bf16, float>;
using Float16 = DType<fp16, float>;
using UInt8 = DType<uint8_t>;

template <typename T> constexpr const char* dtype_name();
template <> constexpr const char* dtype_name<float>() { return "float32"; }
template <> constexpr const char* dtype_name<double>() { return "float64"; }
template <> constexpr const char* dtype_name<bf16>() { return "bfloat16"; }
template <> constexpr const char* dtype_name<fp16>() { return "float16"; }
template <> constexpr const char* dtype_name<uint8_t>() { return "uint8"; }

// Calls f(D{}) for the D among Ds whose storage type `dtype` names; false (nothing called) for any other.
template <typename... Ds, typename F>
bool try_dispatch(const std::string& dtype, F&& f) {
  return ((dtype == dtype_name<typename Ds::T>() ? (f(Ds{}), true) : false) || ...);
}

// "float32, float64 or bfloat16"
template <typename... Ds>
std::string dtype_names() {
  const char* names[] = {dtype_name<typename Ds::T>()...};
  const size_t n = sizeof...(Ds);
  std::string s;
  for (size_t i = 0; i < n; ++i) s += std::string(i == 0 ? "" : i + 1 == n ? " or " : ", ") + names[i];
  return s;
}

// try_dispatch, or TypeError naming the dtypes accepted.
template <typename... Ds, typename F>
void dispatch(const std::string& dtype, F&& f) {
  if (!try_dispatch<Ds...>(dtype, std::forward<F>(f)))
    throw py::type_error("unsupported dtype '" + dtype + "' (expected " + dtype_names<Ds...>() + ")");
}

// The four float storage types; 16-bit ones accumulate in float.
template <typename F>
void dispatch_float(const std::string& dtype, F&& f) {
  dispatch<Float32, Float64, BFloat16, Float16>(dtype, std::forward<F>(f));
}

// The head of every float kernel entry: the thread count checked, then f called for the dtype's types.
template <typename F>
void dispatch_float(const std::string& dtype, int threads, F&& f) {
  check_threads(threads);
  dispatch_float(dtype, std::forward<F>(f));
}

// ---- running the kernel --------------------------------------------------------------------------------

// kernel() with the GIL released (an exception re-takes it on the way out; see the top of this file).
template <typename F>
auto without_gil(F&& kernel) {
  py::gil_scoped_release nogil;
  return kernel();
}

// kernel() without the GIL; a false result (a bad index met during the pass) raises ValueError(message).
template <typename F, typename M>
void run_checked(F&& kernel, M&& message) {
  if (!without_gil(std::forward<F>(kernel))) raise_value_error(std::forward<M>(message));
}

}  // namespace fastrepr::bind

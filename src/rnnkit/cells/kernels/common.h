// What rnnkit's C++ time loops share (layer_norm_rnn.cpp, step_program.cpp): vectorising maths,
// the row-block threading, the per-step matrix product and the checks. Everything here sits in an
// anonymous namespace: each source that includes it gets its own copy, and nothing is exported.
#pragma once

// The operators' own headers, not ATen/ATen.h (every operator): a few seconds less to build.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/InferenceMode.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <c10/util/accumulate.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

using at::Tensor;

// The row passes are compiled three times where GCC or Clang targets x86-64: for AVX-512 (vectors
// twice as wide as AVX2's),
// for AVX2 + FMA and for the baseline x86-64 every such CPU runs; each call picks one from the
// CPU's features.
// No -march flag: the build in the cache folder must run on whichever machine shares the folder.
// (Not target_clones("arch=haswell"): its resolver asks for that CPU model, not its features.)
#if defined(__GNUC__) && defined(__x86_64__)
#define RNNKIT_AVX2 1
#define RNNKIT_AVX2_TARGET __attribute__((target("avx2,fma")))
#define RNNKIT_AVX512_TARGET \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,prefer-vector-width=512")))
inline bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
inline bool has_avx512() {
  static const bool yes = has_avx2() && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return yes;
}
#else
#define RNNKIT_AVX2 0
#endif
#define RNNKIT_INLINE inline __attribute__((always_inline))

// ---------------------------------------------------------------- maths that vectorises
//
// The row passes are loops over contiguous values, which the compiler turns into SIMD code, but
// not through calls to std::exp / std::tanh (the library's scalar functions): in float those
// calls cost more than the whole PyTorch step. So float gets branch-free polynomial versions
// (Cephes' expf, 1 ulp; Eigen's rational tanh, a few ulp) that vectorise; double, which only
// tests and gradcheck use, keeps the library's.

template <typename T>
RNNKIT_INLINE T exp_(T x) {
  return std::exp(x);
}

template <>
RNNKIT_INLINE float exp_(float x) {
  x = x < -87.f ? -87.f : (x > 88.f ? 88.f : x);  // 2^n stays a normal float
  const float t = x * 1.44269504088896341f + 12582912.f;  // + 1.5 * 2^23 rounds x / ln2 to n
  const float n = t - 12582912.f;
  int32_t ti;
  std::memcpy(&ti, &t, 4);
  const int32_t ni = ti - 0x4B400000;  // n as an integer: the low bits of t
  float r = x - n * 0.693359375f;      // x - n ln2 in two parts, exact to float
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.f;
  const int32_t si = (ni + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &si, 4);
  return e * scale;
}

template <typename T>
RNNKIT_INLINE T tanh_(T x) {
  return std::tanh(x);
}

template <>
RNNKIT_INLINE float tanh_(float x) {
  const float c = 7.90531110763549805f;  // tanh is 1 to float beyond
  const float xc = x < -c ? -c : (x > c ? c : x);
  const float x2 = xc * xc;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  const float y = p * xc / q;
  return (x < 0.0004f && x > -0.0004f) ? x : y;
}

template <typename T>
RNNKIT_INLINE T sigmoid(T x) {
  return T(1) / (T(1) + exp_(-x));
}


// Rows per task: a row is 3H or 4H values, a few microseconds of work; keep tasks above ~16k
// values so that the threads' start-up does not eat the gain.
inline int64_t grain(int64_t row) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(row, 1)); }

// How many blocks of batch rows to give the threads for a whole time loop (1: no split).
//
// The rows of a recurrent layer never meet (only the weights are shared), so each thread can
// run every step for its own block of rows, its matrix products single-threaded (MKL and oneDNN
// run serially inside a parallel region), and the threads meet once per call instead of twice
// per step (the product, then the row pass). On 2 threads of this project's machine half the rows
// on one thread take about as long as all of them spread over both (benchmarks/dense_products.py,
// half-rows against onednn-packed, half-panels against loop-panels), so splitting costs the
// products nothing from B = 2 * kMinRows up and saves the meetings. Below that the per-step
// products are too thin to share well, and the loop keeps one product over all rows plus a
// parallel row pass.
constexpr int64_t kMinRows = 8;
inline int64_t row_blocks(int64_t B) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), B / kMinRows));
}

// Run body(b0, b1, parallel_rows) over the batch: one call per block of rows, each on its own
// thread; or, with one block, one call over all rows whose row passes may use every thread.
template <typename F>
void over_row_blocks(int64_t B, const F& body) {
  const int64_t n = row_blocks(B);
  if (n == 1) return body(int64_t(0), B, true);
  at::parallel_for(0, n, 1, [&](int64_t i0, int64_t i1) {
    at::NoGradGuard no_grad;  // grad mode is per thread: the callers' guard is not seen here
    for (int64_t i = i0; i < i1; ++i) body(B * i / n, B * (i + 1) / n, false);
  });
}

// ---------------------------------------------------------------- the per-step product
//
// A time loop's product h_{t-1} W^T is small (B 16-64 rows, K 64-512, N 4H) and made once per
// step: a library call per step costs its dispatch, its checks and an output tensor, and a
// generic GEMM lays W out again unless it is given a pre-packed copy. So with AVX-512 the
// loops make it here: W laid out once per call in panels (pack_panels) and one small kernel
// that keeps a block of 4 rows x 64 columns of the result in 16 vector registers while it runs
// down K (a broadcast of h and one FMA per vector and k), the same scheme as the libraries'
// own micro-kernels, writing straight into the loop's buffer. On one thread's half of the
// batch it took 0.45-0.77 of the time of oneDNN's linear on its own prepacked weight, 19-24 us
// less per step at B 32-64, H 128-256 (benchmarks/dense_products.py, the half-* rows, 2026-11-29,
// 816c8e6). Each row's sum is taken in the same order whatever the other rows are, so the
// result of a row does not depend on the batch or on how the rows were split among threads.

constexpr int64_t kPanel = 64;  // columns of W per panel: four 16-float vectors
constexpr int64_t kPanelRows = 4;  // rows of h per kernel call: 4 x 4 accumulators

// Floats in W's panel layout: N rounded up to 16 columns, times K.
inline int64_t panel_floats(int64_t N, int64_t K) { return (N + 15) / 16 * 16 * K; }

// W (N, K), element (n, k) at w[n sn + k sk], into panels: panel p holds columns
// [64 p, 64 p + w) as K rows of `wp` floats (w rounded up to 16, the padding zero), and starts at
// float 64 p K. Copied in tiles of 16 k, reading along whichever index is contiguous: a
// transpose read across rows 1-2 kB apart would fall into a few cache sets and thrash.
inline void pack_panels_into(const float* w, int64_t sn, int64_t sk, int64_t N, int64_t K,
                             float* out) {
  for (int64_t n0 = 0; n0 < N; n0 += kPanel) {
    const int64_t width = std::min(kPanel, N - n0), wp = (width + 15) / 16 * 16;
    float* panel = out + n0 * K;
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
      const int64_t k1 = std::min(K, k0 + 16);
      if (sk == 1) {
        for (int64_t j = 0; j < width; ++j)
          for (int64_t k = k0; k < k1; ++k) panel[k * wp + j] = w[(n0 + j) * sn + k];
      } else {
        for (int64_t k = k0; k < k1; ++k)
          for (int64_t j = 0; j < width; ++j) panel[k * wp + j] = w[(n0 + j) * sn + k * sk];
      }
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t j = width; j < wp; ++j) panel[k * wp + j] = 0.f;
    }
  }
}

#if RNNKIT_AVX2
// C[MR, 16 NV] = init + A[MR, K] P[K, 16 NV]; init is C itself (accumulate), the bias or zero.
// `last` masks the columns of the last vector that exist.
template <int MR, int NV>
RNNKIT_AVX512_TARGET void panel_block(const float* A, int64_t lda, const float* P, int64_t K,
                                      float* C, int64_t ldc, const float* bias, bool accumulate,
                                      __mmask16 last) {
  __m512 acc[MR][NV];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = v == NV - 1 ? last : __mmask16(0xFFFF);
      acc[r][v] = accumulate ? _mm512_maskz_loadu_ps(m, C + r * ldc + 16 * v)
                  : bias     ? _mm512_maskz_loadu_ps(m, bias + 16 * v)
                             : _mm512_setzero_ps();
    }
  for (int64_t k = 0; k < K; ++k) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(P + k * 16 * NV + 16 * v);
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      _mm512_mask_storeu_ps(C + r * ldc + 16 * v, v == NV - 1 ? last : __mmask16(0xFFFF),
                            acc[r][v]);
}

template <int MR>
RNNKIT_AVX512_TARGET void panel_rows(int64_t nv, const float* A, int64_t lda, const float* P,
                                     int64_t K, float* C, int64_t ldc, const float* bias,
                                     bool accumulate, __mmask16 last) {
  switch (nv) {
    case 4: return panel_block<MR, 4>(A, lda, P, K, C, ldc, bias, accumulate, last);
    case 3: return panel_block<MR, 3>(A, lda, P, K, C, ldc, bias, accumulate, last);
    case 2: return panel_block<MR, 2>(A, lda, P, K, C, ldc, bias, accumulate, last);
    default: return panel_block<MR, 1>(A, lda, P, K, C, ldc, bias, accumulate, last);
  }
}

// Columns of panels [p0, p1) of C (M, N) = (C or bias or 0) + A (M, K) W^T, W in panels.
RNNKIT_AVX512_TARGET void panel_product(const float* A, int64_t lda, int64_t M, const float* P,
                                        int64_t K, int64_t N, float* C, int64_t ldc,
                                        const float* bias, bool accumulate, int64_t p0,
                                        int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t n0 = p * kPanel, width = std::min(kPanel, N - n0), nv = (width + 15) / 16;
    const __mmask16 last = width % 16 ? __mmask16((1u << (width % 16)) - 1) : __mmask16(0xFFFF);
    const float* panel = P + n0 * K;
    const float* b = bias ? bias + n0 : nullptr;
    int64_t m = 0;
    for (; m + kPanelRows <= M; m += kPanelRows)
      panel_rows<kPanelRows>(nv, A + m * lda, lda, panel, K, C + m * ldc + n0, ldc, b,
                             accumulate, last);
    const float* a = A + m * lda;
    float* c = C + m * ldc + n0;
    switch (M - m) {
      case 3: panel_rows<3>(nv, a, lda, panel, K, c, ldc, b, accumulate, last); break;
      case 2: panel_rows<2>(nv, a, lda, panel, K, c, ldc, b, accumulate, last); break;
      case 1: panel_rows<1>(nv, a, lda, panel, K, c, ldc, b, accumulate, last); break;
      default: break;
    }
  }
}
#endif

// Whether this CPU makes the per-step product with panel_product (else oneDNN or ATen's mm).
inline bool has_panels() {
#if RNNKIT_AVX2
  return has_avx512();
#else
  return false;
#endif
}

// W (N, K), float32, any strides (W^T of a contiguous W too), laid out for panel_product:
// panel_floats(N, K) floats, returned as a (N, K, 1) view over them (the view records N and K,
// which the size alone cannot, and its three dimensions tell it from oneDNN's (N, K) layout);
// an empty 1-D tensor where this CPU has no AVX-512 (the caller then lays W out for oneDNN).
Tensor pack_panels(const Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kFloat && w.device().is_cpu(),
              "rnnkit kernels: pack_panels takes a 2-D float32 CPU weight, got ", w.sizes(), " ",
              w.scalar_type());
  if (!has_panels()) return at::empty({0}, w.options());
  const int64_t N = w.size(0), K = w.size(1);
  Tensor out = at::empty({panel_floats(N, K)}, w.options());
  pack_panels_into(w.data_ptr<float>(), w.stride(0), w.stride(1), N, K, out.data_ptr<float>());
  return out.as_strided({N, K, 1}, {K, 1, 1});
}

// Whether `panels` is pack_panels' layout of a W of N rows and K columns.
inline bool is_panels_of(const Tensor& panels, int64_t N, int64_t K) {
  return panels.dim() == 3 && panels.size(0) == N && panels.size(1) == K &&
         panels.size(2) == 1 && panels.scalar_type() == at::kFloat && panels.device().is_cpu() &&
         panels.storage().nbytes() >=
             size_t(panels.storage_offset() + panel_floats(N, K)) * sizeof(float);
}

// out (M, N) = (out if accumulate, else bias or 0) + h (M, K) W^T, W from pack_panels. Rows of
// h and out may be strided (a block of a bigger batch); their columns must be contiguous. On
// one thread inside a parallel region (the row blocks), else the panels spread over the threads.
void panel_step(Tensor& out, const Tensor& h, const Tensor& panels, const Tensor* bias,
                bool accumulate) {
  TORCH_CHECK(has_panels(), "rnnkit kernels: the per-step panel kernel needs AVX-512");
  TORCH_CHECK(h.dim() == 2 && out.dim() == 2 && h.device().is_cpu() && out.device().is_cpu(),
              "rnnkit kernels: per-step product: h and out must be 2-D CPU tensors");
  const int64_t M = h.size(0), K = h.size(1), N = out.size(1);
  TORCH_CHECK(h.scalar_type() == at::kFloat && out.scalar_type() == at::kFloat &&
                  h.stride(1) == 1 && out.stride(1) == 1 && out.size(0) == M &&
                  is_panels_of(panels, N, K) &&
                  (!bias || (bias->dim() == 1 && bias->numel() == N && bias->is_contiguous() &&
                             bias->scalar_type() == at::kFloat)),
              "rnnkit kernels: per-step product: operands do not match the packed weight");
#if RNNKIT_AVX2
  const float* A = h.data_ptr<float>();
  const float* P = panels.data_ptr<float>();
  float* C = out.data_ptr<float>();
  const float* b = bias ? bias->data_ptr<float>() : nullptr;
  const int64_t n_panels = (N + kPanel - 1) / kPanel;
  const int64_t per_panel = std::max<int64_t>(1, M * K * kPanel);  // FMAs of one panel
  at::parallel_for(0, n_panels, std::max<int64_t>(1, (int64_t(1) << 16) / per_panel),
                   [&](int64_t p0, int64_t p1) {
                     panel_product(A, h.stride(0), M, P, K, N, C, out.stride(0), b, accumulate,
                                   p0, p1);
                   });
#endif
}

// One step's h_{t-1} W^T (+ bias) into `out`. `packed` is W laid out once per call, in Python
// (dense.packed_for_steps): the (N, K, 1) view from pack_panels (panel_step above), or, on
// CPUs without AVX-512, W laid out for oneDNN by mkldnn::_reorder_linear_weight, whose linear
// is the product torch's own fused CPU LSTM is built on (0.64-0.84 of ATen mm's time at B
// 16-64, H 128-256 on 2 threads of this project's machine, benchmarks/dense_products.py, the
// onednn-packed rows, because the weights are not re-packed at every step). Without `packed`,
// ATen's mm. All are the same sum to float rounding.
// With `accumulate`, out += h W^T instead (no bias then). Returns the rows holding the product:
// `out`, or with `scratch` (out is only a work buffer) oneDNN's own result, saving the copy.
Tensor step_product(Tensor& out, const Tensor& h, const Tensor& w_t, const Tensor* packed,
                    const Tensor* bias, bool accumulate = false, bool scratch = false) {
  if (packed != nullptr && packed->dim() == 3) {
    panel_step(out, h, *packed, bias, accumulate);
    return out;
  }
  if (packed == nullptr) {
    if (accumulate)
      out.addmm_(h, w_t);
    else if (bias)
      at::addmm_out(out, *bias, h, w_t);
    else
      at::mm_out(out, h, w_t);
    return out;
  }
  static const auto linear =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
          .typed<Tensor(const Tensor&, const Tensor&, const std::optional<Tensor>&,
                        std::string_view, c10::List<std::optional<c10::Scalar>>,
                        std::optional<std::string_view>)>();
  const std::optional<Tensor> b = bias ? std::optional<Tensor>(*bias) : std::nullopt;
  const Tensor product =
      linear.call(h, *packed, b, "none", c10::List<std::optional<c10::Scalar>>(), std::nullopt);
  if (scratch && !accumulate) return product;
  if (accumulate)
    out.add_(product);
  else
    out.copy_(product);
  return out;
}

void check(const Tensor& t, const Tensor& like, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "rnnkit kernels: ", name, " must be on the CPU");
  TORCH_CHECK(t.is_contiguous(), "rnnkit kernels: ", name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "rnnkit kernels: ", name, " has dtype ",
              t.scalar_type(), ", expected ", like.scalar_type());
}

// Row 0 of step t of a (T, B, ...) buffer: pointer arithmetic, where x[t] would build a tensor
// (a microsecond each, some fifteen times a step)
template <typename T>
inline T* step(const Tensor& x, int64_t t) {
  return x.data_ptr<T>() + t * x.stride(0);
}

// One function per row pass and dtype, so that float's can be cloned for AVX-512 and AVX2 (double
// is for tests and gradcheck, not for speed).
#if RNNKIT_AVX2
#define RNNKIT_ROWS_AVX2(name, Step)                                                     \
  RNNKIT_AVX2_TARGET void name##_avx2(const Step<float>& s, int64_t b0, int64_t b1) {     \
    name##_<float>(s, b0, b1);                                                           \
  }                                                                                      \
  RNNKIT_AVX512_TARGET void name##_avx512(const Step<float>& s, int64_t b0, int64_t b1) { \
    name##_<float>(s, b0, b1);                                                           \
  }
#define RNNKIT_CALL_AVX2(name)                             \
  if (has_avx512()) return name##_avx512(s, b0, b1); \
  if (has_avx2()) return name##_avx2(s, b0, b1);
#else
#define RNNKIT_ROWS_AVX2(name, Step)
#define RNNKIT_CALL_AVX2(name)
#endif
#define RNNKIT_ROWS(name, Step)                                                \
  RNNKIT_ROWS_AVX2(name, Step)                                                 \
  void name##_f(const Step<float>& s, int64_t b0, int64_t b1) {                \
    RNNKIT_CALL_AVX2(name)                                                     \
    name##_<float>(s, b0, b1);                                                 \
  }                                                                            \
  void name##_d(const Step<double>& s, int64_t b0, int64_t b1) {               \
    name##_<double>(s, b0, b1);                                                \
  }                                                                            \
  template <typename T>                                                        \
  void name##_serial(const Step<T>& s, int64_t b0, int64_t b1) {               \
    if constexpr (std::is_same_v<T, float>)                                    \
      name##_f(s, b0, b1);                                                     \
    else                                                                       \
      name##_d(s, b0, b1);                                                     \
  }                                                                            \
  /* rows [b0, b1): spread over the threads (parallel), or on this thread */   \
  template <typename T>                                                        \
  void name(const Step<T>& s, int64_t b0, int64_t b1, int64_t row, bool parallel) { \
    if (!parallel) return name##_serial(s, b0, b1);                            \
    at::parallel_for(b0, b1, grain(row),                                       \
                     [&](int64_t i0, int64_t i1) { name##_serial(s, i0, i1); }); \
  }

// RNNKIT_ROWS for a row pass written once as name##_impl<T, FLAG>: the compile-time FLAG is
// chosen per call from the step's member `flag` (a pointer or a bool), so each variant's inner
// loop carries no test of it.
#define RNNKIT_ROWS_BY_FLAG(name, Step, flag)                                  \
  template <typename T>                                                        \
  RNNKIT_INLINE void name##_(const Step<T>& s, int64_t b0, int64_t b1) {       \
    if (s.flag) return name##_impl<T, true>(s, b0, b1);                        \
    name##_impl<T, false>(s, b0, b1);                                          \
  }                                                                            \
  RNNKIT_ROWS(name, Step)

}  // namespace

// ---------------------------------------------------------------- the buffer pool

namespace rnnkit_kernels_pool {

// at::empty, but a buffer of 4 MB or more is backed by 2 MB pages where Linux offers them
// (transparent huge pages in "madvise" mode, the usual setting, serve only memory that asks).
// The time loops' whole-sequence buffers (T, B, 4H) are tens of megabytes; from 32 MB up glibc
// maps them fresh at every call, and with 4 kB pages the first write to each page is a fault,
// some ten thousand per buffer, which can cost as much as the loop's arithmetic
// (benchmarks/dense_products.py, the buffer rows, times one fresh buffer written once both ways).
// Only the part of the buffer that covers whole 2 MB pages is advised; elsewhere, or where the
// system says no, this is at::empty.
inline at::Tensor empty_huge(at::IntArrayRef sizes, const at::TensorOptions& opt) {
  at::Tensor t = at::empty(sizes, opt);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (t.nbytes() >= 2 * kHuge) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(t.data_ptr());
    const uintptr_t a = (p + kHuge - 1) & ~(kHuge - 1), e = (p + t.nbytes()) & ~(kHuge - 1);
    if (e > a) (void)madvise(reinterpret_cast<void*>(a), e - a, MADV_HUGEPAGE);  // a hint
  }
#endif
  return t;
}

// A whole-sequence buffer for a time loop: empty_huge's memory, kept after use for the next
// call's buffers. A training loop asks for the same shapes at every step, and fresh memory
// costs twice: the faults on first write, and the zeroing of every page by the system (and on a
// virtual machine whose host has taken the pages back, faults on the host too). A kept buffer
// is lent as a tensor of its own (see lend) and lent again only when every tensor lent from it
// has been freed. Buffers under 4 MB are not kept (the allocator recycles those), nor beyond
// kPoolBytes in all: past that the oldest free ones are let go, and what does not fit is an
// ordinary allocation.
constexpr size_t kPoolBytes = size_t(512) << 20;

class BufferPool {
 public:
  at::Tensor take(at::IntArrayRef sizes, const at::TensorOptions& opt) {
    const int64_t numel = c10::multiply_integers(sizes);
    const size_t need = size_t(numel) * opt.dtype().itemsize();
    if (need < (size_t(4) << 20)) return at::empty(sizes, opt);
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < kept_.size(); ++i) {
      const at::Tensor& t = kept_[i].tensor;
      // the same dtype, big enough and not much bigger, and held by nobody else
      if (t.dtype() == opt.dtype() && t.nbytes() >= need && t.nbytes() <= need + need / 4 &&
          kept_[i].free()) {
        std::rotate(kept_.begin() + i, kept_.begin() + i + 1, kept_.end());  // newest last
        return lend(kept_.back().tensor, sizes, opt);
      }
    }
    at::Tensor fresh;
    {
      c10::InferenceMode normal(false);  // the pool's own memory: an ordinary tensor
      fresh = empty_huge({numel}, opt);
    }
    for (size_t i = 0; i < kept_.size() && bytes_ + need > kPoolBytes;) {  // oldest first
      if (kept_[i].free()) {
        bytes_ -= kept_[i].tensor.nbytes();
        kept_.erase(kept_.begin() + i);
      } else {
        ++i;
      }
    }
    if (bytes_ + need <= kPoolBytes) {
      kept_.push_back({fresh});
      bytes_ += need;
    }
    return lend(fresh, sizes, opt);
  }

  std::vector<int64_t> stats() {  // {buffers kept, bytes kept, of them free}
    std::lock_guard<std::mutex> lock(mutex_);
    int64_t free = 0;
    for (const Kept& k : kept_) free += k.free();
    return {int64_t(kept_.size()), int64_t(bytes_), free};
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    kept_.clear();
    bytes_ = 0;
  }

 private:
  // A tensor of its own (not a view: in-place operations, autograd and pickling see an
  // ordinary tensor of exactly `sizes`, made in the caller's mode, inference or not) over the
  // first bytes of `kept`, whose storage it holds until it is freed: its deleter keeps a
  // reference. share_memory_ on it moves its data away and drops that reference.
  static at::Tensor lend(const at::Tensor& kept, at::IntArrayRef sizes,
                         const at::TensorOptions& opt) {
    c10::Storage owner = kept.storage();  // counted by the storage's use count
    return at::from_blob(
        kept.data_ptr(), sizes, [owner](void*) mutable { owner = c10::Storage(); }, opt);
  }

  struct Kept {
    at::Tensor tensor;  // 1-D
    // nobody else holds its storage: every tensor lent from it has been freed
    bool free() const { return tensor.storage().use_count() == 1; }
  };
  std::mutex mutex_;
  std::vector<Kept> kept_;  // oldest first
  size_t bytes_ = 0;
};

// One pool for the whole library: an inline function outside the anonymous namespace, so every
// source file that includes this header shares its one static. Never destroyed: at exit its
// tensors would be freed after torch's allocator may be gone.
inline BufferPool& buffer_pool() {
  static BufferPool* pool = new BufferPool();
  return *pool;
}

inline at::Tensor sequence_buffer(at::IntArrayRef sizes, const at::TensorOptions& opt) {
  return buffer_pool().take(sizes, opt);
}

}  // namespace rnnkit_kernels_pool

namespace {
using rnnkit_kernels_pool::buffer_pool;
using rnnkit_kernels_pool::empty_huge;
using rnnkit_kernels_pool::sequence_buffer;
}  // namespace


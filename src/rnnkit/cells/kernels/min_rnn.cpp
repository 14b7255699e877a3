// The gate maths of minGRU and minLSTM around their scan (rnnkit/cells/min_rnn.py, _MinScan),
// forward and backward, as one pass over the (T * B) rows of the projection each, on the CPU.
//
// The scan itself stays in Python (linear_scan.py); what this replaces is the dozen elementwise
// PyTorch kernels before it and after it, each a whole pass over a (T, B, H) tensor and a fresh
// one to write, which cost more than the scan at T = 4096. The numbers are min_rnn.py's to float
// rounding: the same formulas, with the polynomial exp of common.h.
//
// Per value, with k the candidate's pre-activation and g(k) = relu(k) + sigmoid(min(k, 0)):
//   minGRU   w = sigmoid(u)
//   minLSTM  w = sigmoid(softplus(-k_f) - softplus(-k_i)), computed as 1 / (1 + r) with
//            r = exp(max(-k_i, 0) - max(-k_f, 0)) (1 + exp(-|k_i|)) / (1 + exp(-|k_f|))
//            (the same quotient with every exponential at most 1, so nothing overflows but r,
//            whose overflow gives w = 0, the limit)
//   a = 1 - w, b = w g(k): the scan's h_t = a_t h_{t-1} + b_t.
// Backward, with lambda the adjoint from the reverse scan and h_{t-1} (h0 at t = 0):
//   du = lambda w a (g - h_{t-1}); dk = lambda w g'(k), g' = 1 above zero, sigmoid' at and below
//   minLSTM: dk_f = -du sigmoid(-k_f), dk_i = du sigmoid(-k_i).

#include "common.h"

namespace {

template <typename T>
struct MinFwd {
  const T* xp;  // (T * B, G * H): u, k or k_f, k_i, k
  T *w, *a, *gk, *sig_k, *b;  // (T * B, H) each
  int64_t H;
  bool lstm;
};

template <typename T, bool LSTM>
RNNKIT_INLINE void min_forward_rows_impl(const MinFwd<T>& s, int64_t r0, int64_t r1) {
  const int64_t H = s.H, G = LSTM ? 3 * H : 2 * H;
  for (int64_t r = r0; r < r1; ++r) {
    const T* x = s.xp + r * G;
    const T* k = x + G - H;
    T *w = s.w + r * H, *a = s.a + r * H, *gk = s.gk + r * H, *sk = s.sig_k + r * H;
    T* b = s.b + r * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      T wj;
      if constexpr (LSTM) {
        const T kf = x[j], ki = x[H + j];
        const T mf = kf < T(0) ? -kf : T(0), mi = ki < T(0) ? -ki : T(0);
        const T ef = exp_(kf < T(0) ? kf : -kf), ei = exp_(ki < T(0) ? ki : -ki);
        const T ratio = exp_(mi - mf) * (T(1) + ei) / (T(1) + ef);
        wj = T(1) / (T(1) + ratio);
      } else {
        wj = sigmoid(x[j]);
      }
      // min(k, 0) and relu(k), a NaN kept as torch's clamp_max and relu keep it
      const T kj = k[j];
      const T sig = sigmoid(kj > T(0) ? T(0) : kj);
      const T g = (kj < T(0) ? T(0) : kj) + sig;
      w[j] = wj, a[j] = T(1) - wj, gk[j] = g, sk[j] = sig, b[j] = wj * g;
    }
  }
}

RNNKIT_ROWS_BY_FLAG(min_forward_rows, MinFwd, lstm)

template <typename T>
struct MinBwd {
  const T *xp, *lam, *w, *a, *gk, *sig_k, *hs, *h0;  // h0 (B, H)
  T* grad;  // (T * B, G * H)
  int64_t H, B;
  bool lstm;
};

template <typename T, bool LSTM>
RNNKIT_INLINE void min_backward_rows_impl(const MinBwd<T>& s, int64_t r0, int64_t r1) {
  const int64_t H = s.H, G = LSTM ? 3 * H : 2 * H;
  for (int64_t r = r0; r < r1; ++r) {
    const T* x = s.xp + r * G;
    const T* k = x + G - H;
    const T *lam = s.lam + r * H, *w = s.w + r * H, *a = s.a + r * H, *gk = s.gk + r * H;
    const T* sk = s.sig_k + r * H;
    const T* hp = r < s.B ? s.h0 + r * H : s.hs + (r - s.B) * H;  // h_{t-1}
    T* d = s.grad + r * G;
    T* dk = d + G - H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T lw = lam[j] * w[j];
      const T du = lw * a[j] * (gk[j] - hp[j]);
      const T slope = k[j] > T(0) ? T(1) : sk[j] * (T(1) - sk[j]);
      dk[j] = lw * slope;
      if constexpr (LSTM) {
        d[j] = -du * sigmoid(-x[j]);         // dk_f
        d[H + j] = du * sigmoid(-x[H + j]);  // dk_i
      } else {
        d[j] = du;
      }
    }
  }
}

RNNKIT_ROWS_BY_FLAG(min_backward_rows, MinBwd, lstm)


int64_t min_hidden(const Tensor& xp, bool lstm) {
  TORCH_CHECK(xp.dim() == 3 && xp.size(2) % (lstm ? 3 : 2) == 0,
              "rnnkit kernels: a min-RNN projection must be (T, B, G * H)");
  return xp.size(2) / (lstm ? 3 : 2);
}

// Returns {w, a, g(k), sigmoid(min(k, 0)), b = w g(k)}, each (T, B, H).
std::vector<Tensor> min_rnn_forward(const Tensor& xp, bool lstm) {
  at::NoGradGuard no_grad;
  check(xp, xp, "xp");
  const int64_t T = xp.size(0), B = xp.size(1), H = min_hidden(xp, lstm);
  std::vector<Tensor> out;
  for (int i = 0; i < 5; ++i) out.push_back(sequence_buffer({T, B, H}, xp.options()));
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "min_rnn_forward", [&] {
    MinFwd<scalar_t> s{xp.data_ptr<scalar_t>(), out[0].data_ptr<scalar_t>(),
                       out[1].data_ptr<scalar_t>(), out[2].data_ptr<scalar_t>(),
                       out[3].data_ptr<scalar_t>(), out[4].data_ptr<scalar_t>(), H, lstm};
    min_forward_rows(s, int64_t(0), T * B, H, true);
  });
  return out;
}

// dL/dxp (T, B, G * H) from the adjoint lam (T, B, H) and what the forward kept.
Tensor min_rnn_backward(const Tensor& xp, const Tensor& lam, const Tensor& w, const Tensor& a,
                        const Tensor& gk, const Tensor& sig_k, const Tensor& hs, const Tensor& h0,
                        bool lstm) {
  at::NoGradGuard no_grad;
  check(xp, xp, "xp");
  for (auto [t, n] : {std::pair{&lam, "lam"}, {&w, "w"}, {&a, "a"}, {&gk, "gk"},
                      {&sig_k, "sig_k"}, {&hs, "hs"}, {&h0, "h0"}})
    check(*t, xp, n);
  const int64_t T = xp.size(0), B = xp.size(1), H = min_hidden(xp, lstm);
  for (const Tensor* t : {&lam, &w, &a, &gk, &sig_k, &hs})
    TORCH_CHECK(t->dim() == 3 && t->size(0) == T && t->size(1) == B && t->size(2) == H,
                "rnnkit kernels: min_rnn_backward got mismatched shapes");
  TORCH_CHECK(h0.numel() == B * H, "rnnkit kernels: min_rnn_backward's h0 must be (B, H)");
  Tensor grad = sequence_buffer({T, B, xp.size(2)}, xp.options());
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "min_rnn_backward", [&] {
    using T_ = scalar_t;
    MinBwd<T_> s{xp.data_ptr<T_>(), lam.data_ptr<T_>(), w.data_ptr<T_>(), a.data_ptr<T_>(),
                 gk.data_ptr<T_>(), sig_k.data_ptr<T_>(), hs.data_ptr<T_>(), h0.data_ptr<T_>(),
                 grad.data_ptr<T_>(), H, B, lstm};
    min_backward_rows(s, int64_t(0), T * B, H, true);
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit_kernels, m) {
  m.def("min_rnn_forward", &min_rnn_forward);
  m.def("min_rnn_backward", &min_rnn_backward);
}

// The time loops of the layer-normalised LSTM and GRU engines and of torch.nn.GRU's plain GRU
// (rnnkit/cells/layer_norm_fused.py), forward and backward, on the CPU.
//
// Each step is one matrix product (h @ W_hh^T forward, dp @ W_hh backward) and ONE pass over the
// batch rows that does everything else of the step: the recurrent layer norm, the gate
// nonlinearities, the cell update, the cell layer norm and the output, or their chain rule. In
// PyTorch the same step costs about ten dispatched kernels plus the Python between them, which at
// H 128-256 costs more than the maths. With several threads and enough rows, each thread runs
// the whole loop for its own block of batch rows (over_row_blocks); the row passes are compiled
// for AVX-512, AVX2 and baseline x86-64, chosen at run time.
//
// The recurrent part lives here, with the input side's layer norm (in the row passes) and,
// forward only with the panel kernel, the LSTM's W_ih x_t itself (lstm_forward's x_panels).
// Otherwise the input side W_ih x and the weight gradients (whole-sequence products after the
// loop) stay in PyTorch, in layer_norm_fused.py, which also keeps the pure-PyTorch loops that
// give the same numbers where this file is not built. Buffer layouts and the saved statistics
// are the same as those loops', so the Python code after the loop serves both.
//
// Headers: ATen and torch/library.h only (not torch/extension.h), which keeps the first build
// short. Ops are registered as torch.ops.rnnkit_kernels.*; they take contiguous CPU tensors of
// one floating dtype (lstm_forward's x with x_panels only needs its features contiguous) and are
// called from inside autograd.Functions or under no_grad, never differentiated.

#include "common.h"

namespace {

using at::Tensor;

// mean and 1/sqrt(var + eps) of one row, two passes (the biased variance, as layer_norm has it)
template <typename T>
RNNKIT_INLINE void moments(const T* p, int64_t n, double eps, T& mean, T& rstd) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < n; ++k) s += p[k];
  const T m = s / T(n);
  T v = 0;
#pragma omp simd reduction(+ : v)
  for (int64_t k = 0; k < n; ++k) v += (p[k] - m) * (p[k] - m);
  mean = m;
  rstd = T(1) / std::sqrt(v / T(n) + T(eps));
}

// A row pass sees one step's buffers through one of these: raw pointers to row 0, rows of G
// (gates) or H values. Optional buffers (saved for backward) are null in a forward-only run.
template <typename T>
struct LstmFwdStep {
  T* p;           // h_{t-1} W_hh^T (B, 4H); without save, overwritten with the activations
  T* act;         // sigma(i), sigma(f), tanh(g), sigma(o) (B, 4H), or p itself
  const T* x;     // the input side (B, 4H)
  const T* c_prev;
  T* c;           // c_t (B, H)
  T* tc;          // tanh(LN(c_t)) (B, H), or null
  T* h;           // h_t (B, H)
  T *mean, *rstd, *mean_c, *rstd_c;  // (B) each, or null
  T *mean_x, *rstd_x;                // the input side's norm's, (B) each, or null
  const T *g_hh, *g_c, *b_c;
  // x is the raw W_ih x_t, normalised here with this gain and shift (the bias);
  // null: x is already LN(W_ih x_t) g_ih + b
  const T *g_ih, *b_ih;
  int64_t H;
  double eps_hh, eps_c, eps_ih;
};

// The input side's layer norm is folded in (XNORM: the layer's own engine, whose backward
// folds in its chain rule too) or already done.
template <typename T, bool XNORM>
RNNKIT_INLINE void lstm_forward_rows_impl(const LstmFwdStep<T>& s, int64_t b0, int64_t b1) {
  const int64_t H = s.H, G = 4 * H;
  const T *gh = s.g_hh, *gc = s.g_c, *bc = s.b_c;
  const T *gi = s.g_ih, *bi = s.b_ih;
  for (int64_t b = b0; b < b1; ++b) {
    const T* pr = s.p + b * G;
    T* ar = s.act + b * G;  // may be pr itself: each value is read before it is written
    const T* xr = s.x + b * G;
    const T* cpr = s.c_prev + b * H;
    T* cr = s.c + b * H;
    T* hr = s.h + b * H;
    T m, r, mx = 0, rx = 1;
    moments(pr, G, s.eps_hh, m, r);
    if constexpr (XNORM) moments(xr, G, s.eps_ih, mx, rx);
    // the input side's pre-activation of gate value q
    auto xin = [&](int64_t q) {
      if constexpr (XNORM)
        return (xr[q] - mx) * rx * gi[q] + bi[q];
      else
        return xr[q];
    };
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t k = 0; k < H; ++k) {
      const T i = sigmoid((pr[k] - m) * r * gh[k] + xin(k));
      const T f = sigmoid((pr[H + k] - m) * r * gh[H + k] + xin(H + k));
      const T g = tanh_((pr[2 * H + k] - m) * r * gh[2 * H + k] + xin(2 * H + k));
      const T o = sigmoid((pr[3 * H + k] - m) * r * gh[3 * H + k] + xin(3 * H + k));
      ar[k] = i, ar[H + k] = f, ar[2 * H + k] = g, ar[3 * H + k] = o;
      const T c = f * cpr[k] + i * g;
      cr[k] = c;
      sum += c;
    }
    T mc, rc;
    moments(cr, H, s.eps_c, mc, rc);
    (void)sum;
    if (s.tc) {
      T* tr = s.tc + b * H;
#pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        const T y = tanh_((cr[k] - mc) * rc * gc[k] + bc[k]);
        tr[k] = y;
        hr[k] = ar[3 * H + k] * y;
      }
      s.mean[b] = m, s.rstd[b] = r, s.mean_c[b] = mc, s.rstd_c[b] = rc;
      if constexpr (XNORM) s.mean_x[b] = mx, s.rstd_x[b] = rx;
    } else {
#pragma omp simd
      for (int64_t k = 0; k < H; ++k) hr[k] = ar[3 * H + k] * tanh_((cr[k] - mc) * rc * gc[k] + bc[k]);
    }
  }
}

RNNKIT_ROWS_BY_FLAG(lstm_forward_rows, LstmFwdStep, g_ih)

template <typename T>
struct LstmBwdStep {
  const T *gy, *p, *act, *c, *c_prev, *tc;  // dL/dh_t from above; the saved step
  const T *mean, *rstd, *mean_c, *rstd_c;
  T *dh, *dc;      // (B, H): in, dL/dh_t's recurrent share and dL/dc_t; out, dL/dc_{t-1}
  T *gx, *gp;  // out: dL/d(gates) (B, 4H), dL/dp (B, 4H)
  // running sums over the steps, per row, of the norms' gain and shift gradients: (B, 4H) for
  // the recurrent norm's gain, (B, H) for the cell norm's gain and shift
  T *acc_g_hh, *acc_g_c, *acc_b_c;
  const T *g_hh, *g_c;
  // with the input side's norm folded in: the raw input side W_ih x_t, its norm's gain and
  // statistics, and running sums of that gain's and shift's gradients (B, 4H); gx is then
  // dL/d(W_ih x_t). Null: gx is dL/d(the input side).
  const T *x, *g_ih, *mean_x, *rstd_x;
  T *acc_g_ih, *acc_b_ih;
  int64_t H;
};

template <typename T, bool XNORM>
RNNKIT_INLINE void lstm_backward_rows_impl(const LstmBwdStep<T>& s, int64_t b0, int64_t b1) {
  const int64_t H = s.H, G = 4 * H;
  const T *gh = s.g_hh, *gc = s.g_c;
  for (int64_t b = b0; b < b1; ++b) {
    const T* a = s.act + b * G;
    const T* pr = s.p + b * G;
    const T* c = s.c + b * H;
    const T* cpr = s.c_prev + b * H;
    const T* y = s.tc + b * H;
    const T* gy = s.gy + b * H;
    T* dhr = s.dh + b * H;
    T* dcr = s.dc + b * H;
    T* gx = s.gx + b * G;
    T* gp = s.gp + b * G;
    T* dy = s.acc_b_c + b * H;  // dL/d(LN(c_t)) is kept only as its sums
    T* agc = s.acc_g_c + b * H;
    T* agh = s.acc_g_hh + b * G;
    const T mc = s.mean_c[b], rc = s.rstd_c[b], m = s.mean[b], r = s.rstd[b];
    // h = o tanh(LN(c)): dL/d(LN(c)), and the two sums the layer norm's backward needs
    T s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t k = 0; k < H; ++k) {
      const T d = dhr[k] + gy[k];
      dhr[k] = d;  // the whole dL/dh_t from here on
      const T dyk = d * a[3 * H + k] * (T(1) - y[k] * y[k]);
      const T xh = (c[k] - mc) * rc;
      agc[k] += dyk * xh;
      const T dxh = dyk * gc[k];
      s1 += dxh;
      s2 += dxh * xh;
    }
    s1 /= T(H), s2 /= T(H);
    T u1 = 0, u2 = 0;
#pragma omp simd reduction(+ : u1, u2)
    for (int64_t k = 0; k < H; ++k) {
      const T xh = (c[k] - mc) * rc;
      const T dyk = dhr[k] * a[3 * H + k] * (T(1) - y[k] * y[k]);  // as above, not stored
      dy[k] += dyk;
      const T dcv = dcr[k] + rc * (dyk * gc[k] - s1 - xh * s2);
      const T i = a[k], f = a[H + k], g = a[2 * H + k], o = a[3 * H + k];
      const T gi = dcv * g * i * (T(1) - i);
      const T gf = dcv * cpr[k] * f * (T(1) - f);
      const T gg = dcv * i * (T(1) - g * g);
      const T go = dhr[k] * y[k] * o * (T(1) - o);
      gx[k] = gi, gx[H + k] = gf, gx[2 * H + k] = gg, gx[3 * H + k] = go;
      dcr[k] = dcv * f;  // dL/dc_{t-1} through f c_{t-1}
      // the recurrent layer norm's sums, all four blocks at once
      const T di = gi * gh[k], df = gf * gh[H + k], dg = gg * gh[2 * H + k],
              dO = go * gh[3 * H + k];
      u1 += di + df + dg + dO;
      u2 += di * (pr[k] - m) + df * (pr[H + k] - m) + dg * (pr[2 * H + k] - m) +
            dO * (pr[3 * H + k] - m);
    }
    u1 /= T(G), u2 = u2 * r / T(G);
    T w1 = 0, w2 = 0;  // the input side's norm's two sums (XNORM)
    const T* g_in = s.g_ih;
    const T* xr = XNORM ? s.x + b * G : nullptr;
    const T mx = XNORM ? s.mean_x[b] : T(0), rx = XNORM ? s.rstd_x[b] : T(1);
#pragma omp simd reduction(+ : w1, w2)
    for (int64_t k = 0; k < G; ++k) {
      const T xh = (pr[k] - m) * r;
      agh[k] += gx[k] * xh;
      gp[k] = r * (gx[k] * gh[k] - u1 - xh * u2);
      if constexpr (XNORM) {
        const T v = gx[k] * g_in[k];
        w1 += v;
        w2 += v * (xr[k] - mx) * rx;
      }
    }
    if constexpr (XNORM) {
      w1 /= T(G), w2 /= T(G);
      T* agi = s.acc_g_ih + b * G;
      T* abi = s.acc_b_ih + b * G;
#pragma omp simd
      for (int64_t k = 0; k < G; ++k) {
        const T xh = (xr[k] - mx) * rx;
        agi[k] += gx[k] * xh;
        abi[k] += gx[k];
        gx[k] = rx * (gx[k] * g_in[k] - w1 - xh * w2);  // dL/d(W_ih x_t)
      }
    }
  }
}

RNNKIT_ROWS_BY_FLAG(lstm_backward_rows, LstmBwdStep, g_ih)

// The GRU row passes serve two engines: the layer-normalised GRU (g_hh set: u = LN(p) g + b_hh)
// and the plain GRU of torch.nn.GRU (g_hh null: the step's matrix product already added b_hh,
// so u = p = W_hh h + b_hh). Either way r = sigma(x_r + u_r), z = sigma(x_z + u_z),
// n = tanh(x_n + r u_n): b_hn sits inside r (...), as torch has it.
template <typename T>
struct GruFwdStep {
  const T *p, *x, *h_prev;
  T* h;
  T *rz, *n, *u_n, *mean, *rstd;  // saved for backward, or null (mean, rstd: with the norm only)
  const T *g_hh, *b_hh;           // g_hh null: no layer norm
  int64_t H;
  double eps;
};

template <typename T, bool Norm, bool Save>
RNNKIT_INLINE void gru_forward_rows_impl(const GruFwdStep<T>& s, int64_t b0, int64_t b1) {
  const int64_t H = s.H, G = 3 * H;
  const T *gh = s.g_hh, *bh = s.b_hh;
  for (int64_t b = b0; b < b1; ++b) {
    const T* pr = s.p + b * G;
    const T* xr = s.x + b * G;
    const T* hpr = s.h_prev + b * H;
    T* hr = s.h + b * H;
    T m = 0, rs = 1;
    if constexpr (Norm) moments(pr, G, s.eps, m, rs);
    T* rzr = Save ? s.rz + b * 2 * H : nullptr;
    T* nr = Save ? s.n + b * H : nullptr;
    T* unr = Save ? s.u_n + b * H : nullptr;
#pragma omp simd
    for (int64_t k = 0; k < H; ++k) {
      T ur, uz, un;
      if constexpr (Norm) {
        ur = (pr[k] - m) * rs * gh[k] + bh[k];
        uz = (pr[H + k] - m) * rs * gh[H + k] + bh[H + k];
        un = (pr[2 * H + k] - m) * rs * gh[2 * H + k] + bh[2 * H + k];
      } else {
        ur = pr[k], uz = pr[H + k], un = pr[2 * H + k];
      }
      const T r = sigmoid(xr[k] + ur);
      const T z = sigmoid(xr[H + k] + uz);
      const T n = tanh_(xr[2 * H + k] + r * un);
      hr[k] = n + z * (hpr[k] - n);  // (1 - z) n + z h, as gru_update and ATen have it
      if constexpr (Save) rzr[k] = r, rzr[H + k] = z, nr[k] = n, unr[k] = un;
    }
    if constexpr (Norm && Save) s.mean[b] = m, s.rstd[b] = rs;
  }
}

template <typename T>
RNNKIT_INLINE void gru_forward_rows_(const GruFwdStep<T>& s, int64_t b0, int64_t b1) {
  if (s.g_hh) {
    if (s.rz) return gru_forward_rows_impl<T, true, true>(s, b0, b1);
    return gru_forward_rows_impl<T, true, false>(s, b0, b1);
  }
  if (s.rz) return gru_forward_rows_impl<T, false, true>(s, b0, b1);
  gru_forward_rows_impl<T, false, false>(s, b0, b1);
}

RNNKIT_ROWS(gru_forward_rows, GruFwdStep)

template <typename T>
struct GruBwdStep {
  const T *gy, *h_prev, *p, *rz, *n, *u_n, *mean, *rstd;  // p, mean, rstd: with the norm only
  T* dh;  // in: dL/dh_t's recurrent share; out: dL/dh_{t-1} through z h_{t-1}
  T *gx, *gp;  // out: dL/d(input side), dL/dp, (B, 3H) each
  // Without the norm dL/dp differs from dL/d(input side) only in the candidate's block
  // (times r): that block alone is kept for the whole sequence, gp_n (B, H), and gp is one
  // step's scratch for the step's matrix product.
  T* gp_n;
  // running sums over the steps, per row, of the recurrent norm's gain and shift gradients
  // (with the norm only; without it dL/db_hh and dW_hh are sums taken after the loop)
  T *acc_g_hh, *acc_b_hh;  // (B, 3H) each
  const T* g_hh;           // null: no layer norm
  int64_t H;
};

template <typename T, bool Norm>
RNNKIT_INLINE void gru_backward_rows_impl(const GruBwdStep<T>& s, int64_t b0, int64_t b1) {
  const int64_t H = s.H, G = 3 * H;
  const T* gh = s.g_hh;
  for (int64_t b = b0; b < b1; ++b) {
    const T* rr = s.rz + b * 2 * H;
    const T* zr = rr + H;
    const T* nr = s.n + b * H;
    const T* un = s.u_n + b * H;
    const T* hpr = s.h_prev + b * H;
    const T* gy = s.gy + b * H;
    T* dhr = s.dh + b * H;
    T* gx = s.gx + b * G;
    T* gp = s.gp + b * G;
    T* gu = gp;  // dL/du first; with the norm, overwritten in place by dL/dp below
    T* gpn = Norm ? nullptr : s.gp_n + b * H;
    const T* pr = Norm ? s.p + b * G : nullptr;
    const T m = Norm ? s.mean[b] : T(0), rs = Norm ? s.rstd[b] : T(1);
    T u1 = 0, u2 = 0;
#pragma omp simd reduction(+ : u1, u2)
    for (int64_t k = 0; k < H; ++k) {
      const T d = dhr[k] + gy[k];
      const T r = rr[k], z = zr[k], n = nr[k];
      const T gn = d * (T(1) - z) * (T(1) - n * n);
      const T gr = gn * un[k] * r * (T(1) - r);
      const T gz = d * (hpr[k] - n) * z * (T(1) - z);
      const T gun = gn * r;
      gx[k] = gr, gx[H + k] = gz, gx[2 * H + k] = gn;
      gu[k] = gr, gu[H + k] = gz, gu[2 * H + k] = gun;
      if constexpr (!Norm) gpn[k] = gun;
      dhr[k] = d * z;  // through z h_{t-1}; W_hh h_{t-1}'s share is added after the pass
      if constexpr (Norm) {
        const T dr = gr * gh[k], dz = gz * gh[H + k], dn = gun * gh[2 * H + k];
        u1 += dr + dz + dn;
        u2 += dr * (pr[k] - m) + dz * (pr[H + k] - m) + dn * (pr[2 * H + k] - m);
      }
    }
    if constexpr (Norm) {
      T* agh = s.acc_g_hh + b * G;
      T* abh = s.acc_b_hh + b * G;
      u1 /= T(G), u2 = u2 * rs / T(G);
#pragma omp simd
      for (int64_t k = 0; k < G; ++k) {
        const T xh = (pr[k] - m) * rs;
        agh[k] += gu[k] * xh;
        abh[k] += gu[k];
        gp[k] = rs * (gu[k] * gh[k] - u1 - xh * u2);
      }
    }
  }
}

RNNKIT_ROWS_BY_FLAG(gru_backward_rows, GruBwdStep, g_hh)

// ---------------------------------------------------------------- LSTM

// Writes hs (T, B, H) in place; returns {c_T} or, with save, {c_T, hp, act, cs, tc, mean, rstd,
// mean_c, rstd_c[, mean_x, rstd_x]}: hp = h_{t-1} W_hh^T (T, B, 4H); act = sigma(i), sigma(f),
// tanh(g), sigma(o) (T, B, 4H); cs = c_t and tc = tanh(LN(c_t)) (T, B, H); the norms' mean and
// rstd (T, B, 1), the input side's last, where it is normalised here (g_ih given: xg is then
// the raw W_ih x, and g_ih, b_ih its norm's gain and shift). Forward-only, with x_panels (W_ih
// from pack_panels), xg is the input x (T, B, I) itself and each step makes its W_ih x_t: no
// whole-sequence input side, no chunks, one parallel region for the whole loop.
std::vector<Tensor> lstm_forward(const Tensor& xg, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_hh, const Tensor& g_hh, const Tensor& g_c,
                                 const Tensor& b_c, double eps_hh, double eps_c, Tensor hs,
                                 bool save, const std::optional<Tensor>& w_packed,
                                 const std::optional<Tensor>& g_ih,
                                 const std::optional<Tensor>& b_ih, double eps_ih,
                                 const std::optional<Tensor>& x_panels) {
  at::NoGradGuard no_grad;
  const Tensor* packed = w_packed.has_value() && w_packed->defined() ? &*w_packed : nullptr;
  // forward-only runs may hand over the raw input side and its norm's gain and shift
  const bool xnorm = g_ih.has_value() && g_ih->defined();
  // ... or, with W_ih in panels (x_panels), the input x itself: each step then makes its rows'
  // W_ih x_t with the panel kernel, beside h_{t-1} W_hh^T
  const bool fused_input = x_panels.has_value() && x_panels->defined();
  TORCH_CHECK(!fused_input || (xnorm && !save && xg.dim() == 3 && xg.stride(2) == 1),
              "rnnkit kernels: lstm_forward takes x with W_ih's panels only forward-only, with "
              "the input norm, and x's features contiguous");
  if (xnorm) check(*g_ih, h0, "g_ih"), check(*b_ih, h0, "b_ih");
  for (auto [t, n] : {std::pair{&h0, "h0"}, {&c0, "c0"}, {&w_hh, "w_hh"}, {&g_hh, "g_hh"},
                      {&g_c, "g_c"}, {&b_c, "b_c"}, {&hs, "hs"}})
    check(*t, h0, n);
  TORCH_CHECK(xg.scalar_type() == h0.scalar_type() && xg.device().is_cpu(),
              "rnnkit kernels: lstm_forward: xg must be a CPU tensor of h0's dtype");
  if (!fused_input) check(xg, xg, "xg");
  const int64_t T = xg.size(0), B = xg.size(1), G = w_hh.size(0), H = G / 4;
  TORCH_CHECK(T >= 1 && G == 4 * H && h0.size(0) == B && h0.size(1) == H && hs.size(0) == T &&
                  (fused_input ? is_panels_of(*x_panels, G, xg.size(2))
                               : xg.size(2) == G),
              "rnnkit kernels: lstm_forward got mismatched shapes");
  const auto opt = xg.options();
  const Tensor w_t = w_hh.t();
  Tensor hp, act, cs, tc, mean, rstd, mean_c, rstd_c, cbuf, mean_x, rstd_x;
  if (save && xnorm) mean_x = at::empty({T, B, 1}, opt), rstd_x = at::empty({T, B, 1}, opt);
  if (save) {
    hp = sequence_buffer({T, B, G}, opt);
    act = sequence_buffer({T, B, G}, opt);
    cs = sequence_buffer({T, B, H}, opt);
    tc = sequence_buffer({T, B, H}, opt);
    mean = at::empty({T, B, 1}, opt);
    rstd = at::empty({T, B, 1}, opt);
    mean_c = at::empty({T, B, 1}, opt);
    rstd_c = at::empty({T, B, 1}, opt);
  } else {
    hp = at::empty({1, B, G}, opt);   // the activations overwrite it in place
    cbuf = at::empty({2, B, H}, opt);  // c alternates between two buffers
  }
  AT_DISPATCH_FLOATING_TYPES(xg.scalar_type(), "lstm_forward", [&] {
    using T_ = scalar_t;
    over_row_blocks(B, [&](int64_t b0, int64_t b1, bool parallel_rows) {
    Tensor x_rows = fused_input ? at::empty({b1 - b0, G}, opt) : Tensor();  // W_ih x_t
    for (int64_t t = 0; t < T; ++t) {
      Tensor p = save ? hp[t] : hp[0];
      Tensor p_rows = p.narrow(0, b0, b1 - b0);
      // without save the product's rows are scratch: oneDNN's own result serves as it is
      const Tensor rows = step_product(p_rows, (t == 0 ? h0 : hs[t - 1]).narrow(0, b0, b1 - b0),
                                       w_t, packed, nullptr, false, !save);
      if (fused_input) panel_step(x_rows, xg[t].narrow(0, b0, b1 - b0), *x_panels, nullptr, false);
      // every pointer starts at this block's first row: the row pass runs rows [0, b1 - b0)
      const int64_t g0 = b0 * G, h0_ = b0 * H;
      LstmFwdStep<T_> s{};
      s.p = rows.data_ptr<T_>();
      s.act = save ? step<T_>(act, t) + g0 : s.p;
      s.x = fused_input ? x_rows.data_ptr<T_>() : step<T_>(xg, t) + g0;
      const Tensor& cb = save ? cs : cbuf;  // c_t: cs[t], or cbuf[t % 2]
      s.c_prev = (t == 0 ? c0.data_ptr<T_>() : step<T_>(cb, save ? t - 1 : (t - 1) & 1)) + h0_;
      s.c = step<T_>(cb, save ? t : t & 1) + h0_;
      s.h = step<T_>(hs, t) + h0_;
      if (save) {
        s.tc = step<T_>(tc, t) + h0_;
        s.mean = step<T_>(mean, t) + b0, s.rstd = step<T_>(rstd, t) + b0;
        s.mean_c = step<T_>(mean_c, t) + b0, s.rstd_c = step<T_>(rstd_c, t) + b0;
        if (xnorm) s.mean_x = step<T_>(mean_x, t) + b0, s.rstd_x = step<T_>(rstd_x, t) + b0;
      }
      s.g_hh = g_hh.data_ptr<T_>(), s.g_c = g_c.data_ptr<T_>(), s.b_c = b_c.data_ptr<T_>();
      s.H = H, s.eps_hh = eps_hh, s.eps_c = eps_c;
      if (xnorm) s.g_ih = g_ih->data_ptr<T_>(), s.b_ih = b_ih->data_ptr<T_>(), s.eps_ih = eps_ih;
      lstm_forward_rows(s, int64_t(0), b1 - b0, G, parallel_rows);
    }
    });
  });
  const Tensor c_last = save ? cs[T - 1] : cbuf[(T - 1) & 1];
  if (!save) return {c_last};
  if (xnorm) return {c_last, hp, act, cs, tc, mean, rstd, mean_c, rstd_c, mean_x, rstd_x};
  return {c_last, hp, act, cs, tc, mean, rstd, mean_c, rstd_c};
}

// Returns {grad_xg (T, B, 4H), dh0, dc0, grad_hp (T, B, 4H): dL/d(h_{t-1} W_hh^T), and the
// gradients of the recurrent norm's gain, the cell norm's gain and shift[, the input side's
// norm's gain and shift]}; dW_hh is one whole-sequence product of grad_hp, done in Python.
// With xg, g_ih and the input norm's statistics (the forward normalised the raw input side xg
// itself), grad_xg is dL/d(xg) through that norm.
std::vector<Tensor> lstm_backward(const Tensor& grad_hs, const Tensor& grad_c_T, const Tensor& h0,
                                  const Tensor& c0, const Tensor& w_hh, const Tensor& g_hh,
                                  const Tensor& g_c, const Tensor& hp, const Tensor& act,
                                  const Tensor& cs, const Tensor& tc, const Tensor& mean,
                                  const Tensor& rstd, const Tensor& mean_c, const Tensor& rstd_c,
                                  const std::optional<Tensor>& w_packed_t,
                                  const std::optional<Tensor>& xg,
                                  const std::optional<Tensor>& g_ih,
                                  const std::optional<Tensor>& mean_x,
                                  const std::optional<Tensor>& rstd_x) {
  at::NoGradGuard no_grad;
  // W_hh^T laid out for the per-step product (dL/dh_{t-1} = dp W_hh = dp (W_hh^T)^T), or null
  const Tensor* packed = w_packed_t.has_value() && w_packed_t->defined() ? &*w_packed_t : nullptr;
  for (auto [t, n] :
       {std::pair{&grad_hs, "grad_hs"}, {&grad_c_T, "grad_c_T"}, {&h0, "h0"}, {&c0, "c0"},
        {&w_hh, "w_hh"}, {&g_hh, "g_hh"}, {&g_c, "g_c"}, {&act, "act"}, {&cs, "cs"},
        {&tc, "tc"}, {&mean, "mean"}, {&rstd, "rstd"}, {&mean_c, "mean_c"}, {&rstd_c, "rstd_c"}})
    check(*t, hp, n);
  check(hp, hp, "hp");
  const bool xnorm = g_ih.has_value() && g_ih->defined();
  if (xnorm) {
    TORCH_CHECK(xg.has_value() && mean_x.has_value() && rstd_x.has_value(),
                "rnnkit kernels: lstm_backward's input norm needs xg and its statistics");
    for (auto [t, n] : {std::pair{&*xg, "xg"}, {&*g_ih, "g_ih"}, {&*mean_x, "mean_x"},
                        {&*rstd_x, "rstd_x"}})
      check(*t, hp, n);
    TORCH_CHECK(xg->sizes() == hp.sizes() && mean_x->sizes() == mean.sizes() &&
                    rstd_x->sizes() == mean.sizes() && g_ih->numel() == hp.size(2),
                "rnnkit kernels: lstm_backward got mismatched input-norm shapes");
  }
  const int64_t T = hp.size(0), B = hp.size(1), G = hp.size(2), H = G / 4;
  const auto opt = hp.options();
  Tensor grad_xg = sequence_buffer({T, B, G}, opt);
  Tensor acc_g_ih, acc_b_ih;
  if (xnorm) acc_g_ih = at::zeros({B, G}, opt), acc_b_ih = at::zeros({B, G}, opt);
  Tensor grad_hp = sequence_buffer({T, B, G}, opt);
  Tensor acc_g_hh = at::zeros({B, G}, opt), acc_g_c = at::zeros({B, H}, opt);
  Tensor acc_b_c = at::zeros({B, H}, opt);
  Tensor dh = at::zeros({B, H}, opt);
  Tensor dc = grad_c_T.clone();
  AT_DISPATCH_FLOATING_TYPES(hp.scalar_type(), "lstm_backward", [&] {
    using T_ = scalar_t;
    over_row_blocks(B, [&](int64_t b0, int64_t b1, bool parallel_rows) {
    for (int64_t t = T - 1; t >= 0; --t) {
      LstmBwdStep<T_> s{};
      s.gy = step<T_>(grad_hs, t);
      s.p = step<T_>(hp, t);
      s.act = step<T_>(act, t);
      s.c = step<T_>(cs, t);
      s.c_prev = t == 0 ? c0.data_ptr<T_>() : step<T_>(cs, t - 1);
      s.tc = step<T_>(tc, t);
      s.mean = step<T_>(mean, t), s.rstd = step<T_>(rstd, t);
      s.mean_c = step<T_>(mean_c, t), s.rstd_c = step<T_>(rstd_c, t);
      s.dh = dh.data_ptr<T_>(), s.dc = dc.data_ptr<T_>();
      s.gx = step<T_>(grad_xg, t), s.gp = step<T_>(grad_hp, t);
      s.acc_g_hh = acc_g_hh.data_ptr<T_>(), s.acc_g_c = acc_g_c.data_ptr<T_>();
      s.acc_b_c = acc_b_c.data_ptr<T_>();
      s.g_hh = g_hh.data_ptr<T_>(), s.g_c = g_c.data_ptr<T_>();
      if (xnorm) {
        s.x = step<T_>(*xg, t), s.g_ih = g_ih->data_ptr<T_>();
        s.mean_x = step<T_>(*mean_x, t), s.rstd_x = step<T_>(*rstd_x, t);
        s.acc_g_ih = acc_g_ih.data_ptr<T_>(), s.acc_b_ih = acc_b_ih.data_ptr<T_>();
      }
      s.H = H;
      lstm_backward_rows(s, b0, b1, G, parallel_rows);
      // dL/dh_{t-1}, this block's rows
      Tensor dh_rows = dh.narrow(0, b0, b1 - b0);
      step_product(dh_rows, grad_hp[t].narrow(0, b0, b1 - b0), w_hh, packed, nullptr);
    }
    });
  });
  if (xnorm)
    return {grad_xg, dh, dc, grad_hp, acc_g_hh.sum(0), acc_g_c.sum(0), acc_b_c.sum(0),
            acc_g_ih.sum(0), acc_b_ih.sum(0)};
  return {grad_xg, dh, dc, grad_hp, acc_g_hh.sum(0), acc_g_c.sum(0), acc_b_c.sum(0)};
}

// ---------------------------------------------------------------- GRU

// With g_hh, the layer-normalised GRU; without (None), torch.nn.GRU's, whose step product
// h_{t-1} W_hh^T + b_hh is one addmm, as ATen's own GRU cell computes it.
// Writes hs (T, B, H) in place; returns {} or, with save, {hp, rz, ns, mean, rstd, u_n}:
// hp = h_{t-1} W_hh^T (T, B, 3H); rz the reset and update gates (T, B, 2H); ns the candidates
// and u_n the candidate's block of LN(hp) + b_hh (T, B, H); the norm's mean and rstd (T, B, 1).
// Without the norm the backward needs neither hp nor the statistics: hp is one step's scratch
// (1, B, 3H) and mean, rstd are empty.
std::vector<Tensor> gru_forward(const Tensor& xp, const Tensor& h0, const Tensor& w_hh,
                                const std::optional<Tensor>& g_hh_opt, const Tensor& b_hh,
                                double eps, Tensor hs, bool save,
                                const std::optional<Tensor>& w_packed) {
  at::NoGradGuard no_grad;
  const Tensor* packed = w_packed.has_value() && w_packed->defined() ? &*w_packed : nullptr;
  const bool norm = g_hh_opt.has_value() && g_hh_opt->defined();
  for (auto [t, n] : {std::pair{&h0, "h0"}, {&w_hh, "w_hh"}, {&b_hh, "b_hh"}, {&hs, "hs"}})
    check(*t, xp, n);
  if (norm) check(*g_hh_opt, xp, "g_hh");
  check(xp, xp, "xp");
  const int64_t T = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 3;
  TORCH_CHECK(T >= 1 && G == 3 * H && h0.size(0) == B && h0.size(1) == H && hs.size(0) == T &&
                  b_hh.numel() == G,
              "rnnkit kernels: gru_forward got mismatched shapes");
  const auto opt = xp.options();
  const Tensor w_t = w_hh.t();
  Tensor hp, rz, ns, mean, rstd, u_n;
  if (save) {
    hp = sequence_buffer({norm ? T : 1, B, G}, opt);
    rz = sequence_buffer({T, B, 2 * H}, opt);
    ns = sequence_buffer({T, B, H}, opt);
    u_n = sequence_buffer({T, B, H}, opt);
    mean = at::empty({norm ? T : 0, B, 1}, opt);
    rstd = at::empty({norm ? T : 0, B, 1}, opt);
  } else {
    hp = at::empty({1, B, G}, opt);
  }
  const bool keep_hp = save && norm;
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward", [&] {
    using T_ = scalar_t;
    over_row_blocks(B, [&](int64_t b0, int64_t b1, bool parallel_rows) {
    for (int64_t t = 0; t < T; ++t) {
      const Tensor h_prev = t == 0 ? h0 : hs[t - 1];
      Tensor p = keep_hp ? hp[t] : hp[0];
      Tensor p_rows = p.narrow(0, b0, b1 - b0);
      step_product(p_rows, h_prev.narrow(0, b0, b1 - b0), w_t, packed, norm ? nullptr : &b_hh);
      GruFwdStep<T_> s{};
      s.p = p.data_ptr<T_>();
      s.x = step<T_>(xp, t);
      s.h_prev = h_prev.data_ptr<T_>();
      s.h = step<T_>(hs, t);
      if (save) {
        s.rz = step<T_>(rz, t), s.n = step<T_>(ns, t), s.u_n = step<T_>(u_n, t);
        if (norm) s.mean = step<T_>(mean, t), s.rstd = step<T_>(rstd, t);
      }
      s.g_hh = norm ? g_hh_opt->data_ptr<T_>() : nullptr, s.b_hh = b_hh.data_ptr<T_>();
      s.H = H, s.eps = eps;
      gru_forward_rows(s, b0, b1, G, parallel_rows);
    }
    });
  });
  if (!save) return {};
  return {hp, rz, ns, mean, rstd, u_n};
}

// Returns {grad_xp (T, B, 3H), dh0, grad_hp (T, B, 3H): dL/d(h_{t-1} W_hh^T), and the
// gradients of the norm's gain and shift}, or without the norm {grad_xp, dh0, grad_hp_n
// (T, B, H): grad_hp's candidate block, its other blocks being grad_xp's}: fresh memory costs
// a page fault per 4 kB, and this saves a (T, B, 2H) buffer. dW_hh is one whole-sequence
// product, done in Python, and so is dL/db_hh without the norm.
std::vector<Tensor> gru_backward(const Tensor& grad_hs, const Tensor& h0, const Tensor& w_hh,
                                 const std::optional<Tensor>& g_hh_opt, const Tensor& hs,
                                 const Tensor& hp, const Tensor& rz, const Tensor& ns,
                                 const Tensor& mean, const Tensor& rstd, const Tensor& u_n,
                                 const std::optional<Tensor>& w_packed_t) {
  at::NoGradGuard no_grad;
  const bool norm = g_hh_opt.has_value() && g_hh_opt->defined();
  // W_hh^T laid out for the per-step product (dL/dh_{t-1} += dp W_hh), or null
  const Tensor* packed = w_packed_t.has_value() && w_packed_t->defined() ? &*w_packed_t : nullptr;
  for (auto [t, n] : {std::pair{&grad_hs, "grad_hs"}, {&h0, "h0"}, {&w_hh, "w_hh"},
                      {&hp, "hp"}, {&rz, "rz"}, {&ns, "ns"}, {&u_n, "u_n"}})
    check(*t, hs, n);
  if (norm)
    for (auto [t, n] : {std::pair{&*g_hh_opt, "g_hh"}, {&mean, "mean"}, {&rstd, "rstd"}})
      check(*t, hs, n);
  check(hs, hs, "hs");
  const int64_t T = hs.size(0), B = hs.size(1), H = hs.size(2), G = 3 * H;
  TORCH_CHECK(grad_hs.sizes() == hs.sizes() && rz.size(0) == T && (!norm || hp.size(0) == T),
              "rnnkit kernels: gru_backward got mismatched shapes");
  const auto opt = hs.options();
  Tensor grad_xp = sequence_buffer({T, B, G}, opt);
  Tensor grad_hp = sequence_buffer({norm ? T : 1, B, G}, opt);  // without the norm, a scratch
  Tensor grad_hp_n;
  if (!norm) grad_hp_n = sequence_buffer({T, B, H}, opt);
  Tensor acc_g_hh, acc_b_hh;
  if (norm) acc_g_hh = at::zeros({B, G}, opt), acc_b_hh = at::zeros({B, G}, opt);
  Tensor dh = at::zeros({B, H}, opt);
  AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "gru_backward", [&] {
    using T_ = scalar_t;
    over_row_blocks(B, [&](int64_t b0, int64_t b1, bool parallel_rows) {
    for (int64_t t = T - 1; t >= 0; --t) {
      GruBwdStep<T_> s{};
      s.gy = step<T_>(grad_hs, t);
      s.h_prev = t == 0 ? h0.data_ptr<T_>() : step<T_>(hs, t - 1);
      s.rz = step<T_>(rz, t), s.n = step<T_>(ns, t), s.u_n = step<T_>(u_n, t);
      if (norm) {
        s.p = step<T_>(hp, t);
        s.mean = step<T_>(mean, t), s.rstd = step<T_>(rstd, t);
        s.acc_g_hh = acc_g_hh.data_ptr<T_>(), s.acc_b_hh = acc_b_hh.data_ptr<T_>();
        s.g_hh = g_hh_opt->data_ptr<T_>();
      } else {
        s.gp_n = step<T_>(grad_hp_n, t);
      }
      s.dh = dh.data_ptr<T_>();
      s.gx = step<T_>(grad_xp, t);
      s.gp = step<T_>(grad_hp, norm ? t : 0);
      s.H = H;
      gru_backward_rows(s, b0, b1, G, parallel_rows);
      Tensor dh_rows = dh.narrow(0, b0, b1 - b0);
      step_product(dh_rows, grad_hp[norm ? t : 0].narrow(0, b0, b1 - b0), w_hh, packed, nullptr,
                   true);
    }
    });
  });
  if (!norm) return {grad_xp, dh, grad_hp_n};
  return {grad_xp, dh, grad_hp, acc_g_hh.sum(0), acc_b_hh.sum(0)};
}

}  // namespace

TORCH_LIBRARY(rnnkit_kernels, m) {
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
  // buffers for the Python side of the loops (their outputs), as the loops' own
  m.def("sequence_buffer(int[] size, ScalarType dtype) -> Tensor",
        [](std::vector<int64_t> size, c10::ScalarType dtype) {
          return sequence_buffer(size, at::TensorOptions().dtype(dtype));
        });
  m.def("empty_huge(int[] size, ScalarType dtype) -> Tensor",
        [](std::vector<int64_t> size, c10::ScalarType dtype) {
          return empty_huge(size, at::TensorOptions().dtype(dtype));
        });
  // {buffers kept, bytes kept, of them free}; and letting them all go
  m.def("buffer_pool_stats() -> int[]", []() { return buffer_pool().stats(); });
  m.def("buffer_pool_clear() -> ()", []() { buffer_pool().clear(); });
  // the loops' per-step product on its own, `repeats` times over (for tests and
  // benchmarks/dense_products.py): out = (out | bias | 0) + h W^T, written into `out`; W laid
  // out in `packed` (pack_panels or oneDNN's), or ATen's mm on weight_t (W^T) without it
  m.def("pack_panels(Tensor weight) -> Tensor", &pack_panels);
  m.def(
      "step_product(Tensor(a!) out, Tensor h, Tensor weight_t, Tensor? packed, Tensor? bias, "
      "bool accumulate=False, int repeats=1) -> ()",
      [](Tensor out, const Tensor& h, const Tensor& w_t, const std::optional<Tensor>& packed,
         const std::optional<Tensor>& bias, bool accumulate, int64_t repeats) {
        TORCH_CHECK(!(accumulate && bias.has_value()),
                    "rnnkit kernels: step_product: a bias or accumulate, not both");
        const Tensor* p = packed.has_value() ? &*packed : nullptr;
        const Tensor* b = bias.has_value() ? &*bias : nullptr;
        for (int64_t i = 0; i < repeats; ++i) step_product(out, h, w_t, p, b, accumulate, false);
      });
}

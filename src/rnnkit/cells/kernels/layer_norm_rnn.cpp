// The time loops of the layer-normalised LSTM and GRU engines (rnnkit/cells/layer_norm_fused.py),
// forward and backward, on the CPU.
//
// Each step is one matrix product (h @ W_hh^T forward, dp @ W_hh backward: MKL / oneDNN spread
// it over the threads) and ONE pass over the batch rows (at::parallel_for) that does everything
// else of the step: the recurrent layer norm, the gate nonlinearities, the cell update, the cell
// layer norm and the output, or their chain rule. In PyTorch the same step costs about ten
// dispatched kernels plus the Python between them, which at H 128-256 costs more than the maths.
//
// Only the recurrent part lives here. The input side (W_ih x and its layer norm) and the weight
// gradients (whole-sequence products after the loop) stay in PyTorch, in layer_norm_fused.py,
// which also keeps the pure-PyTorch loops that give the same numbers where this file is not
// built. Buffer layouts and the saved statistics are the same as those loops', so the Python
// code after the loop serves both.
//
// Headers: ATen and torch/library.h only (not torch/extension.h), which keeps the first build
// short. Ops are registered as torch.ops.rnnkit_kernels.*; they take contiguous CPU tensors of
// one floating dtype and are called from inside autograd.Functions, never differentiated.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

namespace {

using at::Tensor;

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// Rows per task: a row is 3H or 4H values, a few microseconds of work; keep tasks above ~16k
// values so that the threads' start-up does not eat the gain.
inline int64_t grain(int64_t row) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(row, 1)); }

void check(const Tensor& t, const Tensor& like, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "rnnkit kernels: ", name, " must be on the CPU");
  TORCH_CHECK(t.is_contiguous(), "rnnkit kernels: ", name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "rnnkit kernels: ", name, " has dtype ",
              t.scalar_type(), ", expected ", like.scalar_type());
}

// mean and 1/sqrt(var + eps) of one row, two passes (the biased variance, as layer_norm has it)
template <typename T>
inline void moments(const T* p, int64_t n, double eps, T& mean, T& rstd) {
  T s = 0;
  for (int64_t k = 0; k < n; ++k) s += p[k];
  const T m = s / T(n);
  T v = 0;
  for (int64_t k = 0; k < n; ++k) v += (p[k] - m) * (p[k] - m);
  mean = m;
  rstd = T(1) / std::sqrt(v / T(n) + T(eps));
}

// ---------------------------------------------------------------- LSTM

// Writes hs (T, B, H) in place; returns {c_T} or, with save, {c_T, hp, act, cs, tc, mean, rstd,
// mean_c, rstd_c}: hp = h_{t-1} W_hh^T (T, B, 4H); act = sigma(i), sigma(f), tanh(g), sigma(o)
// (T, B, 4H); cs = c_t and tc = tanh(LN(c_t)) (T, B, H); the norms' mean and rstd (T, B, 1).
std::vector<Tensor> lstm_forward(const Tensor& xg, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_hh, const Tensor& g_hh, const Tensor& g_c,
                                 const Tensor& b_c, double eps_hh, double eps_c, Tensor hs,
                                 bool save) {
  at::NoGradGuard no_grad;
  for (auto [t, n] : {std::pair{&h0, "h0"}, {&c0, "c0"}, {&w_hh, "w_hh"}, {&g_hh, "g_hh"},
                      {&g_c, "g_c"}, {&b_c, "b_c"}, {&hs, "hs"}})
    check(*t, xg, n);
  check(xg, xg, "xg");
  const int64_t T = xg.size(0), B = xg.size(1), G = xg.size(2), H = G / 4;
  TORCH_CHECK(T >= 1 && G == 4 * H && h0.size(0) == B && h0.size(1) == H && hs.size(0) == T,
              "rnnkit kernels: lstm_forward got mismatched shapes");
  const auto opt = xg.options();
  const Tensor w_t = w_hh.t();
  Tensor hp, act, cs, tc, mean, rstd, mean_c, rstd_c, cbuf;
  if (save) {
    hp = at::empty({T, B, G}, opt);
    act = at::empty({T, B, G}, opt);
    cs = at::empty({T, B, H}, opt);
    tc = at::empty({T, B, H}, opt);
    mean = at::empty({T, B, 1}, opt);
    rstd = at::empty({T, B, 1}, opt);
    mean_c = at::empty({T, B, 1}, opt);
    rstd_c = at::empty({T, B, 1}, opt);
  } else {
    // the activations overwrite hp's row in place; c alternates between two buffers
    hp = at::empty({1, B, G}, opt);
    cbuf = at::empty({2, B, H}, opt);
  }
  Tensor c_last = c0;
  AT_DISPATCH_FLOATING_TYPES(xg.scalar_type(), "lstm_forward", [&] {
    using T_ = scalar_t;
    const T_* gh = g_hh.data_ptr<T_>();
    const T_* gc = g_c.data_ptr<T_>();
    const T_* bc = b_c.data_ptr<T_>();
    for (int64_t t = 0; t < T; ++t) {
      const Tensor h_prev = t == 0 ? h0 : hs[t - 1];
      const Tensor c_prev = t == 0 ? c0 : (save ? cs[t - 1] : cbuf[(t - 1) & 1]);
      Tensor p = save ? hp[t] : hp[0];
      Tensor c_new = save ? cs[t] : cbuf[t & 1];
      at::mm_out(p, h_prev, w_t);
      T_* pp = p.data_ptr<T_>();
      T_* ap = save ? act[t].data_ptr<T_>() : pp;
      T_* cp = c_new.data_ptr<T_>();
      T_* tcp = save ? tc[t].data_ptr<T_>() : nullptr;
      T_* hp_out = hs[t].data_ptr<T_>();
      const T_* cprev = c_prev.data_ptr<T_>();
      const T_* x = xg[t].data_ptr<T_>();
      T_* mp = save ? mean[t].data_ptr<T_>() : nullptr;
      T_* rp = save ? rstd[t].data_ptr<T_>() : nullptr;
      T_* mcp = save ? mean_c[t].data_ptr<T_>() : nullptr;
      T_* rcp = save ? rstd_c[t].data_ptr<T_>() : nullptr;
      at::parallel_for(0, B, grain(G), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          T_* pr = pp + b * G;  // h_{t-1} W_hh^T, row b
          T_* ar = ap + b * G;  // may be pr itself (no save): each value read before written
          const T_* xr = x + b * G;
          T_* cr = cp + b * H;
          const T_* cpr = cprev + b * H;
          T_ m, r;
          moments(pr, G, eps_hh, m, r);
          T_ s = 0;
          for (int64_t k = 0; k < H; ++k) {
            const T_ i = sigmoid((pr[k] - m) * r * gh[k] + xr[k]);
            const T_ f = sigmoid((pr[H + k] - m) * r * gh[H + k] + xr[H + k]);
            const T_ g = std::tanh((pr[2 * H + k] - m) * r * gh[2 * H + k] + xr[2 * H + k]);
            const T_ o = sigmoid((pr[3 * H + k] - m) * r * gh[3 * H + k] + xr[3 * H + k]);
            ar[k] = i, ar[H + k] = f, ar[2 * H + k] = g, ar[3 * H + k] = o;
            cr[k] = f * cpr[k] + i * g;
            s += cr[k];
          }
          const T_ mc = s / T_(H);
          T_ v = 0;
          for (int64_t k = 0; k < H; ++k) v += (cr[k] - mc) * (cr[k] - mc);
          const T_ rc = T_(1) / std::sqrt(v / T_(H) + T_(eps_c));
          T_* hr = hp_out + b * H;
          for (int64_t k = 0; k < H; ++k) {
            const T_ y = std::tanh((cr[k] - mc) * rc * gc[k] + bc[k]);
            if (save) tcp[b * H + k] = y;
            hr[k] = ar[3 * H + k] * y;
          }
          if (save) mp[b] = m, rp[b] = r, mcp[b] = mc, rcp[b] = rc;
        }
      });
      c_last = c_new;
    }
  });
  if (!save) return {c_last};
  return {c_last, hp, act, cs, tc, mean, rstd, mean_c, rstd_c};
}

// Returns {grad_xg (T, B, 4H), dh0, dc0, grad_hp (T, B, 4H): dL/d(h_{t-1} W_hh^T), dys (T, B, H):
// dL/d(LN(c_t))}; the weight gradients are whole-sequence products of these, done in Python.
std::vector<Tensor> lstm_backward(const Tensor& grad_hs, const Tensor& grad_c_T, const Tensor& h0,
                                  const Tensor& c0, const Tensor& w_hh, const Tensor& g_hh,
                                  const Tensor& g_c, const Tensor& hp, const Tensor& act,
                                  const Tensor& cs, const Tensor& tc, const Tensor& mean,
                                  const Tensor& rstd, const Tensor& mean_c, const Tensor& rstd_c) {
  at::NoGradGuard no_grad;
  for (auto [t, n] :
       {std::pair{&grad_hs, "grad_hs"}, {&grad_c_T, "grad_c_T"}, {&h0, "h0"}, {&c0, "c0"},
        {&w_hh, "w_hh"}, {&g_hh, "g_hh"}, {&g_c, "g_c"}, {&act, "act"}, {&cs, "cs"},
        {&tc, "tc"}, {&mean, "mean"}, {&rstd, "rstd"}, {&mean_c, "mean_c"}, {&rstd_c, "rstd_c"}})
    check(*t, hp, n);
  check(hp, hp, "hp");
  const int64_t T = hp.size(0), B = hp.size(1), G = hp.size(2), H = G / 4;
  const auto opt = hp.options();
  Tensor grad_xg = at::empty({T, B, G}, opt);
  Tensor grad_hp = at::empty({T, B, G}, opt);
  Tensor dys = at::empty({T, B, H}, opt);
  Tensor dh = at::zeros({B, H}, opt);
  Tensor dc = grad_c_T.clone();
  AT_DISPATCH_FLOATING_TYPES(hp.scalar_type(), "lstm_backward", [&] {
    using T_ = scalar_t;
    const T_* gh = g_hh.data_ptr<T_>();
    const T_* gc = g_c.data_ptr<T_>();
    T_* dhp = dh.data_ptr<T_>();
    T_* dcp = dc.data_ptr<T_>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const T_* gy = grad_hs[t].data_ptr<T_>();
      const T_* pp = hp[t].data_ptr<T_>();
      const T_* ap = act[t].data_ptr<T_>();
      const T_* cp = cs[t].data_ptr<T_>();
      const T_* cprev = (t == 0 ? c0 : cs[t - 1]).data_ptr<T_>();
      const T_* tcp = tc[t].data_ptr<T_>();
      const T_ *mp = mean[t].data_ptr<T_>(), *rp = rstd[t].data_ptr<T_>();
      const T_ *mcp = mean_c[t].data_ptr<T_>(), *rcp = rstd_c[t].data_ptr<T_>();
      T_* gxp = grad_xg[t].data_ptr<T_>();
      T_* gpp = grad_hp[t].data_ptr<T_>();
      T_* dyp = dys[t].data_ptr<T_>();
      at::parallel_for(0, B, grain(G), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const T_* a = ap + b * G;
          const T_* pr = pp + b * G;
          const T_* c = cp + b * H;
          const T_* cpr = cprev + b * H;
          const T_* y = tcp + b * H;
          T_* dhr = dhp + b * H;
          T_* dcr = dcp + b * H;
          T_* dy = dyp + b * H;
          T_* gx = gxp + b * G;
          T_* gp = gpp + b * G;
          const T_ mc = mcp[b], rc = rcp[b], m = mp[b], r = rp[b];
          // h = o tanh(LN(c)): dL/d(LN(c)), and the sums the layer norm's backward needs
          T_ s1 = 0, s2 = 0;
          for (int64_t k = 0; k < H; ++k) {
            const T_ d = dhr[k] + gy[b * H + k];
            dhr[k] = d;  // the whole dL/dh_t from here on
            dy[k] = d * a[3 * H + k] * (T_(1) - y[k] * y[k]);
            const T_ dxh = dy[k] * gc[k];
            s1 += dxh;
            s2 += dxh * (c[k] - mc) * rc;
          }
          s1 /= T_(H), s2 /= T_(H);
          T_ u1 = 0, u2 = 0;
          for (int64_t k = 0; k < H; ++k) {
            const T_ xh = (c[k] - mc) * rc;
            const T_ dcv = dcr[k] + rc * (dy[k] * gc[k] - s1 - xh * s2);
            const T_ i = a[k], f = a[H + k], g = a[2 * H + k], o = a[3 * H + k];
            gx[k] = dcv * g * i * (T_(1) - i);
            gx[H + k] = dcv * cpr[k] * f * (T_(1) - f);
            gx[2 * H + k] = dcv * i * (T_(1) - g * g);
            gx[3 * H + k] = dhr[k] * y[k] * o * (T_(1) - o);
            dcr[k] = dcv * f;  // dL/dc_{t-1} through f c_{t-1}
          }
          for (int64_t k = 0; k < G; ++k) {
            const T_ dxh = gx[k] * gh[k];
            u1 += dxh;
            u2 += dxh * (pr[k] - m) * r;
          }
          u1 /= T_(G), u2 /= T_(G);
          for (int64_t k = 0; k < G; ++k)
            gp[k] = r * (gx[k] * gh[k] - u1 - (pr[k] - m) * r * u2);
        }
      });
      at::mm_out(dh, grad_hp[t], w_hh);  // dL/dh_{t-1}
    }
  });
  return {grad_xg, dh, dc, grad_hp, dys};
}

// ---------------------------------------------------------------- GRU

// Writes hs (T, B, H) in place; returns {} or, with save, {hp, rz, ns, mean, rstd, u_n}:
// hp = h_{t-1} W_hh^T (T, B, 3H); rz the reset and update gates (T, B, 2H); ns the candidates
// and u_n the candidate's block of LN(hp) + b_hh (T, B, H); the norm's mean and rstd (T, B, 1).
std::vector<Tensor> gru_forward(const Tensor& xp, const Tensor& h0, const Tensor& w_hh,
                                const Tensor& g_hh, const Tensor& b_hh, double eps, Tensor hs,
                                bool save) {
  at::NoGradGuard no_grad;
  for (auto [t, n] : {std::pair{&h0, "h0"}, {&w_hh, "w_hh"}, {&g_hh, "g_hh"}, {&b_hh, "b_hh"},
                      {&hs, "hs"}})
    check(*t, xp, n);
  check(xp, xp, "xp");
  const int64_t T = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 3;
  TORCH_CHECK(T >= 1 && G == 3 * H && h0.size(0) == B && h0.size(1) == H && hs.size(0) == T,
              "rnnkit kernels: gru_forward got mismatched shapes");
  const auto opt = xp.options();
  const Tensor w_t = w_hh.t();
  Tensor hp, rz, ns, mean, rstd, u_n;
  if (save) {
    hp = at::empty({T, B, G}, opt);
    rz = at::empty({T, B, 2 * H}, opt);
    ns = at::empty({T, B, H}, opt);
    u_n = at::empty({T, B, H}, opt);
    mean = at::empty({T, B, 1}, opt);
    rstd = at::empty({T, B, 1}, opt);
  } else {
    hp = at::empty({1, B, G}, opt);
  }
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward", [&] {
    using T_ = scalar_t;
    const T_* gh = g_hh.data_ptr<T_>();
    const T_* bh = b_hh.data_ptr<T_>();
    for (int64_t t = 0; t < T; ++t) {
      const Tensor h_prev = t == 0 ? h0 : hs[t - 1];
      Tensor p = save ? hp[t] : hp[0];
      at::mm_out(p, h_prev, w_t);
      const T_* pp = p.data_ptr<T_>();
      const T_* x = xp[t].data_ptr<T_>();
      const T_* hprev = h_prev.data_ptr<T_>();
      T_* hout = hs[t].data_ptr<T_>();
      T_* rzp = save ? rz[t].data_ptr<T_>() : nullptr;
      T_* nsp = save ? ns[t].data_ptr<T_>() : nullptr;
      T_* unp = save ? u_n[t].data_ptr<T_>() : nullptr;
      T_* mp = save ? mean[t].data_ptr<T_>() : nullptr;
      T_* rp = save ? rstd[t].data_ptr<T_>() : nullptr;
      at::parallel_for(0, B, grain(G), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const T_* pr = pp + b * G;
          const T_* xr = x + b * G;
          const T_* hpr = hprev + b * H;
          T_* hr = hout + b * H;
          T_ m, rs;
          moments(pr, G, eps, m, rs);
          for (int64_t k = 0; k < H; ++k) {
            const T_ ur = (pr[k] - m) * rs * gh[k] + bh[k];
            const T_ uz = (pr[H + k] - m) * rs * gh[H + k] + bh[H + k];
            const T_ un = (pr[2 * H + k] - m) * rs * gh[2 * H + k] + bh[2 * H + k];
            const T_ r = sigmoid(xr[k] + ur);
            const T_ z = sigmoid(xr[H + k] + uz);
            const T_ n = std::tanh(xr[2 * H + k] + r * un);
            hr[k] = n + z * (hpr[k] - n);  // (1 - z) n + z h, as gru_update has it
            if (save) {
              rzp[b * 2 * H + k] = r, rzp[b * 2 * H + H + k] = z;
              nsp[b * H + k] = n, unp[b * H + k] = un;
            }
          }
          if (save) mp[b] = m, rp[b] = rs;
        }
      });
    }
  });
  if (!save) return {};
  return {hp, rz, ns, mean, rstd, u_n};
}

// Returns {grad_xp (T, B, 3H), dh0, grad_hp (T, B, 3H): dL/d(h_{t-1} W_hh^T), grad_u (T, B, 3H):
// dL/d(LN(hp) + b_hh)}; the weight gradients are whole-sequence products, done in Python.
std::vector<Tensor> gru_backward(const Tensor& grad_hs, const Tensor& h0, const Tensor& w_hh,
                                 const Tensor& g_hh, const Tensor& hs, const Tensor& hp,
                                 const Tensor& rz, const Tensor& ns, const Tensor& mean,
                                 const Tensor& rstd, const Tensor& u_n) {
  at::NoGradGuard no_grad;
  for (auto [t, n] : {std::pair{&grad_hs, "grad_hs"}, {&h0, "h0"}, {&w_hh, "w_hh"},
                      {&g_hh, "g_hh"}, {&hs, "hs"}, {&rz, "rz"}, {&ns, "ns"}, {&mean, "mean"},
                      {&rstd, "rstd"}, {&u_n, "u_n"}})
    check(*t, hp, n);
  check(hp, hp, "hp");
  const int64_t T = hp.size(0), B = hp.size(1), G = hp.size(2), H = G / 3;
  const auto opt = hp.options();
  Tensor grad_xp = at::empty({T, B, G}, opt);
  Tensor grad_hp = at::empty({T, B, G}, opt);
  Tensor grad_u = at::empty({T, B, G}, opt);
  Tensor dh = at::zeros({B, H}, opt);
  AT_DISPATCH_FLOATING_TYPES(hp.scalar_type(), "gru_backward", [&] {
    using T_ = scalar_t;
    const T_* gh = g_hh.data_ptr<T_>();
    T_* dhp = dh.data_ptr<T_>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const T_* gy = grad_hs[t].data_ptr<T_>();
      const T_* hprev = (t == 0 ? h0 : hs[t - 1]).data_ptr<T_>();
      const T_* pp = hp[t].data_ptr<T_>();
      const T_* rzp = rz[t].data_ptr<T_>();
      const T_* nsp = ns[t].data_ptr<T_>();
      const T_* unp = u_n[t].data_ptr<T_>();
      const T_ *mp = mean[t].data_ptr<T_>(), *rp = rstd[t].data_ptr<T_>();
      T_* gxp = grad_xp[t].data_ptr<T_>();
      T_* gpp = grad_hp[t].data_ptr<T_>();
      T_* gup = grad_u[t].data_ptr<T_>();
      at::parallel_for(0, B, grain(G), [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const T_* pr = pp + b * G;
          const T_* r_ = rzp + b * 2 * H;
          const T_* z_ = r_ + H;
          const T_* n_ = nsp + b * H;
          const T_* un = unp + b * H;
          const T_* hpr = hprev + b * H;
          T_* dhr = dhp + b * H;
          T_* gx = gxp + b * G;
          T_* gu = gup + b * G;
          T_* gp = gpp + b * G;
          const T_ m = mp[b], rs = rp[b];
          for (int64_t k = 0; k < H; ++k) {
            const T_ d = dhr[k] + gy[b * H + k];
            const T_ r = r_[k], z = z_[k], n = n_[k];
            const T_ gn = d * (T_(1) - z) * (T_(1) - n * n);
            gx[2 * H + k] = gn;
            gx[k] = gn * un[k] * r * (T_(1) - r);
            gx[H + k] = d * (hpr[k] - n) * z * (T_(1) - z);
            gu[k] = gx[k], gu[H + k] = gx[H + k], gu[2 * H + k] = gn * r;
            dhr[k] = d * z;  // through z h_{t-1}; W_hh h_{t-1}'s share is added below
          }
          T_ u1 = 0, u2 = 0;
          for (int64_t k = 0; k < G; ++k) {
            const T_ dxh = gu[k] * gh[k];
            u1 += dxh;
            u2 += dxh * (pr[k] - m) * rs;
          }
          u1 /= T_(G), u2 /= T_(G);
          for (int64_t k = 0; k < G; ++k)
            gp[k] = rs * (gu[k] * gh[k] - u1 - (pr[k] - m) * rs * u2);
        }
      });
      dh.addmm_(grad_hp[t], w_hh);
    }
  });
  return {grad_xp, dh, grad_hp, grad_u};
}

}  // namespace

TORCH_LIBRARY(rnnkit_kernels, m) {
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
}

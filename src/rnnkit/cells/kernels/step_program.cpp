// The forward time loop of ANY plain cell, on the CPU: the step is a small program that
// rnnkit/layers/step_program.py lowers from the cell's traced forward (its hoisted step graph),
// and this file runs it for every step without returning to Python.
//
// A program is a list of operations on buffers of batch rows:
//   - LINEAR: one step's product `a W^T + b` over the rows (common.h's step_product on a weight
//     laid out once per call, as the fused engines do: the panel kernel with AVX-512, else
//     oneDNN; or ATen's addmm without a layout);
//   - elementwise operations (unary: copy, neg, sigmoid, tanh, relu, ...; binary: add, sub, mul,
//     div), each operand a column range of a buffer, a value per row (a (B, 1) buffer), a
//     constant vector or a scalar.
// The elementwise operations between two products form a segment, run row by row: for one batch
// row every operation of the segment runs over that row's values while they sit in the L1 cache,
// one pass where PyTorch needs one dispatched kernel (and a trip over all rows) per operation.
// Rows never meet, so with several threads each runs the whole time loop for its own block of
// rows (over_row_blocks), as in layer_norm_rnn.cpp.
//
// Forward only: no autograd here. Python calls this when nothing needs a gradient, and keeps the
// cell's own per-step loop otherwise; the two agree to float rounding (our exp and tanh are
// polynomial, a few ulp from torch's).

#include "common.h"

namespace {

// Operation codes; the same numbers are in step_program.py (OPS).
enum Code : int64_t {
  COPY = 0,
  NEG = 1,
  SIGMOID = 2,
  TANH = 3,
  RELU = 4,
  EXP = 5,
  LOG = 6,
  ABS = 7,
  SQRT = 8,
  RSQRT = 9,
  SQUARE = 10,
  SILU = 11,
  RECIPROCAL = 12,
  ADD = 32,
  SUB = 33,
  MUL = 34,
  DIV = 35,
  MAXIMUM = 36,
  MINIMUM = 37,
  LINEAR = 64,
};

// Buffer kinds; the same numbers are in step_program.py (KINDS).
enum Kind : int64_t {
  XP = 0,          // step t of an input side (T, B, F): index into xps
  STATE = 1,       // the state leaf read this step (h_{t-1}): index into h0s
  STATE_NEXT = 2,  // the state leaf written this step
  YS = 3,          // step t of the output (T, B, F)
  TEMP = 4,        // a (B, F) work buffer
  PRODUCT = 5,     // a LINEAR's result, set when it runs
  CONST = 6,       // a constant vector (F) or scalar tensor, the same for every row
  SCALAR = 7,      // a number of the program: index into scalars
  STATE_YS = 8,    // a state leaf that is also the output: h0s[index], then ys at t - 1
};

// One row of the program (int64 x 10):
//   elementwise: code, dst, dst_col, width, a, a_col, a_step, b, b_col, b_step
//     (a_step / b_step: 1 to read `width` values, 0 to read one value for the whole row)
//   LINEAR:      code, dst, 0, N, a, a_col, K, weight, bias (-1: none), 0
constexpr int64_t kRow = 10;

template <typename T>
struct Segment {
  const int64_t* ops;  // the segment's rows of the program
  int64_t n;           // how many
  T* const* ptr;       // per buffer: row 0 of this block
  const int64_t* row_stride;  // per buffer: 0 for constants
};

template <typename T, typename F>
RNNKIT_INLINE void unary(T* __restrict d, const T* __restrict a, int64_t a_step, int64_t n, F f) {
  if (a_step == 0) {
    const T v = f(a[0]);
    for (int64_t k = 0; k < n; ++k) d[k] = v;
    return;
  }
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) d[k] = f(a[k]);
}

template <typename T, typename F>
RNNKIT_INLINE void binary(T* __restrict d, const T* __restrict a, int64_t a_step,
                          const T* __restrict b, int64_t b_step, int64_t n, F f) {
  if (a_step && b_step) {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) d[k] = f(a[k], b[k]);
  } else if (a_step) {
    const T y = b[0];
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) d[k] = f(a[k], y);
  } else if (b_step) {
    const T x = a[0];
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) d[k] = f(x, b[k]);
  } else {
    const T v = f(a[0], b[0]);
    for (int64_t k = 0; k < n; ++k) d[k] = v;
  }
}

template <typename T>
RNNKIT_INLINE void segment_rows_(const Segment<T>& s, int64_t b0, int64_t b1) {
  for (int64_t r = b0; r < b1; ++r) {
    for (int64_t i = 0; i < s.n; ++i) {
      const int64_t* o = s.ops + i * kRow;
      const int64_t code = o[0], n = o[3];
      T* d = s.ptr[o[1]] + r * s.row_stride[o[1]] + o[2];
      const T* a = s.ptr[o[4]] + r * s.row_stride[o[4]] + o[5];
      const int64_t as = o[6];
      if (code < ADD) {
        switch (code) {
          case COPY: unary(d, a, as, n, [](T x) { return x; }); break;
          case NEG: unary(d, a, as, n, [](T x) { return -x; }); break;
          case SIGMOID: unary(d, a, as, n, [](T x) { return sigmoid(x); }); break;
          case TANH: unary(d, a, as, n, [](T x) { return tanh_(x); }); break;
          case RELU: unary(d, a, as, n, [](T x) { return x > T(0) ? x : T(0); }); break;
          case EXP: unary(d, a, as, n, [](T x) { return exp_(x); }); break;
          case LOG: unary(d, a, as, n, [](T x) { return std::log(x); }); break;
          case ABS: unary(d, a, as, n, [](T x) { return std::abs(x); }); break;
          case SQRT: unary(d, a, as, n, [](T x) { return std::sqrt(x); }); break;
          case RSQRT: unary(d, a, as, n, [](T x) { return T(1) / std::sqrt(x); }); break;
          case SQUARE: unary(d, a, as, n, [](T x) { return x * x; }); break;
          case SILU: unary(d, a, as, n, [](T x) { return x * sigmoid(x); }); break;
          case RECIPROCAL: unary(d, a, as, n, [](T x) { return T(1) / x; }); break;
          default: break;
        }
        continue;
      }
      const T* b = s.ptr[o[7]] + r * s.row_stride[o[7]] + o[8];
      const int64_t bs = o[9];
      switch (code) {
        case ADD: binary(d, a, as, b, bs, n, [](T x, T y) { return x + y; }); break;
        case SUB: binary(d, a, as, b, bs, n, [](T x, T y) { return x - y; }); break;
        case MUL: binary(d, a, as, b, bs, n, [](T x, T y) { return x * y; }); break;
        case DIV: binary(d, a, as, b, bs, n, [](T x, T y) { return x / y; }); break;
        case MAXIMUM: binary(d, a, as, b, bs, n, [](T x, T y) { return x > y ? x : y; }); break;
        case MINIMUM: binary(d, a, as, b, bs, n, [](T x, T y) { return x < y ? x : y; }); break;
        default: break;
      }
    }
  }
}

RNNKIT_ROWS(segment_rows, Segment)

// Runs the program over T steps. Returns {ys (T, B, F_y), the final state leaves (B, F_j)...}.
//   ops (n, 10) and buffers (m, 3: kind, index, width) int64; xps: the input sides (T, B, F),
//   last dim contiguous; h0s: the initial state leaves (B, F_j), contiguous; consts: constant
//   vectors or scalars; weights (N, K) with biases and, when `packed` is not empty, each weight
//   laid out for the per-step product (dense.packed_for_steps); scalars: the program's
//   numbers, in the dtype of the rest; out: where to write ys (contiguous), or None for a new
//   tensor. With x_panels (one per input side, from pack_panels, and x_biases beside them, an
//   empty tensor for none), each xps[i] is instead an input x (T, B, I) whose input side
//   x_t W_i^T + b_i the loop makes at each step, for its own rows, with the panel kernel.
std::vector<Tensor> step_program(const Tensor& ops, const Tensor& buffers, at::TensorList xps,
                                 at::TensorList h0s, at::TensorList consts,
                                 at::TensorList weights, at::TensorList biases,
                                 at::TensorList packed, const Tensor& scalars, int64_t y_width,
                                 const std::optional<Tensor>& out, at::TensorList x_panels,
                                 at::TensorList x_biases) {
  at::NoGradGuard no_grad;
  TORCH_CHECK(ops.dim() == 2 && ops.size(1) == kRow && ops.scalar_type() == at::kLong &&
                  ops.is_contiguous() && buffers.dim() == 2 && buffers.size(1) == 3 &&
                  buffers.scalar_type() == at::kLong && buffers.is_contiguous(),
              "rnnkit kernels: step_program got a malformed program");
  TORCH_CHECK(!xps.empty() && !h0s.empty(), "rnnkit kernels: step_program needs inputs and a state");
  const Tensor& like = xps[0];
  for (const Tensor& x : xps) {
    TORCH_CHECK(x.dim() == 3 && x.stride(2) == 1 && x.size(0) == like.size(0) &&
                    x.size(1) == like.size(1) && x.scalar_type() == like.scalar_type() &&
                    x.device().is_cpu(),
                "rnnkit kernels: step_program's input sides must be (T, B, F) CPU tensors");
  }
  const bool fused_input = !x_panels.empty();
  TORCH_CHECK(!fused_input || (x_panels.size() == xps.size() && x_biases.size() == xps.size()),
              "rnnkit kernels: step_program: one panel weight and one bias per input");
  for (const Tensor& b : x_biases)
    TORCH_CHECK(b.numel() == 0 || (b.dim() == 1 && b.is_contiguous() &&
                                   b.scalar_type() == like.scalar_type()),
                "rnnkit kernels: step_program: an input bias must be a contiguous vector");
  for (const Tensor& h : h0s) check(h, like, "h0");
  for (const Tensor& c : consts) check(c, like, "a constant");
  for (const Tensor& w : weights) check(w, like, "a weight");
  for (const Tensor& b : biases) check(b, like, "a bias");
  check(scalars, like, "scalars");
  const int64_t T = like.size(0), B = like.size(1);
  TORCH_CHECK(T >= 1, "rnnkit kernels: step_program needs at least one step");
  const int64_t n_ops = ops.size(0), n_buf = buffers.size(0);
  const int64_t* op = ops.data_ptr<int64_t>();
  const int64_t* buf = buffers.data_ptr<int64_t>();
  const auto opt = like.options();
  // the state leaves alternate between two buffers each: read one, write the other
  std::vector<Tensor> pingpong;
  for (const Tensor& h : h0s) {
    TORCH_CHECK(h.dim() == 2 && h.size(0) == B, "rnnkit kernels: a state leaf must be (B, F)");
    pingpong.push_back(at::empty({2, B, h.size(1)}, opt));
  }
  // the output: `out` where the caller runs a long sequence a few steps at a time, each call
  // writing its steps' rows of one whole-sequence tensor
  Tensor ys;
  if (out.has_value() && out->defined()) {
    check(*out, like, "out");
    TORCH_CHECK(out->dim() == 3 && out->size(0) == T && out->size(1) == B && out->size(2) == y_width,
                "rnnkit kernels: step_program's out must be (T, B, F_y)");
    ys = *out;
  } else {
    ys = sequence_buffer({T, B, y_width}, opt);
  }
  std::vector<Tensor> temps(n_buf);
  std::vector<bool> from_ys(h0s.size(), false);  // leaves whose new value is the output's
  for (int64_t i = 0; i < n_buf; ++i) {
    const int64_t kind = buf[i * 3], index = buf[i * 3 + 1], width = buf[i * 3 + 2];
    TORCH_CHECK(kind >= XP && kind <= STATE_YS, "rnnkit kernels: step_program: unknown buffer kind");
    const bool leaf = kind == STATE || kind == STATE_NEXT || kind == STATE_YS;
    const int64_t count = kind == XP ? int64_t(xps.size()) : leaf ? int64_t(h0s.size())
                          : kind == CONST ? int64_t(consts.size())
                          : kind == SCALAR ? scalars.numel() : index + 1;
    TORCH_CHECK(index >= 0 && index < count, "rnnkit kernels: step_program: buffer out of range");
    TORCH_CHECK(!leaf || width == h0s[index].size(1), "rnnkit kernels: step_program: a state leaf's width");
    TORCH_CHECK(kind != STATE_YS || width == y_width, "rnnkit kernels: step_program: the output's width");
    if (kind == XP && fused_input) {  // x (T, B, I) and W (width, I) in panels
      TORCH_CHECK(is_panels_of(x_panels[index], width, xps[index].size(2)) &&
                      (x_biases[index].numel() == 0 || x_biases[index].numel() == width),
                  "rnnkit kernels: step_program: an input's weight does not match its width");
    } else if (kind == XP) {
      TORCH_CHECK(width == xps[index].size(2),
                  "rnnkit kernels: step_program: an input side's width");
    }
    if (kind == STATE_YS) from_ys[index] = true;
    if (kind == TEMP) temps[i] = at::empty({B, width}, opt);
  }
  // Every buffer's declared width is the memory behind it, every operation reads and writes
  // inside its buffers, writes only to work and output buffers (never to an input, a weight or
  // the state it reads), never to a buffer it reads, and reads a product only after the product
  // is made: a malformed program is refused here, not run.
  for (int64_t i = 0; i < n_buf; ++i) {
    const int64_t kind = buf[i * 3], index = buf[i * 3 + 1], width = buf[i * 3 + 2];
    TORCH_CHECK(width >= 1, "rnnkit kernels: step_program: a buffer of no width");
    TORCH_CHECK(kind != CONST || width == consts[index].numel(),
                "rnnkit kernels: step_program: a constant's width");
    TORCH_CHECK(kind != SCALAR || width == 1, "rnnkit kernels: step_program: a scalar's width");
    TORCH_CHECK(kind != YS || width == y_width, "rnnkit kernels: step_program: the output's width");
  }
  auto width = [&](int64_t b) { return buf[b * 3 + 2]; };
  auto kind_of = [&](int64_t b) { return buf[b * 3]; };
  std::vector<bool> made(n_buf, false);
  // products, the output and the next state are made during the step: read only after
  auto made_in_step = [&](int64_t b) {
    return kind_of(b) == PRODUCT || kind_of(b) == YS || kind_of(b) == STATE_NEXT;
  };
  auto readable = [&](int64_t b) { return !made_in_step(b) || made[b]; };
  // one buffer per piece of memory: the output once, each state leaf once (read and written)
  {
    std::vector<int64_t> seen_ys(1, 0), reads(h0s.size(), 0), writes(h0s.size(), 0);
    for (int64_t i = 0; i < n_buf; ++i) {
      const int64_t kind = buf[i * 3], index = buf[i * 3 + 1];
      if (kind == YS) seen_ys[0] += 1;
      if (kind == STATE || kind == STATE_YS) reads[index] += 1;
      if (kind == STATE_NEXT || kind == STATE_YS) writes[index] += 1;
    }
    TORCH_CHECK(seen_ys[0] <= 1, "rnnkit kernels: step_program: the output twice");
    for (size_t j = 0; j < h0s.size(); ++j)
      TORCH_CHECK(reads[j] <= 1 && writes[j] == 1,
                  "rnnkit kernels: step_program: each state leaf is read once and written once");
  }
  for (int64_t i = 0; i < n_ops; ++i) {
    const int64_t* o = op + i * kRow;
    for (int64_t k : {1, 2, 3, 5})
      TORCH_CHECK(o[k] >= 0, "rnnkit kernels: step_program: a negative column or width");
    TORCH_CHECK(o[1] < n_buf && o[4] >= 0 && o[4] < n_buf && o[1] != o[4],
                "rnnkit kernels: step_program: operand out of range");
    TORCH_CHECK(readable(o[4]), "rnnkit kernels: step_program: a product read before it is made");
    if (o[0] == LINEAR) {
      TORCH_CHECK(o[6] >= 1 && o[7] >= 0 && o[7] < int64_t(weights.size()) &&
                      o[8] < int64_t(biases.size()) && kind_of(o[1]) == PRODUCT && !made[o[1]] &&
                      width(o[1]) == o[3] && weights[o[7]].size(0) == o[3] &&
                      weights[o[7]].size(1) == o[6] && o[5] + o[6] <= width(o[4]) &&
                      (o[8] < 0 || biases[o[8]].numel() == o[3]),
                  "rnnkit kernels: step_program: a malformed product");
      made[o[1]] = true;
      continue;
    }
    TORCH_CHECK((o[0] >= COPY && o[0] <= RECIPROCAL) || (o[0] >= ADD && o[0] <= MINIMUM),
                "rnnkit kernels: step_program: an unknown operation");
    const int64_t dst = kind_of(o[1]);
    TORCH_CHECK(dst == TEMP || dst == YS || dst == STATE_NEXT,
                "rnnkit kernels: step_program: an operation writes to an input");
    // an output buffer is written whole, by one operation, before anything reads it
    if (dst == YS || dst == STATE_NEXT)
      TORCH_CHECK(!made[o[1]] && o[2] == 0 && o[3] == width(o[1]),
                  "rnnkit kernels: step_program: an output is written whole, once");
    TORCH_CHECK(o[3] >= 1 && o[2] + o[3] <= width(o[1]) &&
                    o[5] + (o[6] ? o[3] : 1) <= width(o[4]),
                "rnnkit kernels: step_program: an operand's columns fall outside its buffer");
    if (o[0] >= ADD)
      TORCH_CHECK(o[7] >= 0 && o[7] < n_buf && o[7] != o[1] && readable(o[7]) && o[8] >= 0 &&
                      o[8] + (o[9] ? o[3] : 1) <= width(o[7]),
                  "rnnkit kernels: step_program: an operand's columns fall outside its buffer");
    if (dst == YS || dst == STATE_NEXT) made[o[1]] = true;
  }
  for (int64_t i = 0; i < n_buf; ++i)
    TORCH_CHECK(!(kind_of(i) == YS || kind_of(i) == STATE_NEXT) || made[i],
                "rnnkit kernels: step_program: an output no operation writes");
  const bool use_packed = !packed.empty();
  TORCH_CHECK(!use_packed || packed.size() == weights.size(),
              "rnnkit kernels: step_program: one packed weight per weight");
  std::vector<Tensor> w_t;
  for (const Tensor& w : weights) w_t.push_back(w.t());

  AT_DISPATCH_FLOATING_TYPES(like.scalar_type(), "step_program", [&] {
    using T_ = scalar_t;
    over_row_blocks(B, [&](int64_t b0, int64_t b1, bool /*parallel_rows*/) {
      const int64_t rows = b1 - b0;
      std::vector<T_*> ptr(n_buf, nullptr);
      std::vector<int64_t> stride(n_buf, 0);
      std::vector<Tensor> products(n_buf);  // this block's LINEAR results, kept alive
      std::vector<Tensor> x_rows(xps.size());  // this block's input sides, made at each step
      std::vector<const Tensor*> x_bias(xps.size(), nullptr);
      for (int64_t i = 0; i < n_buf; ++i) {
        const int64_t kind = buf[i * 3], index = buf[i * 3 + 1], width = buf[i * 3 + 2];
        if (kind == TEMP) ptr[i] = temps[i].data_ptr<T_>() + b0 * width, stride[i] = width;
        if (kind == CONST) ptr[i] = consts[index].data_ptr<T_>();
        if (kind == SCALAR) ptr[i] = scalars.data_ptr<T_>() + index;
        if (kind == PRODUCT)  // ATen's addmm or the panel kernel writes into it
          products[i] = at::empty({rows, width}, opt), ptr[i] = products[i].data_ptr<T_>(),
          stride[i] = width;
        if (kind == XP && fused_input && !x_rows[index].defined()) {
          x_rows[index] = at::empty({rows, width}, opt);
          if (x_biases[index].numel()) x_bias[index] = &x_biases[index];
        }
      }
      for (int64_t t = 0; t < T; ++t) {
        for (size_t j = 0; j < x_rows.size(); ++j)
          if (x_rows[j].defined())
            panel_step(x_rows[j], xps[j][t].narrow(0, b0, rows), x_panels[j], x_bias[j], false);
        for (int64_t i = 0; i < n_buf; ++i) {
          const int64_t kind = buf[i * 3], index = buf[i * 3 + 1], width = buf[i * 3 + 2];
          if (kind == XP && fused_input) {
            ptr[i] = x_rows[index].data_ptr<T_>();
            stride[i] = width;
          } else if (kind == XP) {
            const Tensor& x = xps[index];
            ptr[i] = x.data_ptr<T_>() + t * x.stride(0) + b0 * x.stride(1);
            stride[i] = x.stride(1);
          } else if (kind == STATE) {
            ptr[i] = (t == 0 ? h0s[index].data_ptr<T_>()
                             : pingpong[index].data_ptr<T_>() + ((t - 1) & 1) * B * width) +
                     b0 * width;
            stride[i] = width;
          } else if (kind == STATE_NEXT) {
            ptr[i] = pingpong[index].data_ptr<T_>() + (t & 1) * B * width + b0 * width;
            stride[i] = width;
          } else if (kind == YS) {
            ptr[i] = ys.data_ptr<T_>() + t * B * y_width + b0 * y_width;
            stride[i] = y_width;
          } else if (kind == STATE_YS) {
            ptr[i] = (t == 0 ? h0s[index].data_ptr<T_>()
                             : ys.data_ptr<T_>() + (t - 1) * B * y_width) +
                     b0 * width;
            stride[i] = width;
          }
        }
        int64_t i = 0;
        while (i < n_ops) {
          const int64_t* o = op + i * kRow;
          if (o[0] == LINEAR) {
            const int64_t a = o[4], K = o[6];
            Tensor in = at::from_blob(ptr[a] + o[5], {rows, K}, {stride[a], 1}, opt);
            if (stride[a] != K) in = in.contiguous();
            const Tensor* bias = o[8] >= 0 ? &biases[o[8]] : nullptr;
            Tensor& out = products[o[1]];
            if (use_packed) {
              out = step_product(out, in, w_t[o[7]], &packed[o[7]], bias, false, true);
              ptr[o[1]] = out.data_ptr<T_>(), stride[o[1]] = out.stride(0);
            } else {
              step_product(out, in, w_t[o[7]], nullptr, bias);
            }
            ++i;
            continue;
          }
          int64_t j = i;
          while (j < n_ops && op[j * kRow] != LINEAR) ++j;
          Segment<T_> s{op + i * kRow, j - i, ptr.data(), stride.data()};
          segment_rows_serial(s, int64_t(0), rows);
          i = j;
        }
      }
    });
  });
  std::vector<Tensor> result{ys};
  for (size_t j = 0; j < pingpong.size(); ++j)
    result.push_back(from_ys[j] ? ys[T - 1] : pingpong[j][(T - 1) & 1]);
  return result;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit_kernels, m) {
  m.def(
      "step_program(Tensor ops, Tensor buffers, Tensor[] xps, Tensor[] h0s, Tensor[] consts, "
      "Tensor[] weights, Tensor[] biases, Tensor[] packed, Tensor scalars, int y_width, "
      "Tensor(a!)? out, Tensor[] x_panels, Tensor[] x_biases) -> Tensor[]",
      &step_program);
}

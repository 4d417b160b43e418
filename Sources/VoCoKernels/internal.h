// Internal to VoCoKernels: the per-ISA primitives and the helpers the drivers share.
#pragma once
#include "VoCoKernels.h"
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#define VK_X86 1
#else
#define VK_X86 0
#endif

// MARK: - Blocking

/// Rows of A packed at once (MC x KC floats, in L2).
#define VK_MC 240
/// Weight columns (rows of w) one GEMM task packs at most.
#define VK_NC 256
/// Most bytes of A one GEMM packs once for all of its tasks (larger A: in row chunks).
#define VK_SHARED_A_BYTES ((size_t)16 << 20)
/// Weight bytes one GEMV task streams (at most; fewer when that leaves too few tasks).
#define VK_GEMV_TASK_BYTES ((size_t)256 << 10)
/// Below this many multiply-adds a product runs on the calling thread.
#define VK_MIN_PARALLEL_MACS ((size_t)1 << 20)

// MARK: - The primitives one ISA level provides

typedef struct {
    int isa;
    /// The microkernel's tile: MR rows of A by NR columns of B.
    int mr, nr;
    /// Depth of one packed block (the k extent of A and B panels): a B micro-panel of KC x NR
    /// floats stays in L1 while the microkernel runs down every A micro-panel, so KC x NR x 4
    /// bytes is kept to half of a 32 KiB L1.
    int kc;
    /// `c[mr][nr] (ldc) = alpha * Σ_p a[p][0..mr) ⊗ b[p][0..nr) + beta * c`; `c` is not read when
    /// beta == 0. `a` is an A micro-panel (`[kc][mr]`), `b` a B micro-panel (`[kc][nr]`).
    void (*kernel)(size_t kc, const float *a, const float *b, float *c, size_t ldc, float alpha, float beta);
    /// B micro-panels from rows of a `[n][k]` matrix: `b` points at element [j0][p0]; writes
    /// ceil(nc / nr) panels of `[kc][nr]` (row j of the block is column j of the panel), zero
    /// padded past nc.
    void (*pack_b_rows)(const void *b, int type, size_t ldb, size_t nc, size_t kc, size_t nr, float *out);
    /// A micro-panels (`vk_pack_a` with this level's mr), or NULL for `vk_pack_a` itself.
    void (*pack_a)(const float *a, size_t lda, size_t mc, size_t kc, float *out);
    /// `y[i][j] = alpha * dot(x[i], w[j]) + beta * y[i][j]` for i < m (m <= 8), j in [j0, j1);
    /// `y` is not read when beta == 0.
    void (*gemv)(size_t m, size_t k, const float *x, size_t ldx, const void *w, int type, size_t ldw,
                 size_t j0, size_t j1, float alpha, float beta, float *y, size_t ldy);
    /// Widens `count` elements of `type` into F32.
    void (*convert)(const void *source, int type, size_t count, float *destination);
    /// The largest of `count` (> 0) floats.
    float (*max)(const float *x, size_t count);
    /// `x[i] = exp(x[i] - shift)` for i < count; returns their sum.
    float (*exp_sum)(float *x, size_t count, float shift);
    /// `gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i]` (SiLU times up: LLaMA's MLP).
    void (*silu_mul)(float *gate, const float *up, size_t count);
    /// `x[i] = x[i] / (1 + exp(-1.702 x[i]))` (CLIP's quick_gelu).
    void (*quick_gelu)(float *x, size_t count);
} vk_ops;

extern const vk_ops vk_ops_scalar;
#if VK_X86
extern const vk_ops vk_ops_avx2;
extern const vk_ops vk_ops_avx512;
#endif

/// The primitives of `isa`, or of the best level below it the CPU has.
const vk_ops *vk_ops_for(int isa);

// MARK: - Shared helpers

/// Bytes per element of a B operand type.
static inline size_t vk_type_size(int type) { return type == VK_F32 ? 4 : 2; }

/// Exact widening of one F16 value (subnormals, infinities and NaN included).
static inline float vk_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, magnitude = h & 0x7fff, exponent = magnitude >> 10;
    uint32_t bits;
    if (exponent == 0) {
        float f = (float)magnitude * 0x1p-24f;  // subnormal (or zero): exact
        __builtin_memcpy(&bits, &f, 4);
    } else if (exponent == 31) {
        bits = (magnitude << 13) | 0x7f800000u;  // infinity or NaN
    } else {
        bits = (magnitude << 13) + 0x38000000u;
    }
    bits |= sign;
    float out;
    __builtin_memcpy(&out, &bits, 4);
    return out;
}

static inline float vk_bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float out;
    __builtin_memcpy(&out, &bits, 4);
    return out;
}

/// Element `index` of a B operand, widened.
static inline float vk_load_one(const void *b, int type, size_t index) {
    switch (type) {
    case VK_F16: return vk_half_to_float(((const uint16_t *)b)[index]);
    case VK_BF16: return vk_bf16_to_float(((const uint16_t *)b)[index]);
    default: return ((const float *)b)[index];
    }
}

/// A micro-panels: `ceil(mc / mr)` panels of `[kc][mr]` from `a` (`[mc][kc]` at stride lda),
/// zero padded past mc.
void vk_pack_a(const float *a, size_t lda, size_t mc, size_t kc, size_t mr, float *out);

/// B micro-panels from a `[k][n]` matrix: `b` points at element [p0][j0].
void vk_pack_b_cols(const vk_ops *ops, const void *b, int type, size_t ldb, size_t nc, size_t kc, float *out);

/// `c[mc][nc] = alpha * Ap · Bp + beta * c` over packed panels (any mc, nc; edges through a
/// small tile).
void vk_macro_kernel(const vk_ops *ops, size_t mc, size_t nc, size_t kc, const float *ap, const float *bp,
                     float *c, size_t ldc, float alpha, float beta);

/// Per-thread scratch: slot `slot` (0 ..< 8) holds at least `count` floats, 64-byte aligned,
/// kept until the thread exits. Out of memory aborts with a message (as the Swift scratch does).
float *vk_scratch(int slot, size_t count);

static inline size_t vk_min(size_t a, size_t b) { return a < b ? a : b; }
static inline size_t vk_round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

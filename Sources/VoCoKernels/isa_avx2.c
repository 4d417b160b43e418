// The AVX2 level (AVX2 + FMA + F16C): what llama.cpp's F16 path uses on such machines.
// Compiled for that level function by function, so the package builds with default flags.
#include "internal.h"
#if VK_X86
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#include "x86_common.h"
#include <math.h>

enum { KC = 256, MR = 6, NR = 16 };

// MARK: - Microkernel: 6 x 16, 12 accumulators

static void kernel(size_t kc, const float *a, const float *b, float *c, size_t ldc, float alpha, float beta) {
    __m256 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (size_t p = 0; p < kc; p++, a += MR, b += NR) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (int i = 0; i < MR; i++) {
        for (int h = 0; h < 2; h++) {
            float *ci = c + i * ldc + h * 8;
            __m256 v = _mm256_mul_ps(va, acc[i][h]);
            if (beta != 0) v = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), v);
            _mm256_storeu_ps(ci, v);
        }
    }
}

static void pack_b_rows(const void *b, int type, size_t ldb, size_t nc, size_t kc, size_t nr, float *out) {
    pack_rows_x86(b, type, ldb, nc, kc, nr, out);
}

// MARK: - Packing A: 6-row panels, 8 columns at a time through a register transpose

static void pack_a(const float *a, size_t lda, size_t mc, size_t kc, float *out) {
    const __m256i six = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
    for (size_t i0 = 0; i0 < mc; i0 += MR, out += kc * MR) {
        const float *r = a + i0 * lda;
        if (mc - i0 < MR) {  // the last, partial panel: zero padded
            vk_pack_a(r, lda, mc - i0, kc, MR, out);
            continue;
        }
        size_t p = 0;
        for (; p + 8 <= kc; p += 8) {
            __m256 v[8];
            for (int i = 0; i < MR; i++) v[i] = _mm256_loadu_ps(r + i * lda + p);
            v[6] = v[7] = _mm256_setzero_ps();
            transpose8(v);  // v[j]: column p + j of the six rows, then two zeros
            float *o = out + p * MR;
            // Each store's two extra lanes are overwritten by the next; the last is masked.
            for (int j = 0; j < 7; j++) _mm256_storeu_ps(o + j * MR, v[j]);
            _mm256_maskstore_ps(o + 7 * MR, six, v[7]);
        }
        for (; p < kc; p++) {
            for (int i = 0; i < MR; i++) out[p * MR + i] = r[i * lda + p];
        }
    }
}

// MARK: - GEMV: RJ weight rows against M activation rows, 8 columns at a time

static inline __attribute__((always_inline)) void gemv_tile(const int RJ, const int M, const int type, size_t k,
                                                            const float *x, size_t ldx, const char *w, size_t w_step,
                                                            float alpha, float beta, float *y, size_t y_step,
                                                            size_t ldy) {
    __m256 acc[4][8];
    for (int r = 0; r < RJ; r++) for (int i = 0; i < M; i++) acc[r][i] = _mm256_setzero_ps();
    size_t p = 0;
    for (; p + 8 <= k; p += 8) {
        __m256 wv[4];
        for (int r = 0; r < RJ; r++) wv[r] = load8(w + r * w_step, type, p);
        for (int i = 0; i < M; i++) {
            __m256 xv = _mm256_loadu_ps(x + i * ldx + p);
            for (int r = 0; r < RJ; r++) acc[r][i] = _mm256_fmadd_ps(xv, wv[r], acc[r][i]);
        }
    }
    for (int r = 0; r < RJ; r++) {
        for (int i = 0; i < M; i++) {
            float s = hsum8(acc[r][i]);
            for (size_t q = p; q < k; q++) s += x[i * ldx + q] * vk_load_one(w + r * w_step, type, q);
            float v = alpha * s;
            y[i * ldy + r * y_step] = beta == 0 ? v : v + beta * y[i * ldy + r * y_step];
        }
    }
}

VK_DEFINE_GEMV(4, 4, 3, 2, 1)

// MARK: - Conversion, max, exp

static void convert(const void *source, int type, size_t count, float *destination) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(destination + i, load8(source, type, i));
    for (; i < count; i++) destination[i] = vk_load_one(source, type, i);
}

static float max_of(const float *x, size_t count) {
    __m256 m = _mm256_set1_ps(x[0]);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    float lanes[8], best = x[0];
    _mm256_storeu_ps(lanes, m);
    for (int l = 0; l < 8; l++) best = lanes[l] > best ? lanes[l] : best;
    for (; i < count; i++) best = x[i] > best ? x[i] : best;
    return best;
}

static float exp_sum(float *x, size_t count, float shift) {
    __m256 s = _mm256_setzero_ps(), vs = _mm256_set1_ps(shift);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
        _mm256_storeu_ps(x + i, e);
        s = _mm256_add_ps(s, e);
    }
    if (i < count) {
        float tail[8];
        size_t n = count - i;
        for (size_t l = 0; l < 8; l++) tail[l] = l < n ? x[i + l] : -__builtin_inff();
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(tail), vs));
        s = _mm256_add_ps(s, e);
        _mm256_storeu_ps(tail, e);
        for (size_t l = 0; l < n; l++) x[i + l] = tail[l];
    }
    return hsum8(s);
}

// MARK: - Activations

static void silu_mul(float *gate, const float *up, size_t count) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, g))));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    for (; i < count; i++) gate[i] = gate[i] / (1 + expf(-gate[i])) * up[i];
}

static void quick_gelu(float *x, size_t count) {
    const __m256 one = _mm256_set1_ps(1.0f), k = _mm256_set1_ps(-1.702f);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, exp8(_mm256_mul_ps(k, v)))));
    }
    for (; i < count; i++) x[i] = x[i] / (1 + expf(-1.702f * x[i]));
}

const vk_ops vk_ops_avx2 = {
    .isa = VK_ISA_AVX2, .mr = MR, .nr = NR, .kc = KC,
    .kernel = kernel, .pack_b_rows = pack_b_rows, .pack_a = pack_a, .gemv = gemv, .convert = convert,
    .max = max_of, .exp_sum = exp_sum, .silu_mul = silu_mul, .quick_gelu = quick_gelu,
};

#pragma clang attribute pop
#endif

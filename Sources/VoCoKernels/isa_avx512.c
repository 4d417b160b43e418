// The AVX-512 level (F + BW + VL + DQ): 16 lanes, 32 registers, masked tails.
#include "internal.h"
#if VK_X86
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq"))), apply_to = function)
#include "x86_common.h"

enum { KC = 128, MR = 12, NR = 32 };

// MARK: - Sixteen F32 lanes from any B type (the first `count` of them; the rest read 0)

static inline __m512 load16(const void *b, int type, size_t index) {
    switch (type) {
    case VK_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)b + index)));
    case VK_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)b + index))), 16));
    default: return _mm512_loadu_ps((const float *)b + index);
    }
}

static inline __m512 load16_masked(const void *b, int type, size_t index, __mmask16 mask) {
    switch (type) {
    case VK_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, (const uint16_t *)b + index));
    case VK_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, (const uint16_t *)b + index)), 16));
    default: return _mm512_maskz_loadu_ps(mask, (const float *)b + index);
    }
}

// MARK: - Microkernel: 12 x 32, 24 accumulators

static void kernel(size_t kc, const float *a, const float *b, float *c, size_t ldc, float alpha, float beta) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (size_t p = 0; p < kc; p++, a += MR, b += NR) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int i = 0; i < MR; i++) {
        for (int h = 0; h < 2; h++) {
            float *ci = c + i * ldc + h * 16;
            __m512 v = _mm512_mul_ps(va, acc[i][h]);
            if (beta != 0) v = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), v);
            _mm512_storeu_ps(ci, v);
        }
    }
}

static void pack_b_rows(const void *b, int type, size_t ldb, size_t nc, size_t kc, size_t nr, float *out) {
    pack_rows_x86(b, type, ldb, nc, kc, nr, out);
}

// MARK: - GEMV: RJ weight rows against M activation rows, 16 columns at a time

static inline __attribute__((always_inline)) void gemv_tile(const int RJ, const int M, const int type, size_t k,
                                                            const float *x, size_t ldx, const char *w, size_t w_step,
                                                            float alpha, float beta, float *y, size_t y_step,
                                                            size_t ldy) {
    __m512 acc[4][8];
    for (int r = 0; r < RJ; r++) for (int i = 0; i < M; i++) acc[r][i] = _mm512_setzero_ps();
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
        __m512 wv[4];
        for (int r = 0; r < RJ; r++) wv[r] = load16(w + r * w_step, type, p);
        for (int i = 0; i < M; i++) {
            __m512 xv = _mm512_loadu_ps(x + i * ldx + p);
            for (int r = 0; r < RJ; r++) acc[r][i] = _mm512_fmadd_ps(xv, wv[r], acc[r][i]);
        }
    }
    if (p < k) {
        __mmask16 mask = (__mmask16)((1u << (k - p)) - 1);
        __m512 wv[4];
        for (int r = 0; r < RJ; r++) wv[r] = load16_masked(w + r * w_step, type, p, mask);
        for (int i = 0; i < M; i++) {
            __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * ldx + p);
            for (int r = 0; r < RJ; r++) acc[r][i] = _mm512_fmadd_ps(xv, wv[r], acc[r][i]);
        }
    }
    for (int r = 0; r < RJ; r++) {
        for (int i = 0; i < M; i++) {
            float v = alpha * _mm512_reduce_add_ps(acc[r][i]);
            y[i * ldy + r * y_step] = beta == 0 ? v : v + beta * y[i * ldy + r * y_step];
        }
    }
}

VK_DEFINE_GEMV(4, 4, 4, 4, 2)

// MARK: - Conversion, max, exp

static void convert(const void *source, int type, size_t count, float *destination) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(destination + i, load16(source, type, i));
    if (i < count) {
        __mmask16 mask = (__mmask16)((1u << (count - i)) - 1);
        _mm512_mask_storeu_ps(destination + i, mask, load16_masked(source, type, i, mask));
    }
}

static float max_of(const float *x, size_t count) {
    __m512 m = _mm512_set1_ps(x[0]);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    if (i < count) m = _mm512_mask_max_ps(m, (__mmask16)((1u << (count - i)) - 1), m, _mm512_maskz_loadu_ps((__mmask16)((1u << (count - i)) - 1), x + i));
    return _mm512_reduce_max_ps(m);
}

static inline __m512 exp16(__m512 x) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(exp8(_mm512_castps512_ps256(x))), exp8(_mm512_extractf32x8_ps(x, 1)), 1);
}

static float exp_sum(float *x, size_t count, float shift) {
    __m512 s = _mm512_setzero_ps(), vs = _mm512_set1_ps(shift);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vs));
        _mm512_storeu_ps(x + i, e);
        s = _mm512_add_ps(s, e);
    }
    if (i < count) {
        __mmask16 mask = (__mmask16)((1u << (count - i)) - 1);
        __m512 e = exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-__builtin_inff()), mask, x + i), vs));
        _mm512_mask_storeu_ps(x + i, mask, e);
        s = _mm512_add_ps(s, e);
    }
    return _mm512_reduce_add_ps(s);
}

// MARK: - Activations

static void silu_mul(float *gate, const float *up, size_t count) {
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    size_t i = 0;
    for (; i < count; i += 16) {
        __mmask16 mask = count - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (count - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(mask, gate + i);
        __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(zero, g))));
        _mm512_mask_storeu_ps(gate + i, mask, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(mask, up + i)));
    }
}

static void quick_gelu(float *x, size_t count) {
    const __m512 one = _mm512_set1_ps(1.0f), k = _mm512_set1_ps(-1.702f);
    size_t i = 0;
    for (; i < count; i += 16) {
        __mmask16 mask = count - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (count - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
        _mm512_mask_storeu_ps(x + i, mask, _mm512_div_ps(v, _mm512_add_ps(one, exp16(_mm512_mul_ps(k, v)))));
    }
}

const vk_ops vk_ops_avx512 = {
    .isa = VK_ISA_AVX512, .mr = MR, .nr = NR, .kc = KC,
    .kernel = kernel, .pack_b_rows = pack_b_rows, .gemv = gemv, .convert = convert,
    .max = max_of, .exp_sum = exp_sum, .silu_mul = silu_mul, .quick_gelu = quick_gelu,
};

#pragma clang attribute pop
#endif

// Helpers shared by the AVX2 and AVX-512 files. Each file includes this after its
// `#pragma clang attribute push(target(...))`, so these functions are compiled for that file's
// level (static: one copy per level).
#pragma once
#include "internal.h"
#include <immintrin.h>

// MARK: - Eight F32 lanes from any B type

static inline __m256 load8(const void *b, int type, size_t index) {
    switch (type) {
    case VK_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)b + index)));
    case VK_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)b + index))), 16));
    default: return _mm256_loadu_ps((const float *)b + index);
    }
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// MARK: - GEMV driver over a file's gemv_tile

// The RJ rows of a tile are `span` rows apart, so each of the RJ weight streams walks `span`
// consecutive rows (one long sequential read) instead of the tile's rows being adjacent: RJ
// adjacent rows start RJ short streams at once, one page each when a row is 4 KiB (k = 2048 in
// F16), which the hardware prefetchers of some CPUs (AMD Zen 4) follow at about half the
// bandwidth of a plain read; the activations are still loaded once per tile.
#define VK_GEMV_RANGE(RJ, M, TYPE)                                                                        \
    {                                                                                                     \
        size_t span = (j1 - j) / RJ;                                                                      \
        for (size_t t = 0; t < span; t++)                                                                 \
            gemv_tile(RJ, M, TYPE, k, x, ldx, wb + (j + t) * row, span * row, alpha, beta, y + j + t, span, ldy); \
        j += span * RJ;                                                                                   \
        for (; j < j1; j++) gemv_tile(1, M, TYPE, k, x, ldx, wb + j * row, row, alpha, beta, y + j, 1, ldy); \
    }

#define VK_GEMV_TYPE(TYPE, RJ1, RJ2, RJ3, RJ4, RJ8)       \
    switch (m) {                                           \
    case 1: VK_GEMV_RANGE(RJ1, 1, TYPE) break;             \
    case 2: VK_GEMV_RANGE(RJ2, 2, TYPE) break;             \
    case 3: VK_GEMV_RANGE(RJ3, 3, TYPE) break;             \
    case 4: VK_GEMV_RANGE(RJ4, 4, TYPE) break;             \
    case 5: VK_GEMV_RANGE(RJ8, 5, TYPE) break;             \
    case 6: VK_GEMV_RANGE(RJ8, 6, TYPE) break;             \
    case 7: VK_GEMV_RANGE(RJ8, 7, TYPE) break;             \
    default: VK_GEMV_RANGE(RJ8, 8, TYPE) break;            \
    }

/// Defines `gemv` (the `vk_ops` entry) over the including file's `gemv_tile(RJ, M, TYPE, ...)`:
/// RJ weight rows per tile for 1, 2, 3, 4 and 5 to 8 activation rows (what its registers hold).
#define VK_DEFINE_GEMV(RJ1, RJ2, RJ3, RJ4, RJ8)                                                          \
    static void gemv(size_t m, size_t k, const float *x, size_t ldx, const void *w, int type, size_t ldw, \
                     size_t j0, size_t j1, float alpha, float beta, float *y, size_t ldy) {               \
        const char *wb = w;                                                                               \
        size_t row = ldw * vk_type_size(type), j = j0;                                                    \
        switch (type) {                                                                                   \
        case VK_F16: VK_GEMV_TYPE(VK_F16, RJ1, RJ2, RJ3, RJ4, RJ8) break;                                 \
        case VK_BF16: VK_GEMV_TYPE(VK_BF16, RJ1, RJ2, RJ3, RJ4, RJ8) break;                               \
        default: VK_GEMV_TYPE(VK_F32, RJ1, RJ2, RJ3, RJ4, RJ8) break;                                     \
        }                                                                                                 \
    }

// MARK: - 8 x 8 transpose

static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// MARK: - Packing rows of a weight into B micro-panels

/// Eight rows (fewer at the edge: the missing ones read as zeros) by kc columns, transposed
/// into `out` (`[kc][nr]`, these rows at columns 0..8 of each panel row).
static inline void pack8_rows(const void *b, int type, size_t ldb, size_t rows, size_t kc, size_t nr, float *out) {
    size_t p = 0;
    if (rows == 8) {
        for (; p + 8 <= kc; p += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = load8(b, type, i * ldb + p);
            transpose8(r);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(out + (p + i) * nr, r[i]);
        }
    }
    for (; p < kc; p++) {
        for (size_t i = 0; i < 8; i++) out[p * nr + i] = i < rows ? vk_load_one(b, type, i * ldb + p) : 0.0f;
    }
}

static inline void pack_rows_x86(const void *b, int type, size_t ldb, size_t nc, size_t kc, size_t nr, float *out) {
    size_t size = vk_type_size(type);
    for (size_t j0 = 0; j0 < nc; j0 += nr, out += kc * nr) {
        for (size_t g = 0; g < nr; g += 8) {
            size_t first = j0 + g, rows = first < nc ? vk_min(8, nc - first) : 0;
            pack8_rows((const char *)b + first * ldb * size, type, ldb, rows, kc, nr, out + g);
        }
    }
}

// MARK: - exp

/// exp(x) for 8 lanes (Cephes' expf: range reduction by ln 2 in two parts, degree-5 polynomial,
/// the power of two applied in two halves so no exponent overflows; about 1 ulp). Above
/// ln(FLT_MAX) the result is +inf, below -87.34 (results under 2^-126) it is 0, NaN stays NaN.
static inline __m256 exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.72283935546875f), lo = _mm256_set1_ps(-87.3365478515625f);
    __m256 original = x;
    __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ), under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i n = _mm256_cvtps_epi32(fx), half = _mm256_srai_epi32(n, 1), rest = _mm256_sub_epi32(n, half);
    const __m256i bias = _mm256_set1_epi32(127);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23)));
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(rest, bias), 23)));
    y = _mm256_andnot_ps(under, y);
    y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), over);
    return _mm256_blendv_ps(y, original, nan);
}

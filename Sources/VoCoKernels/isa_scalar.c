// The portable level: plain C that any CPU runs (and aarch64 builds). Correct first; the
// compiler vectorises what it can for the baseline target.
#include "internal.h"
#include <math.h>

enum { KC = 256, MR = 4, NR = 8 };

static void kernel(size_t kc, const float *a, const float *b, float *c, size_t ldc, float alpha, float beta) {
    float acc[MR][NR] = {{0}};
    for (size_t p = 0; p < kc; p++, a += MR, b += NR) {
        for (int i = 0; i < MR; i++) {
            for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
        }
    }
    for (int i = 0; i < MR; i++) {
        for (int j = 0; j < NR; j++) {
            float v = alpha * acc[i][j];
            c[i * ldc + j] = beta == 0 ? v : v + beta * c[i * ldc + j];
        }
    }
}

static void pack_b_rows(const void *b, int type, size_t ldb, size_t nc, size_t kc, size_t nr, float *out) {
    for (size_t j0 = 0; j0 < nc; j0 += nr, out += kc * nr) {
        for (size_t j = 0; j < nr; j++) {
            if (j0 + j < nc) {
                for (size_t p = 0; p < kc; p++) out[p * nr + j] = vk_load_one(b, type, (j0 + j) * ldb + p);
            } else {
                for (size_t p = 0; p < kc; p++) out[p * nr + j] = 0;
            }
        }
    }
}

static void gemv(size_t m, size_t k, const float *x, size_t ldx, const void *w, int type, size_t ldw,
                 size_t j0, size_t j1, float alpha, float beta, float *y, size_t ldy) {
    for (size_t j = j0; j < j1; j++) {
        for (size_t i = 0; i < m; i++) {
            float s = 0;
            for (size_t p = 0; p < k; p++) s += x[i * ldx + p] * vk_load_one(w, type, j * ldw + p);
            float v = alpha * s;
            y[i * ldy + j] = beta == 0 ? v : v + beta * y[i * ldy + j];
        }
    }
}

static void convert(const void *source, int type, size_t count, float *destination) {
    for (size_t i = 0; i < count; i++) destination[i] = vk_load_one(source, type, i);
}

static float max_of(const float *x, size_t count) {
    float m = x[0];
    for (size_t i = 1; i < count; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static float exp_sum(float *x, size_t count, float shift) {
    float s = 0;
    for (size_t i = 0; i < count; i++) {
        x[i] = expf(x[i] - shift);
        s += x[i];
    }
    return s;
}

static void silu_mul(float *gate, const float *up, size_t count) {
    for (size_t i = 0; i < count; i++) gate[i] = gate[i] / (1 + expf(-gate[i])) * up[i];
}

static void quick_gelu(float *x, size_t count) {
    for (size_t i = 0; i < count; i++) x[i] = x[i] / (1 + expf(-1.702f * x[i]));
}

const vk_ops vk_ops_scalar = {
    .isa = VK_ISA_SCALAR, .mr = MR, .nr = NR, .kc = KC,
    .kernel = kernel, .pack_b_rows = pack_b_rows, .gemv = gemv, .convert = convert,
    .max = max_of, .exp_sum = exp_sum, .silu_mul = silu_mul, .quick_gelu = quick_gelu,
};

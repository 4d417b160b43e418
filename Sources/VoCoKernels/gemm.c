// The matrix-product drivers: blocking, packing and threads around the per-ISA microkernels.
//
// GEMM (more than 8 rows): the weight is cut into column blocks of at most VK_NC (and, when that
// gives too few tasks, the rows of A too); each task packs its weight block KC deep, widening
// F16/BF16 to F32 as it transposes (every weight element is widened once per product when the
// rows fit one task), packs A in MC-row blocks and runs the microkernel over the panels.
// GEMV (8 rows or fewer): tasks of weight rows, each streamed once against every activation row.
#include "internal.h"
#include <string.h>

// MARK: - Packing

/// One full panel of MR rows, written in order: for each column p, the MR rows' elements
/// (contiguous stores; the MR rows are read as MR sequential streams).
static inline __attribute__((always_inline)) void pack_a_panel(const float *a, size_t lda, size_t kc, const size_t MR,
                                                               float *out) {
    const float *rows[16];
    for (size_t i = 0; i < MR; i++) rows[i] = a + i * lda;
    for (size_t p = 0; p < kc; p++, out += MR) {
        for (size_t i = 0; i < MR; i++) out[i] = rows[i][p];
    }
}

void vk_pack_a(const float *a, size_t lda, size_t mc, size_t kc, size_t mr, float *out) {
    for (size_t i0 = 0; i0 < mc; i0 += mr, out += kc * mr) {
        size_t rows = vk_min(mr, mc - i0);
        if (rows == mr && mr == 6) { pack_a_panel(a + i0 * lda, lda, kc, 6, out); continue; }
        if (rows == mr && mr == 12) { pack_a_panel(a + i0 * lda, lda, kc, 12, out); continue; }
        for (size_t i = 0; i < rows; i++) {
            const float *row = a + (i0 + i) * lda;
            for (size_t p = 0; p < kc; p++) out[p * mr + i] = row[p];
        }
        for (size_t i = rows; i < mr; i++) {
            for (size_t p = 0; p < kc; p++) out[p * mr + i] = 0;
        }
    }
}

void vk_pack_b_cols(const vk_ops *ops, const void *b, int type, size_t ldb, size_t nc, size_t kc, float *out) {
    size_t nr = (size_t)ops->nr, size = vk_type_size(type);
    for (size_t j0 = 0; j0 < nc; j0 += nr, out += kc * nr) {
        size_t cols = vk_min(nr, nc - j0);
        for (size_t p = 0; p < kc; p++) {
            const char *row = (const char *)b + (p * ldb + j0) * size;
            float *o = out + p * nr;
            if (type == VK_F32) memcpy(o, row, cols * 4);
            else ops->convert(row, type, cols, o);
            for (size_t j = cols; j < nr; j++) o[j] = 0;
        }
    }
}

// MARK: - Macro kernel

void vk_macro_kernel(const vk_ops *ops, size_t mc, size_t nc, size_t kc, const float *ap, const float *bp,
                     float *c, size_t ldc, float alpha, float beta) {
    size_t mr = (size_t)ops->mr, nr = (size_t)ops->nr;
    float edge[12 * 32] __attribute__((aligned(64)));  // [mr][nr], mr * nr <= 12 * 32 for every level
    for (size_t j0 = 0; j0 < nc; j0 += nr) {
        const float *b = bp + (j0 / nr) * kc * nr;
        size_t cols = vk_min(nr, nc - j0);
        for (size_t i0 = 0; i0 < mc; i0 += mr) {
            const float *a = ap + (i0 / mr) * kc * mr;
            size_t rows = vk_min(mr, mc - i0);
            float *ct = c + i0 * ldc + j0;
            if (rows == mr && cols == nr) {
                ops->kernel(kc, a, b, ct, ldc, alpha, beta);
            } else {
                ops->kernel(kc, a, b, edge, nr, alpha, 0);
                for (size_t i = 0; i < rows; i++) {
                    for (size_t j = 0; j < cols; j++) {
                        float v = edge[i * nr + j];
                        ct[i * ldc + j] = beta == 0 ? v : v + beta * ct[i * ldc + j];
                    }
                }
            }
        }
    }
}

// MARK: - GEMM

typedef struct {
    const vk_ops *ops;
    size_t m, n, k;
    float alpha, beta;
    const float *a;
    size_t lda;
    const void *b;
    int b_type;
    size_t ldb;
    int b_transposed;
    float *c;
    size_t ldc;
    size_t nc, mc_task, n_tasks;  // weight columns and A rows per task; tasks along n
} gemm_job;

/// One task: rows [i0, i1) of A against weight columns [j0, j1).
static void gemm_block(const gemm_job *job, size_t i0, size_t i1, size_t j0, size_t j1) {
    const vk_ops *ops = job->ops;
    size_t mr = (size_t)ops->mr, nr = (size_t)ops->nr, size = vk_type_size(job->b_type);
    size_t nc = j1 - j0;
    size_t depth = (size_t)ops->kc;
    float *bp = vk_scratch(0, vk_round_up(nc, nr) * depth);
    float *ap = vk_scratch(1, vk_round_up(VK_MC, mr) * depth);
    for (size_t p0 = 0; p0 < job->k; p0 += depth) {
        size_t kc = vk_min(depth, job->k - p0);
        if (job->b_transposed) {
            ops->pack_b_rows((const char *)job->b + (j0 * job->ldb + p0) * size, job->b_type, job->ldb, nc, kc, nr, bp);
        } else {
            vk_pack_b_cols(ops, (const char *)job->b + (p0 * job->ldb + j0) * size, job->b_type, job->ldb, nc, kc, bp);
        }
        float beta = p0 == 0 ? job->beta : 1.0f;
        for (size_t ic = i0; ic < i1; ic += VK_MC) {
            size_t mc = vk_min(VK_MC, i1 - ic);
            if (ops->pack_a) ops->pack_a(job->a + ic * job->lda + p0, job->lda, mc, kc, ap);
            else vk_pack_a(job->a + ic * job->lda + p0, job->lda, mc, kc, mr, ap);
            vk_macro_kernel(ops, mc, nc, kc, ap, bp, job->c + ic * job->ldc + j0, job->ldc, job->alpha, beta);
        }
    }
}

static void gemm_task(void *context, size_t item, int worker) {
    (void)worker;
    const gemm_job *job = context;
    size_t jt = item % job->n_tasks, it = item / job->n_tasks;
    size_t j0 = jt * job->nc, j1 = vk_min(job->n, j0 + job->nc);
    size_t i0 = it * job->mc_task, i1 = vk_min(job->m, i0 + job->mc_task);
    if (i0 < i1) gemm_block(job, i0, i1, j0, j1);
}

// MARK: - GEMV

typedef struct {
    const vk_ops *ops;
    size_t m, k;
    const float *x;
    size_t ldx;
    float alpha;
    const vk_linear_output *outputs;
    size_t count;
    size_t rows_per_task[VK_LINEAR_GROUP_MAX], first_task[VK_LINEAR_GROUP_MAX + 1];
} gemv_job;

static void gemv_task(void *context, size_t item, int worker) {
    (void)worker;
    const gemv_job *job = context;
    size_t o = 0;
    while (item >= job->first_task[o + 1]) o++;
    const vk_linear_output *out = &job->outputs[o];
    size_t rows = job->rows_per_task[o], j0 = (item - job->first_task[o]) * rows, j1 = vk_min(out->n, j0 + rows);
    job->ops->gemv(job->m, job->k, job->x, job->ldx, out->w, out->w_type, out->ldw, j0, j1, job->alpha, out->beta,
                   out->y, out->ldy);
}

/// Every output's rows as tasks of one region: about VK_GEMV_TASK_BYTES of weight each, fewer
/// bytes when the outputs together would give under 2 tasks per worker.
static void gemv_group(vk_pool *pool, size_t workers, const vk_ops *ops, float alpha, const float *x, size_t m,
                       size_t ldx, size_t k, const vk_linear_output *outputs, size_t count) {
    gemv_job job = {.ops = ops, .m = m, .k = k, .x = x, .ldx = ldx, .alpha = alpha, .outputs = outputs, .count = count};
    size_t total = 0;
    for (size_t o = 0; o < count; o++) total += outputs[o].n * k * vk_type_size(outputs[o].w_type);
    size_t task_bytes = VK_GEMV_TASK_BYTES;
    if (workers > 1) task_bytes = vk_min(task_bytes, total / (2 * workers));
    job.first_task[0] = 0;
    for (size_t o = 0; o < count; o++) {
        size_t row_bytes = k * vk_type_size(outputs[o].w_type);
        size_t rows = vk_min(outputs[o].n, vk_round_up((task_bytes + row_bytes - 1) / row_bytes, 4));
        job.rows_per_task[o] = rows == 0 ? 1 : rows;
        job.first_task[o + 1] = job.first_task[o] + (outputs[o].n + job.rows_per_task[o] - 1) / job.rows_per_task[o];
    }
    vk_pool_run(workers > 1 ? pool : NULL, job.first_task[count], gemv_task, &job);
}

static size_t workers_for(vk_pool *pool, size_t macs) {
    if (!pool || vk_pool_inside() || macs < VK_MIN_PARALLEL_MACS) return 1;
    return (size_t)vk_pool_size(pool);
}

// MARK: - Entry points

void vk_gemm(vk_pool *pool, int isa, size_t m, size_t n, size_t k, float alpha,
             const float *a, size_t lda, const void *b, int b_type, size_t ldb, int b_transposed,
             float beta, float *c, size_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        for (size_t i = 0; i < m; i++) {
            for (size_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
        }
        return;
    }
    const vk_ops *ops = vk_ops_for(isa);
    size_t workers = workers_for(pool, m * n * k);
    if (m <= 8 && b_transposed) {
        vk_linear_output out = {b, b_type, n, ldb, c, ldc, beta};
        gemv_group(pool, workers, ops, alpha, a, m, lda, k, &out, 1);
        return;
    }
    size_t nr = (size_t)ops->nr, mr = (size_t)ops->mr;
    size_t nc = vk_round_up(vk_min(n, VK_NC), nr);
    while (workers > 1 && (n + nc - 1) / nc < 3 * workers && nc > 2 * nr) nc = vk_round_up(nc / 2, nr);
    size_t n_tasks = (n + nc - 1) / nc, m_tasks = 1;
    while (workers > 1 && n_tasks * m_tasks < 3 * workers && m / (2 * m_tasks) >= 4 * mr) m_tasks *= 2;
    size_t mc_task = vk_round_up((m + m_tasks - 1) / m_tasks, mr);
    m_tasks = (m + mc_task - 1) / mc_task;
    gemm_job job = {ops, m, n, k, alpha, beta, a, lda, b, b_type, ldb, b_transposed, c, ldc, nc, mc_task, n_tasks};
    vk_pool_run(workers > 1 ? pool : NULL, n_tasks * m_tasks, gemm_task, &job);
}

void vk_linear(vk_pool *pool, int isa, const float *x, size_t m, size_t ldx,
               const void *w, int w_type, size_t n, size_t k, size_t ldw,
               const float *bias, float *y, size_t ldy, int accumulate) {
    vk_gemm(pool, isa, m, n, k, 1.0f, x, ldx, w, w_type, ldw, 1, accumulate ? 1.0f : 0.0f, y, ldy);
    if (bias) {
        for (size_t i = 0; i < m; i++) {
            float *row = y + i * ldy;
            for (size_t j = 0; j < n; j++) row[j] += bias[j];
        }
    }
}

void vk_linear_group(vk_pool *pool, int isa, const float *x, size_t m, size_t ldx, size_t k,
                     const vk_linear_output *outputs, size_t count) {
    if (m == 0 || count == 0) return;
    if (m > 8 || k == 0 || count > VK_LINEAR_GROUP_MAX) {  // GEMMs are regions enough on their own
        for (size_t o = 0; o < count; o++) {
            const vk_linear_output *out = &outputs[o];
            vk_gemm(pool, isa, m, out->n, k, 1.0f, x, ldx, out->w, out->w_type, out->ldw, 1, out->beta, out->y, out->ldy);
        }
        return;
    }
    size_t macs = 0;
    for (size_t o = 0; o < count; o++) macs += m * outputs[o].n * k;
    gemv_group(pool, workers_for(pool, macs), vk_ops_for(isa), 1.0f, x, m, ldx, k, outputs, count);
}

void vk_convert(int isa, const void *source, int type, size_t count, float *destination) {
    vk_ops_for(isa)->convert(source, type, count, destination);
}

void vk_silu_mul(int isa, float *gate, const float *up, size_t count) { vk_ops_for(isa)->silu_mul(gate, up, count); }

void vk_quick_gelu(int isa, float *x, size_t count) { vk_ops_for(isa)->quick_gelu(x, count); }

// The matrix-product drivers: blocking, packing and threads around the per-ISA microkernels.
//
// GEMM (more than 8 rows): the weight is cut into column blocks of at most VK_NC (and, when that
// gives too few tasks, the rows of A too); each task packs its weight block KC deep, widening
// F16/BF16 to F32 as it transposes (every weight element is widened once per product when the
// rows fit one task), and runs the microkernel over its panels and A's. A is packed once, in a
// region before the tasks', when several tasks share its rows (up to VK_SHARED_A_BYTES at a
// time); otherwise each task packs its own rows in MC-row blocks.
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
    float *ap_shared;             // A packed once for every task (see gemm_rows), or NULL
    size_t mpad;                  // m rounded up to mr: the rows of one depth block of ap_shared
} gemm_job;

/// A micro-panels of `mc` rows by `kc` (the level's own pack where it has one).
static void pack_a_block(const vk_ops *ops, const float *a, size_t lda, size_t mc, size_t kc, float *out) {
    if (ops->pack_a) ops->pack_a(a, lda, mc, kc, out);
    else vk_pack_a(a, lda, mc, kc, (size_t)ops->mr, out);
}

/// Where the panels of rows [ic, ic + mc) at depth p0 (kc deep) lie in a shared pack: each depth
/// block holds all mpad rows, `[mpad / mr][kc][mr]`.
static inline float *shared_panels(float *base, size_t mpad, size_t mr, size_t p0, size_t kc, size_t ic) {
    return base + p0 * mpad + ic / mr * kc * mr;
}

static void pack_a_shared_task(void *context, size_t item, int worker) {
    (void)worker;
    const gemm_job *job = context;
    size_t depth = (size_t)job->ops->kc, row_blocks = (job->m + VK_MC - 1) / VK_MC;
    size_t p0 = item / row_blocks * depth, ic = item % row_blocks * VK_MC;
    size_t kc = vk_min(depth, job->k - p0), mc = vk_min(VK_MC, job->m - ic);
    pack_a_block(job->ops, job->a + ic * job->lda + p0, job->lda, mc, kc,
                 shared_panels(job->ap_shared, job->mpad, (size_t)job->ops->mr, p0, kc, ic));
}

/// One task: rows [i0, i1) of A against weight columns [j0, j1).
static void gemm_block(const gemm_job *job, size_t i0, size_t i1, size_t j0, size_t j1) {
    const vk_ops *ops = job->ops;
    size_t mr = (size_t)ops->mr, nr = (size_t)ops->nr, size = vk_type_size(job->b_type);
    size_t nc = j1 - j0;
    size_t depth = (size_t)ops->kc;
    float *bp = vk_scratch(0, vk_round_up(nc, nr) * depth);
    float *ap = job->ap_shared ? NULL : vk_scratch(1, vk_round_up(VK_MC, mr) * depth);
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
            const float *panels = ap;
            if (job->ap_shared) panels = shared_panels(job->ap_shared, job->mpad, mr, p0, kc, ic);
            else pack_a_block(ops, job->a + ic * job->lda + p0, job->lda, mc, kc, ap);
            vk_macro_kernel(ops, mc, nc, kc, panels, bp, job->c + ic * job->ldc + j0, job->ldc, job->alpha, beta);
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

/// Cuts `job` (its ops, shape and operands set) into tasks and runs them. Several tasks along
/// n would each pack the same rows of A, so with `share` A is packed once, in a region of its
/// own, into the caller's scratch, and every task reads those panels.
static void gemm_rows(vk_pool *pool, size_t workers, gemm_job *job, int share) {
    size_t m = job->m, n = job->n, nr = (size_t)job->ops->nr, mr = (size_t)job->ops->mr;
    size_t nc = vk_round_up(vk_min(n, VK_NC), nr);
    while (workers > 1 && (n + nc - 1) / nc < 3 * workers && nc > 2 * nr) nc = vk_round_up(nc / 2, nr);
    size_t n_tasks = (n + nc - 1) / nc, m_tasks = 1;
    while (workers > 1 && n_tasks * m_tasks < 3 * workers && m / (2 * m_tasks) >= 4 * mr) m_tasks *= 2;
    size_t mc_task = vk_round_up((m + m_tasks - 1) / m_tasks, mr);
    m_tasks = (m + mc_task - 1) / mc_task;
    job->nc = nc;
    job->mc_task = mc_task;
    job->n_tasks = n_tasks;
    job->ap_shared = NULL;
    if (share && n_tasks > 1) {
        job->mpad = vk_round_up(m, mr);
        job->ap_shared = vk_scratch(2, job->mpad * job->k);
        size_t depth_blocks = (job->k + (size_t)job->ops->kc - 1) / (size_t)job->ops->kc;
        vk_pool_run(workers > 1 ? pool : NULL, depth_blocks * ((m + VK_MC - 1) / VK_MC), pack_a_shared_task, job);
    }
    vk_pool_run(workers > 1 ? pool : NULL, n_tasks * m_tasks, gemm_task, job);
}

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
    gemm_job job = {ops, m, n, k, alpha, beta, a, lda, b, b_type, ldb, b_transposed, c, ldc, 0, 0, 0, NULL, 0};
    // A is packed once for all tasks when it fits VK_SHARED_A_BYTES (in row chunks when it does
    // not), and only on the top-level thread, whose scratch slot 2 no kernel is using then.
    size_t chunk = vk_pool_inside() ? 0 : VK_SHARED_A_BYTES / (k * sizeof(float)) / VK_MC * VK_MC;
    if (chunk == 0 || chunk >= m) {
        gemm_rows(pool, workers, &job, chunk != 0);
        return;
    }
    for (size_t r0 = 0; r0 < m; r0 += chunk) {
        gemm_job part = job;
        part.m = vk_min(chunk, m - r0);
        part.a = a + r0 * lda;
        part.c = c + r0 * ldc;
        gemm_rows(pool, workers, &part, 1);
    }
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

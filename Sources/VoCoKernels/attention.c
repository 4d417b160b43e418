// Flash-style attention: for one sequence, one KV head and a tile of query rows, the scores
// of one tile of keys at a time, an online softmax (running max and sum per row, the output
// rescaled when the max grows), and the tile's probabilities times its values added to the
// output. The query heads that share a KV head go through together, so each K and V tile is
// packed once for all of them (grouped-query attention).
#include "internal.h"
#include <math.h>
#include <string.h>

/// Query rows (x heads sharing a KV head) and keys per tile: the scores of one worker are at
/// most TILE_ROWS x TILE_KEYS floats.
enum { TILE_ROWS = 128, TILE_KEYS = 128 };

typedef struct {
    const vk_ops *ops;
    const vk_attention_block *blocks;
    size_t heads, kv_heads, head_dim, group, query_tile;
    float scale;
    const size_t *first_task;  // [blocks + 1]: the first task of each block
} attention_job;

/// Query rows [i0, i1) of `block`, heads of KV head `g`.
static void attend_tile(const attention_job *job, const vk_attention_block *block, size_t g, size_t i0, size_t i1) {
    const vk_ops *ops = job->ops;
    size_t d = job->head_dim, group = job->group, mr = (size_t)ops->mr, nr = (size_t)ops->nr;
    size_t q_stride = job->heads * d, kv_stride = job->kv_heads * d;
    size_t rows = (i1 - i0) * group;  // row r is query i0 + r / group, head g * group + r % group
    long causal = block->causal_offset;
    size_t m = block->key_count;
    size_t key_end = causal < 0 ? m : vk_min(m, (size_t)causal + i1);  // keys the last row sees

    float *q = vk_scratch(2, rows * d);                                   // [rows][d]
    float *qp = vk_scratch(3, vk_round_up(rows, mr) * d);                 // A panels of q
    float *kp = vk_scratch(4, vk_round_up(TILE_KEYS, nr) * d);            // B panels of a K tile
    float *s = vk_scratch(5, rows * TILE_KEYS);                           // [rows][TILE_KEYS] scores
    float *pp = vk_scratch(6, vk_round_up(rows, mr) * TILE_KEYS);         // A panels of probabilities
    float *vp = vk_scratch(7, vk_round_up(d, nr) * TILE_KEYS);            // B panels of a V tile
    float *o = vk_scratch(0, rows * d + 2 * rows);                        // [rows][d] output, then max, sum
    float *row_max = o + rows * d, *row_sum = row_max + rows;

    for (size_t r = 0; r < rows; r++) {
        const float *src = block->queries + (i0 + r / group) * q_stride + (g * group + r % group) * d;
        memcpy(q + r * d, src, d * sizeof(float));
    }
    vk_pack_a(q, d, rows, d, mr, qp);
    memset(o, 0, rows * d * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        row_max[r] = -INFINITY;
        row_sum[r] = 0;
    }

    for (size_t k0 = 0; k0 < key_end; k0 += TILE_KEYS) {
        size_t kb = vk_min(TILE_KEYS, key_end - k0);
        // S = scale * Q K_tileᵀ   [rows][kb]
        ops->pack_b_rows(block->keys + k0 * kv_stride + g * d, VK_F32, kv_stride, kb, d, nr, kp);
        vk_macro_kernel(ops, rows, kb, d, qp, kp, s, TILE_KEYS, job->scale, 0);
        // Online softmax, row by row; P overwrites S.
        for (size_t r = 0; r < rows; r++) {
            float *sr = s + r * TILE_KEYS;
            size_t i = i0 + r / group;
            size_t visible = causal < 0 ? kb : (size_t)causal + i + 1 <= k0 ? 0 : vk_min(kb, (size_t)causal + i + 1 - k0);
            if (visible == 0) {
                memset(sr, 0, kb * sizeof(float));
                continue;
            }
            float tile_max = ops->max(sr, visible);
            float new_max = tile_max > row_max[r] ? tile_max : row_max[r];
            if (new_max != new_max) new_max = tile_max;  // NaN scores: let them through exp
            float correction = row_max[r] == -INFINITY ? 0 : expf(row_max[r] - new_max);
            float sum = ops->exp_sum(sr, visible, new_max);
            if (visible < kb) memset(sr + visible, 0, (kb - visible) * sizeof(float));
            row_sum[r] = row_sum[r] * correction + sum;
            row_max[r] = new_max;
            if (correction != 1.0f) {
                float *orow = o + r * d;
                for (size_t t = 0; t < d; t++) orow[t] *= correction;
            }
        }
        // O += P V_tile   [rows][d]
        vk_pack_a(s, TILE_KEYS, rows, kb, mr, pp);
        vk_pack_b_cols(ops, block->values + k0 * kv_stride + g * d, VK_F32, kv_stride, d, kb, vp);
        vk_macro_kernel(ops, rows, d, kb, pp, vp, o, d, 1.0f, 1.0f);
    }

    for (size_t r = 0; r < rows; r++) {
        float *dst = block->output + (i0 + r / group) * q_stride + (g * group + r % group) * d;
        float inverse = row_sum[r] > 0 ? 1.0f / row_sum[r] : 0.0f;
        if (row_sum[r] != row_sum[r]) inverse = row_sum[r];  // NaN stays NaN
        for (size_t t = 0; t < d; t++) dst[t] = o[r * d + t] * inverse;
    }
}

static void attention_task(void *context, size_t item, int worker) {
    (void)worker;
    const attention_job *job = context;
    size_t b = 0;
    while (item >= job->first_task[b + 1]) b++;
    const vk_attention_block *block = job->blocks + b;
    size_t local = item - job->first_task[b];
    size_t g = local % job->kv_heads, tile = local / job->kv_heads;
    size_t i0 = tile * job->query_tile, i1 = vk_min(block->query_count, i0 + job->query_tile);
    attend_tile(job, block, g, i0, i1);
}

void vk_attention(vk_pool *pool, int isa, const vk_attention_block *blocks, size_t block_count,
                  size_t heads, size_t kv_heads, size_t head_dim, float scale) {
    if (heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || head_dim == 0) return;
    size_t group = heads / kv_heads;
    size_t query_tile = group >= TILE_ROWS ? 1 : TILE_ROWS / group;
    // Up to 16 blocks (sequences) per region, so the task table needs no allocation.
    for (size_t base = 0; base < block_count; base += 16) {
        size_t count = vk_min(16, block_count - base), first[17], macs = 0;  // first: [count + 1]
        first[0] = 0;
        for (size_t b = 0; b < count; b++) {
            const vk_attention_block *block = blocks + base + b;
            first[b + 1] = first[b] + (block->query_count + query_tile - 1) / query_tile * kv_heads;
            macs += 2 * block->query_count * block->key_count * heads * head_dim;
        }
        attention_job job = {vk_ops_for(isa), blocks + base, heads, kv_heads, head_dim, group, query_tile, scale, first};
        int parallel = pool && !vk_pool_inside() && macs >= VK_MIN_PARALLEL_MACS;
        vk_pool_run(parallel ? pool : NULL, first[count], attention_task, &job);
    }
}

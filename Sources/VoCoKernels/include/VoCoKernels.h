// VoCoKernels: F32 / F16 / BF16 matrix kernels for the engine, chosen at run time by CPU feature.
//
// Everything is row-major. A weight is `[n][k]` (a linear layer's `[out][in]`) in F32, F16 or
// BF16 and is read where it lies (a memory-mapped checkpoint): half values are widened to F32
// inside the kernels, in registers (GEMV) or into a packed panel (GEMM), never into a whole F32
// copy. Products accumulate in F32.
//
// ISA levels: scalar (portable C, any CPU, aarch64 included), AVX2 (+FMA +F16C) and AVX-512
// (F, BW, VL, DQ). Every entry point takes the level to use; `vk_isa_default()` is the best the
// CPU has, capped by the environment variable `VOCO_ISA` (scalar, avx2 or avx512), so the AVX2
// path can be run and tested on an AVX-512 machine. Asking for a level the CPU lacks falls back
// to the best it has below it.
//
// Threads: `vk_pool` is a pool of workers that spin briefly for the next region, then park; work
// items are claimed one at a time by whoever is running, so a region never waits for a worker
// that has not been scheduled yet. Kernels called from inside a pool task run on that thread.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - ISA levels

typedef enum {
    VK_ISA_SCALAR = 0,
    VK_ISA_AVX2 = 1,    // AVX2 + FMA + F16C
    VK_ISA_AVX512 = 2,  // AVX-512 F + BW + VL + DQ (F16C conversions widen to 16 lanes)
} vk_isa;

enum { VK_ISA_COUNT = 3 };

/// Whether this CPU (and OS) can run `isa`.
int vk_isa_supported(int isa);
/// The best level the CPU has, capped by `$VOCO_ISA` when set to a known name.
int vk_isa_default(void);
/// "scalar", "avx2", "avx512".
const char *vk_isa_name(int isa);
/// The level `vk_isa_name` names, or -1.
int vk_isa_from_name(const char *name);
/// The level a kernel asked for `isa` really runs: `isa` when supported, else the best below.
int vk_isa_effective(int isa);

/// Whether the AVX-512 level runs its matrix products (GEMM, attention) through the AVX2 level's
/// 6 x 16 tile and packing instead of its own 12 x 32: chosen where the CPU splits every
/// 512-bit FMA in two (AMD Zen 4), or forced by `$VOCO_AVX512_GEMM` = wide | narrow. The
/// level's GEMV, conversions and activations stay 512-bit either way.
int vk_avx512_gemm_narrow(void);
/// OR'ed into the `isa` argument of one call: that call's AVX-512 products use the 12 x 32
/// (wide) or 6 x 16 (narrow) tile whatever the process chose (tests run both on one CPU).
#define VK_TILE_WIDE 0x100
#define VK_TILE_NARROW 0x200

// MARK: - Element types of a B operand (weights)

typedef enum {
    VK_F32 = 0,
    VK_F16 = 1,
    VK_BF16 = 2,
} vk_dtype;

// MARK: - Thread pool

typedef struct vk_pool vk_pool;

/// A pool of `threads` workers in all; the thread that calls `vk_pool_run` is worker 0, so
/// `threads - 1` threads are started. `spin_microseconds` < 0 takes `$VOCO_SPIN_US`, else 200.
vk_pool *vk_pool_create(int threads, int spin_microseconds);
void vk_pool_destroy(vk_pool *pool);
int vk_pool_size(const vk_pool *pool);

typedef void (*vk_task)(void *context, size_t item, int worker);

/// Calls `task(context, item, worker)` once for every item in `0 ..< items` and returns when all
/// are done. Items go to whichever worker asks next (the caller too); `worker` is in
/// `0 ..< vk_pool_size(pool)` and no two concurrent calls share one. Called from inside a task,
/// or while another thread runs a region on the same pool, the items run on the calling thread
/// (worker 0). `pool` may be NULL (everything runs on the calling thread).
void vk_pool_run(vk_pool *pool, size_t items, vk_task task, void *context);

/// Whether the calling thread is running a pool task.
int vk_pool_inside(void);

// MARK: - Matrix products

/// `c[m][n] = alpha * a[m][k] * op(b) + beta * c`; `op(b)` is `bᵀ` of `b` `[n][k]` (ldb) when
/// `b_transposed` (a weight), else `b` `[k][n]` (ldb). `a` and `c` are F32; `b` is `b_type`.
/// With beta == 0, `c` is not read (NaN already there does not leak in). Uses the pool when the
/// product is large enough and the caller is not itself a pool task.
void vk_gemm(vk_pool *pool, int isa, size_t m, size_t n, size_t k, float alpha,
             const float *a, size_t lda, const void *b, int b_type, size_t ldb, int b_transposed,
             float beta, float *c, size_t ldc);

/// `y[m][n] = x[m][k] * wᵀ (+ y when accumulate) (+ bias[n] when bias)`, `w` `[n][k]` of `w_type`
/// with row stride `ldw`: the linear layer. m <= 8 streams the weight once (GEMV); more rows
/// go through the packed GEMM.
void vk_linear(vk_pool *pool, int isa, const float *x, size_t m, size_t ldx,
               const void *w, int w_type, size_t n, size_t k, size_t ldw,
               const float *bias, float *y, size_t ldy, int accumulate);

/// One output of `vk_linear_group`: `y[m][n] (ldy) = x · wᵀ + beta · y`, `w` `[n][k]` of
/// `w_type` with row stride `ldw`; `y` is not read when beta == 0.
typedef struct {
    const void *w;
    int w_type;
    size_t n;
    size_t ldw;
    float *y;
    size_t ldy;
    float beta;
} vk_linear_output;

/// The most outputs one `vk_linear_group` runs as one region (more run one after another).
enum { VK_LINEAR_GROUP_MAX = 8 };

/// Several linear layers of the same input `x[m][k]` (a layer's Q, K and V; an MLP's gate and
/// up): with m <= 8 the weight rows of all of them are the tasks of one parallel region, so
/// small matrices (K and V) do not each pay for a region of their own; more rows run one GEMM
/// per output.
void vk_linear_group(vk_pool *pool, int isa, const float *x, size_t m, size_t ldx, size_t k,
                     const vk_linear_output *outputs, size_t count);

/// Widens `count` elements of `type` into F32.
void vk_convert(int isa, const void *source, int type, size_t count, float *destination);

// MARK: - Activations (exp within about 1 ulp; vectorised)

/// `gate[i] = silu(gate[i]) * up[i]`, `silu(x) = x / (1 + exp(-x))`.
void vk_silu_mul(int isa, float *gate, const float *up, size_t count);
/// `x[i] = x[i] / (1 + exp(-1.702 x[i]))`.
void vk_quick_gelu(int isa, float *x, size_t count);

// MARK: - Attention

/// One sequence's queries against its keys and values. Rows of `queries` and `output` hold
/// `heads * head_dim` floats, rows of `keys` and `values` `kv_heads * head_dim`.
typedef struct {
    const float *queries;  // [query_count][heads*head_dim]
    const float *keys;     // [key_count][kv_heads*head_dim]
    const float *values;   // [key_count][kv_heads*head_dim]
    float *output;         // [query_count][heads*head_dim]
    size_t query_count;
    size_t key_count;
    /// Query i sees keys 0 ... causal_offset + i; < 0: every key.
    long causal_offset;
} vk_attention_block;

/// softmax(Q Kᵀ * scale + mask) V for every block and head, query head h reading KV head
/// h / (heads / kv_heads). Flash-style: scores exist one tile at a time (at most 128 rows x
/// 128 keys per worker), with an online softmax; a query row that sees no key gets zeros.
void vk_attention(vk_pool *pool, int isa, const vk_attention_block *blocks, size_t block_count,
                  size_t heads, size_t kv_heads, size_t head_dim, float scale);

#ifdef __cplusplus
}
#endif

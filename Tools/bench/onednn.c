// oneDNN's matmul against VoCoKernels and OpenBLAS at the linear layers of the TinyLlama-1.1B
// shape (Tools/bench/onednn.sh builds and runs it; see docs/engine.md). One process, one run,
// the same threads and the same random weights for every engine:
//   decode (m = 1) and prefill (m = 512) rows x (n = 5632, k = 2048) and (n = 2048, k = 5632);
//   weights [n][k] as a checkpoint stores them, in F16, BF16 and F32 (the widened copy).
// oneDNN is asked for every pairing a half-precision model could use: F32 activations with
// F16 / BF16 / F32 weights, BF16 activations with BF16 weights, each with the weights read in
// place (format `ba`, the checkpoint's layout) and with the layout oneDNN prefers (format
// `any`: a one-time reordered copy, its size reported). A pairing oneDNN has no implementation
// for at this ISA is printed as such. Decode cycles through enough copies of the weights to
// defeat the caches and reports weight GB/s against a plain read of the same bytes.
//
// Usage: onednn avx2|native [threads]   (avx2 caps oneDNN, VoCoKernels and, through the
// script's OPENBLAS_CORETYPE=Haswell, OpenBLAS at AVX2 + FMA + F16C)
#include <cblas.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "VoCoKernels.h"

extern void openblas_set_num_threads(int);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/// The median of `count` timings (sorted in place), freeing them.
static double median_freeing(double *times, int count) {
    for (int i = 1; i < count; i++)
        for (int j = i; j > 0 && times[j] < times[j - 1]; j--) { double t = times[j]; times[j] = times[j - 1]; times[j - 1] = t; }
    double middle = times[count / 2];
    free(times);
    return middle;
}

static void *allocate(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        fprintf(stderr, "onednn: cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

static uint16_t to_f16(float f) {
    // Round to nearest even through the F16C-free path: the values here are small normals.
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int exponent = (int)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mantissa = x & 0x7fffff;
    if (exponent <= 0) return (uint16_t)sign;  // flush: never reached by the data below
    uint32_t h = sign | ((uint32_t)exponent << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
}

static uint16_t to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

// MARK: - Weights: `copies` random [n][k] matrices in each type, the same values

typedef struct {
    size_t n, k, copies;
    uint16_t *f16, *bf16;
    float *f32;
} weights;

static weights make_weights(size_t n, size_t k, size_t copies, unsigned seed) {
    weights w = {n, k, copies, NULL, NULL, NULL};
    size_t count = n * k * copies;
    w.f16 = allocate(count * 2);
    w.bf16 = allocate(count * 2);
    w.f32 = allocate(count * 4);
    srand(seed);
    for (size_t i = 0; i < count; i++) {
        float v = ((float)rand() / (float)RAND_MAX - 0.5f) * 0.05f;
        w.f16[i] = to_f16(v);
        w.bf16[i] = to_bf16(v);
        w.f32[i] = v;
    }
    return w;
}

static void free_weights(weights *w) {
    free(w->f16);
    free(w->bf16);
    free(w->f32);
}

// MARK: - oneDNN

static dnnl_engine_t engine;
static dnnl_stream_t stream;

#define DNNL_CHECK(call)                                                                  \
    do {                                                                                  \
        dnnl_status_t s_ = (call);                                                        \
        if (s_ != dnnl_success) {                                                         \
            fprintf(stderr, "onednn: %s failed (status %d)\n", #call, (int)s_);          \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

typedef struct {
    int implemented;
    char impl[64];
    double seconds;        // median per product
    double prepared_bytes; // the reordered weight copy (format any), or 0
} result;

static size_t type_size(dnnl_data_type_t t) { return t == dnnl_f32 ? 4 : 2; }

/// oneDNN matmul of m rows against `w` (copies cycled), src/weights types as given; `any`
/// lets oneDNN choose the weight layout (reordered once from the checkpoint's, excluded from
/// the time). `src` is F32 [m][k]; a BF16 src is converted once, outside the timing.
static result onednn_matmul(size_t m, const weights *w, dnnl_data_type_t src_type, dnnl_data_type_t wei_type,
                            int any, const float *src, float *dst, int repeats) {
    result r = {0, "", 0, 0};
    size_t n = w->n, k = w->k;
    dnnl_dims_t src_dims = {(dnnl_dim_t)m, (dnnl_dim_t)k}, wei_dims = {(dnnl_dim_t)k, (dnnl_dim_t)n},
                dst_dims = {(dnnl_dim_t)m, (dnnl_dim_t)n};
    dnnl_memory_desc_t src_md, wei_md, wei_user_md, dst_md;
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, src_type, dnnl_ab));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&wei_user_md, 2, wei_dims, wei_type, dnnl_ba));  // [n][k]
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&wei_md, 2, wei_dims, wei_type, any ? dnnl_format_tag_any : dnnl_ba));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t desc;
    dnnl_status_t status = dnnl_matmul_desc_init(&desc, &src_md, &wei_md, NULL, &dst_md);
    if (status != dnnl_success) {  // this version does not accept the pairing at all
        snprintf(r.impl, sizeof r.impl, "refused: status %d", (int)status);
        return r;
    }
    dnnl_primitive_desc_t pd;
    status = dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL);
    if (status != dnnl_success) {
        snprintf(r.impl, sizeof r.impl, "unimplemented: status %d", (int)status);
        return r;
    }
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(r.impl, sizeof r.impl, "%s", impl ? impl : "?");
    if (strstr(r.impl, "ref") == r.impl) {  // the reference C loops: not an implementation anyone would run
        r.implemented = -1;
        dnnl_primitive_desc_destroy(pd);
        return r;
    }
    r.implemented = 1;
    const dnnl_memory_desc_t *chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_t matmul;
    DNNL_CHECK(dnnl_primitive_create(&matmul, pd));

    // Activations in the asked type.
    void *src_data = (void *)src;
    if (src_type == dnnl_bf16) {
        uint16_t *s = allocate(m * k * 2);
        for (size_t i = 0; i < m * k; i++) s[i] = to_bf16(src[i]);
        src_data = s;
    }
    dnnl_memory_t src_mem, dst_mem;
    DNNL_CHECK(dnnl_memory_create(&src_mem, &src_md, engine, src_data));
    DNNL_CHECK(dnnl_memory_create(&dst_mem, &dst_md, engine, dst));

    // Weights: every copy in place, or reordered once into oneDNN's layout.
    const char *base = wei_type == dnnl_f16 ? (const char *)w->f16 : wei_type == dnnl_bf16 ? (const char *)w->bf16
                                                                                           : (const char *)w->f32;
    size_t matrix_bytes = n * k * type_size(wei_type);
    dnnl_memory_t *wei_mem = calloc(w->copies, sizeof *wei_mem);
    int reordered = any && !dnnl_memory_desc_equal(chosen, &wei_user_md);
    for (size_t c = 0; c < w->copies; c++) {
        void *user = (void *)(base + c * matrix_bytes);
        if (!reordered) {
            DNNL_CHECK(dnnl_memory_create(&wei_mem[c], &wei_user_md, engine, user));
            continue;
        }
        dnnl_memory_t from;
        DNNL_CHECK(dnnl_memory_create(&from, &wei_user_md, engine, user));
        DNNL_CHECK(dnnl_memory_create(&wei_mem[c], chosen, engine, DNNL_MEMORY_ALLOCATE));
        dnnl_primitive_desc_t rpd;
        DNNL_CHECK(dnnl_reorder_primitive_desc_create(&rpd, &wei_user_md, engine, chosen, engine, NULL));
        dnnl_primitive_t reorder;
        DNNL_CHECK(dnnl_primitive_create(&reorder, rpd));
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, wei_mem[c]}};
        DNNL_CHECK(dnnl_primitive_execute(reorder, stream, 2, args));
        DNNL_CHECK(dnnl_stream_wait(stream));
        dnnl_primitive_destroy(reorder);
        dnnl_primitive_desc_destroy(rpd);
        dnnl_memory_destroy(from);
        r.prepared_bytes += (double)dnnl_memory_desc_get_size(chosen);
    }

    double *times = calloc((size_t)repeats, sizeof *times);
    for (int rep = -1; rep < repeats; rep++) {  // one untimed warm-up
        double t0 = now();
        for (size_t c = 0; c < w->copies; c++) {
            dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, wei_mem[c]}, {DNNL_ARG_DST, dst_mem}};
            DNNL_CHECK(dnnl_primitive_execute(matmul, stream, 3, args));
        }
        DNNL_CHECK(dnnl_stream_wait(stream));
        if (rep >= 0) times[rep] = (now() - t0) / (double)w->copies;
    }
    r.seconds = median_freeing(times, repeats);
    for (size_t c = 0; c < w->copies; c++) dnnl_memory_destroy(wei_mem[c]);
    free(wei_mem);
    dnnl_memory_destroy(src_mem);
    dnnl_memory_destroy(dst_mem);
    if (src_data != src) free(src_data);
    dnnl_primitive_destroy(matmul);
    dnnl_primitive_desc_destroy(pd);
    return r;
}

// MARK: - VoCoKernels, OpenBLAS, a plain read

static vk_pool *pool;
static int isa;

static result ours(size_t m, const weights *w, int type, const float *src, float *dst, int repeats) {
    result r = {1, "", 0, 0};
    snprintf(r.impl, sizeof r.impl, "VoCoKernels %s", vk_isa_name(vk_isa_effective(isa)));
    const char *base = type == VK_F16 ? (const char *)w->f16 : type == VK_BF16 ? (const char *)w->bf16 : (const char *)w->f32;
    size_t matrix_bytes = w->n * w->k * (type == VK_F32 ? 4 : 2);
    double *times = calloc((size_t)repeats, sizeof *times);
    for (int rep = -1; rep < repeats; rep++) {
        double t0 = now();
        for (size_t c = 0; c < w->copies; c++)
            vk_linear(pool, isa, src, m, w->k, base + c * matrix_bytes, type, w->n, w->k, w->k, NULL, dst, w->n, 0);
        if (rep >= 0) times[rep] = (now() - t0) / (double)w->copies;
    }
    r.seconds = median_freeing(times, repeats);
    return r;
}

static result openblas(size_t m, const weights *w, const float *src, float *dst, int repeats) {
    result r = {1, "cblas_sgemm / sgemv", 0, 0};
    double *times = calloc((size_t)repeats, sizeof *times);
    for (int rep = -1; rep < repeats; rep++) {
        double t0 = now();
        for (size_t c = 0; c < w->copies; c++) {
            const float *b = w->f32 + c * w->n * w->k;
            if (m == 1)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)w->n, (int)w->k, 1, b, (int)w->k, src, 1, 0, dst, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)w->n, (int)w->k, 1, src, (int)w->k, b,
                            (int)w->k, 0, dst, (int)w->n);
        }
        if (rep >= 0) times[rep] = (now() - t0) / (double)w->copies;
    }
    r.seconds = median_freeing(times, repeats);
    return r;
}

typedef struct {
    const uint64_t *data;
    size_t words, per_item;
    uint64_t sums[64];
} read_job;

static void read_task(void *context, size_t item, int worker) {
    read_job *job = context;
    size_t a = item * job->per_item, b = a + job->per_item < job->words ? a + job->per_item : job->words;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = a; i + 4 <= b; i += 4) {
        s0 += job->data[i];
        s1 += job->data[i + 1];
        s2 += job->data[i + 2];
        s3 += job->data[i + 3];
    }
    job->sums[worker & 63] += s0 + s1 + s2 + s3;
}

/// GB/s of a plain read of `bytes` at `data` on the pool's threads (64 KiB items, as the GEMV's).
static double plain_read(const void *data, size_t bytes, int repeats) {
    read_job job = {data, bytes / 8, 8192, {0}};
    double best = 0;
    for (int rep = 0; rep < repeats; rep++) {
        double t0 = now();
        vk_pool_run(pool, (job.words + job.per_item - 1) / job.per_item, read_task, &job);
        double gbs = (double)bytes / (now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    if (job.sums[0] == 42) printf(" ");  // keeps the sums
    return best;
}

// MARK: - The table

static void row(const char *engine_name, const char *weights_name, size_t m, const weights *w, size_t weight_bytes,
                result r) {
    if (r.implemented == 0) {
        printf("| %s | %s | %zu x %zu x %zu | none (%s) | | | | |\n", engine_name, weights_name, m, w->n, w->k, r.impl);
        return;
    }
    if (r.implemented < 0) {
        printf("| %s | %s | %zu x %zu x %zu | only `%s` (reference loops, not run) | | | | |\n", engine_name, weights_name, m,
               w->n, w->k, r.impl);
        return;
    }
    double gflops = 2.0 * (double)m * (double)w->n * (double)w->k / r.seconds / 1e9;
    double gbs = (double)weight_bytes / r.seconds / 1e9;
    char prepared[48] = "";
    if (r.prepared_bytes > 0) snprintf(prepared, sizeof prepared, "%.0f MB", r.prepared_bytes / (double)w->copies / 1e6);
    char bandwidth[24] = "";  // what decode is bound by; prefill is bound by the FMAs
    if (m == 1) snprintf(bandwidth, sizeof bandwidth, "%.1f", gbs);
    printf("| %s | %s | %zu x %zu x %zu | `%s` | %.3f | %.1f | %s | %s |\n", engine_name, weights_name, m, w->n, w->k,
           r.impl, r.seconds * 1e3, gflops, bandwidth, prepared);
}

int main(int argc, char **argv) {
    const char *level = argc > 1 ? argv[1] : "native";
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (threads < 1 || threads > 64) threads = 2;
    if (strcmp(level, "avx2") == 0) {
        isa = VK_ISA_AVX2;
        if (dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2) != dnnl_success) fprintf(stderr, "onednn: could not cap the ISA\n");
    } else {
        isa = vk_isa_default();
    }
    pool = vk_pool_create(threads, -1);
    openblas_set_num_threads(threads);
    DNNL_CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    DNNL_CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    const dnnl_version_t *version = dnnl_version();
    printf("oneDNN %d.%d.%d (cpu runtime %d), VoCoKernels %s, %d threads, level %s\n\n", version->major, version->minor,
           version->patch, version->cpu_runtime, vk_isa_name(vk_isa_effective(isa)), threads, level);
    printf("| engine | weights | m x n x k | implementation | ms | GFLOP/s | weight GB/s | prepared copy |\n");
    printf("|---|---|---|---|---|---|---|---|\n");

    const size_t shapes[2][2] = {{5632, 2048}, {2048, 5632}};
    const size_t rows[2] = {1, 512};
    for (int s = 0; s < 2; s++) {
        size_t n = shapes[s][0], k = shapes[s][1];
        // Decode cycles through 12 copies (276 MB of F16): far more than any cache.
        weights w = make_weights(n, k, 12, 1234u + (unsigned)s);
        float *src = allocate(512 * k * 4), *dst = allocate(512 * n * 4);
        for (size_t i = 0; i < 512 * k; i++) src[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        for (int ri = 0; ri < 2; ri++) {
            size_t m = rows[ri];
            weights view = w;
            if (m > 1) view.copies = 1;  // prefill is compute-bound: one copy
            int repeats = m == 1 ? 9 : 3;
            size_t half = n * k * 2, full = n * k * 4;
            if (m == 1) printf("| plain read | F16 bytes | | %d threads | | | %.1f | |\n", threads,
                               plain_read(w.f16, half * w.copies, 9));
            row("ours", "F16 in place", m, &view, half, ours(m, &view, VK_F16, src, dst, repeats));
            row("ours", "BF16 in place", m, &view, half, ours(m, &view, VK_BF16, src, dst, repeats));
            row("ours", "F32 (widened copy)", m, &view, full, ours(m, &view, VK_F32, src, dst, repeats));
            row("OpenBLAS", "F32 (widened copy)", m, &view, full, openblas(m, &view, src, dst, repeats));
            const struct { const char *name; dnnl_data_type_t src, wei; size_t bytes; } pairs[] = {
                {"F16, F32 activations", dnnl_f32, dnnl_f16, half},
                {"BF16, F32 activations", dnnl_f32, dnnl_bf16, half},
                {"BF16, BF16 activations", dnnl_bf16, dnnl_bf16, half},
                {"F32 (widened copy)", dnnl_f32, dnnl_f32, full},
            };
            for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
                for (int any = 0; any < 2; any++) {
                    char name[80];
                    snprintf(name, sizeof name, "%s, %s", pairs[p].name, any ? "oneDNN's layout" : "in place");
                    row("oneDNN", name, m, &view, pairs[p].bytes,
                        onednn_matmul(m, &view, pairs[p].src, pairs[p].wei, any, src, dst, repeats));
                }
            }
        }
        free(src);
        free(dst);
        free_weights(&w);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    vk_pool_destroy(pool);
    return 0;
}

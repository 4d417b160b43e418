// ISA detection, the cap from $VOCO_ISA, and per-thread scratch.
#include "internal.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if VK_X86
#include <cpuid.h>
#endif

// MARK: - What the CPU can run

#if VK_X86
static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static int detect_best(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return VK_ISA_SCALAR;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!(osxsave && avx && fma && f16c)) return VK_ISA_SCALAR;
    uint64_t xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return VK_ISA_SCALAR;  // the OS saves XMM and YMM state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return VK_ISA_SCALAR;
    int avx2 = (b >> 5) & 1;
    if (!avx2) return VK_ISA_SCALAR;
    int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    if (f && dq && bw && vl && (xcr0 & 0xe6) == 0xe6) return VK_ISA_AVX512;  // opmask and ZMM state too
    return VK_ISA_AVX2;
}

/// Whether the CPU executes each 512-bit FMA as two 256-bit halves (AMD Zen 4, family 19h: the
/// only AMD family with AVX-512 and without full-width units). There the 12 x 32 tile gains no
/// FMAs over the AVX2 level's 6 x 16 one and measured slower (docs/engine.md).
static int splits_512_bit_fmas(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    int amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "AuthenticAMD"
    if (!amd || !__get_cpuid(1, &a, &b, &c, &d)) return 0;
    unsigned family = ((a >> 8) & 0xf) + (((a >> 8) & 0xf) == 0xf ? (a >> 20) & 0xff : 0);
    return family == 0x19;
}
#else
static int detect_best(void) { return VK_ISA_SCALAR; }
static int splits_512_bit_fmas(void) { return 0; }
#endif

static int best_level = -1;
static int default_level = -1;
static int narrow_avx512_gemm = 0;  // the AVX-512 level's products through the AVX2 level's tile
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
#if VK_X86
static vk_ops avx512_narrow;  // vk_ops_avx512 with vk_ops_avx2's GEMM tile, packing and depth
#endif

static void detect(void) {
    best_level = detect_best();
    default_level = best_level;
#if VK_X86
    avx512_narrow = vk_ops_avx512;
    avx512_narrow.mr = vk_ops_avx2.mr;
    avx512_narrow.nr = vk_ops_avx2.nr;
    avx512_narrow.kc = vk_ops_avx2.kc;
    avx512_narrow.kernel = vk_ops_avx2.kernel;
    avx512_narrow.pack_b_rows = vk_ops_avx2.pack_b_rows;
    avx512_narrow.pack_a = vk_ops_avx2.pack_a;
#endif
    narrow_avx512_gemm = best_level == VK_ISA_AVX512 && splits_512_bit_fmas();
    const char *tile = getenv("VOCO_AVX512_GEMM");
    if (tile && *tile) {
        if (strcasecmp(tile, "wide") == 0) narrow_avx512_gemm = 0;
        else if (strcasecmp(tile, "narrow") == 0) narrow_avx512_gemm = 1;
        else fprintf(stderr, "VoCoKernels: VOCO_AVX512_GEMM=%s is not wide or narrow; ignored\n", tile);
    }
    const char *cap = getenv("VOCO_ISA");
    if (cap && *cap) {
        int level = vk_isa_from_name(cap);
        if (level < 0) {
            fprintf(stderr, "VoCoKernels: VOCO_ISA=%s is not one of scalar, avx2, avx512; ignored\n", cap);
        } else if (level < default_level) {
            default_level = level;
        }
    }
}

int vk_isa_supported(int isa) {
    pthread_once(&detect_once, detect);
    return isa >= 0 && isa <= best_level;
}

int vk_isa_default(void) {
    pthread_once(&detect_once, detect);
    return default_level;
}

int vk_isa_effective(int isa) {
    pthread_once(&detect_once, detect);
    if (isa < 0) return VK_ISA_SCALAR;
    return isa <= best_level ? isa : best_level;
}

static const char *const names[VK_ISA_COUNT] = {"scalar", "avx2", "avx512"};

const char *vk_isa_name(int isa) { return isa >= 0 && isa < VK_ISA_COUNT ? names[isa] : "unknown"; }

int vk_isa_from_name(const char *name) {
    for (int i = 0; i < VK_ISA_COUNT; i++) {
        if (strcasecmp(name, names[i]) == 0) return i;
    }
    if (strcasecmp(name, "avx-512") == 0) return VK_ISA_AVX512;
    return -1;
}

int vk_avx512_gemm_narrow(void) {
    pthread_once(&detect_once, detect);
    return narrow_avx512_gemm;
}

const vk_ops *vk_ops_for(int isa) {
    int tile = isa < 0 ? 0 : isa & (VK_TILE_WIDE | VK_TILE_NARROW);
    switch (vk_isa_effective(isa < 0 ? isa : isa & ~(VK_TILE_WIDE | VK_TILE_NARROW))) {
#if VK_X86
    case VK_ISA_AVX512: {
        int narrow = tile == VK_TILE_NARROW ? 1 : tile == VK_TILE_WIDE ? 0 : narrow_avx512_gemm;
        return narrow ? &avx512_narrow : &vk_ops_avx512;
    }
    case VK_ISA_AVX2: return &vk_ops_avx2;
#endif
    default: return &vk_ops_scalar;
    }
}

// MARK: - Per-thread scratch

enum { SLOTS = 8 };
typedef struct {
    float *pointer[SLOTS];
    size_t capacity[SLOTS];
} scratch_set;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void free_scratch(void *value) {
    scratch_set *set = value;
    for (int i = 0; i < SLOTS; i++) free(set->pointer[i]);
    free(set);
}

static void make_scratch_key(void) { pthread_key_create(&scratch_key, free_scratch); }

static void out_of_memory(size_t bytes) {
    fprintf(stderr, "VoCoKernels: out of memory: cannot allocate %zu bytes of scratch\n", bytes);
    abort();
}

float *vk_scratch(int slot, size_t count) {
    pthread_once(&scratch_once, make_scratch_key);
    scratch_set *set = pthread_getspecific(scratch_key);
    if (!set) {
        set = calloc(1, sizeof *set);
        if (!set) out_of_memory(sizeof *set);
        pthread_setspecific(scratch_key, set);
    }
    if (count > set->capacity[slot]) {
        free(set->pointer[slot]);
        size_t grown = count + count / 4 + 64;
        void *p = NULL;
        if (grown > SIZE_MAX / sizeof(float) || posix_memalign(&p, 64, grown * sizeof(float)) != 0) out_of_memory(grown * 4);
        set->pointer[slot] = p;
        set->capacity[slot] = grown;
    }
    return set->pointer[slot];
}

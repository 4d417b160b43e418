// A pool of workers for parallel regions of many short items.
//
// Hand-off: the caller publishes a region by bumping an epoch that shares one 64-bit word with
// the index of the next unclaimed item, then claims items itself like any worker. Idle workers
// spin on that word for a short while (a decode step is hundreds of regions a few microseconds
// apart), then park on a condition variable. Because items are claimed, not assigned, a region
// never waits for a worker that the OS has not scheduled yet: the threads that run do the work.
// The caller waits only for items already started by others.
#include "internal.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if VK_X86
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ volatile("yield")
#else
#define cpu_relax() ((void)0)
#endif

struct vk_pool {
    int size;           // workers, the caller included
    long spin_ns;       // how long an idle worker (or a waiting caller) spins before parking (yielding)
    pthread_t *threads; // [size - 1]
    // The region: written by the caller before it publishes the epoch.
    vk_task task;
    void *context;
    size_t items;
    _Atomic uint64_t word;  // epoch << 32 | next unclaimed item
    _Atomic size_t done;    // items finished in this region
    _Atomic int busy;       // a caller is running a region
    _Atomic int sleepers;
    _Atomic int stop;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
};

typedef struct {
    vk_pool *pool;
    int id;
} worker_start;

static _Thread_local int inside_task = 0;
static _Thread_local int current_worker = 0;  // this thread's worker id while inside a task

int vk_pool_inside(void) { return inside_task; }

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

static inline uint32_t epoch_of(uint64_t word) { return (uint32_t)(word >> 32); }

/// Claims and runs items of region `epoch` until none is left or the region is over.
static size_t run_items(vk_pool *pool, uint32_t epoch, vk_task task, void *context, size_t items, int worker) {
    size_t ran = 0;
    uint64_t current = atomic_load_explicit(&pool->word, memory_order_acquire);
    for (;;) {
        if (epoch_of(current) != epoch || (uint32_t)current >= items) break;
        if (!atomic_compare_exchange_weak_explicit(&pool->word, &current, current + 1, memory_order_acq_rel, memory_order_acquire)) {
            continue;
        }
        task(context, (uint32_t)current, worker);
        ran++;
        current = atomic_load_explicit(&pool->word, memory_order_acquire);
    }
    return ran;
}

static void *worker_main(void *argument) {
    worker_start start = *(worker_start *)argument;
    free(argument);
    vk_pool *pool = start.pool;
    uint32_t seen = 0;
    inside_task = 1;  // kernels called from tasks stay on this thread
    current_worker = start.id;
    for (;;) {
        // Wait for a new region: spin, then park.
        uint64_t word = atomic_load_explicit(&pool->word, memory_order_acquire);
        if (epoch_of(word) == seen && !atomic_load(&pool->stop)) {
            long deadline = now_ns() + pool->spin_ns;
            for (unsigned spins = 0;; spins++) {
                cpu_relax();
                word = atomic_load_explicit(&pool->word, memory_order_acquire);
                if (epoch_of(word) != seen || atomic_load_explicit(&pool->stop, memory_order_relaxed)) break;
                if ((spins & 63) == 63 && now_ns() > deadline) {
                    atomic_fetch_add(&pool->sleepers, 1);
                    pthread_mutex_lock(&pool->mutex);
                    while (epoch_of(word = atomic_load(&pool->word)) == seen && !atomic_load(&pool->stop)) {
                        pthread_cond_wait(&pool->wake, &pool->mutex);
                    }
                    pthread_mutex_unlock(&pool->mutex);
                    atomic_fetch_sub(&pool->sleepers, 1);
                    break;
                }
            }
        }
        if (atomic_load(&pool->stop)) break;
        seen = epoch_of(word);
        // The fields belong to region `seen` unless it is already over, in which case no claim succeeds.
        size_t ran = run_items(pool, seen, pool->task, pool->context, pool->items, start.id);
        if (ran) atomic_fetch_add_explicit(&pool->done, ran, memory_order_release);
    }
    return NULL;
}

vk_pool *vk_pool_create(int threads, int spin_microseconds) {
    if (threads < 1) threads = 1;
    vk_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    if (spin_microseconds < 0) {
        const char *env = getenv("VOCO_SPIN_US");
        spin_microseconds = env && *env ? atoi(env) : 200;
        if (spin_microseconds < 0) spin_microseconds = 0;
    }
    pool->size = threads;
    pool->spin_ns = (long)spin_microseconds * 1000L;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc((size_t)threads, sizeof(pthread_t));
    if (!pool->threads) {
        free(pool);
        return NULL;
    }
    for (int i = 1; i < threads; i++) {
        worker_start *start = malloc(sizeof *start);
        if (!start) {
            pool->size = i;  // fewer workers, still correct
            break;
        }
        start->pool = pool;
        start->id = i;
        if (pthread_create(&pool->threads[i - 1], NULL, worker_main, start) != 0) {
            free(start);
            pool->size = i;
            break;
        }
    }
    return pool;
}

void vk_pool_destroy(vk_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    pthread_mutex_lock(&pool->mutex);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->size; i++) pthread_join(pool->threads[i - 1], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool->threads);
    free(pool);
}

int vk_pool_size(const vk_pool *pool) { return pool ? pool->size : 1; }

static void run_here(size_t items, vk_task task, void *context) {
    // Nested inside a task, the items keep that task's worker id (and so its scratch).
    int was_inside = inside_task, worker = inside_task ? current_worker : 0;
    inside_task = 1;
    for (size_t i = 0; i < items; i++) task(context, i, worker);
    inside_task = was_inside;
}

void vk_pool_run(vk_pool *pool, size_t items, vk_task task, void *context) {
    if (items == 0) return;
    int expected = 0;
    if (!pool || pool->size <= 1 || items == 1 || inside_task || items >= UINT32_MAX ||
        !atomic_compare_exchange_strong(&pool->busy, &expected, 1)) {
        run_here(items, task, context);
        return;
    }
    pool->task = task;
    pool->context = context;
    pool->items = items;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    uint32_t epoch = epoch_of(atomic_load(&pool->word)) + 1;
    atomic_store(&pool->word, (uint64_t)epoch << 32);  // seq_cst: ordered before the sleepers check
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    inside_task = 1;
    size_t ran = run_items(pool, epoch, task, context, items, 0);
    inside_task = 0;
    // Wait for the items others started: spin, then give the core away between looks.
    size_t finished = atomic_fetch_add_explicit(&pool->done, ran, memory_order_acq_rel) + ran;
    if (finished < items) {
        long deadline = now_ns() + pool->spin_ns;
        for (unsigned spins = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < items; spins++) {
            if ((spins & 63) == 63 && now_ns() > deadline) sched_yield();
            else cpu_relax();
        }
    }
    atomic_store_explicit(&pool->busy, 0, memory_order_release);
}

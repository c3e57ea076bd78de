/* Latency samples in microseconds: kept whole (no histogram buckets), sorted once at the end.
 * Quantiles are nearest-rank: the smallest sample with at least q of all samples at or below it,
 * so p99 of 100 samples is the 99th smallest and max is the largest. */
#ifndef LOADGEN_STATS_H
#define LOADGEN_STATS_H

#include <stdint.h>
#include <stdlib.h>

typedef struct {
    uint64_t *values;
    size_t count, cap;
    int sorted;
} latencies_t;

static inline void latencies_init(latencies_t *l) {
    l->values = NULL;
    l->count = l->cap = 0;
    l->sorted = 0;
}

static inline void latencies_add(latencies_t *l, uint64_t us) {
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4096;
        l->values = realloc(l->values, l->cap * sizeof *l->values);
        if (!l->values) abort();
    }
    l->values[l->count++] = us;
    l->sorted = 0;
}

static int latencies_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static inline void latencies_sort(latencies_t *l) {
    if (l->count) qsort(l->values, l->count, sizeof *l->values, latencies_cmp);
    l->sorted = 1;
}

static inline double latencies_quantile(const latencies_t *l, double q) {
    if (!l->count) return 0.0;
    double rank = q * (double)l->count;
    size_t k = (size_t)rank;
    if ((double)k < rank) k++; /* ceil */
    if (k < 1) k = 1;
    if (k > l->count) k = l->count;
    return (double)l->values[k - 1];
}

static inline double latencies_mean(const latencies_t *l) {
    if (!l->count) return 0.0;
    double sum = 0;
    for (size_t i = 0; i < l->count; i++) sum += (double)l->values[i];
    return sum / (double)l->count;
}

#endif

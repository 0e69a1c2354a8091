/*
 * consentd-load: a closed-loop load generator on the C client, to compare with `consentctl bench`.
 *
 *   consentctl bench --subjects 100000 --skip-load --write-requests requests.bin   # the same request pool
 *   consentd-load --requests requests.bin --depth 1  --duration 5 --warmup 1       # sequential
 *   consentd-load --requests requests.bin --depth 64 --duration 5 --warmup 1       # pipelined
 *
 * The requests file holds varint-delimited consentd.v1.Request frames (only Checks are used); each
 * is decoded once and then asked through the library's API (consentd_check for depth 1,
 * consentd_submit_check/consentd_next for deeper pipelines), cycling through the pool.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consentd/v1/consentd.pb-c.h"
#include "consentd_client.h"

typedef struct request {
    consentd_query query;
    consentd_context context;
} request;

typedef struct options {
    const char *socket_path;
    const char *requests_path;
    int depth;
    int connections;
    double duration;
    double warmup;
} options;

typedef struct worker {
    const options *options;
    const request *pool;
    size_t pool_size;
    size_t offset;
    uint32_t *latencies; /* nanoseconds, measured phase only */
    size_t count, capacity;
    uint64_t allowed, errors;
    char error[600];
} worker;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void usage(const char *program) {
    fprintf(stderr,
            "usage: %s --requests FILE [--socket PATH] [--depth D] [--connections N] [--duration S] [--warmup S]\n"
            "Closed-loop load on consentd through the C client: N connections (threads), each keeping D checks\n"
            "in flight (D = 1: one blocking consentd_check at a time). FILE holds varint-delimited\n"
            "consentd.v1.Request frames, e.g. from `consentctl bench --write-requests FILE`.\n"
            "Defaults: --socket consentd.sock --depth 1 --connections 1 --duration 5 --warmup 1\n",
            program);
}

static int parse_options(int argc, char **argv, options *o) {
    *o = (options){.socket_path = "consentd.sock", .depth = 1, .connections = 1, .duration = 5, .warmup = 1};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return -1;
        if (value == NULL) {
            fprintf(stderr, "%s needs a value\n", arg);
            return -1;
        }
        i++;
        if (strcmp(arg, "--socket") == 0) o->socket_path = value;
        else if (strcmp(arg, "--requests") == 0) o->requests_path = value;
        else if (strcmp(arg, "--depth") == 0) o->depth = atoi(value);
        else if (strcmp(arg, "--connections") == 0) o->connections = atoi(value);
        else if (strcmp(arg, "--duration") == 0) o->duration = atof(value);
        else if (strcmp(arg, "--warmup") == 0) o->warmup = atof(value);
        else {
            fprintf(stderr, "unknown option %s\n", arg);
            return -1;
        }
    }
    if (o->requests_path == NULL) {
        fprintf(stderr, "--requests is required\n");
        return -1;
    }
    if (o->depth < 1 || o->depth > 65536 || o->connections < 1 || o->connections > 256 || o->duration <= 0 || o->warmup < 0) {
        fprintf(stderr, "--depth must be 1..65536, --connections 1..256, --duration > 0, --warmup >= 0\n");
        return -1;
    }
    return 0;
}

/* Reads the pool; the decoded messages stay alive for the whole run (the queries point into them). */
static request *load_pool(const char *path, size_t *count) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    uint8_t *bytes = malloc((size_t)size + 1);
    if (bytes == NULL || fread(bytes, 1, (size_t)size, file) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        fclose(file);
        free(bytes);
        return NULL;
    }
    fclose(file);
    size_t capacity = 1024, n = 0, offset = 0;
    request *pool = malloc(capacity * sizeof(request));
    while (offset < (size_t)size) {
        uint64_t length = 0;
        int shift = 0;
        while (offset < (size_t)size && shift < 64) {
            uint8_t b = bytes[offset++];
            length |= (uint64_t)(b & 0x7f) << shift;
            shift += 7;
            if ((b & 0x80) == 0) break;
        }
        if (length > (size_t)size - offset) {
            fprintf(stderr, "%s: truncated frame at byte %zu\n", path, offset);
            break;
        }
        Consentd__V1__Request *message = consentd__v1__request__unpack(NULL, (size_t)length, bytes + offset);
        offset += (size_t)length;
        if (message == NULL) {
            fprintf(stderr, "%s: a frame is not a consentd.v1.Request\n", path);
            break;
        }
        if (message->method_case != CONSENTD__V1__REQUEST__METHOD_CHECK) continue; /* kept alive but unused */
        if (n == capacity) {
            capacity *= 2;
            pool = realloc(pool, capacity * sizeof(request));
        }
        const Consentd__V1__CheckRequest *check = message->check;
        request *r = &pool[n++];
        r->query = (consentd_query){.subject_id = check->subject_id, .purpose = check->purpose, .data_category = check->data_category};
        r->context = (consentd_context){0};
        if (check->context != NULL) {
            r->context.jurisdiction = check->context->jurisdiction;
            r->context.channel = check->context->channel;
            r->context.gpc = check->context->gpc;
            r->context.usp_opt_out = check->context->usp_opt_out;
            if (check->context->at != NULL) {
                r->context.at_micros = check->context->at->seconds * 1000000 + check->context->at->nanos / 1000;
            }
        }
    }
    free(bytes);
    *count = n;
    return pool;
}

static void record(worker *w, uint64_t nanoseconds) {
    if (w->count == w->capacity) {
        w->capacity = w->capacity ? w->capacity * 2 : 1 << 20;
        w->latencies = realloc(w->latencies, w->capacity * sizeof(uint32_t));
    }
    w->latencies[w->count++] = nanoseconds > UINT32_MAX ? UINT32_MAX : (uint32_t)nanoseconds;
}

static void *run_worker(void *argument) {
    worker *w = argument;
    const options *o = w->options;
    consentd_client *client = NULL;
    if (consentd_connect(&client, o->socket_path, 10000) != CONSENTD_OK) {
        snprintf(w->error, sizeof(w->error), "%s", consentd_error_message(client));
        consentd_close(client);
        return NULL;
    }
    uint64_t start = now_ns();
    uint64_t measure_from = start + (uint64_t)(o->warmup * 1e9);
    uint64_t end = measure_from + (uint64_t)(o->duration * 1e9);
    size_t next = w->offset;
    consentd_decision decision;
    if (o->depth == 1) {
        for (;;) {
            uint64_t sent = now_ns();
            if (sent >= end) break;
            const request *r = &w->pool[next];
            next = next + 1 == w->pool_size ? 0 : next + 1;
            consentd_status status = consentd_check(client, &r->query, &r->context, &decision);
            uint64_t done = now_ns();
            if (status != CONSENTD_OK) {
                w->errors++;
                if (!consentd_is_connected(client)) {
                    snprintf(w->error, sizeof(w->error), "%s", consentd_error_message(client));
                    break;
                }
                continue;
            }
            if (sent >= measure_from) {
                record(w, done - sent);
                w->allowed += decision.decision == CONSENTD_ALLOW;
            }
        }
    } else {
        /* Ids are consecutive per handle, so send times live in a ring indexed by id. */
        size_t ring = 1;
        while (ring < (size_t)o->depth * 2) ring <<= 1;
        uint64_t *sent_at = calloc(ring, sizeof(uint64_t));
        bool stopping = false;
        size_t in_flight = 0;
        for (;;) {
            while (!stopping && in_flight < (size_t)o->depth) {
                const request *r = &w->pool[next];
                next = next + 1 == w->pool_size ? 0 : next + 1;
                uint64_t id = 0;
                if (consentd_submit_check(client, &r->query, &r->context, &id) != CONSENTD_OK) {
                    snprintf(w->error, sizeof(w->error), "%s", consentd_error_message(client));
                    stopping = true;
                    break;
                }
                sent_at[id & (ring - 1)] = now_ns();
                in_flight++;
            }
            if (in_flight == 0) break;
            uint64_t id = 0;
            consentd_status status = consentd_next(client, &id, &decision);
            uint64_t done = now_ns();
            if (status != CONSENTD_OK && !consentd_is_connected(client)) {
                snprintf(w->error, sizeof(w->error), "%s", consentd_error_message(client));
                w->errors++;
                break;
            }
            in_flight--;
            uint64_t sent = sent_at[id & (ring - 1)];
            if (status != CONSENTD_OK) {
                w->errors++;
            } else if (sent >= measure_from && sent < end) {
                record(w, done - sent);
                w->allowed += decision.decision == CONSENTD_ALLOW;
            }
            if (done >= end) stopping = true;
        }
        free(sent_at);
    }
    consentd_close(client);
    return NULL;
}

static int compare_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    options o;
    if (parse_options(argc, argv, &o) != 0) {
        usage(argv[0]);
        return 64;
    }
    size_t pool_size = 0;
    request *pool = load_pool(o.requests_path, &pool_size);
    if (pool == NULL || pool_size == 0) {
        fprintf(stderr, "no Check requests in %s\n", o.requests_path);
        return 1;
    }
    worker *workers = calloc((size_t)o.connections, sizeof(worker));
    pthread_t *threads = calloc((size_t)o.connections, sizeof(pthread_t));
    for (int i = 0; i < o.connections; i++) {
        workers[i] = (worker){.options = &o, .pool = pool, .pool_size = pool_size, .offset = (pool_size / (size_t)o.connections) * (size_t)i};
        pthread_create(&threads[i], NULL, run_worker, &workers[i]);
    }
    size_t total = 0;
    uint64_t allowed = 0, errors = 0;
    for (int i = 0; i < o.connections; i++) {
        pthread_join(threads[i], NULL);
        if (workers[i].error[0]) fprintf(stderr, "connection %d: %s\n", i, workers[i].error);
        total += workers[i].count;
        allowed += workers[i].allowed;
        errors += workers[i].errors;
    }
    uint32_t *all = malloc((total ? total : 1) * sizeof(uint32_t));
    size_t at = 0;
    for (int i = 0; i < o.connections; i++) {
        memcpy(all + at, workers[i].latencies, workers[i].count * sizeof(uint32_t));
        at += workers[i].count;
        free(workers[i].latencies);
    }
    if (total == 0) {
        fprintf(stderr, "no requests completed\n");
        return 1;
    }
    qsort(all, total, sizeof(uint32_t), compare_u32);
#define PCT(p) (all[(size_t)((double)(total - 1) * (p))] / 1000.0)
    printf("consentd-load: %d connection(s), depth %d, %zu-request pool, %.1f s measured after %.1f s warm-up\n",
           o.connections, o.depth, pool_size, o.duration, o.warmup);
    printf("  %.0f requests/s   %zu answered (%.1f%% allow), %llu errors\n", (double)total / o.duration, total,
           100.0 * (double)allowed / (double)total, (unsigned long long)errors);
    printf("  latency µs: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", PCT(0.50), PCT(0.90), PCT(0.99), PCT(0.999),
           all[total - 1] / 1000.0);
    free(all);
    free(workers);
    free(threads);
    return errors == 0 ? 0 : 1;
}

/*
 * Memory of the C client: a bump arena that decoded replies live in (one reset per reply, no
 * free() per field) and a table of interned strings (rule ids and revisions repeat, so
 * decisions can point at them).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "handle.h"

#define ARENA_BLOCK ((size_t)16 << 10)

void *consentd__arena_alloc(void *data, size_t size) {
    arena *a = data;
    size = (size + 15u) & ~(size_t)15u;
    if (a->head == NULL || a->head->capacity - a->head->used < size) {
        size_t capacity = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        arena_block *block = malloc(sizeof(arena_block) + capacity);
        if (block == NULL) {
            a->failed = true;
            return NULL;
        }
        block->next = a->head;
        block->capacity = capacity;
        block->used = 0;
        a->head = block;
    }
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += size;
    a->total += size;
    return p;
}

void consentd__arena_free(void *data, void *pointer) {
    (void)data;
    (void)pointer; /* released all at once by consentd__arena_reset */
}

void consentd__arena_release(arena *a) {
    arena_block *block = a->head;
    while (block != NULL) {
        arena_block *next = block->next;
        free(block);
        block = next;
    }
    a->head = NULL;
    a->total = 0;
}

void consentd__arena_reset(arena *a) {
    if (a->head != NULL && a->head->next != NULL) {
        size_t needed = a->total;
        consentd__arena_release(a);
        if (needed > ARENA_BLOCK) {
            arena_block *block = malloc(sizeof(arena_block) + needed);
            if (block != NULL) {
                block->next = NULL;
                block->capacity = needed;
                block->used = 0;
                a->head = block;
            }
        }
    } else if (a->head != NULL) {
        a->head->used = 0;
    }
    a->total = 0;
    a->failed = false;
}


static uint64_t hash_string(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static bool intern_grow(intern_table *t) {
    size_t capacity = t->capacity ? t->capacity * 2 : 64;
    char **slots = calloc(capacity, sizeof(char *));
    if (slots == NULL) return false;
    for (size_t i = 0; i < t->capacity; i++) {
        char *s = t->slots[i];
        if (s == NULL) continue;
        size_t j = (size_t)hash_string(s) & (capacity - 1);
        while (slots[j] != NULL) j = (j + 1) & (capacity - 1);
        slots[j] = s;
    }
    free(t->slots);
    t->slots = slots;
    t->capacity = capacity;
    return true;
}

const char *consentd__intern(intern_table *t, const char *s) {
    if (s == NULL || *s == '\0') return "";
    if ((t->count + 1) * 2 > t->capacity && !intern_grow(t)) return NULL;
    size_t j = (size_t)hash_string(s) & (t->capacity - 1);
    while (t->slots[j] != NULL) {
        if (strcmp(t->slots[j], s) == 0) return t->slots[j];
        j = (j + 1) & (t->capacity - 1);
    }
    char *copy = strdup(s);
    if (copy == NULL) return NULL;
    t->slots[j] = copy;
    t->count++;
    return copy;
}

void consentd__intern_release(intern_table *t) {
    for (size_t i = 0; i < t->capacity; i++) free(t->slots[i]);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/*
 * consentd C client: framing, buffering and error handling over protoc-c generated messages.
 * See include/consentd_client.h for the contract.
 */
#define _GNU_SOURCE
#include "consentd_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "consentd/v1/consentd.pb-c.h"
#include "consentd_internal.h"

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_MAX_FRAME ((size_t)16 << 20)
/* Queued requests are written once this many bytes wait. */
#define FLUSH_THRESHOLD ((size_t)64 << 10)
#define ARENA_BLOCK ((size_t)16 << 10)

/* ---- bump allocator for unpacking replies: one reset per reply, no free() per field ---- */

typedef struct arena_block {
    struct arena_block *next;
    size_t capacity;
    size_t used;
    max_align_t data[];
} arena_block;

typedef struct arena {
    arena_block *head;   /* the block being filled; older blocks follow */
    size_t total;        /* bytes handed out since the last reset */
    bool failed;
} arena;

static void *arena_alloc(void *data, size_t size) {
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

static void arena_free(void *data, void *pointer) {
    (void)data;
    (void)pointer; /* released all at once by arena_reset */
}

static void arena_release(arena *a) {
    arena_block *block = a->head;
    while (block != NULL) {
        arena_block *next = block->next;
        free(block);
        block = next;
    }
    a->head = NULL;
    a->total = 0;
}

/* Keeps one block big enough for the largest reply seen, so steady state allocates nothing. */
static void arena_reset(arena *a) {
    if (a->head != NULL && a->head->next != NULL) {
        size_t needed = a->total;
        arena_release(a);
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

/* ---- interned strings: rule ids and revisions repeat, so decisions can point at them ---- */

typedef struct intern_table {
    char **slots;
    size_t capacity; /* power of two */
    size_t count;
} intern_table;

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

/* Returns the handle's copy of s, or NULL when memory ran out. */
static const char *intern(intern_table *t, const char *s) {
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

static void intern_release(intern_table *t) {
    for (size_t i = 0; i < t->capacity; i++) free(t->slots[i]);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* ---- the handle ---- */

struct consentd_client {
    int fd; /* -1 when not connected */
    char *path;
    int timeout_ms;
    size_t max_frame;
    uint64_t next_id;
    size_t outstanding;
    bool eof; /* the daemon closed its side; buffered replies may remain */

    uint8_t *out;
    size_t out_len, out_sent, out_capacity;

    uint8_t *in;
    size_t in_start, in_end, in_capacity;

    arena arena;
    ProtobufCAllocator allocator;
    intern_table strings;
    const char *last_revision;

    int server_code;
    char error[1024];
    char broken[512]; /* why the connection was closed, for CONSENTD_ERR_CLOSED */
};

static consentd_status set_error(consentd_client *c, consentd_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static consentd_status set_error(consentd_client *c, consentd_status status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(c->error, sizeof(c->error), format, args);
    va_end(args);
    return status;
}

static void drop_connection(consentd_client *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->outstanding = 0;
    c->eof = false;
    c->out_len = c->out_sent = 0;
    c->in_start = c->in_end = 0;
}

/* Closes the connection because of an error and remembers why. */
static consentd_status fail(consentd_client *c, consentd_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static consentd_status fail(consentd_client *c, consentd_status status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(c->error, sizeof(c->error), format, args);
    va_end(args);
    snprintf(c->broken, sizeof(c->broken), "%.500s", c->error);
    drop_connection(c);
    return status;
}

static consentd_status begin(consentd_client *c) {
    c->error[0] = '\0';
    c->server_code = 0;
    if (c->fd < 0) {
        return set_error(c, CONSENTD_ERR_CLOSED, "not connected to %s (%s); call consentd_reconnect()",
                         c->path, c->broken[0] ? c->broken : "closed");
    }
    return CONSENTD_OK;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void apply_timeout(consentd_client *c) {
    if (c->fd < 0) return;
    struct timeval tv = {.tv_sec = c->timeout_ms / 1000, .tv_usec = (c->timeout_ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static consentd_status open_socket(consentd_client *c) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    size_t length = strlen(c->path);
    if (length == 0 || length >= sizeof(address.sun_path)) {
        return set_error(c, CONSENTD_ERR_ARGUMENT, "socket path \"%s\" is empty or longer than %zu bytes",
                         c->path, sizeof(address.sun_path) - 1);
    }
    memcpy(address.sun_path, c->path, length + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return set_error(c, CONSENTD_ERR_CONNECT, "cannot create a socket: %s", strerror(errno));
    int64_t deadline = now_ms() + c->timeout_ms;
    for (;;) {
        if (connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0) break;
        int error = errno;
        if (error == EINTR) continue;
        if (error == EAGAIN || error == EINPROGRESS) {
            /* The daemon's accept backlog is full: retry until the timeout. */
            if (now_ms() >= deadline) {
                close(fd);
                return set_error(c, CONSENTD_ERR_TIMEOUT, "cannot connect to %s within %d ms: the daemon is not accepting",
                                 c->path, c->timeout_ms);
            }
            struct timespec pause = {0, 1000000};
            nanosleep(&pause, NULL);
            continue;
        }
        close(fd);
        const char *hint = (error == ENOENT || error == ECONNREFUSED) ? " (is consentd running on this socket?)" : "";
        return set_error(c, CONSENTD_ERR_CONNECT, "cannot connect to %s: %s%s", c->path, strerror(error), hint);
    }
    /* From here on the descriptor blocks, bounded by SO_RCVTIMEO/SO_SNDTIMEO: a lone request then
     * waits in one recv() instead of poll() + recv(); everything that must not block says
     * MSG_DONTWAIT. */
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    drop_connection(c);
    c->fd = fd;
    apply_timeout(c);
    c->broken[0] = '\0';
    c->error[0] = '\0';
    return CONSENTD_OK;
}

consentd_status consentd_connect(consentd_client **out, const char *socket_path, int timeout_ms) {
    if (out == NULL) return CONSENTD_ERR_ARGUMENT;
    *out = NULL;
    consentd_client *c = calloc(1, sizeof(*c));
    if (c == NULL) return CONSENTD_ERR_NOMEM;
    c->fd = -1;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    c->max_frame = DEFAULT_MAX_FRAME;
    c->next_id = 1;
    c->allocator.alloc = arena_alloc;
    c->allocator.free = arena_free;
    c->allocator.allocator_data = &c->arena;
    c->path = strdup(socket_path != NULL ? socket_path : "");
    if (c->path == NULL) {
        free(c);
        return CONSENTD_ERR_NOMEM;
    }
    *out = c;
    if (socket_path == NULL || timeout_ms < 0) {
        snprintf(c->broken, sizeof(c->broken), "never connected");
        return set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_connect needs a socket path and a timeout >= 0");
    }
    consentd_status status = open_socket(c);
    if (status != CONSENTD_OK) snprintf(c->broken, sizeof(c->broken), "%.500s", c->error);
    return status;
}

consentd_status consentd_reconnect(consentd_client *c) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    c->server_code = 0;
    drop_connection(c);
    consentd_status status = open_socket(c);
    if (status != CONSENTD_OK) snprintf(c->broken, sizeof(c->broken), "%.500s", c->error);
    return status;
}

void consentd_close(consentd_client *c) {
    if (c == NULL) return;
    drop_connection(c);
    free(c->out);
    free(c->in);
    arena_release(&c->arena);
    intern_release(&c->strings);
    free(c->path);
    free(c);
}

consentd_status consentd_set_timeout(consentd_client *c, int timeout_ms) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (timeout_ms <= 0) return set_error(c, CONSENTD_ERR_ARGUMENT, "the timeout must be positive, not %d ms", timeout_ms);
    c->timeout_ms = timeout_ms;
    apply_timeout(c);
    return CONSENTD_OK;
}

consentd_status consentd_set_max_frame(consentd_client *c, size_t bytes) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (bytes < 16) return set_error(c, CONSENTD_ERR_ARGUMENT, "a frame limit of %zu bytes is too small", bytes);
    c->max_frame = bytes;
    return CONSENTD_OK;
}

bool consentd_is_connected(const consentd_client *c) { return c != NULL && c->fd >= 0; }

const char *consentd_error_message(const consentd_client *c) {
    if (c == NULL) return "no handle (NULL, or consentd_connect ran out of memory)";
    return c->error;
}

int consentd_server_code(const consentd_client *c) { return c == NULL ? 0 : c->server_code; }

size_t consentd_outstanding(const consentd_client *c) { return c == NULL ? 0 : c->outstanding; }

const char *consentd_status_name(consentd_status status) {
    switch (status) {
    case CONSENTD_OK: return "CONSENTD_OK";
    case CONSENTD_ERR_ARGUMENT: return "CONSENTD_ERR_ARGUMENT";
    case CONSENTD_ERR_CONNECT: return "CONSENTD_ERR_CONNECT";
    case CONSENTD_ERR_TIMEOUT: return "CONSENTD_ERR_TIMEOUT";
    case CONSENTD_ERR_IO: return "CONSENTD_ERR_IO";
    case CONSENTD_ERR_PROTOCOL: return "CONSENTD_ERR_PROTOCOL";
    case CONSENTD_ERR_SERVER: return "CONSENTD_ERR_SERVER";
    case CONSENTD_ERR_NOMEM: return "CONSENTD_ERR_NOMEM";
    case CONSENTD_ERR_CLOSED: return "CONSENTD_ERR_CLOSED";
    case CONSENTD_ERR_BUSY: return "CONSENTD_ERR_BUSY";
    case CONSENTD_ERR_EMPTY: return "CONSENTD_ERR_EMPTY";
    }
    return "CONSENTD_ERR_UNKNOWN";
}

const char *consentd_reason_name(consentd_reason reason) {
    const ProtobufCEnumValue *value =
        protobuf_c_enum_descriptor_get_value(&consentd__v1__reason__descriptor, (int)reason);
    if (value == NULL) return "UNKNOWN";
    return value->name + strlen("REASON_");
}

const char *consentd_verdict_name(consentd_verdict decision) {
    switch (decision) {
    case CONSENTD_ALLOW: return "allow";
    case CONSENTD_DENY: return "deny";
    default: return "unspecified";
    }
}

static const char *error_code_name(int code) {
    const ProtobufCEnumValue *value =
        protobuf_c_enum_descriptor_get_value(&consentd__v1__error_code__descriptor, code);
    return value == NULL ? "UNKNOWN_ERROR_CODE" : value->name + strlen("ERROR_CODE_");
}

/* ---- writing ---- */

static bool reserve_out(consentd_client *c, size_t extra) {
    if (c->out_capacity - c->out_len >= extra) return true;
    size_t capacity = c->out_capacity ? c->out_capacity : 4096;
    while (capacity - c->out_len < extra) capacity *= 2;
    uint8_t *grown = realloc(c->out, capacity);
    if (grown == NULL) return false;
    c->out = grown;
    c->out_capacity = capacity;
    return true;
}

static size_t put_varint(uint8_t *p, uint64_t value) {
    size_t n = 0;
    while (value >= 0x80) {
        p[n++] = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    p[n++] = (uint8_t)value;
    return n;
}

static consentd_status append_request(consentd_client *c, const Consentd__V1__Request *request) {
    size_t size = consentd__v1__request__get_packed_size(request);
    if (!reserve_out(c, size + 10)) return set_error(c, CONSENTD_ERR_NOMEM, "out of memory for a %zu-byte request", size);
    c->out_len += put_varint(c->out + c->out_len, size);
    c->out_len += consentd__v1__request__pack(request, c->out + c->out_len);
    return CONSENTD_OK;
}

/* ---- reading ---- */

/* One recv() into the free space: MSG_DONTWAIT reads what is there (nothing is fine); 0 blocks
 * for at most the handle's timeout (SO_RCVTIMEO), and running out of it is an error. */
static consentd_status receive(consentd_client *c, int flags) {
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_end, c->in_capacity - c->in_end, flags);
        if (n > 0) {
            c->in_end += (size_t)n;
            return CONSENTD_OK;
        }
        if (n == 0) {
            c->eof = true;
            return CONSENTD_OK;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (flags & MSG_DONTWAIT) return CONSENTD_OK;
            return fail(c, CONSENTD_ERR_TIMEOUT, "no reply from %s within %d ms; connection closed", c->path, c->timeout_ms);
        }
        return fail(c, CONSENTD_ERR_IO, "reading from %s failed: %s", c->path, strerror(errno));
    }
}

/* Reads what the socket has without blocking. Returns OK (possibly with nothing read). */
static consentd_status read_available(consentd_client *c) {
    if (c->eof) return CONSENTD_OK;
    if (c->in_start == c->in_end) c->in_start = c->in_end = 0;
    if (c->in_capacity - c->in_end < 4096) {
        if (c->in_start > 0) {
            memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
            c->in_end -= c->in_start;
            c->in_start = 0;
        }
        if (c->in_capacity - c->in_end < 4096) {
            size_t capacity = c->in_capacity ? c->in_capacity * 2 : 65536;
            uint8_t *grown = realloc(c->in, capacity);
            if (grown == NULL) return fail(c, CONSENTD_ERR_NOMEM, "out of memory for the receive buffer");
            c->in = grown;
            c->in_capacity = capacity;
        }
    }
    return receive(c, MSG_DONTWAIT);
}

/* Waits for bytes in one blocking recv(), at most the handle's timeout (SO_RCVTIMEO). */
static consentd_status read_blocking(consentd_client *c) {
    if (c->in_capacity - c->in_end < 4096) {
        size_t before = c->in_end - c->in_start;
        consentd_status status = read_available(c); /* makes room, and may read: then the caller looks first */
        if (status != CONSENTD_OK || c->eof || c->in_end - c->in_start != before) return status;
    }
    return receive(c, 0);
}

/* Waits until the socket is readable (and, with want_write, writable) or the timeout passes. */
static consentd_status wait_socket(consentd_client *c, bool want_write, short *revents) {
    struct pollfd p = {.fd = c->fd, .events = (short)(POLLIN | (want_write ? POLLOUT : 0)), .revents = 0};
    for (;;) {
        int ready = poll(&p, 1, c->timeout_ms);
        if (ready > 0) {
            *revents = p.revents;
            return CONSENTD_OK;
        }
        if (ready == 0) {
            return fail(c, CONSENTD_ERR_TIMEOUT, "no %s from %s within %d ms; connection closed",
                        want_write ? "progress" : "reply", c->path, c->timeout_ms);
        }
        if (errno != EINTR) return fail(c, CONSENTD_ERR_IO, "waiting on %s failed: %s", c->path, strerror(errno));
    }
}

/* Writes every queued byte, reading replies meanwhile so a daemon that stops reading until its
 * answers are read cannot deadlock with us. */
static consentd_status write_all(consentd_client *c) {
    while (c->out_sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            short revents = 0;
            consentd_status status = wait_socket(c, true, &revents);
            if (status != CONSENTD_OK) return status;
            if (revents & (POLLIN | POLLHUP)) {
                status = read_available(c);
                if (status != CONSENTD_OK) return status;
                if (c->eof) return fail(c, CONSENTD_ERR_IO, "the daemon at %s closed the connection while requests were being sent", c->path);
            }
            continue;
        }
        int error = n < 0 ? errno : EPIPE;
        return fail(c, CONSENTD_ERR_IO, "writing to %s failed: %s (did the daemon stop or restart?)", c->path, strerror(error));
    }
    c->out_len = c->out_sent = 0;
    return CONSENTD_OK;
}

/* Finds the next complete reply frame, reading as needed. */
static consentd_status next_frame(consentd_client *c, const uint8_t **frame, size_t *length) {
    for (;;) {
        size_t available = c->in_end - c->in_start;
        const uint8_t *p = c->in + c->in_start;
        uint64_t size = 0;
        size_t header = 0;
        bool complete_header = false;
        for (size_t i = 0; i < available && i < 10; i++) {
            size |= (uint64_t)(p[i] & 0x7f) << (7 * i);
            if ((p[i] & 0x80) == 0) {
                header = i + 1;
                complete_header = true;
                break;
            }
        }
        if (!complete_header && available >= 10) {
            return fail(c, CONSENTD_ERR_PROTOCOL, "the reply stream from %s has an invalid length prefix (more than 10 varint bytes); connection closed", c->path);
        }
        if (complete_header) {
            if (size > c->max_frame) {
                return fail(c, CONSENTD_ERR_PROTOCOL, "reply frame of %llu bytes from %s exceeds the limit of %zu bytes; connection closed",
                            (unsigned long long)size, c->path, c->max_frame);
            }
            if (available - header >= size) {
                *frame = p + header;
                *length = (size_t)size;
                c->in_start += header + (size_t)size;
                return CONSENTD_OK;
            }
        }
        /* About to wait for the daemon: everything queued must be on its way first. */
        if (c->out_sent < c->out_len) {
            consentd_status status = write_all(c);
            if (status != CONSENTD_OK) return status;
            continue;
        }
        if (c->eof) {
            if (available == 0) {
                return fail(c, CONSENTD_ERR_IO, "the daemon at %s closed the connection (stopped or restarted?)", c->path);
            }
            return fail(c, CONSENTD_ERR_IO, "the daemon at %s closed the connection in the middle of a reply (%zu bytes unread)",
                        c->path, available);
        }
        /* Pipelined: read first, since answers are often already waiting (no poll(), no sleep). */
        consentd_status status;
        if (c->outstanding > 1) {
            size_t before = c->in_end - c->in_start;
            status = read_available(c);
            if (status != CONSENTD_OK) return status;
            if (c->in_end - c->in_start > before || c->eof) continue;
        }
        status = read_blocking(c);
        if (status != CONSENTD_OK) return status;
    }
}

/* Reads and decodes the next reply. The message lives in the arena until the next reply. */
static consentd_status decode_response(consentd_client *c, const uint8_t *frame, size_t length, Consentd__V1__Response **out);

static consentd_status next_response(consentd_client *c, Consentd__V1__Response **out) {
    const uint8_t *frame = NULL;
    size_t length = 0;
    consentd_status status = next_frame(c, &frame, &length);
    if (status != CONSENTD_OK) return status;
    return decode_response(c, frame, length, out);
}

static consentd_status decode_response(consentd_client *c, const uint8_t *frame, size_t length, Consentd__V1__Response **out) {
    arena_reset(&c->arena);
    Consentd__V1__Response *response = consentd__v1__response__unpack(&c->allocator, length, frame);
    if (response == NULL) {
        if (c->arena.failed) return fail(c, CONSENTD_ERR_NOMEM, "out of memory decoding a %zu-byte reply", length);
        return fail(c, CONSENTD_ERR_PROTOCOL, "a %zu-byte reply from %s is not a valid consentd.v1.Response; connection closed",
                    length, c->path);
    }
    if (response->result_case == CONSENTD__V1__RESPONSE__RESULT_ERROR) {
        const Consentd__V1__Error *error = response->error;
        c->server_code = (int)error->code;
        if (response->id == 0) {
            /* A frame-level error: the daemon closes the connection after it. */
            consentd_status closed = fail(c, CONSENTD_ERR_SERVER, "consentd rejected the request stream: %s: %s; connection closed",
                                          error_code_name((int)error->code), error->message ? error->message : "");
            c->server_code = (int)error->code;
            return closed;
        }
    }
    *out = response;
    return CONSENTD_OK;
}

static consentd_status server_error(consentd_client *c, const Consentd__V1__Response *response) {
    c->server_code = (int)response->error->code;
    return set_error(c, CONSENTD_ERR_SERVER, "consentd refused request %llu: %s: %s", (unsigned long long)response->id,
                     error_code_name((int)response->error->code), response->error->message ? response->error->message : "");
}

static consentd_status expect(consentd_client *c, const Consentd__V1__Response *response, uint64_t id,
                              Consentd__V1__Response__ResultCase kind, const char *kind_name) {
    if (response->id != id) {
        return fail(c, CONSENTD_ERR_PROTOCOL, "reply to request %llu while waiting for request %llu; connection closed",
                    (unsigned long long)response->id, (unsigned long long)id);
    }
    if (response->result_case == CONSENTD__V1__RESPONSE__RESULT_ERROR) return server_error(c, response);
    if (response->result_case != kind) {
        return fail(c, CONSENTD_ERR_PROTOCOL, "reply to request %llu is not a %s (result case %d); connection closed",
                    (unsigned long long)id, kind_name, (int)response->result_case);
    }
    return CONSENTD_OK;
}

/* ---- building requests ---- */

/* Microseconds since the epoch as a protobuf Timestamp's seconds and (non-negative) nanos. */
static int64_t split_micros(int64_t micros, int32_t *nanos) {
    int64_t seconds = micros / 1000000, rest = micros % 1000000;
    if (rest < 0) {
        rest += 1000000;
        seconds -= 1;
    }
    *nanos = (int32_t)(rest * 1000);
    return seconds;
}

static void set_timestamp(Google__Protobuf__Timestamp *t, int64_t micros) {
    google__protobuf__timestamp__init(t);
    int32_t nanos;
    t->seconds = split_micros(micros, &nanos);
    t->nanos = nanos;
}

static char *text(const char *s) { return (char *)(s != NULL ? s : protobuf_c_empty_string); }

typedef struct context_storage {
    Consentd__V1__Context context;
    Google__Protobuf__Timestamp at;
} context_storage;

/* Returns NULL when the context says nothing, so nothing is sent. */
static Consentd__V1__Context *build_context(const consentd_context *in, context_storage *storage) {
    if (in == NULL) return NULL;
    bool empty = (in->jurisdiction == NULL || *in->jurisdiction == '\0') && (in->channel == NULL || *in->channel == '\0') &&
                 !in->gpc && !in->usp_opt_out && in->at_micros == 0;
    if (empty) return NULL;
    consentd__v1__context__init(&storage->context);
    storage->context.jurisdiction = text(in->jurisdiction);
    storage->context.channel = text(in->channel);
    storage->context.gpc = in->gpc;
    storage->context.usp_opt_out = in->usp_opt_out;
    if (in->at_micros != 0) {
        set_timestamp(&storage->at, in->at_micros);
        storage->context.at = &storage->at;
    }
    return &storage->context;
}


static bool valid_query(const consentd_query *q) {
    return q != NULL && q->subject_id != NULL && q->purpose != NULL && q->data_category != NULL;
}

/* ---- the Check request, encoded directly (the hot path of pipelined clients) ----
 * Field for field what protobuf-c's pack writes for the same Request (fields in number order,
 * proto3 defaults omitted); tests/test_client.c checks the bytes against it. */

static size_t varint_size(uint64_t value) {
    size_t n = 1;
    while (value >= 0x80) {
        value >>= 7;
        n++;
    }
    return n;
}

static size_t string_field_size(size_t length) { return length == 0 ? 0 : 1 + varint_size(length) + length; }

static uint8_t *put_string_field(uint8_t *p, unsigned field, const char *text, size_t length) {
    if (length == 0) return p;
    *p++ = (uint8_t)(field << 3 | 2);
    p += put_varint(p, length);
    memcpy(p, text, length);
    return p + length;
}

static size_t context_size(const consentd_context *x, size_t jurisdiction, size_t channel, size_t *timestamp) {
    *timestamp = 0;
    if (x == NULL) return 0;
    size_t size = string_field_size(jurisdiction) + string_field_size(channel) + (x->gpc ? 2 : 0) + (x->usp_opt_out ? 2 : 0);
    if (x->at_micros != 0) {
        int32_t nanos;
        int64_t seconds = split_micros(x->at_micros, &nanos);
        size_t t = (seconds != 0 ? 1 + varint_size((uint64_t)seconds) : 0) + (nanos != 0 ? 1 + varint_size((uint64_t)nanos) : 0);
        *timestamp = t;
        size += 1 + varint_size(t) + t;
    }
    return size;
}

/* Encodes a framed Check into `scratch` if it fits (else reports the size needed). Exposed for the tests. */
consentd_status consentd__encode_check(uint8_t **out, size_t *out_length, uint8_t *scratch, size_t scratch_size,
                                       uint64_t id, const consentd_query *query, const consentd_context *context) {
    size_t subject = strlen(query->subject_id), purpose = strlen(query->purpose), data = strlen(query->data_category);
    size_t jurisdiction = context && context->jurisdiction ? strlen(context->jurisdiction) : 0;
    size_t channel = context && context->channel ? strlen(context->channel) : 0;
    size_t timestamp = 0;
    size_t ctx = context_size(context, jurisdiction, channel, &timestamp);
    bool has_context = context != NULL && ctx > 0;
    size_t check = string_field_size(subject) + string_field_size(purpose) + string_field_size(data) +
                   (has_context ? 1 + varint_size(ctx) + ctx : 0);
    size_t request = (id != 0 ? 1 + varint_size(id) : 0) + 1 + varint_size(check) + check;
    size_t total = varint_size(request) + request;
    *out_length = total;
    if (total > scratch_size) return CONSENTD_ERR_NOMEM;
    uint8_t *p = scratch;
    p += put_varint(p, request);
    if (id != 0) {
        *p++ = 1 << 3;
        p += put_varint(p, id);
    }
    *p++ = 2 << 3 | 2;
    p += put_varint(p, check);
    p = put_string_field(p, 1, query->subject_id, subject);
    p = put_string_field(p, 2, query->purpose, purpose);
    p = put_string_field(p, 3, query->data_category, data);
    if (has_context) {
        *p++ = 4 << 3 | 2;
        p += put_varint(p, ctx);
        p = put_string_field(p, 1, context->jurisdiction, jurisdiction);
        if (context->gpc) {
            *p++ = 2 << 3;
            *p++ = 1;
        }
        if (context->at_micros != 0) {
            int32_t nanos;
            int64_t seconds = split_micros(context->at_micros, &nanos);
            *p++ = 3 << 3 | 2;
            p += put_varint(p, timestamp);
            if (seconds != 0) {
                *p++ = 1 << 3;
                p += put_varint(p, (uint64_t)seconds);
            }
            if (nanos != 0) {
                *p++ = 2 << 3;
                p += put_varint(p, (uint64_t)nanos);
            }
        }
        if (context->usp_opt_out) {
            *p++ = 4 << 3;
            *p++ = 1;
        }
        p = put_string_field(p, 5, context->channel, channel);
    }
    *out = scratch;
    return (size_t)(p - scratch) == total ? CONSENTD_OK : CONSENTD_ERR_PROTOCOL;
}

static consentd_status queue_check(consentd_client *c, const consentd_query *query, const consentd_context *context, uint64_t id) {
    size_t needed = 0;
    uint8_t *frame = NULL;
    if (!reserve_out(c, 512)) return set_error(c, CONSENTD_ERR_NOMEM, "out of memory for a request");
    consentd_status status = consentd__encode_check(&frame, &needed, c->out + c->out_len, c->out_capacity - c->out_len, id, query, context);
    if (status == CONSENTD_ERR_NOMEM) {
        if (!reserve_out(c, needed)) return set_error(c, CONSENTD_ERR_NOMEM, "out of memory for a %zu-byte request", needed);
        status = consentd__encode_check(&frame, &needed, c->out + c->out_len, c->out_capacity - c->out_len, id, query, context);
    }
    if (status != CONSENTD_OK) return set_error(c, status, "internal error encoding a Check");
    c->out_len += needed;
    return CONSENTD_OK;
}


/* The revision changes only on a policy reload: compare with the last one before hashing. */
static const char *intern_revision(consentd_client *c, const char *text) {
    if (c->last_revision != NULL && strcmp(c->last_revision, text) == 0) return c->last_revision;
    const char *interned = intern(&c->strings, text);
    if (interned != NULL) c->last_revision = interned;
    return interned;
}

static consentd_status fill_decision(consentd_client *c, const Consentd__V1__CheckResponse *r, consentd_decision *out) {
    const char *rule = intern(&c->strings, r->rule_id);
    const char *revision = intern_revision(c, r->policy_revision);
    if (rule == NULL || revision == NULL) return set_error(c, CONSENTD_ERR_NOMEM, "out of memory interning a rule id");
    out->decision = (consentd_verdict)r->decision;
    out->reason = (consentd_reason)r->reason;
    out->rule_id = rule;
    out->policy_revision = revision;
    out->consent_sequence = r->consent_sequence;
    out->record_sequence = r->consent_record != NULL ? r->consent_record->sequence : 0;
    out->legal_basis = (consentd_legal_basis)r->legal_basis;
    return CONSENTD_OK;
}

/* ---- the Check answer, decoded directly (the hot path of pipelined clients) ----
 * Reads Response{id, check} and the CheckResponse fields a decision needs, skipping the others
 * by wire type. Anything else (an error, another result, an unexpected wire type) returns false
 * and the caller decodes with protobuf-c. Exposed for the tests, which compare the two. */

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *value) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t byte = *(*p)++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) {
            *value = v;
            return true;
        }
    }
    return false;
}

static bool skip_field(const uint8_t **p, const uint8_t *end, unsigned wire) {
    uint64_t value;
    switch (wire) {
    case 0: return read_varint(p, end, &value);
    case 1: if (end - *p < 8) return false; *p += 8; return true;
    case 2: if (!read_varint(p, end, &value) || value > (uint64_t)(end - *p)) return false; *p += value; return true;
    case 5: if (end - *p < 4) return false; *p += 4; return true;
    default: return false;
    }
}


bool consentd__decode_check(const uint8_t *frame, size_t length, fast_check *out) {
    memset(out, 0, sizeof(*out));
    const uint8_t *p = frame, *end = frame + length;
    const uint8_t *check = NULL, *check_end = NULL;
    while (p < end) {
        uint64_t key;
        if (!read_varint(&p, end, &key)) return false;
        unsigned field = (unsigned)(key >> 3), wire = (unsigned)(key & 7);
        if (field == 1 && wire == 0) {
            if (!read_varint(&p, end, &out->id)) return false;
        } else if (field == 2 && wire == 2) {
            uint64_t size;
            if (check != NULL || !read_varint(&p, end, &size) || size > (uint64_t)(end - p)) return false;
            check = p;
            check_end = p + size;
            p += size;
        } else {
            return false; /* another result, or a field this fast path does not expect */
        }
    }
    if (check == NULL) return false;
    p = check;
    while (p < check_end) {
        uint64_t key, value;
        if (!read_varint(&p, check_end, &key)) return false;
        unsigned field = (unsigned)(key >> 3), wire = (unsigned)(key & 7);
        if (wire == 0 && (field == 1 || field == 2 || field == 5 || field == 7)) {
            if (!read_varint(&p, check_end, &value)) return false;
            if (field == 1) out->decision = value;
            else if (field == 2) out->reason = value;
            else if (field == 5) out->consent_sequence = value;
            else out->legal_basis = value;
        } else if (wire == 2 && (field == 3 || field == 4 || field == 6)) {
            if (!read_varint(&p, check_end, &value) || value > (uint64_t)(check_end - p)) return false;
            if (field == 3) {
                out->rule = p;
                out->rule_length = (size_t)value;
            } else if (field == 4) {
                out->revision = p;
                out->revision_length = (size_t)value;
            } else {
                const uint8_t *q = p, *record_end = p + value;
                while (q < record_end) {
                    uint64_t k, v;
                    if (!read_varint(&q, record_end, &k)) return false;
                    if ((k >> 3) == 12 && (k & 7) == 0) {
                        if (!read_varint(&q, record_end, &v)) return false;
                        out->record_sequence = v;
                    } else if (!skip_field(&q, record_end, (unsigned)(k & 7))) {
                        return false;
                    }
                }
            }
            p += value;
        } else if (!skip_field(&p, check_end, wire)) {
            return false;
        }
    }
    return true;
}

/* Interns a string given by pointer and length (not NUL-terminated). */
static const char *intern_bytes(consentd_client *c, const uint8_t *bytes, size_t length, bool revision) {
    if (length == 0) return "";
    if (revision && c->last_revision != NULL && strlen(c->last_revision) == length && memcmp(c->last_revision, bytes, length) == 0) {
        return c->last_revision;
    }
    char small[256];
    char *text = length < sizeof(small) ? small : malloc(length + 1);
    if (text == NULL) return NULL;
    memcpy(text, bytes, length);
    text[length] = '\0';
    const char *interned = intern(&c->strings, text);
    if (text != small) free(text);
    if (revision && interned != NULL) c->last_revision = interned;
    return interned;
}

static consentd_status fill_fast(consentd_client *c, const fast_check *fast, consentd_decision *out) {
    const char *rule = intern_bytes(c, fast->rule, fast->rule_length, false);
    const char *revision = intern_bytes(c, fast->revision, fast->revision_length, true);
    if (rule == NULL || revision == NULL) return set_error(c, CONSENTD_ERR_NOMEM, "out of memory interning a rule id");
    out->decision = (consentd_verdict)fast->decision;
    out->reason = (consentd_reason)fast->reason;
    out->rule_id = rule;
    out->policy_revision = revision;
    out->consent_sequence = fast->consent_sequence;
    out->record_sequence = fast->record_sequence;
    out->legal_basis = (consentd_legal_basis)fast->legal_basis;
    return CONSENTD_OK;
}

/* ---- the calls ---- */

static consentd_status begin_call(consentd_client *c) {
    consentd_status status = begin(c);
    if (status != CONSENTD_OK) return status;
    if (c->outstanding > 0) {
        return set_error(c, CONSENTD_ERR_BUSY, "%zu pipelined checks are outstanding; collect them with consentd_next() first",
                         c->outstanding);
    }
    return CONSENTD_OK;
}

consentd_status consentd_check(consentd_client *c, const consentd_query *query, const consentd_context *context,
                               consentd_decision *out) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (!valid_query(query) || out == NULL) {
        return set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_check needs a query with subject_id, purpose and data_category, and an output");
    }
    consentd_status status = begin_call(c);
    if (status != CONSENTD_OK) return status;
    uint64_t id = c->next_id++;
    if ((status = queue_check(c, query, context, id)) != CONSENTD_OK) return status;
    const uint8_t *frame = NULL;
    size_t length = 0;
    if ((status = next_frame(c, &frame, &length)) != CONSENTD_OK) return status;
    fast_check fast;
    if (consentd__decode_check(frame, length, &fast) && fast.id == id) return fill_fast(c, &fast, out);
    Consentd__V1__Response *response = NULL;
    if ((status = decode_response(c, frame, length, &response)) != CONSENTD_OK) return status;
    if ((status = expect(c, response, id, CONSENTD__V1__RESPONSE__RESULT_CHECK, "CheckResponse")) != CONSENTD_OK) return status;
    return fill_decision(c, response->check, out);
}

consentd_status consentd_check_batch(consentd_client *c, const consentd_query *queries, size_t count,
                                     const consentd_context *context, consentd_decision *out) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (count == 0) return begin_call(c);
    if (queries == NULL || out == NULL) return set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_check_batch needs queries and an output array");
    for (size_t i = 0; i < count; i++) {
        if (!valid_query(&queries[i])) return set_error(c, CONSENTD_ERR_ARGUMENT, "query %zu lacks subject_id, purpose or data_category", i);
    }
    consentd_status status = begin_call(c);
    if (status != CONSENTD_OK) return status;
    Consentd__V1__CheckItem *items = malloc(count * sizeof(Consentd__V1__CheckItem));
    Consentd__V1__CheckItem **pointers = malloc(count * sizeof(Consentd__V1__CheckItem *));
    if (items == NULL || pointers == NULL) {
        free(items);
        free(pointers);
        return set_error(c, CONSENTD_ERR_NOMEM, "out of memory for a batch of %zu", count);
    }
    for (size_t i = 0; i < count; i++) {
        consentd__v1__check_item__init(&items[i]);
        items[i].subject_id = text(queries[i].subject_id);
        items[i].purpose = text(queries[i].purpose);
        items[i].data_category = text(queries[i].data_category);
        pointers[i] = &items[i];
    }
    context_storage storage;
    Consentd__V1__CheckBatchRequest batch;
    consentd__v1__check_batch_request__init(&batch);
    batch.n_items = count;
    batch.items = pointers;
    batch.context = build_context(context, &storage);
    Consentd__V1__Request request;
    consentd__v1__request__init(&request);
    uint64_t id = c->next_id++;
    request.id = id;
    request.method_case = CONSENTD__V1__REQUEST__METHOD_CHECK_BATCH;
    request.check_batch = &batch;
    status = append_request(c, &request);
    free(items);
    free(pointers);
    if (status != CONSENTD_OK) return status;
    Consentd__V1__Response *response = NULL;
    if ((status = next_response(c, &response)) != CONSENTD_OK) return status;
    if ((status = expect(c, response, id, CONSENTD__V1__RESPONSE__RESULT_CHECK_BATCH, "CheckBatchResponse")) != CONSENTD_OK) return status;
    const Consentd__V1__CheckBatchResponse *r = response->check_batch;
    if (r->n_results != count) {
        return fail(c, CONSENTD_ERR_PROTOCOL, "a batch of %zu got %zu results; connection closed", count, r->n_results);
    }
    const char *revision = intern_revision(c, r->policy_revision);
    if (revision == NULL) return set_error(c, CONSENTD_ERR_NOMEM, "out of memory interning a revision");
    for (size_t i = 0; i < count; i++) {
        const Consentd__V1__CheckResult *result = r->results[i];
        const char *rule = intern(&c->strings, result->rule_id);
        if (rule == NULL) return set_error(c, CONSENTD_ERR_NOMEM, "out of memory interning a rule id");
        out[i].decision = (consentd_verdict)result->decision;
        out[i].reason = (consentd_reason)result->reason;
        out[i].rule_id = rule;
        out[i].policy_revision = revision;
        out[i].consent_sequence = r->consent_sequence;
        out[i].record_sequence = result->consent_record_sequence;
        out[i].legal_basis = (consentd_legal_basis)result->legal_basis;
    }
    return CONSENTD_OK;
}

consentd_status consentd_submit_check(consentd_client *c, const consentd_query *query, const consentd_context *context,
                                      uint64_t *id_out) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (!valid_query(query)) {
        return set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_submit_check needs a query with subject_id, purpose and data_category");
    }
    consentd_status status = begin(c);
    if (status != CONSENTD_OK) return status;
    uint64_t id = c->next_id++;
    if ((status = queue_check(c, query, context, id)) != CONSENTD_OK) return status;
    c->outstanding++;
    if (id_out != NULL) *id_out = id;
    if (c->out_len >= FLUSH_THRESHOLD) return write_all(c);
    return CONSENTD_OK;
}

consentd_status consentd_flush(consentd_client *c) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    consentd_status status = begin(c);
    if (status != CONSENTD_OK) return status;
    return write_all(c);
}

consentd_status consentd_next(consentd_client *c, uint64_t *id_out, consentd_decision *out) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (out == NULL) return set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_next needs an output");
    consentd_status status = begin(c);
    if (status != CONSENTD_OK) return status;
    if (c->outstanding == 0) return set_error(c, CONSENTD_ERR_EMPTY, "no pipelined checks are outstanding");
    const uint8_t *frame = NULL;
    size_t length = 0;
    if ((status = next_frame(c, &frame, &length)) != CONSENTD_OK) return status;
    fast_check fast;
    if (consentd__decode_check(frame, length, &fast)) {
        c->outstanding--;
        if (id_out != NULL) *id_out = fast.id;
        return fill_fast(c, &fast, out);
    }
    Consentd__V1__Response *response = NULL;
    if ((status = decode_response(c, frame, length, &response)) != CONSENTD_OK) return status;
    c->outstanding--;
    if (id_out != NULL) *id_out = response->id;
    if (response->result_case == CONSENTD__V1__RESPONSE__RESULT_ERROR) return server_error(c, response);
    if (response->result_case != CONSENTD__V1__RESPONSE__RESULT_CHECK) {
        return fail(c, CONSENTD_ERR_PROTOCOL, "reply to request %llu is not a CheckResponse (result case %d); connection closed",
                    (unsigned long long)response->id, (int)response->result_case);
    }
    return fill_decision(c, response->check, out);
}

consentd_status consentd_record_consent(consentd_client *c, const consentd_record *records, size_t count,
                                        const char *idempotency_key, uint64_t *sequences, uint64_t *consent_sequence) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (records == NULL || count == 0) return set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_record_consent needs at least one record");
    for (size_t i = 0; i < count; i++) {
        if (records[i].subject_id == NULL || records[i].purpose == NULL ||
            (records[i].choice != CONSENTD_CHOICE_GRANT && records[i].choice != CONSENTD_CHOICE_DENY)) {
            return set_error(c, CONSENTD_ERR_ARGUMENT, "record %zu needs subject_id, purpose and a choice (grant or deny)", i);
        }
    }
    consentd_status status = begin_call(c);
    if (status != CONSENTD_OK) return status;
    Consentd__V1__ConsentRecord *messages = calloc(count, sizeof(Consentd__V1__ConsentRecord));
    Consentd__V1__ConsentRecord **pointers = calloc(count, sizeof(Consentd__V1__ConsentRecord *));
    Google__Protobuf__Timestamp *times = calloc(count * 2, sizeof(Google__Protobuf__Timestamp));
    if (messages == NULL || pointers == NULL || times == NULL) {
        free(messages);
        free(pointers);
        free(times);
        return set_error(c, CONSENTD_ERR_NOMEM, "out of memory for %zu records", count);
    }
    for (size_t i = 0; i < count; i++) {
        const consentd_record *in = &records[i];
        Consentd__V1__ConsentRecord *m = &messages[i];
        consentd__v1__consent_record__init(m);
        m->subject_id = text(in->subject_id);
        m->purpose = text(in->purpose);
        m->data_category = text(in->data_category);
        m->choice = (Consentd__V1__Choice)in->choice;
        if (in->recorded_at_micros != 0) {
            set_timestamp(&times[2 * i], in->recorded_at_micros);
            m->recorded_at = &times[2 * i];
        }
        if (in->expires_at_micros != 0) {
            set_timestamp(&times[2 * i + 1], in->expires_at_micros);
            m->expires_at = &times[2 * i + 1];
        }
        m->legal_basis = (Consentd__V1__LegalBasis)in->legal_basis;
        m->source = text(in->source);
        m->jurisdiction = text(in->jurisdiction);
        m->evidence = text(in->evidence);
        if (in->has_notice_version) {
            m->_notice_version_case = CONSENTD__V1__CONSENT_RECORD___NOTICE_VERSION_NOTICE_VERSION;
            m->notice_version = in->notice_version;
        }
        pointers[i] = m;
    }
    Consentd__V1__RecordConsentRequest record;
    consentd__v1__record_consent_request__init(&record);
    record.n_records = count;
    record.records = pointers;
    record.idempotency_key = text(idempotency_key);
    Consentd__V1__Request request;
    consentd__v1__request__init(&request);
    uint64_t id = c->next_id++;
    request.id = id;
    request.method_case = CONSENTD__V1__REQUEST__METHOD_RECORD_CONSENT;
    request.record_consent = &record;
    status = append_request(c, &request);
    free(messages);
    free(pointers);
    free(times);
    if (status != CONSENTD_OK) return status;
    Consentd__V1__Response *response = NULL;
    if ((status = next_response(c, &response)) != CONSENTD_OK) return status;
    if ((status = expect(c, response, id, CONSENTD__V1__RESPONSE__RESULT_RECORD_CONSENT, "RecordConsentResponse")) != CONSENTD_OK) {
        return status;
    }
    const Consentd__V1__RecordConsentResponse *r = response->record_consent;
    if (r->n_sequences != count) {
        return fail(c, CONSENTD_ERR_PROTOCOL, "%zu records got %zu sequences; connection closed", count, r->n_sequences);
    }
    if (sequences != NULL) memcpy(sequences, r->sequences, count * sizeof(uint64_t));
    if (consent_sequence != NULL) *consent_sequence = r->consent_sequence;
    return CONSENTD_OK;
}

consentd_status consentd_erase_subject(consentd_client *c, const char *subject_id, uint64_t *tombstone_sequence,
                                       uint32_t *erased_records) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (subject_id == NULL || *subject_id == '\0') return set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_erase_subject needs a subject id");
    consentd_status status = begin_call(c);
    if (status != CONSENTD_OK) return status;
    Consentd__V1__EraseSubjectRequest erase;
    consentd__v1__erase_subject_request__init(&erase);
    erase.subject_id = text(subject_id);
    Consentd__V1__Request request;
    consentd__v1__request__init(&request);
    uint64_t id = c->next_id++;
    request.id = id;
    request.method_case = CONSENTD__V1__REQUEST__METHOD_ERASE_SUBJECT;
    request.erase_subject = &erase;
    if ((status = append_request(c, &request)) != CONSENTD_OK) return status;
    Consentd__V1__Response *response = NULL;
    if ((status = next_response(c, &response)) != CONSENTD_OK) return status;
    if ((status = expect(c, response, id, CONSENTD__V1__RESPONSE__RESULT_ERASE_SUBJECT, "EraseSubjectResponse")) != CONSENTD_OK) {
        return status;
    }
    const Consentd__V1__Erasure *tombstone = response->erase_subject->tombstone;
    if (tombstone_sequence != NULL) *tombstone_sequence = tombstone != NULL ? tombstone->sequence : 0;
    if (erased_records != NULL) *erased_records = tombstone != NULL ? tombstone->record_count : 0;
    return CONSENTD_OK;
}

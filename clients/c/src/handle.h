/*
 * The handle and the functions the client's layers share. Not part of the public API.
 *
 *   memory.c       bump arena for decoded replies, interned strings
 *   check_codec.c  varints and the hand-written Check request encoder / answer decoder
 *   connection.c   the socket: connect, timeouts, buffers, framing, errors
 *   messages.c     protobuf-c messages: build, pack and send, receive and unpack, expect a kind
 *   calls.c        the public calls, each one build -> send -> expect
 *   names.c        names of statuses, reasons, verdicts and error codes; enum checks
 */
#ifndef CONSENTD_HANDLE_H
#define CONSENTD_HANDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consentd/v1/consentd.pb-c.h"
#include "consentd_client.h"

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_MAX_FRAME ((size_t)16 << 20)
/* Queued requests are written once this many bytes wait. */
#define FLUSH_THRESHOLD ((size_t)64 << 10)

/* ---- memory.c: bump allocator for unpacking replies, interned strings ---- */

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

typedef struct intern_table {
    char **slots;
    size_t capacity; /* power of two */
    size_t count;
} intern_table;

void *consentd__arena_alloc(void *data, size_t size);
void consentd__arena_free(void *data, void *pointer);
void consentd__arena_release(arena *a);
/* Keeps one block big enough for the largest reply seen, so steady state allocates nothing. */
void consentd__arena_reset(arena *a);
/* Returns the table's copy of s ("" for NULL or ""), or NULL when memory ran out. */
const char *consentd__intern(intern_table *t, const char *s);
void consentd__intern_release(intern_table *t);

/* ---- connection.c: the handle, the socket, framing and errors ---- */

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

/* Records an error for consentd_error_message() and returns status; the connection stays. */
consentd_status consentd__set_error(consentd_client *c, consentd_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
/* Closes the connection because of an error and remembers why. */
consentd_status consentd__fail(consentd_client *c, consentd_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
/* Clears the last error; CONSENTD_ERR_CLOSED when not connected. */
consentd_status consentd__begin(consentd_client *c);
/* Room for `extra` more bytes in the output buffer. */
bool consentd__reserve_out(consentd_client *c, size_t extra);
/* Writes every queued byte, reading replies meanwhile. */
consentd_status consentd__write_all(consentd_client *c);
/* The next complete reply frame (without its prefix), flushing and reading as needed. */
consentd_status consentd__next_frame(consentd_client *c, const uint8_t **frame, size_t *length);

/* ---- messages.c: protobuf-c messages over the connection ---- */

/* Packs `request` behind its length into the output buffer (sent by the next flush or wait). */
consentd_status consentd__append_request(consentd_client *c, const Consentd__V1__Request *request);
/* Unpacks a reply frame into the handle's arena (valid until the next reply). A frame-level
 * error (id 0) closes the connection. */
consentd_status consentd__decode_response(consentd_client *c, const uint8_t *frame, size_t length, Consentd__V1__Response **out);
/* CONSENTD_ERR_SERVER with the daemon's code and message. */
consentd_status consentd__server_error(consentd_client *c, const Consentd__V1__Response *response);
/* Checks that `response` answers `id` with a result of `kind` (or is the daemon's refusal of it). */
consentd_status consentd__expect(consentd_client *c, const Consentd__V1__Response *response, uint64_t id,
                                 Consentd__V1__Response__ResultCase kind, const char *kind_name);
/* One call: gives `request` the next id, sends it, waits for its answer and expects `kind`. */
consentd_status consentd__call(consentd_client *c, Consentd__V1__Request *request, Consentd__V1__Response__ResultCase kind,
                               const char *kind_name, Consentd__V1__Response **out);
/* `micros` since the epoch as a Timestamp. */
void consentd__set_timestamp(Google__Protobuf__Timestamp *t, int64_t micros);
/* A string protobuf-c may pack: NULL becomes "". */
char *consentd__text(const char *s);
typedef struct context_storage {
    Consentd__V1__Context context;
    Google__Protobuf__Timestamp at;
} context_storage;

/* Whether `in` carries a signal string, sections or a vendor. */
bool consentd__has_signals(const consentd_context *in);

/* The Context message of `in`, built in `storage`; NULL when it says nothing, so nothing is sent. */
Consentd__V1__Context *consentd__build_context(const consentd_context *in, context_storage *storage);

/* ---- names.c ---- */

const char *consentd__error_code_name(int code);

#endif

/*
 * The connection of a handle: the socket (connect with a timeout, SO_RCVTIMEO/SO_SNDTIMEO),
 * the output and input buffers, framing (length prefixes, the frame limit), and errors (the
 * last message, and why a broken connection was closed).
 */
#define _GNU_SOURCE
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

#include "handle.h"

consentd_status consentd__set_error(consentd_client *c, consentd_status status, const char *format, ...) {
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


consentd_status consentd__fail(consentd_client *c, consentd_status status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(c->error, sizeof(c->error), format, args);
    va_end(args);
    snprintf(c->broken, sizeof(c->broken), "%.500s", c->error);
    drop_connection(c);
    return status;
}

consentd_status consentd__begin(consentd_client *c) {
    c->error[0] = '\0';
    c->server_code = 0;
    if (c->fd < 0) {
        return consentd__set_error(c, CONSENTD_ERR_CLOSED, "not connected to %s (%s); call consentd_reconnect()",
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
        return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "socket path \"%s\" is empty or longer than %zu bytes",
                         c->path, sizeof(address.sun_path) - 1);
    }
    memcpy(address.sun_path, c->path, length + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return consentd__set_error(c, CONSENTD_ERR_CONNECT, "cannot create a socket: %s", strerror(errno));
    int64_t deadline = now_ms() + c->timeout_ms;
    for (;;) {
        if (connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0) break;
        int error = errno;
        if (error == EINTR) continue;
        if (error == EAGAIN || error == EINPROGRESS) {
            /* The daemon's accept backlog is full: retry until the timeout. */
            if (now_ms() >= deadline) {
                close(fd);
                return consentd__set_error(c, CONSENTD_ERR_TIMEOUT, "cannot connect to %s within %d ms: the daemon is not accepting",
                                 c->path, c->timeout_ms);
            }
            struct timespec pause = {0, 1000000};
            nanosleep(&pause, NULL);
            continue;
        }
        close(fd);
        const char *hint = (error == ENOENT || error == ECONNREFUSED) ? " (is consentd running on this socket?)" : "";
        return consentd__set_error(c, CONSENTD_ERR_CONNECT, "cannot connect to %s: %s%s", c->path, strerror(error), hint);
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
    c->allocator.alloc = consentd__arena_alloc;
    c->allocator.free = consentd__arena_free;
    c->allocator.allocator_data = &c->arena;
    c->path = strdup(socket_path != NULL ? socket_path : "");
    if (c->path == NULL) {
        free(c);
        return CONSENTD_ERR_NOMEM;
    }
    *out = c;
    if (socket_path == NULL || timeout_ms < 0) {
        snprintf(c->broken, sizeof(c->broken), "never connected");
        return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_connect needs a socket path and a timeout >= 0");
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
    consentd__arena_release(&c->arena);
    consentd__intern_release(&c->strings);
    free(c->path);
    free(c);
}

consentd_status consentd_set_timeout(consentd_client *c, int timeout_ms) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (timeout_ms <= 0) return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "the timeout must be positive, not %d ms", timeout_ms);
    c->timeout_ms = timeout_ms;
    apply_timeout(c);
    return CONSENTD_OK;
}

consentd_status consentd_set_max_frame(consentd_client *c, size_t bytes) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (bytes < 16) return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "a frame limit of %zu bytes is too small", bytes);
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

bool consentd__reserve_out(consentd_client *c, size_t extra) {
    if (c->out_capacity - c->out_len >= extra) return true;
    size_t capacity = c->out_capacity ? c->out_capacity : 4096;
    while (capacity - c->out_len < extra) capacity *= 2;
    uint8_t *grown = realloc(c->out, capacity);
    if (grown == NULL) return false;
    c->out = grown;
    c->out_capacity = capacity;
    return true;
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
            return consentd__fail(c, CONSENTD_ERR_TIMEOUT, "no reply from %s within %d ms; connection closed", c->path, c->timeout_ms);
        }
        return consentd__fail(c, CONSENTD_ERR_IO, "reading from %s failed: %s", c->path, strerror(errno));
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
            if (grown == NULL) return consentd__fail(c, CONSENTD_ERR_NOMEM, "out of memory for the receive buffer");
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
            return consentd__fail(c, CONSENTD_ERR_TIMEOUT, "no %s from %s within %d ms; connection closed",
                        want_write ? "progress" : "reply", c->path, c->timeout_ms);
        }
        if (errno != EINTR) return consentd__fail(c, CONSENTD_ERR_IO, "waiting on %s failed: %s", c->path, strerror(errno));
    }
}

/* Writes every queued byte, reading replies meanwhile so a daemon that stops reading until its
 * answers are read cannot deadlock with us. */
consentd_status consentd__write_all(consentd_client *c) {
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
                if (c->eof) return consentd__fail(c, CONSENTD_ERR_IO, "the daemon at %s closed the connection while requests were being sent", c->path);
            }
            continue;
        }
        int error = n < 0 ? errno : EPIPE;
        return consentd__fail(c, CONSENTD_ERR_IO, "writing to %s failed: %s (did the daemon stop or restart?)", c->path, strerror(error));
    }
    c->out_len = c->out_sent = 0;
    return CONSENTD_OK;
}

/* Finds the next complete reply frame, reading as needed. */
consentd_status consentd__next_frame(consentd_client *c, const uint8_t **frame, size_t *length) {
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
            return consentd__fail(c, CONSENTD_ERR_PROTOCOL, "the reply stream from %s has an invalid length prefix (more than 10 varint bytes); connection closed", c->path);
        }
        if (complete_header) {
            if (size > c->max_frame) {
                return consentd__fail(c, CONSENTD_ERR_PROTOCOL, "reply frame of %llu bytes from %s exceeds the limit of %zu bytes; connection closed",
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
            consentd_status status = consentd__write_all(c);
            if (status != CONSENTD_OK) return status;
            continue;
        }
        if (c->eof) {
            if (available == 0) {
                return consentd__fail(c, CONSENTD_ERR_IO, "the daemon at %s closed the connection (stopped or restarted?)", c->path);
            }
            return consentd__fail(c, CONSENTD_ERR_IO, "the daemon at %s closed the connection in the middle of a reply (%zu bytes unread)",
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


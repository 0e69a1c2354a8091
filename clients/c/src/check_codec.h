/*
 * The client's hand-written codec for the hot path (check_codec.c), shared with the tests that
 * hold it to the golden wire vectors and to protobuf-c byte for byte. Not part of the public API.
 */
#ifndef CONSENTD_CHECK_CODEC_H
#define CONSENTD_CHECK_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consentd_client.h"

/* What a decision needs from Response{id, check}; strings point into the frame. */
typedef struct fast_check {
    uint64_t id;
    uint64_t decision, reason, consent_sequence, record_sequence, legal_basis;
    const uint8_t *rule;
    size_t rule_length;
    const uint8_t *revision;
    size_t revision_length;
} fast_check;

/* Writes `value` as a varint at p (room for 10 bytes); returns how many bytes it took. */
size_t consentd__put_varint(uint8_t *p, uint64_t value);

/* How many bytes `value` takes as a varint. */
size_t consentd__varint_size(uint64_t value);

/* Microseconds since the epoch as a protobuf Timestamp's seconds and (non-negative) nanos. */
int64_t consentd__split_micros(int64_t micros, int32_t *nanos);

/* Encodes a framed Request{id, check} into scratch; CONSENTD_ERR_NOMEM (with *out_length the
 * size needed) when it does not fit. */
consentd_status consentd__encode_check(uint8_t **out, size_t *out_length, uint8_t *scratch, size_t scratch_size,
                                       uint64_t id, const consentd_query *query, const consentd_context *context);

/* Reads Response{id, check}; false for anything else (the caller then uses protobuf-c). */
bool consentd__decode_check(const uint8_t *frame, size_t length, fast_check *out);

#endif

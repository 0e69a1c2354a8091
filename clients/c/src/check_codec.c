/*
 * The client's own codec for its hot path: varints, the Check request written field for field as
 * protobuf-c's pack writes it, and the Check answer read in place. The tests hold both to the
 * golden wire vectors and to protobuf-c (tests/test_vectors.c, tests/test_client.c).
 */
#include <string.h>

#include "check_codec.h"

size_t consentd__put_varint(uint8_t *p, uint64_t value) {
    size_t n = 0;
    while (value >= 0x80) {
        p[n++] = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    p[n++] = (uint8_t)value;
    return n;
}

/* Microseconds since the epoch as a protobuf Timestamp's seconds and (non-negative) nanos. */
int64_t consentd__split_micros(int64_t micros, int32_t *nanos) {
    int64_t seconds = micros / 1000000, rest = micros % 1000000;
    if (rest < 0) {
        rest += 1000000;
        seconds -= 1;
    }
    *nanos = (int32_t)(rest * 1000);
    return seconds;
}

/* ---- the Check request, encoded directly (the hot path of pipelined clients) ----
 * Field for field what protobuf-c's pack writes for the same Request (fields in number order,
 * proto3 defaults omitted); tests/test_client.c checks the bytes against it. */

size_t consentd__varint_size(uint64_t value) {
    size_t n = 1;
    while (value >= 0x80) {
        value >>= 7;
        n++;
    }
    return n;
}

static size_t string_field_size(size_t length) { return length == 0 ? 0 : 1 + consentd__varint_size(length) + length; }

static uint8_t *put_string_field(uint8_t *p, unsigned field, const char *text, size_t length) {
    if (length == 0) return p;
    *p++ = (uint8_t)(field << 3 | 2);
    p += consentd__put_varint(p, length);
    memcpy(p, text, length);
    return p + length;
}

static size_t text_length(const char *s) { return s != NULL ? strlen(s) : 0; }

/* The body of the packed gpp_sid field (field 8), as protobuf-c packs a proto3 repeated uint32. */
static size_t sections_size(const consentd_context *x) {
    size_t size = 0;
    for (size_t i = 0; x->gpp_sid != NULL && i < x->gpp_sid_count; i++) size += consentd__varint_size(x->gpp_sid[i]);
    return size;
}

static size_t context_size(const consentd_context *x, size_t jurisdiction, size_t channel, size_t *timestamp) {
    *timestamp = 0;
    if (x == NULL) return 0;
    size_t size = string_field_size(jurisdiction) + string_field_size(channel) + (x->gpc ? 2 : 0) + (x->usp_opt_out ? 2 : 0);
    size += string_field_size(text_length(x->tc_string)) + string_field_size(text_length(x->gpp_string)) +
            string_field_size(text_length(x->us_privacy)) + (x->tcf_vendor_id != 0 ? 1 + consentd__varint_size(x->tcf_vendor_id) : 0);
    size_t sections = sections_size(x);
    if (sections > 0) size += 1 + consentd__varint_size(sections) + sections;
    if (x->at_micros != 0) {
        int32_t nanos;
        int64_t seconds = consentd__split_micros(x->at_micros, &nanos);
        size_t t = (seconds != 0 ? 1 + consentd__varint_size((uint64_t)seconds) : 0) + (nanos != 0 ? 1 + consentd__varint_size((uint64_t)nanos) : 0);
        *timestamp = t;
        size += 1 + consentd__varint_size(t) + t;
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
                   (has_context ? 1 + consentd__varint_size(ctx) + ctx : 0);
    size_t request = (id != 0 ? 1 + consentd__varint_size(id) : 0) + 1 + consentd__varint_size(check) + check;
    size_t total = consentd__varint_size(request) + request;
    *out_length = total;
    if (total > scratch_size) return CONSENTD_ERR_NOMEM;
    uint8_t *p = scratch;
    p += consentd__put_varint(p, request);
    if (id != 0) {
        *p++ = 1 << 3;
        p += consentd__put_varint(p, id);
    }
    *p++ = 2 << 3 | 2;
    p += consentd__put_varint(p, check);
    p = put_string_field(p, 1, query->subject_id, subject);
    p = put_string_field(p, 2, query->purpose, purpose);
    p = put_string_field(p, 3, query->data_category, data);
    if (has_context) {
        *p++ = 4 << 3 | 2;
        p += consentd__put_varint(p, ctx);
        p = put_string_field(p, 1, context->jurisdiction, jurisdiction);
        if (context->gpc) {
            *p++ = 2 << 3;
            *p++ = 1;
        }
        if (context->at_micros != 0) {
            int32_t nanos;
            int64_t seconds = consentd__split_micros(context->at_micros, &nanos);
            *p++ = 3 << 3 | 2;
            p += consentd__put_varint(p, timestamp);
            if (seconds != 0) {
                *p++ = 1 << 3;
                p += consentd__put_varint(p, (uint64_t)seconds);
            }
            if (nanos != 0) {
                *p++ = 2 << 3;
                p += consentd__put_varint(p, (uint64_t)nanos);
            }
        }
        if (context->usp_opt_out) {
            *p++ = 4 << 3;
            *p++ = 1;
        }
        p = put_string_field(p, 5, context->channel, channel);
        p = put_string_field(p, 6, context->tc_string, text_length(context->tc_string));
        p = put_string_field(p, 7, context->gpp_string, text_length(context->gpp_string));
        size_t sections = sections_size(context);
        if (sections > 0) {
            *p++ = 8 << 3 | 2;
            p += consentd__put_varint(p, sections);
            for (size_t i = 0; i < context->gpp_sid_count; i++) p += consentd__put_varint(p, context->gpp_sid[i]);
        }
        p = put_string_field(p, 9, context->us_privacy, text_length(context->us_privacy));
        if (context->tcf_vendor_id != 0) {
            *p++ = 10 << 3;
            p += consentd__put_varint(p, context->tcf_vendor_id);
        }
    }
    *out = scratch;
    return (size_t)(p - scratch) == total ? CONSENTD_OK : CONSENTD_ERR_PROTOCOL;
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


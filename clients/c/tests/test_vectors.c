/*
 * The C codec against the golden wire vectors (Tests/ConsentWireTests/Vectors/, encoded by
 * Debian's protoc from their text form: scripts/generate-vectors.sh). No daemon needed.
 *
 * For every vector, protobuf-c must decode it and encode it back to the same bytes. For every
 * Check request, the client's own encoder (consentd__encode_check), fed the fields protobuf-c
 * read, must write exactly the vector's bytes behind a length prefix. For every Check answer,
 * the client's own decoder (consentd__decode_check) must read what protobuf-c reads.
 *
 *   test_vectors DIRECTORY
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consentd/v1/consentd.pb-c.h"
#include "consentd_client.h"
#include "../src/check_codec.h"
#include "check.h"


static uint8_t *read_file(const char *path, size_t *length) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    uint8_t *bytes = NULL;
    size_t capacity = 0, used = 0;
    for (;;) {
        if (used == capacity) {
            capacity = capacity ? capacity * 2 : 4096;
            uint8_t *grown = realloc(bytes, capacity);
            if (grown == NULL) { free(bytes); fclose(f); return NULL; }
            bytes = grown;
        }
        size_t n = fread(bytes + used, 1, capacity - used, f);
        used += n;
        if (n == 0) break;
    }
    fclose(f);
    *length = used;
    return bytes;
}

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* Microseconds of a Timestamp the client can express (it sends microseconds). */
static int64_t micros(const Google__Protobuf__Timestamp *t) { return t->seconds * 1000000 + t->nanos / 1000; }

/* A decoded vector, written back by protobuf-c, must be the vector's bytes (protoc wrote them). */
static void check_repacked(const char *name, const ProtobufCMessage *message, const uint8_t *bytes, size_t length) {
    size_t packed_size = protobuf_c_message_get_packed_size(message);
    uint8_t *packed = malloc(packed_size + 1);
    protobuf_c_message_pack(message, packed);
    CHECK(packed_size == length && memcmp(packed, bytes, length) == 0, "%s: protobuf-c writes other bytes than protoc", name);
    free(packed);
}

static void request_vector(const char *name, const uint8_t *bytes, size_t length) {
    Consentd__V1__Request *request = consentd__v1__request__unpack(NULL, length, bytes);
    CHECK(request != NULL, "%s: protobuf-c cannot decode it", name);
    if (request == NULL) return;
    check_repacked(name, &request->base, bytes, length);

    /* The client's own encoder covers Checks without explain and with a non-epoch instant (it
     * cannot ask to explain, and 0 µs means "no instant"). */
    Consentd__V1__CheckRequest *check = request->method_case == CONSENTD__V1__REQUEST__METHOD_CHECK ? request->check : NULL;
    bool expressible = check != NULL && !check->explain &&
                       (check->context == NULL || check->context->at == NULL || micros(check->context->at) != 0);
    if (expressible) {
        consentd_query query = {.subject_id = check->subject_id, .purpose = check->purpose, .data_category = check->data_category};
        consentd_context context = {0};
        if (check->context != NULL) {
            context.jurisdiction = check->context->jurisdiction;
            context.channel = check->context->channel;
            context.gpc = check->context->gpc;
            context.usp_opt_out = check->context->usp_opt_out;
            if (check->context->at != NULL) context.at_micros = micros(check->context->at);
            context.tc_string = check->context->tc_string;
            context.gpp_string = check->context->gpp_string;
            context.gpp_sid = check->context->gpp_sid;
            context.gpp_sid_count = check->context->n_gpp_sid;
            context.us_privacy = check->context->us_privacy;
            context.tcf_vendor_id = check->context->tcf_vendor_id;
        }
        uint8_t scratch[4096];
        uint8_t *frame = NULL;
        size_t frame_length = 0;
        consentd_status status = consentd__encode_check(&frame, &frame_length, scratch, sizeof(scratch), request->id, &query,
                                                        check->context != NULL ? &context : NULL);
        CHECK(status == CONSENTD_OK, "%s: the client's encoder failed (%s)", name, consentd_status_name(status));
        if (status == CONSENTD_OK) {
            /* The frame is the vector behind its length as a varint. */
            uint64_t announced = 0;
            size_t prefix = 0;
            while (prefix < frame_length && prefix < 10) {
                announced |= (uint64_t)(frame[prefix] & 0x7f) << (7 * prefix);
                if ((frame[prefix++] & 0x80) == 0) break;
            }
            CHECK(announced == length && frame_length == prefix + length && memcmp(frame + prefix, bytes, length) == 0,
                  "%s: the client's encoder writes other bytes than protoc", name);
        }
        printf("  %s: encoded by the client byte for byte\n", name);
    }
    consentd__v1__request__free_unpacked(request, NULL);
}

static bool same_bytes(const uint8_t *bytes, size_t length, const char *text) {
    return strlen(text) == length && (length == 0 || memcmp(bytes, text, length) == 0);
}

static void response_vector(const char *name, const uint8_t *bytes, size_t length) {
    Consentd__V1__Response *response = consentd__v1__response__unpack(NULL, length, bytes);
    CHECK(response != NULL, "%s: protobuf-c cannot decode it", name);
    if (response == NULL) return;
    check_repacked(name, &response->base, bytes, length);

    fast_check fast;
    bool decoded = consentd__decode_check(bytes, length, &fast);
    if (response->result_case == CONSENTD__V1__RESPONSE__RESULT_CHECK) {
        const Consentd__V1__CheckResponse *r = response->check;
        CHECK(decoded, "%s: the client's decoder refused a Check answer", name);
        if (decoded) {
            CHECK(fast.id == response->id, "%s: id %llu vs %llu", name, (unsigned long long)fast.id, (unsigned long long)response->id);
            CHECK(fast.decision == (uint64_t)r->decision && fast.reason == (uint64_t)r->reason && fast.legal_basis == (uint64_t)r->legal_basis,
                  "%s: decision/reason/basis differ", name);
            CHECK(fast.consent_sequence == r->consent_sequence, "%s: consent sequence differs", name);
            CHECK(fast.record_sequence == (r->consent_record != NULL ? r->consent_record->sequence : 0), "%s: record sequence differs", name);
            CHECK(same_bytes(fast.rule, fast.rule_length, r->rule_id), "%s: rule id differs", name);
            CHECK(same_bytes(fast.revision, fast.revision_length, r->policy_revision), "%s: revision differs", name);
        }
        printf("  %s: decoded by the client as protobuf-c decodes it\n", name);
    } else {
        CHECK(!decoded, "%s: the client's Check decoder took an answer that is not a Check", name);
    }
    consentd__v1__response__free_unpacked(response, NULL);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTOR-DIRECTORY\n", argv[0]);
        return 2;
    }
    DIR *directory = opendir(argv[1]);
    if (directory == NULL) {
        perror(argv[1]);
        return 2;
    }
    int vectors = 0;
    struct dirent *entry;
    while ((entry = readdir(directory)) != NULL) {
        const char *name = entry->d_name;
        size_t n = strlen(name);
        if (n < 6 || strcmp(name + n - 6, ".binpb") != 0) continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", argv[1], name);
        size_t length = 0;
        uint8_t *bytes = read_file(path, &length);
        CHECK(bytes != NULL, "%s: cannot read", path);
        if (bytes == NULL) continue;
        if (starts_with(name, "request-")) request_vector(name, bytes, length);
        else if (starts_with(name, "response-")) response_vector(name, bytes, length);
        else CHECK(false, "%s: a vector's name starts with request- or response-", name);
        free(bytes);
        vectors++;
    }
    closedir(directory);
    CHECK(vectors >= 10, "only %d vectors found in %s", vectors, argv[1]);
    printf("%d vectors, %d checks, %d failures\n", vectors, checks, failures);
    return failures == 0 ? 0 : 1;
}

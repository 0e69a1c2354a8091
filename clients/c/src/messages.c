/*
 * protobuf-c messages over the connection: requests packed behind their length, replies
 * unpacked into the handle's arena, and the one helper every call uses (build -> send -> expect).
 */
#include <stdio.h>
#include <string.h>

#include "check_codec.h"
#include "handle.h"

consentd_status consentd__append_request(consentd_client *c, const Consentd__V1__Request *request) {
    size_t size = consentd__v1__request__get_packed_size(request);
    if (!consentd__reserve_out(c, size + 10)) return consentd__set_error(c, CONSENTD_ERR_NOMEM, "out of memory for a %zu-byte request", size);
    c->out_len += consentd__put_varint(c->out + c->out_len, size);
    c->out_len += consentd__v1__request__pack(request, c->out + c->out_len);
    return CONSENTD_OK;
}

consentd_status consentd__decode_response(consentd_client *c, const uint8_t *frame, size_t length, Consentd__V1__Response **out) {
    consentd__arena_reset(&c->arena);
    Consentd__V1__Response *response = consentd__v1__response__unpack(&c->allocator, length, frame);
    if (response == NULL) {
        if (c->arena.failed) return consentd__fail(c, CONSENTD_ERR_NOMEM, "out of memory decoding a %zu-byte reply", length);
        return consentd__fail(c, CONSENTD_ERR_PROTOCOL, "a %zu-byte reply from %s is not a valid consentd.v1.Response; connection closed",
                    length, c->path);
    }
    if (response->result_case == CONSENTD__V1__RESPONSE__RESULT_ERROR) {
        const Consentd__V1__Error *error = response->error;
        c->server_code = (int)error->code;
        if (response->id == 0) {
            /* A frame-level error: the daemon closes the connection after it. */
            consentd_status closed = consentd__fail(c, CONSENTD_ERR_SERVER, "consentd rejected the request stream: %s: %s; connection closed",
                                          consentd__error_code_name((int)error->code), error->message ? error->message : "");
            c->server_code = (int)error->code;
            return closed;
        }
    }
    *out = response;
    return CONSENTD_OK;
}

consentd_status consentd__server_error(consentd_client *c, const Consentd__V1__Response *response) {
    c->server_code = (int)response->error->code;
    return consentd__set_error(c, CONSENTD_ERR_SERVER, "consentd refused request %llu: %s: %s", (unsigned long long)response->id,
                     consentd__error_code_name((int)response->error->code), response->error->message ? response->error->message : "");
}

consentd_status consentd__expect(consentd_client *c, const Consentd__V1__Response *response, uint64_t id,
                              Consentd__V1__Response__ResultCase kind, const char *kind_name) {
    if (response->id != id) {
        return consentd__fail(c, CONSENTD_ERR_PROTOCOL, "reply to request %llu while waiting for request %llu; connection closed",
                    (unsigned long long)response->id, (unsigned long long)id);
    }
    if (response->result_case == CONSENTD__V1__RESPONSE__RESULT_ERROR) return consentd__server_error(c, response);
    if (response->result_case != kind) {
        return consentd__fail(c, CONSENTD_ERR_PROTOCOL, "reply to request %llu is not a %s (result case %d); connection closed",
                    (unsigned long long)id, kind_name, (int)response->result_case);
    }
    return CONSENTD_OK;
}

consentd_status consentd__call(consentd_client *c, Consentd__V1__Request *request, Consentd__V1__Response__ResultCase kind,
                               const char *kind_name, Consentd__V1__Response **out) {
    request->id = c->next_id++;
    consentd_status status = consentd__append_request(c, request);
    if (status != CONSENTD_OK) return status;
    const uint8_t *frame = NULL;
    size_t length = 0;
    if ((status = consentd__next_frame(c, &frame, &length)) != CONSENTD_OK) return status;
    if ((status = consentd__decode_response(c, frame, length, out)) != CONSENTD_OK) return status;
    return consentd__expect(c, *out, request->id, kind, kind_name);
}

void consentd__set_timestamp(Google__Protobuf__Timestamp *t, int64_t micros) {
    google__protobuf__timestamp__init(t);
    int32_t nanos;
    t->seconds = consentd__split_micros(micros, &nanos);
    t->nanos = nanos;
}

char *consentd__text(const char *s) { return (char *)(s != NULL ? s : protobuf_c_empty_string); }

static bool present(const char *s) { return s != NULL && *s != '\0'; }

bool consentd__has_signals(const consentd_context *in) {
    return present(in->tc_string) || present(in->gpp_string) || in->gpp_sid_count > 0 || present(in->us_privacy) || in->tcf_vendor_id != 0;
}

Consentd__V1__Context *consentd__build_context(const consentd_context *in, context_storage *storage) {
    if (in == NULL) return NULL;
    bool empty = !present(in->jurisdiction) && !present(in->channel) && !in->gpc && !in->usp_opt_out && in->at_micros == 0 &&
                 !consentd__has_signals(in);
    if (empty) return NULL;
    consentd__v1__context__init(&storage->context);
    storage->context.jurisdiction = consentd__text(in->jurisdiction);
    storage->context.channel = consentd__text(in->channel);
    storage->context.gpc = in->gpc;
    storage->context.usp_opt_out = in->usp_opt_out;
    storage->context.tc_string = consentd__text(in->tc_string);
    storage->context.gpp_string = consentd__text(in->gpp_string);
    storage->context.n_gpp_sid = in->gpp_sid != NULL ? in->gpp_sid_count : 0;
    storage->context.gpp_sid = (uint32_t *)in->gpp_sid;
    storage->context.us_privacy = consentd__text(in->us_privacy);
    storage->context.tcf_vendor_id = in->tcf_vendor_id;
    if (in->at_micros != 0) {
        consentd__set_timestamp(&storage->at, in->at_micros);
        storage->context.at = &storage->at;
    }
    return &storage->context;
}


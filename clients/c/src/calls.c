/*
 * The public calls. Each builds its request, sends it and expects its answer through
 * consentd__call (messages.c); Check and pipelined checks use the client's own codec
 * (check_codec.c) and fall back to protobuf-c for anything else.
 */
#include <stdlib.h>
#include <string.h>

#include "check_codec.h"
#include "handle.h"

static bool valid_query(const consentd_query *q) {
    return q != NULL && q->subject_id != NULL && q->purpose != NULL && q->data_category != NULL;
}

static consentd_status queue_check(consentd_client *c, const consentd_query *query, const consentd_context *context, uint64_t id) {
    size_t needed = 0;
    uint8_t *frame = NULL;
    if (!consentd__reserve_out(c, 512)) return consentd__set_error(c, CONSENTD_ERR_NOMEM, "out of memory for a request");
    consentd_status status = consentd__encode_check(&frame, &needed, c->out + c->out_len, c->out_capacity - c->out_len, id, query, context);
    if (status == CONSENTD_ERR_NOMEM) {
        if (!consentd__reserve_out(c, needed)) return consentd__set_error(c, CONSENTD_ERR_NOMEM, "out of memory for a %zu-byte request", needed);
        status = consentd__encode_check(&frame, &needed, c->out + c->out_len, c->out_capacity - c->out_len, id, query, context);
    }
    if (status != CONSENTD_OK) return consentd__set_error(c, status, "internal error encoding a Check");
    c->out_len += needed;
    return CONSENTD_OK;
}


/* The revision changes only on a policy reload: compare with the last one before hashing. */
static const char *intern_revision(consentd_client *c, const char *text) {
    if (c->last_revision != NULL && strcmp(c->last_revision, text) == 0) return c->last_revision;
    const char *interned = consentd__intern(&c->strings, text);
    if (interned != NULL) c->last_revision = interned;
    return interned;
}

static consentd_status fill_decision(consentd_client *c, const Consentd__V1__CheckResponse *r, consentd_decision *out) {
    const char *rule = consentd__intern(&c->strings, r->rule_id);
    const char *revision = intern_revision(c, r->policy_revision);
    if (rule == NULL || revision == NULL) return consentd__set_error(c, CONSENTD_ERR_NOMEM, "out of memory interning a rule id");
    out->decision = (consentd_verdict)r->decision;
    out->reason = (consentd_reason)r->reason;
    out->rule_id = rule;
    out->policy_revision = revision;
    out->consent_sequence = r->consent_sequence;
    out->record_sequence = r->consent_record != NULL ? r->consent_record->sequence : 0;
    out->legal_basis = (consentd_legal_basis)r->legal_basis;
    return CONSENTD_OK;
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
    const char *interned = consentd__intern(&c->strings, text);
    if (text != small) free(text);
    if (revision && interned != NULL) c->last_revision = interned;
    return interned;
}

static consentd_status fill_fast(consentd_client *c, const fast_check *fast, consentd_decision *out) {
    const char *rule = intern_bytes(c, fast->rule, fast->rule_length, false);
    const char *revision = intern_bytes(c, fast->revision, fast->revision_length, true);
    if (rule == NULL || revision == NULL) return consentd__set_error(c, CONSENTD_ERR_NOMEM, "out of memory interning a rule id");
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
    consentd_status status = consentd__begin(c);
    if (status != CONSENTD_OK) return status;
    if (c->outstanding > 0) {
        return consentd__set_error(c, CONSENTD_ERR_BUSY, "%zu pipelined checks are outstanding; collect them with consentd_next() first",
                         c->outstanding);
    }
    return CONSENTD_OK;
}

consentd_status consentd_check(consentd_client *c, const consentd_query *query, const consentd_context *context,
                               consentd_decision *out) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (!valid_query(query) || out == NULL) {
        return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_check needs a query with subject_id, purpose and data_category, and an output");
    }
    consentd_status status = begin_call(c);
    if (status != CONSENTD_OK) return status;
    uint64_t id = c->next_id++;
    if ((status = queue_check(c, query, context, id)) != CONSENTD_OK) return status;
    const uint8_t *frame = NULL;
    size_t length = 0;
    if ((status = consentd__next_frame(c, &frame, &length)) != CONSENTD_OK) return status;
    fast_check fast;
    if (consentd__decode_check(frame, length, &fast) && fast.id == id) return fill_fast(c, &fast, out);
    Consentd__V1__Response *response = NULL;
    if ((status = consentd__decode_response(c, frame, length, &response)) != CONSENTD_OK) return status;
    if ((status = consentd__expect(c, response, id, CONSENTD__V1__RESPONSE__RESULT_CHECK, "CheckResponse")) != CONSENTD_OK) return status;
    return fill_decision(c, response->check, out);
}

consentd_status consentd_check_batch(consentd_client *c, const consentd_query *queries, size_t count,
                                     const consentd_context *context, consentd_decision *out) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (count == 0) return begin_call(c);
    if (queries == NULL || out == NULL) return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_check_batch needs queries and an output array");
    for (size_t i = 0; i < count; i++) {
        if (!valid_query(&queries[i])) return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "query %zu lacks subject_id, purpose or data_category", i);
    }
    consentd_status status = begin_call(c);
    if (status != CONSENTD_OK) return status;
    Consentd__V1__CheckItem *items = malloc(count * sizeof(Consentd__V1__CheckItem));
    Consentd__V1__CheckItem **pointers = malloc(count * sizeof(Consentd__V1__CheckItem *));
    if (items == NULL || pointers == NULL) {
        free(items);
        free(pointers);
        return consentd__set_error(c, CONSENTD_ERR_NOMEM, "out of memory for a batch of %zu", count);
    }
    for (size_t i = 0; i < count; i++) {
        consentd__v1__check_item__init(&items[i]);
        items[i].subject_id = consentd__text(queries[i].subject_id);
        items[i].purpose = consentd__text(queries[i].purpose);
        items[i].data_category = consentd__text(queries[i].data_category);
        pointers[i] = &items[i];
    }
    context_storage storage;
    Consentd__V1__CheckBatchRequest batch;
    consentd__v1__check_batch_request__init(&batch);
    batch.n_items = count;
    batch.items = pointers;
    batch.context = consentd__build_context(context, &storage);
    Consentd__V1__Request request;
    consentd__v1__request__init(&request);
    request.method_case = CONSENTD__V1__REQUEST__METHOD_CHECK_BATCH;
    request.check_batch = &batch;
    Consentd__V1__Response *response = NULL;
    status = consentd__call(c, &request, CONSENTD__V1__RESPONSE__RESULT_CHECK_BATCH, "CheckBatchResponse", &response);
    free(items);
    free(pointers);
    if (status != CONSENTD_OK) return status;
    const Consentd__V1__CheckBatchResponse *r = response->check_batch;
    if (r->n_results != count) {
        return consentd__fail(c, CONSENTD_ERR_PROTOCOL, "a batch of %zu got %zu results; connection closed", count, r->n_results);
    }
    const char *revision = intern_revision(c, r->policy_revision);
    if (revision == NULL) return consentd__set_error(c, CONSENTD_ERR_NOMEM, "out of memory interning a revision");
    for (size_t i = 0; i < count; i++) {
        const Consentd__V1__CheckResult *result = r->results[i];
        const char *rule = consentd__intern(&c->strings, result->rule_id);
        if (rule == NULL) return consentd__set_error(c, CONSENTD_ERR_NOMEM, "out of memory interning a rule id");
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
        return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_submit_check needs a query with subject_id, purpose and data_category");
    }
    consentd_status status = consentd__begin(c);
    if (status != CONSENTD_OK) return status;
    uint64_t id = c->next_id++;
    if ((status = queue_check(c, query, context, id)) != CONSENTD_OK) return status;
    c->outstanding++;
    if (id_out != NULL) *id_out = id;
    if (c->out_len >= FLUSH_THRESHOLD) return consentd__write_all(c);
    return CONSENTD_OK;
}

consentd_status consentd_flush(consentd_client *c) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    consentd_status status = consentd__begin(c);
    if (status != CONSENTD_OK) return status;
    return consentd__write_all(c);
}

consentd_status consentd_next(consentd_client *c, uint64_t *id_out, consentd_decision *out) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (out == NULL) return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_next needs an output");
    consentd_status status = consentd__begin(c);
    if (status != CONSENTD_OK) return status;
    if (c->outstanding == 0) return consentd__set_error(c, CONSENTD_ERR_EMPTY, "no pipelined checks are outstanding");
    const uint8_t *frame = NULL;
    size_t length = 0;
    if ((status = consentd__next_frame(c, &frame, &length)) != CONSENTD_OK) return status;
    fast_check fast;
    if (consentd__decode_check(frame, length, &fast)) {
        c->outstanding--;
        if (id_out != NULL) *id_out = fast.id;
        return fill_fast(c, &fast, out);
    }
    Consentd__V1__Response *response = NULL;
    if ((status = consentd__decode_response(c, frame, length, &response)) != CONSENTD_OK) return status;
    c->outstanding--;
    if (id_out != NULL) *id_out = response->id;
    if (response->result_case == CONSENTD__V1__RESPONSE__RESULT_ERROR) return consentd__server_error(c, response);
    if (response->result_case != CONSENTD__V1__RESPONSE__RESULT_CHECK) {
        return consentd__fail(c, CONSENTD_ERR_PROTOCOL, "reply to request %llu is not a CheckResponse (result case %d); connection closed",
                    (unsigned long long)response->id, (int)response->result_case);
    }
    return fill_decision(c, response->check, out);
}

consentd_status consentd_record_consent(consentd_client *c, const consentd_record *records, size_t count,
                                        const char *idempotency_key, uint64_t *sequences, uint64_t *consent_sequence) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (records == NULL || count == 0) return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_record_consent needs at least one record");
    for (size_t i = 0; i < count; i++) {
        if (records[i].subject_id == NULL || records[i].purpose == NULL ||
            (records[i].choice != CONSENTD_CHOICE_GRANT && records[i].choice != CONSENTD_CHOICE_DENY)) {
            return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "record %zu needs subject_id, purpose and a choice (grant or deny)", i);
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
        return consentd__set_error(c, CONSENTD_ERR_NOMEM, "out of memory for %zu records", count);
    }
    for (size_t i = 0; i < count; i++) {
        const consentd_record *in = &records[i];
        Consentd__V1__ConsentRecord *m = &messages[i];
        consentd__v1__consent_record__init(m);
        m->subject_id = consentd__text(in->subject_id);
        m->purpose = consentd__text(in->purpose);
        m->data_category = consentd__text(in->data_category);
        m->choice = (Consentd__V1__Choice)in->choice;
        if (in->recorded_at_micros != 0) {
            consentd__set_timestamp(&times[2 * i], in->recorded_at_micros);
            m->recorded_at = &times[2 * i];
        }
        if (in->expires_at_micros != 0) {
            consentd__set_timestamp(&times[2 * i + 1], in->expires_at_micros);
            m->expires_at = &times[2 * i + 1];
        }
        m->legal_basis = (Consentd__V1__LegalBasis)in->legal_basis;
        m->source = consentd__text(in->source);
        m->jurisdiction = consentd__text(in->jurisdiction);
        m->evidence = consentd__text(in->evidence);
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
    record.idempotency_key = consentd__text(idempotency_key);
    Consentd__V1__Request request;
    consentd__v1__request__init(&request);
    request.method_case = CONSENTD__V1__REQUEST__METHOD_RECORD_CONSENT;
    request.record_consent = &record;
    Consentd__V1__Response *response = NULL;
    status = consentd__call(c, &request, CONSENTD__V1__RESPONSE__RESULT_RECORD_CONSENT, "RecordConsentResponse", &response);
    free(messages);
    free(pointers);
    free(times);
    if (status != CONSENTD_OK) return status;
    const Consentd__V1__RecordConsentResponse *r = response->record_consent;
    if (r->n_sequences != count) {
        return consentd__fail(c, CONSENTD_ERR_PROTOCOL, "%zu records got %zu sequences; connection closed", count, r->n_sequences);
    }
    if (sequences != NULL) memcpy(sequences, r->sequences, count * sizeof(uint64_t));
    if (consent_sequence != NULL) *consent_sequence = r->consent_sequence;
    return CONSENTD_OK;
}

consentd_status consentd_erase_subject(consentd_client *c, const char *subject_id, uint64_t *tombstone_sequence,
                                       uint32_t *erased_records) {
    if (c == NULL) return CONSENTD_ERR_ARGUMENT;
    if (subject_id == NULL || *subject_id == '\0') return consentd__set_error(c, CONSENTD_ERR_ARGUMENT, "consentd_erase_subject needs a subject id");
    consentd_status status = begin_call(c);
    if (status != CONSENTD_OK) return status;
    Consentd__V1__EraseSubjectRequest erase;
    consentd__v1__erase_subject_request__init(&erase);
    erase.subject_id = consentd__text(subject_id);
    Consentd__V1__Request request;
    consentd__v1__request__init(&request);
    request.method_case = CONSENTD__V1__REQUEST__METHOD_ERASE_SUBJECT;
    request.erase_subject = &erase;
    Consentd__V1__Response *response = NULL;
    if ((status = consentd__call(c, &request, CONSENTD__V1__RESPONSE__RESULT_ERASE_SUBJECT, "EraseSubjectResponse", &response)) != CONSENTD_OK) {
        return status;
    }
    const Consentd__V1__Erasure *tombstone = response->erase_subject->tombstone;
    if (tombstone_sequence != NULL) *tombstone_sequence = tombstone != NULL ? tombstone->sequence : 0;
    if (erased_records != NULL) *erased_records = tombstone != NULL ? tombstone->record_count : 0;
    return CONSENTD_OK;
}


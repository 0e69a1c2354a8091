/*
 * Tests of the C client: against a real consentd (started here from $CONSENTD with the shipped
 * policies in $POLICIES, a fresh store and socket in a temporary directory), and against fake
 * servers on a Unix socket that answer with broken byte streams.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "consentd/v1/consentd.pb-c.h"
#include "consentd_client.h"
#include "../src/check_codec.h"
#include "check.h"


#define CHECK_STATUS(client, status, expected)                                                        \
    CHECK((status) == (expected), "got %s (%s), expected %s", consentd_status_name(status),          \
          consentd_error_message(client), consentd_status_name(expected))

static void sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* ---- a real daemon ---- */

static char directory[256];
static char socket_path[300];
static char store_path[300];

static pid_t start_daemon(void) {
    const char *binary = getenv("CONSENTD");
    const char *policies = getenv("POLICIES");
    pid_t pid = fork();
    if (pid == 0) {
        char log[300];
        snprintf(log, sizeof(log), "%s/consentd.log", directory);
        FILE *out = freopen(log, "a", stderr);
        (void)out;
        execl(binary, binary, "--socket", socket_path, "--store", store_path, "--policies", policies,
              "--log-level", "warning", (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", binary, strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Connects (or reconnects) once the daemon accepts, for at most 60 s. */
static consentd_status connect_when_up(consentd_client **client, pid_t daemon) {
    consentd_status status = CONSENTD_ERR_CONNECT;
    for (int attempt = 0; attempt < 600; attempt++) {
        if (*client == NULL) {
            status = consentd_connect(client, socket_path, 5000);
        } else {
            status = consentd_reconnect(*client);
        }
        if (status == CONSENTD_OK) return status;
        int wstatus;
        if (waitpid(daemon, &wstatus, WNOHANG) == daemon) {
            fprintf(stderr, "consentd exited during start-up; see %s/consentd.log\n", directory);
            return status;
        }
        sleep_ms(100);
    }
    return status;
}

static void stop_daemon(pid_t pid) {
    kill(pid, SIGTERM);
    int wstatus;
    waitpid(pid, &wstatus, 0);
}

static consentd_status grant(consentd_client *client, const char *subject, const char *purpose, consentd_choice choice) {
    consentd_record record = {.subject_id = subject, .purpose = purpose, .choice = choice, .jurisdiction = "DE",
                              .has_notice_version = true, .notice_version = 3};
    return consentd_record_consent(client, &record, 1, NULL, NULL, NULL);
}

static const char *PURPOSE = "marketing.advertising.measurement";
static const char *DATA = "user.behavior";
static const consentd_context GERMANY = {.jurisdiction = "DE"};

static void test_round_trip_and_withdrawal(consentd_client *client) {
    consentd_query query = {.subject_id = "c-alice", .purpose = PURPOSE, .data_category = DATA};
    consentd_decision decision;
    consentd_status status = consentd_check(client, &query, &GERMANY, &decision);
    CHECK_STATUS(client, status, CONSENTD_OK);
    CHECK(decision.decision == CONSENTD_DENY, "no consent yet: %s", consentd_verdict_name(decision.decision));
    CHECK(decision.reason == CONSENTD_REASON_NO_CONSENT, "reason %s", consentd_reason_name(decision.reason));
    CHECK(decision.policy_revision[0] != '\0', "a revision is reported");

    uint64_t sequence = 0, consent_sequence = 0;
    consentd_record record = {.subject_id = "c-alice", .purpose = PURPOSE, .choice = CONSENTD_CHOICE_GRANT,
                              .jurisdiction = "DE", .source = "c-test", .has_notice_version = true, .notice_version = 3};
    status = consentd_record_consent(client, &record, 1, "c-alice-1", &sequence, &consent_sequence);
    CHECK_STATUS(client, status, CONSENTD_OK);
    CHECK(sequence > 0 && consent_sequence >= sequence, "sequence %llu, index at %llu", (unsigned long long)sequence,
          (unsigned long long)consent_sequence);

    status = consentd_check(client, &query, &GERMANY, &decision);
    CHECK_STATUS(client, status, CONSENTD_OK);
    CHECK(decision.decision == CONSENTD_ALLOW, "granted: %s %s", consentd_verdict_name(decision.decision),
          consentd_reason_name(decision.reason));
    CHECK(decision.reason == CONSENTD_REASON_CONSENT_GRANTED, "reason %s", consentd_reason_name(decision.reason));
    CHECK(strcmp(decision.rule_id, "eea-ad-measurement") == 0, "rule %s", decision.rule_id);
    CHECK(decision.record_sequence == sequence, "relied on record %llu, recorded %llu",
          (unsigned long long)decision.record_sequence, (unsigned long long)sequence);
    CHECK(decision.consent_sequence >= sequence, "decision read sequence %llu", (unsigned long long)decision.consent_sequence);

    /* The same idempotency key stores nothing new. */
    uint64_t again = 0;
    status = consentd_record_consent(client, &record, 1, "c-alice-1", &again, NULL);
    CHECK_STATUS(client, status, CONSENTD_OK);
    CHECK(again == sequence, "idempotent replay returns the first sequence: %llu vs %llu", (unsigned long long)again,
          (unsigned long long)sequence);

    /* A withdrawal flips the very next check. */
    CHECK_STATUS(client, grant(client, "c-alice", PURPOSE, CONSENTD_CHOICE_DENY), CONSENTD_OK);
    status = consentd_check(client, &query, &GERMANY, &decision);
    CHECK_STATUS(client, status, CONSENTD_OK);
    CHECK(decision.decision == CONSENTD_DENY && decision.reason == CONSENTD_REASON_CONSENT_DENIED,
          "withdrawn: %s %s", consentd_verdict_name(decision.decision), consentd_reason_name(decision.reason));

    /* Fail closed on an unknown purpose. */
    consentd_query unknown = {.subject_id = "c-alice", .purpose = "no.such.purpose", .data_category = DATA};
    status = consentd_check(client, &unknown, &GERMANY, &decision);
    CHECK_STATUS(client, status, CONSENTD_OK);
    CHECK(decision.decision == CONSENTD_DENY && decision.reason == CONSENTD_REASON_UNKNOWN_PURPOSE, "unknown purpose: %s",
          consentd_reason_name(decision.reason));

    /* A request the daemon refuses leaves the connection usable. */
    consentd_query empty = {.subject_id = "", .purpose = PURPOSE, .data_category = DATA};
    status = consentd_check(client, &empty, &GERMANY, &decision);
    if (status == CONSENTD_ERR_SERVER) {
        CHECK(consentd_server_code(client) == CONSENTD__V1__ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT, "code %d",
              consentd_server_code(client));
    } else {
        CHECK_STATUS(client, status, CONSENTD_OK);
        CHECK(decision.decision == CONSENTD_DENY, "an empty subject is denied");
    }
    CHECK(consentd_is_connected(client), "still connected after a refused request");

    /* Erasure. */
    uint64_t tombstone = 0;
    uint32_t erased = 0;
    status = consentd_erase_subject(client, "c-alice", &tombstone, &erased);
    CHECK_STATUS(client, status, CONSENTD_OK);
    CHECK(tombstone > 0 && erased == 2, "tombstone %llu, %u erased", (unsigned long long)tombstone, erased);
    status = consentd_check(client, &query, &GERMANY, &decision);
    CHECK(status == CONSENTD_OK && decision.reason == CONSENTD_REASON_NO_CONSENT, "after erasure: %s",
          consentd_reason_name(decision.reason));
}

enum { PIPELINED = 10000, SUBJECTS = 100 };

static void test_pipelined(consentd_client *client) {
    consentd_record records[SUBJECTS / 2];
    char names[SUBJECTS][32];
    for (int i = 0; i < SUBJECTS; i++) snprintf(names[i], sizeof(names[i]), "pipe-%d", i);
    for (int i = 0; i < SUBJECTS / 2; i++) {
        records[i] = (consentd_record){.subject_id = names[2 * i], .purpose = PURPOSE, .choice = CONSENTD_CHOICE_GRANT,
                                       .jurisdiction = "DE", .has_notice_version = true, .notice_version = 3};
    }
    uint64_t sequences[SUBJECTS / 2];
    consentd_status status = consentd_record_consent(client, records, SUBJECTS / 2, NULL, sequences, NULL);
    CHECK_STATUS(client, status, CONSENTD_OK);

    /* expected[id - first]: 1 allow (granted), 2 deny NO_CONSENT, 3 deny UNKNOWN_PURPOSE */
    static unsigned char expected[PIPELINED];
    static unsigned char seen[PIPELINED];
    memset(seen, 0, sizeof(seen));
    uint64_t first = 0;
    for (int i = 0; i < PIPELINED; i++) {
        int subject = (i * 7) % SUBJECTS;
        bool unknown = i % 13 == 0;
        consentd_query query = {.subject_id = names[subject], .purpose = unknown ? "no.such.purpose" : PURPOSE, .data_category = DATA};
        uint64_t id = 0;
        status = consentd_submit_check(client, &query, &GERMANY, &id);
        if (status != CONSENTD_OK) {
            CHECK_STATUS(client, status, CONSENTD_OK);
            return;
        }
        if (i == 0) first = id;
        CHECK(id == first + (uint64_t)i, "ids are consecutive");
        expected[i] = unknown ? 3 : (subject % 2 == 0 ? 1 : 2);
    }
    CHECK(consentd_outstanding(client) == PIPELINED, "%zu outstanding", consentd_outstanding(client));
    /* A blocking call while checks are outstanding is refused, not interleaved. */
    consentd_decision decision;
    consentd_query query = {.subject_id = "x", .purpose = PURPOSE, .data_category = DATA};
    CHECK_STATUS(client, consentd_check(client, &query, NULL, &decision), CONSENTD_ERR_BUSY);
    status = consentd_flush(client);
    CHECK_STATUS(client, status, CONSENTD_OK);
    int matched = 0;
    for (int i = 0; i < PIPELINED; i++) {
        uint64_t id = 0;
        status = consentd_next(client, &id, &decision);
        if (status != CONSENTD_OK) {
            CHECK_STATUS(client, status, CONSENTD_OK);
            return;
        }
        uint64_t index = id - first;
        if (id < first || index >= PIPELINED || seen[index]) {
            CHECK(false, "unexpected or repeated id %llu", (unsigned long long)id);
            continue;
        }
        seen[index] = 1;
        int want = expected[index];
        bool ok = (want == 1 && decision.decision == CONSENTD_ALLOW && decision.reason == CONSENTD_REASON_CONSENT_GRANTED) ||
                  (want == 2 && decision.decision == CONSENTD_DENY && decision.reason == CONSENTD_REASON_NO_CONSENT) ||
                  (want == 3 && decision.decision == CONSENTD_DENY && decision.reason == CONSENTD_REASON_UNKNOWN_PURPOSE);
        if (ok) matched++;
    }
    CHECK(matched == PIPELINED, "%d of %d pipelined answers matched their request", matched, PIPELINED);
    CHECK(consentd_outstanding(client) == 0, "nothing outstanding");
    CHECK_STATUS(client, consentd_next(client, NULL, &decision), CONSENTD_ERR_EMPTY);
}

static void test_batch(consentd_client *client) {
    enum { N = 300 };
    char names[N][32];
    consentd_query queries[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "pipe-%d", (i * 3) % SUBJECTS);
        queries[i] = (consentd_query){.subject_id = names[i], .purpose = i % 11 == 0 ? "no.such.purpose" : PURPOSE, .data_category = DATA};
    }
    consentd_decision batch[N];
    consentd_status status = consentd_check_batch(client, queries, N, &GERMANY, batch);
    CHECK_STATUS(client, status, CONSENTD_OK);
    if (status != CONSENTD_OK) return;
    int same = 0;
    for (int i = 0; i < N; i++) {
        consentd_decision single;
        if (consentd_check(client, &queries[i], &GERMANY, &single) != CONSENTD_OK) continue;
        if (single.decision == batch[i].decision && single.reason == batch[i].reason &&
            strcmp(single.rule_id, batch[i].rule_id) == 0 && single.record_sequence == batch[i].record_sequence &&
            single.policy_revision == batch[i].policy_revision) {
            same++;
        }
    }
    CHECK(same == N, "%d of %d batch answers equal the single checks", same, N);
    int allowed = 0;
    for (int i = 0; i < N; i++) allowed += batch[i].decision == CONSENTD_ALLOW;
    CHECK(allowed > 0 && allowed < N, "the batch mixes allow (%d) and deny", allowed);
}

static void test_restart(consentd_client **client, pid_t *daemon) {
    stop_daemon(*daemon);
    consentd_query query = {.subject_id = "pipe-0", .purpose = PURPOSE, .data_category = DATA};
    consentd_decision decision;
    consentd_status status = consentd_check(*client, &query, &GERMANY, &decision);
    CHECK(status == CONSENTD_ERR_IO, "a stopped daemon is reported as a broken connection: %s (%s)", consentd_status_name(status),
          consentd_error_message(*client));
    CHECK(!consentd_is_connected(*client), "the handle is disconnected");
    status = consentd_check(*client, &query, &GERMANY, &decision);
    CHECK_STATUS(*client, status, CONSENTD_ERR_CLOSED);
    CHECK(strstr(consentd_error_message(*client), "consentd_reconnect") != NULL, "the message says what to do: %s",
          consentd_error_message(*client));
    status = consentd_reconnect(*client);
    CHECK_STATUS(*client, status, CONSENTD_ERR_CONNECT);

    *daemon = start_daemon();
    status = connect_when_up(client, *daemon);
    CHECK_STATUS(*client, status, CONSENTD_OK);
    status = consentd_check(*client, &query, &GERMANY, &decision);
    CHECK_STATUS(*client, status, CONSENTD_OK);
    CHECK(decision.decision == CONSENTD_ALLOW, "the restarted daemon still knows the grant: %s",
          consentd_reason_name(decision.reason));
}

/* ---- fake servers with broken reply streams ---- */

typedef struct fake_server {
    int listener;
    const unsigned char *reply;
    size_t reply_length;
    bool close_after;  /* close the connection after the reply; otherwise hold it open */
    int hold_ms;
} fake_server;

static void *serve_once(void *argument) {
    fake_server *server = argument;
    int fd = accept(server->listener, NULL, NULL);
    if (fd < 0) return NULL;
    unsigned char request[4096];
    ssize_t n = read(fd, request, sizeof(request)); /* wait for the request */
    (void)n;
    if (server->reply_length > 0) {
        ssize_t written = write(fd, server->reply, server->reply_length);
        (void)written;
    }
    if (!server->close_after) sleep_ms(server->hold_ms);
    close(fd);
    return NULL;
}

static size_t encode_response(const Consentd__V1__Response *response, unsigned char *out) {
    size_t size = consentd__v1__response__get_packed_size(response);
    size_t n = 0;
    size_t value = size;
    while (value >= 0x80) {
        out[n++] = (unsigned char)(value | 0x80);
        value >>= 7;
    }
    out[n++] = (unsigned char)value;
    return n + consentd__v1__response__pack(response, out + n);
}

static void fake_case(const char *name, const unsigned char *reply, size_t length, bool close_after,
                      consentd_status expected_status, const char *expected_text, bool still_connected) {
    char path[300];
    snprintf(path, sizeof(path), "%s/fake.sock", directory);
    unlink(path);
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%.100s", path);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(listener, 4) != 0) {
        CHECK(false, "%s: cannot listen on %s: %s", name, path, strerror(errno));
        close(listener);
        return;
    }
    fake_server server = {.listener = listener, .reply = reply, .reply_length = length, .close_after = close_after, .hold_ms = 600};
    pthread_t thread;
    pthread_create(&thread, NULL, serve_once, &server);

    consentd_client *client = NULL;
    consentd_status status = consentd_connect(&client, path, 300);
    CHECK_STATUS(client, status, CONSENTD_OK);
    consentd_query query = {.subject_id = "s", .purpose = PURPOSE, .data_category = DATA};
    consentd_decision decision;
    status = consentd_check(client, &query, NULL, &decision);
    CHECK(status == expected_status, "%s: got %s (%s), expected %s", name, consentd_status_name(status),
          consentd_error_message(client), consentd_status_name(expected_status));
    CHECK(strstr(consentd_error_message(client), expected_text) != NULL, "%s: message \"%s\" mentions \"%s\"", name,
          consentd_error_message(client), expected_text);
    CHECK(consentd_is_connected(client) == still_connected, "%s: connected afterwards = %d", name, consentd_is_connected(client));
    if (!still_connected) {
        status = consentd_check(client, &query, NULL, &decision);
        CHECK(status == CONSENTD_ERR_CLOSED, "%s: the next call says the handle is closed: %s", name, consentd_status_name(status));
    }
    consentd_close(client);
    pthread_join(thread, NULL);
    close(listener);
    unlink(path);
}

static void test_malformed_replies(void) {
    static const unsigned char garbage[] = {0x05, 0xff, 0xff, 0xff, 0xff, 0xff};
    fake_case("garbage", garbage, sizeof(garbage), true, CONSENTD_ERR_PROTOCOL, "not a valid consentd.v1.Response", false);

    static const unsigned char huge[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    fake_case("huge frame", huge, sizeof(huge), false, CONSENTD_ERR_PROTOCOL, "exceeds the limit", false);

    static const unsigned char overlong[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    fake_case("overlong varint", overlong, sizeof(overlong), false, CONSENTD_ERR_PROTOCOL, "invalid length prefix", false);

    static const unsigned char truncated[] = {0x32, 0x08, 0x01, 0x12, 0x00};
    fake_case("truncated", truncated, sizeof(truncated), true, CONSENTD_ERR_IO, "middle of a reply", false);

    fake_case("closed", NULL, 0, true, CONSENTD_ERR_IO, "closed the connection", false);

    fake_case("silent", NULL, 0, false, CONSENTD_ERR_TIMEOUT, "within 300 ms", false);

    unsigned char buffer[256];
    Consentd__V1__Response response;
    Consentd__V1__CheckResponse check;
    consentd__v1__response__init(&response);
    consentd__v1__check_response__init(&check);
    check.decision = CONSENTD__V1__DECISION__DECISION_ALLOW;
    response.id = 999;
    response.result_case = CONSENTD__V1__RESPONSE__RESULT_CHECK;
    response.check = &check;
    size_t length = encode_response(&response, buffer);
    fake_case("wrong id", buffer, length, false, CONSENTD_ERR_PROTOCOL, "while waiting for request 1", false);

    Consentd__V1__StatusResponse status_reply;
    consentd__v1__status_response__init(&status_reply);
    consentd__v1__response__init(&response);
    response.id = 1;
    response.result_case = CONSENTD__V1__RESPONSE__RESULT_STATUS;
    response.status = &status_reply;
    length = encode_response(&response, buffer);
    fake_case("wrong kind", buffer, length, false, CONSENTD_ERR_PROTOCOL, "not a CheckResponse", false);

    Consentd__V1__Error error;
    consentd__v1__error__init(&error);
    error.code = CONSENTD__V1__ERROR_CODE__ERROR_CODE_PERMISSION_DENIED;
    error.message = "uid 1000 may not check";
    consentd__v1__response__init(&response);
    response.id = 1;
    response.result_case = CONSENTD__V1__RESPONSE__RESULT_ERROR;
    response.error = &error;
    length = encode_response(&response, buffer);
    fake_case("refused", buffer, length, false, CONSENTD_ERR_SERVER, "PERMISSION_DENIED: uid 1000 may not check", true);

    error.code = CONSENTD__V1__ERROR_CODE__ERROR_CODE_MALFORMED_FRAME;
    error.message = "bad frame";
    response.id = 0;
    length = encode_response(&response, buffer);
    fake_case("stream rejected", buffer, length, true, CONSENTD_ERR_SERVER, "MALFORMED_FRAME", false);

    /* Random bytes: never a crash, always an error that closes the handle. */
    unsigned int seed = 12345;
    for (int round = 0; round < 40; round++) {
        unsigned char noise[64];
        size_t n = 1 + (size_t)(rand_r(&seed) % (int)sizeof(noise));
        for (size_t i = 0; i < n; i++) noise[i] = (unsigned char)rand_r(&seed);
        char path[300];
        snprintf(path, sizeof(path), "%s/fake.sock", directory);
        unlink(path);
        int listener = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        snprintf(address.sun_path, sizeof(address.sun_path), "%.100s", path);
        if (bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(listener, 4) != 0) break;
        fake_server server = {.listener = listener, .reply = noise, .reply_length = n, .close_after = true};
        pthread_t thread;
        pthread_create(&thread, NULL, serve_once, &server);
        consentd_client *client = NULL;
        consentd_connect(&client, path, 300);
        consentd_query query = {.subject_id = "s", .purpose = PURPOSE, .data_category = DATA};
        consentd_decision decision;
        consentd_status status = consentd_check(client, &query, NULL, &decision);
        CHECK(status != CONSENTD_ERR_ARGUMENT, "noise round %d: %s", round, consentd_status_name(status));
        consentd_close(client);
        pthread_join(thread, NULL);
        close(listener);
        unlink(path);
    }
}

/* The client encodes Check by hand on its hot path: it must be byte for byte what protobuf-c packs. */
static void test_check_encoding_matches_protobuf_c(void) {
    unsigned int seed = 99;
    const char *words[] = {"", "a", "DE", "US-CA", "marketing.advertising.targeted", "user.behavior", "web",
                           "a-much-longer-subject-identifier-that-needs-a-two-byte-length-prefix-because-it-goes-on-and-on-and-on-past-127-bytes-xxxxxxxxxxxxxxxxxx"};
    int equal = 0, rounds = 2000;
    for (int round = 0; round < rounds; round++) {
        consentd_query query = {.subject_id = words[rand_r(&seed) % 8], .purpose = words[rand_r(&seed) % 8], .data_category = words[rand_r(&seed) % 8]};
        consentd_context context = {0};
        bool with_context = rand_r(&seed) % 4 != 0;
        if (with_context) {
            context.jurisdiction = rand_r(&seed) % 2 ? words[rand_r(&seed) % 8] : NULL;
            context.channel = rand_r(&seed) % 2 ? words[rand_r(&seed) % 8] : NULL;
            context.gpc = rand_r(&seed) % 2;
            context.usp_opt_out = rand_r(&seed) % 2;
            int64_t choices[] = {0, 1, -1, 1000000, -1000000, 1700000000123456LL, -86400000001LL, 999999};
            context.at_micros = choices[rand_r(&seed) % 8];
        }
        uint64_t id = (uint64_t[]){0, 1, 127, 128, 300, 1ull << 40}[rand_r(&seed) % 6];
        uint8_t mine[1024];
        uint8_t *frame = NULL;
        size_t length = 0;
        if (consentd__encode_check(&frame, &length, mine, sizeof(mine), id, &query, with_context ? &context : NULL) != CONSENTD_OK) continue;

        Consentd__V1__Request request;
        Consentd__V1__CheckRequest check;
        Consentd__V1__Context ctx;
        Google__Protobuf__Timestamp at;
        consentd__v1__request__init(&request);
        consentd__v1__check_request__init(&check);
        consentd__v1__context__init(&ctx);
        google__protobuf__timestamp__init(&at);
        check.subject_id = (char *)query.subject_id;
        check.purpose = (char *)query.purpose;
        check.data_category = (char *)query.data_category;
        if (with_context) {
            ctx.jurisdiction = (char *)(context.jurisdiction ? context.jurisdiction : "");
            ctx.channel = (char *)(context.channel ? context.channel : "");
            ctx.gpc = context.gpc;
            ctx.usp_opt_out = context.usp_opt_out;
            if (context.at_micros != 0) {
                int64_t seconds = context.at_micros / 1000000, micros = context.at_micros % 1000000;
                if (micros < 0) {
                    micros += 1000000;
                    seconds -= 1;
                }
                at.seconds = seconds;
                at.nanos = (int32_t)(micros * 1000);
                ctx.at = &at;
            }
            bool empty = !*ctx.jurisdiction && !*ctx.channel && !ctx.gpc && !ctx.usp_opt_out && ctx.at == NULL;
            if (!empty) check.context = &ctx;
        }
        request.id = id;
        request.method_case = CONSENTD__V1__REQUEST__METHOD_CHECK;
        request.check = &check;
        uint8_t theirs[1024];
        size_t size = consentd__v1__request__get_packed_size(&request);
        size_t n = 0;
        size_t value = size;
        while (value >= 0x80) {
            theirs[n++] = (uint8_t)(value | 0x80);
            value >>= 7;
        }
        theirs[n++] = (uint8_t)value;
        n += consentd__v1__request__pack(&request, theirs + n);
        if (n == length && memcmp(theirs, frame, n) == 0) equal++;
    }
    CHECK(equal == rounds, "%d of %d hand-encoded Checks equal protobuf-c's bytes", equal, rounds);
}


/* The client decodes Check answers by hand on its pipelined path: it must read what protobuf-c reads. */
static void test_check_decoding_matches_protobuf_c(void) {
    unsigned int seed = 7;
    const char *texts[] = {"", "eea-ads", "6b66103794d6b23b", "a-rule-id-long-enough-to-need-a-two-byte-length-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
    int agreed = 0, rounds = 3000;
    for (int round = 0; round < rounds; round++) {
        Consentd__V1__Response response;
        Consentd__V1__CheckResponse check;
        Consentd__V1__ConsentRecord record;
        Consentd__V1__Explanation explanation;
        consentd__v1__response__init(&response);
        consentd__v1__check_response__init(&check);
        consentd__v1__consent_record__init(&record);
        consentd__v1__explanation__init(&explanation);
        check.decision = (Consentd__V1__Decision)(rand_r(&seed) % 3);
        check.reason = (Consentd__V1__Reason)(rand_r(&seed) % 14);
        check.rule_id = (char *)texts[rand_r(&seed) % 4];
        check.policy_revision = (char *)texts[rand_r(&seed) % 4];
        check.consent_sequence = (uint64_t[]){0, 1, 200, 1ull << 50}[rand_r(&seed) % 4];
        check.legal_basis = (Consentd__V1__LegalBasis)(rand_r(&seed) % 7);
        char *obligations[] = {"pseudonymize", "retention: 30d"};
        check.n_obligations = rand_r(&seed) % 3;
        check.obligations = obligations;
        check.rule_location = rand_r(&seed) % 2 ? "eea.yaml:9:5" : "";
        if (rand_r(&seed) % 2) {
            record.subject_id = "s";
            record.purpose = "marketing";
            record.sequence = (uint64_t[]){0, 5, 70000}[rand_r(&seed) % 3];
            record.source = "web";
            if (rand_r(&seed) % 2) {
                record._notice_version_case = CONSENTD__V1__CONSENT_RECORD___NOTICE_VERSION_NOTICE_VERSION;
                record.notice_version = 3;
            }
            check.consent_record = &record;
        }
        if (rand_r(&seed) % 4 == 0) {
            explanation.text = "trace";
            check.explanation = &explanation;
        }
        response.id = (uint64_t[]){0, 1, 129, 1ull << 33}[rand_r(&seed) % 4];
        response.result_case = CONSENTD__V1__RESPONSE__RESULT_CHECK;
        response.check = &check;
        uint8_t bytes[2048];
        size_t length = consentd__v1__response__pack(&response, bytes);

        fast_check fast;
        bool ok = consentd__decode_check(bytes, length, &fast);
        Consentd__V1__Response *back = consentd__v1__response__unpack(NULL, length, bytes);
        if (ok && back != NULL && back->result_case == CONSENTD__V1__RESPONSE__RESULT_CHECK) {
            const Consentd__V1__CheckResponse *b = back->check;
            bool same = fast.id == back->id && fast.decision == (uint64_t)b->decision && fast.reason == (uint64_t)b->reason &&
                        fast.consent_sequence == b->consent_sequence && fast.legal_basis == (uint64_t)b->legal_basis &&
                        fast.record_sequence == (b->consent_record ? b->consent_record->sequence : 0) &&
                        fast.rule_length == strlen(b->rule_id) && (fast.rule_length == 0 || memcmp(fast.rule, b->rule_id, fast.rule_length) == 0) &&
                        fast.revision_length == strlen(b->policy_revision) && (fast.revision_length == 0 || memcmp(fast.revision, b->policy_revision, fast.revision_length) == 0);
            if (same) agreed++;
        }
        if (back != NULL) consentd__v1__response__free_unpacked(back, NULL);
    }
    CHECK(agreed == rounds, "%d of %d hand-decoded answers equal protobuf-c's", agreed, rounds);

    /* What the fast path does not take, it leaves to protobuf-c: an error, truncated bytes, a duplicate result. */
    fast_check fast;
    const uint8_t error_reply[] = {0x08, 0x01, 0x7a, 0x02, 0x08, 0x06};
    CHECK(!consentd__decode_check(error_reply, sizeof(error_reply), &fast), "an error is not a check");
    const uint8_t truncated[] = {0x08, 0x01, 0x12, 0x05, 0x08, 0x01};
    CHECK(!consentd__decode_check(truncated, sizeof(truncated), &fast), "a truncated check is refused");
    const uint8_t twice[] = {0x12, 0x02, 0x08, 0x01, 0x12, 0x02, 0x08, 0x02};
    CHECK(!consentd__decode_check(twice, sizeof(twice), &fast), "a repeated check (merge semantics) goes to protobuf-c");
}

static void test_arguments(void) {
    consentd_client *client = NULL;
    consentd_status status = consentd_connect(&client, "/nonexistent/consentd.sock", 200);
    CHECK_STATUS(client, status, CONSENTD_ERR_CONNECT);
    CHECK(strstr(consentd_error_message(client), "is consentd running") != NULL, "hint: %s", consentd_error_message(client));
    consentd_decision decision;
    CHECK_STATUS(client, consentd_check(client, NULL, NULL, &decision), CONSENTD_ERR_ARGUMENT);
    consentd_query query = {.subject_id = "s", .purpose = PURPOSE, .data_category = DATA};
    CHECK_STATUS(client, consentd_check(client, &query, NULL, &decision), CONSENTD_ERR_CLOSED);
    consentd_close(client);
    CHECK(consentd_check(NULL, &query, NULL, &decision) == CONSENTD_ERR_ARGUMENT, "NULL handle");
    consentd_close(NULL);

    char long_path[200];
    memset(long_path, 'x', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    client = NULL;
    CHECK_STATUS(client, consentd_connect(&client, long_path, 100), CONSENTD_ERR_ARGUMENT);
    consentd_close(client);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const char *binary = getenv("CONSENTD");
    const char *policies = getenv("POLICIES");
    if (binary == NULL || policies == NULL || access(binary, X_OK) != 0) {
        fprintf(stderr, "set CONSENTD to a consentd binary and POLICIES to a policy directory (got %s, %s)\n",
                binary ? binary : "(unset)", policies ? policies : "(unset)");
        return 2;
    }
    snprintf(directory, sizeof(directory), "/tmp/consentd-c-test-XXXXXX");
    if (mkdtemp(directory) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(socket_path, sizeof(socket_path), "%s/consentd.sock", directory);
    snprintf(store_path, sizeof(store_path), "%s/consent.sqlite", directory);

    test_arguments();
    test_check_encoding_matches_protobuf_c();
    test_check_decoding_matches_protobuf_c();
    test_malformed_replies();
    fprintf(stderr, "fake-server and argument tests: %d failures\n", failures);

    pid_t daemon = start_daemon();
    consentd_client *client = NULL;
    consentd_status status = connect_when_up(&client, daemon);
    CHECK_STATUS(client, status, CONSENTD_OK);
    if (status == CONSENTD_OK) {
        test_round_trip_and_withdrawal(client);
        test_pipelined(client);
        test_batch(client);
        test_restart(&client, &daemon);
    }
    consentd_close(client);
    stop_daemon(daemon);

    if (failures > 0) {
        fprintf(stderr, "daemon log (%s/consentd.log) kept for inspection\n", directory);
    } else {
        char command[600];
        snprintf(command, sizeof(command), "rm -rf '%s'", directory);
        int ignored = system(command);
        (void)ignored;
    }
    printf("C client tests: %d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}

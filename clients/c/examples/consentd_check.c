/*
 * Example: ask consentd one question.
 *   consentd-check [--socket PATH] [--jurisdiction CC] [--gpc] SUBJECT PURPOSE DATA_CATEGORY
 * Exit status: 0 allow, 1 deny, 2 error.
 */
#include <stdio.h>
#include <string.h>

#include "consentd_client.h"

int main(int argc, char **argv) {
    const char *socket_path = "consentd.sock";
    consentd_context context = {0};
    const char *positional[3];
    int count = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            socket_path = argv[++i];
        } else if (strcmp(argv[i], "--jurisdiction") == 0 && i + 1 < argc) {
            context.jurisdiction = argv[++i];
        } else if (strcmp(argv[i], "--gpc") == 0) {
            context.gpc = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            count = -1;
            break;
        } else if (count < 3 && argv[i][0] != '-') {
            positional[count++] = argv[i];
        } else {
            count = -1;
            break;
        }
    }
    if (count != 3) {
        fprintf(stderr, "usage: %s [--socket PATH] [--jurisdiction CC] [--gpc] SUBJECT PURPOSE DATA_CATEGORY\n"
                        "Asks consentd whether PURPOSE may use DATA_CATEGORY of SUBJECT. Exit 0 allow, 1 deny, 2 error.\n",
                argv[0]);
        return 2;
    }

    consentd_client *client = NULL;
    if (consentd_connect(&client, socket_path, 2000) != CONSENTD_OK) {
        fprintf(stderr, "consentd-check: %s\n", consentd_error_message(client));
        consentd_close(client);
        return 2;
    }
    consentd_query query = {.subject_id = positional[0], .purpose = positional[1], .data_category = positional[2]};
    consentd_decision decision;
    consentd_status status = consentd_check(client, &query, &context, &decision);
    if (status != CONSENTD_OK) {
        fprintf(stderr, "consentd-check: %s: %s\n", consentd_status_name(status), consentd_error_message(client));
        consentd_close(client);
        return 2;
    }
    printf("%s %s rule=%s revision=%s sequence=%llu\n", consentd_verdict_name(decision.decision),
           consentd_reason_name(decision.reason), decision.rule_id[0] ? decision.rule_id : "-", decision.policy_revision,
           (unsigned long long)decision.consent_sequence);
    int exit_code = decision.decision == CONSENTD_ALLOW ? 0 : 1;
    consentd_close(client); /* decision's strings are freed here: use them before */
    return exit_code;
}

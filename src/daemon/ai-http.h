/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/*
 * HTTP POSTs through libcurl's multi interface, driven by the sd-event loop: curl tells which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it (CURLMOPT_TIMERFUNCTION), and
 * the loop calls back into curl. No threads, no blocking call: a slow server costs the loop
 * nothing but a few wakeups.
 */

typedef struct AiHttp AiHttp;
typedef struct AiHttpRequest AiHttpRequest;

typedef enum AiHttpOutcome {
        AI_HTTP_OK,          /* a complete reply, any status code */
        AI_HTTP_TIMEOUT,
        AI_HTTP_REFUSED,     /* connection refused */
        AI_HTTP_RESOLVE,     /* the host name did not resolve */
        AI_HTTP_CONNECT,     /* another connection failure */
        AI_HTTP_TLS,
        AI_HTTP_TRUNCATED,   /* the body ended before its announced length */
        AI_HTTP_TOO_LARGE,   /* the body passed the size cap */
        AI_HTTP_OTHER,
} AiHttpOutcome;

typedef struct AiHttpResult {
        AiHttpOutcome outcome;
        long status;           /* HTTP status, 0 when there was none */
        const char *body;      /* NUL-terminated, never NULL */
        size_t body_size;
        uint64_t retry_after_usec; /* from Retry-After (seconds form), 0 when absent */
        const char *detail;    /* curl's words for a failure */
} AiHttpResult;

/* Told once when the request ends; the request is freed after the callback returns. */
typedef void (*ai_http_done_t)(AiHttpRequest *req, const AiHttpResult *result, void *userdata);

int ai_http_new(sd_event *event, AiHttp **ret);
AiHttp *ai_http_free(AiHttp *h);

/*
 * Starts a POST of `body` (JSON) to `url`. `auth_header` (e.g. "Authorization: Bearer …") is
 * sent as it is and never logged; it is wiped from our memory once curl has its copy. The
 * reply is capped at max_bytes; the whole exchange at timeout_usec.
 */
int ai_http_post(AiHttp *h, const char *url, const char *auth_header, const char *body,
                 uint64_t timeout_usec, size_t max_bytes, ai_http_done_t done, void *userdata,
                 AiHttpRequest **ret);
/* Aborts a request: its callback is not called. */
void ai_http_cancel(AiHttpRequest *req);

const char *ai_http_outcome_to_string(AiHttpOutcome o);

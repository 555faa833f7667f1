/* SPDX-License-Identifier: MIT */
#include <curl/curl.h>
#include <stdio.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>

#include "ai-http.h"
#include "util.h"

struct AiHttp {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        AiHttpRequest *requests; /* in flight */
};

struct AiHttpRequest {
        AiHttp *http;
        CURL *easy;
        struct curl_slist *headers;
        char *data;
        size_t size, allocated, max_bytes;
        bool too_large;
        uint64_t retry_after_usec;
        char error[CURL_ERROR_SIZE];
        ai_http_done_t done;
        void *userdata;
        AiHttpRequest *prev, *next;
};

static const char *const outcome_names[] = {
        [AI_HTTP_OK] = "ok",
        [AI_HTTP_TIMEOUT] = "timeout",
        [AI_HTTP_REFUSED] = "connection refused",
        [AI_HTTP_RESOLVE] = "host not found",
        [AI_HTTP_CONNECT] = "connection failed",
        [AI_HTTP_TLS] = "TLS error",
        [AI_HTTP_TRUNCATED] = "truncated reply",
        [AI_HTTP_TOO_LARGE] = "reply too large",
        [AI_HTTP_OTHER] = "transfer failed",
};

const char *ai_http_outcome_to_string(AiHttpOutcome o) {
        return o < ELEMENTSOF(outcome_names) ? outcome_names[o] : "unknown";
}

/* The header lists hold the key: wiped before they are freed. */
static void headers_wipe_free(struct curl_slist *l) {
        for (struct curl_slist *i = l; i; i = i->next)
                explicit_bzero(i->data, strlen(i->data));
        curl_slist_free_all(l);
}

static void request_free(AiHttpRequest *req) {
        AiHttp *h;

        if (!req)
                return;
        h = req->http;
        if (req->prev)
                req->prev->next = req->next;
        else if (h->requests == req)
                h->requests = req->next;
        if (req->next)
                req->next->prev = req->prev;
        if (req->easy) {
                curl_multi_remove_handle(h->multi, req->easy);
                curl_easy_cleanup(req->easy);
        }
        headers_wipe_free(req->headers);
        free(req->data);
        free(req);
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        AiHttpRequest *req = userdata;
        size_t n = size * nmemb;

        if (n > req->max_bytes - req->size) {
                req->too_large = true;
                return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
        }
        if (req->size + n + 1 > req->allocated) {
                size_t want = MAX(req->allocated * 2, req->size + n + 1);
                char *d;

                want = MIN(want, req->max_bytes + 1);
                d = realloc(req->data, want);
                if (!d)
                        return 0;
                req->data = d;
                req->allocated = want;
        }
        memcpy(req->data + req->size, ptr, n);
        req->size += n;
        req->data[req->size] = '\0';
        return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata) {
        AiHttpRequest *req = userdata;
        size_t n = size * nitems;
        static const char name[] = "retry-after:";

        /* A new status line starts a new response (after a 100 Continue). */
        if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0)
                req->retry_after_usec = 0;
        if (n > sizeof name - 1 && strncasecmp(buf, name, sizeof name - 1) == 0) {
                char v[32];
                size_t l = MIN(n - (sizeof name - 1), sizeof v - 1);
                char *s;
                uint64_t secs;

                memcpy(v, buf + sizeof name - 1, l);
                v[l] = '\0';
                s = v + strspn(v, " \t");
                s[strcspn(s, " \t\r\n")] = '\0';
                /* The seconds form only; an HTTP date counts as absent. */
                if (safe_atou64(s, &secs) >= 0)
                        req->retry_after_usec = MIN(secs, (uint64_t) 86400) * USEC_PER_SEC;
        }
        return n;
}

static AiHttpOutcome outcome_of(AiHttpRequest *req, CURLcode c) {
        long os_errno = 0;

        switch (c) {
        case CURLE_OK:
                return AI_HTTP_OK;
        case CURLE_OPERATION_TIMEDOUT:
                return AI_HTTP_TIMEOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return AI_HTTP_RESOLVE;
        case CURLE_COULDNT_CONNECT:
                (void) curl_easy_getinfo(req->easy, CURLINFO_OS_ERRNO, &os_errno);
                return os_errno == ECONNREFUSED ? AI_HTTP_REFUSED : AI_HTTP_CONNECT;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_USE_SSL_FAILED:
                return AI_HTTP_TLS;
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2_STREAM:
                return AI_HTTP_TRUNCATED;
        case CURLE_WRITE_ERROR:
                return req->too_large ? AI_HTTP_TOO_LARGE : AI_HTTP_OTHER;
        default:
                return AI_HTTP_OTHER;
        }
}

static void check_done(AiHttp *h) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(h->multi, &left))) {
                AiHttpRequest *req = NULL;
                AiHttpResult result = {};

                if (msg->msg != CURLMSG_DONE)
                        continue;
                (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);
                if (!req)
                        continue;
                result.outcome = outcome_of(req, msg->data.result);
                (void) curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &result.status);
                result.body = req->data ? req->data : "";
                result.body_size = req->size;
                result.retry_after_usec = req->retry_after_usec;
                result.detail = req->error[0] ? req->error : curl_easy_strerror(msg->data.result);
                /* Off the multi handle before the callback, which may start the next request. */
                curl_multi_remove_handle(h->multi, req->easy);
                if (req->done)
                        req->done(req, &result, req->userdata);
                request_free(req);
        }
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        AiHttp *h = userdata;
        int action = 0, running;

        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        (void) curl_multi_socket_action(h->multi, fd, action, &running);
        check_done(h);
        return 0;
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
        AiHttp *h = userp;
        sd_event_source *src = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (src) {
                        sd_event_source_disable_unref(src);
                        curl_multi_assign(h->multi, fd, NULL);
                }
                return 0;
        }
        if (what & CURL_POLL_IN)
                events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                events |= EPOLLOUT;
        if (src)
                return sd_event_source_set_io_events(src, events) < 0 ? -1 : 0;
        r = sd_event_add_io(h->event, &src, fd, events, on_io, h);
        if (r < 0)
                return -1;
        (void) sd_event_source_set_description(src, "ai-http-io");
        curl_multi_assign(h->multi, fd, src);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        AiHttp *h = userdata;
        int running;

        (void) curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_done(h);
        return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
        AiHttp *h = userp;
        uint64_t when;
        int r;

        if (timeout_ms < 0)
                return h->timer ? (sd_event_source_set_enabled(h->timer, SD_EVENT_OFF) < 0 ? -1 : 0) : 0;
        /* Curl must not be re-entered from here: the loop calls it back, even for 0 ms. */
        when = now_usec(CLOCK_MONOTONIC) + (uint64_t) timeout_ms * 1000;
        if (!h->timer) {
                r = sd_event_add_time(h->event, &h->timer, CLOCK_MONOTONIC, when, 0, on_timer, h);
                if (r < 0)
                        return -1;
                (void) sd_event_source_set_description(h->timer, "ai-http-timer");
                return 0;
        }
        if (sd_event_source_set_time(h->timer, when) < 0 ||
            sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

int ai_http_new(sd_event *event, AiHttp **ret) {
        AiHttp *h;

        assert(event);
        assert(ret);
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        h = calloc(1, sizeof(AiHttp));
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(event);
        h->multi = curl_multi_init();
        if (!h->multi) {
                ai_http_free(h);
                return -ENOMEM;
        }
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
        *ret = h;
        return 0;
}

AiHttp *ai_http_free(AiHttp *h) {
        if (!h)
                return NULL;
        while (h->requests)
                request_free(h->requests);
        if (h->multi)
                curl_multi_cleanup(h->multi);
        sd_event_source_disable_unref(h->timer);
        sd_event_unref(h->event);
        free(h);
        return NULL;
}

int ai_http_post(AiHttp *h, const char *url, const char *auth_header, const char *body,
                 uint64_t timeout_usec, size_t max_bytes, ai_http_done_t done, void *userdata,
                 AiHttpRequest **ret) {
        AiHttpRequest *req;
        struct curl_slist *l;
        uint64_t ms = timeout_usec / 1000;
        bool ok;

        assert(h);
        assert(url);
        assert(body);
        req = calloc(1, sizeof(AiHttpRequest));
        if (!req)
                return -ENOMEM;
        *req = (AiHttpRequest) {
                .http = h,
                .max_bytes = max_bytes,
                .done = done,
                .userdata = userdata,
                .next = h->requests,
        };
        if (h->requests)
                h->requests->prev = req;
        h->requests = req;

        req->easy = curl_easy_init();
        if (!req->easy) {
                request_free(req);
                return -ENOMEM;
        }
        /* "Expect:" off: no 100-continue round trip for a few kilobytes of JSON. */
        l = curl_slist_append(NULL, "Content-Type: application/json");
        if (l)
                l = curl_slist_append(req->headers = l, "Accept: application/json");
        if (l)
                l = curl_slist_append(req->headers = l, "Expect:");
        if (l && auth_header)
                l = curl_slist_append(req->headers = l, auth_header);
        if (!l) {
                request_free(req);
                return -ENOMEM;
        }
        req->headers = l;

        ok = curl_easy_setopt(req->easy, CURLOPT_URL, url) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_PRIVATE, req) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_ERRORBUFFER, req->error) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, req->headers) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_POST, 1L) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_COPYPOSTFIELDS, body) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_WRITEFUNCTION, on_write) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_WRITEDATA, req) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_HEADERDATA, req) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_TIMEOUT_MS, (long) MAX(ms, (uint64_t) 1)) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_CONNECTTIMEOUT_MS,
                              (long) MIN(MAX(ms, (uint64_t) 1), (uint64_t) 30000)) == CURLE_OK &&
             /* Only HTTP(S), and no redirects: a redirect would carry the key elsewhere. */
             curl_easy_setopt(req->easy, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
             curl_easy_setopt(req->easy, CURLOPT_USERAGENT,
                              "packetscoped/" PACKETSCOPE_VERSION) == CURLE_OK;
        if (!ok) {
                request_free(req);
                return -EINVAL;
        }
        if (curl_multi_add_handle(h->multi, req->easy) != CURLM_OK) {
                /* request_free() removes it from the multi handle; it was never added. */
                curl_easy_cleanup(TAKE_PTR(req->easy));
                request_free(req);
                return -EIO;
        }
        if (ret)
                *ret = req;
        return 0;
}

void ai_http_cancel(AiHttpRequest *req) {
        request_free(req);
}

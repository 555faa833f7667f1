/* SPDX-License-Identifier: MIT */
/*
 * The client's side of the bus: errors as the daemon words them, the typed reading of a{sv}
 * replies into structs (one table per reply kind), and, for --json, a reply as JSON.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>

#include "packetscopectl.h"

/* The start of a daemon's message up to the first "; ", which is where it goes on in bus words
 * ("…; guarded links are listed in the Links property"). */
static void print_message_head(const char *prefix, const char *message, const char *tail) {
        size_t n = strcspn(message, ";");

        fprintf(stderr, "packetscopectl: %s%.*s%s\n", prefix, (int) n, message, tail);
}

/* The action a polkit refusal names: the text between the first pair of quotes. */
static void print_polkit_refusal(const char *message, const char *why) {
        const char *a = strchr(message, '\'');
        size_t n = a ? strcspn(a + 1, "'") : 0;

        if (a && a[1 + n] == '\'')
                fprintf(stderr, "packetscopectl: not allowed: %.*s %s\n", (int) n, a + 1, why);
        else
                fprintf(stderr, "packetscopectl: not allowed: %s\n", why);
}

/* NoSuchLink, whichever call gave it ("'eth9' is not guarded", after "query key 'link': " for a
 * query): the same words from every verb. */
static void print_not_guarded(const char *message) {
        const char *end = strstr(message, "' is not guarded"), *start = end;

        while (start && start > message && start[-1] != '\'')
                start--;
        if (!start || start == message) {
                print_message_head("", message, "; see packetscopectl status");
                return;
        }
        fprintf(stderr, "packetscopectl: '%.*s' is not guarded; see packetscopectl status\n",
                (int) (end - start), start);
}

int bus_error(const char *what, const sd_bus_error *error, int r) {
        const char *msg;

        assert(what);

        r = r < 0 ? r : -EIO;
        if (!sd_bus_error_is_set(error)) {
                fprintf(stderr, "packetscopectl: %s: %s\n", what, strerror(-r));
                return r;
        }
        msg = error->message ?: "";
        /* Each error in the words of the people who meet it, the same from every verb: the
         * daemon's own messages are kept, without the bus error's name. */
        if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN,
                                   SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                fputs("packetscopectl: packetscoped is not running: systemctl start "
                      "packetscope@IFACE\n", stderr);
        else if (sd_bus_error_has_names(error, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT,
                                        SD_BUS_ERROR_DISCONNECTED))
                fputs("packetscopectl: packetscoped did not answer in time; see journalctl -u "
                      "'packetscope@*'\n", stderr);
        else if (sd_bus_error_has_name(error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                print_polkit_refusal(msg, !arg.ask_password
                                     ? "needs authentication, and --no-ask-password was given"
                                     : "needs authentication, and no password could be asked "
                                       "(not on a terminal, or no polkit agent)");
        else if (sd_bus_error_has_name(error, SD_BUS_ERROR_ACCESS_DENIED) &&
                 strncmp(msg, "polkit denies", strlen("polkit denies")) == 0)
                print_polkit_refusal(msg, "is refused to this user by polkit");
        else if (sd_bus_error_has_name(error, SD_BUS_ERROR_ACCESS_DENIED))
                /* dbus-daemon's own refusal: the bus policy let the call not through. */
                fputs("packetscopectl: not allowed: the system bus policy does not let this user "
                      "call packetscoped\n", stderr);
        else if (sd_bus_error_has_name(error, PS_ERROR_AUTH_FAILED))
                print_message_head("not allowed: ", msg, "; is polkitd running?");
        else if (sd_bus_error_has_name(error, PS_ERROR_NO_SUCH_LINK))
                print_not_guarded(msg);
        else if (sd_bus_error_has_names(error, SD_BUS_ERROR_UNKNOWN_METHOD,
                                        SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                        SD_BUS_ERROR_UNKNOWN_PROPERTY))
                fprintf(stderr, "packetscopectl: %s: the running packetscoped does not know it; "
                        "is it older than packetscopectl %s?\n", what, PACKETSCOPE_VERSION);
        else
                fprintf(stderr, "packetscopectl: %s\n", msg[0] ? msg : what);
        return r;
}

int bus_call(sd_bus *bus, const char *path, const char *interface, const char *method,
             sd_bus_error *error, sd_bus_message **ret, const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error own = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        assert(bus);
        assert(path);
        assert(interface);
        assert(method);

        va_start(ap, types);
        r = sd_bus_call_methodv(bus, PS_BUS_NAME, path, interface, method, error ? error : &own,
                                ret, types, ap);
        va_end(ap);
        if (r < 0 && !error)
                return bus_error(method, &own, r);
        return r;
}

typedef union BusBasic {
        uint8_t y;
        int b;
        int16_t n;
        uint16_t q;
        int32_t i;
        uint32_t u;
        int64_t x;
        uint64_t t;
        double d;
        const char *s;
        int h;
} BusBasic;

/* An integer of any bus type as its magnitude and its sign. */
static bool basic_integer(char type, const BusBasic *v, uint64_t *ret_abs, bool *ret_negative) {
        int64_t s;

        switch (type) {
        case 'y': *ret_abs = v->y; *ret_negative = false; return true;
        case 'q': *ret_abs = v->q; *ret_negative = false; return true;
        case 'u': *ret_abs = v->u; *ret_negative = false; return true;
        case 't': *ret_abs = v->t; *ret_negative = false; return true;
        case 'n': s = v->n; break;
        case 'i': s = v->i; break;
        case 'x': s = v->x; break;
        default: return false;
        }
        *ret_negative = s < 0;
        *ret_abs = s < 0 ? (uint64_t) -(s + 1) + 1 : (uint64_t) s;
        return true;
}

/* The variant's content into the field, when its type is one the field's kind takes; otherwise
 * the value is skipped and the field keeps what it held. Returns 1 when stored. */
static int read_field(sd_bus_message *m, const BusField *f, const char *contents, void *field) {
        /* The basic types each kind of field takes. */
        static const char *const accepted[] = {
                [BUS_FIELD_U64] = "ynqiuxt",
                [BUS_FIELD_I64] = "ynqiuxt",
                [BUS_FIELD_DOUBLE] = "d",
                [BUS_FIELD_STRING] = "sog",
                [BUS_FIELD_BOOL] = "b",
        };
        BusBasic v;
        uint64_t abs = 0;
        bool negative = false;
        int r;

        if (f->kind == BUS_FIELD_CUSTOM)
                return f->read(m, contents, field);
        if (strlen(contents) != 1 || !strchr("ybnqiuxtdsog", contents[0])) {
                r = sd_bus_message_skip(m, contents);
                return r < 0 ? r : 0;
        }
        r = sd_bus_message_read_basic(m, contents[0], &v);
        if (r < 0)
                return r;
        if (!strchr(accepted[f->kind], contents[0]))
                return 0;
        if (basic_integer(contents[0], &v, &abs, &negative) && f->kind == BUS_FIELD_I64 &&
            !negative && abs > INT64_MAX)
                return 0;
        switch (f->kind) {
        case BUS_FIELD_U64:
                *(uint64_t *) field = negative ? 0 : abs;
                break;
        case BUS_FIELD_I64:
                *(int64_t *) field = negative ? (int64_t) -(abs - 1) - 1 : (int64_t) abs;
                break;
        case BUS_FIELD_DOUBLE:
                *(double *) field = v.d;
                break;
        case BUS_FIELD_STRING:
                *(const char **) field = v.s;
                break;
        default:
                *(bool *) field = v.b;
        }
        return 1;
}

int bus_enter_array(sd_bus_message *m, const char *contents, const char *signature) {
        int r;

        assert(m);
        assert(contents);
        assert(signature && signature[0] == 'a');

        if (!streq(contents, signature)) {
                r = sd_bus_message_skip(m, contents);
                return r < 0 ? r : 0;
        }
        r = sd_bus_message_enter_container(m, 'a', signature + 1);
        return r < 0 ? r : 1;
}

typedef int (*BusEntryFn)(sd_bus_message *m, char key_type, const BusBasic *key, void *userdata);

/* Each entry of the dictionary of signature contents ("{KV}"): visit() gets its key and reads
 * its value. */
static int bus_foreach_entry(sd_bus_message *m, const char *contents, BusEntryFn visit,
                             void *userdata) {
        _cleanup_free_ char *entry = NULL;
        int r;

        /* contents is "{KV}"; the entry container takes "KV". */
        entry = strndup(contents + 1, strlen(contents) - 2);
        if (!entry)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', contents);
        if (r < 0)
                return r;
        for (;;) {
                BusBasic key;

                r = sd_bus_message_enter_container(m, 'e', entry);
                if (r <= 0)
                        break;
                r = sd_bus_message_read_basic(m, entry[0], &key);
                if (r >= 0)
                        r = visit(m, entry[0], &key, userdata);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        break;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

typedef struct DictReader {
        const BusDict *dict;
        void *ret;
        BusUnknownFn unknown;
        void *userdata;
} DictReader;

static int read_dict_entry(sd_bus_message *m, char key_type, const BusBasic *key, void *userdata) {
        DictReader *d = userdata;
        const BusField *f = NULL;
        const char *contents;
        size_t i;
        int r;

        for (i = 0; i < d->dict->n_fields && !f; i++)
                if (streq(key->s, d->dict->fields[i].key))
                        f = &d->dict->fields[i];
        if (!f)
                return d->unknown ? d->unknown(m, key->s, d->userdata) : sd_bus_message_skip(m, "v");
        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;
        r = read_field(m, f, contents, (uint8_t *) d->ret + f->offset);
        if (r < 0)
                return r;
        if (r > 0) /* i is one past the field */
                *(uint64_t *) ((uint8_t *) d->ret + d->dict->seen_offset) |= UINT64_C(1) << (i - 1);
        return sd_bus_message_exit_container(m);
}

int bus_read_dict(sd_bus_message *m, const BusDict *d, void *ret, BusUnknownFn unknown,
                  void *userdata) {
        DictReader reader = { .dict = d, .ret = ret, .unknown = unknown, .userdata = userdata };

        assert(m);
        assert(d);
        assert(ret);
        assert(d->n_fields <= 64);

        return bus_foreach_entry(m, "{sv}", read_dict_entry, &reader);
}

int bus_read_rows(sd_bus_message *m, const BusDict *d, size_t row_size, const void *initial,
                  void **ret_rows, size_t *ret_n) {
        _cleanup_free_ void *rows = NULL;
        size_t n = 0, allocated = 0;
        int r;

        assert(m);
        assert(d);
        assert(initial);
        assert(ret_rows);
        assert(ret_n);

        r = sd_bus_message_enter_container(m, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (;;) {
                r = sd_bus_message_at_end(m, false);
                if (r < 0)
                        return r;
                if (r > 0)
                        break;
                if (n == allocated) {
                        size_t na = allocated ? allocated * 2 : 64;
                        void *nr = reallocarray(rows, na, row_size);

                        if (!nr)
                                return -ENOMEM;
                        rows = nr;
                        allocated = na;
                }
                memcpy((uint8_t *) rows + n * row_size, initial, row_size);
                r = bus_read_dict(m, d, (uint8_t *) rows + n * row_size, NULL, NULL);
                if (r < 0)
                        return r;
                n++;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret_rows = TAKE_PTR(rows);
        *ret_n = n;
        return 0;
}

/* ---- a reply as JSON, for --json ---- */

/* A dictionary key as the text of a JSON object's key. */
static int key_as_string(char type, const BusBasic *v, char **ret) {
        switch (type) {
        case 'y': return error_setf(ret, 0, "%u", (unsigned) v->y);
        case 'b': return error_setf(ret, 0, "%s", v->b ? "true" : "false");
        case 'n': return error_setf(ret, 0, "%d", (int) v->n);
        case 'q': return error_setf(ret, 0, "%u", (unsigned) v->q);
        case 'i': return error_setf(ret, 0, "%" PRIi32, v->i);
        case 'u': return error_setf(ret, 0, "%" PRIu32, v->u);
        case 'x': return error_setf(ret, 0, "%" PRIi64, v->x);
        case 't': return error_setf(ret, 0, "%" PRIu64, v->t);
        case 'd': return error_setf(ret, 0, "%g", v->d);
        case 's': case 'o': case 'g': return error_setf(ret, 0, "%s", v->s);
        case 'h': return error_setf(ret, 0, "%d", v->h);
        default: return -EINVAL;
        }
}

static int json_from_basic(sd_bus_message *m, char type, json_t **ret) {
        BusBasic v;
        json_t *j;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case 'y': j = json_integer(v.y); break;
        case 'b': j = json_boolean(v.b); break;
        case 'n': j = json_integer(v.n); break;
        case 'q': j = json_integer(v.q); break;
        case 'i': j = json_integer(v.i); break;
        case 'u': j = json_integer(v.u); break;
        case 'x': j = json_integer(v.x); break;
        /* jansson integers are signed 64 bits: the (unreachable in practice) top half of a
         * counter becomes a real rather than a wrong negative number. */
        case 't': j = v.t > INT64_MAX ? json_real((double) v.t) : json_integer((json_int_t) v.t); break;
        /* JSON has no NaN or infinity. */
        case 'd': j = isfinite(v.d) ? json_real(v.d) : json_null(); break;
        case 's': case 'o': case 'g': j = json_string(v.s); break;
        default: j = json_null(); break; /* file descriptors mean nothing in JSON */
        }
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

static int json_set_entry(sd_bus_message *m, char key_type, const BusBasic *key, void *userdata) {
        json_t *obj = userdata, *value = NULL;
        _cleanup_free_ char *k = NULL;
        int r;

        r = key_as_string(key_type, key, &k);
        if (r < 0)
                return r;
        r = json_from_bus(m, &value);
        if (r < 0)
                return r;
        /* steals value, even on failure */
        return json_object_set_new(obj, json_key_with_unit(k), value) < 0 ? -ENOMEM : 0;
}

/* Dictionaries become objects (keys as text): so a newer daemon's extra keys of any type come
 * through unharmed. */
static int json_from_dict(sd_bus_message *m, const char *contents, json_t **ret) {
        _cleanup_json_ json_t *obj = json_object();
        int r;

        if (!obj)
                return -ENOMEM;
        r = bus_foreach_entry(m, contents, json_set_entry, obj);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(obj);
        return 0;
}

static int json_from_sequence(sd_bus_message *m, char type, const char *contents, json_t **ret) {
        _cleanup_json_ json_t *array = json_array();
        int r;

        if (!array)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        for (;;) {
                json_t *value = NULL;

                r = sd_bus_message_peek_type(m, NULL, NULL);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = json_from_bus(m, &value);
                if (r < 0)
                        return r;
                if (json_array_append_new(array, value) < 0)
                        return -ENOMEM;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(array);
        return 0;
}

int json_from_bus(sd_bus_message *m, json_t **ret) {
        const char *contents;
        char type;
        int r;

        assert(m);
        assert(ret);

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO;
        switch (type) {
        case 'v':
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;
                r = json_from_bus(m, ret);
                if (r < 0)
                        return r;
                return sd_bus_message_exit_container(m);
        case 'a':
                if (contents[0] == '{')
                        return json_from_dict(m, contents, ret);
                return json_from_sequence(m, 'a', contents, ret);
        case 'r':
                return json_from_sequence(m, 'r', contents, ret);
        default:
                return json_from_basic(m, type, ret);
        }
}

int json_from_reply(sd_bus_message *m, const char *what, json_t **ret) {
        int r;

        assert(m);
        assert(what);
        assert(ret);

        r = sd_bus_message_rewind(m, true);
        if (r < 0)
                return r;
        r = json_from_bus(m, ret);
        if (r < 0)
                fprintf(stderr, "packetscopectl: cannot parse the reply of %s: %s\n", what,
                        strerror(-r));
        return r;
}

int print_reply_json(sd_bus_message *reply, const char *what) {
        _cleanup_json_ json_t *j = NULL;
        int r;

        assert(what);

        r = json_from_reply(reply, what, &j);
        return r < 0 ? r : print_json(j);
}

void bus_replies_done(BusReplies *l) {
        assert(l);

        for (size_t i = 0; i < l->n; i++)
                sd_bus_message_unref(l->replies[i]);
        l->replies = mfree(l->replies);
        l->n = 0;
}

int bus_replies_push(BusReplies *l, sd_bus_message *reply) {
        sd_bus_message **n;

        assert(l);
        assert(reply);

        n = reallocarray(l->replies, l->n + 1, sizeof(sd_bus_message *));
        if (!n)
                return -ENOMEM;
        l->replies = n;
        l->replies[l->n++] = reply;
        return 0;
}

int call_get_all(sd_bus *bus, const char *path, const char *interface, bool missing_ok,
                 sd_bus_message **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        assert(bus);
        assert(path);
        assert(interface);
        assert(ret);

        r = bus_call(bus, path, PS_IFACE_PROPERTIES, "GetAll", &error, ret, "s", interface);
        if (r < 0) {
                /* A link may go away between reading Links and asking about it. */
                if (missing_ok && (sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_OBJECT) ||
                                   sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_INTERFACE)))
                        return -ENOENT;
                return bus_error("reading properties", &error, r);
        }
        return 0;
}

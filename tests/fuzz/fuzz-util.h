/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the libFuzzer harnesses: a reader that turns the fuzzer's bytes into
 * choices, and a generator that builds a real sd-bus message holding an a{sv} from them.
 *
 * Public libsystemd cannot parse a message from raw wire bytes, and it does not need to: sd-bus
 * checks a method call's signature before a handler runs, so the daemon's decoders only ever see
 * well-formed messages of the declared signature. What varies is the content: keys, the variant
 * types (basic or not), the values, and the count. The generator varies exactly that, on a
 * message built the way the bus builds one (appended, sealed, rewound for reading).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <systemd/sd-bus.h>

typedef struct FuzzReader {
        const uint8_t *data;
        size_t size;
} FuzzReader;

static inline uint8_t fuzz_u8(FuzzReader *r) {
        uint8_t v;

        if (r->size == 0)
                return 0;
        v = r->data[0];
        r->data++;
        r->size--;
        return v;
}

static inline uint64_t fuzz_uint(FuzzReader *r, size_t bytes) {
        uint64_t v = 0;

        for (size_t i = 0; i < bytes; i++)
                v = v << 8 | fuzz_u8(r);
        return v;
}

/* A string of up to `max` bytes, NUL-terminated into buf (which holds max + 1 bytes). The
 * length comes first, so that a mutation of the text does not shift the choices after it. */
static inline const char *fuzz_string(FuzzReader *r, char *buf, size_t max) {
        size_t n = fuzz_u8(r) % (max + 1);

        if (n > r->size)
                n = r->size;
        memcpy(buf, r->data, n);
        buf[n] = '\0';
        r->data += n;
        r->size -= n;
        return buf;
}

/*
 * A bus the messages can be built on: never connected to anything, the far end of a socketpair
 * that nobody reads (sd-bus needs a started bus before it creates messages).
 */
static inline sd_bus *fuzz_bus(void) {
        static sd_bus *bus;
        int fds[2];

        if (bus)
                return bus;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
                abort();
        if (sd_bus_new(&bus) < 0 || sd_bus_set_fd(bus, fds[0], fds[0]) < 0 ||
            sd_bus_start(bus) < 0)
                abort();
        /* fds[1] stays open for the life of the process: the handshake sits in its buffer. */
        return bus;
}

/* One variant value chosen by the reader: every basic type, and a few containers that a
 * decoder must refuse by name. Returns < 0 when libsystemd refuses the value (invalid UTF-8 in a
 * string, a bad object path or signature): the caller drops that input. */
static inline int fuzz_append_variant(sd_bus_message *m, FuzzReader *r, const char *const *words,
                                      size_t n_words) {
        static const char types[] = "ybnqiuxtdsogbs(a{v";
        char t = types[fuzz_u8(r) % (sizeof(types) - 1)];
        char buf[256];
        int k;

        switch (t) {
        case 'y': return sd_bus_message_append(m, "v", "y", (uint8_t) fuzz_uint(r, 1));
        case 'b': return sd_bus_message_append(m, "v", "b", (int) (fuzz_u8(r) & 1));
        case 'n': return sd_bus_message_append(m, "v", "n", (int16_t) fuzz_uint(r, 2));
        case 'q': return sd_bus_message_append(m, "v", "q", (uint16_t) fuzz_uint(r, 2));
        case 'i': return sd_bus_message_append(m, "v", "i", (int32_t) fuzz_uint(r, 4));
        case 'u': return sd_bus_message_append(m, "v", "u", (uint32_t) fuzz_uint(r, 4));
        case 'x': return sd_bus_message_append(m, "v", "x", (int64_t) fuzz_uint(r, 8));
        case 't': return sd_bus_message_append(m, "v", "t", (uint64_t) fuzz_uint(r, 8));
        case 'd': {
                uint64_t bits = fuzz_uint(r, 8);
                double d;

                memcpy(&d, &bits, sizeof d); /* NaN, infinities and subnormals included */
                return sd_bus_message_append(m, "v", "d", d);
        }
        case 's':
                /* Half of the strings come from the harness's vocabulary, so that values the
                 * decoder knows ("tcp", "any", "10.0.0.0/8", "bytes") are reached. */
                k = fuzz_u8(r);
                if (n_words > 0 && (k & 1))
                        return sd_bus_message_append(m, "v", "s", words[(k >> 1) % n_words]);
                return sd_bus_message_append(m, "v", "s", fuzz_string(r, buf, 200));
        case 'o': return sd_bus_message_append(m, "v", "o", fuzz_string(r, buf, 64));
        case 'g': return sd_bus_message_append(m, "v", "g", fuzz_string(r, buf, 16));
        case '(': return sd_bus_message_append(m, "v", "(ii)", (int32_t) fuzz_uint(r, 4),
                                               (int32_t) fuzz_uint(r, 4));
        case 'a': return sd_bus_message_append(m, "v", "as", 2, fuzz_string(r, buf, 16), "x");
        case '{': return sd_bus_message_append(m, "v", "a{sv}", 1, "k", "u", (uint32_t) 1);
        default:  return sd_bus_message_append(m, "v", "v", "u", (uint32_t) fuzz_uint(r, 4));
        }
}

/*
 * Builds a method call whose body is one a{sv} of up to 24 entries, keys taken from `keys` or
 * from the bytes, values from fuzz_append_variant(); sealed and rewound, ready for the decoder.
 * Returns NULL when libsystemd refused a value (the input is dropped).
 */
static inline sd_bus_message *fuzz_build_dict(FuzzReader *r, const char *const *keys,
                                              size_t n_keys, const char *const *words,
                                              size_t n_words) {
        sd_bus_message *m = NULL;
        size_t n = fuzz_u8(r) % 25;
        char buf[128];

        if (sd_bus_message_new_method_call(fuzz_bus(), &m, "org.packetscope.Guarder1",
                                           "/org/packetscope/Guarder1", "org.example.Fuzz",
                                           "Call") < 0)
                abort();
        if (sd_bus_message_open_container(m, 'a', "{sv}") < 0)
                goto fail;
        for (size_t i = 0; i < n; i++) {
                uint8_t k = fuzz_u8(r);
                const char *key = (k & 3) != 0 && n_keys > 0 ? keys[(k >> 2) % n_keys] :
                                                                fuzz_string(r, buf, 100);

                if (sd_bus_message_open_container(m, 'e', "sv") < 0 ||
                    sd_bus_message_append(m, "s", key) < 0 ||
                    fuzz_append_variant(m, r, words, n_words) < 0 ||
                    sd_bus_message_close_container(m) < 0)
                        goto fail;
        }
        if (sd_bus_message_close_container(m) < 0 || sd_bus_message_seal(m, 1, 0) < 0 ||
            sd_bus_message_rewind(m, true) < 0)
                goto fail;
        return m;
fail:
        sd_bus_message_unref(m);
        return NULL;
}

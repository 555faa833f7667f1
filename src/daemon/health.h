/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "util.h"

/*
 * The machine's health: pressure-stall triggers (/proc/pressure/{cpu,memory,io}) as event
 * sources, and a sampler every HealthIntervalSec= for CPU, memory, disk and the guarded links.
 * A value over its threshold for MinimumDurationSec= opens an anomaly with the top consumers
 * (processes and systemd units); it closes when the value stays below for as long.
 */

typedef enum HealthKind {
        HEALTH_CPU,
        HEALTH_MEMORY,
        HEALTH_DISK,
        HEALTH_CPU_PRESSURE,
        HEALTH_MEMORY_PRESSURE,
        HEALTH_IO_PRESSURE,
        _HEALTH_KIND_MAX,
} HealthKind;

typedef enum PressureResource {
        PRESSURE_CPU,
        PRESSURE_MEMORY,
        PRESSURE_IO,
        _PRESSURE_MAX,
} PressureResource;

/* How pressure is watched: kernel triggers (POLLPRI), the sampler reading avg10, or not at all
 * (a kernel without PSI). */
typedef enum PressureSource {
        PRESSURE_SOURCE_TRIGGERS,
        PRESSURE_SOURCE_SAMPLER,
        PRESSURE_SOURCE_NONE,
} PressureSource;

#define HEALTH_TOP_MAX 5u          /* consumers recorded per anomaly, of each kind */
#define HEALTH_HISTORY_MAX 256u    /* closed anomalies kept (older ones: the journal) */
#define HEALTH_LINKS_MAX 16u       /* link rates recorded per anomaly */
#define HEALTH_PROCS_MAX 65536u    /* processes followed between samples */
#define HEALTH_UNITS_MAX 4096u     /* unit cgroups followed between samples */
#define HEALTH_PSI_WINDOW_USEC (2 * USEC_PER_SEC) /* a multiple of 2 s: allowed without
                                                    * CAP_SYS_RESOURCE */

typedef struct HealthProcess {
        int pid;
        char comm[16];
        double cpu_percent;
        uint64_t rss_bytes;
        double read_bps, write_bps; /* bytes per second */
} HealthProcess;

typedef struct HealthUnit {
        char name[128];
        double cpu_percent;
        uint64_t memory_bytes; /* 0 when the memory controller is not enabled there */
        double read_bps, write_bps;
} HealthUnit;

typedef struct HealthLinkRate {
        char name[16];
        double pps, dropped_pps; /* what the guard saw (ingress) */
        uint64_t rx_bytes, tx_bytes; /* the interface's own counters, cumulative */
        double rx_bps, tx_bps;       /* from them, bits per second (filled by the sampler) */
} HealthLinkRate;

typedef struct Anomaly {
        uint32_t id;
        HealthKind kind;
        double value, peak, threshold;
        uint64_t started_usec, ended_usec; /* CLOCK_REALTIME; ended 0 while open */
        HealthProcess processes[HEALTH_TOP_MAX];
        unsigned n_processes;
        HealthUnit units[HEALTH_TOP_MAX];
        unsigned n_units;
        HealthLinkRate links[HEALTH_LINKS_MAX];
        unsigned n_links;
} Anomaly;

typedef struct PressureValues {
        bool present;
        double some_avg10, some_avg60, full_avg10, full_avg60;
        uint64_t some_total_usec; /* cumulative stall time */
} PressureValues;

typedef struct Health Health;

typedef enum HealthEvent {
        HEALTH_SAMPLED,          /* figures changed (at most once per interval) */
        HEALTH_ANOMALY_STARTED,
        HEALTH_ANOMALY_ENDED,
        HEALTH_THRESHOLDS_CHANGED,
} HealthEvent;

/* Told of every event; `a` is the anomaly for STARTED/ENDED, NULL otherwise. */
typedef void (*health_event_t)(Health *h, HealthEvent event, const Anomaly *a, void *userdata);
/* Fills at most `max` link rates (name, pps, dropped_pps, rx_bytes, tx_bytes); returns how
 * many. */
typedef unsigned (*health_links_t)(HealthLinkRate *rates, unsigned max, void *userdata);

typedef struct HealthFigures {
        double cpu_percent, memory_percent, disk_read_mbps, disk_write_mbps;
        PressureValues pressure[_PRESSURE_MAX];
} HealthFigures;

int health_new(Health **ret, sd_event *event, const HealthConfig *config, health_links_t links,
               health_event_t on_event, void *userdata);
Health *health_free(Health *h);
static inline void health_freep(Health **h) {
        health_free(*h);
}

const HealthFigures *health_figures(const Health *h);
const HealthConfig *health_config(const Health *h);
PressureSource health_pressure_source(const Health *h);

/* Applies new thresholds (already validated, see health_threshold_table) and re-arms the
 * pressure triggers with them. */
int health_set_config(Health *h, const HealthConfig *c);

/* Open anomalies first (oldest first), then closed ones, newest first. */
unsigned health_n_anomalies(const Health *h);
const Anomaly *health_anomaly_at(const Health *h, unsigned i);

const char *health_kind_to_string(HealthKind k);
const char *pressure_resource_to_string(PressureResource r);
const char *pressure_source_to_string(PressureSource s);

/* Parses a pressure file's text ("some avg10=… avg60=…\nfull …"). */
int pressure_parse(const char *text, PressureValues *ret);

/* --- history from the journal (health-journal.c) --- */

/* Anomaly records read per call, at most: the read runs on the loop, and 4096 records took
 * 130-190 ms on a 2-core machine under load 11. Records of another kind than the one asked
 * for are left out by the journal's index and are not counted. */
#define HEALTH_JOURNAL_SCAN_MAX 2048u

typedef struct AnomalyJournalQuery {
        int kind;            /* -1: any */
        uint64_t since_usec; /* CLOCK_REALTIME; anomalies that ended before are left out */
        uint32_t limit;      /* anomalies returned, at most */
        /* Those the daemon still holds (their journal records are skipped). */
        const Anomaly *const *known;
        size_t n_known;
} AnomalyJournalQuery;

typedef struct AnomalyJournalInfo {
        unsigned entries;  /* records read */
        bool complete;     /* false: stopped by HEALTH_JOURNAL_SCAN_MAX, older ones remain */
} AnomalyJournalInfo;

/* The anomalies of the journal's ANOMALY_STARTED/ANOMALY_ENDED records that are not in
 * q->known, newest first, all closed: one whose end was never logged (the daemon stopped while
 * it was open) has ended_usec 0. Each has at most its top process and top unit and no link
 * rates. -ENOMEDIUM (with a message) when the daemon does not log to a journal. */
int health_journal_history(const AnomalyJournalQuery *q, Anomaly **ret, size_t *ret_n,
                           AnomalyJournalInfo *ret_info, char **ret_error);

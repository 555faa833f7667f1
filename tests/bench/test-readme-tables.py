#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""README.md's performance tables are what bench/readme-tables makes of the bench/run-all log
kept beside this script (run-all.log, written with them by `sudo bench/run-all --update-readme`),
and the program reads what each bench prints: on a recorded run (sample-run.log, a `--rounds 1`
run kept as it was) the tables hold rows read off that log by hand; a line changed or missing
stops it with the bench named and README.md untouched; lines no table reads are left out; and
the benches' sources still print every line the tables read. TAP output; no root, no bench
run."""

import contextlib
import importlib.machinery
import importlib.util
import io
import os
import re
import shutil
import sys
import tempfile

SRC = os.environ.get("SRCDIR") or \
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LOG = os.path.join(SRC, "tests", "bench", "run-all.log")
SAMPLE = os.path.join(SRC, "tests", "bench", "sample-run.log")
README = os.path.join(SRC, "README.md")

loader = importlib.machinery.SourceFileLoader("readme_tables",
                                              os.path.join(SRC, "bench", "readme-tables"))
spec = importlib.util.spec_from_loader("readme_tables", loader)
gen = importlib.util.module_from_spec(spec)
loader.exec_module(gen)

# Rows as sample-run.log prints their figures, read off it by hand, not from the program: a
# column read from the wrong place, a ratio or a goal's verdict computed wrongly, changes them.
EXPECTED_ROWS = [
    ('machine: the load average at the start and the end',
     '| load average at the start / at the end | 5.14 7.59 6.79 / 6.55 6.84 6.73 |'),
    ('xdp: a hot row: ratios to the flow floor and xdp-filter, by kernel time, goal missed',
     '| UDP/IPv4, hot (one packet repeated) | 64.3 (64.3–64.3) | 37.2 (37.2–37.2) | 6.8 (6.8–6.8) | 34.1 (34.1–34.1) | 1.73 | 1.89 | 1.94 | ≤ 1.25× xdp-filter and ≤ 1.6× floor | **no** |'),
    ('xdp: 100,000 flows in turn',
     '| UDP/IPv4, 100,000 flows in turn | 855.4 (855.4–855.4) | 849.6 (849.6–849.6) | 100.4 (100.4–100.4) | 266.0 (266.0–266.0) | 1.01 | 3.22 | – | ≤ 3× xdp-filter | **no** |'),
    ('xdp: the SYN flood in Mpps',
     '- Spoofed SYN flood, Mpps per core (1000 ÷ ns per packet): packetscope **0.67**, flow floor 0.74, xdp-filter 3.57, bare XDP 9.22.'),
    ('xdp-stages: a row with a negative step',
     '| TCP SYN/IPv4, 100,000 flows in turn | 143.1 | 157.2 (+14.1) | 987.3 (+830.1) | 973.0 (-14.3) | 107.0 |'),
    ('filter: first packet, hot, from --no-flow-cache, goal missed',
     '| first packet, hot udp4 | 66.8 | 107.9 | 242.7 | 221.0 | 230.8 | 230.0 | 2.13 | 40.7 | 5.65 | ÷ 1 rule ≤ 1.25 and ≤ 3× xdp-filter | **no** |'),
    ('filter: known flow, table mode, goal met',
     '| known flow, table udp4 | 558.8 | 624.5 | 589.0 | 561.1 | 518.2 | 600.9 | 0.96 | 437.9 | 1.37 | ÷ 1 rule ≤ 1.25 | yes |'),
    ('filter-apply: applying 100,000 rules, from --no-flow-cache',
     '| applying 100,000 rules into fresh maps (compile + load) | 504.7 ms | < 1,000 ms | yes |'),
    ('filter-apply: one rule added back, median (min–max)',
     '| that rule added back | 0.042 (0.010–0.160) ms | slowest < 5 ms | yes |'),
    ('bans: a CIDR row',
     '| cidr-32 | 256.2 (256.2–256.2) | 83.3 (83.3–83.3) |  |  |'),
    ('bans: the ratios at 1,000,000 bans, one over the goal',
     '| exact-1M ÷ exact-1 | 0.99 | 1.33 | ≤ 1.2 | **no** |'),
    ("bans-daemon: BanBatch, with the daemon's CPU",
     '| `BanBatch` end to end, 1,000,000 bans in calls of 100,000 | 74,825 bans/s (13.365 s) | 4,550 ms (219,780 bans per CPU second) | ≥ 100,000 bans/s | **no** |'),
    ('bans-daemon: Ban() with a million held',
     '| `Ban()` with 1,000,000 held, 200 calls | 3.974 (0.708–13.092) ms |  | median < 5 ms | yes |'),
    ('bans-daemon: the restart',
     '| restart: 1,000,200 bans restored | 1,483 ms | 719 ms | < 1,000 ms | **no** |'),
    ('bans-daemon: RSS in MB (10^6 bytes) from KiB, the full table over 100 MB',
     '| RSS empty / 1,000,000 bans / after the restart / its peak | 10.1 / 100.1 / 78.4 / 86.7 MB |  | < 100 MB | **no** |'),
    ('daemon: idle CPU',
     '| idle CPU over 60 s, % of one core | 0.756 | < 1 % | yes |'),
    ('daemon: RSS idle',
     '| RSS idle, sampled every second, MB | 14.6 (14.6–14.6), peak 14.6 | < 50 MB | yes |'),
    ('daemon: top 20 through the client',
     '| top 20 through the client, `connections --top 20 --json`, ms, 20 rounds | 58.6 (38.8–97.8) | median < 100 ms | yes |'),
    ("daemon: bench-list's block after the expiry line",
     '| top 20 in one process while they expire, ms | 1.03 (0.80–6.68) | — | – |'),
    ('loop: the Count reads during the import',
     '| `Count` read every 10 ms meanwhile: median, p99, max | 0.29, 69.64, 312.40 ms |  | each < 50 ms | **no** |'),
    ('loop: Delete, with the CPU of both',
     '| one `Delete` with 100,000 held, 21 calls | 25.63 (3.62–203.99) ms | 11.0 ms with the `Add` | median < 10 ms | **no** |'),
]

# (file, a string its output code must hold for a line a table reads)
PRINTS = [
    ('bench/run-all', 'echo "## $name"'),
    ('bench/run-all', 'took $((SECONDS - t0)) s; load average before $load0,'),
    ('bench/run-all', '"after $(cut -d\' \' -f1-3 /proc/loadavg)"'),
    ('bench/run-all', 'echo "# $(uname -srm); $(nproc) CPUs; $model"'),
    ('bench/run-all', 'echo "# $system; $(date -u \'+%Y-%m-%d %H:%M UTC\'); rounds $rounds"'),
    ('bench/run-all', '# load average at the start:'),
    ('bench/run-all', '# load average at the end:'),
    ('bench/run-all', '# run-all took'),
    ('bench/bench-xdp.c', 'load average before %s, after %s'),
    ('bench/bench-xdp.c', '"hot: one packet, %u repetitions per run, CPU time; a round\'s run made of %u "'),
    ('bench/bench-xdp.c', '"one repetition per run, %u runs, kernel time'),
    ('bench/bench-xdp.c', '"guard/floor", "guard/xdp-f"'),
    ('bench/bench-xdp.c', '"+bans", "+classify", "+flow update=guard", "bare"'),
    ('bench/bench-xdp.c', '"%.1f [%.1f-%.1f]"'),
    ('bench/bench-xdp.c', '"by CPU time"'),
    ('bench/bench-xdp.c', 'Mpps per core'),
    ('bench/bench-xdp.c', 'guard %.2f, flow floor %.2f, "'),
    ('bench/bench-filter.c', 'load average %.2f %.2f %.2f at start, '),
    ('bench/bench-filter.c', 'rule sets (seed'),
    ('bench/bench-filter.c', '"hot: one packet, %u repetitions per run, CPU time; table: %u packets from "'),
    ('bench/bench-filter.c', 'applying %zu rules (wall time, median of %u fresh starts): compile'),
    ('bench/bench-filter.c', 'index + kernel (wall time, min/median/max of "'),
    ('bench/bench-filter.c', '"%u): %.3f / %.3f / %.3f ms\\n"'),
    ('bench/bench-filter.c', 'print_row("guard / xdp-filter"'),
    ('bench/bench-filter.c', ' ÷ 1 rule: %.2f'),
    ('bench/bench-filter.c', 'applying %zu rules (wall time'),
    ('bench/bench-filter.c', 'other bank empty: compile'),
    ('bench/bench-filter.c', 'steady state (the set before last deleted from the'),
    ('bench/bench-filter.c', 'one rule deleted with %zu held, index + kernel'),
    ('bench/bench-filter.c', 'that rule added back: %.3f / %.3f / %.3f ms'),
    ('bench/bench-bans.c', '"banned (10.0.0.1)", "clean (198.18.0.5)"'),
    ('bench/bench-bans.c', '"%.1f (%.1f-%.1f)"'),
    ('bench/bench-bans.c', 'exact-1M / exact-1, %s frame: %.2f'),
    ('bench/bench-bans-daemon.sh', 'state directory           %s (%s)'),
    ('bench/bench-bans-daemon.sh', 'append+fdatasync of a record, %s times   min %s ms, median %s ms, max %s ms'),
    ('bench/bench-bans-daemon.sh', 'BanBatch, %s bans in calls of %s   %s s, %s bans/s'),
    ('bench/bench-bans-daemon.sh', 'the floor: the same calls refused once read   %s s, %s bans/s; the daemon'),
    ('bench/bench-bans-daemon.sh', 'CPU time   %s ms (%s bans per CPU second)'),
    ('bench/bench-bans-daemon.sh', 'Ban() with %s held, %s calls      min %s ms, median %s ms, max %s ms'),
    ('bench/bench-bans-daemon.sh', 'restart: restored         %s'),
    ('bench/bench-bans-daemon.sh', 'RSS empty / %s bans / after the restart   %s KiB / %s KiB / %s KiB'),
    ('bench/bench-bans-daemon.sh', 'RSS peak after the restart %s KiB'),
    ('bench/bench-bans-daemon.sh', 'restart with a journal of %s records (bans.log %s KiB): restored %s'),
    ('bench/bench-bans-daemon.sh', 'BanFile, %s bans in files of %s lines   %s s, %s bans/s'),
    ('bench/bench-daemon.sh', 'load average before        %s'),
    ('bench/bench-daemon.sh', 'load average after         %s'),
    ('bench/bench-daemon.sh', 'flows in table            %s (filled in'),
    ('bench/bench-daemon.sh', 'idle CPU over %ss          %s%% of one core'),
    ('bench/bench-daemon.sh', 'per second (one poll tick, one sweep slice), ms of CPU   %s'),
    ('bench/bench-daemon.sh', 'RSS idle, sampled every second   %s KiB; peak %s KiB'),
    ('bench/bench-daemon.sh', 'ranked view first seen    %.1f s after the fill, its pass begun %.1f s before'),
    ('bench/bench-daemon.sh', 'ms end to end through the client, %s rounds (load average %s)'),
    ('bench/bench-daemon.sh', 'process start-up floor (packetscopectl --version)     %s'),
    ('bench/bench-daemon.sh', 'top-20, ranked view (connections --top 20 --json)      %s'),
    ('bench/bench-daemon.sh', 'top-20, whole table (--fresh)                          %s'),
    ('bench/bench-daemon.sh', 'printf "min %.*f, median %.*f, max %.*f"'),
    ('bench/bench-daemon.sh', 'RSS after the queries     %s KiB'),
    ('bench/bench-daemon.sh', 'flows expired at once: per second (one poll, one slice), ms of CPU over %s s   %s'),
    ('bench/bench-daemon.sh', 'filters.json               %s bytes'),
    ('bench/bench-daemon.sh', 'append + fdatasync of 200 B  min/median/max %.2f / %.2f / %.2f ms'),
    ('bench/bench-list.c', 'List {limit %u%s}, %u rounds, %u rows: ms, min / median / max'),
    ('bench/bench-list.c', '"  %-34s %8.2f %8.2f %8.2f\\n"'),
    ('bench/bench-list.c', 'whole round (no process start)'),
    ('bench/bench-list.c', "of which the daemon's CPU"),
    ('bench/bench-list.c', 'rank_age_usec of the rows, in s'),
    ('bench/bench-loop.c', "import of %u rules (replace)     %.1f ms end to end (the daemon's CPU: %.0f ms)"),
    ('bench/bench-loop.c', 'Count reads meanwhile, every 10 ms  %u: median %.2f ms, p99 %.2f ms, max %.2f ms, '),
    ('bench/bench-loop.c', '%u at 50 ms or more'),
    ('bench/bench-loop.c', "ListRange walk, pages of %u        %.1f ms for %u rules (the daemon's CPU: %.0f ms)"),
    ('bench/bench-loop.c', 'one Delete, then one Add, with %u rules held   %.2f ms, %.2f ms (medians of %u; the '),
    ('bench/bench-loop.c', "daemon's CPU for both: %.1f ms)"),
    ('bench/bench-loop.c', 'Delete min/median/max  %.2f / %.2f / %.2f ms;  Add min/median/max  %.2f / %.2f / '),
    ('bench/bench-loop.c', 'fd: %u rules, %u rounds alternated, each figure min / median / max'),
    ('bench/bench-loop.c', 'fd: %-8s (replace)'),
    ('bench/bench-loop.c', '"ListFd, the document parsed (list-doc)"'),
    ('bench/bench-loop.c', '";  the daemon\'s CPU"'),
    ('bench/bench-loop.c', '"%s %.1f / %.1f / %.1f ms"'),
]

# (what to change in the log, as re.sub with re.M, the bench the error must name)
CHANGES = [
    (r"^# load average at the end.*\n", "", "run-all"),
    (r"^# Linux", "# linux", "run-all"),
    (r"guard/xdp-f", "guard:xdp-f", "bench-xdp"),
    (r"^mode .* parse .*\n", "", "bench-xdp"),
    (r"^SYN flood, every packet", "SYN flood: every packet", "bench-xdp"),
    (r" ÷ 1 rule: ", " over 1 rule: ", "bench-filter"),
    (r"^  guard / xdp-filter", "  guard : xdp-filter", "bench-filter"),
    (r"^that rule added back:", "that rule added again:", "bench-filter"),
    (r"^exact-1M / exact-1, banned", "exact-1M vs exact-1, banned", "bench-bans"),
    (r"^exact-1M  ", "exact-1m  ", "bench-bans"),
    (r"^## bench-bans --rounds", "## bench-bans-x --rounds", "bench-bans"),
    (r"^BanBatch, ", "BanBatch of ", "bench-bans-daemon.sh"),
    (r"^RSS peak after the restart", "RSS peak, after the restart", "bench-bans-daemon.sh"),
    (r"^idle CPU over", "idle CPU during", "bench-daemon.sh"),
    (r"whole round \(no process start\)", "whole round", "bench-daemon.sh"),
    (r"^ListRange walk, pages of", "ListRange walk in pages of", "bench-loop"),
]

n = 0
failed = False


def check(ok, what, detail=""):
    global n, failed
    n += 1
    print("%s %d - %s" % ("ok" if ok else "not ok", n, what))
    if not ok:
        failed = True
        for line in detail.splitlines():
            print("# " + line)


def run(*argv):
    """readme-tables' main() in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = gen.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def write(path, text):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def outside(text):
    """README.md without what lies between its bench markers."""
    return re.sub(r"(<!-- bench:\S+ begin -->).*?(<!-- bench:\S+ end -->)", r"\1\2", text,
                  flags=re.S)


def main():
    tmp = tempfile.mkdtemp()
    try:
        tests(tmp)
    finally:
        shutil.rmtree(tmp)
    print("1..%d" % n)
    return 1 if failed else 0


def tests(tmp):
    log, readme = read(SAMPLE), read(README)

    # The tables of the recorded run.
    rc, tables, err = run(SAMPLE)
    check(rc == 0 and not err, "readme-tables reads sample-run.log", err)
    for name in gen.TABLES:
        m = re.search(r"<!-- bench:%s begin -->\n\n(.*?)\n\n<!-- bench:%s end -->" % (name, name),
                      tables, re.S)
        rows = len(re.findall(r"^\| ", m.group(1), re.M)) if m else 0
        check(rows >= 3, "table %s between its markers, with %d rows" % (name, rows))
    lines = tables.splitlines()
    for what, row in EXPECTED_ROWS:
        label = row.split("|")[1] if row.startswith("|") else row[:30]
        check(row in lines, what, "expected: %s\ngot: %s" %
              (row, "\n".join(l for l in lines if label in l)))

    # README.md: every marker, and the tables of this log between them.
    rc, _, err = run("--check", README, LOG)
    check(rc == 0, "README.md has every marker once, in order", err)
    copy = os.path.join(tmp, "README.md")
    write(copy, readme)
    run("--update", copy, LOG)
    check(read(copy) == readme, "README.md's tables are those of tests/bench/run-all.log "
          "(both are made anew by sudo bench/run-all --update-readme)")
    stale = re.sub(r"(<!-- bench:bans begin -->\n).*?(<!-- bench:bans end -->)",
                   r"\1stale figures\n\2", readme, flags=re.S)
    write(copy, stale)
    run("--update", copy, LOG)
    check(read(copy) == readme, "--update replaces what is between the markers")
    check(outside(stale) == outside(readme), "--update leaves the text outside the markers")
    run("--update", copy, LOG)
    check(read(copy) == readme, "a second --update changes nothing")
    write(copy, readme.replace("<!-- bench:daemon end -->", ""))
    rc, _, err = run("--check", copy, LOG)
    check(rc == 1 and "bench:daemon end" in err,
          "a README without a marker fails --check, naming it", err)

    # A bench whose output changed stops it, README.md untouched.
    changed = os.path.join(tmp, "changed.log")
    for pattern, repl, bench in CHANGES:
        text = re.sub(pattern, repl, log, flags=re.M)
        if text == log:
            check(False, "/%s/ changes something in sample-run.log" % pattern)
            continue
        write(changed, text)
        write(copy, readme)
        rc, out, err = run("--update", copy, changed)
        check(rc == 1 and bench in err and read(copy) == readme,
              "log changed by /%s/: exit 1, '%s' named, README.md untouched" % (pattern, bench),
              "exit %s, stderr: %s" % (rc, err))

    # What no table reads is left out: a row and a block more in bench-filter, a line more from
    # bench-loop, a section more.
    more = log.replace("  guard / xdp-filter", "  guard, SYN flood        1.0       1.0       1.0"
                       "       1.0       1.0       1.0\n  guard / xdp-filter", 1)
    more = more.replace("\napplying ", "\n".join([
        "",
        "hot synflood (every packet a new source)",
        "  rules                      0         1       100      1000     10000    100000",
        "  guard                  100.0     101.0     102.0     103.0     104.0     105.0",
        "  xdp-filter              40.0      40.0      40.0      40.0      40.0      40.0",
        "  guard / xdp-filter      2.50      2.52      2.55      2.58      2.60      2.62",
        "  guard 100000 ÷ 1 rule: 1.04 (goal <= 1.25: met)",
        "",
        "applying "]), 1)
    more = more.replace("\nListRange walk", "\nImportFd of 100000 rules      512.0 ms end to end"
                        "\nListRange walk", 1)
    more = more.replace("\n# load average at the end", "\n## bench-new\nsomething else\n"
                        "\n# load average at the end", 1)
    write(changed, more)
    rc, out, err = run(changed)
    check(rc == 0 and not err, "rows, blocks, lines and sections more are read without error", err)
    row = ("| known flow, hot synflood | 100.0 | 101.0 | 102.0 | 103.0 | 104.0 | 105.0 | 1.04 "
           "| 40.0 | 2.62 | ÷ 1 rule ≤ 1.25 | yes |")
    check(row in out.splitlines(), "a block more in bench-filter is a row more of its table")
    check([l for l in out.splitlines() if "synflood" not in l] == lines,
          "the other tables are as before")
    rc, _, err = run(LOG)
    check(rc == 0 and not err, "readme-tables reads run-all.log", err)

    # The benches still print what the tables read.
    sources = {}
    for path, string in PRINTS:
        if path not in sources:
            sources[path] = read(os.path.join(SRC, path))
        check(string in sources[path], "%s prints '%s'" % (path, string),
              "bench/readme-tables reads that line: adapt it to the new output and record "
              "tests/bench/run-all.log anew (sudo bench/run-all --update-readme)")


if __name__ == "__main__":
    sys.exit(main())

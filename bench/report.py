#!/usr/bin/env python3
"""bench/report.py - turns the raw results of bench/run.sh into the results files.

Reads DATA/ (meta.env, NAME.wrk with one WRK json line per round, connhold.json, coldstart.json,
sigv4.txt, skipped.txt) and writes OUT.json (everything, raw rounds included), OUT.md (the table,
ratios against the issue's targets, machine and versions) and OUT.png (gnuplot: throughput and
latency percentiles per scenario). Medians over rounds; every ratio is between figures of the
same run.

Usage: report.py --data DIR --out PATH_WITHOUT_EXTENSION
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

# name -> label, in the order of the table and the chart
SERIES = [
    ("nginx", "nginx, static (the ceiling)"),
    ("gw_invoke", "gateway POST /invoke/echo"),
    ("gw_face", "gateway Invoke API face (echo)"),
    ("gw_invoke_log", "gateway /invoke/echo, access log on"),
    ("peer", "serverless-offline --useInProcess, Invoke API"),
    ("fwd_direct", "upstream direct (Invoke API, local mode)"),
    ("fwd_lambda", "lambda mode -> upstream (/invoke/echo)"),
    ("fwd_nginx", "nginx proxy_pass -> upstream (reference)"),
    ("lat_direct", "upstream direct, 1 connection"),
    ("lat_lambda", "lambda mode -> upstream, 1 connection"),
    ("lat_nginx", "nginx proxy_pass -> upstream, 1 connection"),
    ("slow_lambda", "sleep 100 ms via lambda mode, many callers"),
    ("slow_direct", "sleep 100 ms upstream direct, many callers"),
    ("slow_lambda_ideal", "sleep 100 ms via lambda mode -> slowup.c upstream"),
    ("slow_ideal_direct", "sleep 100 ms slowup.c upstream direct"),
]
# short names for the chart's axis
SHORT = {
    "nginx": "nginx (ceiling)",
    "gw_invoke": "gw /invoke/echo",
    "gw_face": "gw Invoke API",
    "gw_invoke_log": "gw, access log on",
    "peer": "serverless-offline",
    "fwd_direct": "fwd: upstream direct",
    "fwd_lambda": "fwd: via lambda mode",
    "fwd_nginx": "fwd: via nginx proxy",
    "lat_direct": "c=1: upstream direct",
    "lat_lambda": "c=1: via lambda mode",
    "lat_nginx": "c=1: via nginx proxy",
    "slow_lambda": "slow: via lambda mode",
    "slow_direct": "slow: upstream direct",
    "slow_lambda_ideal": "slow: lambda -> slowup.c",
    "slow_ideal_direct": "slow: slowup.c direct",
}
SCENARIO = {
    "nginx": "1 local echo",
    "gw_invoke": "1 local echo",
    "gw_face": "1 local echo",
    "gw_invoke_log": "1 local echo",
    "peer": "2 peer",
    "fwd_direct": "3 forwarding",
    "fwd_lambda": "3 forwarding",
    "fwd_nginx": "3 forwarding",
    "lat_direct": "3 forwarding (c=1)",
    "lat_lambda": "3 forwarding (c=1)",
    "lat_nginx": "3 forwarding (c=1)",
    "slow_lambda": "4 slow functions",
    "slow_direct": "4 slow functions",
    "slow_lambda_ideal": "4 slow functions",
    "slow_ideal_direct": "4 slow functions",
}


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    return meta


def read_json(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def load_wrk(data):
    out = {}
    for name, _ in SERIES:
        path = os.path.join(data, name + ".wrk")
        if not os.path.exists(path):
            continue
        rounds = []
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    rounds.append(json.loads(line))
        good = [r for r in rounds if not r.get("failed")]
        s = {"rounds": rounds, "failed_rounds": len(rounds) - len(good)}
        if good:
            for k in ("rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us",
                      "server_cpu_us_per_req"):
                vals = [r[k] for r in good if k in r]
                s[k] = statistics.median(vals) if vals else None
            s["requests"] = sum(r["requests"] for r in good)
            s["errors"] = sum(
                r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] +
                r["err_timeout"] for r in good)
            s["rps_min"] = min(r["rps"] for r in good)
            s["rps_max"] = max(r["rps"] for r in good)
        out[name] = s
    return out


def mem_errors(mem):
    return (mem.get("throttled_429", 0) + mem["bad_status"] + mem["conn_errors"] + mem["closed"] +
            mem["connect_failed"])


def ms(us):
    return "%.3g" % (us / 1000.0) if us is not None else "-"


def fmt_rps(x):
    return "{:,.0f}".format(x) if x is not None else "-"


def targets(w, mem, cold, sig, meta):
    """Returns rows: (target, measured, ok or None when not measured)."""
    rows = []

    def get(name, key):
        s = w.get(name)
        return s.get(key) if s else None

    ng, gi, gf, pe = (get(n, "rps") for n in ("nginx", "gw_invoke", "gw_face", "peer"))
    for name, label in (("gw_invoke", "/invoke/echo"), ("gw_face", "Invoke API face")):
        g = get(name, "rps")
        if ng and g:
            rows.append(("local echo %s >= 60%% of nginx req/s" % label,
                         "%.0f%% (%s / %s)" % (100 * g / ng, fmt_rps(g), fmt_rps(ng)),
                         g >= 0.6 * ng))
        else:
            rows.append(("local echo %s >= 60%% of nginx req/s" % label, "not measured", None))
        p, pn = get(name, "p99_us"), get("nginx", "p99_us")
        if p and pn:
            rows.append(("local echo %s p99 <= 2x nginx's" % label,
                         "%.2fx (%s ms / %s ms)" % (p / pn, ms(p), ms(pn)), p <= 2 * pn))
        else:
            rows.append(("local echo %s p99 <= 2x nginx's" % label, "not measured", None))
        if pe and g:
            rows.append(("local echo %s >= 10x serverless-offline" % label,
                         "%.1fx (%s / %s)" % (g / pe, fmt_rps(g), fmt_rps(pe)), g >= 10 * pe))
        else:
            rows.append(("local echo %s >= 10x serverless-offline" % label, "not measured", None))
    fd, fl = get("fwd_direct", "rps"), get("fwd_lambda", "rps")
    if fd and fl:
        rows.append(("forwarding >= 45% of the upstream direct",
                     "%.0f%% (%s / %s)" % (100 * fl / fd, fmt_rps(fl), fmt_rps(fd)),
                     fl >= 0.45 * fd))
    fn = get("fwd_nginx", "rps")
    if fd and fn:
        rows.append(("(reference, no target) nginx as a proxy: share of the upstream direct",
                     "%.0f%% (%s / %s)" % (100 * fn / fd, fmt_rps(fn), fmt_rps(fd)), None))
    ld, ll = get("lat_direct", "p50_us"), get("lat_lambda", "p50_us")
    if ld and ll:
        rows.append(("forwarding: added median latency at c=1 < 100 us",
                     "%.0f us (%.0f us - %.0f us)" % (ll - ld, ll, ld), ll - ld < 100))
    ln = get("lat_nginx", "p50_us")
    if ld and ln:
        rows.append(("(reference, no target) nginx as a proxy: added median latency at c=1",
                     "%.0f us (%.0f us - %.0f us)" % (ln - ld, ln, ld), None))
    callers = int(meta.get("slow_callers", "1000"))
    ideal = callers / 0.1
    for name, upstream in (("slow_lambda", "gateway upstream"),
                           ("slow_lambda_ideal", "slowup.c upstream")):
        sl = w.get(name)
        if sl and sl.get("rps"):
            rows.append(("slow functions (%s): >= 90%% of ideal (%d callers / 0.1 s = %s req/s), "
                         "no errors" % (upstream, callers, fmt_rps(ideal)),
                         "%.0f%% (%s req/s), %d errors" % (100 * sl["rps"] / ideal,
                                                          fmt_rps(sl["rps"]), sl["errors"]),
                         sl["rps"] >= 0.9 * ideal and sl["errors"] == 0))
    idle = meta.get("mem_rss_kib_idle")
    if idle:
        rows.append(("memory idle < 10 MiB", "%.1f MiB" % (int(idle) / 1024.0),
                     int(idle) < 10 * 1024))
    if mem and not mem.get("failed"):
        peak = mem["rss_kib_peak"]
        allserved = mem["served_once"] == mem["connections"]
        errs = mem_errors(mem)
        allserved = allserved and mem.get("open_at_end") == mem["connections"]
        rows.append(("memory with %d busy connections < 100 MiB, all served" % mem["connections"],
                     "%.1f MiB peak; %d/%d served; %d errors" %
                     (peak / 1024.0, mem["served_once"], mem["connections"], errs),
                     peak < 100 * 1024 and allserved and errs == 0))
    if cold and not cold.get("failed"):
        rows.append(("cold start median < 20 ms", "%.1f ms (p90 %.1f, %d runs)" %
                     (cold["median_ms"], cold["p90_ms"], cold["runs"]), cold["median_ms"] < 20))
    if sig is not None:
        rows.append(("SigV4 >= 300,000 signatures/s, one core", "{:,.0f}/s".format(sig),
                     sig >= 300000))
    return rows


def chart(w, out_png, title):
    if not shutil.which("gnuplot"):
        return False
    names = [(n, lab) for n, lab in SERIES if n in w and w[n].get("rps")]
    if not names:
        return False
    dat = out_png[:-4] + ".dat"
    with open(dat, "w") as f:
        f.write("# label rps p50_ms p90_ms p99_ms\n")
        for n, lab in names:
            s = w[n]
            f.write('"%s" %.1f %.4f %.4f %.4f\n' % (SHORT.get(n, lab), s["rps"],
                                                    s["p50_us"] / 1e3, s["p90_us"] / 1e3,
                                                    s["p99_us"] / 1e3))
    script = """
set terminal pngcairo size 1400,1000 font ",10"
set yrange [*:*]
set output '{png}'
set multiplot layout 2,1 title "{title}"
set key outside right top
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set grid ytics
set logscale y
set xtics rotate by -35 left
set bmargin 8
set rmargin 14
set ylabel "requests/s (log)"
set title "Throughput (median of rounds)"
plot '{dat}' using 2:xtic(1) title "req/s" lc rgb "#3a6ea5"
set style histogram clustered gap 1
set ylabel "latency, ms (log)"
set title "Latency percentiles (wrk)"
plot '{dat}' using 3:xtic(1) title "p50" lc rgb "#6aa84f", \\
     '' using 4 title "p90" lc rgb "#f1c232", \\
     '' using 5 title "p99" lc rgb "#cc0000"
unset multiplot
""".format(png=out_png, dat=dat, title=title)
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    os.unlink(dat)
    if r.returncode != 0:
        sys.stderr.write("report.py: gnuplot failed: %s\n" % r.stderr)
        return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    meta = read_meta(os.path.join(a.data, "meta.env"))
    w = load_wrk(a.data)
    mem = read_json(os.path.join(a.data, "connhold.json"))
    cold = read_json(os.path.join(a.data, "coldstart.json"))
    sig = None
    try:
        with open(os.path.join(a.data, "sigv4.txt")) as f:
            sigtext = f.read()
        m = re.search(r"([0-9.]+) signatures/s", sigtext)
        sig = float(m.group(1)) if m else None
    except OSError:
        sigtext = ""
    skipped = []
    if os.path.exists(os.path.join(a.data, "skipped.txt")):
        with open(os.path.join(a.data, "skipped.txt")) as f:
            skipped = [line.strip() for line in f if line.strip()]

    rows = targets(w, mem, cold, sig, meta)
    png = a.out + ".png"
    title = "lambda-gateway benchmark %s, %s cores, %s" % (meta.get("date", "?"),
                                                          meta.get("cores", "?"),
                                                          meta.get("gateway_rev", "?"))
    have_chart = chart(w, png, title)

    result = {"meta": meta, "wrk": w, "memory": mem, "coldstart": cold,
              "sigv4_per_s": sig, "targets": [
                  {"target": t, "measured": m, "pass": ok} for t, m, ok in rows],
              "skipped": skipped}
    with open(a.out + ".json", "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")

    L = []
    L.append("# lambda-gateway benchmark, %s" % meta.get("date", "?"))
    L.append("")
    if meta.get("quick") == "1":
        L.append("**Quick smoke run (`--quick`): short runs, small numbers; not a measurement.**")
        L.append("")
    L.append("Machine: %s, %s cores, %.1f GiB, %s (%s). Load: `%s` at the start, `%s` at the "
             "end." % (meta.get("cpu", "?"), meta.get("cores", "?"),
                       int(meta.get("mem_kib", "0")) / 1048576.0, meta.get("kernel", "?"),
                       meta.get("os", "?"), meta.get("uptime_start", "?").strip(),
                       meta.get("uptime_end", "?").strip()))
    L.append("")
    L.append("Versions: gateway %s (`%s`), libmicrohttpd %s, libcurl %s, nginx %s, wrk %s, "
             "node %s, serverless %s, serverless-offline %s." %
             (meta.get("gateway_version", "?").replace("lambda-gateway ", ""),
              meta.get("gateway_rev", "?"), meta.get("libmicrohttpd", "?"),
              meta.get("libcurl", "?"), meta.get("nginx", "?"), meta.get("wrk", "?"),
              meta.get("node", "?"), meta.get("serverless", "?"),
              meta.get("serverless_offline", "?")))
    L.append("")
    L.append("Settings: `wrk -t2 -c32 -d%ss` (POST of a 27-byte JSON body; nginx gets the same "
             "POST), %s interleaved round(s), medians shown; every gateway runs with its access "
             "log **off**, as nginx does (one extra row with it on, to /dev/null); "
             "serverless-offline logs each call to stdout (its default; to a file here). "
             "*Server CPU us/req* is the user+system CPU time of the server processes (nginx's "
             "workers; for forwarding both gateways) divided by the requests: other load on the "
             "machine disturbs it far less than requests/s. Slow functions: wrk -t2 -c%s, the "
             "upstream with LGW_MAX_WORKERS=%s. Memory: LGW_SYNC_QUEUE_MAX above the number of "
             "connections, so no call is throttled." %
             (meta.get("duration_s", "?"), meta.get("rounds", "?"),
              meta.get("slow_callers", "?"), int(meta.get("slow_callers", "1000")) + 100))
    L.append("")
    L.append("| scenario | what | req/s (median) | p50 ms | p90 ms | p99 ms | errors | "
             "server CPU us/req |")
    L.append("|---|---|---|---|---|---|---|---|")
    for n, lab in SERIES:
        s = w.get(n)
        if not s:
            continue
        if not s.get("rps"):
            L.append("| %s | %s | failed | | | | | |" % (SCENARIO[n], lab))
            continue
        cpu = s.get("server_cpu_us_per_req")
        L.append("| %s | %s | %s | %s | %s | %s | %d | %s |" %
                 (SCENARIO[n], lab, fmt_rps(s["rps"]), ms(s["p50_us"]), ms(s["p90_us"]),
                  ms(s["p99_us"]), s["errors"], "%.0f" % cpu if cpu else "-"))
    if mem and not mem.get("failed"):
        L.append("| 5 memory | %d keep-alive connections, all busy (connhold) | %s | | | | %d | |" %
                 (mem["connections"], fmt_rps(mem["rps"]), mem_errors(mem)))
    if cold and not cold.get("failed"):
        L.append("| 6 cold start | fork+exec to first 200 (median of %d) | | %.2f | %.2f (p90) "
                 "| | %d | |" % (cold["runs"], cold["median_ms"], cold["p90_ms"], cold["failed"]))
    if sig is not None:
        L.append("| 7 SigV4 | signatures/s, 1 KiB body, one thread | {:,.0f} | | | | | |"
                 .format(sig))
    L.append("")
    m = mem if mem and not mem.get("failed") else {}
    L.append("Memory (VmRSS, KiB): started %s, idle after one call %s (of which anonymous, "
             "RssAnon: %s; the rest is shared-library pages); with %s connections: once "
             "all were answered %s, peak while all busy %s, all held open idle %s; after they "
             "closed %s; threads %s. Connections still open at the end: %s; answers: %s ok, "
             "%s throttled (429), %s other; %s closed by the server."
             % (meta.get("mem_rss_kib_started", "?"), meta.get("mem_rss_kib_idle", "?"),
                meta.get("mem_anon_kib_idle", "?"), m.get("connections", "?"), m.get("rss_kib_all_served", "?"),
                m.get("rss_kib_peak", "?"), m.get("rss_kib_idle_held", "?"),
                meta.get("mem_rss_kib_after_close", "?"), meta.get("mem_threads", "?"),
                m.get("open_at_end", "?"), m.get("ok", "?"), m.get("throttled_429", "?"),
                m.get("bad_status", "?"), m.get("closed", "?")))
    if meta.get("peer_rss_kib"):
        L.append("serverless-offline VmRSS after its runs: %s KiB." % meta["peer_rss_kib"])
    L.append("")
    L.append("## Targets (issue 5)")
    L.append("")
    L.append("| target | measured (same run) | |")
    L.append("|---|---|---|")
    for t, m, ok in rows:
        L.append("| %s | %s | %s |" % (t, m, "" if ok is None else ("pass" if ok else "**fail**")))
    L.append("")
    if skipped:
        L.append("Skipped: " + "; ".join(skipped) + ".")
        L.append("")
    if have_chart:
        L.append("![throughput and latency per scenario](%s)" % os.path.basename(png))
        L.append("")
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(L))


if __name__ == "__main__":
    main()

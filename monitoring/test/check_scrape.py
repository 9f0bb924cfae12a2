#!/usr/bin/python3
"""Compare what postgres_exporter serves with what lambdaguard.metrics holds.

    check_scrape.py QUERIES_YAML METRICS_URL EXPECT_JSON -- PSQL_COMMAND...

PSQL_COMMAND is a psql invocation (connection options included) that this
script runs with -AtX -c to read the view.  EXPECT_JSON holds the workload's
known figures: {"metric{label=value,...}": number, ...} (labels sorted by
name, "{}" when none).

Checks, one line each ("ok - ..." or "not ok - ..."):
  * every row of lambdaguard.metrics is served with the same name, labels and
    value (read the view, scrape, read the view again: counters and gauges
    must equal the view, a metric whose name ends in _age_seconds must lie
    between the two readings; repeated while the view moved between them);
  * every metric the queries file declares is served with a number (not NaN);
  * the exporter's own gauges say the queries file loaded and ran cleanly;
  * each figure of EXPECT_JSON equals the scraped value.
"""

import json
import math
import re
import subprocess
import sys
import time
import urllib.request

import yaml

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')
# labels the exporter (or Prometheus) adds to every series
TARGET_LABELS = {"server", "instance", "job"}

results = []


def report(ok, what):
    results.append(ok)
    print(("ok - " if ok else "not ok - ") + what, flush=True)


def key(name, labels):
    return name + "{" + ",".join(f"{k}={labels[k]}" for k in sorted(labels)) + "}"


def declared(queries_file):
    """Metric names (and their labels) the queries file makes the exporter emit."""
    with open(queries_file) as f:
        doc = yaml.safe_load(f)
    out = {}
    for ns, q in doc.items():
        labels = [list(c)[0] for c in q["metrics"] if list(c.values())[0]["usage"] == "LABEL"]
        for c in q["metrics"]:
            col, spec = list(c.items())[0]
            if spec["usage"] in ("GAUGE", "COUNTER"):
                out[f"{ns}_{col}"] = set(labels)
    return out


def scrape(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f"unparsable exposition line: {line!r}")
        name, _, body, value = m.group(1), m.group(2), m.group(3) or "", m.group(4)
        labels = {k: v for k, v in LABEL.findall(body)}
        own = {k: v for k, v in labels.items() if k not in TARGET_LABELS}
        samples[key(name, own)] = (name, own, float(value))
    return samples


def view(psql):
    out = subprocess.run(
        psql + ["-AtX", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c",
                "SELECT metric, labels::text, coalesce(value::text, 'NULL') "
                "FROM lambdaguard.metrics"],
        check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        metric, labels, value = line.split("\t")
        k = key(metric, {a: str(b) for a, b in json.loads(labels).items()})
        if k in rows:
            report(False, f"the view holds {k} twice")
        rows[k] = None if value == "NULL" else float(value)
    return rows


def main():
    queries_file, url, expect_file = sys.argv[1:4]
    assert sys.argv[4] == "--"
    psql = sys.argv[5:]
    decl = declared(queries_file)
    with open(expect_file) as f:
        expect = json.load(f)

    # a reading where the view did not move (but for the ages)
    for attempt in range(20):
        before = view(psql)
        served = scrape(url)
        after = view(psql)
        moved = [k for k in before
                 if not k.split("{")[0].endswith("_age_seconds") and before.get(k) != after.get(k)]
        if not moved and before.keys() == after.keys():
            break
        time.sleep(0.5)
    else:
        report(False, f"the view kept moving between two readings: {moved}")

    print(f"# the view holds {len(before)} rows; the exporter serves "
          f"{sum(1 for k in served if k.startswith('lambdaguard_'))} lambdaguard series")

    # the exporter read the queries file and ran every query
    for k, (name, _, value) in sorted(served.items()):
        if name == "pg_exporter_user_queries_load_error":
            report(value == 0, f"the exporter loaded the queries file ({k} = {value:g})")
    err = served.get("pg_exporter_last_scrape_error{}")
    report(err is not None and err[2] == 0,
           f"the exporter's last scrape ran without error (pg_exporter_last_scrape_error = {err and err[2]})")

    # every row of the view is served, with the same value
    for k in sorted(before):
        v1, v2 = before[k], after.get(k)
        name = k.split("{")[0]
        if name not in decl:
            report(False, f"{k}: the view holds it, the queries file does not declare {name}")
            continue
        if k not in served:
            if v1 is None and v2 is None:
                report(True, f"{k}: NULL in the view, absent from the scrape")
            else:
                report(False, f"{k}: the view holds {v1}, the exporter does not serve it")
            continue
        s = served[k][2]
        if name.endswith("_age_seconds"):
            lo, hi = min(v1, v2), max(v1, v2)
            report(lo - 1e-9 <= s <= hi + 1e-9 or (v2 < v1 and s >= 0),
                   f"{k}: served {s:g}, the view read {v1:g} before and {v2:g} after")
        else:
            report(s == v1, f"{k}: served {s:g}, the view holds {v1:g}")

    # every declared metric is served, as a number, only with its labels
    for name, labels in sorted(decl.items()):
        series = {k: (lab, v) for k, (n, lab, v) in served.items() if n == name}
        if not series:
            report(False, f"{name}: declared in the queries file, not served")
            continue
        nan = [k for k, (_, v) in series.items() if math.isnan(v)]
        report(not nan, f"{name}: served as {len(series)} series"
               + (f", NaN (not in the view): {nan}" if nan else ""))
        for k, (lab, _) in series.items():
            got = set(lab)
            if got != labels:
                report(False, f"{k}: labels {sorted(got)}, the queries file declares {sorted(labels)}")
        if not nan and not [k for k in before if k.startswith(name + "{")]:
            report(False, f"{name}: declared and served, but the view holds no row of it")

    # the workload's known figures
    for k, want in sorted(expect.items()):
        got = served.get(k)
        if got is None:
            report(False, f"{k}: expected {want}, not served")
        else:
            report(got[2] == want, f"{k}: served {got[2]:g}, the workload makes it {want}")

    failed = results.count(False)
    print(f"# check_scrape: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

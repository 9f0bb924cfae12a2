#!/usr/bin/python3
"""Check the PromQL of the Grafana dashboard and of the alert rules against
the metrics postgres_exporter emits with the queries file.

    check_exprs.py QUERIES_YAML ALERTS_YML DASHBOARD_JSON

One line per check ("ok - ..." or "not ok - ..."):
  * the dashboard is valid JSON, with a title, a uid and panels;
  * every expression parses (promtool check rules, on a rules file made of
    them, Grafana's $variables replaced by values);
  * every metric an expression names is one the queries file declares, and
    every label it matches or groups by is one that metric carries (or a
    target label: instance, job, server);
  * every declared metric appears on the dashboard;
  * every alert has a severity, a summary and a runbook pointing to the
    README's "Monitoring" section.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

TARGET_LABELS = {"instance", "job", "server"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan", "atan2"}
PROMTOOL = os.environ.get("PROMTOOL", "/usr/bin/promtool")

results = []


def report(ok, what):
    results.append(ok)
    print(("ok - " if ok else "not ok - ") + what, flush=True)


def declared(queries_file):
    with open(queries_file) as f:
        doc = yaml.safe_load(f)
    out = {}
    for ns, q in doc.items():
        labels = {list(c)[0] for c in q["metrics"] if list(c.values())[0]["usage"] == "LABEL"}
        for c in q["metrics"]:
            col, spec = list(c.items())[0]
            if spec["usage"] in ("GAUGE", "COUNTER"):
                out[f"{ns}_{col}"] = labels
    return out


def grafana_to_promql(expr):
    """Replace Grafana's variables by values Prometheus accepts."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    expr = re.sub(r"\$\{(\w+)(:\w+)?\}|\$(\w+)", ".*", expr)
    return expr


def names_in(expr):
    """(metrics, {metric: matcher label names}, grouping label names) of a
    PromQL expression; a small tokenizer, enough for these files."""
    matchers = {}
    for m in re.finditer(r'([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}', expr):
        labels = set(re.findall(r'(\w+)\s*(?:=~|!~|!=|=)\s*"', m.group(2)))
        matchers.setdefault(m.group(1) or "", set()).update(labels)
    grouping = set()
    for m in re.finditer(r'\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)', expr):
        grouping.update(x.strip() for x in m.group(2).split(",") if x.strip())
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    e = re.sub(r'\{[^}]*\}', ' ', e)
    e = re.sub(r'\[[^\]]*\]', ' ', e)
    e = re.sub(r'\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', ' ', e)
    e = re.sub(r'(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?(?![\w:])', ' ', e)
    metrics = set()
    for m in re.finditer(r'[a-zA-Z_:][\w:]*', e):
        word = m.group(0)
        if word.lower() in KEYWORDS or re.match(r'\s*\(', e[m.end():]):
            continue
        metrics.add(word)
    return metrics, matchers, grouping


def panels_of(node):
    for p in node.get("panels", []):
        yield p
        yield from panels_of(p)


def main():
    queries_file, alerts_file, dashboard_file = sys.argv[1:4]
    decl = declared(queries_file)
    all_labels = set().union(*decl.values()) | TARGET_LABELS

    # the dashboard
    try:
        with open(dashboard_file) as f:
            dash = json.load(f)
    except ValueError as e:
        report(False, f"{dashboard_file}: not valid JSON: {e}")
        return finish()
    report(True, f"{os.path.basename(dashboard_file)} is valid JSON")
    report(bool(dash.get("title")) and bool(dash.get("uid")) and bool(dash.get("panels")),
           f"the dashboard has a title ({dash.get('title')!r}), a uid and panels")

    exprs = []      # (where, PromQL)
    for p in panels_of(dash):
        for t in p.get("targets", []):
            if "expr" in t:
                exprs.append((f"dashboard panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r'\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*', q or "")
        if not m:
            report(False, f"dashboard variable {v.get('name')!r}: query {q!r} is not label_values(metric, label)")
            continue
        exprs.append((f"dashboard variable {v.get('name')!r}", m.group(1)))
        metric = m.group(1).split("{")[0]
        report(m.group(2) in decl.get(metric, set()) | TARGET_LABELS,
               f"dashboard variable {v.get('name')!r}: label {m.group(2)!r} of {metric}")

    # the alert rules
    with open(alerts_file) as f:
        rules = yaml.safe_load(f)
    for g in rules["groups"]:
        for r in g["rules"]:
            name = r.get("alert") or r.get("record")
            exprs.append((f"rule {name}", r["expr"]))
            if "alert" in r:
                ann = r.get("annotations", {})
                report(r.get("labels", {}).get("severity") in ("warning", "critical")
                       and len(ann.get("summary", "")) > 20
                       and "README.md#monitoring" in ann.get("runbook", ""),
                       f"alert {name}: severity, summary and runbook (README.md#monitoring)")

    # every expression parses: promtool reads them as recording rules
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "check", "rules": [
            {"record": f"check:expr_{i}", "expr": grafana_to_promql(e)} for i, (_, e) in enumerate(exprs)]}]}, f)
        tmp = f.name
    try:
        p = subprocess.run([PROMTOOL, "check", "rules", tmp], capture_output=True, text=True)
        report(p.returncode == 0, f"promtool parses all {len(exprs)} expressions"
               + ("" if p.returncode == 0 else ": " + (p.stdout + p.stderr).strip().replace("\n", " | ")))
    finally:
        os.unlink(tmp)

    # every metric and label is one the exporter emits
    used = set()
    for where, e in exprs:
        metrics, matchers, grouping = names_in(grafana_to_promql(e))
        bad = sorted(m for m in metrics if m not in decl)
        used |= metrics
        problems = [f"metric {m} is not emitted by the exporter (not in the queries file)" for m in bad]
        for metric, labels in matchers.items():
            allowed = (decl[metric] | TARGET_LABELS) if metric in decl else all_labels
            problems += [f"label {l!r} of {metric or 'a selector'} is not emitted" for l in sorted(labels - allowed)]
        problems += [f"grouping label {l!r} is not emitted" for l in sorted(grouping - all_labels)]
        report(not problems and bool(metrics),
               f"{where}: {', '.join(sorted(metrics)) or 'no metric'}"
               + ("" if not problems else ": " + "; ".join(problems)))

    dash_metrics = set()
    for p in panels_of(dash):
        for t in p.get("targets", []):
            dash_metrics |= names_in(grafana_to_promql(t.get("expr", "")))[0]
    missing = sorted(set(decl) - dash_metrics)
    report(not missing, "the dashboard shows every metric of the queries file"
           + (f"; missing: {', '.join(missing)}" if missing else ""))
    return finish()


def finish():
    failed = results.count(False)
    print(f"# check_exprs: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

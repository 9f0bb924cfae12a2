#!/usr/bin/python3
"""Check a PGXN META.json against the PGXN Meta Spec 1.0.0.

    check_meta.py [META.json]            validate (default: the tree's META.json)
    check_meta.py --broken [META.json]   validate broken copies of it: each must
                                         be refused, for the reason it was broken

The schema (meta-schema.json beside this file, JSON Schema draft-07) covers
what the spec requires of the document; this script adds what a schema cannot
see: the files that provides names exist in the distribution.  Uses Debian's
python3-jsonschema.
"""
import copy
import json
import os
import re
import sys

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load_schema():
    with open(os.path.join(HERE, "meta-schema.json")) as f:
        schema = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def problems(validator, meta, root):
    """Every problem of meta (a parsed META.json) as 'path: message'."""
    found = []
    for e in sorted(validator.iter_errors(meta), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        found.append("%s: %s" % (where, e.message))
    if isinstance(meta.get("provides"), dict):
        for ext, entry in meta["provides"].items():
            if not isinstance(entry, dict):
                continue
            for key in ("file", "docfile"):
                path = entry.get(key)
                if isinstance(path, str) and not os.path.isfile(os.path.join(root, path)):
                    found.append("provides/%s/%s: %s is not a file of the distribution" % (ext, key, path))
    return found


# (what is broken, how, the start of the refusal: the path it names; a
# regular expression where it holds .*)
def _drop(key):
    return lambda m: m.pop(key)


def _set(path, value):
    def f(m):
        d = m
        for p in path[:-1]:
            d = d[p]
        d[path[-1]] = value
    return f


BROKEN = [
    ("no provides", _drop("provides"), "(top): 'provides' is a required property"),
    ("no version", _drop("version"), "(top): 'version' is a required property"),
    ("no meta-spec", _drop("meta-spec"), "(top): 'meta-spec' is a required property"),
    ("version 1.1 (not a semantic version)", _set(["version"], "1.1"), "version: "),
    ("version v1.1.1", _set(["version"], "v1.1.1"), "version: "),
    ("provides without a version", lambda m: m["provides"]["pg_lambdaguard"].pop("version"),
     "provides/pg_lambdaguard: 'version' is a required property"),
    ("provides with the SQL version 1.1", _set(["provides", "pg_lambdaguard", "version"], "1.1"),
     "provides/pg_lambdaguard/version: "),
    ("provides naming a file that is not there", _set(["provides", "pg_lambdaguard", "file"], "sql/nothere.sql"),
     "provides/pg_lambdaguard/file: sql/nothere.sql is not a file"),
    ("provides empty", _set(["provides"], {}), "provides: {} "),
    ("license GPL (not a spec key)", _set(["license"], "GPL"), "license: "),
    ("license as a number", _set(["license"], 1), "license: "),
    ("meta-spec 2.0.0", _set(["meta-spec", "version"], "2.0.0"), "meta-spec/version: "),
    ("release_status beta", _set(["release_status"], "beta"), "release_status: "),
    ("a name with a space", _set(["name"], "pg lambdaguard"), "name: "),
    ("a tag with a slash", _set(["tags"], ["a/b"]), "tags/0: "),
    ("PostgreSQL prerequisite 14 (not a version range)", _set(["prereqs", "runtime", "requires", "PostgreSQL"], "14"),
     "prereqs/runtime/requires/PostgreSQL: "),
    ("an unknown key", _set(["licence"], "postgresql"), r"\(top\): .*'licence'"),
]


def main(argv):
    broken = "--broken" in argv
    args = [a for a in argv if a != "--broken"]
    path = args[0] if args else os.path.join(ROOT, "META.json")
    root = os.path.dirname(os.path.abspath(path))
    validator = load_schema()
    with open(path) as f:
        meta = json.load(f)
    if not broken:
        found = problems(validator, meta, root)
        for p in found:
            print("%s: %s" % (path, p))
        if not found:
            print("%s: valid (PGXN Meta Spec 1.0.0)" % path)
        return 1 if found else 0
    failed = 0
    if problems(validator, meta, root):
        print("not ok - %s itself is invalid: the broken copies prove nothing" % path)
        return 1
    for what, breakit, expected in BROKEN:
        m = copy.deepcopy(meta)
        breakit(m)
        found = problems(validator, m, root)
        hit = [p for p in found if re.match(re.escape(expected) if ".*" not in expected else expected, p)]
        if hit:
            print("ok - META.json with %s is refused: %s" % (what, hit[0][:160]))
        else:
            failed += 1
            print("not ok - META.json with %s is refused (expected %r; got %s)" % (what, expected, found or "no error"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

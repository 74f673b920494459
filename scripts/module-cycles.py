#!/usr/bin/env python3
"""Finds two files of a crate that import each other (a module and its own parts aside).

Each `crate::a::b` or `super::x` path in a file is an import of the module file it names.
Usage: module-cycles.py SRC_DIR... ; prints each cycle and exits 1 if there is any.
"""
import os
import re
import sys


def module_of(root, path):
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    return tuple(parts[:-1] if parts[-1] in ("mod", "lib", "main") else parts)


def imports(root):
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".rs")]
    modules = {module_of(root, f): f for f in files}
    edges = set()
    for module, path in modules.items():
        with open(path, encoding="utf-8") as source:
            text = source.read()
        for reference in re.findall(r"\b((?:crate|super)(?:::\w+)+)", text):
            parts = reference.split("::")
            if parts[0] == "crate":
                target, rest = [], parts[1:]
            else:
                target = list(module)
                while parts and parts[0] == "super":
                    target, parts = target[:-1], parts[1:]
                rest = parts
            for part in rest:
                if tuple(target + [part]) not in modules:
                    break
                target.append(part)
            if tuple(target) != module:
                edges.add((module, tuple(target)))
    return edges


def main():
    found = 0
    for root in sys.argv[1:]:
        edges = imports(root)
        for a, b in sorted(edges):
            own_part = a == b[: len(a)] or b == a[: len(b)]
            if a < b and (b, a) in edges and not own_part:
                print(f"{root}: {'::'.join(a) or 'crate'} and {'::'.join(b) or 'crate'} import each other")
                found += 1
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()

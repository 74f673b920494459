#!/usr/bin/env python3
"""Where the client's wasm goes, by crate and by function: twiggy over the module cargo built
(wasm-release, before wasm-bindgen and wasm-opt, which keep its proportions but strip the
names). Prints two Markdown tables (for README, "Client download size").

Usage: python3 scripts/size-table.py [WASM] [--top N]
       (default: $CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/client.wasm, after
       scripts/build-client.sh; twiggy from `cargo install twiggy`)
"""
import csv
import io
import os
import re
import subprocess
import sys
from collections import defaultdict

args = [a for a in sys.argv[1:] if not a.startswith("--")]
top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 15
if "--top" in sys.argv:
    args = [a for a in args if a != str(top)]
target = os.environ.get("CARGO_TARGET_DIR", "target")
wasm = args[0] if args else os.path.join(target, "wasm32-unknown-unknown", "wasm-release",
                                         "client.wasm")
out = subprocess.run(["twiggy", "top", "-n", "1000000", "--format", "csv", wasm],
                     capture_output=True, text=True, check=True).stdout
# Custom sections (the names twiggy reads, producers, target features) are not shipped: the
# release build strips them.
rows = [r for r in csv.DictReader(io.StringIO(out)) if not r["Name"].strip().startswith(
    ("custom section", "\"function names\"", "\"local names\""))]
total = sum(int(r["ShallowSize"]) for r in rows)


def crate_of(name):
    """The crate a symbol belongs to: the first path segment of its demangled name (a generic's
    outer impl counts as its type's crate); data and wasm sections by kind."""
    name = name.strip()
    if name.startswith(("data[", "data segment", "type[", "elem[", "global[", "table[",
                        "import ", "export ", "import[", "export[")):
        return "(data, tables, imports)"
    name = re.sub(r"^<", "", name)
    name = re.sub(r"^(&|\*const |\*mut |dyn |impl )+", "", name)
    match = re.search(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
    if not match:
        return "(other: code without a path)"
    crate = match.group(1)
    return {"core": "std", "alloc": "std", "std": "std"}.get(crate, crate)


by_crate = defaultdict(int)
for r in rows:
    by_crate[crate_of(r["Name"])] += int(r["ShallowSize"])
print(f"| crate | bytes | share |\n| --- | --- | --- |")
for crate, size in sorted(by_crate.items(), key=lambda kv: -kv[1])[:top]:
    print(f"| {crate} | {size:,} | {size * 100 / total:.1f} % |")
print(f"| all ({os.path.basename(wasm)}, custom sections left out) | {total:,} | 100 % |\n")
print("| largest functions | bytes |\n| --- | --- |")
code = [r for r in rows if not crate_of(r["Name"]).startswith("(data")]
for r in sorted(code, key=lambda r: -int(r["ShallowSize"]))[:top]:
    name = r["Name"].strip().replace("|", "\\|")
    if len(name) > 110:
        name = name[:107] + "..."
    print(f"| `{name}` | {int(r['ShallowSize']):,} |")

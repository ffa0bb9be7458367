#!/usr/bin/env python3
"""Fails when a sluice source includes a header it may not.

The layers come from cmake/SluiceModules.cmake (one source of truth). A file in module M may
include the public headers (sluice/<N>/...) of modules on M's layer or below, and the private
headers (<N>/... under src/) of M only. Files under a module's cli/ folder and under bench/ are
part of programs (layer of `cli`) and may include any public header.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
layers = {m: int(l) for m, l in re.findall(r"set\(SLUICE_LAYER_(\w+) (\d+)\)",
                                           (root / "cmake/SluiceModules.cmake").read_text())}
program_layer = layers["cli"]
include_re = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def owner(path: pathlib.Path):
    rel = path.relative_to(root).parts
    if rel[0] == "bench":
        return "bench", program_layer
    if rel[0] == "include":
        module = rel[2] if len(rel) > 3 else None
    else:
        module = rel[1]
    if module == "cli" or (rel[0] == "src" and "cli" in rel[2:-1]):
        return module, program_layer
    return module, layers.get(module)


errors = []
files = [p for d in ("include", "src", "bench") for p in (root / d).rglob("*")
         if p.suffix in (".h", ".cc")]
for path in files:
    module, layer = owner(path)
    if layer is None:
        errors.append(f"{path.relative_to(root)}: module '{module}' has no layer in "
                      "cmake/SluiceModules.cmake")
        continue
    for inc in include_re.findall(path.read_text()):
        parts = inc.split("/")
        if parts[0] == "sluice" and len(parts) > 2:
            target = parts[1]
            if target not in layers:
                errors.append(f"{path.relative_to(root)}: includes {inc} of unknown module")
            elif layers[target] > layer:
                errors.append(f"{path.relative_to(root)}: layer {layer} ({module}) includes {inc} "
                              f"from layer {layers[target]}: dependencies point down only")
        elif parts[0] in layers and len(parts) > 1 and (root / "src" / inc).exists():
            if parts[0] != module and layer != program_layer:
                errors.append(f"{path.relative_to(root)}: includes {inc}, a private header of "
                              f"module '{parts[0]}'; use its public API in include/sluice/")

for e in errors:
    print(e)
print(f"layering: {len(files) - len(errors)} passed, {len(errors)} failed")
sys.exit(1 if errors else 0)

#!/usr/bin/env python3
"""Writes www/examples/omniglot-greek.json: the page's "Try an example" set, pen strokes of five
Greek characters from Lake's recorded trajectories (strokes_background_small2.zip, Omniglot, MIT
licence), one drawer's drawing of each as the support set and another drawer's as queries.
Strokes only (no images), thinned and rounded to stay small.

  scripts/make-example.py [OMNIGLOT_DIR]
"""

import json
import os
import sys
import zipfile

ALPHABET = "Greek"
CHARACTERS = ["character01", "character02", "character04", "character09", "character17"]
LABELS = ["alpha", "beta", "delta", "iota", "rho"]
SUPPORT_DRAWER, QUERY_DRAWER = 1, 7


def strokes(text):
    """Lake's format: START, x,y,t lines, BREAK between strokes; y up, 105-pixel canvas."""
    out, current = [], []
    for line in text.splitlines():
        line = line.strip()
        if line in ("START", ""):
            continue
        if line == "BREAK":
            if current:
                out.append(current)
            current = []
            continue
        x, y, _ = line.split(",")
        current.append([(float(x) + 0.5) / 105, (0.5 - float(y)) / 105])
    if current:
        out.append(current)
    return out


def fit(drawing, margin=0.05):
    """Moves a drawing that leaves the pad back inside it (Lake's recorder kept points past the
    105-pixel canvas: one β's tail reached 1.07), shrinking it only if it is larger than the pad."""
    xs = [p[0] for s in drawing for p in s]
    ys = [p[1] for s in drawing for p in s]
    span = max(max(xs) - min(xs), max(ys) - min(ys))
    scale = min(1.0, (1 - 2 * margin) / span) if span > 0 else 1.0
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    half_w, half_h = scale * (max(xs) - min(xs)) / 2, scale * (max(ys) - min(ys)) / 2
    # The centre that keeps the box inside [margin, 1 - margin], closest to where it was drawn.
    nx = min(max(cx, margin + half_w), 1 - margin - half_w)
    ny = min(max(cy, margin + half_h), 1 - margin - half_h)
    return [[[nx + (x - cx) * scale, ny + (y - cy) * scale] for x, y in s] for s in drawing]


def thin(stroke, gap=0.008):
    """Drops points closer than `gap` to the last kept one (keeps the ends), rounds to 3 places."""
    kept = [stroke[0]]
    for p in stroke[1:-1]:
        if abs(p[0] - kept[-1][0]) + abs(p[1] - kept[-1][1]) >= gap:
            kept.append(p)
    if len(stroke) > 1:
        kept.append(stroke[-1])
    return [[round(x, 3), round(y, 3)] for x, y in kept]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = sys.argv[1] if len(sys.argv) > 1 else next(
        d for d in (os.environ.get("OMNIGLOT_DIR"), os.path.join(root, "data/omniglot"), os.path.join(root, "../shared/data/omniglot")) if d and os.path.isdir(d)
    )
    archive = zipfile.ZipFile(os.path.join(data, "strokes_background_small2.zip"))
    names = sorted(n for n in archive.namelist() if n.endswith(".txt") and "__MACOSX" not in n)

    def drawing(character, drawer):
        prefix = f"strokes_background_small2/{ALPHABET}/{character}/"
        files = [n for n in names if n.startswith(prefix)]
        return [thin(s) for s in fit(strokes(archive.read(files[drawer - 1]).decode()))]

    example = {
        "attribution": "Omniglot (Lake, Salakhutdinov & Tenenbaum 2015), github.com/brendenlake/omniglot, MIT licence: "
        f"recorded pen strokes of the {ALPHABET} alphabet, drawers {SUPPORT_DRAWER} and {QUERY_DRAWER}.",
        "slots": [{"label": label, "drawings": [drawing(c, SUPPORT_DRAWER)]} for c, label in zip(CHARACTERS, LABELS)],
        "queries": [{"label": label, "strokes": drawing(c, QUERY_DRAWER)} for c, label in zip(CHARACTERS, LABELS)],
    }
    out = os.path.join(root, "www/examples/omniglot-greek.json")
    with open(out, "w") as f:
        json.dump(example, f, separators=(",", ":"))
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""List every layer of the first image of an OCI layout as Python's `tarfile` reads it: an
independent reader of what seal wrote (or kept).

Usage: list_layers.py LAYOUT_DIR

One line per member: `<layer index> <name> <type> <mode> <uid>:<gid>`, then ` -> <target>`
for links and symlinks, then ` <xattr name>=<hex value>` for each `SCHILY.xattr.*` record in
name order. The contents of members whose basename starts with `seen-` follow their line,
each line prefixed with `| `. Types are tarfile's: 0 file, 1 hardlink, 2 symlink, 5 directory.
"""

import json
import os
import sys
import tarfile


def blob(layout, digest):
    return os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])


def main(layout):
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    with open(blob(layout, index["manifests"][0]["digest"])) as f:
        manifest = json.load(f)
    for i, layer in enumerate(manifest["layers"]):
        # "r:*" detects gzip and plain tars; zstd layers are decompressed by the caller's
        # choice of `--compression gzip`.
        with tarfile.open(blob(layout, layer["digest"]), "r:*") as tar:
            for m in tar:
                line = f"{i} {m.name} {m.type.decode()} {m.mode:o} {m.uid}:{m.gid}"
                if m.islnk() or m.issym():
                    line += f" -> {m.linkname}"
                for key in sorted(m.pax_headers):
                    if key.startswith("SCHILY.xattr."):
                        value = m.pax_headers[key].encode("utf-8", "surrogateescape")
                        line += f" {key[len('SCHILY.xattr.'):]}={value.hex()}"
                print(line)
                if m.isfile() and os.path.basename(m.name).startswith("seen-"):
                    for text in tar.extractfile(m).read().decode().splitlines():
                        print(f"| {text}")


if __name__ == "__main__":
    main(sys.argv[1])

#!/usr/bin/env python3
"""Write an OCI image layout (for `seal load -i DIR`) whose one layer says everything a layer
can say about a file beyond its bytes: a setuid file, a setgid and a sticky directory, a file
capability (`security.capability`, as `setcap cap_net_raw+ep` writes it), `user.*` xattrs on
a file and a directory, a hardlink pair, and an owner other than root. The layer is written by
Python's `tarfile` (PAX format, xattrs as `SCHILY.xattr.*` records), not by seal.

Usage: fidelity_layout.py OUT_DIR [TAR]
OUT_DIR must not exist; the image is named fidelity:1. TAR, when given, receives a copy of
the layer as a plain tar (for ADD).
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

# struct vfs_cap_data, revision 2, effective flag set: magic_etc, then (permitted, inheritable)
# for capabilities 0-31 and 32-63. CAP_NET_RAW is 13.
CAP_NET_RAW_EP = (0x02000001).to_bytes(4, "little") + (1 << 13).to_bytes(4, "little") + bytes(12)


def xattrs(**values):
    """PAX records for xattrs; names use `__` for `.` (Python keywords cannot hold dots)."""
    return {
        "SCHILY.xattr." + name.replace("__", "."): value.decode("utf-8", "surrogateescape")
        for name, value in values.items()
    }


def add(tar, name, kind=tarfile.REGTYPE, mode=0o644, data=b"", uid=0, gid=0, link="", pax=None):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = 1_600_000_000
    info.linkname = link
    info.pax_headers = pax or {}
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def layer():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "usr/", tarfile.DIRTYPE, 0o755)
        add(tar, "usr/bin/", tarfile.DIRTYPE, 0o755)
        add(tar, "usr/bin/suid", mode=0o4755, data=b"#!/bin/sh\necho suid\n")
        add(tar, "usr/bin/sgid", mode=0o2711, data=b"#!/bin/sh\necho sgid\n", gid=42)
        add(tar, "usr/bin/ping", mode=0o755, data=b"#!/bin/sh\necho ping\n",
            pax=xattrs(security__capability=CAP_NET_RAW_EP))
        add(tar, "usr/bin/one", mode=0o750, data=b"one inode, two names\n", uid=1000, gid=1000)
        add(tar, "usr/bin/two", tarfile.LNKTYPE, 0o750, uid=1000, gid=1000, link="usr/bin/one")
        add(tar, "srv/", tarfile.DIRTYPE, 0o755)
        add(tar, "srv/shared/", tarfile.DIRTYPE, 0o2775, gid=42,
            pax=xattrs(user__purpose=b"team share"))
        add(tar, "srv/shared/note", data=b"hello\n", uid=1000, gid=42,
            pax=xattrs(user__mime_type=b"text/plain", user__bin=b"\x00\x01\xff"))
        add(tar, "srv/drop/", tarfile.DIRTYPE, 0o1777)
        add(tar, "srv/private/", tarfile.DIRTYPE, 0o700, uid=1000, gid=1000)
        add(tar, "srv/private/key", mode=0o600, data=b"secret\n", uid=1000, gid=1000)
    return buf.getvalue()


def write_blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def main(out, tar_copy=None):
    os.makedirs(os.path.join(out, "blobs", "sha256"))
    tar = layer()
    if tar_copy:
        with open(tar_copy, "wb") as f:
            f.write(tar)
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    layer_digest, layer_size = write_blob(out, gzip.compress(tar, mtime=0))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_digest, config_size = write_blob(out, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": layer_size,
        }],
    }
    manifest_digest, manifest_size = write_blob(out, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "fidelity:1"},
        }],
    }
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])

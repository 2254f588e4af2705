#!/usr/bin/env python3
"""A TUF repository laid out as Sigstore's (metadata at the top, consistent snapshots, the
target trusted_root.json under targets/ with its SHA-256 prefixed), made and changed with
python-tuf, the TUF reference implementation (hack/python-tools.sh installs it). The tests
(tests/sigstore_tuf_real.rs) serve DIR over HTTP on loopback and read it with trustwatch.

  sigstore-tuf-repo.py init DIR KEYS TRUSTED_ROOT   # version 1 of every role
  sigstore-tuf-repo.py publish DIR KEYS TRUSTED_ROOT  # targets, snapshot, timestamp + 1
  sigstore-tuf-repo.py rotate-root DIR KEYS         # root N+1 with a new key, signed by both
  sigstore-tuf-repo.py expire DIR KEYS              # timestamp + 1, expired an hour ago
  sigstore-tuf-repo.py save DIR NAME / restore DIR NAME   # keep timestamp.json to replay it
  sigstore-tuf-repo.py tamper-target DIR            # flip a byte of the current target file

KEYS is a directory outside DIR (never served) holding one PEM private key per role.
"""
import datetime
import hashlib
import json
import os
import shutil
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import (Metadata, MetaFile, Root, Snapshot, TargetFile, Targets,
                              Timestamp)
from tuf.api.serialization.json import JSONSerializer

ROLES = ("root", "targets", "snapshot", "timestamp")
TARGET = "trusted_root.json"


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def signer(keys, name, fresh=False):
    path = os.path.join(keys, name + ".pem")
    if fresh or not os.path.exists(path):
        private = ec.generate_private_key(ec.SECP256R1())
        with open(path, "wb") as f:
            f.write(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    with open(path, "rb") as f:
        private = serialization.load_pem_private_key(f.read(), None)
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))


def write(dir_, md, name):
    md.to_file(os.path.join(dir_, name), JSONSerializer(compact=False))


def load(dir_, name):
    return Metadata.from_file(os.path.join(dir_, name))


def latest_root(dir_):
    n = max(int(f.split(".")[0]) for f in os.listdir(dir_) if f.endswith(".root.json"))
    return n, load(dir_, f"{n}.root.json")


def sign_and_write(dir_, keys, md, name, signers):
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)
    write(dir_, md, name)


def publish_targets(dir_, keys, trusted_root, version, expires_in):
    data = open(trusted_root, "rb").read()
    os.makedirs(os.path.join(dir_, "targets"), exist_ok=True)
    sha = hashlib.sha256(data).hexdigest()
    with open(os.path.join(dir_, "targets", f"{sha}.{TARGET}"), "wb") as f:
        f.write(data)
    targets = Metadata(Targets(version=version, expires=now() + expires_in))
    targets.signed.targets[TARGET] = TargetFile.from_data(TARGET, data, ["sha256"])
    sign_and_write(dir_, keys, targets, f"{version}.targets.json", [signer(keys, "targets")])
    snapshot = Metadata(Snapshot(version=version, expires=now() + expires_in))
    snapshot.signed.meta["targets.json"] = MetaFile(version=version)
    sign_and_write(dir_, keys, snapshot, f"{version}.snapshot.json", [signer(keys, "snapshot")])
    timestamp_version = next_timestamp_version(dir_)
    timestamp = Metadata(Timestamp(version=timestamp_version, expires=now() + expires_in))
    timestamp.signed.snapshot_meta = MetaFile(version=version)
    sign_and_write(dir_, keys, timestamp, "timestamp.json", [signer(keys, "timestamp")])


def next_timestamp_version(dir_):
    path = os.path.join(dir_, "timestamp.json")
    if not os.path.exists(path):
        return 1
    return load(dir_, "timestamp.json").signed.version + 1


def current_targets_version(dir_):
    return load(dir_, "timestamp.json").signed.snapshot_meta.version


def init(dir_, keys, trusted_root):
    os.makedirs(dir_, exist_ok=True)
    os.makedirs(keys, exist_ok=True)
    root = Metadata(Root(expires=now() + datetime.timedelta(days=365), consistent_snapshot=True))
    for role in ROLES:
        s = signer(keys, role, fresh=True)
        root.signed.add_key(s.public_key, role)
    sign_and_write(dir_, keys, root, "1.root.json", [signer(keys, "root")])
    publish_targets(dir_, keys, trusted_root, 1, datetime.timedelta(days=7))


def rotate_root(dir_, keys):
    n, root = latest_root(dir_)
    old = signer(keys, "root")
    shutil.copy(os.path.join(keys, "root.pem"), os.path.join(keys, f"root-{n}.pem"))
    new = signer(keys, "root", fresh=True)
    root.signed.revoke_key(old.public_key.keyid, "root")
    root.signed.add_key(new.public_key, "root")
    root.signed.version = n + 1
    # TUF 5.3.4: version N+1 must be signed by a threshold of version N's keys and its own.
    sign_and_write(dir_, keys, root, f"{n + 1}.root.json", [old, new])


def expire(dir_, keys):
    version = current_targets_version(dir_)
    timestamp = Metadata(Timestamp(version=next_timestamp_version(dir_),
                                   expires=now() - datetime.timedelta(hours=1)))
    timestamp.signed.snapshot_meta = MetaFile(version=version)
    sign_and_write(dir_, keys, timestamp, "timestamp.json", [signer(keys, "timestamp")])


def tamper_target(dir_):
    targets = load(dir_, f"{current_targets_version(dir_)}.targets.json")
    sha = targets.signed.targets[TARGET].hashes["sha256"]
    path = os.path.join(dir_, "targets", f"{sha}.{TARGET}")
    data = bytearray(open(path, "rb").read())
    data[-2] ^= 0x01
    open(path, "wb").write(bytes(data))


def main(argv):
    cmd, dir_ = argv[1], argv[2]
    if cmd == "init":
        init(dir_, argv[3], argv[4])
    elif cmd == "publish":
        publish_targets(dir_, argv[3], argv[4], current_targets_version(dir_) + 1,
                        datetime.timedelta(days=7))
    elif cmd == "rotate-root":
        rotate_root(dir_, argv[3])
    elif cmd == "expire":
        expire(dir_, argv[3])
    elif cmd == "save":
        shutil.copy(os.path.join(dir_, "timestamp.json"), os.path.join(dir_, f"../{argv[3]}.timestamp.json"))
    elif cmd == "restore":
        shutil.copy(os.path.join(dir_, f"../{argv[3]}.timestamp.json"), os.path.join(dir_, "timestamp.json"))
    elif cmd == "tamper-target":
        tamper_target(dir_)
    else:
        sys.exit(__doc__)
    print(json.dumps({"ok": cmd}))


if __name__ == "__main__":
    main(sys.argv)

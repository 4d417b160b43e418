#!/usr/bin/env python3
"""Read VoCo KV records from a VoCo store, written from Schemas/record-format.md and
Schemas/store-format.md alone. Needs only lmdb, zstandard and numpy.

    read_records.py STORE                 # check every record, print one JSON line per record
    read_records.py STORE --dump DIR      # also write each record's K and V as raw float32

With --dump, record <model>-<image>-<codec> becomes DIR/<that>.json (the header),
DIR/<that>.k.f32 and DIR/<that>.v.f32 (little-endian float32, shape [layers][tokens][kvHeads][headDim]).
Exit status 1 when any record is refused, 2 when the store cannot be read.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import lmdb
import numpy as np
import zstandard

SCHEMA_VERSIONS = (b"2", b"3")  # 3 adds checksums to JSON values; records are the same
MAGIC = b"VOCOKVR\n"
HEADER_LENGTH = 128
CHECKSUM_LENGTH = 32
CODECS = {1: "shuffle-zstd", 2: "zstd", 3: "int8", 4: "q4"}
DTYPES = {1: "F32", 2: "F16", 3: "BF16"}
DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2}


class RecordError(Exception):
    pass


def parse_header(record):
    """The header fields of record-format.md, checked."""
    if len(record) < HEADER_LENGTH + CHECKSUM_LENGTH:
        raise RecordError(f"record of {len(record)} bytes is shorter than header and checksum")
    if record[:8] != MAGIC:
        raise RecordError("bad magic")
    (version, header_length, codec, dtype, flags, checksum_kind, model, image,
     layers, kv_heads, head_dim, tokens, first_position, group_size,
     body_length, payload_length) = struct.unpack_from("<HHBBBB32s32sIIIIIIQQ", record, 8)
    if version != 1 or header_length != HEADER_LENGTH:
        raise RecordError(f"format version {version}, header length {header_length}")
    if codec not in CODECS or dtype not in DTYPES or checksum_kind != 1 or flags & ~1:
        raise RecordError(f"unknown codec {codec}, dtype {dtype}, checksum kind {checksum_kind} or flags {flags}")
    if record[120:128] != bytes(8):
        raise RecordError("reserved bytes are not zero")
    if HEADER_LENGTH + payload_length + CHECKSUM_LENGTH != len(record):
        raise RecordError("payload length does not match the record length")
    if 0 in (layers, kv_heads, head_dim, tokens):
        raise RecordError("zero in the shape")
    h = dict(codec=CODECS[codec], dtype=DTYPES[dtype], keysBeforeRoPE=bool(flags & 1),
             model=model.hex(), image=image.hex(), layers=layers, kvHeads=kv_heads, headDim=head_dim,
             tokens=tokens, firstPosition=first_position, groupSize=group_size,
             bodyLength=body_length, payloadLength=payload_length)
    if (h["codec"] == "q4") != (group_size > 0):
        raise RecordError("group size does not fit the codec")
    if body_length != expected_body_length(h):
        raise RecordError("body length does not match the shape and codec")
    return h


def expected_body_length(h):
    rows = h["layers"] * 2 * h["tokens"]
    channels = h["kvHeads"] * h["headDim"]
    if h["codec"] in ("shuffle-zstd", "zstd"):
        return rows * channels * DTYPE_SIZE[h["dtype"]]
    if h["codec"] == "int8":
        return rows * channels + 4 * h["layers"] * (channels + h["tokens"])
    groups = -(-channels // h["groupSize"])
    return rows * (-(-channels // 2)) + rows * groups * 4


def widen(raw, dtype):
    """Little-endian elements of dtype -> float32."""
    if dtype == "F32":
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if dtype == "F16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32)


def decode_record(record):
    """(header, K, V): K and V float32 arrays of shape [layers, tokens, kvHeads, headDim]."""
    h = parse_header(record)
    if hashlib.sha256(record[:-CHECKSUM_LENGTH]).digest() != record[-CHECKSUM_LENGTH:]:
        raise RecordError("checksum mismatch")
    payload = record[HEADER_LENGTH:HEADER_LENGTH + h["payloadLength"]]
    params = zstandard.get_frame_parameters(payload)
    if params.content_size != h["bodyLength"]:
        raise RecordError("zstd frame content size differs from the body length")
    body = zstandard.ZstdDecompressor().decompress(payload)
    if len(body) != h["bodyLength"]:
        raise RecordError("body length mismatch after decompression")

    L, T, C = h["layers"], h["tokens"], h["kvHeads"] * h["headDim"]
    R = L * 2 * T
    if h["codec"] in ("shuffle-zstd", "zstd"):
        size = DTYPE_SIZE[h["dtype"]]
        raw = np.frombuffer(body, dtype=np.uint8)
        if h["codec"] == "shuffle-zstd":
            raw = raw.reshape(size, R * C).T.copy()  # planes [size][N] -> elements [N][size]
        rows = widen(raw.tobytes(), h["dtype"]).reshape(L, 2, T, C)
    elif h["codec"] == "int8":
        q = np.frombuffer(body, dtype=np.int8, count=R * C).reshape(L, 2, T, C).astype(np.float32)
        scales = np.frombuffer(body, dtype="<f4", offset=R * C).astype(np.float32).reshape(L, C + T)
        rows = np.empty((L, 2, T, C), dtype=np.float32)
        rows[:, 0] = q[:, 0] * scales[:, None, :C]   # keys: one scale per channel
        rows[:, 1] = q[:, 1] * scales[:, C:, None]   # values: one scale per token
    else:
        G = h["groupSize"]
        row_bytes, groups = -(-C // 2), -(-C // G)
        packed = np.frombuffer(body, dtype=np.uint8, count=R * row_bytes).reshape(R, row_bytes)
        codes = np.empty((R, 2 * row_bytes), dtype=np.uint8)
        codes[:, 0::2] = packed & 15
        codes[:, 1::2] = packed >> 4
        codes = codes[:, :C].astype(np.float32)
        p = np.frombuffer(body, dtype="<f2", offset=R * row_bytes).astype(np.float32).reshape(R, groups, 2)
        group_of = np.arange(C) // G
        mins, scales = p[:, group_of, 0], p[:, group_of, 1]
        rows = (mins + codes * scales).astype(np.float32).reshape(L, 2, T, C)
    shape = (L, T, h["kvHeads"], h["headDim"])
    return h, rows[:, 0].reshape(shape), rows[:, 1].reshape(shape)


def open_store(path):
    env = lmdb.open(path, readonly=True, lock=True, max_dbs=10, subdir=True)
    meta = env.open_db(b"meta", create=False)
    with env.begin(db=meta) as txn:
        version = txn.get(b"schema_version")
    if version not in SCHEMA_VERSIONS:
        raise RecordError(f"{path}: store schema version {version!r}, this reader reads {SCHEMA_VERSIONS!r}")
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store")
    parser.add_argument("--dump", help="directory for K, V and header files")
    args = parser.parse_args()
    try:
        env = open_store(args.store)
    except (lmdb.Error, RecordError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
    records = env.open_db(b"records", create=False)
    refused = 0
    with env.begin(db=records) as txn:
        for key, value in txn.cursor():
            name = f"{key[:32].hex()}-{key[32:64].hex()}-{CODECS.get(key[64], key[64]) if len(key) == 65 else '?'}"
            try:
                if len(key) != 65:
                    raise RecordError("key is not model + image + codec")
                h, k, v = decode_record(bytes(value))
                if (h["model"], h["image"], h["codec"]) != (key[:32].hex(), key[32:64].hex(), CODECS.get(key[64])):
                    raise RecordError("header does not match the key")
            except (RecordError, zstandard.ZstdError, ValueError) as e:
                refused += 1
                print(json.dumps({"record": name, "refused": str(e)}))
                continue
            print(json.dumps({"record": name, "header": h}, sort_keys=True))
            if args.dump:
                base = os.path.join(args.dump, name)
                with open(base + ".json", "w") as f:
                    json.dump(h, f, sort_keys=True)
                k.astype("<f4").tofile(base + ".k.f32")
                v.astype("<f4").tofile(base + ".v.f32")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())

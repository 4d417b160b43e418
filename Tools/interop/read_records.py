#!/usr/bin/env python3
"""Read VoCo KV records from a VoCo store, written from Schemas/record-format.md and
Schemas/store-format.md alone. Needs only lmdb, zstandard and numpy. Reads record formats 1
(the 128-byte header) and 2 (the compact header, whose checksum binds the key's model and image),
and every codec: shuffle-zstd, zstd, int8, q4, hq; hq records relative to their model's reference
are decoded against the reference record the store keeps for the model.

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
COMPACT_MAGIC = b"VK"
COMPACT_CHECKSUM_LENGTH = 16
REFERENCE_IMAGE = hashlib.sha256(b"voco-reference-v1").digest()  # the image digest of every model's reference
REFERENCE_CODEC = 1  # shuffle-zstd
TAG_LENGTH = 4
CODECS = {1: "shuffle-zstd", 2: "zstd", 3: "int8", 4: "q4", 5: "hq"}
DTYPES = {1: "F32", 2: "F16", 3: "BF16"}
DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2}


class RecordError(Exception):
    pass


def parse_header(record, model=None, image=None):
    """The header fields of record-format.md, checked. A format 2 record takes the model and image
    (32 bytes each) of its key."""
    if record[:2] == COMPACT_MAGIC:
        return parse_compact_header(record, model, image)
    if len(record) < HEADER_LENGTH + CHECKSUM_LENGTH:
        raise RecordError(f"record of {len(record)} bytes is shorter than header and checksum")
    if record[:8] != MAGIC:
        raise RecordError("bad magic")
    (version, header_length, codec, dtype, flags, checksum_kind, model, image,
     layers, kv_heads, head_dim, tokens, first_position, group_size,
     body_length, payload_length) = struct.unpack_from("<HHBBBB32s32sIIIIIIQQ", record, 8)
    if version != 1 or header_length != HEADER_LENGTH:
        raise RecordError(f"format version {version}, header length {header_length}")
    if codec not in CODECS or dtype not in DTYPES or checksum_kind != 1 or flags & ~(1 | 8):
        raise RecordError(f"unknown codec {codec}, dtype {dtype}, checksum kind {checksum_kind} or flags {flags}")
    if flags & 8 and CODECS[codec] != "int8":
        raise RecordError(f"flag bits {flags}: only int8 records can have row scales")
    if record[120:128] != bytes(8):
        raise RecordError("reserved bytes are not zero")
    if HEADER_LENGTH + payload_length + CHECKSUM_LENGTH != len(record):
        raise RecordError("payload length does not match the record length")
    if 0 in (layers, kv_heads, head_dim, tokens):
        raise RecordError("zero in the shape")
    h = dict(format=1, codec=CODECS[codec], dtype=DTYPES[dtype], keysBeforeRoPE=bool(flags & 1),
             model=model.hex(), image=image.hex(), layers=layers, kvHeads=kv_heads, headDim=head_dim,
             tokens=tokens, firstPosition=first_position, groupSize=group_size, keyBits=0, valueBits=0,
             int8RowScales=bool(flags & 8), bodyLength=body_length, payloadLength=payload_length, payload="zstd", headerLength=HEADER_LENGTH)
    if (h["codec"] == "q4") != (group_size > 0):
        raise RecordError("group size does not fit the codec")
    if h["codec"] == "hq":
        raise RecordError("codec hq is only written in format 2")
    if body_length != expected_body_length(h):
        raise RecordError("body length does not match the shape and codec")
    return h


def parse_compact_header(record, model, image):
    """Format 2: "VK", version 2, codec, dtype, flags, varints, codec parameters."""
    end = len(record) - COMPACT_CHECKSUM_LENGTH
    if end < 6:
        raise RecordError(f"record of {len(record)} bytes is shorter than a compact header and its checksum")
    version, codec, dtype, flags = record[2], record[3], record[4], record[5]
    if version != 2:
        raise RecordError(f"format version {version}")
    if codec not in CODECS or dtype not in DTYPES or flags & ~15:
        raise RecordError(f"unknown codec {codec}, dtype {dtype} or flags {flags}")
    if flags & 8 and CODECS[codec] != "int8":
        raise RecordError(f"flag bits {flags}: only int8 records can have row scales")
    if flags & 4 and CODECS[codec] != "hq":
        raise RecordError(f"flag bits {flags}: only hq records can be relative to a model reference")
    position = 6

    def varint(name):
        nonlocal position
        value = 0
        for shift in range(0, 35, 7):
            if position >= end:
                raise RecordError(f"the header ends inside {name}")
            byte = record[position]
            position += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if byte == 0 and shift > 0:
                    raise RecordError(f"{name} is not in its shortest form")
                if value > 0xFFFFFFFF:
                    raise RecordError(f"{name} exceeds 32 bits")
                return value
        raise RecordError(f"{name} is longer than 5 bytes")

    layers, kv_heads, head_dim, tokens = varint("layers"), varint("kvHeads"), varint("headDim"), varint("tokens")
    first_position = varint("firstPosition")
    if 0 in (layers, kv_heads, head_dim, tokens):
        raise RecordError("zero in the shape")
    group_size = key_bits = value_bits = 0
    if CODECS[codec] == "hq":
        if position >= end:
            raise RecordError("the header ends before hq's bit widths")
        key_bits, value_bits = record[position] & 15, record[position] >> 4
        position += 1
        if not (2 <= key_bits <= 8 and 2 <= value_bits <= 8):
            raise RecordError(f"hq bit widths {key_bits}/{value_bits}")
    elif CODECS[codec] == "q4":
        group_size = varint("groupSize")
        if group_size == 0:
            raise RecordError("q4 group size 0")
    tag = None
    if flags & 4:
        if end - position < TAG_LENGTH:
            raise RecordError("the header ends inside the reference tag")
        tag = record[position:position + TAG_LENGTH]
        position += TAG_LENGTH
    h = dict(format=2, codec=CODECS[codec], dtype=DTYPES[dtype], keysBeforeRoPE=bool(flags & 1),
             model=model.hex() if model else None, image=image.hex() if image else None,
             layers=layers, kvHeads=kv_heads, headDim=head_dim, tokens=tokens, firstPosition=first_position,
             groupSize=group_size, keyBits=key_bits, valueBits=value_bits, int8RowScales=bool(flags & 8),
             payloadLength=end - position, payload="zstd" if flags & 2 else "raw", headerLength=position)
    if tag is not None:
        h["reference"] = tag.hex()
    h["bodyLength"] = expected_body_length(h)
    if h["payload"] == "raw" and h["payloadLength"] != h["bodyLength"]:
        raise RecordError("the raw payload's length does not match the shape and codec")
    return h


def expected_body_length(h):
    rows = h["layers"] * 2 * h["tokens"]
    channels = h["kvHeads"] * h["headDim"]
    if h["codec"] in ("shuffle-zstd", "zstd"):
        return rows * channels * DTYPE_SIZE[h["dtype"]]
    if h["codec"] == "int8" and h["int8RowScales"]:  # a bfloat16 scale per group of max(C, 2) values
        return rows * channels + 2 * (rows * channels // max(channels, 2))
    if h["codec"] == "int8":
        return rows * channels + 4 * h["layers"] * (channels + h["tokens"])
    if h["codec"] == "hq":
        half = rows * channels // 2
        return 2 * rows * h["kvHeads"] + -(-half * h["keyBits"] // 8) + -(-half * h["valueBits"] // 8)
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


def decode_record(record, model=None, image=None, reference=None):
    """(header, K, V): K and V float32 arrays of shape [layers, tokens, kvHeads, headDim].
    model and image (32 bytes each) are the record's key: format 2 needs them for its checksum,
    format 1 must name them in its header when they are given. A record relative to its model's
    reference needs `reference`: (digest, K, V) of the model's reference record."""
    h = parse_header(record, model, image)
    relative = "reference" in h
    if relative and reference is None:
        raise RecordError(f"relative to its model's reference (digest {h['reference']}...), which is missing")
    if h["format"] == 1:
        if hashlib.sha256(record[:-CHECKSUM_LENGTH]).digest() != record[-CHECKSUM_LENGTH:]:
            raise RecordError("checksum mismatch")
        if model is not None and (h["model"], h["image"]) != (model.hex(), image.hex()):
            raise RecordError("header does not match the key")
    else:
        if model is None or image is None:
            raise RecordError("a format 2 record is checked with the model and image of its key")
        covered = record[:-COMPACT_CHECKSUM_LENGTH]
        bound = reference[0] if relative else b""  # the reference record's SHA-256
        if hashlib.sha256(model + image + bound + covered).digest()[:COMPACT_CHECKSUM_LENGTH] != record[-COMPACT_CHECKSUM_LENGTH:]:
            if relative and bytes.fromhex(h["reference"]) != bound[:TAG_LENGTH]:
                raise RecordError(f"written against reference {h['reference']}..., not the store's {bound.hex()}")
            raise RecordError("checksum mismatch")
    start = h["headerLength"]
    payload = record[start:start + h["payloadLength"]]
    if h["payload"] == "zstd":
        params = zstandard.get_frame_parameters(payload)
        if params.content_size != h["bodyLength"]:
            raise RecordError("zstd frame content size differs from the body length")
        body = zstandard.ZstdDecompressor().decompress(payload)
    else:
        body = payload
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
    elif h["codec"] == "int8" and h["int8RowScales"]:
        N, g = R * C, max(C, 2)
        q = np.frombuffer(body, dtype=np.int8, count=N).astype(np.float32)
        bits = np.frombuffer(body, dtype="<u2", offset=N).astype(np.uint32) << 16  # bfloat16 -> binary32
        scales = bits.view(np.float32)
        rows = (q.reshape(N // g, g) * scales[:, None]).astype(np.float32).reshape(L, 2, T, C)
    elif h["codec"] == "int8":
        q = np.frombuffer(body, dtype=np.int8, count=R * C).reshape(L, 2, T, C).astype(np.float32)
        scales = np.frombuffer(body, dtype="<f4", offset=R * C).astype(np.float32).reshape(L, C + T)
        rows = np.empty((L, 2, T, C), dtype=np.float32)
        rows[:, 0] = q[:, 0] * scales[:, None, :C]   # keys: one scale per channel
        rows[:, 1] = q[:, 1] * scales[:, C:, None]   # values: one scale per token
    elif h["codec"] == "hq":
        rows = decode_hq(body, h)
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
    keys, values = rows[:, 0].reshape(shape), rows[:, 1].reshape(shape)
    if relative:
        _, ref_keys, ref_values = reference
        if ref_keys.shape != shape:
            raise RecordError(f"the reference's shape {ref_keys.shape} differs from the record's {shape}")
        with np.errstate(over="ignore"):
            keys, values = keys + ref_keys, values + ref_values  # one float32 addition each
    return h, keys, values


def load_reference(txn, model):
    """(digest, K, V) of model's reference record, or None when the store holds none."""
    value = txn.get(model + REFERENCE_IMAGE + bytes([REFERENCE_CODEC]))
    if value is None:
        return None
    value = bytes(value)
    h, keys, values = decode_record(value, model, REFERENCE_IMAGE)
    if h["codec"] not in ("shuffle-zstd", "zstd"):
        raise RecordError("a model reference must be a lossless record")
    return hashlib.sha256(value).digest(), keys, values


def unpack_codes(stream, count, bits):
    """count codes of `bits` bits, LSB first: bit k of the stream is bit k % 8 of byte k // 8."""
    stream_bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8), bitorder="little")[:count * bits]
    weights = (1 << np.arange(bits, dtype=np.int64))
    return (stream_bits.reshape(count, bits).astype(np.int64) * weights).sum(axis=1)


def walsh_hadamard(x):
    """Unnormalised Walsh-Hadamard transform over the last axis (a power of two), in float32,
    pair by pair in the order of record-format.md: h = 1, 2, 4, ...: (a, b) -> (a + b, a - b)."""
    n = x.shape[-1]
    h = 1
    while h < n:
        y = x.reshape(*x.shape[:-1], n // (2 * h), 2, h)
        a, b = y[..., 0, :], y[..., 1, :]
        x = np.stack([a + b, a - b], axis=-2).reshape(*x.shape[:-1], n)
        h *= 2
    return x


def decode_hq(body, h):
    """Codec 5: u16 parameters per (row, head), then the key codes and the value codes."""
    L, T, H, D = h["layers"], h["tokens"], h["kvHeads"], h["headDim"]
    groups = L * 2 * T * H
    params = np.frombuffer(body, dtype="<u2", count=groups).reshape(L, 2, T, H)
    half_steps = ((params & 0x7FFF).astype(np.uint32) << 16).view(np.float32)
    if not np.isfinite(half_steps).all():
        raise RecordError("an hq half-step is not finite")
    rotated = (params & 0x8000) != 0
    block = D & -D  # the largest power of two dividing D
    rows = np.empty((L, 2, T, H, D), dtype=np.float32)
    offset = 2 * groups
    for part, bits in ((0, h["keyBits"]), (1, h["valueBits"])):
        count = L * T * H * D
        length = -(-count * bits // 8)
        codes = unpack_codes(body[offset:offset + length], count, bits).reshape(L, T, H, D)
        offset += length
        levels = (2 * codes - ((1 << bits) - 1)).astype(np.float32)
        w = levels * half_steps[:, part, :, :, None]  # one float32 multiply
        with np.errstate(over="ignore", invalid="ignore"):
            turned = walsh_hadamard(w.reshape(L, T, H, D // block, block)).reshape(L, T, H, D)
        rows[:, part] = np.where(rotated[:, part, :, :, None], turned, w)
    return rows.reshape(L, 2, T, H * D)


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
    references = {}  # model -> (digest, K, V) or the reason it cannot be used
    with env.begin(db=records) as txn:
        def reference_of(model):
            if model not in references:
                try:
                    references[model] = load_reference(txn, model)
                except (RecordError, zstandard.ZstdError, ValueError) as e:
                    references[model] = f"its model's reference is refused: {e}"
            if isinstance(references[model], str):
                raise RecordError(references[model])
            return references[model]

        for key, value in txn.cursor():
            name = f"{key[:32].hex()}-{key[32:64].hex()}-{CODECS.get(key[64], key[64]) if len(key) == 65 else '?'}"
            try:
                if len(key) != 65:
                    raise RecordError("key is not model + image + codec")
                value = bytes(value)
                relative = value[:2] == COMPACT_MAGIC and len(value) > 5 and value[5] & 4
                reference = reference_of(bytes(key[:32])) if relative else None
                h, k, v = decode_record(value, bytes(key[:32]), bytes(key[32:64]), reference)
                if h["codec"] != CODECS.get(key[64]):
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

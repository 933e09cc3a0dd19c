#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz tests under tests/data/fuzz/: small hostile files of
the kinds that once crashed, hung or exhausted i3lab (the large ones, such as a 100,000-deep
pickle, are built by the tests themselves). Standard library only:
  python3 tests/data/fuzz/make_corpus.py
"""
import json
import os
import struct
import zipfile

root = os.path.dirname(os.path.abspath(__file__))


def write(sub, name, data):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
    with open(os.path.join(root, sub, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(header_text, data=b""):
    h = header_text.encode()
    return struct.pack("<Q", len(h)) + h + data


# safetensors/
write("safetensors", "header_length_huge.safetensors", b"\xff" * 8 + b"{}")
write("safetensors", "header_not_object.safetensors", safetensors("[1,2,3]"))
write("safetensors", "header_nested_deep.safetensors", safetensors("[" * 300 + "]" * 300))
write("safetensors", "zero_dim_huge.safetensors",
      safetensors('{"w":{"dtype":"F32","shape":[4611686018427387904,0],"data_offsets":[0,0]}}'))
write("safetensors", "extent_overflow.safetensors",
      safetensors('{"w":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}'))
write("safetensors", "duplicate_name.safetensors",
      safetensors('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                  '"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4))
write("safetensors", "offsets_overlap.safetensors",
      safetensors('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                  '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8))
write("safetensors", "valid_two.safetensors",
      safetensors('{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                  '"b":{"dtype":"I64","shape":[1,1],"data_offsets":[8,16]}}', b"\1" * 16))


# torch_checkpoint/: zip archives as torch.save writes them, with hand-written pickles.
def archive(pickle, storages=()):
    import io
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle)
        z.writestr("archive/byteorder", "little")
        for key, data in storages:
            z.writestr("archive/data/" + key, data)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def unicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def long1(v):
    return b"\x8a\x08" + struct.pack("<q", v)


def one_tensor(name, numel, offset, size, stride):
    p = b"\x80\x02}" + unicode(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
    p += b"(" + unicode("storage") + b"ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") + long1(numel) + b"tQ"
    p += long1(offset) + b"(" + b"".join(long1(s) for s in size) + b"t("
    p += b"".join(long1(s) for s in stride) + b"t\x89)tRs."
    return p


four = b"\0" * 4
write("torch_checkpoint", "valid_one_tensor.bin", archive(one_tensor("w", 1, 0, [1], [1]), [("0", four)]))
write("torch_checkpoint", "mark_underflow.bin", archive(b"\x80\x02NN(\x86t."))
write("torch_checkpoint", "stride_zero_view.bin", archive(one_tensor("w", 1, 0, [1 << 30], [0]), [("0", four)]))
write("torch_checkpoint", "storage_numel_overflow.bin",
      archive(one_tensor("w", (1 << 62) + 1, 0, [1], [1]), [("0", four)]))
write("torch_checkpoint", "nested_tuples.bin", archive(b"\x80\x02" + b"(" * 200 + b"t" * 200 + b"."))
write("torch_checkpoint", "system_call.bin", archive(b"\x80\x02cposix\nsystem\n" + unicode("true") + b"\x85R."))
write("torch_checkpoint", "memo_huge_index.bin", archive(b"\x80\x02Nr\xff\xff\xff\x7f."))

# model_config/ and train_config/ and tokenizer/: JSON documents.
write("model_config", "deep_d_model.json", '{"d_model": ' + "[" * 10000 + "]" * 10000 + "}")
write("model_config", "huge_numbers.json",
      json.dumps({"vocab_size": 2**62, "d_model": 2**62, "n_heads": 1, "d_state": 2**40, "n_hybrid": 2**40,
                  "n_attn": 0, "ffn_mult": 2**62, "context": 2**62}))
write("model_config", "unsigned_max.json", '{"vocab_size": 18446744073709551615}')
write("model_config", "published_overflow.json",
      '{"vocab_size": 10, "d_model": 8, "n_heads": 2, "max_seq_len": 8, "n_layers": -9223372036854775808, '
      '"attn_layers": 1}')
write("model_config", "model_type_deep.json", '{"model_type": ' + "[" * 5000 + "]" * 5000 + "}")
write("model_config", "valid_tiny.json",
      json.dumps({"vocab_size": 12, "d_model": 16, "n_heads": 2, "d_state": 4, "n_hybrid": 1, "n_attn": 1,
                  "ffn_mult": 2, "context": 16}))
write("train_config", "deep_project.json", '{"project": ' + "[" * 5000 + "]" * 5000 + "}")
write("train_config", "deep_notes.json", '{"notes": ' + "{\"a\":" * 5000 + "1" + "}" * 5000 + "}")
write("train_config", "unknown_key.json", '{"optim": {"lr": 1e-3, "bogus": 1}}')
write("train_config", "valid.json",
      '{"project": "p", "optim": {"lr": 0.001}, "max_iters": 10, '
      '"data": {"vocab": "v.json", "sources": [{"path": "a.txt"}]}}')
write("tokenizer", "idx_to_chunk_array.json",
      '{"chunk_to_idx": {"<UNK>": 0, "a": 1}, "idx_to_chunk": ["<UNK>", "a"], "vocab_size": 2}')
write("tokenizer", "vocab_size_deep.json",
      '{"chunk_to_idx": {"<UNK>": 0}, "vocab_size": ' + "[" * 10000 + "]" * 10000 + "}")
write("tokenizer", "id_overflow.json", '{"chunk_to_idx": {"<UNK>": 0, "a": 18446744073709551615}}')
write("tokenizer", "valid.json",
      '{"chunk_to_idx": {"<UNK>": 0, "ab": 1, "c": 2}, "idx_to_chunk": {"0": "<UNK>", "1": "ab", "2": "c"}, '
      '"vocab_size": 3, "unk_idx": 0, "unk_token": "<UNK>"}')
print("wrote", root)

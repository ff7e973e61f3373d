"""The TensorFlow-free TFRecord reader on the BAIR-format fixtures: CRCs, framing errors, parity with TensorFlow."""

from __future__ import annotations

import io

import numpy as np
import pytest

from vgbench.datasets import bair, tfrecord
from vgbench.errors import InputError

BAIR = "data/bair/SYNTHETIC_tfds_fake_examples/softmotion30_44k"


@pytest.fixture(scope="module")
def test_file(shared_dir):
    return shared_dir / BAIR / "test/traj_0_to_255.tfrecords"


def test_crc32c_known_answers():
    assert tfrecord.crc32c_python(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert tfrecord.crc32c(b"123456789") == 0xE3069283
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    assert tfrecord.crc32c(data) == tfrecord.crc32c_python(data)
    assert tfrecord.CRC_IMPL == "google_crc32c"  # the data extra is installed where the tests run


def test_bair_record_shapes_and_values(test_file):
    with open(test_file, "rb") as f:
        (ex,) = list(bair.read_file(f, test_file.name))
    assert ex["frames"].shape == (30, 64, 64, 3) and ex["frames"].dtype == np.uint8
    assert ex["actions"].shape == (30, 4) and ex["endeffector_pos"].shape == (30, 3)
    assert set(np.unique(ex["frames"])) <= {0, 255}  # PROVENANCE.md: synthetic pixels are 0 or 255
    assert (ex["frames"] == 255).mean() == pytest.approx(1 / 3, abs=0.02)
    assert ex["actions"].min() > 0.0 and ex["actions"].max() < 1.0
    with open(test_file, "rb") as f:
        (main,) = list(bair.read_file(f, test_file.name, camera="main"))
    assert main["frames"].shape == (30, 64, 64, 3) and not np.array_equal(main["frames"], ex["frames"])


def test_corrupt_record_names_file_and_offset(test_file):
    raw = bytearray(test_file.read_bytes())
    good = raw + raw  # two records; corrupt a pixel byte of the second
    n = len(raw)
    good[n + 5000] ^= 0xFF
    with pytest.raises(InputError, match=rf"x.tfrecords: corrupt record at byte {n}: payload CRC mismatch"):
        list(tfrecord.iter_records(io.BytesIO(bytes(good)), "x.tfrecords"))
    bad_len = bytearray(raw)
    bad_len[0] ^= 1
    with pytest.raises(InputError, match="byte 0: length CRC mismatch"):
        list(tfrecord.iter_records(io.BytesIO(bytes(bad_len)), "x.tfrecords"))
    with pytest.raises(InputError, match="truncated record at byte 0"):
        list(tfrecord.iter_records(io.BytesIO(bytes(raw[:-100])), "x.tfrecords"))
    with pytest.raises(InputError, match="truncated record header"):
        list(tfrecord.iter_records(io.BytesIO(bytes(raw) + b"\1\2"), "x.tfrecords"))


def test_framing_round_trip():
    buf = io.BytesIO()
    payloads = [b"", b"abc", bytes(range(256)) * 40]
    for p in payloads:
        tfrecord.write_record(buf, p)
    buf.seek(0)
    got = list(tfrecord.iter_records(buf, "mem"))
    assert [p for _, p in got] == payloads and [o for o, _ in got] == [0, 16, 35]


@pytest.mark.tf
def test_identical_to_tensorflows_reader(tf, shared_dir):
    for split in ("train", "test"):
        path = next((shared_dir / BAIR / split).glob("*.tfrecords"))
        with open(path, "rb") as f:
            mine = list(bair.read_file(f, path.name))
        theirs = []
        for raw in tf.data.TFRecordDataset(str(path)):
            feat = tf.train.Example.FromString(raw.numpy()).features.feature
            theirs.append(
                {
                    "frames": np.stack(
                        [
                            np.frombuffer(feat[f"{t}/image_aux1/encoded"].bytes_list.value[0], np.uint8).reshape(
                                64, 64, 3
                            )
                            for t in range(30)
                        ]
                    ),
                    "actions": np.array([feat[f"{t}/action"].float_list.value for t in range(30)], np.float32),
                    "endeffector_pos": np.array(
                        [feat[f"{t}/endeffector_pos"].float_list.value for t in range(30)], np.float32
                    ),
                }
            )
        assert len(mine) == len(theirs) == 1
        for k in ("frames", "actions", "endeffector_pos"):
            assert np.array_equal(mine[0][k], theirs[0][k]), (split, k)

"""The stage store: keys, atomic publishing, verification on read, checkpoints, the lock."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from draggan.atomic_write import atomic_write
from pipeline.store import KeyMaterial, LockBusy, Ref, RunLock, Store, explain_change
from pipeline.store.keys import DigestCache, canonical_json
from pipeline.store.store import DamagedResult


def _material(**params):
    return KeyMaterial(
        stage="edit", version=1, params={"drag": {"lr": 0.002, **params}}, inputs={"invert": "k"}
    )


def test_key_is_deterministic_and_parameter_sensitive():
    a, b = _material(), _material()
    assert a.key == b.key and len(a.key) == 40
    assert _material(lr=0.001).key != a.key
    assert canonical_json({"b": (1, 2), "a": 1.5}) == '{"a":1.5,"b":[1,2]}'


def test_explain_change_names_the_parameter_and_the_input():
    old = _material().to_dict()
    new = _material(lr=0.001).to_dict()
    assert explain_change(old, new) == "drag parameters changed (lr: 0.002 -> 0.001)"
    moved = KeyMaterial(stage="edit", version=1, params=old["params"], inputs={"invert": "x"})
    assert explain_change(old, moved.to_dict()) == "inversion changed"


def test_digest_cache_rehashes_only_on_change(tmp_path):
    f = tmp_path / "g.bin"
    f.write_bytes(b"abc")
    cache = DigestCache(tmp_path / "d.json")
    first = cache.digest(f)
    assert first == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert DigestCache(tmp_path / "d.json").digest(f) == first  # persisted
    f.write_bytes(b"abcd")
    assert cache.digest(f) != first


def _publish(store, material, payload=b"hello"):
    pending = store.begin(material)
    pending.file("out.bin").write_bytes(payload)
    pending.write_json("info.json", {"x": 1})
    pending.write_tensors("ws.safetensors", {"ws": torch.arange(6.0).reshape(1, 2, 3)})
    return pending.commit(metrics={"psnr": 30.0}, timings={"total": 1.0})


def test_commit_then_lookup_roundtrip(tmp_path):
    store = Store(tmp_path)
    material = _material()
    result = _publish(store, material)
    assert not (tmp_path / "partial" / f"edit-{material.key}").exists()
    found = store.lookup(material)
    assert found is not None and found.key == material.key
    assert found.file("out.bin").read_bytes() == b"hello"
    assert found.json("info.json") == {"x": 1}
    assert torch.equal(found.tensors("ws.safetensors")["ws"], torch.arange(6.0).reshape(1, 2, 3))
    assert found.metrics == {"psnr": 30.0}
    assert result.manifest["files"]["out.bin"]["size"] == 5
    assert store.lookup(_material(lr=1.0)) is None


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete_file", "delete_manifest", "garble"])
def test_damaged_result_is_detected_reported_and_removed(tmp_path, damage):
    messages = []
    store = Store(tmp_path, report=messages.append)
    material = _material()
    result = _publish(store, material)
    target = result.path / "ws.safetensors"
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[-1] ^= 0x01
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-3])
    elif damage == "delete_file":
        target.unlink()
    elif damage == "delete_manifest":
        (result.path / "manifest.json").unlink()
    else:
        (result.path / "manifest.json").write_text("{not json")
    assert store.lookup(material) is None
    assert len(messages) == 1 and str(result.path) in messages[0]
    assert not result.path.exists()
    _publish(store, material)  # recomputing publishes a good copy again
    assert store.lookup(material) is not None


def test_partial_result_is_never_found_and_checkpoints_survive(tmp_path):
    store = Store(tmp_path)
    material = _material()
    pending = store.begin(material)
    pending.file("out.bin").write_bytes(b"half")
    state = {"w": torch.randn(3, 4), "step": torch.tensor(7)}
    pending.save_checkpoint("tune", state, {"step": 7, "rng": [1, 2]})
    assert store.lookup(material) is None
    # a new process resumes the same partial directory and finds the checkpoint
    tensors, meta = Store(tmp_path).begin(material).load_checkpoint("tune")
    assert meta == {"step": 7, "rng": [1, 2]}
    assert torch.equal(tensors["w"], state["w"])
    result = pending.commit()
    assert not (result.path / "checkpoints").exists()
    assert set(result.manifest["files"]) == {"out.bin"}


def test_unreadable_checkpoint_is_ignored(tmp_path):
    messages = []
    pending = Store(tmp_path, report=messages.append).begin(_material())
    pending.save_checkpoint("tune", {"w": torch.zeros(2)}, {"step": 1})
    (pending.path / "checkpoints" / "tune.safetensors").write_bytes(b"garbage")
    assert pending.load_checkpoint("tune") is None
    assert "unreadable checkpoint" in messages[0]


def test_refs_record_the_last_material(tmp_path):
    store = Store(tmp_path)
    store.write_ref("p1", "edit-smile", _material())
    ref = store.read_ref("p1", "edit-smile")
    assert ref["key"] == _material().key
    assert explain_change(ref["material"], _material(lr=0.5).to_dict()).startswith("drag")


def test_store_answers_for_its_layout(tmp_path):
    store = Store(tmp_path)
    kept, dropped = _material(), _material(lr=0.5)
    result = _publish(store, kept)
    store.begin(dropped).save_checkpoint("tune", {"w": torch.zeros(2)}, {"step": 1})
    assert store.partials() == [("edit", dropped.key)] and store.partial_size(*store.partials()[0])
    store.remove_partial("edit", dropped.key)
    assert store.partials() == []
    assert store.result(Ref("edit", kept.key)).path == result.path
    store.remove("edit", kept.key)
    with pytest.raises(DamagedResult, match="missing"):
        store.result(Ref("edit", kept.key))
    store.write_ref("p1", "invert-face1", kept)
    store.write_ref("p1", "align", kept)
    assert store.ref_slots("p1") == ["align", "invert-face1"] and store.ref_slots("p2") == []
    store.drop_refs()
    assert store.read_ref("p1", "align") is None
    assert store.generator_info("abc") is None
    store.remember_generator("abc", {"img_resolution": 32})
    assert Store(tmp_path).generator_info("abc") == {"img_resolution": 32}


def test_atomic_write_publishes_whole_files_only(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed while writing")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_write(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible before the end
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # like a plain open()


_HOLD = textwrap.dedent(
    """
    import sys, time
    from pipeline.store import RunLock
    lock = RunLock(sys.argv[1]); lock.acquire()
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_lock_busy_then_free_after_holder_is_killed(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockBusy, match=f"pid {holder.pid}"):
            RunLock(tmp_path, timeout=0.3).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the lock file (with the dead pid) stays, but does not block
    assert json.loads((tmp_path / "lock").read_text())["pid"] == holder.pid
    with RunLock(tmp_path, timeout=0):
        assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()


def test_lock_waits_and_reports_who_holds_it(tmp_path):
    first = RunLock(tmp_path)
    first.acquire()
    waits = []
    second = RunLock(tmp_path, timeout=0.5, on_wait=waits.append)
    with pytest.raises(LockBusy):
        second.acquire()
    assert waits and f"pid {os.getpid()}" in waits[0]
    first.release()
    with RunLock(tmp_path, timeout=0):
        pass

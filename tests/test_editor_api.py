"""The editor's server over HTTP: access control, request checks, one job per face, and the
page's work reproduced by ``dragpipe run`` from the saved spec (tiny 32 px generator)."""

from __future__ import annotations

import http.client
import io
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_project_folder
from PIL import Image
from pipeline_fixtures import computed, run, write_spec

from pipeline.alignment.transform import AlignTransform, aligned_to_photo
from pipeline.editor.server import MAX_JSON_BYTES, EditorServer
from pipeline.editor.session import EditorSession
from pipeline.spec import load_spec
from pipeline.spec.yaml_loader import load_yaml

REPO = Path(__file__).resolve().parent.parent


class Client:
    def __init__(self, server: EditorServer):
        self.server = server

    def request(self, method, path, body=None, token=True, headers=None, raw=False):
        """(status, JSON answer or bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
        sent = dict(headers or {})
        if token:
            sent.setdefault("X-Dragpipe-Token", self.server.token)
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        if raw:
            return response.status, payload
        return response.status, json.loads(payload)

    def work(self, path, body, timeout=300.0):
        """Submit work and wait for its end: (last event, every event)."""
        status, answer = self.request("POST", path, body)
        assert status == 202, answer
        return self.wait(answer["work"], timeout)

    def wait(self, ident, timeout=300.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, snap = self.request("GET", f"/api/work/{ident}")
            assert status == 200
            if snap["done"]:
                return snap["events"][-1], snap["events"]
            time.sleep(0.1)
        raise AssertionError(f"work {ident} did not end in {timeout} s")


@pytest.fixture(scope="module")
def editor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("editor")
    make_project_folder(folder)
    spec = write_spec(folder)
    session = EditorSession(spec, folder / "work", "cpu")
    server = EditorServer(session)
    server.start()
    yield Client(server), spec, folder
    server.close()


def face_transform(folder: Path) -> AlignTransform:
    """The transform of the (one) face of the photo, from the store's alignment."""
    found = sorted((folder / "work" / "results" / "align").glob("*/faces.json"))
    return AlignTransform.from_dict(json.loads(found[0].read_text())[0]["transform"])


# Access ---------------------------------------------------------------------------------------
def test_every_request_needs_the_token(editor):
    client, _, _ = editor
    for path in ("/", "/static/editor.js", "/api/session", "/api/files/" + "0" * 32):
        status, answer = client.request("GET", path, token=False)
        assert status == 403 and "token" in answer["error"], path
        status, _ = client.request("GET", path, token=False, headers={"X-Dragpipe-Token": "x"})
        assert status == 403, path
    status, answer = client.request("POST", "/api/open", {"photo": "hopper"}, token=False)
    assert status == 403
    status, page = client.request("GET", f"/?token={client.server.token}", token=False, raw=True)
    assert status == 200 and b"dragpipe edit" in page and client.server.token.encode() in page
    status, summary = client.request("GET", "/api/session")
    assert status == 200 and summary["photos"][0]["edits"] == ["smile", "brow", "more"]


def test_requests_for_another_host_are_refused(editor):
    client, _, _ = editor
    status, answer = client.request("GET", "/api/session", headers={"Host": "evil.example:80"})
    assert status == 403 and "Host" in answer["error"]


def test_the_server_listens_on_loopback_only(editor):
    client, _, _ = editor
    assert client.server.httpd.server_address[0] == "127.0.0.1"


# Bad requests ---------------------------------------------------------------------------------
def test_malformed_json_is_a_400_with_a_message(editor):
    client, _, _ = editor
    status, answer = client.request("POST", "/api/drag", b'{"photo": "hopper", "face": 0,')
    assert status == 400 and answer["error"].startswith("request body is not valid JSON")
    status, answer = client.request("POST", "/api/drag", {"photo": "hopper", "face": 0})
    assert status == 400 and "edits" in answer["error"]
    bad_point = {"aligned": [1, 2], "landmark": 3}
    body = {
        "photo": "hopper",
        "face": 0,
        "edits": [{"name": "e", "pairs": [{"handle": bad_point, "target": {"aligned": [3, 4]}}]}],
    }
    status, answer = client.request("POST", "/api/drag", body)
    assert status == 400 and "exactly one of aligned, landmark or written" in answer["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2fsetup.cfg",
        "/static/index.html/../../__init__.py",
        "/api/files/../../spec.yaml",
        "/api/files/%2e%2e%2fspec.yaml",
        "/../spec.yaml",
        "//etc/passwd",
        "/api/work/1/../../../spec.yaml",
    ],
)
def test_paths_outside_the_served_files_are_refused(editor, path):
    client, spec, _ = editor
    status, payload = client.request("GET", path, raw=True)
    assert status == 404
    assert b"generator:" not in payload and b"root:" not in payload


def test_request_bodies_have_size_limits(editor):
    client, _, _ = editor
    conn = http.client.HTTPConnection("127.0.0.1", client.server.port, timeout=30)
    conn.putrequest("POST", "/api/drag")
    conn.putheader("X-Dragpipe-Token", client.server.token)
    conn.putheader("Content-Length", str(MAX_JSON_BYTES + 1))
    conn.endheaders()  # the body is never sent: the limit is checked before reading
    response = conn.getresponse()
    assert response.status == 413 and b"too large" in response.read()
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", client.server.port, timeout=30)
    conn.putrequest("POST", "/api/open")
    conn.putheader("X-Dragpipe-Token", client.server.token)
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 411
    conn.close()
    status, answer = client.request(
        "POST", "/api/mask", b"not a png", headers={"Content-Type": "image/png"}
    )
    assert status == 400 and "PNG" in answer["error"]


def test_one_job_per_face_at_a_time(editor):
    client, _, _ = editor
    release = threading.Event()
    blocker = client.server.session.worker.submit(
        "hold", None, lambda work: release.wait(60) and {}
    )
    try:
        status, first = client.request("POST", "/api/invert", {"photo": "hopper", "face": 0})
        assert status == 202
        status, answer = client.request("POST", "/api/invert", {"photo": "hopper", "face": 0})
        assert status == 409 and "has a job running" in answer["error"]
        status, other = client.request("POST", "/api/invert", {"photo": "hopper", "face": 1})
        assert status == 202  # another face queues (and fails: the photo has one face)
    finally:
        release.set()
    client.wait(blocker.id)
    last, _ = client.wait(first["work"])
    assert last["type"] == "done" and last["result"]["reconstruction"].startswith("/api/files/")
    last, _ = client.wait(other["work"])
    assert last["type"] == "failed" and "has 1 face(s): no face 1" in last["message"]


# The page's work and `dragpipe run` --------------------------------------------------------
def test_drag_save_then_run_gives_the_page_result_byte_for_byte(editor, tmp_path):
    client, spec, folder = editor
    last, _ = client.work("/api/open", {"photo": "hopper"})
    assert last["type"] == "done", last
    opened = last["result"]
    assert [face["index"] for face in opened["faces"]] == [0] and opened["selected"] == [0]
    assert [edit["name"] for edit in opened["edits"]] == ["smile", "brow", "more"]
    assert opened["edits"][2]["from"] == "smile"
    handle, target = [10.25, 12.5], [13.0, 9.75]
    # A painted mask (white = may move), 32 px like the aligned face.
    painted = np.zeros((32, 32), dtype=np.uint8)
    painted[4:28, 4:28] = 255
    buffer = io.BytesIO()
    Image.fromarray(painted).save(buffer, format="PNG")
    status, mask = client.request(
        "POST", "/api/mask", buffer.getvalue(), headers={"Content-Type": "image/png"}
    )
    assert status == 200, mask
    edit = {
        "name": "web",
        "pairs": [{"handle": {"aligned": handle}, "target": {"aligned": target}}],
        "painted": mask["id"],
    }
    last, events = client.work("/api/drag", {"photo": "hopper", "face": 0, "edits": [edit]})
    assert last["type"] == "done", last
    kinds = {event["type"] for event in events}
    assert {"job", "progress", "drag", "frame"} <= kinds
    result = last["result"]
    assert result["stopped_at"] is None and result["edit"]["computed"]
    # What the page shows is the stored result.
    status, composite = client.request("GET", result["composite"]["file"], raw=True)
    assert status == 200 and len(composite) > 1000

    chain = [{k: v for k, v in form.items() if k != "resolved"} for form in result["chain"]]
    last, _ = client.work("/api/save", {"photo": "hopper", "face": 0, "edits": chain})
    assert last["type"] == "done", last
    assert last["result"]["masks"] == ["masks/hopper-web.png"]
    saved = load_spec(spec).photo("hopper").edit("web")
    written = np.array([saved.points[0].handle, saved.points[0].target])
    transform = face_transform(folder)
    clicked = aligned_to_photo(np.array([handle, target]), transform)
    assert np.abs(written - clicked).max() <= 0.01  # rounded to 0.01 px
    assert (folder / "masks" / "hopper-web.png").read_bytes() == (
        client.server.session.masks_dir / f"{mask['id']}.png"
    ).read_bytes()

    report, warnings = run(spec, folder / "work", tmp_path / "out")
    assert report.failures == {} and warnings == []
    assert ("edit", "web") not in computed(report) and ("composite", "web") not in computed(report)
    assert (tmp_path / "out" / "hopper" / "web.jpg").read_bytes() == composite


def stopped_drag(client: Client, name: str, drag: dict, at: int) -> tuple[dict, list[int]]:
    """A drag of edit ``name`` with ``drag`` settings, stopped at step ``at`` through the
    editor: (the work's result, the steps of its drag events)."""
    session = client.server.session
    release = threading.Event()
    blocker = session.worker.submit("hold", None, lambda work: release.wait(60) and {})
    edit = {
        "name": name,
        "pairs": [{"handle": {"landmark": 30}, "target": {"aligned": [20.0, 8.0]}}],
        "drag": drag,
    }
    status, answer = client.request(
        "POST", "/api/drag", {"photo": "hopper", "face": 0, "edits": [edit]}
    )
    assert status == 202
    work = session.worker.items[answer["work"]]

    def stop_there(event):  # runs in the worker thread, before the drag's next step
        if event["type"] == "drag" and event["step"] == at:
            work.stop()

    work.listeners.append(stop_there)
    release.set()
    client.wait(blocker.id)
    last, events = client.wait(work.id)
    assert last["type"] == "done", last
    return last["result"], [event["step"] for event in events if event["type"] == "drag"]


def test_stopped_drag_is_saved_as_the_drag_capped_there(editor, tmp_path):
    client, spec, folder = editor
    result, steps = stopped_drag(client, "stopped", {"max_steps": 40}, 3)
    assert result["stopped_at"] == 3
    assert result["edit"]["metrics"]["steps"] == 3
    assert result["edit"]["metrics"]["stop_reason"] == "max_steps"
    assert result["chain"][0]["drag"] == {"max_steps": 3}
    assert result["chain"][0]["pairs"][0]["handle"] == {"written": {"landmark": "nose_tip"}}
    assert steps == [0, 1, 2, 3, 3]  # step 3 again: the capped drag resumed there
    status, edited = client.request("GET", result["edit"]["edited"], raw=True)

    chain = [{k: v for k, v in form.items() if k != "resolved"} for form in result["chain"]]
    last, _ = client.work("/api/save", {"photo": "hopper", "face": 0, "edits": chain})
    assert last["type"] == "done", last
    raw = load_yaml(spec.read_text()).data["photos"][0]["edits"][-1]
    assert raw["drag"] == {"max_steps": 3}
    report, _ = run(spec, folder / "work", tmp_path / "out")
    assert ("edit", "stopped") not in computed(report)
    assert (tmp_path / "out" / "hopper" / "stopped_after.png").read_bytes() == edited
    # Computed afresh (another workdir, no stop, no resume): the same bytes.
    fresh, _ = run(spec, tmp_path / "fresh", tmp_path / "fresh-out")
    assert ("edit", "stopped") in computed(fresh)
    assert (tmp_path / "fresh-out" / "hopper" / "stopped_after.png").read_bytes() == edited
    assert (tmp_path / "fresh-out" / "hopper" / "stopped.jpg").read_bytes() == (
        tmp_path / "out" / "hopper" / "stopped.jpg"
    ).read_bytes()


def test_stopped_onnxruntime_drag_is_recomputed_capped_there(editor):
    """The ONNX Runtime backend keeps no loop state: Stop saves no checkpoint, and the drag
    capped at the stopped step is computed from step 0."""
    pytest.importorskip("onnxruntime.training.api")
    client, _, _ = editor
    drag = {"max_steps": 40, "backend": "onnxruntime"}
    result, steps = stopped_drag(client, "stopped-ort", drag, 2)
    assert result["stopped_at"] == 2 and result["edit"]["metrics"]["steps"] == 2
    assert result["chain"][0]["drag"] == {"max_steps": 2, "backend": "onnxruntime"}
    assert steps == [0, 1, 2, 0, 1, 2]  # no state to resume from: recomputed


def test_choosing_a_face_the_spec_does_not_select_writes_its_index(tmp_path):
    """The astronaut photo has two detections (the face and one on the suit): the page
    lists both; saving an edit on the one 'largest' does not pick writes ``face: <index>``,
    and the edit's photo points lie on that face."""
    make_project_folder(tmp_path)
    shutil.copyfile(REPO / "examples" / "photos" / "astronaut.png", tmp_path / "astro.png")
    spec = tmp_path / "spec.yaml"
    spec.write_text(write_spec(tmp_path).read_text().replace("hopper.jpg", "astro.png"))
    server = EditorServer(EditorSession(spec, tmp_path / "work", "cpu"))
    server.start()
    try:
        client = Client(server)
        last, _ = client.work("/api/open", {"photo": "hopper"})
        assert last["type"] == "done", last
        faces, selected = last["result"]["faces"], last["result"]["selected"]
        assert [face["index"] for face in faces] == [0, 1] and len(selected) == 1
        other = 1 - selected[0]
        edit = {
            "name": "other",
            "pairs": [{"handle": {"aligned": [16, 16]}, "target": {"aligned": [18, 14]}}],
        }
        last, _ = client.work("/api/save", {"photo": "hopper", "face": other, "edits": [edit]})
        assert last["type"] == "done", last
    finally:
        server.close()
    photo = load_spec(spec).photo("hopper")
    assert photo.face == other
    box = faces[other]["box"]  # the chosen face's detection box, photo pixels
    handle = np.array(photo.edit("other").points[0].handle)
    assert box[0] <= handle[0] <= box[2] and box[1] <= handle[1] <= box[3]

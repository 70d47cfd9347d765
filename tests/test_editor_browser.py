"""The editor in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
installed by ``.ci/run``) driven with selenium, on the bundled demo generator with tiny step
counts. It clicks a handle and a target on the aligned face, drags, saves, and checks the
spec, the result shown and that ``dragpipe run`` then finds everything cached.

One page load. The screenshot is kept as ``test-artifacts/editor-browser.png``.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from pipeline_fixtures import computed, run

from pipeline.alignment.transform import AlignTransform, aligned_to_photo
from pipeline.editor.server import EditorServer
from pipeline.editor.session import EditorSession
from pipeline.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
GENERATOR = REPO / "examples" / "demo" / "generator.safetensors"
PHOTO = REPO / "examples" / "photos" / "grace_hopper.jpg"
SPEC = """\
# made by tests/test_editor_browser.py: the demo generator, tiny step counts
generator: {generator}
invert:
  project: {{num_steps: 2, w_avg_samples: 16, lpips_net: alex, perceptual_backbone: random}}
  tune: {{max_steps: 2, lpips_threshold: 0.0, perceptual_backbone: random}}
drag: {{max_steps: 3, render_every: 1, lr: 0.005}}
photos:
  - id: grace
    path: grace.jpg
"""
HANDLE_CSS = (236.0, 300.0)  # where the test clicks on the 512 x 512 face canvas
TARGET_CSS = (236.0, 270.0)


def _browser() -> tuple[str, str] | None:
    browser = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
    )
    driver = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver"
        if Path("/usr/lib/chromium/chromedriver").is_file()
        else None
    )
    return (browser, driver) if browser and driver else None


def _skip_loudly(reason: str) -> None:
    message = (
        f"BROWSER TEST NOT RUN: {reason} (.ci/run installs Debian's chromium + chromium-driver)"
    )
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


@pytest.fixture
def chrome():
    found = _browser()
    if found is None:
        _skip_loudly("chromium and chromedriver are not installed")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip_loudly("selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1300,1000",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=found[1]), options=options)
    yield driver
    driver.quit()


def _status(driver) -> str:
    return driver.find_element("id", "status").text


def _wait_status(driver, words: str, timeout: float):
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        text = _status(d)
        if "error" in (d.find_element("id", "status").get_attribute("class") or ""):
            raise AssertionError(f"the page shows an error: {text}")
        return words in text

    WebDriverWait(driver, timeout, poll_frequency=0.25).until(ready)


def test_click_drag_save_in_chromium(chrome, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    shutil.copyfile(PHOTO, tmp_path / "grace.jpg")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(generator=GENERATOR))
    session = EditorSession(spec, tmp_path / ".dragpipe", "cpu")
    server = EditorServer(session)
    server.start()
    try:
        chrome.get(server.url)
        _wait_status(chrome, "1 face(s)", 300)
        canvas = chrome.find_element("id", "face-canvas")
        assert canvas.size == {"width": 512, "height": 512}
        chrome.find_element("id", "show-landmarks").click()
        for x, y in (HANDLE_CSS, TARGET_CSS):  # offsets from the canvas centre
            ActionChains(chrome).move_to_element_with_offset(
                canvas, x - 256, y - 256
            ).click().perform()
        pairs = chrome.execute_script("return current().pairs.length")
        assert pairs == 1
        chrome.find_element("id", "drag").click()
        _wait_status(chrome, "drag done", 600)
        shown = chrome.execute_script(
            "const img = document.getElementById('photo-img');"
            "return [img.complete, img.naturalWidth, img.dataset.showing, img.src,"
            " current().result.composite.url];"
        )
        assert shown[0] and shown[1] > 0 and shown[2] == "after"
        assert shown[3].split("?")[0].endswith(shown[4])  # the composite is what is shown
        chrome.find_element("id", "save").click()
        _wait_status(chrome, "saved edit1", 120)
        ARTIFACTS.mkdir(exist_ok=True)
        assert chrome.save_screenshot(str(ARTIFACTS / "editor-browser.png"))
        resolution = chrome.execute_script("return faceInfo().resolution")
        composite_url = shown[4]
    finally:
        server.close()

    # The spec holds the clicked points, in photo pixels (within 1 px of the clicked spots).
    edit = load_spec(spec).photo("grace").edit("edit1")
    written = np.array([edit.points[0].handle, edit.points[0].target], dtype=np.float64)
    faces = sorted((tmp_path / ".dragpipe" / "results" / "align").glob("*/faces.json"))
    transform = AlignTransform.from_dict(json.loads(faces[0].read_text())[0]["transform"])
    clicked = np.array([HANDLE_CSS, TARGET_CSS]) / 512 * resolution - 0.5  # aligned pixels
    expected = aligned_to_photo(clicked, transform)
    assert np.abs(written - expected).max() <= 1.0, (written, expected)

    # `dragpipe run` finds the page's work in the store and writes its result.
    report, _ = run(spec, tmp_path / ".dragpipe", tmp_path / "out")
    assert report.failures == {}
    assert ("edit", "edit1") not in computed(report)
    assert ("composite", "edit1") not in computed(report)
    assert composite_url.startswith("/api/files/")
    assert (tmp_path / "out" / "grace" / "edit1.jpg").is_file()

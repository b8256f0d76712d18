"""The explorer's page in a real headless Chromium (Debian's, driven by Playwright): the
numbers it shows are cnnkit's, uploads and drawing work, and it loads nothing from
outside its server.

Screenshots go to a temporary folder, or to ``$CNNKIT_SCREENSHOTS`` when set (the
README's pictures: ``CNNKIT_SCREENSHOTS=docs/images pytest tests/test_explore_browser.py``).
"""

import os
import time
from pathlib import Path

import numpy as np
import pytest
from explore_models import INPUT_SHAPE, branchy, png_bytes, varied_model

import cnnkit as ck
from cnnkit.data import load_digits
from cnnkit.explore import DIGITS_MODEL
from cnnkit.preprocessing import prepare_image
from cnnkit.train import predict_proba

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.slow  # a real Chromium for each test


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def digits():
    with ck.explore(open_browser=False) as running:
        yield running


@pytest.fixture
def colour():
    with ck.explore(
        varied_model(),
        open_browser=False,
        input_shape=INPUT_SHAPE,
        classes=["cat", "dog", "bird", "fish", "frog"],
    ) as running:
        yield running


@pytest.fixture
def screenshots(tmp_path):
    folder = Path(os.environ.get("CNNKIT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Page:
    """A browser tab on one explorer, recording every request and page error."""

    def __init__(self, browser, explorer, width=1400, height=900):
        self.explorer = explorer
        self.origin = explorer.url.split("/?")[0]
        self.requests, self.errors, self.posts = [], [], []
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("request", self._request)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _request(self, request):
        self.requests.append(request.url)
        if request.method == "POST" and "/api/input" in request.url:
            self.posts.append(request.url)

    def open(self, url=None):
        self.page.goto(url or self.explorer.url)
        self.page.wait_for_selector("body[data-ready=true]")
        return self.page

    def updates(self) -> int:
        return int(self.page.evaluate("Number(document.body.dataset.updated || 0)"))

    def wait_updates(self, count):
        wait_until(self.page, f"Number(document.body.dataset.updated || 0) >= {count}")

    def shown_probabilities(self):
        values = self.page.eval_on_selector_all(
            "#probabilities .bar",
            "rows => rows.map(r => [Number(r.dataset.class), "
            "Number(r.querySelector('.value').dataset.value)])",
        )
        return np.array([v for _, v in sorted(values)])

    def close(self):
        outside = [
            url
            for url in self.requests
            if not url.startswith(self.origin)
            and not url.startswith("data:")
            and not url.startswith("file:")
        ]
        self.page.close()
        assert not outside, f"the page requested outside its server: {outside}"
        assert not self.errors, self.errors


@pytest.fixture
def tab(browser, request):
    tabs = []

    def open_tab(explorer, **kwargs):
        tab = Page(browser, explorer, **kwargs)
        tabs.append(tab)
        return tab

    yield open_tab
    for tab in tabs:
        tab.close()


def wait_until(page, expression, timeout_ms=TIMEOUT_MS):
    """Poll a JavaScript expression until it is true (the page's policy forbids the string
    evaluation Playwright's wait_for_function uses)."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def click_cell(page, y, x, h, w):
    """Click cell (y, x) of the detail view's h x w map."""
    box = page.locator("#detail-map").bounding_box()
    page.mouse.click(
        box["x"] + (x + 0.5) * box["width"] / w, box["y"] + (y + 0.5) * box["height"] / h
    )


def digits_input():
    _, test = load_digits()
    return test.x[0]


def test_overview_shows_every_layer_and_the_probabilities(browser, digits, tab, screenshots):
    """Every layer's maps (one per channel), one scale per layer, probabilities with names."""
    model = ck.load(DIGITS_MODEL)
    t = tab(digits)
    page = t.open()
    page.screenshot(path=str(screenshots / "explore-overview.png"))
    x = digits_input()[None]
    outputs = []
    for layer in model:
        x = layer(x)
        outputs.append(x)
    blocks = page.locator(".layer")
    assert blocks.count() == len(model)
    for index, out in enumerate(outputs):
        block = page.locator(f'.layer[data-layer="{index}"]')
        block.scroll_into_view_if_needed()
        tiles = out.shape[1] if out.ndim == 4 else 1
        wait_until(
            page,
            f"document.querySelectorAll('.layer[data-layer=\"{index}\"] .map').length === {tiles}",
        )
        assert block.locator(".scale").count() == 1
        assert type(model[index]).__name__ in block.locator(".layer-name").inner_text()
    labels = page.eval_on_selector_all("#probabilities .label", "ls => ls.map(l => l.textContent)")
    assert labels == [str(k) for k in range(10)]
    np.testing.assert_allclose(
        t.shown_probabilities(), predict_proba(model, digits_input()[None])[0], rtol=1e-5
    )


def test_clicked_cells_show_cnnkit_numbers(browser, digits, tab, screenshots):
    """Convolution: windows, partial sums and total equal a direct computation; other layers' totals too."""
    model = ck.load(DIGITS_MODEL)
    t = tab(digits)
    page = t.open()
    x = digits_input()
    page.click('.map[data-layer="0"][data-channel="2"]')
    page.wait_for_selector("#detail-map")
    click_cell(page, 3, 4, 8, 8)
    page.wait_for_selector("#explanation .channel-row")
    shown = float(page.locator("#detail-value .num").get_attribute("data-value"))
    expected = model[0](x[None])[0, 2, 3, 4]
    assert shown == pytest.approx(float(expected), rel=1e-6)
    text = page.locator("#detail-value .num").inner_text()
    assert float(text) == pytest.approx(float(expected), rel=1e-3)
    window = np.pad(x[0].astype(np.float64), 1)[3:6, 4:7]
    partial = float((window * model[0].weight.data[2, 0]).sum())
    assert float(page.locator(".partial").first.get_attribute("data-value")) == pytest.approx(
        partial, rel=1e-6
    )
    cells = page.eval_on_selector_all(
        ".channel-row table.grid:first-of-type td", "tds => tds.map(td => Number(td.dataset.value))"
    )
    np.testing.assert_allclose(np.array(cells).reshape(3, 3), window, rtol=1e-6)
    page.set_viewport_size({"width": 1400, "height": 1150})
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshots / "explore-detail.png"))
    # The receptive field is drawn over the input.
    painted = page.evaluate("""() => {
        const c = document.querySelectorAll('.input-view canvas')[2];
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }""")
    assert painted > 0
    # Batch norm, max pooling and the linear layer: the formula's result is the map's value.
    outputs, h = [], x[None]
    for layer in model:
        h = layer(h)
        outputs.append(h)
    for index, (channel, y, col) in {1: (3, 2, 5), 3: (1, 1, 2), 10: (7, 0, 0)}.items():
        page.locator(
            f'.layer[data-layer="{index}"]'
        ).scroll_into_view_if_needed()  # maps load in view
        page.click(f'.map[data-layer="{index}"][data-channel="0"]')
        page.wait_for_selector(f'#detail h2:has-text("Layer {index} ")')
        if outputs[index].ndim == 4:
            page.click(f'.map[data-layer="{index}"][data-channel="{channel}"]')
            page.wait_for_selector(f'#detail h2:has-text("channel {channel}")')
            shape = outputs[index].shape[2:]
            click_cell(page, y, col, *shape)
            expected = outputs[index][0, channel, y, col]
        else:
            click_cell(page, 0, channel, 1, outputs[index].shape[1])
            expected = outputs[index][0, channel]
        page.wait_for_selector("#explanation .total")
        total = page.locator("#explanation .formula .total").last.get_attribute("data-value")
        assert float(total) == pytest.approx(float(expected), rel=1e-5, abs=1e-6)


def test_uploaded_picture_is_prepared_as_predict_does(browser, colour, tab, tmp_path, rng):
    """Upload a picture: the probabilities shown are predict's for the same file."""
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(rng.uniform(0, 1, (40, 30, 3))))
    t = tab(colour)
    page = t.open()
    page.set_input_files("#upload", str(path))
    t.wait_updates(1)
    prepared = prepare_image(ck.load_image(str(path)), INPUT_SHAPE)
    np.testing.assert_allclose(
        t.shown_probabilities(),
        predict_proba(varied_model(), prepared[None])[0],
        rtol=1e-5,
        atol=1e-7,
    )
    assert "photo.png" in page.locator(".source").inner_text()


def test_bad_upload_shows_a_notice(browser, colour, tab, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    t = tab(colour)
    page = t.open()
    page.set_input_files("#upload", str(path))
    notice = page.wait_for_selector(".notice")
    assert "upload" in notice.inner_text() or "image" in notice.inner_text()


def test_drawing_on_the_pad_predicts_what_was_drawn(browser, digits, tab, tmp_path):
    """Draw a stroke: the prediction shown is predict's for the pad's picture."""
    model = ck.load(DIGITS_MODEL)
    t = tab(digits)
    page = t.open()
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.15 * box["height"])
    page.mouse.down()
    for step in range(12):
        page.mouse.move(
            box["x"] + 0.5 * box["width"], box["y"] + (0.15 + 0.06 * step) * box["height"]
        )
        time.sleep(0.02)
    page.mouse.up()
    import base64

    from cnnkit.explore.preparation import prepare_input

    metadata = ck.serialization.read_metadata(DIGITS_MODEL)

    def expected_for_the_pad():
        """predict's probabilities for the picture on the pad now."""
        path = tmp_path / "pad.png"
        url = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
        path.write_bytes(base64.b64decode(url.partition(",")[2]))
        prepared = prepare_input(ck.load_image(str(path)), metadata, (1, 8, 8))
        return predict_proba(model, prepared[None])[0]

    # The pad sends pictures while the pen moves; the last answer must match the drawing.
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        expected = expected_for_the_pad()
        if t.posts and np.allclose(t.shown_probabilities(), expected, rtol=1e-5, atol=1e-7):
            break
        if time.monotonic() > deadline:
            np.testing.assert_allclose(t.shown_probabilities(), expected, rtol=1e-5, atol=1e-7)
        time.sleep(0.1)
    assert "drawing" in page.locator(".source").inner_text()
    assert int(np.argmax(expected)) == 1  # a vertical stroke is a one


def overlay_pixels(page):
    return page.evaluate("""() => {
        const c = document.querySelectorAll('.input-view canvas')[1];
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }""")


@pytest.mark.parametrize("kind", ["saliency", "gradcam"])
def test_overlays_are_drawn(browser, colour, tab, kind):
    t = tab(colour)
    page = t.open()
    assert overlay_pixels(page) == 0
    with page.expect_response(lambda r: "/api/overlay" in r.url):
        page.select_option("#overlay-kind", kind)
    wait_until(page, "document.querySelectorAll('.input-view canvas')[1].width > 0")
    page.wait_for_timeout(200)
    assert overlay_pixels(page) > 0


def test_editing_a_kernel_value_changes_the_prediction_until_reset(browser, colour, tab):
    """Edit one weight on the page: the probabilities are the edited model's; reset restores."""
    t = tab(colour)
    page = t.open()
    page.click('.map[data-layer="0"][data-channel="1"]')
    page.wait_for_selector("#detail-map")
    click_cell(page, 5, 5, 12, 12)
    page.wait_for_selector("#explanation .channel-row")
    channel = int(page.locator(".channel-row").first.get_attribute("data-channel"))
    field = page.locator(".channel-row").first.locator("input").nth(4)  # the kernel's centre
    field.fill("3.5")
    before = t.updates()
    field.press("Enter")
    t.wait_updates(before + 1)
    x = np.array(
        page.evaluate(f"""fetch('/api/input', {{headers: {{'X-Cnnkit-Token': '{t.explorer.url.split("token=")[1]}'}}}})
                                  .then(r => r.json()).then(j => j.values)"""),
        np.float32,
    )
    edited = varied_model()
    edited[0].weight.data[1, channel, 1, 1] = 3.5
    np.testing.assert_allclose(
        t.shown_probabilities(), predict_proba(edited, x[None])[0], rtol=1e-5, atol=1e-7
    )
    assert page.locator("#reset-edits").is_visible()
    page.click("#reset-edits")
    t.wait_updates(before + 2)
    np.testing.assert_allclose(
        t.shown_probabilities(), predict_proba(varied_model(), x[None])[0], rtol=1e-5, atol=1e-7
    )


def test_wide_layers_are_paged(browser, tab):
    """A layer with 200 channels shows 64 maps first, then more on request."""
    model = ck.nn.Sequential(
        ck.nn.Conv2d(3, 200, 3, padding=1, rng=0),
        ck.nn.ReLU(),
        ck.nn.GlobalAvgPool2d(),
        ck.nn.Flatten(),
        ck.nn.Linear(200, 4, rng=0),
    )
    with ck.explore(model, open_browser=False, input_shape=(3, 32, 32)) as running:
        t = tab(running)
        page = t.open()
        tiles = '.layer[data-layer="0"] .map'
        wait_until(page, f"document.querySelectorAll('{tiles}').length === 64")
        page.click('.layer[data-layer="0"] .more')
        wait_until(page, f"document.querySelectorAll('{tiles}').length === 128")


def test_saved_page_shows_the_maps_offline(browser, digits, tab, tmp_path):
    """The --html page opens from a file with nothing else and draws every layer."""
    from cnnkit.cli import main

    path = tmp_path / "digits.html"
    assert main(["explore", "--html", str(path)]) == 0
    t = tab(digits)
    page = t.open(path.as_uri())
    for index in range(len(ck.load(DIGITS_MODEL))):
        page.locator(f'.layer[data-layer="{index}"]').scroll_into_view_if_needed()
        page.wait_for_selector(f'.layer[data-layer="{index}"] .map')
    assert t.requests == [path.as_uri()]


def test_gradcam_overlay_on_a_sample_digit(browser, digits, tab):
    """A bundled digit, then Grad-CAM of the predicted class over it."""
    t = tab(digits)
    page = t.open()
    page.click('button[data-sample="digit:3"]')
    t.wait_updates(1)
    with page.expect_response(lambda r: "/api/overlay" in r.url):
        page.select_option("#overlay-kind", "gradcam")
    page.wait_for_timeout(200)
    assert overlay_pixels(page) > 0
    assert page.locator("#probabilities .best .label").inner_text() == "3"


def test_branch_models_show_their_blocks(browser, tab):
    """A residual block and a concatenation: their maps, and the sum shown with its numbers."""
    model = branchy()
    with ck.explore(model, open_browser=False, input_shape=(1, 6, 6)) as running:
        t = tab(running)
        page = t.open()
        assert page.eval_on_selector_all(".layer", "ls => ls.map(l => l.dataset.layer)") == [
            "0",
            "1.body.0",
            "1.body.1",
            "1",
            "2.0",
            "2.1.0",
            "2.1.1",
            "2",
            "3",
            "4",
            "5",
        ]
        page.locator('.layer[data-layer="1"]').scroll_into_view_if_needed()
        page.click('.map[data-layer="1"][data-channel="2"]')
        page.wait_for_selector("#detail-map")
        click_cell(page, 3, 3, 6, 6)
        page.wait_for_selector("#explanation .formula")
        x = running.session.x[None]
        expected = model[1](model[0](x))[0, 2, 3, 3]
        assert "body(x) + x" in page.locator("#explanation .formula").inner_text()
        total = page.locator("#explanation .formula .total").get_attribute("data-value")
        assert float(total) == pytest.approx(float(expected), rel=1e-5)

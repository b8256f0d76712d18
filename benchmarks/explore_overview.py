"""How long the explorer's page takes to show its overview, measured in headless Chromium.

Two models: the bundled digits model (8x8 input) and a 224x224 RGB model whose first
convolution has 64 channels. For each: the time from opening the address until the
first layers' maps are drawn (the page's ``ready`` mark), and until every layer's maps
are drawn (the page scrolled through, as a reader would).

    python benchmarks/explore_overview.py
"""

from __future__ import annotations

import time

import cnnkit as ck
from cnnkit import nn

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPEATS = 3


def large_model():
    """A 224x224 RGB classifier: 64-channel 7x7 stem, then 128 and 256 channels."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False, rng=0),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(64, 128, 3, padding=1, bias=False, rng=1),
        nn.BatchNorm2d(128),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(128, 256, 3, padding=1, rng=2),
        nn.ReLU(),
        nn.GlobalAvgPool2d(),
        nn.Flatten(),
        nn.Linear(256, 10, rng=3),
    ).eval()


#: Whether a layer shows all the maps it shows before "show more" (one for a vector).
DRAWN = """name => {
    const block = document.querySelector(`.layer[data-layer="${name}"]`);
    const dims = block.querySelector('.layer-shape').textContent.match(/\\d+/g).map(Number);
    const expected = dims.length === 3 ? Math.min(64, dims[0]) : 1;
    return block.querySelectorAll('.map').length >= expected;
}"""


def measure(browser, explorer) -> tuple[float, float]:
    """(seconds to the ready mark, seconds until every layer's maps are drawn)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    start = time.perf_counter()
    page.goto(explorer.url)
    page.wait_for_selector("body[data-ready=true]", timeout=120_000)
    ready = page.evaluate("window.cnnkitReadyMs") / 1000
    for block in page.locator(".layer").all():
        block.scroll_into_view_if_needed()
        name = block.get_attribute("data-layer")
        while not page.evaluate(DRAWN, name):
            time.sleep(0.01)
    everything = time.perf_counter() - start
    page.close()
    return ready, everything


def main() -> None:
    from playwright.sync_api import sync_playwright

    cases = [
        ("digits model (1x8x8, 11 layers)", lambda: ck.explore(open_browser=False)),
        (
            "224x224 model (64-channel first layer, 13 layers)",
            lambda: ck.explore(
                large_model(), "chelsea", open_browser=False, input_shape=(3, 224, 224)
            ),
        ),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for label, start in cases:
            with start() as explorer:
                times = [measure(browser, explorer) for _ in range(REPEATS)]
            ready = min(t[0] for t in times)
            everything = min(t[1] for t in times)
            print(
                f"{label}: first maps {ready:.2f} s, every layer {everything:.2f} s "
                f"(best of {REPEATS})"
            )
        browser.close()


if __name__ == "__main__":
    main()

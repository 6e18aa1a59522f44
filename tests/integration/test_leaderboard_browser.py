"""The HTML leaderboard in a real browser: headless Chromium renders it, the test reads the pixels.

Chromium renders the page twice at the same window size: once to a screenshot, once with a
probe script appended at the end of the body (after every element, so the layout above it is
the same) that writes where each element landed. The checks are about what a reader sees:
the orange `degraded` badge and bar on the 2-bit row only, the Δ cells shaded blue (down) and
deeper for the larger change, every row drawn, the embedded figures decoded and on screen.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from fixtures.capability_results import write_study
from lm_eval_bias.cli import main

CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium); .ci/run installs it"
)

WINDOW = (2400, 2000)
ORANGE = (255, 140, 0)
BITS8, BITS2 = "rtn(bits=8,group_size=128)", "rtn(bits=2,group_size=128)"
DELTA = "crows_pairs_bias/stereotype_score Δ"
PROBE = """<pre id="probe"></pre><script>
const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
const rows = [...document.querySelectorAll("tbody tr")].map(tr => ({
  compression: tr.children[2].textContent, row: box(tr),
  capability: box(tr.querySelector('td[data-column="capability"]')),
  badge: tr.querySelector("span.badge") ? box(tr.querySelector("span.badge")) : null,
  delta: box(tr.querySelector('td[data-column="%s"]')) }));
const figures = [...document.querySelectorAll("figure img")].map(img => ({box: box(img), width: img.naturalWidth}));
document.getElementById("probe").textContent = JSON.stringify({rows, figures});
</script>""".replace("%s", DELTA)


def chromium(*args: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """(screenshot pixels, where each element is) of the leaderboard page of the hand-made study."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("browser")
    study = write_study(folder / "study")
    assert main(["plot", str(study), "--formats", "png"]) == 0
    page = folder / "board.html"
    assert main(["leaderboard", str(study), "-o", str(page)]) == 0
    probe = folder / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    shot = folder / "shot.png"
    chromium(f"--screenshot={shot}", page.as_uri())
    dom = chromium("--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe script did not run"
    layout = json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    image = Image.open(shot).convert("RGB")
    assert image.size == WINDOW
    return image, layout


def pixels(image, box, inset: int = 0) -> list[tuple[int, int, int]]:
    left, top, right, bottom = (round(v) for v in box)
    region = image.crop((left + inset, top + inset, right - inset, bottom - inset))
    return [tuple(color) for color in np.asarray(region).reshape(-1, 3).tolist()]


def near(color, target, tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color, target))


def dominant(colors) -> tuple[int, int, int]:
    return max(set(colors), key=colors.count)


def test_every_row_is_drawn(rendered):
    image, layout = rendered
    rows = {row["compression"]: row for row in layout["rows"]}
    assert set(rows) == {"none", BITS8, BITS2}
    for row in rows.values():
        left, top, right, bottom = row["row"]
        assert 0 <= top < bottom <= WINDOW[1] and bottom - top > 10
        assert any(sum(color) < 300 for color in pixels(image, row["row"])), "no text drawn in the row"


def test_only_the_2bit_row_carries_the_degraded_badge_and_bar(rendered):
    image, layout = rendered
    rows = {row["compression"]: row for row in layout["rows"]}
    badge = rows[BITS2]["badge"]
    assert badge is not None and rows["none"]["badge"] is None and rows[BITS8]["badge"] is None
    assert near(dominant(pixels(image, badge, inset=2)), ORANGE)  # an orange badge behind the word
    left, top, _, bottom = rows[BITS2]["row"]
    assert near(image.getpixel((round(left) + 3, round((top + bottom) / 2))), ORANGE)  # the bar at the row's start
    for compression in ("none", BITS8):
        assert not any(near(c, ORANGE, 40) for c in pixels(image, rows[compression]["row"], inset=2)), compression
    assert any(near(c, ORANGE) for c in pixels(image, rows[BITS2]["delta"])), "the flagged bias Δ has no dashed frame"


def test_delta_cells_are_shaded_by_sign_and_size(rendered):
    image, layout = rendered
    rows = {row["compression"]: row for row in layout["rows"]}
    base = dominant(pixels(image, rows["none"]["delta"], inset=4))
    small = dominant(pixels(image, rows[BITS8]["delta"], inset=4))  # −6.7 points
    large = dominant(pixels(image, rows[BITS2]["delta"], inset=4))  # −40.0 points
    assert base == (255, 255, 255)
    for shaded in (small, large):
        assert shaded[2] > shaded[0] + 20, shaded  # blue: the score went down
    assert sum(large) < sum(small) - 60  # the larger change is the deeper shade


def test_figures_are_embedded_and_on_screen(rendered):
    image, layout = rendered
    assert len(layout["figures"]) == 4  # delta_bias_vs_bits, lms_vs_ss, by_compression, delta_agreement
    assert all(figure["width"] > 0 for figure in layout["figures"])  # the images decoded
    first = layout["figures"][0]["box"]
    assert first[3] <= WINDOW[1], "the first figure is below the screenshot"
    colors = pixels(image, first, inset=2)
    assert len(set(colors)) > 20 and sum(c != (255, 255, 255) for c in colors) > len(colors) // 50

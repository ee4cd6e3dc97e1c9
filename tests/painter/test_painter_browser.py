"""The painter page in headless Chromium (the system's, driven by Playwright).

Each test leaves a screenshot of its final state in its tmp dir
(``final.png``). The page is driven as a user would: mouse strokes on the
canvas, palette clicks, the file input; the label map it holds is read back
through its own "Download label map" button.
"""

import io

import numpy as np
import pytest
from painter_helpers import CLASS_COLOURS, decode_png, expected_image, png16, png_bytes
from PIL import Image
from scipy import ndimage

from spade_tf.data import synthetic

SKY, GRASS, ROCK, TREE = synthetic.SKY, synthetic.GRASS, synthetic.ROCK, synthetic.TREE
SIZE = 64


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI and containers run as root, where Chromium's sandbox cannot start.
        browser = playwright.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, painter, tmp_path):
    """The painter page, loaded and showing its first image; collects console errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 760}, accept_downloads=True)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(painter.url)
    wait_settled(page)
    yield page
    page.screenshot(path=str(tmp_path / "final.png"))  # the test's final state, kept as an artifact
    context.close()


def wait_settled(page):
    """Until the image of the current label map is shown (or its request failed)."""
    page.wait_for_selector("body[data-settled='true']", state="attached", timeout=30_000)


def output(page) -> np.ndarray:
    src = page.get_attribute("#output-image", "src")
    assert src.startswith("data:image/png;base64,")
    import base64

    return decode_png(base64.b64decode(src.split(",", 1)[1]))


def label_map(page, tmp_path) -> np.ndarray:
    """The page's label map, through its download button (the JS PNG encoder)."""
    with page.expect_download() as info:
        page.click("#download-label")
    path = tmp_path / "label.png"
    info.value.save_as(path)
    image = Image.open(path)
    assert image.mode == "L"  # 8-bit grayscale of ids
    return np.asarray(image)


def at(page, x, y):
    """Screen position of model pixel (x, y)'s centre."""
    box = page.locator("#label-canvas").bounding_box()
    return box["x"] + (x + 0.5) * box["width"] / SIZE, box["y"] + (y + 0.5) * box["height"] / SIZE


def stroke(page, points):
    page.mouse.move(*at(page, *points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*at(page, *point), steps=4)
    page.mouse.up()
    wait_settled(page)


def set_brush_size(page, size):
    page.fill("#brush-size", str(size))  # a range input: fill sets the value and fires input


def test_page_loads_without_console_errors(page):
    assert page.errors == []
    classes = page.locator("[data-class-id]")
    assert classes.count() == len(synthetic.CLASS_NAMES)
    assert [classes.nth(i).get_attribute("data-class-id") for i in range(classes.count())] == [
        str(i) for i in range(len(synthetic.CLASS_NAMES))]
    assert "grass" in page.inner_text("[data-class-id='5']")
    canvas = page.locator("#label-canvas")
    assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("64", "64")
    box = canvas.bounding_box()
    assert abs(box["width"] - box["height"]) < 1  # the model's aspect ratio (square)
    assert page.get_attribute("#status", "data-kind") == "info"
    # The start-up map is synthetic scene 0, and the image shown is the model's for it.
    np.testing.assert_array_equal(output(page), expected_image(synthetic.scene_labels(0, SIZE, SIZE)))
    assert page.is_hidden("#new-style")  # not a VAE model
    page.fill("#class-search", "gra")
    assert page.is_visible("[data-class-id='5']") and page.is_hidden("[data-class-id='0']")


def test_painting_sky_then_grass_and_undo(page, tmp_path):
    start = synthetic.scene_labels(0, SIZE, SIZE)
    band = (slice(52, 60), slice(10, 54))  # rows 52..59 (ground in scene 0), well inside the brush's reach
    assert not (start[band] == SKY).any()
    first = output(page)
    set_brush_size(page, 11)
    page.click(f"[data-class-id='{SKY}']")
    stroke(page, [(8, 56), (32, 56), (56, 56)])
    sky = output(page)
    assert not np.array_equal(sky, first)
    mean = sky[band].reshape(-1, 3).mean(0)
    assert np.abs(mean - CLASS_COLOURS[SKY]).max() < 3, mean  # the painted area looks like sky
    assert mean[2] > mean[0] + 60 and mean[2] > mean[1] + 30  # blue-ish

    page.click(f"[data-class-id='{GRASS}']")
    stroke(page, [(8, 56), (56, 56)])
    grass = output(page)
    assert not np.array_equal(grass, sky)
    mean = grass[band].reshape(-1, 3).mean(0)
    assert np.abs(mean - CLASS_COLOURS[GRASS]).max() < 3, mean
    assert mean[1] > mean[0] + 40 and mean[1] > mean[2] + 40  # green-ish

    # Exact ids: the label map the page sends is the start-up scene, with the stroke painted, no blending.
    ids = label_map(page, tmp_path)
    assert (ids[band] == GRASS).all()
    np.testing.assert_array_equal(ids[:45], start[:45])  # far from the stroke: untouched
    assert set(np.unique(ids)) <= set(np.unique(start)) | {GRASS}
    np.testing.assert_array_equal(grass, expected_image(ids))  # the image shown is the model's for that map

    page.click("#undo")
    wait_settled(page)
    np.testing.assert_array_equal(output(page), sky)  # undo restores the previous output
    page.click("#undo")
    wait_settled(page)
    np.testing.assert_array_equal(output(page), first)
    page.keyboard.press("Control+Shift+Z")  # redo
    wait_settled(page)
    np.testing.assert_array_equal(output(page), sky)
    assert page.errors == []


def test_flood_fill_fills_the_connected_region(page, tmp_path):
    start = synthetic.scene_labels(0, SIZE, SIZE)
    page.check("#tool-fill")
    page.click(f"[data-class-id='{ROCK}']")
    page.mouse.click(*at(page, 5, 2))
    wait_settled(page)
    regions, _ = ndimage.label(start == start[2, 5])  # 4-connected, as the page fills
    expected = np.where(regions == regions[2, 5], ROCK, start)
    np.testing.assert_array_equal(label_map(page, tmp_path), expected)
    np.testing.assert_array_equal(output(page), expected_image(expected))


def test_uploads_good_and_bad(page, tmp_path):
    bad = tmp_path / "colours.png"
    bad.write_bytes(png_bytes(np.zeros((SIZE, SIZE, 3), np.uint8)))
    before = output(page)
    page.set_input_files("#upload-label", str(bad))
    page.wait_for_selector("#status[data-kind='error']", timeout=10_000)
    assert "colours.png" in page.inner_text("#status") and "mode RGB" in page.inner_text("#status")
    np.testing.assert_array_equal(output(page), before)  # nothing changed

    good = tmp_path / "scene3.png"
    scene = synthetic.scene_labels(3, SIZE, SIZE)
    good.write_bytes(png16(scene))  # 16-bit ids
    page.set_input_files("#upload-label", str(good))
    page.wait_for_selector("#status[data-kind='info']", timeout=10_000)
    wait_settled(page)
    np.testing.assert_array_equal(output(page), expected_image(scene))
    np.testing.assert_array_equal(label_map(page, tmp_path), scene)


def test_png_encoder_writes_16_bit_ids(page):
    """Ids over 255 make a 16-bit PNG (the 8-bit path is the download above); big-endian, exact."""
    ids = (np.arange(40 * 30) * 37 % 65536).astype(np.uint16).reshape(30, 40)
    data = page.evaluate("""async (ids) => {
        const { encodeGrayPNG } = await import("/static/png.js");
        return Array.from(encodeGrayPNG(Uint16Array.from(ids), 40, 30));
    }""", ids.ravel().tolist())
    image = Image.open(io.BytesIO(bytes(data)))
    assert image.mode in ("I;16", "I;16B", "I")
    np.testing.assert_array_equal(np.asarray(image).astype(np.int64), ids.astype(np.int64))


def test_new_style_button_of_a_vae_model(browser, vae_painter, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(vae_painter.url)
        wait_settled(page)
        first = output(page)
        assert page.is_visible("#new-style")
        page.click("#new-style")
        wait_settled(page)
        assert np.abs(output(page).astype(int) - first.astype(int)).mean() > 2  # another style sample
        assert errors == []
    finally:
        page.screenshot(path=str(tmp_path / "final.png"))
        context.close()


def test_sean_style_panel_restyles_regions_from_a_photo(browser, sean_painter, tmp_path):
    from painter_helpers import photo_codes, sean_expected_image, style_photo

    server, mean = sean_painter
    photo, labels = style_photo()
    (tmp_path / "beach.png").write_bytes(png_bytes(photo))
    (tmp_path / "beach_label.png").write_bytes(png_bytes(labels))
    codes, present = photo_codes(photo, labels, server.model.config)
    scene = synthetic.scene_labels(0, SIZE, SIZE)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(server.url)
        wait_settled(page)
        assert page.is_visible("#style-panel")
        assert np.abs(output(page).astype(int) - sean_expected_image(scene, mean.codes)).max() <= 1  # mean styles
        regions = page.locator("#style-regions select")
        assert sorted(int(regions.nth(i).get_attribute("data-class-id")) for i in range(regions.count())) == sorted(
            np.unique(scene).tolist())

        page.set_input_files("#style-photo", str(tmp_path / "beach.png"))
        page.set_input_files("#style-label", str(tmp_path / "beach_label.png"))
        page.click("#style-add")
        page.wait_for_selector("#status:has-text('Styles of beach.png')", timeout=10_000)
        wait_settled(page)
        styled = np.where(present[:, None], codes, mean.codes)  # trees and rocks: not in the photo
        assert not present[[TREE, ROCK]].all() and np.isin([TREE, ROCK], scene).any()
        assert np.abs(output(page).astype(int) - sean_expected_image(scene, styled)).max() <= 1
        assert page.input_value("#style-all") == "0"

        # One region back to its mean style.
        page.select_option(f"#style-regions select[data-class-id='{SKY}']", "")
        wait_settled(page)
        styled[SKY] = mean.codes[SKY]
        assert np.abs(output(page).astype(int) - sean_expected_image(scene, styled)).max() <= 1
        assert errors == []
    finally:
        page.screenshot(path=str(tmp_path / "final.png"))
        context.close()

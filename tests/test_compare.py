"""`srcnn compare`: the before/after page, its contents, and the page itself in a real headless Chromium."""

import base64
import io
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import make_scene
from srcnn.cli import main

BROWSER, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    make_scene(60, 40).save(folder / "img.png")
    assert (
        main(
            [
                "compare",
                str(folder / "img.png"),
                "--scale",
                "3",
                "-o",
                str(folder / "page.html"),
                "--precision",
                "onnxruntime-fp32",
            ]
        )
        == 0
    )
    return folder / "page.html"


def embedded(html):
    """{img id: decoded PIL image} of the page's data-URI images."""
    found = re.findall(r'<img id="(\w+)"[^>]*src="data:image/png;base64,([^"]+)"', html)
    return {name: Image.open(io.BytesIO(base64.b64decode(data))) for name, data in found}


def test_the_page_embeds_all_three_images_at_the_output_size_and_fetches_nothing(page):
    html = page.read_text()
    images = embedded(html)
    assert sorted(images) == ["bicubic", "nearest", "srcnn"]
    assert {image.size for image in images.values()} == {(180, 120)}
    assert not np.array_equal(np.asarray(images["srcnn"]), np.asarray(images["bicubic"]))
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", html.replace("data:image/png;base64,", ""))  # no URL at all
    assert "<script src" not in html and "<link" not in html


def test_a_missing_image_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["compare", str(tmp_path / "nosuch.png"), "-o", str(tmp_path / "p.html")])
    assert stop.value.code == 2 and "no such file" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(
    not (BROWSER and DRIVER), reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"
)
def test_the_page_loads_in_chromium_and_its_slider_and_zoom_work(page, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.keys import Keys

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=900,600", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(page.as_uri())
        sizes = driver.execute_script(
            "return ['bicubic', 'nearest', 'srcnn'].map(id => {const i = document.getElementById(id); "
            "return [i.complete, i.naturalWidth, i.naturalHeight];});"
        )
        assert sizes == [[True, 180, 120]] * 3
        clip = "return document.getElementById('srcnn').style.clipPath;"
        assert driver.execute_script(clip) == "inset(0px 0px 0px 50%)"
        slider = driver.find_element("id", "slider")
        slider.send_keys(Keys.HOME)
        assert driver.execute_script(clip) == "inset(0px 0px 0px 0%)"  # all SRCNN
        for _ in range(3):
            slider.send_keys(Keys.PAGE_UP)
        assert driver.execute_script(clip) not in ("inset(0px 0px 0px 0%)", "inset(0px 0px 0px 50%)")
        view = driver.find_element("id", "view")
        before = driver.execute_script("return document.getElementById('stage').style.transform;")
        ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(view), 0, -400).perform()
        after = driver.execute_script("return document.getElementById('stage').style.transform;")
        assert before != after and "scale(" in after
        boxes = driver.execute_script(  # the two images sit in one transformed stage: zoomed and panned alike
            "return ['bicubic', 'srcnn'].map(id => JSON.stringify(document.getElementById(id)"
            ".getBoundingClientRect()));"
        )
        assert boxes[0] == boxes[1]
        driver.find_element("id", "left").send_keys("input")
        assert driver.execute_script("return document.getElementById('nearest').hidden;") is False
        driver.save_screenshot(str(tmp_path / "compare.png"))
        with Image.open(tmp_path / "compare.png") as shot:
            assert shot.size[0] >= 800 and np.asarray(shot.convert("L")).std() > 5  # something was drawn
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()

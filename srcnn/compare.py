"""A before/after page: one self-contained HTML file comparing bicubic (or the input, enlarged with nearest
neighbour) and SRCNN on the same image, with a slider between them and zoom and pan kept in step.

The images are embedded as PNG data URIs and the page's script and style are inline: it fetches nothing, so it
opens from a file, a mail attachment or a folder without a network.
"""

import base64
import html
import io

from PIL import Image

from srcnn.bands import upscale
from srcnn.scaling import output_size

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>SRCNN: {title}</title>
<style>
  body {{ margin: 0; font: 14px system-ui, sans-serif; background: #202124; color: #e8eaed; }}
  header {{ padding: 8px 12px; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }}
  #view {{ position: relative; overflow: hidden; height: calc(100vh - 48px); cursor: grab; touch-action: none; }}
  #stage {{ position: absolute; left: 0; top: 0; transform-origin: 0 0; }}
  #stage img {{ position: absolute; left: 0; top: 0; display: block; }}
  #stage.pixels img {{ image-rendering: pixelated; }}
  #divider {{ position: absolute; top: 0; bottom: 0; width: 2px; background: #fbbc04; pointer-events: none; }}
  .tag {{ position: absolute; top: 8px; padding: 2px 6px; background: #000a; border-radius: 3px; }}
  #slider {{ width: 240px; }}
</style>
</head>
<body>
<header>
  <strong>{title}</strong>
  <label>left: <select id="left"><option value="bicubic">bicubic</option>
    <option value="nearest">input (nearest neighbour)</option></select></label>
  <label>split <input id="slider" type="range" min="0" max="100" step="0.1" value="50"></label>
  <span>wheel: zoom · drag: pan · double-click: fit</span>
  <span id="zoom"></span>
</header>
<div id="view">
  <div id="stage" style="width: {width}px; height: {height}px">
    <img id="bicubic" alt="bicubic" width="{width}" height="{height}" src="{bicubic}">
    <img id="nearest" alt="input, nearest neighbour" width="{width}" height="{height}" src="{nearest}" hidden>
    <img id="srcnn" alt="SRCNN" width="{width}" height="{height}" src="{srcnn}">
  </div>
  <div id="divider"></div>
  <span class="tag" id="left-tag" style="left: 8px">bicubic</span>
  <span class="tag" style="right: 8px">SRCNN</span>
</div>
<script>
"use strict";
const view = document.getElementById("view"), stage = document.getElementById("stage");
const slider = document.getElementById("slider"), divider = document.getElementById("divider");
const srcnn = document.getElementById("srcnn"), left = document.getElementById("left");
const size = {{width: {width}, height: {height}}};
let zoom = 1, x = 0, y = 0, drag = null;

function draw() {{
  stage.style.transform = `translate(${{x}}px, ${{y}}px) scale(${{zoom}})`;
  stage.classList.toggle("pixels", zoom >= 2);
  // The split is a fraction of the image, so it stays on the same pixels while zooming and panning.
  const split = Number(slider.value);
  srcnn.style.clipPath = `inset(0 0 0 ${{split}}%)`;
  divider.style.left = `${{x + zoom * size.width * split / 100 - 1}}px`;
  document.getElementById("zoom").textContent = `${{Math.round(zoom * 100)}}%`;
}}
function fit() {{
  zoom = Math.min(view.clientWidth / size.width, view.clientHeight / size.height, 1);
  x = (view.clientWidth - zoom * size.width) / 2;
  y = (view.clientHeight - zoom * size.height) / 2;
  draw();
}}
view.addEventListener("wheel", (event) => {{
  event.preventDefault();
  const box = view.getBoundingClientRect(), px = event.clientX - box.left, py = event.clientY - box.top;
  const next = Math.min(32, Math.max(0.05, zoom * Math.exp(-event.deltaY / 500)));
  x = px - (px - x) * next / zoom;  // the pixel under the pointer stays under it
  y = py - (py - y) * next / zoom;
  zoom = next;
  draw();
}}, {{passive: false}});
view.addEventListener("pointerdown", (event) => {{ drag = {{px: event.clientX - x, py: event.clientY - y}}; }});
window.addEventListener("pointermove", (event) => {{
  if (drag) {{ x = event.clientX - drag.px; y = event.clientY - drag.py; draw(); }}
}});
window.addEventListener("pointerup", () => {{ drag = null; }});
view.addEventListener("dblclick", fit);
slider.addEventListener("input", draw);
left.addEventListener("change", () => {{
  document.getElementById("bicubic").hidden = left.value !== "bicubic";
  document.getElementById("nearest").hidden = left.value !== "nearest";
  document.getElementById("left-tag").textContent = left.options[left.selectedIndex].text;
}});
window.addEventListener("resize", fit);
fit();
</script>
</body>
</html>
"""


def data_uri(image):
    """A PIL image as a PNG data URI."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def compare_page(image, upscaler, scale=None, size=None, title="image"):  # one of scale and size
    """The page's HTML (str) for a PIL `image` in one of the upscaler's modes, at `scale` or `size` (as
    srcnn.scaling.output_size takes them): SRCNN by `upscaler` (srcnn.api.Upscaler), bicubic by the same colour
    path without the network, and the input enlarged with nearest neighbour."""
    width, height = output_size(image.size, scale, size)
    images = {
        "srcnn": upscaler.upscale(image, scale, size),
        "bicubic": upscale(image, None, scale, size),
        "nearest": image.resize((width, height), Image.Resampling.NEAREST),
    }
    return PAGE.format(
        title=html.escape(title),
        width=width,
        height=height,
        **{name: data_uri(picture) for name, picture in images.items()},
    )

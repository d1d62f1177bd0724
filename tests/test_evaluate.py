"""training/evaluate.py: the paper's protocol for bicubic and SRCNN, any factor through the trained passes, and
its usage errors."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from srcnn import save_state_dict
from training.evaluate import main


def reference_bicubic_psnr(path, scale):
    """The authors' protocol written out longhand, independent of the project's helpers."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    height, width = (rgb.shape[0] // scale) * scale, (rgb.shape[1] // scale) * scale
    rgb = rgb[:height, :width]
    y = np.floor(16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255 + 0.5)
    low = Image.fromarray(y.astype(np.float32)).resize((width // scale, height // scale), Image.Resampling.BICUBIC)
    up = np.asarray(low.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float64)
    up = np.floor(np.clip(up, 0, 255) + 0.5)
    mse = np.mean((y[scale:-scale, scale:-scale] - up[scale:-scale, scale:-scale]) ** 2)
    return 10 * math.log10(255**2 / mse)


def test_bicubic_follows_the_protocol_and_writes_json(image_folder, tmp_path, capsys):
    data = image_folder(test=3)
    out = tmp_path / "records.json"
    assert (
        main(
            ["--data-dir", str(data), "--sets", "test", "--scales", "2", "3", "--method", "bicubic", "--json", str(out)]
        )
        == 0
    )
    records = json.loads(out.read_text())
    assert [(r["set"], r["scale"], r["method"], r["images"]) for r in records] == [
        ("test", 2, "bicubic", 3),
        ("test", 3, "bicubic", 3),
    ]
    assert set(records[0]) == {"set", "scale", "method", "psnr_y", "ssim_y", "psnr_rgb", "images", "engine"}
    for record in records:
        expected = np.mean([reference_bicubic_psnr(p, record["scale"]) for p in sorted((data / "test").glob("*"))])
        assert record["psnr_y"] == pytest.approx(expected, abs=1e-9)
        assert 0 < record["ssim_y"] < 1
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| set | scale | method | PSNR-Y")
    assert table[2].startswith(f"| test | ×2 | bicubic | {records[0]['psnr_y']:.2f} | — |")


def test_srcnn_weights_from_a_folder_and_the_paper_column(image_folder, tmp_path, capsys, identity_model):
    data = image_folder(test=2)
    (data / "test").rename(data / "Set5")
    weights = tmp_path / "weights"
    save_state_dict(identity_model, weights / "srcnn_x4.pth")
    out = tmp_path / "records.json"
    main(["--data-dir", str(data), "--sets", "Set5", "--scales", "4", "--weights", str(weights), "--json", str(out)])
    bicubic, srcnn = json.loads(out.read_text())
    # the identity network returns its bicubic input, so every score equals bicubic's
    assert srcnn["method"] == "srcnn"
    for key in ("psnr_y", "ssim_y", "psnr_rgb"):
        assert srcnn[key] == pytest.approx(bicubic[key], abs=1e-9)
    lines = capsys.readouterr().out.splitlines()
    assert "| Set5 | ×4 | bicubic |" in lines[2] and "| 28.42 |" in lines[2] and "| 0.8104 |" in lines[2]
    assert "| Set5 | ×4 | srcnn |" in lines[3] and "| 30.49 |" in lines[3]


@pytest.mark.parametrize(("scale", "multiple", "low_fraction"), [(2.5, 5, (2, 5)), (1.5, 3, (2, 3)), (6, 6, (1, 6))])
def test_fractional_and_large_factors_crop_so_the_low_resolution_size_is_whole(
    image_folder, tmp_path, scale, multiple, low_fraction
):
    data = image_folder(test=2, size=(97, 83))
    out = tmp_path / "records.json"
    main(["--data-dir", str(data), "--sets", "test", "--scales", str(scale), "--method", "bicubic", "--json", str(out)])
    numerator, denominator = low_fraction
    border = math.ceil(scale)
    expected = []
    for path in sorted((data / "test").glob("*")):  # longhand, as reference_bicubic_psnr
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
        height, width = rgb.shape[0] // multiple * multiple, rgb.shape[1] // multiple * multiple
        rgb = rgb[:height, :width]
        y = np.floor(16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255 + 0.5)
        low_size = (width * numerator // denominator, height * numerator // denominator)
        low = Image.fromarray(y.astype(np.float32)).resize(low_size, Image.Resampling.BICUBIC)
        up = np.floor(np.clip(np.asarray(low.resize((width, height), Image.Resampling.BICUBIC)), 0, 255) + 0.5)
        mse = np.mean((y[border:-border, border:-border] - up[border:-border, border:-border]) ** 2)
        expected.append(10 * math.log10(255**2 / mse))
    (record,) = json.loads(out.read_text())
    assert record["scale"] == scale
    assert record["psnr_y"] == pytest.approx(np.mean(expected), abs=1e-9)


@pytest.mark.parametrize("scale", ["0.5", "9", "2.37", "x"])
def test_factors_that_cannot_be_evaluated_are_usage_errors(tmp_path, scale, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-dir", str(tmp_path), "--scales", scale, "--method", "bicubic"])
    assert exit_info.value.code == 2
    assert "--scales" in capsys.readouterr().err


def test_other_factors_run_the_passes_of_the_trained_networks(image_folder, tmp_path, identity_model):
    data = image_folder(test=1)
    weights = tmp_path / "weights"
    for scale in (2, 3, 4):
        save_state_dict(identity_model, weights / f"srcnn_x{scale}.pth")
    out = tmp_path / "records.json"
    main(["--data-dir", str(data), "--sets", "test", "--scales", "2.5", "--weights", str(weights), "--json", str(out)])
    bicubic, srcnn = json.loads(out.read_text())
    # identity networks: ×3 up then bicubic down again differs from bicubic straight to the size, only a little
    assert srcnn["psnr_y"] != bicubic["psnr_y"]
    assert srcnn["psnr_y"] == pytest.approx(bicubic["psnr_y"], abs=1.0)


def test_one_weight_file_cannot_serve_several_scales(tmp_path):
    save_state_dict(torch.nn.Linear(1, 1), tmp_path / "w.pth")
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-dir", str(tmp_path), "--scales", "2", "3", "--weights", str(tmp_path / "w.pth")])
    assert exit_info.value.code == 2


def test_missing_set_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no images"):
        main(["--data-dir", str(tmp_path), "--sets", "nothing", "--method", "bicubic"])

"""The `srcnn` command: sizes, names, exit statuses, never overwriting, and the server path."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

import srcnn
from helpers import assert_faithful, make_photo
from srcnn import save_state_dict, upscale
from srcnn.choice import choose
from srcnn.cli import main
from srcnn.client import Refused, remote_upscale
from srcnn.engine import load_engines
from srcnn.weights import SHIPPED

# The command, on ONNX Runtime's fp32 unless a test names another precision (argparse keeps the last): "auto"
# would measure this machine's engines, which the tests marked slow do (test_choice forces its candidates).
UPSCALE = ("upscale", "--precision", "onnxruntime-fp32")


@pytest.fixture
def picture(tmp_path, scene):
    path = tmp_path / "in.png"
    scene(40, 30).save(path)
    return path


def size_of(path):
    with Image.open(path) as image:
        return image.size


@pytest.mark.parametrize(
    ("arguments", "size"),
    [
        (["--scale", "2.5"], (100, 75)),
        (["--size", "64x48"], (64, 48)),
        (["--size", "80x"], (80, 60)),
        (["--size", "x45"], (60, 45)),
        ([], (80, 60)),
    ],
)
def test_output_sizes_of_a_40_by_30_png(picture, arguments, size):
    out = picture.parent / "out.png"
    assert main([*UPSCALE, str(picture), "-o", str(out), *arguments]) == 0
    assert size_of(out) == size


@pytest.mark.parametrize(
    "setting",
    [
        pytest.param("auto", marks=pytest.mark.slow),
        "onnxruntime-fp32",
        "torch-bf16",
        pytest.param("int8", marks=pytest.mark.slow),
    ],
)  # slow: they measure engines
def test_output_is_upscale_of_the_decoded_input(picture, setting):
    out = picture.parent / "out.png"
    assert main([*UPSCALE, str(picture), "-o", str(out), "--scale", "2.5", "--precision", setting]) == 0
    choice = choose(SHIPPED, setting, engine_threads=1)  # as every lane of the command's: the measurement is cached
    engines = load_engines(SHIPPED, name=choice.engine, tile=choice.tile)
    with Image.open(picture) as image:
        expected = upscale(image.convert("RGB"), engines, 2.5)
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(expected))


@pytest.mark.parametrize("name", ["big.png", "big.jpg", "big.webp"])
def test_a_phone_photo_keeps_its_profile_and_metadata_and_stands_upright(tmp_path, name):
    (tmp_path / "photo.jpg").write_bytes(make_photo(40, 30))
    assert (
        main(
            [
                *UPSCALE,
                str(tmp_path / "photo.jpg"),
                "-o",
                str(tmp_path / name),
                "--scale",
                "3",
                "--precision",
                "onnxruntime-fp32",
            ]
        )
        == 0
    )
    assert_faithful((tmp_path / name).read_bytes(), (90, 120))


def test_default_names_beside_the_input(picture):
    assert main([*UPSCALE, str(picture)]) == 0
    assert main([*UPSCALE, str(picture), "--size", "64x"]) == 0
    assert main([*UPSCALE, str(picture), "--scale", "1.5", "--format", "jpeg"]) == 0
    assert sorted(path.name for path in picture.parent.iterdir()) == [
        "in.png",
        "in_64x.png",
        "in_x1.5.jpg",
        "in_x2.png",
    ]
    with Image.open(picture.parent / "in_x1.5.jpg") as image:
        assert (image.format, image.size) == ("JPEG", (60, 45))


def test_format_from_the_output_name(picture):
    out = picture.parent / "big.webp"
    assert main([*UPSCALE, str(picture), "-o", str(out)]) == 0
    with Image.open(out) as image:
        assert image.format == "WEBP"


def test_a_folder_with_a_text_file_writes_the_images_and_names_it(tmp_path, scene, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        scene(20 + index, 16, seed=index).save(folder / f"p{index}.png")
    (folder / "notes.txt").write_text("not a picture")
    assert main([*UPSCALE, str(folder), "-o", str(tmp_path / "out"), "--scale", "3"]) == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["p0_x3.png", "p1_x3.png", "p2_x3.png"]
    assert size_of(tmp_path / "out" / "p2_x3.png") == (66, 48)
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"srcnn: 3 of 3 written; 1 neither images nor videos srcnn reads, left alone: {folder / 'notes.txt'}"
    )


def test_a_file_named_that_is_not_an_image_fails(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a picture")
    assert main([*UPSCALE, str(tmp_path / "notes.txt"), "-o", str(tmp_path / "out.png")]) == 1
    assert f"srcnn: {tmp_path / 'notes.txt'}: not an image or video file" in capsys.readouterr().err


def test_camera_and_phone_folders_upscale_every_picture_under_names_of_their_own(tmp_path, scene, capsys):
    folder = tmp_path / "DCIM"
    folder.mkdir()
    scene(24, 16, seed=1).save(folder / "IMG_0001.JPG", "JPEG")
    (folder / "IMG_0001.CR2").write_bytes(np.random.default_rng(0).bytes(3000))  # a camera's RAW: not read here
    scene(20, 14, seed=2).save(folder / "IMG_0002.HEIC", "HEIF")  # an iPhone's photo (pillow-heif)
    (folder / "IMG_0002.MOV").write_bytes(b"\0\0\0\x18ftypqt  " + bytes(100))  # a Live Photo cut short
    scene(18, 12, seed=3).save(folder / "IMG_0003.avif", "AVIF")
    scene(16, 10, seed=4).save(folder / "photo.png")
    scene(16, 10, seed=5).save(folder / "photo.tga")  # the same name: both get outputs, neither is lost
    out = tmp_path / "big"
    assert main([*UPSCALE, str(folder), "-o", str(out), "--scale", "2"]) == 0
    sizes = {path.name: size_of(path) for path in out.iterdir()}
    assert sizes == {
        "IMG_0001_x2.png": (48, 32),
        "IMG_0002_x2.png": (40, 28),
        "IMG_0003_x2.png": (36, 24),
        "photo-png_x2.png": (32, 20),
        "photo-tga_x2.png": (32, 20),
    }
    summary = capsys.readouterr().err.splitlines()[-1]
    assert summary.startswith("srcnn: 5 of 5 written; 2 neither images nor videos srcnn reads, left alone: ")
    assert str(folder / "IMG_0001.CR2") in summary and str(folder / "IMG_0002.MOV") in summary
    assert main([*UPSCALE, str(folder), "--scale", "2"]) == 0  # beside the inputs, twice: the second run skips
    assert main([*UPSCALE, str(folder), "--scale", "2"]) == 0
    assert capsys.readouterr().err.splitlines()[-1].startswith("srcnn: 0 of 5 written, 5 skipped")
    assert sorted(path.name for path in folder.glob("photo*")) == [
        "photo-png_x2.png",
        "photo-tga_x2.png",
        "photo.png",
        "photo.tga",
    ]


def test_an_input_is_never_overwritten(picture, capsys):
    before = picture.read_bytes()
    assert main([*UPSCALE, str(picture), "-o", str(picture), "--force"]) == 1
    assert picture.read_bytes() == before
    assert "would overwrite an input" in capsys.readouterr().err


def test_an_existing_file_that_is_not_an_image_needs_force(picture, capsys):
    out = picture.parent / "out.png"
    out.write_bytes(b"keep me")
    assert main([*UPSCALE, str(picture), "-o", str(out)]) == 1
    assert out.read_bytes() == b"keep me" and "is not an image; pass --force" in capsys.readouterr().err
    assert main([*UPSCALE, str(picture), "-o", str(out), "--force"]) == 0
    assert size_of(out) == (80, 60)


def test_a_batch_run_again_skips_what_is_done_and_never_takes_its_outputs_as_inputs(tmp_path, scene, capsys):
    folder = tmp_path / "f"
    folder.mkdir()
    for index in range(3):
        scene(20 + index, 16, seed=index).save(folder / f"p{index}.png")
    assert main([*UPSCALE, str(folder), "--scale", "2"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == "srcnn: 3 of 3 written"
    written = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    assert sorted(written) == ["p0.png", "p0_x2.png", "p1.png", "p1_x2.png", "p2.png", "p2_x2.png"]
    assert main([*UPSCALE, str(folder), "--scale", "2"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        "srcnn: 0 of 3 written, 3 skipped: their outputs exist (--force redoes them)"
    )
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == written
    (folder / "p1_x2.png").unlink()  # as if that one had not been done
    assert main([*UPSCALE, str(folder), "--scale", "2"]) == 0
    assert capsys.readouterr().err.splitlines()[-1].startswith("srcnn: 1 of 3 written, 2 skipped")
    assert main([*UPSCALE, str(folder), "--scale", "2", "--force"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == "srcnn: 3 of 3 written"
    assert len(list(folder.iterdir())) == 6
    assert main([*UPSCALE, str(folder), "--scale", "3"]) == 0  # another scale: the ×2 outputs are not inputs
    assert sorted(path.name for path in folder.glob("*_x3.png")) == ["p0_x3.png", "p1_x3.png", "p2_x3.png"]


def test_o_with_a_slash_names_a_folder_for_one_input(picture):
    out = picture.parent / "new"
    assert main([*UPSCALE, str(picture), "-o", f"{out}/"]) == 0
    assert [path.name for path in out.iterdir()] == ["in_x2.png"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: [str(tmp / "nosuch.png"), "-o", str(tmp / "out") + "/"], "no such file or folder: "),
        (lambda tmp: [str(tmp / "nosuch.png"), "-o", str(tmp / "out.png")], "no such file or folder: "),
        (lambda tmp: [str((tmp / "empty").mkdir() or tmp / "empty")], "no images or videos to upscale in "),
    ],
)
def test_a_missing_input_or_an_empty_folder_is_a_usage_error(tmp_path, capsys, make, message):
    with pytest.raises(SystemExit) as stop:
        main([*UPSCALE, *make(tmp_path)])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.png").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"srcnn {srcnn.__version__}\n"


def test_two_inputs_of_one_name_from_two_folders_both_get_outputs(tmp_path, scene, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        scene(10, 10).save(tmp_path / folder / "same.png")
    assert (
        main(
            [*UPSCALE, str(tmp_path / "a" / "same.png"), str(tmp_path / "b" / "same.png"), "-o", str(tmp_path / "out")]
        )
        == 0
    )
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["same-png-a_x2.png", "same-png-b_x2.png"]


def test_a_size_out_of_range_for_one_image_fails_that_image(tmp_path, scene, capsys):
    scene(10, 10).save(tmp_path / "small.png")
    scene(100, 100).save(tmp_path / "large.png")
    assert main([*UPSCALE, str(tmp_path / "small.png"), str(tmp_path / "large.png"), "--size", "120x"]) == 1
    assert "1 to 8 times" in capsys.readouterr().err
    assert (tmp_path / "large_120x.png").exists() and not (tmp_path / "small_120x.png").exists()


@pytest.mark.parametrize(
    "arguments",
    [
        ["--scale", "9"],
        ["--scale", "2", "--size", "64x48"],
        ["--size", "0x0"],
        ["-o", "out.jpg", "--format", "png"],
        ["-o", "out.txt"],
        ["--jobs", "0"],
        [],
    ],
)
def test_usage_errors_exit_2(picture, arguments, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*UPSCALE, *([str(picture)] if arguments else []), *arguments])
    assert exit_info.value.code == 2
    assert "usage: srcnn" in capsys.readouterr().err


@pytest.mark.slow  # two fresh interpreters, each loading the engines
def test_installed_command_and_python_m(picture):
    command = Path(sys.executable).parent / "srcnn"
    for argv in ([str(command)], [sys.executable, "-m", "srcnn"]):
        out = picture.parent / f"{len(argv)}.png"
        subprocess.run([*argv, "upscale", str(picture), "-o", str(out), "--scale", "1.5"], check=True, timeout=120)
        assert size_of(out) == (60, 45)


class FakeSession:
    """Answers with the given statuses in turn (the last one repeats); a 503 says Retry-After `retry_after`."""

    def __init__(self, *statuses, retry_after=None):
        self.statuses, self.calls, self.retry_after = list(statuses), 0, retry_after

    def put(self, url, data, headers, timeout):
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        if status is None:
            raise requests.ConnectionError("refused")
        response = requests.Response()
        response.status_code = status
        response._content = b"IMAGE" if status == 200 else b'{"code": 415, "message": "not an image"}'
        if status == 503 and self.retry_after is not None:
            response.headers["Retry-After"] = self.retry_after
        return response


def test_client_retries_503_507_and_connection_failures():
    waits = []
    session = FakeSession(503, None, 507, 200)
    assert remote_upscale(session, "u", b"x", {}, sleep=waits.append) == b"IMAGE"
    assert waits == [0.5, 1, 2] and session.calls == 4


def test_client_waits_as_long_as_a_busy_server_asks():
    waits = []
    assert remote_upscale(FakeSession(503, 503, 200, retry_after="7"), "u", b"x", {}, sleep=waits.append) == b"IMAGE"
    assert waits == [7, 7]
    waits = []
    assert remote_upscale(FakeSession(503, 200, retry_after="86400"), "u", b"x", {}, sleep=waits.append) == b"IMAGE"
    assert waits == [600]  # at most ten minutes


def test_client_gives_up_and_reports_the_message():
    with pytest.raises(Refused, match="415: not an image"):
        remote_upscale(FakeSession(415), "u", b"x", {}, sleep=lambda _: None)
    session = FakeSession(503)
    with pytest.raises(Refused, match="503"):
        remote_upscale(session, "u", b"x", {}, sleep=lambda _: None)
    assert session.calls == 6


def test_server_output_matches_local(server, tmp_path, scene, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    scene(40, 30).save(folder / "a.png")
    scene(33, 21, seed=3).convert("RGBA").save(folder / "b.png")
    (folder / "c.txt").write_text("text")
    for arguments in (["--scale", "2.5"], ["--size", "64x"]):
        local, remote = tmp_path / "local", tmp_path / "remote"
        assert main([*UPSCALE, str(folder), "-o", str(local), "--force", "--precision", "auto", *arguments]) == 0
        assert (
            main([*UPSCALE, str(folder), "-o", str(remote), "--force", "--server", server.inference_url, *arguments])
            == 0
        )  # c.txt is left alone either way
        for name in ("a", "b"):
            label = "x2.5" if arguments[0] == "--scale" else "64x"
            mine = np.asarray(Image.open(local / f"{name}_{label}.png"), dtype=int)
            theirs = np.asarray(Image.open(remote / f"{name}_{label}.png"), dtype=int)
            assert mine.shape == theirs.shape and np.abs(mine - theirs).max() <= 1


def test_server_refusal_prints_its_message(server, tmp_path, capsys):
    (tmp_path / "c.txt").write_text("text")
    assert (
        main([*UPSCALE, str(tmp_path / "c.txt"), "-o", str(tmp_path / "c.png"), "--server", server.inference_url]) == 1
    )
    assert "the server answered 415: the body is not an image" in capsys.readouterr().err


def test_weights_without_the_precisions_calibration_are_a_usage_error(picture, tmp_path, identity_model, capsys):
    for scale in (2, 3, 4):
        save_state_dict(identity_model, tmp_path / "weights" / f"srcnn_x{scale}.pth")
    out = tmp_path / "out.png"
    assert (
        main([*UPSCALE, str(picture), "-o", str(out), "--weights", str(tmp_path / "weights"), "--precision", "int8"])
        == 2
    )
    assert "make calibrate" in capsys.readouterr().err and not out.exists()
    # auto serves what it can: without calibration or measured costs, an fp32 engine
    assert main([*UPSCALE, str(picture), "-o", str(out), "--weights", str(tmp_path / "weights")]) == 0


def test_each_file_gets_one_line_as_it_is_done_and_the_summary_counts_them(tmp_path, scene, capsys):
    folder = tmp_path / "f"
    folder.mkdir()
    for index in range(3):
        scene(20 + index, 16, seed=index).save(folder / f"p{index}.png")
    (folder / "p1_x2.png").write_bytes((folder / "p1.png").read_bytes())  # done by an earlier run
    (folder / "cut.png").write_bytes((folder / "p0.png").read_bytes()[:60])  # a PNG cut short
    damaged = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x0f\x01\x02\x00@\x00\x00\x00"  # 5 entries claimed, 1 there
    scene(20, 16).save(folder / "warned.jpg", exif=damaged)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        assert main([*UPSCALE, str(folder), "--scale", "2"]) == 1
    assert escaped == []  # Pillow warns of the EXIF as the folder is read and as the file is decoded
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == ("srcnn: 3 of 5 written, 1 skipped: their outputs exist (--force redoes them), 1 refused")
    for name in ("p0.png", "p1.png", "p2.png", "cut.png", "warned.jpg"):  # one line each, naming the file
        assert sum(str(folder / name) in line for line in lines[:-1]) == 1, (name, lines)
    assert f"srcnn: {folder / 'p0.png'} -> {folder / 'p0_x2.png'}" in lines
    assert f"srcnn: {folder / 'p1.png'}: skipped, {folder / 'p1_x2.png'} exists (--force redoes it)" in lines
    assert any(line.startswith(f"srcnn: {folder / 'cut.png'}: ") and "PNG" in line for line in lines)
    warned = f"srcnn: {folder / 'warned.jpg'} -> {folder / 'warned_x2.png'} (warned: Corrupt EXIF data"
    assert any(line.startswith(warned) for line in lines)
    assert len(lines) == 6, lines

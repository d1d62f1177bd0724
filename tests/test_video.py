"""Video (srcnn.video, `srcnn upscale clip.mp4`): frames as the still images' pipeline makes them, timing, sound,
subtitles and rotation carried over, resuming after a stop or a kill, and a clear message for what cannot be done.
The clips are made by helpers.make_clip with PyAV (FFmpeg's own encoders): a test card panning 2 pixels a frame, so
that a frame out of place shows."""

import math
import re
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest

import srcnn.video
from helpers import make_clip, make_scene
from pages import command_block
from srcnn.api import Upscaler
from srcnn.cli import main
from srcnn.files import REPOSITORY as ROOT
from srcnn.video import VideoError

PRECISION = "onnxruntime-fp32"  # "auto" would measure this machine's engines first
UPSCALE = ("upscale", "--precision", PRECISION)


@pytest.fixture(scope="module")
def upscaler():
    return Upscaler(precision=PRECISION)


def make_sound(path, video_track=False):
    """A file with one second of AAC sound and no video (with `video_track`, a video track with no frame in it)."""
    with av.open(str(path), "w") as output:
        if video_track:
            video = output.add_stream("libx264", rate=30)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = output.add_stream("aac", rate=48000, layout="mono")
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 48000), np.float32), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 48000, 0
        output.mux(sound.encode(chunk))
        output.mux(sound.encode(None))


def frames_of(path):
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def packets_of(path, kind):
    """(bytes, seconds) of each packet of the first stream of `kind` ("audio", "subtitle")."""
    with av.open(str(path)) as container:
        stream = next(stream for stream in container.streams if stream.type == kind)
        return [
            (bytes(packet), float(packet.pts * packet.time_base)) for packet in container.demux(stream) if packet.size
        ]


def psnr(a, b):
    error = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * math.log10(255**2 / error) if error else math.inf


def assert_frames_upscaled(source, output, upscaler):
    """Each output frame is `Upscaler.upscale` of the input frame decoded, within codec noise, and further from
    its neighbour's (a frame out of place fails)."""
    out = [frame.to_image() for frame in frames_of(output)]
    expected = [upscaler.upscale(frame.to_image(), size=out[0].size) for frame in frames_of(source)]
    assert len(out) == len(expected)
    for index, (made, wanted) in enumerate(zip(out, expected)):
        assert psnr(made, wanted) >= 30, index  # x264 at CRF 18 on the noisy test card: about 33 dB
        if index:
            assert psnr(made, wanted) >= psnr(made, expected[index - 1]) + 3, index


@pytest.mark.slow
def test_the_bar_a_3_second_clip_with_sound(tmp_path, upscaler):
    source = make_clip(tmp_path / "clip.mp4", size=(320, 240), frames=90)
    out = tmp_path / "big.mp4"
    assert main([*UPSCALE, str(source), "--scale", "2", "-o", str(out)]) == 0
    frames = frames_of(out)
    assert (frames[0].width, frames[0].height, len(frames)) == (640, 480, 90)
    with av.open(str(source)) as before, av.open(str(out)) as after:
        durations = [
            float(container.streams.video[0].duration * container.streams.video[0].time_base)
            for container in (before, after)
        ]
    assert abs(durations[0] - durations[1]) <= 1 / 30
    assert packets_of(out, "audio") == packets_of(source, "audio")
    assert_frames_upscaled(source, out, upscaler)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["big.mp4", "clip.mp4"]  # no parts left behind


def test_timestamps_of_a_variable_frame_rate_are_kept(tmp_path, upscaler):
    stamps = [0, 1, 2, 4, 5, 9, 10, 11, 15, 16]
    source = make_clip(tmp_path / "vfr.mkv", frames=len(stamps), stamps=stamps, audio=False)
    out = tmp_path / "vfr_x2.mkv"
    upscaler.upscale_video(source, out, scale=2)
    assert [frame.time for frame in frames_of(out)] == [frame.time for frame in frames_of(source)]
    assert_frames_upscaled(source, out, upscaler)


def test_rotation_subtitles_and_the_default_name(tmp_path):
    source = make_clip(tmp_path / "phone.mkv", rotation=90, subtitles=[(0, "one"), (200, "two")])
    assert main([*UPSCALE, str(source), "--scale", "1.5"]) == 0
    out = tmp_path / "phone_x1.5.mkv"
    frames = frames_of(out)
    assert (frames[0].width, frames[0].height, frames[0].rotation) == (144, 96, 90)
    assert packets_of(out, "subtitle") == [(b"one", 0.0), (b"two", 0.2)]


@pytest.mark.parametrize(
    ("size", "arguments", "expected"),
    [
        pytest.param((853, 480), ["--scale", "2"], (1706, 960), marks=pytest.mark.slow),  # odd input, even output
        ((95, 63), ["--scale", "2.5"], (238, 158)),  # 237.5 → 238, 157.5 → 158
        ((96, 64), ["--size", "101x"], (102, 68)),  # 101 wide asked: yuv420p needs even sides
    ],
)
def test_odd_sizes(tmp_path, size, arguments, expected):
    source = make_clip(tmp_path / "odd.mkv", size=size, frames=3, pix_fmt="yuv444p", audio=False)
    out = tmp_path / "odd_big.mkv"
    assert main([*UPSCALE, str(source), "-o", str(out), *arguments]) == 0
    frames = frames_of(out)
    assert (frames[0].width, frames[0].height, frames[0].format.name, len(frames)) == (*expected, "yuv420p", 3)


def test_ten_bit_input_gives_eight_bit_output(tmp_path, upscaler):
    source = make_clip(tmp_path / "ten.mp4", pix_fmt="yuv420p10le", frames=6)
    out = tmp_path / "ten_x2.mp4"
    upscaler.upscale_video(source, out)
    assert frames_of(out)[0].format.name == "yuv420p"
    assert_frames_upscaled(source, out, upscaler)


def test_the_colour_matrix_is_kept(tmp_path, upscaler):
    source = make_clip(tmp_path / "hd.mp4", colorspace=av.video.reformatter.Colorspace.ITU709, frames=6)
    out = tmp_path / "hd_x2.mp4"
    upscaler.upscale_video(source, out)
    assert frames_of(out)[0].colorspace == frames_of(source)[0].colorspace == 1  # BT.709
    assert_frames_upscaled(source, out, upscaler)


def test_codec_and_quality_are_settable(tmp_path):
    source = make_clip(tmp_path / "clip.mp4", frames=6)
    sizes = {}
    for crf in (10, 40):
        out = tmp_path / f"hevc{crf}.mkv"
        assert main([*UPSCALE, str(source), "-o", str(out), "--codec", "hevc", "--crf", str(crf)]) == 0
        with av.open(str(out)) as container:
            assert container.streams.video[0].codec_context.name == "hevc"
        sizes[crf] = out.stat().st_size
    assert sizes[10] > 2 * sizes[40]


def test_progress_counts_every_frame(tmp_path, upscaler):
    source = make_clip(tmp_path / "clip.mp4", frames=12)
    calls = []
    upscaler.upscale_video(source, tmp_path / "out.mp4", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(done, 12) for done in range(13)]


def test_a_stopped_run_resumes_without_redoing_frames(tmp_path, monkeypatch):
    source = make_clip(tmp_path / "clip.mp4", frames=20)
    out = tmp_path / "out.mp4"
    monkeypatch.setattr(srcnn.video, "PART_SECONDS", 0)  # a part a frame
    upscaler = Upscaler(precision=PRECISION)

    def stop_at_eleven(done, total):
        if done == 11:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscaler.upscale_video(source, out, progress=stop_at_eleven)
    assert not out.exists()
    assert len(list((tmp_path / ".out.mp4.parts").glob("part-*"))) == 11  # the 11th frame's part closed on the stop
    computed = []
    monkeypatch.setattr(
        upscaler, "upscale", lambda image, **sizing: computed.append(1) or Upscaler.upscale(upscaler, image, **sizing)
    )
    starts = []
    upscaler.upscale_video(source, out, progress=lambda done, total: starts.append(done))
    assert (starts[0], len(computed)) == (11, 9)
    assert not (tmp_path / ".out.mp4.parts").exists()
    assert_frames_upscaled(source, out, Upscaler(precision=PRECISION))


def test_a_changed_input_starts_over(tmp_path, monkeypatch, upscaler):
    source = make_clip(tmp_path / "clip.mp4", frames=8)
    monkeypatch.setattr(srcnn.video, "PART_SECONDS", 0)

    def stop_at_five(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscaler.upscale_video(source, tmp_path / "out.mp4", progress=stop_at_five)
    make_clip(source, frames=9)
    starts = []
    upscaler.upscale_video(source, tmp_path / "out.mp4", progress=lambda done, total: starts.append(done))
    assert starts[0] == 0 and len(frames_of(tmp_path / "out.mp4")) == 9


def run_stopped(tmp_path, part_seconds, frames_before, how):
    """Start `srcnn upscale` on a 3-second clip in a process of its own with parts of `part_seconds`, stop it with
    the signal `how` once its parts (closed, or being written) hold `frames_before(parts folder)` > 0, then run the
    same command again to the end. (the clip, the output, the frames the stopped run kept, the second run)"""
    source = make_clip(tmp_path / "clip.mp4", size=(320, 240), frames=90)
    out = tmp_path / "big.mp4"
    command = [str(source), "--scale", "2", "-o", str(out), "--precision", PRECISION]
    stopped = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys, srcnn.video; srcnn.video.PART_SECONDS = "
            f"{part_seconds}; from srcnn.cli import main; sys.exit(main(sys.argv[1:]))",
            "upscale",
            *command,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    parts = tmp_path / ".big.mp4.parts"
    deadline = time.monotonic() + 300
    while not (parts.exists() and frames_before(parts)):
        assert stopped.poll() is None and time.monotonic() < deadline, stopped.stderr.read()
        time.sleep(0.02)
    stopped.send_signal(how)
    stopped.wait(timeout=60)
    kept = frames_kept(parts)
    again = subprocess.run(
        [sys.executable, "-m", "srcnn", "upscale", *command], capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr
    return source, out, kept, stopped, again


def frames_kept(parts):
    return sum(int(path.stem.split("-")[2]) for path in parts.glob("part-*.packets"))


def assert_finished(source, out, kept, again, upscaler):
    assert f"resuming, {kept} frames done by a stopped run" in again.stderr
    assert len(frames_of(out)) == 90
    assert packets_of(out, "audio") == packets_of(source, "audio")
    assert_frames_upscaled(source, out, upscaler)


@pytest.mark.slow
def test_killed_halfway_the_same_command_finishes_from_the_closed_parts(tmp_path, upscaler):
    source, out, kept, killed, again = run_stopped(
        tmp_path, 0.2, lambda parts: frames_kept(parts) >= 30, signal.SIGKILL
    )
    assert killed.returncode == -signal.SIGKILL and 30 <= kept < 90
    assert_finished(source, out, kept, again, upscaler)


@pytest.mark.slow
def test_terminated_the_open_part_is_kept_too(tmp_path, upscaler):
    # One part for the whole clip: without SIGTERM's handling the stop would keep nothing.
    source, out, kept, stopped, again = run_stopped(
        tmp_path,
        10,
        lambda parts: any(path.stat().st_size > 1000 for path in parts.glob(".part-*.tmp")),
        signal.SIGTERM,
    )
    assert stopped.returncode == 130 and "srcnn: interrupted after 0 of 1" in stopped.stderr.read()
    assert 0 < kept < 90
    assert_finished(source, out, kept, again, upscaler)


def test_a_folder_mixing_photos_videos_and_notes(tmp_path):
    make_scene(40, 30).save(tmp_path / "photo.png")
    make_clip(tmp_path / "IMG_0001.mov", frames=4)
    (tmp_path / "notes.txt").write_text("not a picture")
    assert main([*UPSCALE, str(tmp_path), "-o", str(tmp_path / "out")]) == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["IMG_0001_x2.mov", "photo_x2.png"]
    assert len(frames_of(tmp_path / "out" / "IMG_0001_x2.mov")) == 4
    assert main([*UPSCALE, str(tmp_path), "-o", str(tmp_path / "out")]) == 0  # done already: both skipped


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.write_text("hello"), "not a video srcnn can read, or damaged (FFmpeg: Invalid data"),
        (
            lambda path: path.write_bytes(make_clip(path, frames=30).read_bytes()[:3000]),
            "not a video srcnn can read, or damaged",
        ),
        (lambda path: make_sound(path), "no video track (its streams: audio)"),
    ],
)
def test_what_is_not_a_whole_video_gets_a_clear_message(tmp_path, capsys, make, message):
    source = tmp_path / "clip.mp4"
    make(source)
    assert main([*UPSCALE, str(source)]) == 1
    assert f"srcnn: {source}: {message}" in capsys.readouterr().err
    assert [path.name for path in tmp_path.iterdir()] == ["clip.mp4"]


def test_a_file_cut_short_gives_the_frames_that_decode_and_says_so(tmp_path, capsys):
    whole = make_clip(tmp_path / "whole.mkv", frames=60).read_bytes()  # 2 s, the duration written in front
    source = tmp_path / "cut.mkv"
    source.write_bytes(whole[: len(whole) * 4 // 10])
    assert main([*UPSCALE, str(source)]) == 0
    frames = len(frames_of(tmp_path / "cut_x2.mkv"))
    assert 0 < frames < 60
    said = re.search(
        rf"srcnn: {re.escape(str(source))} -> \S+cut_x2.mkv \(warned: the video ends at ([0-9.]+) s of the 2.0 s "
        rf"its container states \(cut short\?\); the {frames} frames that decode were enlarged",
        capsys.readouterr().err,
    )
    assert said and round(abs(float(said[1]) - frames / 30), 6) <= 0.1  # the time is said to a tenth of a second


def test_a_video_track_with_no_frame(tmp_path, capsys):
    source = tmp_path / "empty.mkv"  # Matroska keeps a track with no frame (MP4 drops it)
    make_sound(source, video_track=True)
    assert main([*UPSCALE, str(source)]) == 1
    assert f"srcnn: {source}: its video track has no frame that decodes" in capsys.readouterr().err
    assert [path.name for path in tmp_path.iterdir()] == ["empty.mkv"]  # nor a parts folder


def test_the_container_must_hold_what_is_copied(tmp_path, capsys):
    source = make_clip(tmp_path / "clip.mp4", frames=3)
    assert main([*UPSCALE, str(source), "-o", str(tmp_path / "big.webm")]) == 1
    assert "a .webm file cannot hold the input's aac audio" in capsys.readouterr().err
    with pytest.raises(VideoError, match="a video's output is a .mp4, .mov, .mkv, .webm file"):
        Upscaler(precision=PRECISION).upscale_video(source, tmp_path / "big.gif")


def test_a_size_the_encoder_refuses_is_said_before_any_work(tmp_path):
    source = make_clip(tmp_path / "wide.mkv", size=(2500, 1250), frames=1, audio=False)
    with pytest.raises(VideoError, match="libx264 cannot encode 20000×10000 frames at CRF 18 \\(FFmpeg: "):
        Upscaler(precision=PRECISION).upscale_video(source, tmp_path / "big.mp4", scale=8)  # x264's widest: 16384
    assert sorted(path.name for path in tmp_path.iterdir()) == ["wide.mkv"]


@pytest.mark.parametrize(
    ("codec", "crf", "message"),
    [
        ("h264", 52, "CRF for h264 is 0 to 51"),
        ("vp9", -1, "CRF for vp9 is 0 to 63"),
        ("av1", 0, "CRF for av1 is 1 to 63"),
    ],
)
def test_a_crf_out_of_the_codecs_range_is_refused(tmp_path, capsys, codec, crf, message):
    source = make_clip(tmp_path / "clip.mkv", frames=2, audio=False)
    assert main([*UPSCALE, str(source), "--codec", codec, "--crf", str(crf)]) == 1
    assert f"{message} (lower is better), not {crf}" in capsys.readouterr().err


def test_usage_errors_for_a_video(tmp_path, capsys):
    source = make_clip(tmp_path / "clip.mp4", frames=3)
    for arguments, message in (
        (["-o", str(tmp_path / "big.png")], "name a .mp4, .mov, .mkv, .webm file"),
        (["-o", str(tmp_path / "big.mp4"), "--format", "png"], "--format is an image's"),
    ):
        with pytest.raises(SystemExit) as exit:
            main([*UPSCALE, str(source), *arguments])
        assert exit.value.code == 2 and message in capsys.readouterr().err


def test_a_server_takes_images_only(tmp_path, capsys):
    source = make_clip(tmp_path / "clip.mp4", frames=3)
    assert main(["upscale", str(source), "--server", "http://127.0.0.1:9"]) == 1
    assert "a video is upscaled on this machine only" in capsys.readouterr().err


@pytest.mark.slow  # two commands, each choosing its engine by measurement
def test_the_pages_video_lines_work_as_written(tmp_path):
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    make_clip(tmp_path / "clip.mp4", size=(320, 240), frames=6)
    make_clip(tmp_path / "clip.mov", size=(320, 240), frames=6)
    lines = [
        command_block("README.md", "srcnn-upscale").strip().splitlines()[4],
        *command_block("docs/usage.md", "video").strip().splitlines(),
    ]
    for line in lines:
        result = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    first, second = frames_of(tmp_path / "big.mp4"), frames_of(tmp_path / "clip_x720.mov")
    assert (first[0].width, first[0].height, len(first)) == (640, 480, 6)
    assert (second[0].width, second[0].height, len(second)) == (960, 720, 6)
    with av.open(str(tmp_path / "clip_x720.mov")) as container:
        assert container.streams.video[0].codec_context.name == "hevc"


@pytest.mark.slow
def test_memory_does_not_grow_with_the_clip(tmp_path):
    peaks = {}
    # Both past x264's lookahead (40 frames and its threads' own, held by the encoder however long the clip); 100
    # more 640×480 frames held would be over 90 MB more.
    for frames in (60, 160):
        source = make_clip(tmp_path / f"clip{frames}.mp4", size=(320, 240), frames=frames)
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                "import resource, sys; from srcnn.api import Upscaler; "
                f"Upscaler(precision='{PRECISION}').upscale_video(sys.argv[1], sys.argv[2]); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
                str(source),
                str(tmp_path / f"out{frames}.mp4"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        peaks[frames] = int(run.stdout) * 1024
    assert len(frames_of(tmp_path / "out160.mp4")) == 160
    assert peaks[160] - peaks[60] < 30e6, peaks

"""Video against still images (the bar for video): frames a second of `Upscaler.upscale_video` at 480p and 720p → ×2,
and its ratio to `Upscaler.upscale` on the same frames, in turns; and those frames two ways on every core: each
frame in stripes on all lanes (what `upscale_video` does), and frames side by side, one single-lane Upscaler a core.

    python -m bench --video-only

Each clip is a slow pan across Set14's largest image (bicubic-resized, so that the frames have a photograph's
texture and the encoder real work), 30 frames a second, H.264 at CRF 18 with a stereo AAC track, made here with
PyAV. The still-image pipeline is `Upscaler.upscale` on each frame already decoded to RGB (decoding and encoding
not timed); the video pipeline is the whole of `upscale_video`: decoding, colour conversion, upscaling, encoding,
the parts and the final mux. Each is timed twice, alternating, and the faster of each kept.
"""

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np

from bench.photos import photograph
from srcnn.api import Upscaler
from srcnn.cores import machine_cores

CLIPS = {"480p": ((854, 480), 24), "720p": ((1280, 720), 12)}  # (width, height), frames
SCALE, RATE = 2, 30


def make_clip(path, data_dir, size, frames):
    """A clip of `frames` frames of `size` panning across a photograph, with a stereo AAC tone."""
    width, height = size
    scene = np.asarray(photograph(data_dir, (width + frames * 4, height)))
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=RATE, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = output.add_stream("aac", rate=48000, layout="stereo")
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(scene[:, index * 4 : index * 4 + width]), "rgb24")
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
        samples = 48000 * frames // RATE
        tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 48000)).astype(np.float32)
        sound = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        sound.sample_rate, sound.pts = 48000, 0
        output.mux(audio.encode(sound))
        output.mux(audio.encode(None))


def video(data_dir):
    """The video rows of `make bench`, as a dict."""
    upscaler = Upscaler()
    upscaler.prepare()
    singles = [Upscaler(threads=1) for _ in range(machine_cores())]
    results = {"engine": upscaler.engine, "scale": SCALE, "clips": {}}
    with tempfile.TemporaryDirectory() as workdir:
        for name, (size, frames) in CLIPS.items():
            clip, big = Path(workdir) / f"{name}.mp4", Path(workdir) / f"{name}_x2.mp4"
            make_clip(clip, data_dir, size, frames)
            with av.open(str(clip)) as container:
                images = [frame.to_image() for frame in container.decode(video=0)]
            timings = {"video": [], "still": [], "side_by_side": []}
            for _ in range(2):
                started = time.perf_counter()
                upscaler.upscale_video(clip, big, scale=SCALE)
                timings["video"].append(time.perf_counter() - started)
                big.unlink()
                started = time.perf_counter()
                for image in images:
                    upscaler.upscale(image, scale=SCALE)
                timings["still"].append(time.perf_counter() - started)
                started = time.perf_counter()
                with ThreadPoolExecutor(len(singles)) as pool:
                    list(
                        pool.map(
                            lambda index: singles[index % len(singles)].upscale(images[index], scale=SCALE),
                            range(len(images)),
                        )
                    )
                timings["side_by_side"].append(time.perf_counter() - started)
            video_s, still_s = min(timings["video"]), min(timings["still"])
            output_pixels = size[0] * SCALE * size[1] * SCALE * frames
            results["clips"][name] = {
                "input": "x".join(map(str, size)),
                "frames": frames,
                "video_s": video_s,
                "still_s": still_s,
                "video_fps": frames / video_s,
                "still_fps": frames / still_s,
                "video_mpx_per_s": output_pixels / video_s / 1e6,
                "of_still": still_s / video_s,
                "stripes_over_side_by_side": min(timings["side_by_side"]) / still_s,
            }
    return results


def markdown(results):
    """Lines for bench/results.md."""
    return [
        f"Video ({results['engine']}, ×{results['scale']}, H.264 CRF 18 out, sound copied): "
        + "; ".join(
            f"{name} ({clip['input']}, {clip['frames']} frames) {clip['video_fps']:.2f} frames/s, "
            f"{clip['video_mpx_per_s']:.2f} output Mpx/s, **{clip['of_still']:.2f}× the still-image "
            f"pipeline on the same frames** ({clip['still_fps']:.2f} frames/s; each frame in stripes on "
            f"every core {clip['stripes_over_side_by_side']:.2f}× as fast as frames side by side)"
            for name, clip in results["clips"].items()
        )
        + "."
    ]


def checks(results):
    """The bar's lines for video."""
    return [
        (
            f"{name} → ×{results['scale']} video at ≥ 80% of the still-image pipeline's output pixels a second "
            f"({clip['of_still']:.2f}×)",
            clip["of_still"] >= 0.8,
        )
        for name, clip in results["clips"].items()
    ]

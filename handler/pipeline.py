"""One request from its upload to its answer, free of TorchServe: what the TorchServe handler and the KServe
predictor (predictor/) both run, so that the two servers take the same requests, keep the same limits and refuse
with the same error kinds and messages.

    job = plan(upload, headers, settings, trace, weights)    # sizing, decoding, limits: ClientError or ImageError
    body, content_type, headers = computed(job, trace, admission, upscalers, reply)  # place, turn, upscale, reply
    # where reply(image, job) is respond(image, job, settings, threads, model_name, trace): the encoded answer
"""

from dataclasses import replace

from handler.protocol import ClientError, Job, choose_media_type, factor_label, header, requested_sizing, what_fits
from handler.wire import answer
from srcnn.bands import Stopped
from srcnn.codec import (
    OutputTooLarge,
    ResponseTooLarge,
    check_encodable,
    decode_image,
    decode_pixels,
    eight_bit,
    encode_image,
    estimated_bytes,
)
from srcnn.deep import PIXEL_WEIGHT, DeepImage
from srcnn.scaling import ScaleError, output_size, passes_between


def plan(upload, headers, settings, trace, weights):
    """The Job of one handler.wire.Upload: its scale or size (headers or body), the answer's format (Accept), the
    decoded image and the answer's size, refused while nothing is computed if any limit of `settings`
    (handler.protocol.Settings) would be passed. A 16-bit image answered as JPEG or WebP is computed in 8 bits; one
    answered as PNG stays 16-bit and counts its pixels twice (srcnn.deep). Fills `trace` (handler.protocol.Trace)
    as it learns; `weights` maps each trained scale to the identity of its weight file."""
    scale, size = requested_sizing(headers, upload, settings.default_scale)
    media_type = choose_media_type(header(headers, "Accept"))
    if isinstance(upload.data, bytes):
        image = decode_image(upload.data, settings.max_input_pixels)
        trace.warnings = image.info["decoder_warnings"]
    else:
        image = decode_pixels(upload.data, settings.max_input_pixels)
    image = image if media_type == "image/png" else eight_bit(image)
    try:
        output = output_size(image.size, scale, size)
    except ScaleError as error:
        raise ClientError(422, "invalid_size", str(error)) from None
    trace.scale = factor_label(scale, image.size, output)
    trace.media_type, trace.input_size, trace.output_size = media_type, image.size, output
    trace.weights = ",".join(weights[trained] for trained in passes_between(image.size, output)) or "none"
    output_pixels = output[0] * output[1]
    limits, deep = settings, ""
    if isinstance(image, DeepImage):
        limits = replace(settings, max_output_pixels=settings.max_output_pixels // PIXEL_WEIGHT)
        deep = " for 16-bit answers (image/jpeg is answered in 8 bits, up to twice that)"
    if output_pixels > limits.max_output_pixels:
        raise OutputTooLarge(
            f"×{trace.scale} of a {image.width}×{image.height} image gives {output[0]}×{output[1]} "
            f"= {output_pixels:,} pixels; the limit is {limits.max_output_pixels:,}{deep}: "
            f"{what_fits(image.size, scale, output, limits)}"
        )
    check_encodable(output, media_type)
    check_estimated_bytes(image, output, media_type, settings.max_response_bytes)
    return Job(image, output, media_type, upload)


# How far over the limit an answer's estimate must be to refuse it unseen: estimates measured 0.80-1.04× the answers
# SRCNN gave on Set5 and Set14 at ×2 and ×3, PNG and JPEG (tests/test_codec.py keeps them under this).
ESTIMATE_MARGIN = 1.25


def check_estimated_bytes(image, output, media_type, limit):
    """Refuse, before any work, an answer whose encoding a bicubic sample (srcnn.codec.estimated_bytes) puts over
    `limit` (max_response_bytes) by ESTIMATE_MARGIN; estimated only where the answer's raw pixels could pass it.
    What passes this and still passes the limit is refused by the encoder as soon as it does."""
    sample_bytes = 2 if isinstance(image, DeepImage) else 1
    if output[0] * output[1] * len(image.getbands()) * sample_bytes * 1.05 <= limit:
        return
    estimate = estimated_bytes(image, output, media_type)
    if estimate > limit * ESTIMATE_MARGIN:
        refuse_answer(
            f"the answer would be about {estimate:,} bytes ({media_type}, {output[0]}×{output[1]}; "
            "estimated before computing it)",
            media_type,
            limit,
        )


def computed(job, trace, admission, upscalers, reply, gone=None):
    """`reply(image, job)`, the answer to `job` once upscaled: a large request holds a place of `admission` (or is
    refused 503) and waits for its turn (dropped, 499, if `gone()` says its client has left meanwhile;
    handler.admission); `upscalers[large]` computes it, and gives it up (499) where `gone()` says so before a band
    of rows. The upscaling and the reply are timed in `trace`."""
    with admission.place(job.size) as large:
        with admission.turn(job.size, gone), trace.timed("upscale"):
            try:
                image = upscalers[large].upscale(job.image, size=job.size, stop=gone)
            except Stopped:
                raise ClientError(499, "client_gone", "the client closed the connection while its answer was computed")
        with trace.timed("encode"):
            return reply(image, job)


def respond(image, job, settings, threads, model_name, trace):
    """(body, content type, extra headers) answering `job` with its upscaled `image`, in the upload's wire
    format; the image is encoded on `threads` threads, and refused once its body passes max_response_bytes."""
    limit = settings.max_response_bytes
    body, content_type, headers = answer(
        image,
        lambda: encode_image(image, job.media_type, limit, threads),
        job.media_type,
        job.upload,
        model_name,
        trace.request_id,
        trace.done(),
    )
    check_answer_bytes(len(body), job.media_type, content_type == "application/json", limit)
    return body, content_type, headers


def check_answer_bytes(length, media_type, in_json, limit):
    """Refuse an answer body of `length` bytes over `limit` (max_response_bytes) with a 413 that says what to do."""
    if length > limit:
        refuse_answer(
            f"the answer is {length:,} bytes ({media_type}{' in base64 JSON' if in_json else ''})", media_type, limit
        )


def refuse_answer(what, media_type, limit):
    """The 413 of an answer over `limit`: `what` it is, and what would fit."""
    advice = (
        "send a smaller image or ask for a smaller size"
        if media_type == "image/jpeg"
        else "ask for image/jpeg or send a smaller image"
    )
    raise ResponseTooLarge(f"{what}, over the limit of {limit:,}; {advice}")

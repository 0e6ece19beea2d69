"""`latentvideo serve`: a local web page for the pipeline (Gradio).

The page takes 2 to 8 keyframe images (or samples keyframes 0, 9, 19 of a random
held-out Moving MNIST test sequence), runs the pipeline and shows the clip, a contact
sheet, each keyframe beside its reconstruction with the reconstruction error, the
seconds per stage and GIF / MP4 / NPY / PNG downloads.

A model picker lists the shipped models and the one the server was started with (`Models`); a request
carries the chosen name, each model is loaded on first use and kept, and picking one sets the
controls to that model's defaults (`control_state`). Uploads are converted to the chosen model's
channels and size.

All the work is in plain functions that know nothing of Gradio, so they are unit-tested without a
browser: `check_request`, `run_generation` and `render` in web_generate.py, the request plumbing (`check_uploads`,
`load_keyframes`, `RequestDirs`, `PipelineGate`) in web_requests.py, and the model picker and the option
controls (`Models`, `control_state`, `load_sample`) in web_models.py. `build_app(pipe)` only wires them to
components, `launch` starts it in the background and `serve` runs it until interrupted.

Requests: uploads are checked (count, type, size, decoding, times and settings) before a request
waits for the pipeline, so a bad upload is answered at once even while clips render. Only then does
it queue for a `PipelineGate` turn: `concurrency` clips render at once, at most `max_queue` wait in
line (first come, first served), and anyone past that is told the server is busy. A request's
folder is made when its turn comes and removed if it fails; the folders of finished clips are
removed after `KEEP_SECONDS`.

Gradio is imported lazily: without it everything but `build_app`/`launch`/`serve` works, and
`serve` fails with a `LatentVideoError` naming the extra to install.

The server binds to 127.0.0.1 by default and makes no outside calls: analytics and
the version check are off, there are no share links, no server-side rendering and no
MCP server, and the theme uses system fonts (nothing from a font CDN).
"""

from __future__ import annotations

import html
import importlib.util
import os
import signal
import threading
import traceback
from pathlib import Path

from ..data import IMAGE_EXTS
from ..errors import LatentVideoError
from ..options import schema
from .web_generate import MAX_WEB_FRAMES, check_request, error_markdown, render
from .web_models import SAMPLE_FRAMES, Models, as_models, control_state, control_values, load_sample, option_controls
from .web_requests import (
    CONCURRENCY,
    KEEP_SECONDS,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_QUEUE,
    MIN_FILES,
    PipelineGate,
    RequestDirs,
    check_capacity,
    check_uploads,
    file_digest,
    load_keyframes,
)

CHECK_CONCURRENCY = 4  # uploads decoded at once (each request: at most 8 images of at most 16 Mpx)

# Environment that keeps Gradio (and huggingface_hub under it) from calling out.
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "GRADIO_SHARE": "False",
    "GRADIO_SSR_MODE": "False",
}
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO_FONTS = ["ui-monospace", "monospace"]


def _check_gradio() -> None:
    try:
        found = importlib.util.find_spec("gradio") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise LatentVideoError(
            "the web page needs gradio, which is not installed", hint="pip install 'latentvideo[web]'"
        )


def _require_gradio():
    _check_gradio()
    os.environ.update(OFFLINE_ENV)  # before the import: gradio reads some of these once
    try:
        import gradio as gr
    except ImportError as e:
        raise LatentVideoError(f"cannot import gradio: {e}", hint="pip install 'latentvideo[web]'") from None
    return gr


def build_app(pipe, dirs: RequestDirs | None = None, gate: PipelineGate | None = None):
    """The Gradio Blocks page for `pipe` (a loaded pipeline, or `Models` to pick from; not launched). Use
    `launch` or `serve` to run it.

    The model picker lists `Models.names`; a request carries the chosen name (the started model by default)
    and uses that model's pipeline, loaded on first use; picking a model sets the controls to its defaults.
    Generate and Sample check their request first (at most CHECK_CONCURRENCY decode uploads at once),
    then wait for a `gate` turn, one line for every model (default: one clip at a time, MAX_QUEUE waiting);
    every outcome, the busy answer and an unknown model included, is a message in the status line, for
    the page and API callers alike."""
    gr = _require_gradio()
    models = as_models(pipe)
    dirs = dirs or RequestDirs()
    gate = gate or PipelineGate()
    checks = threading.BoundedSemaphore(CHECK_CONCURRENCY)
    names = list(schema(include_api_only=False))

    def outputs_of(result, status):
        return (
            status,
            str(result["video"]),
            str(result["truth_video"]) if result["truth_video"] else None,
            str(result["sheet"]),
            result["gallery"],
            result["report"],
            [str(p) for p in result["downloads"]],
        )

    def failed(e):
        if not isinstance(e, LatentVideoError):
            traceback.print_exc()
        return (error_markdown(e), None, None, None, None, "", None)

    def done_in(result, model) -> str:
        t = result["timings"]
        queued = f", {t['queue']:.1f} s of it waiting for a turn" if "queue" in t else ""
        return f"with {html.escape(model or models.default)} in {t['total']:.1f} s{queued}."

    def on_model(model):
        try:
            pipe = models.get(model)
            updates = [gr.update(**control_state(pipe, n)) for n in names]
            return [*updates, f"Model {html.escape(models.describe(model))}; the settings show its defaults."]
        except Exception as e:  # noqa: BLE001
            return [*(gr.update() for _ in names), failed(e)[0]]

    def on_upload(files, model):
        try:
            with checks:
                pipe = models.get(model)
                paths = check_uploads(files)
                load_keyframes(paths, pipe.channels, pipe.resolution, resize=True)  # decodes: is it an image?
            names = ", ".join(html.escape(p.name) for p in paths)
            return f"{len(paths)} keyframes ready: {names}. Press **Generate**."
        except Exception as e:  # noqa: BLE001 - every failure becomes a message on the page
            return failed(e)[0]

    def on_generate(files, times, frames, *knob_values):
        *knob_values, resize, sample, model = knob_values
        out = None
        try:
            s = control_values(knob_values, names)
            with checks:  # a bad request is answered here, without waiting for the pipeline
                pipe = models.get(model)  # the chosen model's pipeline (an unknown name fails here)
                request = check_request(pipe, files, times, frames, resize=resize, **s)
            same = sample and [file_digest(p) for p in request.paths] == sample["digests"]  # the sampled keyframes?
            truth = sample["truth"] if same else None
            with gate.turn() as request.queued:  # ServerBusy when the line is full
                out = dirs.new()  # only a valid request that got its turn makes a folder
                result = render(pipe, request, truth=truth, out_dir=out)
            return outputs_of(result, "Done " + done_in(result, model))
        except Exception as e:  # noqa: BLE001
            dirs.discard(out)  # a failed request leaves nothing behind
            return failed(e)

    def on_sample(*knob_values):
        *knob_values, resize, model = knob_values
        out = None
        try:
            s = control_values(knob_values, names)
            pipe = models.get(model)
            pipe.options(**s)  # bad settings are answered without waiting
            with gate.turn() as queued:
                out = dirs.new()
                sample = load_sample(out, channels=pipe.channels)
                times = ",".join(f"{t:g}" for t in sample.times)
                request = check_request(pipe, sample.paths, times, SAMPLE_FRAMES, resize=resize, **s)
                request.queued = queued
                result = render(pipe, request, truth=sample.truth, out_dir=out)
            state = {"digests": [file_digest(p) for p in sample.paths], "truth": sample.truth}
            status = f"Held-out test sequence (seed {sample.seed}), keyframes {times}: done " + done_in(result, model)
            filled = ([str(p) for p in sample.paths], times, SAMPLE_FRAMES, state)
            return filled + outputs_of(result, status)
        except Exception as e:  # noqa: BLE001
            dirs.discard(out)
            return (gr.update(), gr.update(), gr.update(), None) + failed(e)

    with gr.Blocks(title="latentvideo", analytics_enabled=False, delete_cache=(KEEP_SECONDS, KEEP_SECONDS)) as app:
        gr.Markdown(
            "# latentvideo\nA few still images in, a short video out, through a GAN's latent space. "
            f"Upload {MIN_FILES} to {MAX_FILES} keyframes in time order (at most {MAX_FILE_BYTES // 2**20} MB each), "
            "or sample them from a held-out test sequence."
        )
        sample_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                model = gr.Dropdown(  # custom values allowed, so an unknown name gets this page's own answer
                    models.names, value=models.default, label="Model", allow_custom_value=True, elem_id="model"
                )
                files = gr.File(
                    label=f"Keyframes ({MIN_FILES} to {MAX_FILES} images, in time order)",
                    file_count="multiple",
                    file_types=list(IMAGE_EXTS),
                    type="filepath",
                    elem_id="keyframes",
                )
                with gr.Row():
                    sample_btn = gr.Button("Sample a test sequence", elem_id="sample")
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                status = gr.Markdown("", elem_id="status")
                times = gr.Textbox(
                    label="Keyframe times (frame indices, e.g. 0,9,19; empty: evenly spaced)", elem_id="times"
                )
                frames = gr.Slider(2, MAX_WEB_FRAMES, value=SAMPLE_FRAMES, step=1, label="Frames", elem_id="frames")
                with gr.Accordion("Settings", open=True):
                    controls = option_controls(gr, models.get())
                    resize = gr.Checkbox(value=True, label="Rescale to the model's size")
            with gr.Column(scale=3, min_width=320):
                with gr.Row():
                    video = gr.Video(label="Generated", autoplay=True, loop=True, interactive=False, elem_id="clip")
                    truth_video = gr.Video(
                        label="Ground truth (sampled sequences)",
                        autoplay=True,
                        loop=True,
                        interactive=False,
                        elem_id="truth",
                    )
                sheet = gr.Image(label="Contact sheet", type="filepath", interactive=False, format="png")
                gallery = gr.Gallery(
                    label="Each keyframe, then its reconstruction and its error (MSE per pixel)",
                    columns=4,
                    height="auto",
                    format="png",
                    elem_id="gallery",
                )
                report = gr.Markdown("", elem_id="report")
                downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")

        knobs = [controls[n] for n in names]
        results = [status, video, truth_video, sheet, gallery, report, downloads]
        # Gradio's queue only hands requests to worker threads; the waiting line for the pipeline is `gate`,
        # entered after the checks, so no concurrency limit here (launch sizes the thread pool to fit).
        files.upload(
            on_upload,
            [files, model],
            status,
            api_name="check",
            concurrency_id="check",
            concurrency_limit=CHECK_CONCURRENCY,
        )
        model.change(on_model, model, [*knobs, status], api_name="defaults")
        generate_btn.click(
            on_generate,
            [files, times, frames, *knobs, resize, sample_state, model],
            results,
            api_name="generate",
            concurrency_id="requests",
            concurrency_limit=None,
        )
        sample_btn.click(
            on_sample,
            [*knobs, resize, model],
            [files, times, frames, sample_state, *results],
            api_name="sample",
            concurrency_id="requests",
            concurrency_limit=None,
        )
    return app


def launch(
    pipe,
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    dirs: RequestDirs | None = None,
    gate: PipelineGate | None = None,
    concurrency: int = CONCURRENCY,
    max_queue: int = MAX_QUEUE,
):
    """Build the page for `pipe` (a loaded pipeline, or `Models`) and serve it on host:port from background
    threads; returns the Gradio app (`app.close()` stops it). `gate` (default: PipelineGate(concurrency,
    max_queue)) decides turns, one line for all models."""
    gr = _require_gradio()
    dirs = dirs or RequestDirs()
    gate = gate or PipelineGate(concurrency, max_queue)
    app = build_app(pipe, dirs, gate)
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)
    # every waiting request holds a worker thread; leave room beside them for checks and busy answers
    threads = max(40, gate.concurrency + gate.max_queue + CHECK_CONCURRENCY + 16)
    try:
        app.queue(default_concurrency_limit=1).launch(
            server_name=host,
            server_port=int(port),
            share=False,
            inbrowser=False,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            max_file_size=MAX_FILE_BYTES,
            max_threads=threads,
            show_error=True,
            theme=theme,
            quiet=True,
            prevent_thread_lock=True,
        )
    except OSError as e:
        raise LatentVideoError(f"cannot serve on {host}:{port}: {e}", hint="pick another --port") from None
    return app


def serve(
    model: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "auto",
    pipe=None,
    concurrency: int = CONCURRENCY,
    max_queue: int = MAX_QUEUE,
) -> None:
    """Load the model and serve the page on http://host:port until interrupted: `concurrency` clips render
    at once, `max_queue` requests may wait for a turn, and later ones are told the server is busy. The page
    also offers every shipped model, each loaded when first picked."""
    if not 1 <= int(port) <= 65535:
        raise LatentVideoError(f"--port must be between 1 and 65535, got {port}")
    check_capacity(concurrency, max_queue)
    _check_gradio()  # before the model loads
    models = Models(model, device, pipe=pipe)
    models.get()  # the started model loads now: a bad --model fails before anything is served
    dirs = RequestDirs()
    # uploads and Gradio's copies of our outputs live under the same private root, removed on exit
    os.environ.setdefault("GRADIO_TEMP_DIR", str(dirs.root / "gradio"))
    app = launch(models, host, port, dirs=dirs, concurrency=concurrency, max_queue=max_queue)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):  # both close the server and remove the temp files
            signal.signal(sig, _interrupt)
    shown = f"[{host}]" if ":" in host else host
    print(
        f"latentvideo: serving on http://{shown}:{port}  ({concurrency} clip(s) at a time, "
        f"up to {max_queue} waiting; Ctrl-C to stop)",
        flush=True,
    )
    app.block_thread()


def _interrupt(signum, frame):
    raise KeyboardInterrupt

"""``python -m unfoldldm app``: the standalone Gradio app (gradio is imported only when it runs)."""

from __future__ import annotations

import argparse

from ..argtypes import positive_int

EPILOG = """examples:
  python -m unfoldldm app --model-dir runs/restore           # http://127.0.0.1:7860
  python -m unfoldldm app --model my.safetensors --port 8000 --device cuda
  python -m unfoldldm app --listen --max-upload-mb 20          # reachable from the network
needs gradio:  pip install "unfoldldm[ui]"
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Start a local web app to restore images (a model list, settings, MGDA estimates, "
                          "before/after, batch folders). Runs one restoration at a time.")
    parser.epilog = EPILOG
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    parser.add_argument("--listen", action="store_true",
                        help="listen on all interfaces (0.0.0.0) instead of 127.0.0.1 only")
    parser.add_argument("--model", default=None, help="a .safetensors path or model name to preselect")
    parser.add_argument("--model-dir", action="append", default=[], metavar="DIR",
                        help="folder of .safetensors checkpoints (repeatable); bundled weights are always listed")
    parser.add_argument("--device", default="auto",
                        help="auto lets the user choose in the app; cpu, cuda, cuda:N or mps fixes the device")
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="refuse uploaded files larger than this")
    parser.add_argument("--max-pixels", type=positive_int, default=None,
                        help="refuse images with more pixels than this (default 8192x8192)")
    parser.add_argument("--batch", choices=["auto", "on", "off"], default="auto",
                        help="the batch-folder tab reads and writes server folders: auto = on unless --listen")


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        from ..errors import UnfoldLDMError

        raise UnfoldLDMError('The app needs gradio: pip install "unfoldldm[ui]" (or pip install "gradio>=3.41,<6").') from None
    from ..imageio import DEFAULT_MAX_PIXELS
    from .app import create_app, launch

    if args.max_upload_mb <= 0:
        from ..errors import UnfoldLDMError

        raise UnfoldLDMError("--max-upload-mb must be positive.")
    max_bytes = int(args.max_upload_mb * 2**20)
    batch = args.batch == "on" or (args.batch == "auto" and not args.listen)
    demo, _ = create_app(args.model_dir, args.model, args.device, args.max_pixels or DEFAULT_MAX_PIXELS,
                         max_bytes, batch=batch)
    host = "0.0.0.0" if args.listen else "127.0.0.1"
    launch(demo, host=host, port=args.port or None, max_upload_bytes=max_bytes)
    return 0

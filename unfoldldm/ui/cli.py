"""``python -m unfoldldm app``: the standalone Gradio app (gradio is imported only when it runs)."""

from __future__ import annotations

import argparse
import math

from ..argtypes import positive_float, positive_int, threads
from ..options import MAX_PIXELS

EPILOG = """examples:
  python -m unfoldldm app --model-dir runs/restore           # http://127.0.0.1:7860
  python -m unfoldldm app --model my.safetensors --port 8000 --device cuda
  python -m unfoldldm app --batch-root ~/photos                 # batch folders, only under ~/photos
  python -m unfoldldm app --listen --allow-host mybox.lan      # reachable from the network
needs gradio:  pip install "unfoldldm[ui]"
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    side = math.isqrt(MAX_PIXELS)
    parser.description = ("Start a local web app to restore images (a model list, settings, MGDA estimates, "
                          "before/after, batch folders). Runs one restoration at a time.")
    parser.epilog = EPILOG
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    parser.add_argument("--listen", action="store_true",
                        help="listen on all interfaces (0.0.0.0) instead of 127.0.0.1 only; open it by IP "
                             "address, or allow a host name with --allow-host")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also accept requests for this host name (repeatable; e.g. the machine's name "
                             "with --listen). Other names are refused, so web pages cannot reach the app "
                             "through DNS rebinding")
    parser.add_argument("--model", default=None, help="a .safetensors path or model name to preselect")
    parser.add_argument("--model-dir", action="append", default=[], metavar="DIR",
                        help="folder of .safetensors checkpoints (repeatable); bundled weights are always listed")
    parser.add_argument("--device", default="auto",
                        help="auto lets the user choose in the app; cpu, cuda, cuda:N or mps fixes the device")
    parser.add_argument("--threads", type=threads, default="auto",
                        help="CPU threads; auto uses the cores that are idle at start (one when the machine is busy)")
    parser.add_argument("--max-upload-mb", type=positive_float, default=50.0,
                        help="refuse uploaded files larger than this")
    parser.add_argument("--max-pixels", type=positive_int, default=None,
                        help=f"refuse images with more pixels than this (default {side}x{side})")
    parser.add_argument("--batch-root", action="append", default=[], metavar="DIR",
                        help="enables the batch-folder tab for folders inside DIR (repeatable); input and "
                             "output folders must resolve to a place inside one. Without it, no batch tab")


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        from ..errors import UnfoldLDMError

        raise UnfoldLDMError('The app needs gradio: pip install "unfoldldm[ui]" (or pip install "gradio>=3.41,<6").') from None
    from ..runtime import configure_cpu
    from .app import create_app, launch

    max_bytes = int(args.max_upload_mb * 2**20)
    configure_cpu(args.threads, args.device)
    demo, _ = create_app(args.model_dir, args.model, args.device, args.max_pixels or MAX_PIXELS,
                         max_bytes, batch_root=args.batch_root)
    host = "0.0.0.0" if args.listen else "127.0.0.1"
    import signal
    import sys

    # SIGTERM (e.g. a service manager stopping the app) exits like Ctrl-C: temp folders are removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    launch(demo, host=host, port=args.port or None, max_upload_bytes=max_bytes, allowed_hosts=args.allow_host)
    return 0

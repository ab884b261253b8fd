"""Start a real ComfyUI (0.3.75) with this repository as a custom node pack, and talk to it.

ComfyUI runs in its own venv, set up by ``scripts_dev/setup_comfyui.sh`` in ``COMFY_DIR``
(``$UNFOLDLDM_COMFYUI_DIR``, else ``<repo>/.comfyui``); this module only needs the standard
library (plus Pillow for :meth:`ComfyServer.image`), so it runs in the project's test venv.

    with ComfyServer() as comfy:                 # starts the server, waits for /object_info
        name = comfy.upload_image("in.png")      # -> "in.png" in the server's input folder
        pid = comfy.queue(api_prompt)            # POST /prompt; ComfyPromptError on node errors
        entry = comfy.wait(pid, timeout=300)     # /history/<id> entry (status, outputs)
        img = comfy.image(**comfy.output_images(entry)[0])

Layout of one server (all under a temporary folder, removed at exit):
    base/                  --base-directory: input/, output/, temp/, user/, models/
    base/models/unfoldldm/ ``comfy.models_dir``: tests put UnfoldLDM .safetensors checkpoints here
                           (the node pack registers this folder name with folder_paths)
    nodes/unfoldldm ->     symlink to the repository root, named in extra_model_paths.yaml under
                           custom_nodes, so the pack loads as custom_nodes/unfoldldm
    extra_model_paths.yaml, server.log
"""
from __future__ import annotations

import atexit
import ctypes
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COMFY_DIR = Path(os.environ.get("UNFOLDLDM_COMFYUI_DIR") or REPO_ROOT / ".comfyui")
SETUP_SCRIPT = REPO_ROOT / "scripts_dev" / "setup_comfyui.sh"
SETUP_STEPS = ("extract-comfyui", "venv", "torch", "requirements", "chromium", "playwright")
CHROMIUM = "/usr/bin/chromium"

# Flags that keep the server light and offline: no browser launch, no API (cloud) nodes.
DEFAULT_ARGS = ("--cpu", "--disable-auto-launch", "--disable-api-nodes")

# Written to user/default/comfy.settings.json: skip the first-run template browser, so the
# page opens on ComfyUI's default graph.
DEFAULT_SETTINGS = {"Comfy.TutorialCompleted": True}

# Frontend-only node types: they exist in a UI workflow but never in an API prompt.
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
SEED_CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def comfy_is_set_up(comfy_dir: Path | str = COMFY_DIR) -> bool:
    """True when every step of scripts_dev/setup_comfyui.sh has finished in comfy_dir."""
    comfy_dir = Path(comfy_dir)
    if not all((comfy_dir / f".done-{s}").exists() for s in SETUP_STEPS):
        return False
    reqs = REPO_ROOT / "requirements.txt"  # the pack's, installed into ComfyUI's venv
    if reqs.exists():
        sha = hashlib.sha256(reqs.read_bytes()).hexdigest()[:16]
        marker = comfy_dir / ".pack-requirements-sha"
        return marker.exists() and marker.read_text().strip() == sha
    return True


def run_setup(comfy_dir: Path | str = COMFY_DIR) -> None:
    """Run scripts_dev/setup_comfyui.sh (idempotent; the first time takes minutes)."""
    subprocess.run(["bash", str(SETUP_SCRIPT), str(comfy_dir)], check=True, stdin=subprocess.DEVNULL)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies (even by SIGKILL)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyError(RuntimeError):
    """An HTTP error from the server; ``status`` and ``body`` (parsed JSON when possible)."""

    def __init__(self, message: str, status: int | None = None, body=None):
        super().__init__(message)
        self.status = status
        self.body = body


class ComfyPromptError(ComfyError):
    """POST /prompt refused the prompt (HTTP 400): ``body`` has ``error`` and ``node_errors``."""


class ComfyServer:
    """A ComfyUI server process, started on a free localhost port; a context manager.

    comfy_dir: where setup_comfyui.sh put ComfyUI/ and venv/.
    pack_dir / pack_name: the folder loaded as custom_nodes/<pack_name> (default: this repo).
    extra_args: more command-line flags for main.py.
    settings: web-page settings (user/default/comfy.settings.json), over DEFAULT_SETTINGS.
    python_path: folders put first on the server's PYTHONPATH (e.g. to make a module unimportable).
    """

    def __init__(
        self,
        comfy_dir: Path | str = COMFY_DIR,
        pack_dir: Path | str | None = REPO_ROOT,
        pack_name: str = "unfoldldm",
        extra_args: tuple[str, ...] | list[str] = (),
        startup_timeout: float = 180.0,
        env: dict | None = None,
        settings: dict | None = None,
        python_path: tuple[Path, ...] | list[Path] = (),
    ):
        self.comfy_dir = Path(comfy_dir)
        self.pack_dir = Path(pack_dir) if pack_dir else None
        self.pack_name = pack_name
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.env = env or {}
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.python_path = [str(p) for p in python_path]
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self.client_id = uuid.uuid4().hex
        self._log = None

    # -- paths ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_dir(self) -> Path:
        return self.workdir / "base"

    @property
    def models_dir(self) -> Path:
        """Put UnfoldLDM checkpoints (.safetensors) here: <base>/models/unfoldldm."""
        return self.base_dir / "models" / "unfoldldm"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- life cycle -------------------------------------------------------------------------
    def __enter__(self) -> ComfyServer:  # noqa: PYI034
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        python = self.comfy_dir / "venv" / "bin" / "python"
        main_py = self.comfy_dir / "ComfyUI" / "main.py"
        if not (python.exists() and main_py.exists()):
            raise FileNotFoundError(
                f"ComfyUI is not set up in {self.comfy_dir}: run bash {SETUP_SCRIPT.relative_to(REPO_ROOT)}"
            )
        self.workdir = Path(tempfile.mkdtemp(prefix="comfy-e2e-"))
        for sub in ("input", "output", "temp", "user", "custom_nodes", "models/unfoldldm"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.base_dir / "user" / "default").mkdir(parents=True)
        (self.base_dir / "user" / "default" / "comfy.settings.json").write_text(json.dumps(self.settings))
        nodes_dir = self.workdir / "nodes"
        nodes_dir.mkdir()
        config = self.workdir / "extra_model_paths.yaml"
        if self.pack_dir is not None:
            (nodes_dir / self.pack_name).symlink_to(self.pack_dir.resolve(), target_is_directory=True)
        config.write_text(f"unfoldldm_e2e:\n    custom_nodes: {nodes_dir}\n")
        self.port = free_port()
        cmd = [
            str(python), str(main_py), *DEFAULT_ARGS,
            "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(self.base_dir),
            "--extra-model-paths-config", str(config),
            "--database-url", f"sqlite:///{self.workdir / 'comfyui.db'}",
            *self.extra_args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1", **self.env}
        # The test venv's variables must not leak into ComfyUI's own venv.
        for var in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            env.pop(var, None)
        if self.python_path:
            env["PYTHONPATH"] = os.pathsep.join(self.python_path)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, cwd=self.comfy_dir / "ComfyUI", env=env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (only a prctl call)
        )
        atexit.register(self.stop)
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0

    def _wait_ready(self, t0: float) -> None:
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ComfyUI exited with code {self.proc.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                self._object_info = self._get_json("/object_info", timeout=30)
                return
            except (OSError, ComfyError):
                pass
            if time.monotonic() - t0 > self.startup_timeout:
                raise TimeoutError(
                    f"ComfyUI did not answer /object_info in {self.startup_timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL) and remove the temp dir."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=15)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.workdir is not None and os.environ.get("UNFOLDLDM_E2E_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def pack_import_failed(self) -> bool:
        """True when the server log says the node pack failed to import."""
        return any(
            "IMPORT FAILED" in line and line.rstrip().endswith(os.sep + self.pack_name)
            for line in self.log_text().splitlines()
        )

    def rss_mb(self) -> float:
        """Resident memory of the server process (VmRSS from /proc/<pid>/status), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise RuntimeError("no VmRSS")

    # -- HTTP -------------------------------------------------------------------------------
    def _request(self, path: str, data: bytes | None = None, headers: dict | None = None,
                 timeout: float = 60) -> bytes:
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            cls = ComfyPromptError if path == "/prompt" and e.code == 400 else ComfyError
            raise cls(f"{'POST' if data is not None else 'GET'} {path}: HTTP {e.code}: "
                      f"{json.dumps(body, indent=1) if not isinstance(body, str) else body}",
                      status=e.code, body=body) from None

    def _get_json(self, path: str, timeout: float = 60):
        return json.loads(self._request(path, timeout=timeout))

    def _post_json(self, path: str, payload, timeout: float = 60) -> bytes:
        return self._request(path, json.dumps(payload).encode(),
                             {"Content-Type": "application/json"}, timeout)

    def object_info(self, node_class: str | None = None) -> dict:
        """GET /object_info (all node classes) or /object_info/<class> (that class's entry)."""
        if node_class is None:
            return self._get_json("/object_info")
        return self._get_json(f"/object_info/{urllib.parse.quote(node_class)}")[node_class]

    def queue(self, prompt: dict) -> str:
        """POST /prompt with an API-format prompt; returns the prompt_id.

        Raises ComfyPromptError (with the JSON body: error, node_errors) when the server
        refuses it with HTTP 400 (validation/node errors)."""
        out = json.loads(self._post_json("/prompt", {"prompt": prompt, "client_id": self.client_id}))
        if out.get("node_errors"):
            raise ComfyPromptError(f"node errors: {json.dumps(out['node_errors'])}", 200, out)
        return out["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        return self._get_json(f"/history/{prompt_id}").get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 300, poll: float = 0.25,
             raise_on_error: bool = False) -> dict:
        """Poll /history/<id> until the prompt finished; returns its history entry.

        entry["status"] has status_str ("success"/"error"), completed, and messages (the
        execution_error message carries node_id, node_type, exception_message, traceback);
        entry["outputs"] maps node ids to their UI outputs (e.g. images). With
        raise_on_error=True an execution error raises ComfyError instead."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None and (
                entry["status"]["completed"] or entry["status"].get("status_str") == "error"
            ):
                if raise_on_error and entry["status"].get("status_str") == "error":
                    raise ComfyError(f"prompt {prompt_id} failed: {self.execution_error(entry)}",
                                     body=entry)
                return entry
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died (code {self.proc.returncode}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} not done in {timeout} s:\n{self.log_tail()}")
            time.sleep(poll)

    def run(self, prompt: dict, timeout: float = 300, raise_on_error: bool = True) -> dict:
        """queue() + wait()."""
        return self.wait(self.queue(prompt), timeout=timeout, raise_on_error=raise_on_error)

    @staticmethod
    def execution_error(entry: dict) -> dict | None:
        """The execution_error message data of a history entry, or None."""
        for name, data in entry.get("status", {}).get("messages", []):
            if name == "execution_error":
                return data
        return None

    @staticmethod
    def output_images(entry: dict, node_id: str | None = None) -> list[dict]:
        """[{filename, subfolder, type}, ...] of a history entry (of one node, or all)."""
        outs = entry.get("outputs", {})
        ids = [node_id] if node_id is not None else list(outs)
        return [{"filename": im["filename"], "subfolder": im.get("subfolder", ""), "type": im.get("type", "output")}
                for i in ids for im in outs.get(i, {}).get("images", [])]

    def image(self, filename: str, subfolder: str = "", type: str = "output"):
        """GET /view -> PIL.Image (loaded)."""
        from PIL import Image

        q = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": type})
        img = Image.open(io.BytesIO(self._request(f"/view?{q}")))
        img.load()
        return img

    def interrupt(self) -> None:
        """POST /interrupt: stop the prompt that is running."""
        self._request("/interrupt", b"", {"Content-Type": "application/json"})

    def upload_image(self, path: Path | str, overwrite: bool = True) -> str:
        """POST /upload/image (multipart); returns the name LoadImage takes ("sub/name" or "name")."""
        path = Path(path)
        boundary = uuid.uuid4().hex
        fields = [("overwrite", "true" if overwrite else "false"), ("type", "input")]
        body = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields
        )
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{path.name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        out = json.loads(self._request(
            "/upload/image", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}))
        return f"{out['subfolder']}/{out['name']}" if out.get("subfolder") else out["name"]


# -- UI workflow -> API prompt -------------------------------------------------------------
def _is_widget(spec) -> bool:
    """Whether an object_info input spec is shown as a widget (and so has a widgets_values entry)."""
    kind = spec[0]
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if opts.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _input_specs(info: dict) -> list[tuple[str, list]]:
    """(name, spec) of a node class's inputs in the order the frontend makes widgets."""
    specs = []
    inputs = info.get("input", {})
    order = info.get("input_order", {})
    for group in ("required", "optional"):
        group_specs = inputs.get(group, {}) or {}
        for name in order.get(group, list(group_specs)):
            if name in group_specs:
                specs.append((name, group_specs[name]))
    return specs


def convert_ui_workflow_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a ComfyUI UI-format workflow (nodes/links/widgets_values, as saved by the web
    page) into the API prompt format ({id: {class_type, inputs, _meta}}) that POST /prompt takes.

    widgets_values are mapped, in order, to the node's widget inputs from object_info; the
    extra "control_after_generate" value (fixed/increment/decrement/randomize) that follows a
    seed INT is skipped; linked inputs become [source_node_id, output_slot]. Frontend-only
    nodes (Note, MarkdownNote, Reroute, PrimitiveNode) are left out: links through Reroutes
    are followed to their source, and PrimitiveNode values come from the target's widget.
    Muted nodes (mode 2) are left out; bypassed ones (mode 4) pass their inputs through."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {}  # link id -> (src node id, src slot)
    for link in workflow.get("links", []):
        if isinstance(link, dict):
            links[link["id"]] = (link["origin_id"], link["origin_slot"])
        else:
            links[link[0]] = (link[1], link[2])

    def source(link_id):
        """(node id, slot) that really feeds this link, or None (PrimitiveNode / muted / missing)."""
        src_id, slot = links[link_id]
        src = nodes.get(src_id)
        if src is None or src.get("mode") == 2:
            return None
        if src["type"] == "Reroute":
            link_in = (src.get("inputs") or [{}])[0].get("link")
            return source(link_in) if link_in is not None else None
        if src["type"] in FRONTEND_ONLY:
            return None
        if src.get("mode") == 4:  # bypassed: the first input of the same type passes through
            out_type = src["outputs"][slot]["type"]
            for inp in src.get("inputs", []):
                if inp.get("type") == out_type and inp.get("link") is not None:
                    return source(inp["link"])
            return None
        return src_id, slot

    prompt = {}
    for node_id, node in nodes.items():
        ntype = node["type"]
        if ntype in FRONTEND_ONLY or node.get("mode") in (2, 4):
            continue
        if ntype not in object_info:
            raise KeyError(f"node {node_id}: unknown node type {ntype!r} (not in object_info)")
        info = object_info[ntype]
        values = node.get("widgets_values", [])
        inputs = {}
        if isinstance(values, dict):  # some packs save widgets by name
            inputs.update({k: v for k, v in values.items() if k in dict(_input_specs(info))})
        else:
            pos = 0
            for name, spec in _input_specs(info):
                if not _is_widget(spec) or pos >= len(values):
                    continue
                inputs[name] = values[pos]
                pos += 1
                if (spec[0] == "INT" and pos < len(values) and isinstance(values[pos], str)
                        and values[pos] in SEED_CONTROL_VALUES):
                    pos += 1  # control_after_generate
        for inp in node.get("inputs", []):
            if inp.get("link") is None:
                continue
            src = source(inp["link"])
            if src is not None:
                inputs[inp["name"]] = [str(src[0]), src[1]]
        prompt[str(node_id)] = {
            "class_type": ntype,
            "inputs": inputs,
            "_meta": {"title": node.get("title") or info.get("display_name", ntype)},
        }
    return prompt

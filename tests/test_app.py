"""The standalone app (`python -m unfoldldm app`) in a real server process, driven over HTTP.

Needs gradio (the `test` extra installs it); skipped without it. One server for the module, on a
free port, stopped at the end whatever happens.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

REPO = Path(__file__).resolve().parents[1]
MAX_UPLOAD_MB = 1
MODEL = "restore_nano"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """(url, folder): the app serving a nano checkpoint, 127.0.0.1 only, 1 MB upload limit."""
    from model_helpers import make_nano

    from unfoldldm.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("app")
    save_checkpoint(folder / f"{MODEL}.safetensors", make_nano("restore"), provenance={"steps": 0})
    yield from serve_app(folder, "--model-dir", str(folder), "--max-upload-mb", str(MAX_UPLOAD_MB))


def serve_app(folder: Path, *args: str):
    """Run ``python -m unfoldldm app ARGS`` on a free port in ``folder``; yield (url, folder) once it
    answers, stop it afterwards."""
    port = _free_port()
    log = open(folder / "server.log", "w+")
    env = dict(os.environ, PYTHONPATH=str(REPO), GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1",
               GRADIO_TEMP_DIR=str(folder / "gradio_tmp"), TMPDIR=str(folder / "tmp"))
    (folder / "tmp").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "unfoldldm", "app", "--port", str(port), "--device", "cpu", *args],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"the app exited with {proc.returncode}:\n{log.read()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"the app did not answer on {url} within 120 s:\n{log.read()[-3000:]}")
            time.sleep(0.5)
        yield url, folder
    finally:
        _stop(proc)
        log.close()


def _png(path: Path, size=(48, 40), mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    channels = len(mode)
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels if channels > 1 else pixels[..., 0]).save(path)
    return path


def _restore(client, image_path=None, file_path=None):
    handle = gradio_client.handle_file
    return client.predict(
        handle(str(image_path)) if image_path else None,
        handle(str(file_path)) if file_path else None,
        MODEL, 1, 0, 0, 0, 1.0, "1", 0.5, "cpu", "auto",
        api_name="/unfoldldm_run_image",
    )


def test_binds_localhost_only(app_server):
    url, _ = app_server
    port = int(url.rsplit(":", 1)[1].strip("/"))
    with socket.socket() as s:  # nothing listens on the other interfaces
        s.settimeout(2)
        outside = [ip for ip in _host_ips() if not ip.startswith("127.")]
        for ip in outside:
            assert s.connect_ex((ip, port)) != 0, f"the app is reachable on {ip}"


def _host_ips() -> list[str]:
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)})
    except OSError:
        return []


def test_twenty_sequential_requests(app_server, tmp_path):
    url, _ = app_server
    client = gradio_client.Client(url, verbose=False)
    image = _png(tmp_path / "in.png")
    for i in range(20):
        result = _restore(client, image_path=image)
        out = Image.open(result[0])
        assert out.size == (48, 40), f"request {i}"
        assert "Restored 48x40 -> 48x40" in result[2]


def test_two_concurrent_clients(app_server, tmp_path):
    url, _ = app_server
    results, errors = {}, []

    def work(n):
        try:
            client = gradio_client.Client(url, verbose=False)
            image = _png(tmp_path / f"in{n}.png", size=(32 + 16 * n, 32), seed=n)
            for _ in range(3):
                results.setdefault(n, []).append(Image.open(_restore(client, image_path=image)[0]).size)
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    assert results == {0: [(32, 32)] * 3, 1: [(48, 32)] * 3}


def test_oversized_upload_is_refused(app_server, tmp_path):
    url, _ = app_server
    big = _png(tmp_path / "big.png", size=(1024, 768), seed=3)  # noise: about 2.3 MB as PNG
    assert big.stat().st_size > MAX_UPLOAD_MB * 2**20
    client = gradio_client.Client(url, verbose=False)
    with pytest.raises(Exception) as info:
        _restore(client, file_path=big)
    message = str(info.value).lower()
    assert "size" in message or "limit" in message or "large" in message, message
    # the server is still serving
    assert Image.open(_restore(client, image_path=_png(tmp_path / "ok.png"))[0]).size == (48, 40)


def test_non_image_file_gives_our_message(app_server, tmp_path):
    url, _ = app_server
    note = tmp_path / "notes.txt"
    note.write_text("not a picture")
    client = gradio_client.Client(url, verbose=False)
    with pytest.raises(Exception) as info:
        _restore(client, file_path=note)
    assert "not an image file" in str(info.value), str(info.value)


def test_foreign_host_header_is_refused(app_server):
    """DNS rebinding: a web page at evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    url, _ = app_server
    port = url.rsplit(":", 1)[1].strip("/")
    for path in ("", "gradio_api/upload", "config"):
        request = urllib.request.Request(url + path, headers={"Host": f"evil.example:{port}"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 400
    ok = urllib.request.Request(url, headers={"Host": f"localhost:{port}"})
    with urllib.request.urlopen(ok, timeout=10) as response:
        assert response.status == 200


def test_no_batch_endpoint_without_batch_root(app_server, tmp_path):
    url, _ = app_server
    client = gradio_client.Client(url, verbose=False)
    with pytest.raises(Exception):
        client.predict(str(tmp_path), str(tmp_path / "out"), True, MODEL, 1, 0, 0, 0, 1.0, "cpu", "auto",
                       api_name="/unfoldldm_run_batch")
    assert not (tmp_path / "out").exists()


def test_download_folders_do_not_pile_up(app_server, tmp_path):
    url, folder = app_server
    client = gradio_client.Client(url, verbose=False)
    image = _png(tmp_path / "in.png")
    for _ in range(6):
        _restore(client, image_path=image)
    spools = list((folder / "tmp").glob("unfoldldm_downloads_*"))
    assert len(spools) == 1 and len(list(spools[0].iterdir())) <= 4
    assert not list((folder / "tmp").glob("unfoldldm_[!d]*"))  # no per-request folders beside it

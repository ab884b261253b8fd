"""Folders of the fake WebUI. Tests point ``models_path`` at a temporary folder before loading scripts."""

import os

script_path = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the WebUI root
data_path = os.environ.get("A1111_HARNESS_DATA_PATH", script_path)
models_path = os.path.join(data_path, "models")
extensions_dir = os.path.join(data_path, "extensions")

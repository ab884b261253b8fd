"""How the WebUI executes a script file: a fresh module named after the file, not in sys.modules."""

import importlib.util
import os


def load_module(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

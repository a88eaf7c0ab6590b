"""LazyModule: the import waits for the first attribute, then behaves as the module."""

import subprocess
import sys

from nanochat_cli.services.lazy_module import LazyModule


def test_import_happens_on_first_use_and_attributes_match():
    lazy = LazyModule("json")
    assert lazy._module is None
    assert lazy.dumps({"a": 1}) == '{"a": 1}'
    import json

    assert lazy._module is json and lazy.loads is json.loads


def test_the_app_reaches_its_first_paint_imports_without_numpy():
    """numpy (~50 ms) stays off the start-up path: the app module and the built-in plugins do not load it."""
    code = ("import sys, nanochat_cli.app as A; from nanochat_cli.services.registry import REGISTRY; "
            "A.load_user_plugins(REGISTRY); print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"

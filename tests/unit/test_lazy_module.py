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
    """What the first paint imports (the CLI, the app, the Config tab's frame) leaves out pydantic, YAML, the
    keyring and psutil, loaded with the services right after it; numpy (~50 ms) stays out even then."""
    code = ("import sys; from nanochat_cli.cli import main; import nanochat_cli.app, nanochat_cli.screens.config; "
            "print(sorted(m for m in ('pydantic', 'yaml', 'keyring', 'psutil', 'numpy') if m in sys.modules)); "
            "from nanochat_cli.services.plugins import load_user_plugins; "
            "from nanochat_cli.services.registry import REGISTRY; "
            "load_user_plugins(REGISTRY); print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["[]", "False"]
